// A smaller model with the same vocabulary as a proposer. It runs on the target's backend threads
// with its own KV pool; its slot mirrors the target sequence's slot. Its cache is kept in step
// lazily: each proposal first cuts it back to the longest prefix it shares with the target
// sequence (rejected drafts go; the check starts after what is known to agree), evaluates the
// target's new tokens, then drafts greedily one token per small forward pass.

import type { KvPool } from "../compute/backend.ts";
import type { Transformer } from "../model/transformer.ts";
import type { Draft, Proposer, ProposeRequest } from "./proposer.ts";
import { best } from "./mtp.ts";

export class DraftModelProposer implements Proposer {
  readonly name = "draft";
  readonly wantsHidden = false;
  private readonly draft: Transformer;
  private readonly pool: KvPool;
  private readonly slot: number;
  /** Tokens whose keys/values the draft's slot holds. */
  private readonly cells: number[];
  /**
   * Positions known equal in cells and the target sequence: everything the target evaluated at the
   * last proposal, less what it rolled back since. The prefix check starts here, so a step costs
   * the new tokens only, not the whole context.
   */
  private synced = 0;

  /** `cells` is the draft slot's record of its tokens, shared with the next user of the slot (a prompt cache). */
  constructor(draft: Transformer, pool: KvPool, slot: number, cells: number[]) {
    this.draft = draft;
    this.pool = pool;
    this.slot = slot;
    this.cells = cells;
  }

  observe(): void {}

  rollback(length: number): void {
    this.synced = Math.min(this.synced, length);
  }

  propose(req: ProposeRequest): Draft {
    const t = req.tokens;
    const cells = this.cells;
    // req.next is always evaluated: its logits propose
    const n = Math.min(cells.length, t.length);
    let common = Math.min(this.synced, n);
    while (common < n && cells[common] === t[common]) common++;
    cells.length = common;
    const slotSize = this.pool.spec.slotSize;
    const fresh = t.slice(common);
    fresh.push(req.next);
    let out = this.draft.forward([{ slot: this.slot, startPos: common, tokens: fresh, logits: "last" }], this.pool, { borrow: true })[0]!;
    for (const tok of fresh) cells.push(tok);
    this.synced = cells.length;
    const tokens: number[] = [];
    const probs: number[] = [];
    for (;;) {
      const { token, prob } = best(out.logits, req.pMin > 0);
      if (prob < req.pMin) break;
      tokens.push(token);
      probs.push(prob);
      if (tokens.length >= req.max || cells.length >= slotSize) break;
      out = this.draft.forward([{ slot: this.slot, startPos: cells.length, tokens: [token], logits: "last" }], this.pool, { borrow: true })[0]!;
      cells.push(token);
    }
    return { tokens, probs };
  }

  dispose(): void {}
}
