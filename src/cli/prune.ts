// `mimo prune`: structured pruning (layers, FFN channels, KV groups) with a report of importances.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { InvalidArgumentError, type Command } from "commander";
import { ModelFileError } from "../format/errors.ts";
import { loadModel } from "../index.ts";
import {
  collectActivationStats,
  layerImportances,
  needsCalibration,
  planPrune,
  writePrunedModel,
  type ChannelMetric,
  type LayerImportance,
} from "../tools/prune.ts";
import { progressLine } from "./progress.ts";
import { positive } from "./options.ts";

interface PruneCliOptions {
  text?: string;
  removeLayers?: number;
  layers?: number[];
  ffnRatio?: number;
  ffnAlign?: number;
  ffnMetric: string;
  kvGroups?: number;
  report?: boolean;
  ctxSize?: number;
  chunks?: number;
  threads?: number;
  force?: boolean;
  quiet?: boolean;
}

function layerList(v: string): number[] {
  return v.split(",").map((s) => {
    const n = Number(s.trim());
    if (s.trim() === "" || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`--layers takes layer numbers separated by commas (e.g. 3,5), got "${v}"`);
    return n;
  });
}
function ratio(v: string): number {
  const n = Number(v);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`--ffn-ratio is the fraction of FFN channels to remove, at least 0 and below 1 (e.g. 0.25), got "${v}"`);
  return n;
}

function fmt(x: number): string {
  return Number.isNaN(x) ? "-" : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toFixed(4);
}

function quantiles(a: Float64Array): [number, number, number] {
  const s = Float64Array.from(a).sort();
  return [s[0]!, s[s.length >> 1]!, s[s.length - 1]!];
}

/** The per-layer table `--report` prints. */
export function formatReport(imp: readonly LayerImportance[], metric: ChannelMetric): string {
  const lines = [
    `layer  block influence  ffn channel ${metric} (min / median / max)        kv group ${metric}`,
  ];
  for (const x of imp) {
    const [lo, mid, hi] = quantiles(x.ffn);
    const tag = Number.isNaN(x.blockInfluence) ? " (MTP)" : "";
    lines.push(
      `${String(x.layer).padStart(5)}  ${fmt(x.blockInfluence).padStart(15)}  ${`${fmt(lo)} / ${fmt(mid)} / ${fmt(hi)}`.padEnd(40)}  ${[...x.kvGroups].map(fmt).join("  ")}${tag}`,
    );
  }
  const order = imp.filter((x) => !Number.isNaN(x.blockInfluence)).sort((a, b) => a.blockInfluence - b.blockInfluence).map((x) => x.layer);
  lines.push(`layers by block influence, lowest first (removed first by --remove-layers): ${order.join(", ")}`);
  return lines.join("\n") + "\n";
}

