import { statSync } from "node:fs";
import { basename } from "node:path";
import { loadModel, defaultModelPath, type GenerationStats, type SpeculativeOptions } from "../index.ts";
import { exitProcess, inFlagTerms, warn } from "./errors.ts";
import { LOAD_PROGRESS_MIN_BYTES, progressBar } from "./progress.ts";
import { modelPath } from "./pull.ts";
import { grammarFlags } from "./options.ts";

/** Library option -> the flag that sets it, for errors in the user's terms. */
const RUN_FLAGS: Readonly<Record<string, string>> = {
  maxTokens: "-n",
  temperature: "--temp",
  topK: "--top-k",
  topP: "--top-p",
  minP: "--min-p",
  repeatPenalty: "--repeat-penalty",
  penaltyLastN: "--repeat-last-n",
  presencePenalty: "--presence-penalty",
  frequencyPenalty: "--frequency-penalty",
  seed: "-s",
  contextSize: "-c",
  threads: "-t",
  backend: "--backend",
  draftMax: "--draft-max",
  draftMin: "--draft-min",
  draftPMin: "--draft-p-min",
  grammar: "--grammar",
  jsonSchema: "--json-schema",
};

/** Exit status after Ctrl-C, as shells report a process ended by SIGINT (128 + 2). */
export const EXIT_INTERRUPTED = 130;

interface RunOptions {
  model?: string;
  offline?: boolean;
  nPredict: number;
  temp: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  repeatLastN: number;
  presencePenalty: number;
  frequencyPenalty: number;
  seed?: number;
  ctxSize?: number;
  threads?: number;
  backend?: string;
  stop: string[];
  ignoreEos?: boolean;
  special?: boolean;
  quiet?: boolean;
  spec?: string;
  draftMax?: number;
  draftMin?: number;
  draftPMin?: number;
  grammar?: string;
  jsonSchema?: string;
  jumpForward?: boolean;
}

/** `--spec mtp|ngram|draft:FILE` and its bounds -> the generate option (and the draft model file). */
export function parseSpec(o: Pick<RunOptions, "spec" | "draftMax" | "draftMin" | "draftPMin">): { speculative?: SpeculativeOptions; draftModel?: string } {
  if (o.spec === undefined) {
    for (const [flag, v] of [["--draft-max", o.draftMax], ["--draft-min", o.draftMin], ["--draft-p-min", o.draftPMin]] as const) {
      if (v !== undefined) throw new Error(`${flag} needs --spec (mtp, ngram or draft:FILE)`);
    }
    return {};
  }
  const bounds = { draftMax: o.draftMax, draftMin: o.draftMin, draftPMin: o.draftPMin };
  if (o.spec === "mtp" || o.spec === "ngram") return { speculative: { method: o.spec, ...bounds } };
  if (o.spec.startsWith("draft:") && o.spec.length > "draft:".length) return { speculative: { method: "draft", ...bounds }, draftModel: o.spec.slice("draft:".length) };
  throw new Error(`--spec must be mtp, ngram or draft:FILE (a draft model with the same vocabulary), got "${o.spec}"`);
}

function fmt(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(0);
}

/** The timings line on stderr; `extra` goes before the finish reason. */
function statsLine(loadMs: number, s: Pick<GenerationStats, "promptTokens" | "timeToFirstTokenMs" | "generatedTokens" | "generationMs" | "generationTokensPerSecond"> & Partial<GenerationStats>, finish: string, extra = ""): string {
  const prompt = s.promptMs !== undefined && s.promptTokensPerSecond !== undefined
    ? `prompt ${s.promptTokens} tok in ${fmt(s.promptMs)} ms (${s.promptTokensPerSecond.toFixed(1)} tok/s)`
    : `prompt ${s.promptTokens} tok`;
  const first = s.generatedTokens > 0 ? ` | first token ${fmt(s.timeToFirstTokenMs)} ms` : "";
  return `load ${fmt(loadMs)} ms | ${prompt}${first} | generated ${s.generatedTokens} tok in ${fmt(s.generationMs)} ms` +
    ` (${s.generationTokensPerSecond.toFixed(1)} tok/s)${extra} | finish: ${finish}\n`;
}

