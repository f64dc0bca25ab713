// The cases of quantize-golden.json, shared by its generator (fixtures/gen-quantize-golden.ts,
// which runs llama.cpp's llama_model_quantize) and the test that compares mimo with it.
import { fileURLToPath } from "node:url";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { SeededRandom } from "../../src/sampling/rng.ts";
import type { ImportanceMatrix } from "../../src/tools/imatrix.ts";
import { RECIPES } from "../../src/tools/quant-recipes.ts";
import { syntheticModel, type SyntheticModelSpec } from "../../src/tools/synthetic-model.ts";

export const STORIES_GGUF = `${STORIES_DIR}/stories260K.gguf`;
/** Made by `mimo imatrix test/data/stories260K/stories260K.gguf --text test/data/stories260K/golden.greedy.txt -c 128 -o ...`. */
export const IMATRIX_FIXTURE = fileURLToPath(new URL("./fixtures/stories260K.imatrix.gguf", import.meta.url));

/** Real shapes whose recipe choices are checked (MiMo-7B as its main path, plain qwen2, for llama.cpp). */
export const GOLDEN_PRESETS = ["qwen2-0.5b", "llama-3.2-1b", "mimo-7b"] as const;

export interface GoldenCase {
  readonly id: string;
  readonly recipe: string;
  readonly pure?: boolean;
  readonly imatrix?: boolean;
  readonly tensorTypes?: readonly string[];
}

/** Types whose importance-weighted search mimo reproduces. */
export const IMATRIX_RECIPES = ["Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_NL", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"];

export const GOLDEN_CASES: readonly GoldenCase[] = [
  ...RECIPES.filter((r) => r.name !== "Q2_K_S").map((r) => ({ id: r.name, recipe: r.name })),
  { id: "Q4_K_M --pure", recipe: "Q4_K_M", pure: true },
  { id: "Q4_K_M --tensor-type", recipe: "Q4_K_M", tensorTypes: ["attn_v=Q8_0", "blk\\.[01]\\.ffn_up=Q5_1", "output=Q4_0"] },
  ...IMATRIX_RECIPES.map((r) => ({ id: `${r} --imatrix`, recipe: r, imatrix: true })),
  { id: "Q2_K_S --imatrix", recipe: "Q2_K_S", imatrix: true },
];

/** "blk.7.attn_v.weight" -> { pattern: "blk.{i}.attn_v.weight", layer: 7 }. */
export function rolePattern(name: string): { pattern: string; layer?: number } {
  const m = /^blk\.(\d+)\.(.*)$/.exec(name);
  return m ? { pattern: `blk.{i}.${m[2]}`, layer: Number(m[1]) } : { pattern: name };
}

// A synthetic Llama whose rows are whole 256-blocks (stories260K's are not: every K-quant falls
// back there), so the K-quant searches themselves run, with and without importance weights.
export const SYNTHETIC_SPEC: SyntheticModelSpec = {
  arch: "llama", dim: 256, ffnDim: 512, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 512, contextLength: 512,
  weightType: GGMLType.F32, seed: 11, matrixGain: 0.5,
};

/** Deterministic importance weights for every layer matrix of a synthetic model (log-uniform over 4 decades). */
export function syntheticImportance(modelSpec: SyntheticModelSpec = SYNTHETIC_SPEC): ImportanceMatrix {
  const spec = syntheticModel(modelSpec);
  const rng = new SeededRandom(5);
  const entries = new Map<string, Float32Array>();
  for (const t of spec.tensors) {
    if (t.shape.length < 2 || !t.name.startsWith("blk.")) continue;
    entries.set(t.name, Float32Array.from({ length: t.shape[0]! }, () => Math.pow(10, 4 * rng.next() - 2)));
  }
  return { source: "synthetic", datasets: [], chunkCount: 0, chunkSize: 0, entries };
}

export const SYNTHETIC_CASES: readonly GoldenCase[] = [
  ...["Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_M", "Q5_K_S", "Q6_K", "IQ4_NL"].flatMap((r) => [
    { id: r, recipe: r },
    { id: `${r} --imatrix`, recipe: r, imatrix: true },
  ]),
];
