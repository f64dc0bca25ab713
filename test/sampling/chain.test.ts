import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { WasmBackend } from "../../src/backends/wasm/wasm-backend.ts";
import {
  Candidates,
  createSampler,
  DistStage,
  GreedyStage,
  LogitMaskStage,
  MinPStage,
  PenaltiesStage,
  SamplerChain,
  TemperatureStage,
  tokenMaskOf,
  TopKStage,
  TopPStage,
  type SamplerStage,
  type SamplingOptions,
  type TokenMask,
  type TokenMaskProvider,
} from "../../src/sampling/chain.ts";
import { makeLogits, makePrompt, mulberry32, type GoldenCase } from "./fixtures/golden-cases.ts";

const golden = JSON.parse(readFileSync(new URL("./fixtures/sampler-golden.json", import.meta.url), "utf8")) as {
  cases: (GoldenCase & { tokens: number[] })[];
};

/** Random logits; `quantum` > 0 rounds them so many are exactly equal. */
function randomLogits(n: number, seed: number, quantum = 0): Float32Array {
  const r = mulberry32(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = (r() + r() + r() - 1.5) * 4;
    x[i] = quantum > 0 ? Math.round(v / quantum) * quantum : v;
  }
  return x;
}

/** Token ids by a full stable sort: logit descending, ties by lower id. */
function fullSortOrder(x: Float32Array): number[] {
  return Array.from({ length: x.length }, (_, i) => i).sort((a, b) => x[b]! - x[a]! || a - b);
}

/** Samples `steps` tokens, accepting each, from step-dependent logits. */
function run(s: SamplerChain, steps: number, logitsAt: (step: number) => Float32Array, from = 0): number[] {
  const out: number[] = [];
  for (let step = from; step < from + steps; step++) {
    const t = s.sample(logitsAt(step));
    s.accept(t);
    out.push(t);
  }
  return out;
}

test("the chain reproduces every token the pre-chain Sampler (a897d4e) recorded", () => {
  assert.ok(golden.cases.length >= 30);
  let draws = 0;
  for (const c of golden.cases) {
    const s = createSampler(c.options);
    for (const t of makePrompt(c.vocab, c.logitsSeed, c.promptLength)) s.accept(t);
    const got = run(s, c.steps, (step) => makeLogits(c.vocab, c.shape, c.logitsSeed, step));
    assert.deepEqual(got, c.tokens, c.name);
    draws += got.length;
  }
  assert.ok(draws >= 20 * golden.cases.length);
});

test("partial sorting gives exactly a full sort's prefix, with ids, logits and probs moving together", () => {
  for (const [n, quantum] of [[5000, 0], [5000, 0.25], [300, 1], [40, 0]] as const) {
    const x = randomLogits(n, n + quantum * 100, quantum);
    const order = fullSortOrder(x);
    for (const k of [1, 2, 16, 17, 40, 64, 100, n >> 1, n - 1, n, n + 5]) {
      const c = Candidates.from(x);
      c.softmax();
      const probOf = new Map(Array.from(c.probs.subarray(0, n), (p, i) => [i, p]));
      c.sortPrefix(k);
      const m = Math.min(k, n);
      assert.equal(c.sortedPrefix, m);
      assert.deepEqual(Array.from(c.ids.subarray(0, m)), order.slice(0, m), `n ${n} quantum ${quantum} k ${k}`);
      // Nothing lost: the rest is the rest of the vocabulary, and every field moved with its id.
      assert.deepEqual(Array.from(c.ids.subarray(0, n)).sort((a, b) => a - b), order.slice().sort((a, b) => a - b));
      for (let i = 0; i < n; i++) {
        assert.equal(c.logits[i], x[c.ids[i]!]);
        assert.equal(c.probs[i], probOf.get(c.ids[i]!));
      }
    }
    // keepTop straight from the caller's logits (small k: one scan) or after a copy (quickselect).
    for (const k of [1, 7, 40, 128, 129, n >> 2, n - 1].filter((k) => k < n)) {
      for (const copied of [false, true]) {
        const c = Candidates.from(x);
        if (copied) void c.logits;
        c.keepTop(k);
        assert.equal(c.size, k);
        assert.equal(c.sortedPrefix, k);
        assert.deepEqual(Array.from(c.ids.subarray(0, k)), order.slice(0, k), `keepTop n ${n} k ${k} copied ${copied}`);
        assert.deepEqual(Array.from(c.logits.subarray(0, k)), order.slice(0, k).map((id) => x[id]));
      }
    }
    // Walking one position at a time (as top-p and the draw do) ends in the full order.
    const c = Candidates.from(x);
    for (let i = 0; i < n; i++) c.sortUpTo(i);
    assert.deepEqual(Array.from(c.ids.subarray(0, n)), order);
    assert.equal(c.best(), 0);
    assert.equal(Candidates.from(x).best(), order[0], "best() without sorting");
  }
});

