import { readFileSync } from "node:fs";
import { loadModel, defaultModelPath, type SpeculativeOptions } from "../index.ts";

interface RunOptions {
  model?: string;
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
  backend: string;
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

/** A file a flag names, read as text; a clear error naming the flag when it cannot be read. */
function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`${flag} ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
}

function fmt(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(0);
}

export async function runCommand(prompt: string, o: RunOptions): Promise<void> {
  if (o.backend !== "wasm" && o.backend !== "reference") throw new Error(`--backend must be "wasm" or "reference", got "${o.backend}"`);
  if (o.grammar !== undefined && o.jsonSchema !== undefined) throw new Error("give either --grammar or --json-schema, not both");
  const grammar = o.grammar !== undefined ? readFlagFile("--grammar", o.grammar) : undefined;
  let jsonSchema: unknown;
  if (o.jsonSchema !== undefined) {
    const text = readFlagFile("--json-schema", o.jsonSchema);
    try {
      jsonSchema = JSON.parse(text);
    } catch (e) {
      throw new Error(`--json-schema ${o.jsonSchema}: not valid JSON (${(e as Error).message})`);
    }
  }
  const { speculative, draftModel } = parseSpec(o);
  const model = await loadModel(o.model ?? defaultModelPath(), { contextSize: o.ctxSize, threads: o.threads, backend: o.backend, draftModel });
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  try {
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
      const step = await it.next();
      if (step.done) {
        process.stdout.write("\n");
        if (!o.quiet) {
          const s = step.value.stats;
          process.stderr.write(
            `load ${fmt(model.loadMs)} ms | prompt ${s.promptTokens} tok in ${fmt(s.promptMs)} ms (${s.promptTokensPerSecond.toFixed(1)} tok/s)` +
              ` | first token ${fmt(s.timeToFirstTokenMs)} ms | generated ${s.generatedTokens} tok in ${fmt(s.generationMs)} ms` +
              ` (${s.generationTokensPerSecond.toFixed(1)} tok/s)` +
              (grammar !== undefined || jsonSchema !== undefined ? ` | forced ${s.forcedTokens} tok, ${s.forwardPassesSaved} forward passes saved` : "") +
              ` | finish: ${step.value.finishReason}\n`,
          );
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
      if (step.value.text) process.stdout.write(step.value.text);
    }
  } finally {
    process.off("SIGINT", onSigint);
    await model.dispose();
  }
}
