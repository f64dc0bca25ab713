// `mimo quantize` and `mimo imatrix`.
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { ModelFileError } from "../format/errors.ts";
import { loadModel } from "../index.ts";
import { writeGGUFFile } from "../platform/node-file.ts";
import { ggmlTypeName } from "../quant/ggml-type.ts";
import { collectImatrix, imatrixGGUF, parseImatrix } from "../tools/imatrix.ts";
import { RECIPES } from "../tools/quant-recipes.ts";
import { quantizeModel } from "../tools/quantize.ts";
import { progressLine } from "./progress.ts";
import { positive } from "./options.ts";

const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFileError(path, code === "ENOENT" ? `no such file (${what})` : (e as Error).message);
  }
}

function collect(v: string, acc: string[]): string[] {
  return [...acc, v];
}

interface QuantizeCliOptions {
  pure?: boolean;
  tensorType: string[];
  outputTensorType?: string;
  tokenEmbeddingType?: string;
  leaveOutputTensor?: boolean;
  imatrix?: string;
  threads?: number;
  force?: boolean;
  quiet?: boolean;
}

export async function quantizeCommand(input: string, output: string, type: string, o: QuantizeCliOptions): Promise<void> {
  const imatrix = o.imatrix ? await parseImatrix(await readInput(o.imatrix, "--imatrix"), o.imatrix) : undefined;
  const bar = progressLine("mimo quantize", { enabled: !o.quiet, unit: mb });
  const r = await quantizeModel(input, output, {
    type,
    pure: o.pure,
    tensorTypes: o.tensorType,
    outputType: o.outputTensorType,
    tokenEmbeddingType: o.tokenEmbeddingType,
    leaveOutput: o.leaveOutputTensor,
    imatrix,
    threads: o.threads,
    overwrite: o.force,
    onWarning: (m) => process.stderr.write(`mimo quantize: warning: ${m}\n`),
    onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal, p.tensorName),
  });
  bar.finish();
  const byType = new Map<string, number>();
  for (const t of r.tensors) byType.set(ggmlTypeName(t.type), (byType.get(ggmlTypeName(t.type)) ?? 0) + 1);
  const fallbacks = r.tensors.filter((t) => t.fallbackFrom !== undefined).length;
  process.stderr.write(
    `wrote ${output}: ${r.recipe}, ${mb(r.inputBytes)} -> ${mb(r.outputBytes)} of tensors ` +
      `(${((r.outputBytes * 8) / r.parameters).toFixed(2)} bits per weight); tensors: ` +
      [...byType].map(([t, n]) => `${n} ${t}`).join(", ") +
      (fallbacks ? `; ${fallbacks} fell back to another type because their rows are not whole blocks` : "") +
      ` | ${r.threads} threads, ${(r.ms / 1000).toFixed(1)} s\n`,
  );
}

interface ImatrixCliOptions {
  text: string;
  output: string;
  ctxSize: number;
  chunks?: number;
  threads?: number;
  force?: boolean;
  quiet?: boolean;
}

export async function imatrixCommand(modelPath: string, o: ImatrixCliOptions): Promise<void> {
  const text = new TextDecoder().decode(await readInput(o.text, "--text"));
  const model = await loadModel(modelPath, { contextSize: o.ctxSize, threads: o.threads });
  try {
    const bar = progressLine("mimo imatrix", { enabled: !o.quiet, unit: (n) => `${n}` });
    const t0 = performance.now();
    const sums = collectImatrix(model, text, {
      chunkSize: o.ctxSize,
      maxChunks: o.chunks,
      dataset: o.text,
      onChunk: (done, total) => bar.update(done, total, "chunks"),
    });
    bar.finish();
    await writeGGUFFile(o.output, imatrixGGUF(sums), { overwrite: o.force });
    process.stderr.write(
      `wrote ${o.output}: ${sums.sums.size} matrices, ${sums.chunkCount} chunks of ${sums.chunkSize} tokens, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
    );
  } finally {
    await model.dispose();
  }
}

export function registerQuantizeCommands(program: Command): void {
  program
    .command("quantize")
    .description("rewrite a GGUF model with its weights in another type, by llama.cpp's recipes")
    .argument("<input>", "GGUF model (F32, F16, BF16, or already quantized: then with a warning)")
    .argument("<output>", "GGUF file to write")
    .argument("<type>", `one of ${RECIPES.map((r) => r.name).join(", ")}`)
    .option("--pure", "every matrix in the type itself (no mix), except where the row length forces a fallback")
    .option("--tensor-type <pattern=type>", "type for the tensors whose name matches the regular expression (repeatable; first match wins)", collect, [])
    .option("--output-tensor-type <type>", "type of output.weight")
    .option("--token-embedding-type <type>", "type of token_embd.weight")
    .option("--leave-output-tensor", "keep output.weight as it is")
    .option("--imatrix <file>", "importance matrix (mimo imatrix or llama-imatrix; GGUF or .dat)")
    .option("-t, --threads <n>", "threads (default: the number of cores)", positive("--threads"))
    .option("-f, --force", "overwrite the output file if it exists")
    .option("-q, --quiet", "no progress line")
    .action(quantizeCommand);

  program
    .command("imatrix")
    .description("collect an importance matrix (mean squared activations per weight column) from a calibration text")
    .argument("<model>", "GGUF model (ideally unquantized)")
    .requiredOption("--text <file>", "calibration text (UTF-8)")
    .option("-o, --output <file>", "importance matrix to write (llama.cpp's GGUF format)", "imatrix.gguf")
    .option("-c, --ctx-size <n>", "tokens per chunk", positive("--ctx-size"), 512)
    .option("--chunks <n>", "at most this many chunks", positive("--chunks"))
    .option("-t, --threads <n>", "compute threads (default: the number of cores)", positive("--threads"))
    .option("-f, --force", "overwrite the output file if it exists")
    .option("-q, --quiet", "no progress line")
    .action(imatrixCommand);
}