test("top-k with block maxima (a backend's blockMax) keeps exactly what the plain scan keeps, NaN and infinities included", async () => {
  // The reference definition of FastBlockMax, and the wasm backend's SIMD kernel on logits in its memory.
  const jsBlocks = (x: Float32Array) => Float32Array.from({ length: x.length >> 4 }, (_, b) => {
    let m = -Infinity;
    for (let i = b * 16; i < b * 16 + 16; i++) if (x[i]! > m) m = x[i]!;
    return m;
  });
  const backend = await WasmBackend.create({ threads: 1 });
  try {
    for (const [n, quantum] of [[32000, 0], [32000, 0.5], [1000, 1], [999, 0], [300, 0]] as const) {
      const x = randomLogits(n, n + 17 + quantum * 10, quantum);
      for (let i = 0; i < n; i += 97) x[i] = NaN;
      for (let i = 5; i < n; i += 211) x[i] = -Infinity;
      x[n >> 1] = Infinity;
      const inWasm = backend.allocate(n);
      inWasm.set(x);
      for (const k of [1, 2, 40, 100, 128]) {
        const plain = new SamplerChain([new TopKStage(k), new GreedyStage()]);
        plain.sample(x);
        const want = Array.from(plain.candidates.ids.subarray(0, k));
        for (const [name, blocks, logits] of [["JavaScript", jsBlocks, x], ["wasm kernel", (v: Float32Array) => backend.blockMax(v), inWasm]] as const) {
          let used = 0;
          const s = new SamplerChain([new TopKStage(k), new GreedyStage()], undefined, (v) => (used++, blocks(v)));
          s.sample(logits);
          assert.deepEqual(Array.from(s.candidates.ids.subarray(0, k)), want, `${name}: n ${n} quantum ${quantum} k ${k}`);
          assert.deepEqual(Array.from(s.candidates.logits.subarray(0, k)), want.map((id) => x[id]!), `${name}: logits`);
          if (k * 8 < n) assert.equal(used, 1, `${name}: the block maxima were used`);
        }
      }
    }
  } finally {
    await backend.dispose();
  }
});

test("the input logits are never written, and the candidates buffer is reused", () => {
  const x = randomLogits(2000, 5);
  const copy = x.slice();
  const s = createSampler({ temperature: 1, topK: 0, topP: 0.9, minP: 0.05, repeatPenalty: 1.5, presencePenalty: 1, frequencyPenalty: 1, seed: 1 }, {
    mask: () => [1, 2, 3, 500, 1999],
  });
  for (const t of [1, 2, 3, 500]) s.accept(t);
  const buf = s.candidates;
  for (let i = 0; i < 20; i++) s.accept(s.sample(x));
  assert.deepEqual(x, copy);
  assert.equal(s.candidates, buf);
  const g = createSampler({ temperature: 0, repeatPenalty: 2 });
  g.accept(fullSortOrder(x)[0]!);
  assert.equal(g.sample(x), fullSortOrder(x)[1], "the penalty moved the choice, in the copy");
  assert.deepEqual(x, copy);
});

/** Sorts every candidate: what a full-sort sampler would see before truncation. */
class SortAllStage implements SamplerStage {
  readonly name = "sort-all";
  apply(c: Candidates): void {
    c.sortPrefix(c.size);
  }
  clone(): SortAllStage {
    return new SortAllStage();
  }
}

