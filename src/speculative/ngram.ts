// Prompt lookup (n-gram) drafting for any model: the last n tokens are looked up in everything the
// sequence holds (prompt and output), and the tokens that followed their most recent earlier
// occurrence are proposed, trying the longest n first (prompt lookup decoding; llama.cpp's
// ngram-simple). It pays off where the output repeats its input: retelling, editing, code,
// extraction. An index of every n-gram's last end position is kept up to date as the sequence
// grows, so a proposal costs a few map lookups.

import type { Draft, Proposer, ProposeRequest } from "./proposer.ts";
import { EMPTY_DRAFT } from "./proposer.ts";

export interface NgramOptions {
  /** Shortest n-gram matched. Default 2. */
  readonly ngramMin?: number;
  /** Longest n-gram matched (tried first). Default 4. */
  readonly ngramMax?: number;
}

export const defaultNgram = { ngramMin: 2, ngramMax: 4 } as const;

export class NgramProposer implements Proposer {
  readonly name = "ngram";
  readonly wantsHidden = false;
  readonly ngramMin: number;
  readonly ngramMax: number;
  /** Per n (index n - ngramMin): n-gram key -> the last position e (its last token) with a token after it. */
  private index: Map<string, number>[];
  /** End positions below this are in the index. */
  private indexed = 0;

  constructor(opts: NgramOptions = {}) {
    const min = opts.ngramMin ?? defaultNgram.ngramMin;
    const max = opts.ngramMax ?? defaultNgram.ngramMax;
    if (!(Number.isInteger(min) && min >= 1)) throw new RangeError(`ngramMin must be an integer >= 1, got ${min}`);
    if (!(Number.isInteger(max) && max >= min && max <= 16)) throw new RangeError(`ngramMax must be an integer from ngramMin (${min}) to 16, got ${max}`);
    this.ngramMin = min;
    this.ngramMax = max;
    this.index = this.emptyIndex();
  }

  private emptyIndex(): Map<string, number>[] {
    return Array.from({ length: this.ngramMax - this.ngramMin + 1 }, () => new Map<string, number>());
  }

  observe(): void {}

  propose(req: ProposeRequest): Draft {
    // The history is the cached tokens, then req.next at position len - 1.
    const t = req.tokens;
    const next = req.next;
    const len = t.length + 1;
    // The history only grows while a sequence generates; anything else (a reused proposer) re-indexes.
    if (len < this.indexed + 1) {
      this.index = this.emptyIndex();
      this.indexed = 0;
    }
    // Index the n-grams ending at e for every e that now has a token after it (e <= len - 2).
    for (let e = this.indexed; e <= len - 2; e++) {
      for (let n = this.ngramMin; n <= this.ngramMax && n <= e + 1; n++) this.index[n - this.ngramMin]!.set(key(t, e, n), e);
    }
    this.indexed = Math.max(this.indexed, len - 1);
    for (let n = Math.min(this.ngramMax, len); n >= this.ngramMin; n--) {
      const e = this.index[n - this.ngramMin]!.get(n === 1 ? String(next) : `${key(t, len - 2, n - 1)},${next}`);
      if (e === undefined) continue;
      const end = Math.min(len, e + 1 + req.max);
      const tokens = t.slice(e + 1, Math.min(end, len - 1));
      if (end === len) tokens.push(next);
      return { tokens, probs: tokens.map(() => 1) };
    }
    return EMPTY_DRAFT;
  }

  rollback(): void {}

  dispose(): void {}
}

/** The n tokens ending at position e, as a map key. */
function key(t: readonly number[], e: number, n: number): string {
  let k = String(t[e - n + 1]);
  for (let i = e - n + 2; i <= e; i++) k += "," + t[i];
  return k;
}
