// `mimo quantize` against llama.cpp: the type every recipe picks for every tensor (at real model
// shapes: llama.cpp's own dry run, and a table derived by hand from its rules), and the bytes of
// whole files (stories260K, with and without an importance matrix) against llama_model_quantize's
// (goldens: fixtures/quantize-golden.json, made by fixtures/gen-quantize-golden.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { openGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType, ggmlTypeName } from "../../src/quant/ggml-type.ts";
import { parseImatrix } from "../../src/tools/imatrix.ts";
import { presetSpec } from "../../src/tools/presets.ts";
import { RECIPES, chooseTensorTypes, findRecipe, parseTypeOverride, type RecipeModel, type RecipeTensor } from "../../src/tools/quant-recipes.ts";
import { quantizeModel } from "../../src/tools/quantize.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import { digest } from "../quant/quant-test-data.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GOLDEN_CASES, GOLDEN_PRESETS, IMATRIX_FIXTURE, STORIES_GGUF, SYNTHETIC_CASES, SYNTHETIC_SPEC, rolePattern, syntheticImportance } from "./quantize-golden-cases.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const golden = JSON.parse(readFileSync(new URL("./fixtures/quantize-golden.json", import.meta.url), "utf8")) as {
  shapes: Record<string, Record<string, Record<string, string>>>;
  stories260K: Record<string, Record<string, string>>;
  synthetic: Record<string, Record<string, string>>;
};
const dir = tempDir("mimo-quantize-");

/** A preset's tensors (names, shapes, F16 matrices) and hyper-parameters, as a converter writes them. */
function presetTensors(preset: string, noMtp = true): { tensors: RecipeTensor[]; model: RecipeModel } {
  const spec = presetSpec(preset, { type: GGMLType.F16, noMtp });
  const w = syntheticModel(spec);
  const nMtp = spec.nMtpLayers ?? 0;
  return {
    tensors: w.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type })),
    model: { arch: spec.arch, nHead: spec.nHeads, nHeadKv: spec.nKvHeads, nLayerAll: spec.nLayers + nMtp },
  };
}

/** Per role, the types of its layers joined by commas (the golden's form). */
function byRole(tensors: readonly RecipeTensor[], types: readonly number[]): Record<string, string> {
  const out: Record<string, string[]> = {};
  tensors.forEach((t, i) => {
    const { pattern, layer } = rolePattern(t.name);
    (out[pattern] ??= [])[layer ?? 0] = ggmlTypeName(types[i]!);
  });
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.join(",")]));
}

for (const preset of GOLDEN_PRESETS) {
  test(`${preset} shapes: every recipe picks llama.cpp's type for every tensor (its dry run)`, () => {
    const { tensors, model } = presetTensors(preset);
    for (const r of RECIPES) {
      const choices = chooseTensorTypes(tensors, r, model);
      assert.deepEqual(byRole(tensors, choices.map((c) => c.type)), golden.shapes[preset]![r.name], `${preset} ${r.name}`);
    }
  });
}

