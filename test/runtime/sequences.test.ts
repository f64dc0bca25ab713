// Sequences and batched forward passes: rollback, batching, forks and the pool, on every backend
// and thread count. "Bit-identical" is checked on the raw float bits, not with a tolerance.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel, defaultModelPath, type Model, type Sequence } from "../../src/index.ts";
import { KvPoolExhaustedError } from "../../src/runtime/sequence.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-seq-");

/** A small GQA model (4 heads, 2 KV heads) in a quantized type, written once per type. */
const files = new Map<string, string>();
async function synthetic(typeName: "Q4_0" | "Q8_0" | "Q4_K" | "F16"): Promise<string> {
  const have = files.get(typeName);
  if (have) return have;
  const path = join(dir, `qwen2-${typeName}.gguf`);
  await writeGGUFFile(path, syntheticModel({
    arch: "qwen2", dim: 256, ffnDim: 512, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 512, contextLength: 512,
    weightType: GGMLType[typeName], seed: 3, matrixGain: 0.5, outputGain: 4,
  }));
  files.set(typeName, path);
  return path;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
  }
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

function tokensFrom(seed: number, n: number, vocab: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 1 + (s % (vocab - 1));
  });
}

const setups: { name: string; file: () => Promise<string>; backend: "wasm" | "reference"; threads?: number }[] = [
  { name: "stories260K (F32), reference", file: async () => defaultModelPath(), backend: "reference" },
  ...[1, 2, 3].map((threads) => ({ name: `stories260K (F32), wasm x${threads}`, file: async () => defaultModelPath(), backend: "wasm" as const, threads })),
  ...(["Q4_0", "Q8_0", "Q4_K", "F16"] as const).flatMap((t) =>
    [1, 2, 3].map((threads) => ({ name: `qwen2 GQA ${t}, wasm x${threads}`, file: () => synthetic(t), backend: "wasm" as const, threads })),
  ),
  { name: "qwen2 GQA Q4_0, reference", file: () => synthetic("Q4_0"), backend: "reference" },
];

async function withModel<T>(s: (typeof setups)[number], parallel: number, f: (m: Model) => Promise<T> | T): Promise<T> {
  const m = await loadModel(await s.file(), { backend: s.backend, threads: s.threads, parallel, contextSize: 256 });
  try {
    return await f(m);
  } finally {
    await m.dispose();
  }
}

for (const s of setups) {
  test(`batching: 4 sequences in one forward give each one's logits and hidden states bit for bit as alone (${s.name})`, async () => {
    await withModel(s, 8, (m) => {
      const V = m.config.vocabSize;
      // Different prompts, prefixes already cached at different lengths, and different token counts in the batch
      // (one segment longer than a wasm micro-batch, so it is split across two).
      const prefixLens = [0, 5, 17, 2];
      const batchLens = [1, 3, 140, 9];
      const prefixes = prefixLens.map((n, i) => tokensFrom(10 + i, n, V));
      const news = batchLens.map((n, i) => tokensFrom(20 + i, n, V));
      const prepare = (): Sequence[] =>
        prefixes.map((p) => {
          const seq = m.createSequence();
          if (p.length > 0) m.forward([{ sequence: seq, tokens: p, logits: "none" }]);
          return seq;
        });
      const batched = prepare();
      const together = m.forward(batched.map((sequence, i) => ({ sequence, tokens: news[i]!, logits: "all" as const, hidden: i % 2 === 0 ? ("all" as const) : ("last" as const) })));
      const alone = prepare();
      for (let i = 0; i < 4; i++) {
        const [one] = m.forward([{ sequence: alone[i]!, tokens: news[i]!, logits: "all", hidden: i % 2 === 0 ? "all" : "last" }]);
        sameBits(together[i]!.logits, one!.logits, `sequence ${i} logits`);
        sameBits(together[i]!.hidden, one!.hidden, `sequence ${i} hidden`);
        assert.equal(together[i]!.logits.length, batchLens[i]! * V);
        assert.equal(together[i]!.hidden.length, (i % 2 === 0 ? batchLens[i]! : 1) * m.config.dim);
        assert.equal(batched[i]!.length, prefixLens[i]! + batchLens[i]!);
      }
      // A step of 4 decodes (one token each) after that, batched vs alone.
      const next = news.map((t, i) => [t[t.length - 1]! ^ (i + 1)]);
      const dec = m.forward(batched.map((sequence, i) => ({ sequence, tokens: next[i]!, logits: "last" as const })));
      for (let i = 0; i < 4; i++) {
        const [one] = m.forward([{ sequence: alone[i]!, tokens: next[i]!, logits: "last" }]);
        sameBits(dec[i]!.logits, one!.logits, `decode step, sequence ${i}`);
      }
      for (const q of [...batched, ...alone]) q.release();
    });
  });

  test(`rollback: 40 greedy tokens, truncate to 25, generate again: logits equal a fresh run bit for bit (${s.name})`, async () => {
    await withModel(s, 2, (m) => {
      const prompt = tokensFrom(5, 4, m.config.vocabSize);
      const seq = m.createSequence();
      const decode = (first: Float32Array, steps: number): { tokens: number[]; logits: Float32Array[] } => {
        const tokens: number[] = [];
        const logits: Float32Array[] = [];
        let l = first;
        for (let i = 0; i < steps; i++) {
          const t = argmax(l);
          tokens.push(t);
          l = m.forward([{ sequence: seq, tokens: [t], logits: "last" }])[0]!.logits;
          logits.push(l);
        }
        return { tokens, logits };
      };
      const first = m.forward([{ sequence: seq, tokens: prompt, logits: "last" }])[0]!.logits;
      const run1 = decode(first, 40);
      assert.equal(seq.length, 44);
      seq.truncate(4 + 25);
      assert.equal(seq.length, 29);
      const run2 = decode(run1.logits[24]!, 15);
      // A fresh sequence over the same tokens, all at once.
      const fresh = m.createSequence();
      const all = m.forward([{ sequence: fresh, tokens: [...prompt, ...run1.tokens.slice(0, 25), ...run2.tokens], logits: "all" }])[0]!.logits;
      const V = m.config.vocabSize;
      for (let i = 0; i < 15; i++) {
        sameBits(run2.logits[i]!, all.subarray((4 + 25 + i) * V, (4 + 26 + i) * V), `step ${25 + i} after rollback`);
      }
      assert.deepEqual(run2.tokens, run1.tokens.slice(25, 40), "greedy continues the same way after rollback");
      seq.release();
      fresh.release();
    });
  });
}

