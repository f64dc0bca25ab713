// llama.cpp (native, node-llama-cpp 3.21.1's prebuilt CPU binary) behind the bench Engine interface:
// the same definitions as mimo's (src/cli/bench.ts), measured here with performance.now().
import { readFileSync } from "node:fs";
import { getLlama, type Llama } from "node-llama-cpp";
import { ggufVocabSize, type Engine, type LoadedEngine } from "../../src/cli/bench.ts";

let llamaPromise: Promise<Llama> | undefined;
const llama = () => (llamaPromise ??= getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false } as never));

export const llamaCppEngine: Engine = {
  name: "llama.cpp",
  async describe() {
    const l = await llama();
    const pkg = JSON.parse(readFileSync(new URL("../../node_modules/node-llama-cpp/package.json", import.meta.url), "utf8")) as { version: string };
    return `node-llama-cpp ${pkg.version}, llama.cpp ${l.llamaCppRelease.release}, ${l.buildType} build, ${l.cpuMathCores} math cores`;
  },
  async load(path, threads, contextSize, batchSize): Promise<LoadedEngine> {
    const l = await llama();
    const model = await l.loadModel({ modelPath: path, gpuLayers: 0 });
    // flashAttention off and an f16 KV cache: llama-bench's defaults on CPU and mimo's.
    const ctx = await model.createContext({ contextSize, batchSize, threads, flashAttention: false, sequences: 1 });
    const seq = ctx.getSequence();
    return {
      vocabSize: await ggufVocabSize(path),
      async prefill(tokens) {
        await seq.clearHistory();
        const t0 = performance.now();
        await seq.evaluateWithoutGeneratingNewTokens([...tokens] as never);
        return performance.now() - t0;
      },
      async decode(first, n) {
        await seq.clearHistory();
        const t0 = performance.now();
        let k = 0;
        // Each yielded token is one decode of the previous one: the first decodes `first`.
        for await (const _ of seq.evaluate([first] as never, { temperature: 0, yieldEogToken: true } as never)) if (++k >= n) break;
        return performance.now() - t0;
      },
      async ttft(tokens) {
        await seq.clearHistory();
        const t0 = performance.now();
        for await (const _ of seq.evaluate([...tokens] as never, { temperature: 0, yieldEogToken: true } as never)) break;
        return performance.now() - t0;
      },
      async dispose() {
        await ctx.dispose();
        await model.dispose();
      },
    };
  },
};
