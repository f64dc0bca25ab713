// One generation's speculative decoding: the proposer, the adaptive draft length, verification,
// the optional replay of recorded tokens (benchmarks), and the statistics. The driver asks it for
// a draft before each step and hands it the step's logits rows after.

import { now } from "../platform/yield.ts";
import { SeededRandom } from "../sampling/rng.ts";
import { CostCurve, DraftPolicy } from "./policy.ts";
import type { Proposer } from "./proposer.ts";
import { canVerify, verifyDraft, type LogitRows, type VerifyingSampler, type VerifyResult } from "./verify.ts";

export type SpeculativeMethod = "ngram" | "mtp" | "draft";

export interface SpeculativeOptions {
  /** Where drafts come from: "mtp" (the model's multi-token-prediction layer), "ngram" (prompt lookup), "draft" (the draft model loaded with the model). */
  readonly method: SpeculativeMethod;
  /** Most draft tokens per step. Default: 1 for mtp (MiMo has one MTP layer; more reuses it), 8 otherwise. */
  readonly draftMax?: number;
  /** Fewest draft tokens worth verifying; a shorter draft is dropped. Default 1. */
  readonly draftMin?: number;
  /** MTP and draft model: stop drafting at a token the proposer gives less than this probability. Default 0.75 (llama.cpp's). */
  readonly draftPMin?: number;
  /** Choose each draft's length from the measured acceptance and step costs (default true); false always asks for draftMax. */
  readonly adaptive?: boolean;
  /** n-gram lookup: shortest and longest n-gram matched. Defaults 2 and 4. */
  readonly ngramMin?: number;
  readonly ngramMax?: number;
  /**
   * Benchmarks only: a simulation of acceptance. The proposer does all its work, then each draft
   * token is replaced by the recorded correct one (`tokens`, a plain greedy run's output) with
   * probability `acceptance`, otherwise by a wrong one. draftPMin is not applied.
   */
  readonly replay?: { readonly tokens: readonly number[]; readonly acceptance: number; readonly seed?: number };
}

export interface SpeculationStats {
  readonly method: SpeculativeMethod;
  /** Forward passes that verified a draft. */
  readonly draftSteps: number;
  /** Draft tokens proposed (and verified). */
  readonly proposed: number;
  /** Draft tokens accepted. */
  readonly accepted: number;
  /** Drafts that ended in a rejected token (the others were kept whole, or the generation ended in them). */
  readonly rejected: number;
  /** accepted / proposed. */
  readonly acceptanceRate: number;
  /**
   * The probability that a draft token is accepted given that the ones before it were:
   * accepted / (accepted + drafts that ended in a rejection). The p of replay mode; with drafts
   * of k tokens, acceptanceRate is lower (a rejection leaves the rest of the draft unverified).
   */
  readonly tokenAcceptance: number;
  /** Mean draft tokens accepted per verifying pass. */
  readonly meanAcceptedLength: number;
  /** Forward passes of the generation (drafted or not), prompt excluded. */
  readonly forwards: number;
  /** Generated tokens per forward pass (1 without speculation). */
  readonly tokensPerForward: number;
  /** Milliseconds spent proposing. */
  readonly proposeMs: number;
  /** Whether drafts were replaced by recorded tokens (a simulation of acceptance). */
  readonly replay?: { readonly acceptance: number };
}

export const speculativeDefaults = { draftMin: 1, draftPMin: 0.75, draftMaxMtp: 1, draftMax: 8 } as const;

export interface ResolvedSpeculativeOptions {
  readonly method: SpeculativeMethod;
  readonly draftMax: number;
  readonly draftMin: number;
  readonly draftPMin: number;
  readonly adaptive: boolean;
  readonly ngramMin?: number;
  readonly ngramMax?: number;
  readonly replay?: SpeculativeOptions["replay"];
}

/** Defaults filled in; RangeError naming the option for a bad value. */
export function resolveSpeculativeOptions(o: SpeculativeOptions): ResolvedSpeculativeOptions {
  if (o === null || typeof o !== "object") throw new TypeError(`speculative must be an object such as { method: "ngram" }, got ${String(o)}`);
  if (o.method !== "ngram" && o.method !== "mtp" && o.method !== "draft") {
    throw new RangeError(`speculative.method must be "mtp", "ngram" or "draft", got ${JSON.stringify(o.method)}`);
  }
  const draftMax = o.draftMax ?? (o.method === "mtp" ? speculativeDefaults.draftMaxMtp : speculativeDefaults.draftMax);
  const draftMin = o.draftMin ?? Math.min(speculativeDefaults.draftMin, draftMax);
  const draftPMin = o.draftPMin ?? speculativeDefaults.draftPMin;
  if (!(Number.isInteger(draftMax) && draftMax >= 1 && draftMax <= 64)) throw new RangeError(`draftMax must be an integer from 1 to 64, got ${draftMax}`);
  if (!(Number.isInteger(draftMin) && draftMin >= 0 && draftMin <= draftMax)) throw new RangeError(`draftMin must be an integer from 0 to draftMax (${draftMax}), got ${draftMin}`);
  if (!(draftPMin >= 0 && draftPMin <= 1)) throw new RangeError(`draftPMin must be between 0 and 1, got ${draftPMin}`);
  const r = o.replay;
  if (r !== undefined) {
    if (!(r.acceptance >= 0 && r.acceptance <= 1)) throw new RangeError(`replay.acceptance must be between 0 and 1, got ${r.acceptance}`);
    if (!Array.isArray(r.tokens)) throw new TypeError("replay.tokens must be the recorded tokens of a plain greedy run");
  }
  return { method: o.method, draftMax, draftMin, draftPMin, adaptive: o.adaptive ?? true, ngramMin: o.ngramMin, ngramMax: o.ngramMax, replay: r };
}

