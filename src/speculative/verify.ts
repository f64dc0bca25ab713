// Verification of a draft against the target's logits rows (one forward of [last token, d1..dk]
// gives k + 1 rows). The output is exactly what plain decoding would give:
// - greedy: row i's choice is compared with d(i+1); the longest agreeing prefix is kept, plus the
//   target's own token at the first disagreement (or after the last draft);
// - sampling: speculative rejection sampling (Leviathan et al. 2023; Chen et al. 2023). Drafts are
//   the proposer's best guesses, i.e. one-hot proposals q = δ(d): d is accepted with probability
//   p(d), and on rejection a token is drawn from p with d removed, renormalised, which is
//   max(0, p - q) normalised. Each token is therefore distributed exactly as p. p is the chain's
//   own distribution for that row (penalties, top-k/p, min-p, temperature) after the tokens
//   accepted before it, so the chain's state advances token by token as in plain decoding.

import type { Candidates } from "../sampling/chain.ts";

/** What verification needs of a sampler chain (SamplerChain has it). */
export interface VerifyingSampler {
  sample(logits: Float32Array): number;
  accept(token: number): void;
  readonly selection: "greedy" | "dist" | undefined;
  distribution(logits: Float32Array): Candidates;
  uniform(): number;
}

/** Whether a chain can verify drafts losslessly (it selects greedily or by a seeded draw). */
export function canVerify(s: { readonly selection?: "greedy" | "dist" | undefined }): boolean {
  return s.selection === "greedy" || s.selection === "dist";
}

export interface VerifyResult {
  /** Draft tokens kept (0..k). */
  readonly accepted: number;
  /** Tokens handed to `emit`: the kept drafts plus the target's own token, unless emit stopped earlier. */
  readonly emitted: number;
  /** emit returned false (the request ended). */
  readonly stopped: boolean;
}

/**
 * Verifies `draft` against `rows` (draft.length + 1 rows of `vocab` logits), accepting each kept
 * token into the sampler and passing it to `emit` in order; emit returns false to stop.
 */
export function verifyDraft(rows: Float32Array, vocab: number, draft: readonly number[], sampler: VerifyingSampler, emit: (token: number) => boolean): VerifyResult {
  const k = draft.length;
  const greedy = sampler.selection === "greedy";
  for (let i = 0; i <= k; i++) {
    const row = rows.subarray(i * vocab, (i + 1) * vocab);
    let token: number;
    let keep = false;
    if (i === k) token = sampler.sample(row);
    else if (greedy) {
      token = sampler.sample(row);
      keep = token === draft[i];
    } else {
      const d = draft[i]!;
      const c = sampler.distribution(row);
      const pd = probabilityOf(c, d);
      if (sampler.uniform() < pd) {
        token = d;
        keep = true;
      } else token = drawExcluding(c, d, pd, sampler.uniform());
    }
    sampler.accept(token);
    if (!emit(token)) return { accepted: keep ? i + 1 : i, emitted: i + 1, stopped: true };
    if (!keep) return { accepted: i, emitted: i + 1, stopped: false };
  }
  return { accepted: k, emitted: k + 1, stopped: false };
}

/** p(token) among the candidates left (0 if a filter removed it). */
function probabilityOf(c: Candidates, token: number): number {
  const n = c.size;
  const p = c.probs;
  if (c.identity) return token < n ? p[token]! : 0;
  const ids = c.ids;
  for (let i = 0; i < n; i++) if (ids[i] === token) return p[i]!;
  return 0;
}

/** A draw from the candidates' distribution with `excluded` (probability pEx) removed, given uniform u. */
function drawExcluding(c: Candidates, excluded: number, pEx: number, u: number): number {
  const n = c.size;
  const p = c.probs;
  const ids = c.identity ? undefined : c.ids;
  let r = u * (1 - pEx);
  let last = -1;
  for (let i = 0; i < n; i++) {
    const id = ids ? ids[i]! : i;
    if (id === excluded) continue;
    const q = p[i]!;
    r -= q;
    if (r < 0) return id;
    if (q > 0) last = id;
  }
  // Rounding left r just above the total: the last token that had any probability (or, if the
  // draft held all of it up to rounding, the draft itself).
  return last >= 0 ? last : excluded;
}
