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

import { now } from "../platform/yield.ts";
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
 * The logits rows of a verification pass, asked for in order (row i only after row i - 1): all of
 * them at once (a Float32Array of rows) or computed on demand (LazyLogitRows), since verification
 * stops at the first rejected draft token and the rows after it are never read.
 */
export interface LogitRows {
  /** Row i (vocab logits); valid until the next call. */
  row(i: number): Float32Array;
}

/**
 * Rows computed as verification reaches them, `chunk` at a time: the output head (on a 152k
 * vocabulary, a quarter of a small model's weights) runs only as far as the first rejection. A
 * chunk of 2 keeps the 2-token matmul tile (about 1.3 single-token passes for both rows). The
 * rows are the same bits as a whole-pass head's: each row of the norm and the matmul is computed
 * independently of the others (the kernels give the same bits for any number of tokens).
 */
export class LazyLogitRows implements LogitRows {
  private from = 0;
  private to = 0;
  private rows: Float32Array = new Float32Array(0);
  /** Rows computed (for statistics and tests). */
  computed = 0;
  /** Milliseconds spent computing rows. */
  ms = 0;
  private readonly count: number;
  private readonly vocab: number;
  private readonly compute: (from: number, to: number) => Float32Array;
  private readonly chunk: number;

  /** compute(from, to): rows from..to-1 of `count`, contiguous (a view valid until the next call). */
  constructor(count: number, vocab: number, compute: (from: number, to: number) => Float32Array, chunk = 2) {
    this.count = count;
    this.vocab = vocab;
    this.compute = compute;
    this.chunk = Math.max(1, chunk);
  }

  row(i: number): Float32Array {
    if (!(i >= 0 && i < this.count)) throw new RangeError(`logits row ${i} of ${this.count}`);
    if (i < this.from || i >= this.to) {
      const t0 = now();
      this.from = i;
      this.to = Math.min(this.count, i + this.chunk);
      this.rows = this.compute(this.from, this.to);
      this.computed += this.to - this.from;
      this.ms += now() - t0;
    }
    const o = (i - this.from) * this.vocab;
    return this.rows.subarray(o, o + this.vocab);
  }
}

/** All rows at once, from one array of rows. */
export function logitRowsOf(rows: Float32Array, vocab: number): LogitRows {
  return { row: (i) => rows.subarray(i * vocab, (i + 1) * vocab) };
}

/**
 * Verifies `draft` against `rows` (draft.length + 1 rows of `vocab` logits, a whole array or
 * LogitRows read in order), accepting each kept token into the sampler and passing it to `emit`
 * in order; emit returns false to stop.
 */
export function verifyDraft(rows: Float32Array | LogitRows, vocab: number, draft: readonly number[], sampler: VerifyingSampler, emit: (token: number) => boolean): VerifyResult {
  const k = draft.length;
  const greedy = sampler.selection === "greedy";
  const source = rows instanceof Float32Array ? logitRowsOf(rows, vocab) : rows;
  for (let i = 0; i <= k; i++) {
    const row = source.row(i);
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