test("top-k 0 with top-p / min-p / the draw sorts only a prefix and picks what a full sort picks", () => {
  const variants: SamplingOptions[] = [
    { temperature: 1, topK: 0, topP: 1, minP: 0 },
    { temperature: 0.8, topK: 0, topP: 0.95, minP: 0 },
    { temperature: 1.5, topK: 0, topP: 0.5, minP: 0.05 },
    { temperature: 0.3, topK: 0, topP: 1, minP: 0.3 },
    { temperature: 1, topK: 0, topP: 1, minP: 0.05, repeatPenalty: 1.3, penaltyLastN: 8 },
  ];
  for (const [i, o] of variants.entries()) {
    for (const shape of ["peaked", "flat", "ties"] as const) {
      const partial = createSampler({ ...o, seed: 100 + i });
      const stages = [...partial.stages];
      stages.splice(1, 0, new SortAllStage()); // right after the penalties
      const full = new SamplerChain(stages).clone();
      const logitsAt = (step: number) => makeLogits(8000, shape, 77 + i, step);
      assert.deepEqual(run(partial, 40, logitsAt), run(full, 40, logitsAt), `${JSON.stringify(o)} ${shape}`);
    }
  }
  // A model-like distribution (ten tokens hold ~96% of the mass) with no truncation: the draw
  // stops after the first sorted block instead of sorting 32000 candidates.
  const peaked = randomLogits(32000, 12);
  for (let t = 0; t < 32000; t += 3200) peaked[t] = peaked[t]! + 16;
  const s = createSampler({ temperature: 1, topK: 0, topP: 1, minP: 0, seed: 3 });
  for (let i = 0; i < 10; i++) {
    assert.equal(s.sample(peaked) % 3200, 0);
    assert.equal(s.candidates.size, 32000);
    assert.ok(s.candidates.sortedPrefix <= 64, `sorted ${s.candidates.sortedPrefix} of 32000`);
  }
  // top-p 0.9 and min-p 0.01 cut it to the peak, sorting no more.
  for (const o of [{ topP: 0.9, minP: 0 }, { topP: 1, minP: 0.01 }]) {
    const p = createSampler({ temperature: 1, topK: 0, ...o, seed: 3 });
    p.sample(peaked);
    assert.ok(p.candidates.size <= 10 && p.candidates.sortedPrefix <= 64, JSON.stringify(o));
  }
});

test("a clone taken mid-way draws the same tokens, and advancing one never changes the other", () => {
  for (const o of [
    { temperature: 0.9, topK: 0, topP: 0.95, minP: 0.02, repeatPenalty: 1.3, frequencyPenalty: 0.4, penaltyLastN: 16, seed: 9 },
    { temperature: 0, presencePenalty: 2, penaltyLastN: 4 },
  ] satisfies SamplingOptions[]) {
    const logitsAt = (step: number) => makeLogits(512, "peaked", 11, step);
    const a = createSampler(o);
    run(a, 10, logitsAt);
    const b = a.clone();
    assert.notEqual(b.stages[0], a.stages[0]);
    // b runs ahead 15 tokens (penalty window and RNG move on); a must not notice.
    const fromB = run(b, 15, logitsAt, 10);
    const fromA = run(a, 15, logitsAt, 10);
    assert.deepEqual(fromA, fromB);
    // And the other way round, from a fresh clone of a with a diverging history.
    const c = a.clone();
    const next = run(a.clone(), 5, logitsAt, 25);
    for (const t of [1, 2, 3, 4, 5, 6]) a.accept(t);
    run(a, 7, logitsAt, 25);
    assert.deepEqual(run(c, 5, logitsAt, 25), next);
  }
});

