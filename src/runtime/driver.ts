// The token-level driver: it prefills, steps and accepts tokens for every active sequence, one
// batched forward pass per step (continuous batching: requests join and leave between steps).
// It knows tokens, not text; the text layer (model.ts) turns tokens into text, stop strings and
// stats through the DriverRequest callbacks. Plain decoding today; a speculative proposer plugs in
// here by adding draft tokens to a step and truncating its sequence past the first rejection.

import type { ForwardSegment, Transformer } from "../model/transformer.ts";
import type { KvPool } from "../compute/backend.ts";
import { Yielder } from "../platform/yield.ts";
import type { Sequence } from "./sequence.ts";

/** What the driver needs of a sampler: pick a token from logits, then be told which was kept. */
export interface TokenSampler {
  sample(logits: Float32Array): number;
  accept(token: number): void;
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
  /** True while its consumer lags behind: the driver skips it until it catches up (backpressure). */
  paused(): boolean;
  /** The prompt is in the cache (called once, before the first token). */
  onPromptDone(): void;
  /** A sampled token; return false to end the request. */
  onToken(token: number): boolean;
  /** The driver stopped this request (context full, or prompt-only done) or a step failed. */
  onEnd(reason: EndReason, error?: unknown): void;
}

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
        if (!this.step()) await new Promise<void>((resolve) => (this.wake = resolve));
        // Consumers read their tokens (promise continuations) after every step; every few ms a
        // full event-loop turn lets timers, I/O, input and aborts run and new requests join.
        await yielder.yield();
      }
    } finally {
      this.running = false;
    }
  }

  /** One forward pass for every request that has work; false when all were paused. */
  private step(): boolean {
    const batch: { req: DriverRequest; seg: ForwardSegment; promptLeft: boolean }[] = [];
    let budget = this.stepBudget;
    const slotSize = this.pool.spec.slotSize;
    // Decoding sequences first (one token each), then prompt chunks while the budget lasts.
    for (const phase of [0, 1]) {
      for (const req of [...this.requests]) {
        const decoding = this.prefilled.has(req);
        if ((phase === 0) !== decoding || req.paused()) continue;
        if (req.sequence.length + Math.min(1, req.pending.length) > slotSize) {
          this.remove(req);
          req.onEnd("context");
          continue;
        }
        if (budget <= 0 && batch.length > 0) break;
        const take = Math.min(req.pending.length, Math.max(1, budget));
        const tokens = req.pending.slice(0, take);
        const last = take === req.pending.length;
        budget -= take;
        batch.push({
          req,
          promptLeft: !last,
          seg: { slot: req.sequence.slot, startPos: req.sequence.length, tokens, logits: last && req.wantsTokens ? "last" : "none" },
        });
      }
    }
    if (batch.length === 0) return false;
    let outs;
    try {
      outs = this.transformer.forward(batch.map((b) => b.seg), this.pool, { borrow: true });
    } catch (e) {
      for (const { req } of batch) {
        this.remove(req);
        req.onEnd("done", e);
      }
      return true;
    }
    for (let i = 0; i < batch.length; i++) {
      const { req, seg, promptLeft } = batch[i]!;
      req.sequence.cells.push(...seg.tokens);
      req.pending = req.pending.slice(seg.tokens.length);
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
      const token = req.sampler.sample(outs[i]!.logits);
      req.sampler.accept(token);
      if (req.onToken(token)) req.pending = [token];
      else this.remove(req);
    }
    return true;
  }
}
