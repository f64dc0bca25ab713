// Sampling stays lossless under speculation: speculative rejection sampling gives every token the
// target chain's own distribution. Chi-square goodness-of-fit at significance 0.001 against the
// exact distribution (computed from the logits), with sample sizes at which the two plausible
// mistakes checked below (drawing the replacement from p itself, or keeping every draft the chain
// could pick) fail the same test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadModel, defaultModelPath, createSampler } from "../../src/index.ts";
import { verifyDraft, type VerifyingSampler } from "../../src/speculative/verify.ts";

/** Upper quantile of chi-square with df degrees of freedom at significance 0.001 (Wilson-Hilferty; z = 3.0902). */
function chiSquareCritical(df: number): number {
  const z = 3.0902;
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

/** Pearson's statistic of observed counts against expected probabilities; cells expecting < 5 are pooled. */
function chiSquare(counts: Map<string, number>, expected: Map<string, number>, n: number): { stat: number; df: number } {
  let stat = 0;
  let cells = 0;
  let pooledObs = 0;
  let pooledExp = 0;
  const keys = new Set([...counts.keys(), ...expected.keys()]);
  for (const k of keys) {
    const e = (expected.get(k) ?? 0) * n;
    const o = counts.get(k) ?? 0;
    if (e < 5) {
      pooledObs += o;
      pooledExp += e;
      continue;
    }
    stat += (o - e) ** 2 / e;
    cells++;
  }
  if (pooledExp > 0 || pooledObs > 0) {
    stat += (pooledObs - pooledExp) ** 2 / Math.max(pooledExp, 1e-9);
    cells++;
  }
  return { stat, df: cells - 1 };
}

function softmax(logits: readonly number[], t: number): number[] {
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp((l - m) / t));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

test("rejection sampling: each verified token is distributed as the target's row (chi-square, 0.001); two wrong rules fail", () => {
  const V = 6;
  // Two rows: the first with the draft (token 2) at p = 0.35, the second the row after it.
  const row0 = [1.0, 0.2, 1.4, 0.9, -0.5, 0.3];
  const row1 = [0.1, 1.1, 0.4, -0.2, 0.8, 0.6];
  const rows = new Float32Array([...row0, ...row1]);
  const draft = [2];
  const p0 = softmax(row0, 1);
  const p1 = softmax(row1, 1);
  // Expected joint of (first, second emitted token): first from row 0; after the draft is kept, the second from row 1.
  const expected = new Map<string, number>();
  for (let a = 0; a < V; a++) {
    if (a === 2) for (let b = 0; b < V; b++) expected.set(`${a},${b}`, p0[a]! * p1[b]!);
    else expected.set(`${a}`, p0[a]!);
  }
  const N = 40000;
  const run = (wrong?: "resample-from-p" | "always-keep"): { stat: number; df: number } => {
    const counts = new Map<string, number>();
    for (let seed = 1; seed <= N; seed++) {
      const chain = createSampler({ temperature: 1, topK: 0, topP: 1, minP: 0, seed });
      const sampler: VerifyingSampler = !wrong
        ? chain
        : {
            sample: (l) => chain.sample(l),
            accept: (t) => chain.accept(t),
            selection: "dist",
            distribution: (l) => chain.distribution(l),
            // Wrong rule 1: always keep the draft. Wrong rule 2: on rejection, draw from p itself (the draft may come back).
            uniform: wrong === "always-keep" ? () => 0 : () => chain.uniform(),
          };
      const emitted: number[] = [];
      if (wrong === "resample-from-p") {
        const c = chain.distribution(rows.subarray(0, V));
        const pd = c.probs[draft[0]!]!;
        if (chain.uniform() < pd) {
          emitted.push(draft[0]!, chain.sample(rows.subarray(V)));
        } else emitted.push(chain.sample(rows.subarray(0, V)));
      } else {
        verifyDraft(rows, V, draft, sampler, (t) => {
          emitted.push(t);
          return true;
        });
      }
      const key = emitted.join(",");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return chiSquare(counts, expected, N);
  };
  const right = run();
  assert.ok(right.stat < chiSquareCritical(right.df), `correct rule: chi2 ${right.stat.toFixed(1)} >= ${chiSquareCritical(right.df).toFixed(1)} (df ${right.df})`);
  for (const wrong of ["resample-from-p", "always-keep"] as const) {
    const r = run(wrong);
    assert.ok(r.stat > chiSquareCritical(r.df), `wrong rule ${wrong} passed: chi2 ${r.stat.toFixed(1)} (df ${r.df})`);
  }
});

test("stories260K end to end: the first 2 sampled tokens with speculation follow plain sampling's exact distribution (chi-square, 0.001)", async () => {
  // The model drafts for itself: each draft is its greedy token, which sampling at temperature 4
  // over the top 4 keeps about half the time, so both acceptance and rejection happen often.
  const model = await loadModel(defaultModelPath(), { threads: 1, draftModel: defaultModelPath() });
  try {
    const sampling = { temperature: 4, topK: 4, topP: 1, minP: 0 } as const;
    const prompt = model.tokenize("Once upon a time, there was a little");
    // Exact joint of the first two tokens: the chain's distribution of the prompt's row, then of each continuation's row.
    const chain = createSampler({ ...sampling, seed: 0 });
    for (const t of prompt) chain.accept(t);
    const first = chain.distribution(model.evaluate(prompt));
    const expected = new Map<string, number>();
    const firstIds = Array.from(first.ids.subarray(0, first.size));
    const firstProbs = Array.from(first.probs.subarray(0, first.size));
    for (let i = 0; i < firstIds.length; i++) {
      const a = firstIds[i]!;
      const c = createSampler({ ...sampling, seed: 0 });
      for (const t of [...prompt, a]) c.accept(t);
      const second = c.distribution(model.evaluate([...prompt, a]));
      for (let j = 0; j < second.size; j++) expected.set(`${a},${second.ids[j]}`, firstProbs[i]! * second.probs[j]!);
    }
    const N = 2500;
    const counts = new Map<string, number>();
    let proposed = 0;
    let accepted = 0;
    for (let seed = 1; seed <= N; seed++) {
      // Three tokens, so that the second is verified against a draft (no draft is made for a last token).
      const r = await model.complete(prompt, { ...sampling, seed, maxTokens: 3, ignoreEos: true, speculative: { method: "draft", draftMax: 2, draftPMin: 0, adaptive: false } });
      const key = r.tokens.slice(0, 2).join(",");
      counts.set(key, (counts.get(key) ?? 0) + 1);
      proposed += r.stats.speculative!.proposed;
      accepted += r.stats.speculative!.accepted;
    }
    assert.ok(accepted > 0.15 * N && accepted < proposed - 0.15 * N, `drafts kept ${accepted} of ${proposed}: both outcomes occur often`);
    const { stat, df } = chiSquare(counts, expected, N);
    assert.ok(df >= 5, `enough cells: ${df + 1}`);
    assert.ok(stat < chiSquareCritical(df), `chi2 ${stat.toFixed(1)} >= ${chiSquareCritical(df).toFixed(1)} (df ${df})`);
  } finally {
    await model.dispose();
  }
});