export async function runCommand(prompt: string, o: RunOptions): Promise<void> {
  if (o.backend !== undefined && o.backend !== "wasm" && o.backend !== "reference") throw new Error(`--backend must be "wasm" or "reference", got "${o.backend}"`);
  const { grammar, jsonSchema } = grammarFlags(o);
  const { speculative, draftModel } = parseSpec(o);
  const path = o.model === undefined ? defaultModelPath() : await modelPath(o.model, o);
  // Ctrl-C: before generation starts there is nothing to keep (exit at once); during generation it
  // stops the model, prints the statistics of what was generated, and exits 130. A second Ctrl-C
  // exits at once.
  const controller = new AbortController();
  let generating = false;
  let interrupted = false;
  const onSigint = () => {
    if (!generating || interrupted) {
      process.stderr.write("\n");
      void exitProcess(EXIT_INTERRUPTED);
    }
    interrupted = true;
    controller.abort(new Error("interrupted"));
  };
  process.on("SIGINT", onSigint);
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    // loadModel names a missing or unreadable file.
  }
  const bar = size >= LOAD_PROGRESS_MIN_BYTES ? progressBar(`loading ${basename(path)}`) : undefined;
  let model;
  try {
    model = await loadModel(path, {
      contextSize: o.ctxSize,
      threads: o.threads,
      backend: o.backend as "wasm" | "reference" | undefined,
      draftModel,
      onProgress: bar && ((p) => bar.update(p.bytesLoaded, p.bytesTotal)),
    });
  } catch (e) {
    process.off("SIGINT", onSigint);
    throw inFlagTerms(e, RUN_FLAGS);
  } finally {
    bar?.done();
  }
  const trained = model.config.contextLength;
  if (o.ctxSize !== undefined && o.ctxSize > trained) {
    warn(`-c ${o.ctxSize} is above the context this model was trained on (${trained} tokens); text past position ${trained} is usually poor`);
  }
  // For the statistics of an interrupted generation (the library reports them at the end only).
  const tCall = performance.now();
  let tFirst = 0;
  let generated = 0;
  try {
    generating = true;
    const it = model.generate(prompt, {
      maxTokens: o.nPredict,
      temperature: o.temp,
      topK: o.topK,
      topP: o.topP,
      minP: o.minP,
      repeatPenalty: o.repeatPenalty,
      penaltyLastN: o.repeatLastN,
      presencePenalty: o.presencePenalty,
      frequencyPenalty: o.frequencyPenalty,
      seed: o.seed,
      stop: o.stop,
      ignoreEos: o.ignoreEos,
      parseSpecial: o.special,
      signal: controller.signal,
      speculative,
      grammar,
      jsonSchema,
      jumpForward: o.jumpForward,
    });
    // Echo the prompt as llama.cpp does, then stream the continuation.
    process.stdout.write(prompt);
    for (;;) {
      let step;
      try {
        step = await it.next();
      } catch (e) {
        if (!interrupted) throw inFlagTerms(e, RUN_FLAGS);
        process.stdout.write("\n");
        if (!o.quiet) {
          const tEnd = performance.now();
          const generationMs = tFirst ? tEnd - tFirst : 0;
          const promptTokens = model.tokenize(prompt, { parseSpecial: o.special }).length;
          process.stderr.write(statsLine(model.loadMs, {
            promptTokens,
            timeToFirstTokenMs: tFirst - tCall,
            generatedTokens: generated,
            generationMs,
            generationTokensPerSecond: generationMs > 0 ? generated / (generationMs / 1000) : 0,
          }, "interrupted (Ctrl-C)"));
        }
        await model.dispose();
        return await exitProcess(EXIT_INTERRUPTED);
      }
      if (step.done) {
        process.stdout.write("\n");
        if (!o.quiet) {
          const s = step.value.stats;
          const forced = grammar !== undefined || jsonSchema !== undefined ? ` | forced ${s.forcedTokens} tok, ${s.forwardPassesSaved} forward passes saved` : "";
          process.stderr.write(statsLine(model.loadMs, s, step.value.finishReason, forced));
          const sp = s.speculative;
          if (sp) {
            process.stderr.write(
              `speculative ${sp.method}: ${sp.proposed} draft tokens in ${sp.draftSteps} steps, ${sp.accepted} accepted (${(100 * sp.acceptanceRate).toFixed(1)}%)` +
                ` | mean accepted length ${sp.meanAcceptedLength.toFixed(2)} | ${sp.tokensPerForward.toFixed(2)} tokens per forward pass\n`,
            );
          }
        }
        break;
      }
      if (step.value.token >= 0) {
        if (generated++ === 0) tFirst = performance.now();
      }
      if (step.value.text) process.stdout.write(step.value.text);
    }
  } finally {
    process.off("SIGINT", onSigint);
    await model.dispose();
  }
}
