// Sequences carved from the backend's KV pool. The pool has `parallel` slots of `contextSize`
// positions; a sequence owns one slot while it lives and knows which tokens its slot holds (the
// only copy of its length: mlx-lm's KVCache keeps its offset the same way). A released slot keeps
// its tokens, so a later prompt that starts the same way reuses them (the prompt cache).

import type { KvPool } from "../compute/backend.ts";

/** Every slot of the KV pool is taken by a live sequence. */
export class KvPoolExhaustedError extends Error {
  constructor(slots: number) {
    super(
      `no free sequence: all ${slots} KV cache slot${slots === 1 ? " is" : "s are"} in use; release a sequence first, or load the model with a larger \`parallel\``,
    );
    this.name = "KvPoolExhaustedError";
  }
}

/** Copies a slot's cells to another (the backend's copyKv). */
type CopyCells = (src: number, dst: number, n: number) => void;

/** Which slots are free, what each holds, and the FIFO of callers waiting for one. */
export class SlotTable {
  readonly slots: number;
  readonly slotSize: number;
  readonly pool: KvPool;
  /** Tokens whose keys/values each slot holds (kept after release: the prompt cache). */
  private readonly contents: number[][];
  private readonly taken: boolean[];
  private readonly lastUse: number[];
  private clock = 0;
  private readonly waiters: { prefer: readonly number[]; resolve: (s: Sequence) => void; reject: (e: unknown) => void }[] = [];
  private readonly copyCells: CopyCells;
  private closedError: Error | undefined;

  constructor(pool: KvPool, copyCells: CopyCells) {
    this.pool = pool;
    this.slots = pool.spec.slots;
    this.slotSize = pool.spec.slotSize;
    this.contents = Array.from({ length: this.slots }, () => []);
    this.taken = new Array<boolean>(this.slots).fill(false);
    this.lastUse = new Array<number>(this.slots).fill(0);
    this.copyCells = copyCells;
  }

  /** Callers waiting in acquireWhenFree. */
  get waiting(): number {
    return this.waiters.length;
  }

  get freeSlots(): number {
    return this.taken.reduce((n, t) => n + (t ? 0 : 1), 0);
  }

  /**
   * A sequence on a free slot, or a KvPoolExhaustedError. With `prefer`, the free slot whose
   * cached tokens share the longest prefix with it is picked and the sequence keeps that prefix
   * (never all of `prefer`: the caller needs the logits of its last token), or copies a longer one
   * from a live sequence; otherwise it starts empty.
   */
  acquire(prefer?: readonly number[]): Sequence {
    this.checkOpen();
    const slot = this.pick(prefer);
    if (slot < 0) throw new KvPoolExhaustedError(this.slots);
    return this.take(slot, prefer);
  }

