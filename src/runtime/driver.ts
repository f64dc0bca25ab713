// The token-level driver: it prefills, steps and accepts tokens for every active sequence, one
// batched forward pass per step (continuous batching: requests join and leave between steps).
// It knows tokens, not text; the text layer (model.ts) turns tokens into text, stop strings and
// stats through the DriverRequest callbacks. A request with a Speculation adds draft tokens to its
// step (1 + k tokens in the same pass), has them verified from the pass's k + 1 logits rows, and
// its sequence is truncated past the first rejected draft.

import type { ForwardSegment, Transformer } from "../model/transformer.ts";
import type { KvPool } from "../compute/backend.ts";
import type { OpProfile } from "../compute/profile.ts";
import { now, Yielder } from "../platform/yield.ts";
import { CostCurve } from "../speculative/policy.ts";
import type { Speculation } from "../speculative/speculation.ts";
import { LazyLogitRows } from "../speculative/verify.ts";
import type { Sequence } from "./sequence.ts";

/** What the driver needs of a sampler: pick a token from logits, then be told which was kept. */
export interface TokenSampler {
  sample(logits: Float32Array): number;
  accept(token: number): void;
  /** A token a constraint (a grammar) forces next: taken without sampling. */
  forced?(): number | undefined;
  /**
   * The only tokens sample() may return and whose logits it reads (a bitset over the vocabulary:
   * token t when bit t & 31 of word t >>> 5 is set), as a constraint knows them before the
   * forward pass; undefined: it reads every logit. When they are few, the driver computes only
   * their rows of the output head (Transformer.headRows; the other logits read -Infinity).
   */
  allowed?(): Uint32Array | undefined;
  /**
   * A token the constraint expects next (not forced: it is sampled as usual). With jump-forward
   * the driver evaluates it in the same pass as the tokens before it and keeps it when sampling
   * picks it (that token's own pass is saved); otherwise its cache cell is dropped. The same
   * tokens either way, with the same seed.
   */
  guess?(): number | undefined;
}

export type EndReason = "context" | "done";

/** One sequence being generated, as the driver sees it. */
export interface DriverRequest {
  readonly sequence: Sequence;
  readonly sampler: TokenSampler;
  /** Tokens to evaluate next: the prompt's uncached rest first, then each sampled token. */
  pending: number[];
  /** False: evaluate the prompt only (no token is sampled). */
  readonly wantsTokens: boolean;
  /**
   * Jump-forward: tokens the sampler forces after a sampled one are accepted at once and go into
   * the same next forward pass (no step of their own); their count is added to `forwardsSaved`.
   */
  readonly jumpForward?: boolean;
  forwardsSaved?: number;
  /** Guessed tokens that sampling then picked (each saved a forward pass). */
  guessesKept?: number;
  /** Rows of the output head computed for this request's logits (the vocabulary per full head; fewer under a sparse mask). */
  headRows?: number;
  /** True while its consumer lags behind: the driver skips it until it catches up (backpressure). */
  paused(): boolean;
  /** The prompt is in the cache (called once, before the first token). */
  onPromptDone(): void;
  /** A sampled token; return false to end the request. */
  onToken(token: number): boolean;
  /** The driver stopped this request (context full, or prompt-only done) or a step failed. */
  onEnd(reason: EndReason, error?: unknown): void;
  /** Speculative decoding: drafts are proposed before each step and verified after it (its sampler verifies). */
  readonly speculation?: Speculation;
  /** Most tokens the request may still emit (a draft longer than that is wasted). Default: no limit. */
  remaining?(): number;
}

/** A request's part of a step: its segment of the forward pass and what to do with the outputs. */
interface BatchEntry {
  readonly req: DriverRequest;
  readonly seg: { slot: number; startPos: number; tokens: number[]; logits: "none" | "last" | "all"; hidden: "none" | "last" | "all" };
  promptLeft: boolean;
  decoding: boolean;
  draft: number[];
  /** The pass's logits are computed after it, for the sampler's allowed tokens only (headRows). */
  sparse: boolean;
  /** A guessed token evaluated at the end of the segment (see TokenSampler.guess), or -1. */
  guess: number;
}
const NO_DRAFT: number[] = [];

export class Driver {
  private readonly transformer: Transformer;
  private readonly pool: KvPool;
  private readonly requests: DriverRequest[] = [];
  /** Requests whose prompt is in the cache (they decode one token per step). */
  private readonly prefilled = new Set<DriverRequest>();
  private running = false;
  private wake: (() => void) | undefined;
  private disposed = false;
  /** Tokens one step may carry: decodes first, then prompt chunks up to this budget. */
  readonly stepBudget: number;
  /** Milliseconds of decode passes by tokens per pass: what drafting costs (the adaptive draft length reads it). */
  readonly costs = new CostCurve();
  /** While set, steps record their forward pass, sampling, token output and yields into it. */
  profile: OpProfile | undefined = undefined;

