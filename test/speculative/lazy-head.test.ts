// Lazy verification logits: the output head run on a pass's hidden states a chunk of rows at a
// time gives the same bits as the pass's own logits rows (Q4_0 and Q8_0 heads, 1 and 2 threads,
// wasm kernels), and verification computes rows only as far as the first rejected draft token
// while deciding exactly as it does from a whole array of rows (greedy and rejection sampling).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../../src/index.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import type { Transformer } from "../../src/model/transformer.ts";
import { LazyLogitRows, verifyDraft, type VerifyingSampler } from "../../src/speculative/verify.ts";
import { createSampler } from "../../src/sampling/chain.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-lazy-head-");

for (const [type, name] of [[GGMLType.Q4_0, "Q4_0"], [GGMLType.Q8_0, "Q8_0"]] as const) {
  for (const threads of [1, 2]) {
    test(`the head on chunks of a pass's hidden rows equals the pass's logits bit for bit (${name}, ${threads} thread${threads > 1 ? "s" : ""})`, async () => {
      const path = join(dir, `qwen2-${name}.gguf`);
      await writeGGUFFile(path, syntheticModel({ arch: "qwen2", dim: 64, ffnDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 1000, contextLength: 256, weightType: type, seed: 7 }), { overwrite: true });
      const model = await loadModel(path, { threads });
      try {
        const t = (model as unknown as { transformer: Transformer }).transformer;
        const pool = t.createKvPool(1, 64);
        const vocab = t.config.vocabSize;
        const dim = t.config.dim;
        const tokens = [1, 17, 250, 999, 3, 42, 500, 8, 77];
        const out = t.forward([{ slot: 0, startPos: 0, tokens, logits: "all", hidden: "all" }], pool)[0]!;
        assert.equal(out.logits.length, tokens.length * vocab);
        for (const chunk of [1, 2, 3, 4]) {
          for (let from = 0; from < tokens.length; from += chunk) {
            const to = Math.min(tokens.length, from + chunk);
            const rows = t.head(out.hidden.subarray(from * dim, to * dim), to - from);
            assert.deepEqual(new Uint32Array(rows.slice().buffer), new Uint32Array(out.logits.slice(from * vocab, to * vocab).buffer), `rows ${from}..${to - 1} (chunk ${chunk})`);
          }
        }
      } finally {
        await model.dispose();
      }
    });
  }
}

/** Deterministic logits rows: row i strongly prefers token prefer[i]. */
function rowsFor(prefer: readonly number[], vocab: number, seed: number): Float32Array {
  const out = new Float32Array(prefer.length * vocab);
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 2;
  }
  prefer.forEach((p, i) => (out[i * vocab + p] = 4));
  return out;
}

test("verification computes logits rows only up to the first rejection, in chunks, with the same decisions", () => {
  const vocab = 50;
  const target = [5, 9, 13, 21, 30, 31, 40, 2, 7];
  for (const chunk of [1, 2, 3]) {
    for (let reject = 0; reject <= 8; reject++) {
      // A draft of 8 that agrees with the target's choices up to position `reject` (8: all kept).
      const draft = target.slice(0, 8).map((t, i) => (i === reject ? (t + 1) % vocab : t));
      const all = rowsFor(target, vocab, 1 + reject);
      const calls: Array<[number, number]> = [];
      const lazy = new LazyLogitRows(9, vocab, (from, to) => {
        calls.push([from, to]);
        return all.slice(from * vocab, to * vocab); // a fresh array: the previous chunk is not kept
      }, chunk);
      const greedy = (): VerifyingSampler => createSampler({ temperature: 0 });
      const e1: number[] = [];
      const e2: number[] = [];
      const r1 = verifyDraft(all, vocab, draft, greedy(), (t) => (e1.push(t), true));
      const r2 = verifyDraft(lazy, vocab, draft, greedy(), (t) => (e2.push(t), true));
      assert.deepEqual(r2, r1);
      assert.deepEqual(e2, e1);
      assert.equal(r1.accepted, reject);
      // Rows 0..reject were read: computed in chunks from 0, nothing past the chunk holding row `reject`.
      const needed = reject + 1;
      const expected = Math.min(9, Math.ceil(needed / chunk) * chunk);
      assert.equal(lazy.computed, expected, `chunk ${chunk}, rejection at ${reject}`);
      calls.forEach(([from, to], j) => assert.deepEqual([from, to], [j * chunk, Math.min(9, (j + 1) * chunk)]));
    }
  }
});

test("rejection sampling from lazy rows draws the same tokens as from the whole array", () => {
  const vocab = 40;
  for (let seed = 1; seed <= 40; seed++) {
    const target = Array.from({ length: 6 }, (_, i) => (seed * 7 + i * 11) % vocab);
    const draft = target.slice(0, 5).map((t, i) => (i === seed % 6 ? (t + 3) % vocab : t));
    const all = rowsFor(target, vocab, seed);
    const lazy = new LazyLogitRows(6, vocab, (from, to) => all.slice(from * vocab, to * vocab));
    const chain = (): VerifyingSampler => createSampler({ temperature: 0.8, seed, topK: 0, topP: 1, minP: 0 });
    const e1: number[] = [];
    const e2: number[] = [];
    const r1 = verifyDraft(all, vocab, draft, chain(), (t) => (e1.push(t), true));
    const r2 = verifyDraft(lazy, vocab, draft, chain(), (t) => (e2.push(t), true));
    assert.deepEqual(r2, r1);
    assert.deepEqual(e2, e1);
    assert.ok(lazy.computed <= Math.min(6, 2 * Math.ceil((r1.emitted) / 2)));
  }
});