test("each stage's clone is independent", () => {
  const x = Float32Array.from([2, 1.9, 1, 0.5]);
  // Penalties: the window is copied.
  const p = new PenaltiesStage({ lastN: 2, repeat: 1, frequency: 1, presence: 0 });
  p.accept(0);
  const q = p.clone();
  q.accept(1);
  q.accept(1);
  const cp = Candidates.from(x);
  p.apply(cp);
  assert.deepEqual(Array.from(cp.logits.subarray(0, 4)), [1, 1.899999976158142, 1, 0.5]);
  const cq = Candidates.from(x);
  q.apply(cq);
  assert.deepEqual(Array.from(cq.logits.subarray(0, 4)), [2, -0.10000002384185791, 1, 0.5]);
  // Dist: the generator state is copied; reset() goes back to the seed.
  const d = new DistStage(5);
  const flat = new Float32Array(1000);
  const draw = (s: DistStage) => {
    const c = Candidates.from(flat);
    s.apply(c);
    return c.ids[c.selected]!;
  };
  const first = [draw(d), draw(d), draw(d)];
  const e = d.clone();
  const fromD = [draw(d), draw(d), draw(d)];
  assert.deepEqual([draw(e), draw(e), draw(e)], fromD);
  d.reset();
  assert.deepEqual([draw(d), draw(d), draw(d)], first);
  // Stateless stages clone to equal, separate objects.
  for (const s of [new TopKStage(3), new TopPStage(0.5), new MinPStage(0.1), new TemperatureStage(0.7), new GreedyStage()]) {
    const t = s.clone();
    assert.notEqual(t, s);
    assert.deepEqual(t, s);
  }
});

test("reset() empties the penalty window and re-seeds the draw", () => {
  const o = { temperature: 1, topK: 0, topP: 1, minP: 0, repeatPenalty: 2, penaltyLastN: 8, seed: 4 };
  const logitsAt = (step: number) => makeLogits(512, "peaked", 3, step);
  const fresh = run(createSampler(o), 20, logitsAt);
  const s = createSampler(o);
  for (const t of makePrompt(512, 3, 30)) s.accept(t);
  run(s, 20, logitsAt);
  s.reset();
  assert.deepEqual(run(s, 20, logitsAt), fresh);
});

test("the logit mask never lets a masked token be chosen, greedy or sampled", () => {
  const vocab = 3000;
  const mask = tokenMaskOf(Array.from({ length: vocab }, (_, i) => i).filter((i) => i % 3 === 0), vocab);
  const allowed = (t: number) => t % 3 === 0;
  const masks: [string, TokenMask][] = [
    ["bitset", mask],
    ["array", Array.from({ length: vocab }, (_, i) => i).filter(allowed)],
    ["set", new Set(Array.from({ length: vocab }, (_, i) => i).filter(allowed))],
  ];
  const options: SamplingOptions[] = [
    { temperature: 0 },
    { temperature: 0, repeatPenalty: 1.5 },
    { temperature: 2, topK: 0, topP: 1, minP: 0 },
    { temperature: 1, topK: 40, topP: 0.95, minP: 0.05, frequencyPenalty: 0.5 },
    { temperature: 0.5, topK: 0, topP: 0.5, minP: 0.3 },
  ];
  for (const [kind, m] of masks) {
    for (const [i, o] of options.entries()) {
      const s = createSampler({ ...o, seed: i }, { mask: () => m });
      assert.equal(s.stages[0]!.name, "logit-mask", "the mask goes first, where llama.cpp applies its grammar");
      // Logits that favour the masked tokens heavily.
      const tokens = run(s, 60, (step) => {
        const x = randomLogits(vocab, step);
        for (let t = 1; t < vocab; t += 3) x[t] = x[t]! + 8;
        return x;
      });
      assert.ok(tokens.every(allowed), `${kind} ${JSON.stringify(o)}: ${tokens.filter((t) => !allowed(t))}`);
    }
  }
});

