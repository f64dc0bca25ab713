// MiMo's multi-token prediction as a proposer. For every position p of the target sequence, the MTP
// layer fuses the target's hidden state h_p with the embedding of token p + 1 and keeps its own
// keys/values at position p (the KV pool's layers after the main ones). The target's forward
// passes hand over their hidden states (observe); at proposal time the layer catches up over the
// positions it has not seen, in one batch, and its output at the last position proposes the token
// after the one just chosen. Further draft tokens reuse the same layer on its own output (as
// FastMTP and vLLM's MTP proposer do), writing keys/values past the verified end that the next
// catch-up overwrites with the target's real hidden states.

import type { KvPool } from "../compute/backend.ts";
import type { Transformer } from "../model/transformer.ts";
import { argmax } from "../sampling/chain.ts";
import type { Draft, Proposer, ProposeRequest } from "./proposer.ts";
import { EMPTY_DRAFT } from "./proposer.ts";

export class MtpProposer implements Proposer {
  readonly name = "mtp";
  readonly wantsHidden = true;
  private readonly transformer: Transformer;
  private readonly pool: KvPool;
  private readonly slot: number;
  private readonly dim: number;
  /** Positions below this have the MTP layer's keys/values from the target's real hidden states. */
  private done = 0;
  /** Hidden states of positions done.. (rows of dim), waiting for the next catch-up. */
  private rows: Float32Array;
  private count = 0;

  constructor(transformer: Transformer, pool: KvPool, slot: number, start = 0) {
    if (transformer.config.nMtpLayers < 1) {
      throw new Error(`speculative "mtp" needs a model with multi-token-prediction layers; this ${transformer.config.arch.name} model has none (use "ngram" or a draft model)`);
    }
    this.transformer = transformer;
    this.pool = pool;
    this.slot = slot;
    this.dim = transformer.config.dim;
    this.rows = new Float32Array(64 * this.dim);
    this.done = start;
  }

  /** Positions whose MTP keys/values are valid (for the model's per-slot record). */
  get validLength(): number {
    return this.done;
  }

  observe(startPos: number, tokens: readonly number[], hidden: Float32Array): void {
    const n = tokens.length;
    if (hidden.length !== n * this.dim) throw new Error(`MTP proposer: expected ${n} hidden rows, got ${hidden.length / this.dim}`);
    if (startPos !== this.done + this.count) {
      // A gap (a cached prompt prefix whose MTP keys/values the model vouched for) or an overlap: restart there.
      this.done = startPos;
      this.count = 0;
    }
    const need = (this.count + n) * this.dim;
    if (need > this.rows.length) {
      const grown = new Float32Array(Math.max(need, this.rows.length * 2));
      grown.set(this.rows.subarray(0, this.count * this.dim));
      this.rows = grown;
    }
    this.rows.set(hidden, this.count * this.dim);
    this.count += n;
  }

  rollback(length: number): void {
    if (length < this.done) {
      this.done = length;
      this.count = 0;
    } else this.count = Math.min(this.count, length - this.done);
  }

  propose(req: ProposeRequest): Draft {
    const seqLen = req.tokens.length;
    // Every position up to the last cached one must be covered: the hidden rows of done..seqLen-1.
    if (this.count === 0 || this.done + this.count !== seqLen) return EMPTY_DRAFT;
    const t = this.transformer;
    const dim = this.dim;
    const step = Math.max(1, t.backend.maxBatch);
    let out: { logits: Float32Array; hidden: Float32Array } | undefined;
    for (let from = 0; from < this.count; from += step) {
      const n = Math.min(step, this.count - from);
      const p0 = this.done + from;
      out = t.mtpForward(0, {
        slot: this.slot,
        startPos: p0,
        nextTokens: nextTokens(req, p0 + 1, n),
        hidden: this.rows.subarray(from * dim, (from + n) * dim),
        logits: from + n === this.count ? "last" : "none",
      }, this.pool);
    }
    this.done = seqLen;
    this.count = 0;
    const tokens: number[] = [];
    const probs: number[] = [];
    let pos = seqLen;
    for (;;) {
      const { token, prob } = best(out!.logits, req.pMin > 0);
      if (prob < req.pMin) break;
      tokens.push(token);
      probs.push(prob);
      if (tokens.length >= req.max || pos >= this.pool.spec.slotSize) break;
      // Reuse the layer on its own output: position pos + 1 fuses it with the token just proposed.
      out = t.mtpForward(0, { slot: this.slot, startPos: pos, nextTokens: [token], hidden: out!.hidden.subarray(out!.hidden.length - dim), logits: "last" }, this.pool);
      pos++;
    }
    return { tokens, probs };
  }

  dispose(): void {}
}

/** The best token and (if wanted) its softmax probability. */
export function best(logits: Float32Array, wantProb: boolean): { token: number; prob: number } {
  const token = argmax(logits);
  if (!wantProb) return { token, prob: 1 };
  const max = logits[token]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return { token, prob: 1 / sum };
}

/** The n tokens from position p of the sequence followed by req.next (which sits at position req.tokens.length). */
function nextTokens(req: ProposeRequest, p: number, n: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = p + i < req.tokens.length ? req.tokens[p + i]! : req.next;
  return out;
}
