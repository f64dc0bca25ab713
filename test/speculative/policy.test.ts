// The adaptive draft length: long drafts when acceptance is high and passes are cheap, none when
// acceptance is low (then one probe draft every 16 steps), which bounds what speculation can cost
// a generation whose drafts keep failing. Deterministic: costs are fed in, not timed (in a real
// run the driver times its passes; `npm run bench:spec` measures the result).
import { test } from "node:test";
import assert from "node:assert/strict";
import { CostCurve, DraftPolicy } from "../../src/speculative/policy.ts";

/** Runs the policy for `steps` steps against passes costing cost(n) ms, drafts accepted per token with probability p (seeded). */
function simulate(p: number, cost: (n: number) => number, steps = 200, draftMax = 8): number[] {
  const costs = new CostCurve();
  const policy = new DraftPolicy({ draftMin: 1, draftMax, adaptive: true }, costs);
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
  const ks: number[] = [];
  for (let i = 0; i < steps; i++) {
    const k = policy.choose(100);
    ks.push(k);
    costs.record(1 + k, cost(1 + k));
    if (k > 0) {
      let j = 0;
      while (j < k && rand() < p) j++;
      policy.update(k, j);
    }
  }
  return ks;
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

test("high acceptance and cheap passes: the longest drafts", () => {
  const ks = simulate(0.95, (n) => 10 + 0.5 * n);
  assert.ok(mean(ks.slice(50)) > 7, `mean draft length ${mean(ks.slice(50))}`);
});

test("a steep cost curve (1 + k tokens cost like 1 + 0.6k steps) keeps drafts short at acceptance 0.8", () => {
  const ks = simulate(0.8, (n) => 10 * (1 + 0.6 * (n - 1)));
  const m = mean(ks.slice(50));
  assert.ok(m >= 0.5 && m <= 3, `mean draft length ${m}`);
});

test("low acceptance: no drafts but one probe every 16 steps", () => {
  const ks = simulate(0.05, (n) => 10 * (1 + 0.6 * (n - 1)), 320);
  const drafted = ks.slice(20).filter((k) => k > 0);
  assert.ok(drafted.length <= Math.ceil(300 / DraftPolicy.PROBE_EVERY) + 1, `${drafted.length} drafted steps of 300`);
  assert.ok(drafted.every((k) => k === 1), "probes are one token long");
});
