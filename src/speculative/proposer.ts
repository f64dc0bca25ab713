// The one interface every draft source implements (MTP layer, prompt n-gram lookup, draft model):
// propose up to k tokens to follow a sequence, watch what the target computed, roll back. The
// driver owns the target's sequence; a proposer keeps only what it needs to propose cheaply.

/** Tokens a proposer suggests to follow the sequence, most likely continuation first. */
export interface Draft {
  readonly tokens: number[];
  /**
   * The proposer's own probability of each token (its confidence; 1 for a lookup). Drafts are
   * deterministic (the proposer's best guess), so verification treats each as a one-hot proposal.
   */
  readonly probs: number[];
}

export interface ProposeRequest {
  /**
   * The target sequence: every token whose keys/values it holds. This is the sequence's own
   * array (not a copy, so a step costs nothing per token of context): read it during the call only.
   */
  readonly tokens: readonly number[];
  /** The token just chosen (not in the cache yet; the next forward evaluates it with the draft). */
  readonly next: number;
  /** Most tokens to propose (>= 1). */
  readonly max: number;
  /** Stop before a token whose probability under the proposer is below this (0: never). */
  readonly pMin: number;
}

export interface Proposer {
  /** "ngram", "mtp", "draft". */
  readonly name: string;
  /** Whether the target's forward passes must return hidden states for `observe` (MTP). */
  readonly wantsHidden: boolean;
  /**
   * Told after every target forward pass of this sequence: `tokens` went in at positions
   * startPos.., with one hidden-state row per token when wantsHidden (else empty).
   */
  observe(startPos: number, tokens: readonly number[], hidden: Float32Array): void;
  /** A draft of at most req.max tokens (possibly none). */
  propose(req: ProposeRequest): Draft;
  /** The target sequence was cut back to its first `length` positions (rejected draft tokens). */
  rollback(length: number): void;
  /** Frees what the proposer holds (a draft model's sequence). Idempotent. */
  dispose(): void;
}

export const EMPTY_DRAFT: Draft = Object.freeze({ tokens: [], probs: [] }) as Draft;
