// Adaptive draft length: how many draft tokens to verify next, chosen by the expected number of
// tokens a step yields against what the step costs. A forward of 1 + k tokens is far from free on
// 128-bit SIMD (measured on qwen2-0.5b Q4_0: 1.6x a decode step for k = 1, 5.3x for k = 8), so a
// long draft pays only at high acceptance, and at low acceptance the best choice is no draft.

/**
 * Forward-pass cost relative to a one-token decode step, by tokens in the pass: measured on
 * qwen2-0.5b Q4_0, 2 threads (README, verification benchmark). Only the starting point: the
 * driver times its own passes and the measurements replace it (CostCurve).
 */
const PRIOR_COST = [1, 1, 1.63, 2.38, 2.8, 3.2, 3.73, 4.25, 4.78, 5.3];

function priorCost(n: number): number {
  if (n < PRIOR_COST.length) return PRIOR_COST[n]!;
  return PRIOR_COST[PRIOR_COST.length - 1]! + (n - PRIOR_COST.length + 1) * 0.55;
}

/**
 * Milliseconds of a forward pass by the number of tokens in it, learnt from the passes the driver
 * times: the median of the last few passes of each size (a pass that another process delayed
 * moves it little).
 */
export class CostCurve {
  /** Per size: its median, from `recent`. */
  private readonly ms = new Map<number, number>();
  private readonly recent = new Map<number, number[]>();
  private static readonly WINDOW = 9;

  record(nTokens: number, ms: number): void {
    if (!(ms > 0) || nTokens < 1) return;
    let r = this.recent.get(nTokens);
    if (!r) this.recent.set(nTokens, (r = []));
    r.push(ms);
    if (r.length > CostCurve.WINDOW) r.shift();
    // Median by insertion sort into a reused array (the driver records every step).
    const sorted = this.sorted;
    sorted.length = r.length;
    for (let i = 0; i < r.length; i++) {
      const v = r[i]!;
      let j = i;
      while (j > 0 && sorted[j - 1]! > v) {
        sorted[j] = sorted[j - 1]!;
        j--;
      }
      sorted[j] = v;
    }
    this.ms.set(nTokens, sorted[sorted.length >> 1]!);
  }
  private readonly sorted: number[] = [];

  /** Cost of a pass of n tokens in units of a one-token pass. */
  relative(n: number): number {
    return this.estimate(n) / this.estimate(1);
  }

  /**
   * Measured where measured; elsewhere a straight line through the measurements (least squares;
   * passes cost about a + b * tokens), or with fewer than two sizes measured, the prior curve
   * scaled to the one measured.
   */
  private estimate(n: number): number {
    const m = this.ms.get(n);
    if (m !== undefined) return m;
    if (this.ms.size >= 2) {
      let sx = 0, sy = 0, sxx = 0, sxy = 0;
      for (const [x, y] of this.ms) {
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
      }
      const k = this.ms.size;
      const b = Math.max(0, (k * sxy - sx * sy) / (k * sxx - sx * sx));
      const a = (sy - b * sx) / k;
      const line = a + b * n;
      if (line > 0) return line;
    }
    let scale = 0;
    for (const [k, v] of this.ms) scale += v / priorCost(k);
    return priorCost(n) * (this.ms.size > 0 ? scale / this.ms.size : 1);
  }

  /** Milliseconds of a one-token pass (the unit), if anything was measured. */
  get unitMs(): number | undefined {
    return this.ms.size > 0 ? this.estimate(1) : undefined;
  }
}

export interface DraftPolicyOptions {
  readonly draftMin: number;
  readonly draftMax: number;
  /** false: always ask for draftMax tokens (fixed-length drafting). */
  readonly adaptive: boolean;
}

/**
 * Tracks the acceptance rate of draft tokens (a decaying count of accepted and rejected tokens)
 * and picks the draft length k in {0} ∪ [draftMin, draftMax] that maximises expected tokens per
 * unit of cost: (1 - a^(k+1)) / (1 - a) over cost(1 + k) + the proposer's cost for k tokens,
 * drafting only for a gain of at least 3% (below that, timing noise could decide).
 * When no draft pays, it still drafts once every PROBE_EVERY steps to notice acceptance rising,
 * which bounds the loss at low acceptance to a few percent.
 */
export class DraftPolicy {
  /** With no draft worth it, one probe draft every this many steps. */
  static readonly PROBE_EVERY = 16;
  readonly opts: DraftPolicyOptions;
  private readonly costs: CostCurve;
  private accepted = 1.2;
  private rejected = 0.8;
  /** Plain steps since the last draft; starts at a probe, so the first step drafts. */
  private sinceDraft = DraftPolicy.PROBE_EVERY - 1;
  /** Running average of the proposer's milliseconds per proposed token, and per proposal call. */
  private proposeMsPerCall = 0;
  private proposeMsPerToken = 0;
  /** Weight left to the past per verified draft: the estimate follows about the last 20 drafts. */
  private static readonly DECAY = 0.95;
  /** A draft must promise at least this much more per unit of cost than no draft (timing noise is not a gain). */
  private static readonly MARGIN = 1.03;

  constructor(opts: DraftPolicyOptions, costs: CostCurve) {
    this.opts = opts;
    this.costs = costs;
  }

  /** Estimated probability that a draft token is accepted (given the ones before it were). */
  get acceptance(): number {
    return this.accepted / (this.accepted + this.rejected);
  }

  /** The draft length to ask the proposer for, at most `limit` (the context / maxTokens left). */
  choose(limit: number): number {
    const { draftMin, draftMax } = this.opts;
    const hi = Math.min(draftMax, limit);
    if (hi < Math.max(1, draftMin)) return 0;
    if (!this.opts.adaptive) return hi;
    const a = Math.min(this.acceptance, 0.999);
    const unit = this.costs.unitMs;
    let best = 0;
    let bestValue = DraftPolicy.MARGIN;
    for (let k = Math.max(1, draftMin); k <= hi; k++) {
      const tokens = (1 - a ** (k + 1)) / (1 - a);
      const propose = unit ? (this.proposeMsPerCall + this.proposeMsPerToken * (k - 1)) / unit : 0;
      const value = tokens / (this.costs.relative(1 + k) + propose);
      if (value > bestValue) {
        best = k;
        bestValue = value;
      }
    }
    if (best === 0 && ++this.sinceDraft >= DraftPolicy.PROBE_EVERY) return Math.max(1, draftMin);
    return best;
  }

  /** A draft of `proposed` tokens was verified and the first `accepted` kept. */
  update(proposed: number, accepted: number): void {
    if (proposed === 0) return;
    this.sinceDraft = 0;
    const d = DraftPolicy.DECAY;
    this.accepted = this.accepted * d + accepted;
    this.rejected = this.rejected * d + (accepted < proposed ? 1 : 0);
  }

  /** The proposer took `ms` to propose `tokens` tokens. */
  proposeCost(ms: number, tokens: number): void {
    if (tokens < 1 || !(ms >= 0)) return;
    // The first token costs the catch-up (MTP over the new positions, a draft model's prompt);
    // each further token one more small step. Split evenly: a rough model, refined by averaging.
    const perCall = ms / tokens;
    this.proposeMsPerCall += 0.2 * (perCall - this.proposeMsPerCall);
    this.proposeMsPerToken += 0.2 * (perCall - this.proposeMsPerToken);
  }
}