// Derived by hand from llama-quant.cpp (llama_tensor_get_type_impl, use_more_bits, the fallbacks),
// independent of the code under test. use_more_bits(i, n): i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2.
//   n = 24 (qwen2-0.5b):  0,1,2 | 5,8,11,14,17,20 | 21,22,23
//   n = 16 (llama-3.2-1b): 0,1 | 4,7,10,13 | 14,15
//   n = 37 (MiMo-7B with its MTP layer, block_count 37): 0..3 | 6,9,...,30 | 32..36
// qwen2-0.5b rows of 896 are not whole 256-blocks: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
// Q2_K/Q3_K -> Q4_0; ffn_down (4864 = 19 x 256) keeps K-quants. Tied embeddings get the output's
// treatment: Q8_0 when the row is not whole blocks of the file type, else Q6_K.
const moreBits = {
  24: [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23],
  16: [0, 1, 4, 7, 10, 13, 14, 15],
  37: [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 32, 33, 34, 35, 36],
};
function layers(n: number, pick: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => pick(i)).join(",");
}
const handTable: { preset: string; noMtp: boolean; recipe: string; expect: Record<string, string> }[] = [
  {
    preset: "qwen2-0.5b", noMtp: true, recipe: "Q4_K_M",
    expect: {
      "token_embd.weight": "Q8_0",
      "blk.{i}.attn_q.weight": layers(24, () => "Q5_0"),
      "blk.{i}.attn_v.weight": layers(24, (i) => (moreBits[24].includes(i) ? "Q8_0" : "Q5_0")),
      "blk.{i}.ffn_down.weight": layers(24, (i) => (moreBits[24].includes(i) ? "Q6_K" : "Q4_K")),
      "blk.{i}.ffn_up.weight": layers(24, () => "Q5_0"),
      "blk.{i}.attn_output.weight": layers(24, () => "Q5_0"),
    },
  },
  {
    preset: "qwen2-0.5b", noMtp: true, recipe: "Q3_K_M",
    // attn_v: Q5_K for the first two, then Q4_K (both fall back); attn_output Q4_K -> Q5_0;
    // ffn_down: Q5_K below n/16 (layer 0), else Q4_K (use_more_bits only matters for Falcon)
    expect: {
      "token_embd.weight": "Q8_0",
      "blk.{i}.attn_v.weight": layers(24, (i) => (i < 2 ? "Q5_1" : "Q5_0")),
      "blk.{i}.attn_output.weight": layers(24, () => "Q5_0"),
      "blk.{i}.ffn_down.weight": layers(24, (i) => (i < 1 ? "Q5_K" : "Q4_K")),
      "blk.{i}.ffn_gate.weight": layers(24, () => "Q4_0"),
    },
  },
  {
    preset: "llama-3.2-1b", noMtp: true, recipe: "Q2_K",
    // n_gqa = 32/8 = 4: attn_v Q4_K; ffn_down and attn_output Q3_K; the rest Q2_K; tied token_embd Q6_K
    expect: {
      "token_embd.weight": "Q6_K",
      "blk.{i}.attn_v.weight": layers(16, () => "Q4_K"),
      "blk.{i}.attn_output.weight": layers(16, () => "Q3_K"),
      "blk.{i}.ffn_down.weight": layers(16, () => "Q3_K"),
      "blk.{i}.attn_q.weight": layers(16, () => "Q2_K"),
      "blk.{i}.ffn_up.weight": layers(16, () => "Q2_K"),
    },
  },
  {
    preset: "llama-3.2-1b", noMtp: true, recipe: "Q4_K_S",
    // attn_v Q5_K on the first 4 attn_v tensors; ffn_down Q5_K below n/8 = 2
    expect: {
      "token_embd.weight": "Q6_K",
      "blk.{i}.attn_v.weight": layers(16, (i) => (i < 4 ? "Q5_K" : "Q4_K")),
      "blk.{i}.ffn_down.weight": layers(16, (i) => (i < 2 ? "Q5_K" : "Q4_K")),
    },
  },
  {
    preset: "llama-3.2-1b", noMtp: true, recipe: "Q5_K_M",
    expect: {
      "blk.{i}.attn_v.weight": layers(16, (i) => (moreBits[16].includes(i) ? "Q6_K" : "Q5_K")),
      "blk.{i}.ffn_down.weight": layers(16, (i) => (moreBits[16].includes(i) ? "Q6_K" : "Q5_K")),
      "blk.{i}.attn_k.weight": layers(16, () => "Q5_K"),
    },
  },
  {
    preset: "mimo-7b", noMtp: false, recipe: "Q4_K_M",
    // the "mimo" file: 36 main layers + 1 MTP layer (blk.36, with its nextn tensors), untied output
    expect: {
      "token_embd.weight": "Q4_K",
      "output.weight": "Q6_K",
      "blk.{i}.attn_v.weight": layers(37, (i) => (moreBits[37].includes(i) ? "Q6_K" : "Q4_K")),
      "blk.{i}.ffn_down.weight": layers(37, (i) => (moreBits[37].includes(i) ? "Q6_K" : "Q4_K")),
      "blk.{i}.nextn.eh_proj.weight": layers(37, (i) => (i === 36 ? "Q4_K" : "")),
      "blk.{i}.nextn.enorm.weight": layers(37, (i) => (i === 36 ? "F32" : "")),
    },
  },
  {
    preset: "mimo-7b", noMtp: false, recipe: "Q3_K_M",
    // ffn_down: Q5_K below 37/16 = 2, else Q4_K; attn_v Q5_K for the first two; attn_output Q4_K
    expect: {
      "blk.{i}.ffn_down.weight": layers(37, (i) => (i < 2 ? "Q5_K" : "Q4_K")),
      "blk.{i}.attn_v.weight": layers(37, (i) => (i < 2 ? "Q5_K" : "Q4_K")),
      "blk.{i}.attn_output.weight": layers(37, () => "Q4_K"),
      "blk.{i}.attn_q.weight": layers(37, () => "Q3_K"),
    },
  },
];