export class Speculation {
  readonly proposer: Proposer;
  readonly opts: ResolvedSpeculativeOptions;
  private readonly policy: DraftPolicy;
  private readonly vocab: number;
  private readonly sampler: VerifyingSampler;
  private readonly replayRng: SeededRandom | undefined;
  private generated = 0;
  private draftSteps = 0;
  private proposed = 0;
  private acceptedTotal = 0;
  private rejections = 0;
  private forwards = 0;
  private proposeMs = 0;

  /** `sampler` is the generation's chain: verification samples and accepts through it. */
  constructor(proposer: Proposer, opts: ResolvedSpeculativeOptions, costs: CostCurve, vocab: number, sampler: VerifyingSampler) {
    if (!canVerify(sampler)) throw new Error("speculative decoding needs a sampler chain that ends with a greedy or dist stage");
    this.proposer = proposer;
    this.sampler = sampler;
    this.opts = opts;
    this.vocab = vocab;
    this.policy = new DraftPolicy({ draftMin: opts.draftMin, draftMax: opts.draftMax, adaptive: opts.adaptive }, costs);
    this.replayRng = opts.replay ? new SeededRandom(opts.replay.seed ?? 1) : undefined;
  }

  get wantsHidden(): boolean {
    return this.proposer.wantsHidden;
  }

  /**
   * Draft tokens to evaluate after `tokens` (the sequence's cached tokens: its own array, not a
   * copy) and `next` (the token just chosen), at most `limit`.
   */
  draft(tokens: readonly number[], next: number, limit: number): number[] {
    const k = this.policy.choose(limit);
    if (k === 0) return [];
    const t0 = now();
    const replay = this.opts.replay;
    const d = this.proposer.propose({ tokens, next, max: k, pMin: replay ? 0 : this.opts.draftPMin });
    const ms = now() - t0;
    this.proposeMs += ms;
    this.policy.proposeCost(ms, d.tokens.length);
    let draft = d.tokens;
    if (replay) draft = this.replace(draft, k);
    // A draft model's vocabulary may be a little larger: its extra ids cannot be verified.
    const outside = draft.findIndex((t) => !(t >= 0 && t < this.vocab));
    if (outside >= 0) draft = draft.slice(0, outside);
    if (draft.length < Math.max(1, this.opts.draftMin)) return [];
    return draft;
  }

  /** Replay: k tokens, each the recorded one with probability p, else a token that is not it. */
  private replace(proposal: readonly number[], k: number): number[] {
    const r = this.opts.replay!;
    const out: number[] = [];
    // this.generated tokens were emitted; the last is the one just chosen, so draft i is recorded[generated + i].
    for (let i = 0; i < k; i++) {
      const correct = r.tokens[this.generated + i];
      if (correct === undefined) break;
      if (this.replayRng!.next() < r.acceptance) out.push(correct);
      else {
        const own = proposal[i];
        out.push(own !== undefined && own !== correct ? own : (correct + 1) % this.vocab);
      }
    }
    return out;
  }

  /** The forward pass of [chosen token, ...draft] gave `rows` (all, or computed as they are read); verify, emit, and return the outcome. */
  verify(rows: Float32Array | LogitRows, draft: readonly number[], emit: (token: number) => boolean): VerifyResult {
    this.forwards++;
    const r = verifyDraft(rows, this.vocab, draft, this.sampler, (t) => {
      this.generated++;
      return emit(t);
    });
    if (draft.length > 0) {
      this.draftSteps++;
      this.proposed += draft.length;
      this.acceptedTotal += r.accepted;
      // A rejection: the target chose another token at a draft position (not an end before it).
      if (r.accepted < draft.length && r.emitted > r.accepted) this.rejections++;
      if (!r.stopped) this.policy.update(draft.length, r.accepted);
    }
    return r;
  }

  /** The first token (sampled from the prompt's logits) was emitted. */
  countFirst(): void {
    this.generated++;
  }

  stats(): SpeculationStats {
    return {
      method: this.opts.method,
      draftSteps: this.draftSteps,
      proposed: this.proposed,
      accepted: this.acceptedTotal,
      rejected: this.rejections,
      acceptanceRate: this.proposed > 0 ? this.acceptedTotal / this.proposed : 0,
      tokenAcceptance: this.acceptedTotal + this.rejections > 0 ? this.acceptedTotal / (this.acceptedTotal + this.rejections) : 0,
      meanAcceptedLength: this.draftSteps > 0 ? this.acceptedTotal / this.draftSteps : 0,
      forwards: this.forwards,
      tokensPerForward: this.forwards > 0 ? (this.generated - 1) / this.forwards : 0,
      proposeMs: this.proposeMs,
      ...(this.opts.replay ? { replay: { acceptance: this.opts.replay.acceptance } } : {}),
    };
  }
}