  /** Like acquire, but waits (first come, first served) while every slot is taken. */
  acquireWhenFree(prefer: readonly number[] | undefined, signal?: AbortSignal): Promise<Sequence> {
    this.checkOpen();
    signal?.throwIfAborted();
    if (this.waiters.length === 0) {
      const slot = this.pick(prefer);
      if (slot >= 0) return Promise.resolve(this.take(slot, prefer));
    }
    return new Promise<Sequence>((resolve, reject) => {
      const w = { prefer: prefer ?? [], resolve, reject };
      this.waiters.push(w);
      signal?.addEventListener(
        "abort",
        () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            reject(signal.reason);
          }
        },
        { once: true },
      );
    });
  }

  /** Fails every waiter and any later acquire (the model was disposed). */
  close(error: Error): void {
    this.closedError = error;
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  private checkOpen(): void {
    if (this.closedError) throw this.closedError;
  }

  private pick(prefer: readonly number[] | undefined): number {
    let best = -1;
    let bestCommon = -1;
    for (let s = 0; s < this.slots; s++) {
      if (this.taken[s]) continue;
      const common = prefer ? commonPrefix(this.contents[s]!, prefer) : 0;
      // Longest shared prefix first, then the least recently used slot.
      if (common > bestCommon || (common === bestCommon && this.lastUse[s]! < this.lastUse[best]!)) {
        best = s;
        bestCommon = common;
      }
    }
    return best;
  }

  private take(slot: number, prefer: readonly number[] | undefined): Sequence {
    this.taken[slot] = true;
    this.lastUse[slot] = ++this.clock;
    const cells = this.contents[slot]!;
    const keep = prefer ? Math.min(commonPrefix(cells, prefer), prefer.length - 1) : 0;
    cells.length = Math.max(0, keep);
    if (prefer) {
      // A live sequence may hold a longer prefix (a shared system prompt being answered right now):
      // copying its cells costs far less than computing them again.
      let from = -1;
      let best = cells.length;
      for (let s = 0; s < this.slots; s++) {
        if (!this.taken[s] || s === slot) continue;
        const n = Math.min(commonPrefix(this.contents[s]!, prefer), prefer.length - 1);
        if (n > best) {
          best = n;
          from = s;
        }
      }
      if (from >= 0) {
        this.copyCells(from, slot, best);
        cells.length = 0;
        cells.push(...this.contents[from]!.slice(0, best));
      }
    }
    return new Sequence(this, slot, cells);
  }

  /** @internal: a sequence gives its slot back (its tokens stay as cache). */
  giveBack(slot: number): void {
    this.taken[slot] = false;
    this.lastUse[slot] = ++this.clock;
    const w = this.waiters.shift();
    if (w) w.resolve(this.take(slot, w.prefer.length > 0 ? w.prefer : undefined));
  }

  /** @internal: a new sequence holding a copy of `from`'s cells. */
  forkOf(from: Sequence): Sequence {
    const seq = this.acquire();
    this.copyCells(from.slot, seq.slot, from.length);
    seq.cells.push(...from.tokens);
    return seq;
  }
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * One sequence of tokens with its keys and values in the KV pool (llama.cpp's seq_id): grown by
 * forward passes, rolled back by `truncate`, copied by `fork`, given back by `release`.
 */
export class Sequence {
  private readonly table: SlotTable;
  /** The pool slot holding this sequence's cells. */
  readonly slot: number;
  /** @internal: the tokens whose keys/values the slot holds, in position order. */
  readonly cells: number[];
  private released = false;

  /** @internal: sequences come from Model.createSequence (or fork). */
  constructor(table: SlotTable, slot: number, cells: number[]) {
    this.table = table;
    this.slot = slot;
    this.cells = cells;
  }

  /** Positions in the cache (the next token goes at this position). */
  get length(): number {
    return this.cells.length;
  }

  /** Most positions this sequence can hold (the model's contextSize). */
  get capacity(): number {
    return this.table.slotSize;
  }

  /** The tokens in the cache, in order. */
  get tokens(): readonly number[] {
    return this.cells;
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** Rolls back to the first n positions (rejected draft tokens, an edited conversation). */
  truncate(n: number): void {
    this.checkLive();
    if (!(Number.isInteger(n) && n >= 0 && n <= this.cells.length)) {
      throw new RangeError(`truncate(${n}): a sequence of length ${this.cells.length} can be truncated to 0..${this.cells.length}`);
    }
    this.cells.length = n;
  }

  /** A new sequence with a copy of this one's cells (a shared system prompt computed once). */
  fork(): Sequence {
    this.checkLive();
    return this.table.forkOf(this);
  }

  /** Gives the slot back to the pool; its tokens stay there as a prompt cache. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.table.giveBack(this.slot);
  }

  /** @internal */
  checkLive(): void {
    if (this.released) throw new Error("this sequence has been released");
  }

  /** @internal: whether this sequence belongs to a table. */
  belongsTo(table: SlotTable): boolean {
    return this.table === table;
  }
}
