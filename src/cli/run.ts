import { loadModel, defaultModelPath } from "../index.ts";

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
}

function fmt(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(0);
}

export async function runCommand(prompt: string, o: RunOptions): Promise<void> {
  if (o.backend !== "wasm" && o.backend !== "reference") throw new Error(`--backend must be "wasm" or "reference", got "${o.backend}"`);
  const model = await loadModel(o.model ?? defaultModelPath(), { contextSize: o.ctxSize, threads: o.threads, backend: o.backend });
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
              ` (${s.generationTokensPerSecond.toFixed(1)} tok/s) | finish: ${step.value.finishReason}\n`,
          );
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