  constructor(transformer: Transformer, pool: KvPool, stepBudget: number) {
    this.transformer = transformer;
    this.pool = pool;
    this.stepBudget = Math.max(1, stepBudget);
  }

  get active(): number {
    return this.requests.length;
  }

  add(req: DriverRequest): void {
    if (this.disposed) throw new Error("this model has been disposed");
    // Tokens a grammar forces at the start (`{"name": "`) join the prompt's pass.
    if (req.jumpForward && req.wantsTokens && !this.jumpForward(req, this.pool.spec.slotSize)) return;
    this.requests.push(req);
    this.kick();
    if (!this.running) {
      this.running = true;
      void this.loop();
    }
  }

  /** Removes a request (cancelled, or its consumer went away); the others go on unchanged. */
  remove(req: DriverRequest): void {
    const i = this.requests.indexOf(req);
    if (i >= 0) this.requests.splice(i, 1);
    this.prefilled.delete(req);
    this.entries.delete(req);
  }

  /** Wakes the loop when it sleeps because every request was paused. */
  kick(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  dispose(): void {
    this.disposed = true;
    for (const r of this.requests.splice(0)) r.onEnd("done", new Error("the model was disposed during generation"));
    this.kick();
  }

  private async loop(): Promise<void> {
    const yielder = new Yielder();
    try {
      while (this.requests.length > 0 && !this.disposed) {
        const prof = this.profile;
        const t0 = prof ? now() : 0;
        if (!this.step()) await new Promise<void>((resolve) => (this.wake = resolve));
        const t1 = prof ? prof.lap("step (driver total)", t0) : 0;
        // Consumers read their tokens (promise continuations) after every step; every few ms a
        // full event-loop turn lets timers, I/O, input and aborts run and new requests join.
        await yielder.yield();
        prof?.lap("yield to event loop", t1);
      }
    } finally {
      this.running = false;
    }
  }

  /** Per request, its reused batch entry (a decode step allocates no objects or arrays). */
  private readonly entries = new Map<DriverRequest, BatchEntry>();
  private readonly batch: BatchEntry[] = [];
  private readonly segments: ForwardSegment[] = [];
  /** The requests as the step started (a request may leave while the step runs). */
  private readonly snapshot: DriverRequest[] = [];

  private entryOf(req: DriverRequest): BatchEntry {
    let e = this.entries.get(req);
    if (!e) {
      e = { req, promptLeft: false, decoding: false, draft: NO_DRAFT, sparse: false, guess: -1, seg: { slot: 0, startPos: 0, tokens: [], logits: "none", hidden: "none" } };
      this.entries.set(req, e);
    }
    return e;
  }

  /** One forward pass for every request that has work; false when all were paused. */
  private step(): boolean {
    // Reused arrays are resized, never emptied and refilled: V8 drops an emptied array's storage.
    const batch = this.batch;
    let nb = 0;
    let budget = this.stepBudget;
    const slotSize = this.pool.spec.slotSize;
    const reqs = this.snapshot;
    if (reqs.length !== this.requests.length) reqs.length = this.requests.length;
    for (let i = 0; i < this.requests.length; i++) reqs[i] = this.requests[i]!;
    // Decoding sequences first (one token each, plus any draft), then prompt chunks while the budget lasts.
    for (let phase = 0; phase < 2; phase++) {
      for (let r = 0; r < reqs.length; r++) {
        const req = reqs[r]!;
        const decoding = this.prefilled.has(req);
        if ((phase === 0) !== decoding || req.paused()) continue;
        if (req.sequence.length + Math.min(1, req.pending.length) > slotSize) {
          this.remove(req);
          req.onEnd("context");
          continue;
        }
        if (budget <= 0 && nb > 0) break;
        const spec = req.speculation;
        const hidden = spec?.wantsHidden ? "all" : "none";
        const e = this.entryOf(req);
        const seg = e.seg;
        seg.slot = req.sequence.slot;
        seg.startPos = req.sequence.length;
        seg.hidden = hidden;
        e.decoding = decoding;
        e.draft = NO_DRAFT;
        e.promptLeft = false;
        e.sparse = false;
        e.guess = -1;
        const tokens = seg.tokens;
        if (decoding && spec && req.pending.length === 1) {
          const limit = Math.min(slotSize - req.sequence.length - 1, (req.remaining?.() ?? Infinity) - 1, Math.max(0, budget - 1));
          let draft: number[] = [];
          if (limit >= 1) {
            try {
              draft = spec.draft(req.sequence.tokens, req.pending[0]!, limit);
            } catch (e) {
              this.remove(req);
              req.onEnd("done", e);
              continue;
            }
          }
          if (tokens.length !== 1 + draft.length) tokens.length = 1 + draft.length;
          tokens[0] = req.pending[0]!;
          for (let i = 0; i < draft.length; i++) tokens[1 + i] = draft[i]!;
          budget -= tokens.length;
          e.draft = draft;
          seg.logits = draft.length > 0 ? "all" : "last";
          batch[nb++] = e;
          continue;
        }
        const take = Math.min(req.pending.length, Math.max(1, budget));
        if (tokens.length !== take) tokens.length = take;
        for (let i = 0; i < take; i++) tokens[i] = req.pending[i]!;
        const last = take === req.pending.length;
        budget -= take;
        e.promptLeft = !last;
        seg.logits = last && req.wantsTokens ? "last" : "none";
        e.sparse = false;
        if (seg.logits === "last" && !spec && req.sampler.allowed) {
          // The sampler's choice is known before the pass (a forced token: no logits at all) or
          // limited to few tokens (only their rows of the output head).
          const guess = req.jumpForward && budget > 0 && req.sequence.length + take + 1 <= slotSize ? req.sampler.guess?.() : undefined;
          if (req.sampler.forced?.() !== undefined) seg.logits = "none";
          else if (guess !== undefined) {
            // The guessed token rides at the end of the pass; logits of its row and the one before come after.
            tokens.push(guess);
            budget--;
            e.guess = guess;
            seg.logits = "none";
            seg.hidden = "all";
          } else if (this.fewAllowed(req.sampler.allowed())) {
            seg.logits = "none";
            seg.hidden = "last";
            e.sparse = true;
          }
        }
        batch[nb++] = e;
      }
    }
    if (batch.length !== nb) batch.length = nb;
    if (nb === 0) return false;
    // One sequence verifying a draft: its logits rows are computed as verification reads them (the
    // output head stops at the first rejected draft token). With several sequences the rows of all
    // of them go through the head together instead (one read of its weights for all).
    const lazy = nb === 1 && batch[0]!.draft.length > 0 ? batch[0]! : undefined;
    if (lazy) {
      lazy.seg.logits = "none";
      lazy.seg.hidden = "all";
    }
    const segments = this.segments;
    if (segments.length !== nb) segments.length = nb;
    let nTokens = 0;
    let allDecoding = true;
    for (let i = 0; i < batch.length; i++) {
      segments[i] = batch[i]!.seg;
      nTokens += batch[i]!.seg.tokens.length;
      if (!batch[i]!.decoding) allDecoding = false;
    }
    let outs;
    const t0 = now();
    try {
      outs = this.transformer.forward(segments, this.pool, { borrow: true });
      this.profile?.add("forward (total)", now() - t0);
    } catch (e) {
      for (let i = 0; i < batch.length; i++) {
        const req = batch[i]!.req;
        this.remove(req);
        req.onEnd("done", e);
      }
      return true;
    }
    const forwardMs = now() - t0;
    let headMs = 0;
    const dim = this.transformer.config.dim;
    for (let i = 0; i < batch.length; i++) {
      const { req, seg, promptLeft, decoding, draft } = batch[i]!;
      const out = outs[i]!;
      const cells = req.sequence.cells;
      // A guessed token's cell is kept only once sampling picks it.
      const evaluated = seg.tokens.length - (batch[i]!.guess >= 0 ? 1 : 0);
      for (let k = 0; k < evaluated; k++) cells.push(seg.tokens[k]!);
      // The evaluated tokens leave the front of pending, in place (shift trims without allocating).
      if (evaluated === 1) req.pending.shift();
      else req.pending.splice(0, evaluated);
      const spec = req.speculation;
      if (spec) {
        try {
          spec.proposer.observe(seg.startPos, seg.tokens, out.hidden);
        } catch (e) {
          this.remove(req);
          req.onEnd("done", e);
          continue;
        }
      }
      if (promptLeft) continue;
      if (!this.prefilled.has(req)) {
        this.prefilled.add(req);
        req.onPromptDone();
      }
      if (!req.wantsTokens) {
        this.remove(req);
        req.onEnd("done");
        continue;
      }
      if (spec && decoding) {
        // Verification: the kept drafts and the target's own next token, in order.
        let last = -1;
        const rows = lazy ? new LazyLogitRows(seg.tokens.length, this.transformer.config.vocabSize, (from, to) => this.transformer.head(out.hidden.subarray(from * dim, to * dim), to - from), Math.min(2, Math.max(1, this.transformer.backend.maxBatch))) : out.logits;
        const r = spec.verify(rows, draft, (t) => {
          last = t;
          return req.onToken(t);
        });
        if (rows instanceof LazyLogitRows) headMs += rows.ms;
        const keep = seg.startPos + 1 + r.accepted;
        if (keep < req.sequence.length) {
          req.sequence.truncate(keep);
          spec.proposer.rollback(keep);
        }
        if (r.stopped) this.remove(req);
        else req.pending = [last];
        continue;
      }
      const guess = batch[i]!.guess;
      if (guess >= 0) {
        // The row before the guess gives the next token; if it is the guess, the guess's row gives the one after.
        const token = this.sampleRow(req, out.hidden.subarray((seg.tokens.length - 2) * dim, (seg.tokens.length - 1) * dim));
        if (!req.onToken(token)) {
          this.remove(req);
          continue;
        }
        if (token !== guess) req.pending.push(token);
        else {
          cells.push(guess);
          req.guessesKept = (req.guessesKept ?? 0) + 1;
          if (req.sampler.forced?.() === undefined) {
            const next = this.sampleRow(req, out.hidden.subarray((seg.tokens.length - 1) * dim, seg.tokens.length * dim));
            if (!req.onToken(next)) {
              this.remove(req);
              continue;
            }
            req.pending.push(next);
          }
        }
        if (!this.jumpForward(req, slotSize)) continue;
        if (req.pending.length === 0) {
          // Only possible at the end of the context: nothing left to evaluate.
          this.remove(req);
          req.onEnd("context");
        }
        continue;
      }
      const prof = this.profile;
      const ts = prof ? now() : 0;
      const forced = req.sampler.forced?.();
      let logits = out.logits;
      if (forced === undefined) {
        if (batch[i]!.sparse) {
          logits = this.transformer.headRows(out.hidden, req.sampler.allowed!()!);
          req.headRows = (req.headRows ?? 0) + this.transformer.rowsComputed;
        } else req.headRows = (req.headRows ?? 0) + this.transformer.config.vocabSize;
      }
      const token = forced ?? req.sampler.sample(logits);
      req.sampler.accept(token);
      const tt = prof ? prof.lap("sampling", ts) : 0;
      spec?.countFirst();
      const goOn = req.onToken(token);
      prof?.lap("token output (text, stop strings, stream)", tt);
      if (!goOn) {
        this.remove(req);
        continue;
      }
      req.pending.push(token);
      if (req.jumpForward) this.jumpForward(req, slotSize);
    }
    // A decode pass's cost, with the logits rows verification computed after it.
    if (allDecoding) this.costs.record(nTokens, forwardMs + headMs);
    return true;
  }

  /**
   * Samples and accepts the next token from one hidden state (after the last layer): the output
   * head over the sampler's allowed tokens when they are few, else every row.
   */
  private sampleRow(req: DriverRequest, hidden: Float32Array): number {
    const m = req.sampler.allowed?.();
    let logits: Float32Array;
    if (m && this.fewAllowed(m)) {
      logits = this.transformer.headRows(hidden, m);
      req.headRows = (req.headRows ?? 0) + this.transformer.rowsComputed;
    } else {
      logits = this.transformer.head(hidden, 1);
      req.headRows = (req.headRows ?? 0) + this.transformer.config.vocabSize;
    }
    const token = req.sampler.sample(logits);
    req.sampler.accept(token);
    return token;
  }

  /** Whether a mask allows few enough tokens that computing only their head rows pays (at most 1/16 of the vocabulary). */
  private fewAllowed(mask: Uint32Array | undefined): boolean {
    if (!mask) return false;
    const limit = this.transformer.config.vocabSize >>> 4;
    let n = 0;
    for (let i = 0; i < mask.length; i++) {
      let v = mask[i]!;
      if (v === 0) continue;
      v -= (v >>> 1) & 0x55555555;
      v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
      n += Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
      if (n > limit) return false;
    }
    return true;
  }

  /**
   * Appends the tokens the sampler forces to `req.pending` (accepted and reported as they come),
   * so they are evaluated with the last sampled token in one forward pass. The same tokens, in the
   * same order, as taking one per step: only the forward passes in between are saved. False when
   * the request ended on one of them.
   */
  private jumpForward(req: DriverRequest, slotSize: number): boolean {
    while (req.sequence.length + req.pending.length < slotSize) {
      const f = req.sampler.forced?.();
      if (f === undefined) return true;
      req.sampler.accept(f);
      req.forwardsSaved = (req.forwardsSaved ?? 0) + 1;
      if (!req.onToken(f)) {
        this.remove(req);
        return false;
      }
      req.pending.push(f);
    }
    return true;
  }
}
