// llama.cpp (native, node-llama-cpp 3.21.1's prebuilt CPU binary) behind the bench Engine interface:
// the same definitions as mimo's (src/cli/bench.ts), measured here with performance.now().
import { readFileSync } from "node:fs";
import { getLlama, type Llama, type LlamaContextSequence, type Token } from "node-llama-cpp";
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
  async load(path, threads, contextSize, batchSize, sequences = 1): Promise<LoadedEngine> {
    const l = await llama();
    const model = await l.loadModel({ modelPath: path, gpuLayers: 0 });
    // flashAttention off and an f16 KV cache: llama-bench's defaults on CPU and mimo's. contextSize
    // is per sequence (node-llama-cpp keeps one KV stream per sequence: kv_unified off).
    const ctx = await model.createContext({ contextSize, batchSize, threads, flashAttention: false, sequences });
    let main: LlamaContextSequence | undefined;
    const seqOf = () => (main ??= ctx.getSequence());
    // Sequences of batched decode, kept between calls (a disposed sequence's id comes back to the
    // context asynchronously); the first is the main one.
    const batchSeqs: LlamaContextSequence[] = [];
    // The greedy choice after the last of `tokens` (its logits computed; the others' only when `all`).
    const greedy = { generateNext: { token: true, options: { temperature: 0 } } } as const;
    const evalTokens = (s: LlamaContextSequence, tokens: readonly number[], all: boolean) =>
      s.controlledEvaluate(tokens.map((t, i) => (all || i === tokens.length - 1 ? [t as Token, greedy] : (t as Token))));
    return {
      vocabSize: await ggufVocabSize(path),
      async prefill(tokens) {
        const seq = seqOf();
        await seq.clearHistory();
        const t0 = performance.now();
        await seq.evaluateWithoutGeneratingNewTokens([...tokens] as never);
        return performance.now() - t0;
      },
      async decode(first, n) {
        const seq = seqOf();
        await seq.clearHistory();
        const t0 = performance.now();
        let k = 0;
        // Each yielded token is one decode of the previous one: the first decodes `first`.
        for await (const _ of seq.evaluate([first] as never, { temperature: 0, yieldEogToken: true } as never)) if (++k >= n) break;
        return performance.now() - t0;
      },
      async ttft(tokens) {
        const seq = seqOf();
        await seq.clearHistory();
        const t0 = performance.now();
        for await (const _ of seq.evaluate([...tokens] as never, { temperature: 0, yieldEogToken: true } as never)) break;
        return performance.now() - t0;
      },
      async batchedDecode(prompts, n) {
        if (batchSeqs.length === 0) batchSeqs.push(seqOf());
        while (batchSeqs.length < prompts.length) batchSeqs.push(ctx.getSequence());
        const seqs = batchSeqs.slice(0, prompts.length);
        for (const s of seqs) await s.clearHistory();
        // All sequences' evaluations are queued in the same tick, so node-llama-cpp puts them in
        // one batch: one llama_decode per step (the prompts too, untimed).
        const step = async (inputs: readonly (readonly number[])[]) => {
          const outs = await Promise.all(seqs.map((s, i) => evalTokens(s, inputs[i]!, false)));
          return outs.map((o, i) => o[inputs[i]!.length - 1]?.next.token ?? inputs[i]![0]!);
        };
        let next = await step(prompts);
        const t0 = performance.now();
        for (let k = 0; k < n; k++) next = await step(next.map((t) => [t]));
        return performance.now() - t0;
      },
      async verify(prefix, steps) {
        const seq = seqOf();
        await seq.clearHistory();
        await seq.evaluateWithoutGeneratingNewTokens([...prefix] as Token[]);
        const p = seq.nextTokenIndex;
        const ms: number[] = [];
        for (const tokens of steps) {
          const t0 = performance.now();
          await evalTokens(seq, tokens, true); // every token's logits and greedy choice
          ms.push(performance.now() - t0);
          await seq.eraseContextTokenRanges([{ start: p, end: seq.nextTokenIndex }]);
        }
        return ms;
      },
      async dispose() {
        await ctx.dispose();
        await model.dispose();
      },
    };
  },
};