export async function pruneCommand(input: string, output: string | undefined, o: PruneCliOptions): Promise<void> {
  const metric = o.ffnMetric as ChannelMetric;
  if (metric !== "wanda" && metric !== "flap") throw new RangeError(`--ffn-metric must be wanda or flap, got "${o.ffnMetric}"`);
  const request = { removeLayers: o.removeLayers, layers: o.layers, ffnRatio: o.ffnRatio, ffnAlign: o.ffnAlign, kvGroups: o.kvGroups };
  const wantsStats = o.report || needsCalibration(request);
  if (!output && !o.report) throw new RangeError("give an output file, or --report to print the importances only");
  if (wantsStats && !o.text) throw new RangeError("importance scores need calibration text: --text FILE");
  if (output && !needsCalibration(request) && !(o.layers && o.layers.length > 0)) {
    throw new RangeError("nothing to prune: give --remove-layers N, --layers LIST, --ffn-ratio R or --kv-groups N");
  }

  // refuse an existing output before the calibration work, not after
  if (output && !o.force && existsSync(output)) throw new ModelFileError(output, "already exists; refusing to overwrite it (pass --force / overwrite: true to replace it)");
  const model = await loadModel(input, { threads: o.threads, contextSize: o.ctxSize });
  let importances: LayerImportance[] | undefined;
  const config = model.config;
  try {
    if (wantsStats) {
      let text: string;
      try {
        text = new TextDecoder().decode(await readFile(o.text!));
      } catch (e) {
        throw new ModelFileError(o.text!, (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file (--text)" : (e as Error).message);
      }
      const bar = progressLine("mimo prune", { enabled: !o.quiet });
      const stats = collectActivationStats(model, text, { chunkSize: o.ctxSize ?? Math.min(512, model.contextSize), maxChunks: o.chunks, onChunk: (d, t) => bar.update(d, t, "calibration chunks") });
      bar.finish();
      importances = await layerImportances(model.file, config, stats, metric);
      if (o.report) process.stdout.write(`${stats.chunks} chunks of ${stats.chunkSize} tokens (${stats.tokens} tokens) from ${o.text}\n` + formatReport(importances, metric));
    }
  } finally {
    await model.dispose();
  }
  if (!output) return;
  const plan = planPrune(config, request, importances);
  if (plan.kvKeep && (config.arch.name === "qwen2" || config.arch.name === "mimo")) {
    process.stderr.write(
      `mimo prune: warning: llama.cpp's ${config.arch.name === "mimo" ? "qwen2 (MiMo's main path)" : "qwen2"} loader needs head_count x key_length = embedding_length, so llama.cpp will not load a ${config.arch.name} file with KV groups removed (mimo does)\n`,
    );
  }
  const r = await writePrunedModel(input, output, config, plan, { overwrite: o.force });
  if (r.requantized.length > 0) {
    process.stderr.write(`mimo prune: warning: columns were cut from quantized tensors and quantized again (prune the F32/F16 model, then quantize, to avoid this): ${r.requantized.join(", ")}\n`);
  }
  process.stderr.write(
    `wrote ${output}: ${config.nLayers} -> ${r.layers} layers${plan.removedLayers.length ? ` (removed ${plan.removedLayers.join(", ")})` : ""}, ` +
      `ffn ${config.ffnDim} -> ${r.ffnDim}, heads ${config.nHeads}/${config.nKvHeads} -> ${r.nHeads}/${r.nKvHeads}; ` +
      `${(r.inputBytes / 1e6).toFixed(2)} -> ${(r.outputBytes / 1e6).toFixed(2)} MB of tensors (${((100 * r.outputBytes) / r.inputBytes).toFixed(0)}%)\n`,
  );
}

export function registerPruneCommand(program: Command): void {
  program
    .command("prune")
    .description("structured pruning: remove layers (ShortGPT block influence), FFN channels (Wanda / FLAP) or KV groups; a smaller GGUF")
    .argument("<input>", "GGUF model (best unquantized: quantize after pruning)")
    .argument("[output]", "GGUF file to write (omit with --report to only print importances)")
    .option("--text <file>", "calibration text (UTF-8) for the importance scores")
    .option("--remove-layers <n>", "remove the n layers of lowest block influence", positive("--remove-layers"))
    .option("--layers <list>", "remove exactly these layers (e.g. 3,5)", layerList)
    .option("--ffn-ratio <r>", "remove this fraction of the FFN channels in every layer (e.g. 0.25)", ratio)
    .option("--ffn-align <n>", "kept FFN width is a multiple of n (default 256 if the width is, else 32)", positive("--ffn-align"))
    .option("--ffn-metric <name>", "channel and KV-group importance: wanda (|W| x ||X||) or flap (fluctuation)", "wanda")
    .option("--kv-groups <n>", "remove n KV groups (with their query heads) from every layer", positive("--kv-groups"))
    .option("--report", "print per-layer importances (block influence, channel and KV-group scores)")
    .option("-c, --ctx-size <n>", "tokens per calibration chunk (default min(512, the model's context))", positive("--ctx-size"))
    .option("--chunks <n>", "at most this many calibration chunks", positive("--chunks"))
    .option("-t, --threads <n>", "compute threads (default: the number of cores)", positive("--threads"))
    .option("-f, --force", "overwrite the output file if it exists")
    .option("-q, --quiet", "no progress line")
    .action(pruneCommand);
}