test("the mask stage reading only the allowed tokens picks what filtering the copied vocabulary picks", () => {
  const vocab = 5000;
  // A stage before the mask that reads the logits makes the mask filter a copied list (the path a
  // mask after other stages takes); without it the mask reads only the allowed tokens' logits.
  const touch = { name: "touch", apply: (c: Candidates) => void c.logits, clone() { return this; } };
  const masks = [
    tokenMaskOf([7, 8, 9, 10, 11, 4999], vocab),
    tokenMaskOf(Array.from({ length: vocab }, (_, i) => i).filter((i) => i % 7 !== 3), vocab),
    tokenMaskOf(Array.from({ length: vocab }, (_, i) => i), vocab),
    tokenMaskOf([1234], vocab),
  ];
  const options: SamplingOptions[] = [
    { temperature: 0 },
    { temperature: 0, repeatPenalty: 1.3 },
    { temperature: 1, topK: 40, topP: 0.95, minP: 0.05, frequencyPenalty: 0.5, presencePenalty: 0.2 },
    { temperature: 0.7, topK: 0, topP: 1, minP: 0 },
    { temperature: 1.3, topK: 0, topP: 0.6, minP: 0.1, repeatPenalty: 1.1 },
  ];
  for (const [mi, mask] of masks.entries()) {
    for (const [oi, o] of options.entries()) {
      const fast = createSampler({ ...o, seed: oi }, { mask: () => mask });
      const plain = new SamplerChain([touch, ...createSampler({ ...o, seed: oi }, { mask: () => mask }).stages]);
      const logitsAt = (step: number) => randomLogits(vocab, 100 * mi + step);
      assert.deepEqual(run(fast, 40, logitsAt), run(plain, 40, logitsAt), `mask ${mi} ${JSON.stringify(o)}`);
    }
  }
  // Nothing allowed: the same error either way.
  assert.throws(() => createSampler({}, { mask: () => new Uint32Array(4) }).sample(randomLogits(100, 1)), /the logit mask allows none of the 100 candidate tokens/);
});

test("a mask allowing a single token forces it; allowing none is an error", () => {
  const x = randomLogits(1000, 8);
  const worst = fullSortOrder(x)[999]!;
  for (const o of [{ temperature: 0 }, { temperature: 1.5, topK: 1 }, { temperature: 1, topK: 0, topP: 0.1, minP: 0.5 }, {}]) {
    for (const single of [new Uint32Array(32), [worst]] as TokenMask[]) {
      if (single instanceof Uint32Array) single[worst >>> 5] = 1 << (worst & 31);
      const s = createSampler({ ...o, seed: 1 }, { mask: () => single });
      for (let i = 0; i < 10; i++) assert.equal(s.sample(x), worst);
    }
  }
  // Bits past the vocabulary and ids outside it allow nothing.
  assert.throws(() => createSampler({ temperature: 0 }, { mask: () => [5000] }).sample(x), /the logit mask allows none of the 1000 candidate tokens/);
  assert.throws(() => createSampler({}, { mask: () => new Uint32Array(0) }).sample(x), /allows none/);
  // null allows everything.
  assert.equal(createSampler({ temperature: 0 }, { mask: () => null }).sample(x), fullSortOrder(x)[0]);
});

test("a mask provider (a future grammar) sees every accepted token and is cloned with the chain", () => {
  class AlternatingGrammar implements TokenMaskProvider {
    seen: number[] = [];
    allowed(): TokenMask {
      return this.seen.length % 2 === 0 ? [2, 4] : [1, 3];
    }
    accept(t: number): void {
      this.seen.push(t);
    }
    reset(): void {
      this.seen = [];
    }
    clone(): AlternatingGrammar {
      const g = new AlternatingGrammar();
      g.seen = this.seen.slice();
      return g;
    }
  }
  const g = new AlternatingGrammar();
  const s = createSampler({ temperature: 0 }, { mask: g });
  const x = Float32Array.from([9, 1, 2, 3, 4, 5]);
  assert.deepEqual(run(s, 4, () => x), [4, 3, 4, 3]);
  assert.deepEqual(g.seen, [4, 3, 4, 3]);
  const t = s.clone();
  t.accept(4);
  assert.equal(s.sample(x), 4, "the clone's grammar moved, not this one");
  assert.equal(t.sample(x), 3);
  s.reset();
  assert.deepEqual(g.seen, []);
});

test("stages in custom chains: temperature <= 0 keeps the best, a chain must select", () => {
  const x = Float32Array.from([1, 3, 3, 2]);
  const c = Candidates.from(x);
  new TemperatureStage(0).apply(c);
  assert.equal(c.size, 1);
  assert.equal(c.ids[0], 1);
  assert.equal(new SamplerChain([new TemperatureStage(0), new DistStage(1)]).sample(x), 1);
  assert.equal(new SamplerChain([new TopKStage(2), new GreedyStage()]).sample(x), 1);
  assert.throws(() => new SamplerChain([new TopKStage(2)]).sample(x), /selected no token: end it with a greedy or dist stage/);
  assert.throws(() => createSampler().sample(new Float32Array(0)), /empty vocabulary/);
});
