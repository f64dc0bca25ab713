// llama.cpp (through node-llama-cpp's prebuilt CPU binary) as the correctness oracle: it runs the
// same GGUF file and we compare its greedy tokens and next-token distributions with ours.
import { getLlama, type Llama, type Token } from "node-llama-cpp";

let llamaPromise: Promise<Llama> | undefined;

function llama(): Promise<Llama> {
  llamaPromise ??= getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false } as never);
  return llamaPromise;
}

const fullDistribution = { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } };

export interface OracleStep {
  /** Natural log of llama.cpp's next-token probabilities (temperature 1, no truncation); -Infinity where 0. */
  readonly logProbs: Float64Array;
  /** llama.cpp's greedy choice. */
  readonly token: number;
  /** log p(top-1) - log p(top-2): how far this step is from a tie. */
  readonly margin: number;
}

/**
 * llama.cpp's greedy continuation of `prompt` for `steps` tokens, one decode call per token (its
 * decode path: with F16 weights its batched prompt path rounds activations differently), with
 * the full next-token distribution at every step. 1 thread, no flash attention, F16 KV cache.
 */
export async function llamaCppGreedyTrace(modelPath: string, prompt: readonly number[], steps: number, contextSize = 256): Promise<OracleStep[]> {
  const l = await llama();
  const model = await l.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({ contextSize, threads: 1, flashAttention: false, batchSize: contextSize });
    try {
      const seq = ctx.getSequence();
      const vocab = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0;
      for (const t of prompt.slice(0, -1)) await seq.controlledEvaluate([t] as never);
      let next = prompt[prompt.length - 1]!;
      const out: OracleStep[] = [];
      for (let s = 0; s < steps; s++) {
        const r = await seq.controlledEvaluate([[next, fullDistribution]] as never);
        const probs = (r[0] as { next?: { probabilities?: Map<number, number> } } | undefined)?.next?.probabilities;
        if (!probs) throw new Error("node-llama-cpp returned no probabilities");
        let size = vocab;
        for (const tok of probs.keys()) size = Math.max(size, tok + 1);
        const logProbs = new Float64Array(size).fill(-Infinity);
        for (const [tok, p] of probs) logProbs[tok] = Math.log(p);
        const [first, second] = [...probs.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
        out.push({ logProbs, token: first![0], margin: Math.log(first![1]) - Math.log(second![1]) });
        next = first![0];
      }
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** llama.cpp's own greedy generation (its sampler, batched prompt), stopping at end-of-generation. */
export async function llamaCppGenerate(modelPath: string, prompt: readonly number[], maxTokens: number, contextSize = 256): Promise<number[]> {
  const l = await llama();
  const model = await l.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({ contextSize, threads: 1, flashAttention: false });
    try {
      const out: number[] = [];
      for await (const t of ctx.getSequence().evaluate([...prompt] as Token[], { temperature: 0 })) {
        out.push(t);
        if (out.length >= maxTokens) break;
      }
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/**
 * llama.cpp's log-probability of each actual next token of `chunks`, scored from position `first`
 * to the chunk's second-to-last (llama-perplexity's window), each chunk from an empty context in
 * one batch. Returns them chunk after chunk.
 */
export async function llamaCppChunkLogProbs(modelPath: string, chunks: readonly (readonly number[])[], first: number): Promise<number[]> {
  const l = await llama();
  const model = await l.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const n = chunks[0]!.length;
    const ctx = await model.createContext({ contextSize: n, threads: 1, flashAttention: false, batchSize: n });
    try {
      const out: number[] = [];
      const seq = ctx.getSequence();
      for (const chunk of chunks) {
        await seq.clearHistory();
        const items = chunk.slice(0, -1).map((t, i) => (i >= first ? [t, fullDistribution] : t));
        const r = await seq.controlledEvaluate(items as never);
        for (let i = first; i < chunk.length - 1; i++) {
          const probs = (r[i] as { next?: { probabilities?: Map<number, number> } } | undefined)?.next?.probabilities;
          if (!probs) throw new Error(`node-llama-cpp returned no probabilities at position ${i}`);
          out.push(Math.log(probs.get(chunk[i + 1]!) ?? 0));
        }
      }
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** llama.cpp's tokenization of each text (no BOS/EOS, special-token text not parsed), as test-tokenizer-0 checks it. */
export async function llamaCppTokenize(modelPath: string, texts: readonly string[]): Promise<number[][]> {
  const l = await llama();
  const model = await l.loadModel({ modelPath, gpuLayers: 0, vocabOnly: true } as never);
  try {
    return texts.map((t) => [...model.tokenize(t, false)].map(Number));
  } finally {
    await model.dispose();
  }
}