test("fork: a forked sequence continues exactly as the original, and they diverge independently", async () => {
  for (const backend of ["wasm", "reference"] as const) {
    await withModel({ name: backend, file: async () => defaultModelPath(), backend, threads: 2 }, 3, (m) => {
      const a = m.createSequence();
      m.forward([{ sequence: a, tokens: m.tokenize("Once upon a time"), logits: "none" }]);
      const b = a.fork();
      assert.equal(b.length, a.length);
      assert.deepEqual([...b.tokens], [...a.tokens]);
      const [la, lb] = m.forward([
        { sequence: a, tokens: [306], logits: "last" },
        { sequence: b, tokens: [306], logits: "last" },
      ]);
      sameBits(la!.logits, lb!.logits, "fork vs original");
      // Diverge: a different token in b must not change a.
      m.forward([{ sequence: b, tokens: [400, 401], logits: "none" }]);
      const c = m.createSequence();
      const ref = m.forward([{ sequence: c, tokens: [...a.tokens, 350], logits: "last" }])[0]!.logits;
      const got = m.forward([{ sequence: a, tokens: [350], logits: "last" }])[0]!.logits;
      sameBits(got, ref, "original after the fork diverged");
      for (const q of [a, b, c]) q.release();
    });
  }
});

test("the pool: 1,000 create/release cycles reuse the slots without growing memory; running out is a clear error", async () => {
  await withModel({ name: "wasm", file: async () => defaultModelPath(), backend: "wasm", threads: 2 }, 2, (m) => {
    const toks = m.tokenize("One day");
    const warm = m.createSequence();
    m.forward([{ sequence: warm, tokens: toks, logits: "last" }]);
    warm.release();
    const before = process.memoryUsage();
    for (let i = 0; i < 1000; i++) {
      const q = m.createSequence();
      const r = i % 2 === 0 ? m.createSequence() : q.fork();
      m.forward([{ sequence: q, tokens: toks, logits: "last" }, { sequence: r, tokens: [toks[0]!], logits: "none" }]);
      q.release();
      r.release();
    }
    global.gc?.();
    const after = process.memoryUsage();
    // WebAssembly memories live outside the JS heap: arrayBuffers and rss would show a leak of slots or buffers.
    assert.ok(after.arrayBuffers - before.arrayBuffers < 8 * 1024 * 1024, `arrayBuffers grew by ${after.arrayBuffers - before.arrayBuffers} bytes`);
    assert.ok(after.rss - before.rss < 64 * 1024 * 1024, `rss grew by ${after.rss - before.rss} bytes`);

    const a = m.createSequence();
    const b = m.createSequence();
    assert.throws(() => m.createSequence(), (e: unknown) => e instanceof KvPoolExhaustedError && /all 2 KV cache slots are in use.*parallel/.test((e as Error).message));
    assert.throws(() => a.fork(), KvPoolExhaustedError);
    // Nothing was corrupted by the failed attempts: a still computes what a fresh sequence computes.
    m.forward([{ sequence: a, tokens: toks, logits: "none" }]);
    b.release();
    const c = m.createSequence();
    const ref = m.forward([{ sequence: c, tokens: [...toks, 300], logits: "last" }])[0]!.logits;
    sameBits(m.forward([{ sequence: a, tokens: [300], logits: "last" }])[0]!.logits, ref, "after exhaustion");
    a.release();
    c.release();
  });
});

test("sequences refuse misuse with clear errors", async () => {
  await withModel({ name: "reference", file: async () => defaultModelPath(), backend: "reference" }, 2, (m) => {
    const a = m.createSequence();
    assert.throws(() => a.truncate(1), /truncate\(1\): a sequence of length 0 can be truncated to 0\.\.0/);
    assert.throws(() => m.forward([{ sequence: a, tokens: [9999], logits: "last" }]), /token id 9999 is outside the vocabulary \(0\.\.511\)/);
    assert.throws(() => m.forward([{ sequence: a, tokens: [], logits: "last" }]), /at least one token/);
    assert.throws(() => m.forward([{ sequence: a, tokens: new Array(257).fill(1), logits: "last" }]), /257 positions are needed, but a sequence holds 256/);
    assert.throws(() => m.forward([{ sequence: a, tokens: [1], logits: "every" as never }]), /logits must be "none", "last" or "all"/);
    assert.throws(() => m.forward([{ sequence: a, tokens: [1], logits: "last" }, { sequence: a, tokens: [2], logits: "last" }]), /only once per call/);
    assert.equal(a.length, 0, "a refused forward leaves the sequence unchanged");
    a.release();
    assert.throws(() => m.forward([{ sequence: a, tokens: [1], logits: "last" }]), /released/);
    assert.throws(() => a.fork(), /released/);
    a.release(); // idempotent
  });
});
