import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { ModelFileError } from "../format/errors.ts";
import { loadModel } from "../index.ts";
import { NodeFileSink, NodeFileSource } from "../platform/node-file.ts";
import { DEFAULT_PERPLEXITY_CONTEXT, klDivergence, perplexity, readBaseLogitsHeader, type ChunkProgress, type Estimate, type KlDivergenceResult } from "../tools/perplexity.ts";
import { int } from "./options.ts";

interface PerplexityCliOptions {
  text?: string;
  ctxSize: number;
  chunks?: number;
  klDivergenceBase?: string;
  klDivergence?: boolean;
  force?: boolean;
  threads?: number;
  backend: string;
  json?: boolean;
}

export function registerPerplexityCommand(program: Command): void {
  program
    .command("perplexity")
    .description(
      "perplexity of a model over a text, by llama-perplexity's method (chunks of -c tokens, the second half of each scored); " +
        "with --kl-divergence-base, save the model's log-probabilities, then compare another model against them with --kl-divergence",
    )
    .argument("<model>", "GGUF model file")
    .option("-f, --text <file>", "UTF-8 text to evaluate (needs at least 2 x ctx-size tokens)")
    .option("-c, --ctx-size <n>", "tokens per chunk", int("--ctx-size"), DEFAULT_PERPLEXITY_CONTEXT)
    .option("--chunks <n>", "evaluate at most this many chunks", int("--chunks"))
    .option("--kl-divergence-base <file>", "base log-probabilities file: written when evaluating --text, read with --kl-divergence (llama-perplexity's format)")
    .option("--kl-divergence", "compare the model against the --kl-divergence-base file (its tokens are the text)")
    .option("--force", "overwrite an existing --kl-divergence-base file")
    .option("-t, --threads <n>", "compute threads (default: chosen for the model's size, at most the number of cores)", int("--threads"))
    .option("--backend <name>", "wasm (SIMD kernels on threads) or reference (plain TypeScript)", "wasm")
    .option("--json", "print the result as JSON on stdout")
    .action(perplexityCommand);
}

const pct = (e: Estimate) => `${(100 * e.value).toFixed(3)} ± ${(100 * e.uncertainty).toFixed(3)} %`;
const est = (e: Estimate, digits = 4) => `${e.value.toFixed(digits)} ± ${e.uncertainty.toFixed(digits)}`;

function progress(quiet: boolean): (p: ChunkProgress) => void {
  return (p) => {
    if (!quiet) process.stderr.write(`[${p.chunk}/${p.chunks}] ${p.perplexity.toFixed(4)}${p.chunk === p.chunks ? "\n" : ","}`);
  };
}

export async function perplexityCommand(modelPath: string, o: PerplexityCliOptions): Promise<void> {
  if (o.backend !== "wasm" && o.backend !== "reference") throw new Error(`--backend must be "wasm" or "reference", got "${o.backend}"`);
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  try {
    if (o.klDivergence) {
      if (!o.klDivergenceBase) throw new Error("--kl-divergence needs --kl-divergence-base <file> (saved by an earlier run with --text)");
      const base = await NodeFileSource.open(o.klDivergenceBase);
      try {
        const header = await readBaseLogitsHeader(base);
        if (o.text) process.stderr.write(`note: the tokens come from ${o.klDivergenceBase}; --text is not read\n`);
        const model = await loadModel(modelPath, { contextSize: header.contextSize, threads: o.threads, backend: o.backend });
        try {
          const r = await klDivergence(model, base, { chunks: o.chunks, onChunk: progress(!!o.json), signal: controller.signal });
          printKl(r, !!o.json);
        } finally {
          await model.dispose();
        }
      } finally {
        await base.close();
      }
      return;
    }
    if (!o.text) throw new Error("--text <file> is required (or --kl-divergence with a --kl-divergence-base file)");
    let text: string;
    try {
      text = await readFile(o.text, "utf8");
    } catch (e) {
      throw new ModelFileError(o.text, (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message);
    }
    const model = await loadModel(modelPath, { contextSize: o.ctxSize, threads: o.threads, backend: o.backend });
    let sink: NodeFileSink | undefined;
    try {
      if (o.ctxSize > model.config.contextLength) {
        process.stderr.write(`warning: the model was trained with a context of ${model.config.contextLength} tokens; chunks of ${o.ctxSize} go beyond it\n`);
      }
      sink = o.klDivergenceBase ? await NodeFileSink.create(o.klDivergenceBase, o.force) : undefined;
      const r = await perplexity(model, text, { contextSize: o.ctxSize, chunks: o.chunks, saveLogits: sink, onChunk: progress(!!o.json), signal: controller.signal });
      if (o.json) {
        const { nll: _nll, ...rest } = r;
        process.stdout.write(JSON.stringify({ model: modelPath, text: o.text, ...rest }, null, 2) + "\n");
      } else {
        process.stdout.write(
          `${r.chunks} chunks of ${r.contextSize} tokens (${r.scoredTokens} scored of ${r.textTokens} in the text)\n` +
            `Final estimate: PPL = ${r.perplexity.value.toFixed(4)} +/- ${r.perplexity.uncertainty.toFixed(5)}\n`,
        );
      }
      if (sink) process.stderr.write(`saved base log-probabilities to ${o.klDivergenceBase}\n`);
    } catch (e) {
      await sink?.abort();
      throw e;
    } finally {
      await model.dispose();
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
}

function printKl(r: KlDivergenceResult, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(r, null, 2) + "\n");
    return;
  }
  const p = r.klPercentiles;
  process.stdout.write(
    [
      `${r.chunks} chunks of ${r.contextSize} tokens, ${r.scoredTokens} scored`,
      "====== Perplexity statistics ======",
      `Mean PPL(Q)                   : ${est(r.perplexity, 6)}`,
      `Mean PPL(base)                : ${est(r.basePerplexity, 6)}`,
      `Mean ln(PPL(Q)/PPL(base))     : ${est(r.logPerplexityRatio, 6)}`,
      `Mean PPL(Q)/PPL(base)         : ${est(r.perplexityRatio, 6)}`,
      "",
      "====== KL divergence statistics ======",
      `Mean    KLD: ${est(r.klDivergence, 6)}`,
      ...(["max", "99.9", "99", "95", "90", "median", "10", "5", "1", "0.1", "min"] as const).map((k) => `${(k === "max" ? "Maximum" : k === "min" ? "Minimum" : k === "median" ? "Median " : `${k}%`).padEnd(7)} KLD: ${p[k].toFixed(6)}`),
      "",
      "====== Token probability statistics ======",
      `Mean    Δp: ${pct(r.meanProbabilityDelta)}`,
      `RMS Δp    : ${pct(r.rmsProbabilityDelta)}`,
      `Same top p: ${pct(r.sameTopToken)}`,
      "",
    ].join("\n"),
  );
}
