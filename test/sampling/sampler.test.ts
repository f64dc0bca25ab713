import { test } from "node:test";
import assert from "node:assert/strict";
import { createSampler, argmax, type SamplerChain, type SamplingOptions } from "../../src/sampling/chain.ts";
import { StopStringMatcher } from "../../src/runtime/stop-strings.ts";

const logits = Float32Array.from([1, 5, 3, 4.9, -2, 0]);

/** Draws n tokens from the same logits, accepting none (so penalties never change). */
function histogram(s: SamplerChain, n: number, l = logits): number[] {
  const h = new Array(l.length).fill(0);
  for (let i = 0; i < n; i++) h[s.sample(l)]++;
  return h;
}

/** A sampler that has accepted `history`, then the token it picks from `l`. */
function pick(o: SamplingOptions, history: number[], l = logits): number {
  const s = createSampler(o);
  for (const t of history) s.accept(t);
  return s.sample(l);
}

test("temperature 0 is greedy", () => {
  const s = createSampler({ temperature: 0 });
  assert.equal(s.sample(logits), 1);
  assert.equal(argmax(logits), 1);
  assert.equal(argmax(Float32Array.from([1, 3, 3, 2])), 1, "the first maximum wins");
  assert.equal(argmax(Float32Array.from([1, 3, 3, 4]), 3), 1, "only the first n count");
});

test("the same seed gives the same samples, another seed other samples", () => {
  const draw = (seed: number) => Array.from({ length: 50 }, ((s) => () => s.sample(logits))(createSampler({ temperature: 1.5, topK: 0, topP: 1, minP: 0, seed })));
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
});

test("top-k 1 always picks the most likely token", () => {
  const h = histogram(createSampler({ temperature: 5, topK: 1, seed: 1 }), 200);
  assert.equal(h[1], 200);
});

test("top-k 2 keeps exactly the two best tokens", () => {
  const h = histogram(createSampler({ temperature: 1, topK: 2, topP: 1, minP: 0, seed: 2 }), 2000);
  assert.ok(h[1] > 0 && h[3] > 0);
  assert.equal(h[1] + h[3], 2000);
});

test("top-p keeps the smallest set reaching p", () => {
  // softmax of [1,5,3,4.9,-2,0]: 5 -> 0.48, 4.9 -> 0.43, 3 -> 0.065 ... top-p 0.9 keeps {1, 3}.
  const h = histogram(createSampler({ temperature: 1, topK: 0, topP: 0.9, minP: 0, seed: 3 }), 2000);
  assert.equal(h[1] + h[3], 2000);
  const h2 = histogram(createSampler({ temperature: 1, topK: 0, topP: 0.95, minP: 0, seed: 3 }), 4000);
  assert.ok(h2[2] > 0, "0.95 needs the third token too");
});

test("min-p drops tokens far below the best one", () => {
  // p(3)/p(best) = e^(3-5) = 0.135: min-p 0.2 drops it, min-p 0.1 keeps it.
  const h = histogram(createSampler({ temperature: 1, topK: 0, topP: 1, minP: 0.2, seed: 4 }), 3000);
  assert.equal(h[1] + h[3], 3000);
  const h2 = histogram(createSampler({ temperature: 1, topK: 0, topP: 1, minP: 0.1, seed: 4 }), 3000);
  assert.ok(h2[2] > 0);
});

test("sampling frequencies follow softmax(logits / temperature)", () => {
  const l = Float32Array.from([0, Math.log(3)]);
  const h = histogram(createSampler({ temperature: 1, topK: 0, topP: 1, minP: 0, seed: 5 }), 20000, l);
  assert.ok(Math.abs(h[1] / 20000 - 0.75) < 0.02, `p(1) = ${h[1] / 20000}`);
  const hot = histogram(createSampler({ temperature: 2, topK: 0, topP: 1, minP: 0, seed: 5 }), 20000, l);
  const expect = Math.sqrt(3) / (1 + Math.sqrt(3));
  assert.ok(Math.abs(hot[1] / 20000 - expect) < 0.02, `p(1) at T=2 = ${hot[1] / 20000}`);
});

test("repetition penalty divides positive and multiplies negative logits of seen tokens", () => {
  const o = { temperature: 0, repeatPenalty: 1.1 };
  // token 1 (5.0) seen: 5/1.1 = 4.545 < 4.9, so token 3 wins.
  assert.equal(pick(o, [1]), 3);
  assert.equal(pick(o, [2]), 1);
  const neg = Float32Array.from([-1, -1.05]);
  assert.equal(pick({ temperature: 0, repeatPenalty: 1.2 }, [0], neg), 1);
});

test("presence and frequency penalties subtract from seen tokens' logits", () => {
  assert.equal(pick({ temperature: 0, presencePenalty: 0.2 }, [1]), 3);
  assert.equal(pick({ temperature: 0, frequencyPenalty: 0.06 }, [1]), 1);
  assert.equal(pick({ temperature: 0, frequencyPenalty: 0.06 }, [1, 1]), 3);
  // Only the last penaltyLastN tokens count: the window slides as tokens are accepted.
  assert.equal(pick({ temperature: 0, presencePenalty: 0.2, penaltyLastN: 1 }, [1, 2]), 1);
  assert.equal(pick({ temperature: 0, presencePenalty: 0.2, penaltyLastN: 2 }, [1, 2]), 3);
  assert.equal(pick({ temperature: 0, frequencyPenalty: 0.06, penaltyLastN: 3 }, [1, 1, 2, 2, 1]), 1, "one 1 left in the window");
  assert.equal(pick({ temperature: 0, frequencyPenalty: 0.06, penaltyLastN: -1 }, [1, 1, 2, 2, 2, 2, 2, 2]), 3, "-1: every token counts");
  assert.equal(pick({ temperature: 0, presencePenalty: 0.2, penaltyLastN: 0 }, [1]), 1, "0: no window");
  // Tokens outside the vocabulary are ignored.
  assert.equal(pick({ temperature: 0, presencePenalty: 0.2 }, [-1, 99]), 1);
});

test("out-of-range options are clear errors", () => {
  assert.throws(() => createSampler({ topP: 1.5 }), /topP must be between 0 and 1, got 1.5/);
  assert.throws(() => createSampler({ minP: -1 }), /minP must be between 0 and 1/);
  assert.throws(() => createSampler({ topK: -1 }), /topK must be between 0 and 9007199254740991, got -1/);
  assert.throws(() => createSampler({ temperature: 101 }), /temperature must be between -Infinity and 100, got 101/);
  assert.throws(() => createSampler({ repeatPenalty: Number.NaN }), /repeatPenalty must be between 0 and 100, got NaN/);
});

test("stop strings are held back across pieces and cut where they start", () => {
  const m = new StopStringMatcher(["\n\n", "END"]);
  assert.deepEqual(m.push("Hello E"), { text: "Hello ", stopped: false });
  assert.deepEqual(m.push("N"), { text: "", stopped: false });
  assert.deepEqual(m.push("Dless"), { text: "", stopped: true });
  const m2 = new StopStringMatcher(["END"]);
  assert.deepEqual(m2.push("tE"), { text: "t", stopped: false });
  assert.deepEqual(m2.push("x"), { text: "Ex", stopped: false });
  assert.equal(m2.flush("E"), "E");
});