test("recipe choices match a table derived by hand from llama.cpp's rules (qwen2-0.5b, llama-3.2-1b, MiMo-7B with its MTP layer)", () => {
  for (const row of handTable) {
    const { tensors, model } = presetTensors(row.preset, row.noMtp);
    const choices = chooseTensorTypes(tensors, findRecipe(row.recipe)!, model);
    const got = byRole(tensors, choices.map((c) => c.type));
    for (const [role, want] of Object.entries(row.expect)) {
      // roles present only in some layers (the MTP tensors) leave the others' entries empty
      assert.equal(got[role], want, `${row.preset} ${row.recipe} ${role}`);
    }
  }
});

test("--pure, --tensor-type and the output/embedding types: overrides win, then the row-length fallback", () => {
  const { tensors, model } = presetTensors("qwen2-0.5b");
  const q4km = findRecipe("Q4_K_M")!;
  const pure = chooseTensorTypes(tensors, q4km, model, { pure: true });
  const named = (name: string, cs = pure) => ggmlTypeName(cs[tensors.findIndex((t) => t.name === name)]!.type);
  assert.equal(named("blk.0.attn_v.weight"), "Q5_0"); // Q4_K, falling back (896 columns)
  assert.equal(named("blk.0.ffn_down.weight"), "Q4_K");
  assert.equal(named("blk.0.attn_norm.weight"), "F32");
  const ov = chooseTensorTypes(tensors, q4km, model, { overrides: [parseTypeOverride("ffn_down=Q8_0"), parseTypeOverride("blk\\.3\\.attn_q=Q6_K")] });
  assert.equal(named("blk.7.ffn_down.weight", ov), "Q8_0");
  assert.equal(named("blk.3.attn_q.weight", ov), "Q8_0"); // Q6_K, falling back
  assert.equal(named("blk.4.attn_q.weight", ov), "Q5_0");
  assert.throws(() => parseTypeOverride("attn_v"), /expected PATTERN=TYPE/);
  assert.throws(() => parseTypeOverride("attn_v=IQ2_XS"), /IQ2_XS is not a tensor type mimo computes/);
  assert.throws(() => parseTypeOverride("attn_v(=Q8_0"), /not a valid regular expression/);
});

const imatrixPromise = parseImatrix(readFileSync(IMATRIX_FIXTURE), IMATRIX_FIXTURE);

for (const c of GOLDEN_CASES) {
  test(`stories260K ${c.id}: the same tensor types and bytes as llama.cpp's llama_model_quantize`, async () => {
    const out = join(dir, `${c.id.replace(/[^\w]+/g, "_")}.gguf`);
    await quantizeModel(STORIES_GGUF, out, {
      type: c.recipe,
      pure: c.pure,
      tensorTypes: c.tensorTypes,
      imatrix: c.imatrix ? await imatrixPromise : undefined,
      threads: 2,
    });
    const f = await openGGUFFile(out);
    try {
      const got: Record<string, string> = {};
      for (const t of f.tensors) got[t.name] = `${ggmlTypeName(t.type)} ${digest(await f.readTensorBytes(t.name))}`;
      assert.deepEqual(got, golden.stories260K[c.id]);
      assert.equal(f.metadata.get("general.file_type"), findRecipe(c.recipe)!.ftype);
      assert.equal(f.metadata.get("general.quantization_version"), 2);
      if (c.imatrix) assert.equal(f.metadata.get("quantize.imatrix.file"), IMATRIX_FIXTURE);
    } finally {
      await f.close();
    }
  });
}

const syntheticPath = join(dir, "synthetic-f32.gguf");
const syntheticReady = writeGGUFFile(syntheticPath, syntheticModel(SYNTHETIC_SPEC));

for (const c of SYNTHETIC_CASES) {
  test(`synthetic 256-column model ${c.id}: the K-quant searches write llama.cpp's bytes`, async () => {
    await syntheticReady;
    const out = join(dir, `synthetic-${c.id.replace(/[^\w]+/g, "_")}.gguf`);
    await quantizeModel(syntheticPath, out, { type: c.recipe, imatrix: c.imatrix ? syntheticImportance() : undefined, threads: 2 });
    const f = await openGGUFFile(out);
    try {
      const got: Record<string, string> = {};
      for (const t of f.tensors) got[t.name] = `${ggmlTypeName(t.type)} ${digest(await f.readTensorBytes(t.name))}`;
      assert.deepEqual(got, golden.synthetic[c.id]);
    } finally {
      await f.close();
    }
  });
}
