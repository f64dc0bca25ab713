// The vocabulary as a byte trie stored in preorder arrays: node i has a byte, a depth, the index
// just past its subtree (so a dead prefix skips every token under it in one jump), its parent, and
// the token that ends there. Tokens sharing a prefix are checked once.

import type { Tokenizer } from "../tokenizer/index.ts";

export class VocabTrie {
  readonly vocabSize: number;
  /** Words of a token bitset over the vocabulary. */
  readonly words: number;
  readonly size: number;
  readonly byte: Uint8Array;
  readonly depth: Uint16Array;
  readonly end: Int32Array;
  readonly parent: Int32Array;
  /** First token ending at the node, or -1. */
  readonly token: Int32Array;
  /** Further tokens with the same bytes as an earlier one (rare). */
  readonly sameBytes: ReadonlyMap<number, readonly number[]>;
  readonly maxDepth: number;
  /** End-of-generation tokens (allowed exactly when the grammar is complete). */
  readonly endTokens: readonly number[];
  /** The bytes of every token (empty for control tokens, which a grammar never produces). */
  readonly pieces: readonly Uint8Array[];

  constructor(pieces: readonly Uint8Array[], endTokens: readonly number[]) {
    this.vocabSize = pieces.length;
    this.words = (pieces.length + 31) >>> 5;
    this.pieces = pieces;
    this.endTokens = [...endTokens];
    const ids: number[] = [];
    const isEnd = new Set(endTokens);
    // Bytes as a latin1 string: the engine's string comparison sorts them bytewise, fast.
    const keys: string[] = new Array(pieces.length);
    for (let i = 0; i < pieces.length; i++) {
      if (pieces[i]!.length === 0 || isEnd.has(i)) continue;
      ids.push(i);
      keys[i] = String.fromCharCode.apply(null, pieces[i] as unknown as number[]);
    }
    ids.sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : a - b));
    let total = 0;
    let maxDepth = 0;
    for (let k = 0; k < ids.length; k++) {
      const p = pieces[ids[k]!]!;
      const lcp = k === 0 ? 0 : commonPrefix(p, pieces[ids[k - 1]!]!);
      total += p.length - lcp;
      maxDepth = Math.max(maxDepth, p.length);
    }
    this.size = total;
    this.maxDepth = maxDepth;
    this.byte = new Uint8Array(total);
    this.depth = new Uint16Array(total);
    this.end = new Int32Array(total);
    this.parent = new Int32Array(total);
    this.token = new Int32Array(total).fill(-1);
    const same = new Map<number, number[]>();
    // path[d] = node index of the current path at depth d+1.
    const path = new Int32Array(maxDepth + 1);
    let n = 0;
    let prev: Uint8Array | undefined;
    for (const id of ids) {
      const p = pieces[id]!;
      const lcp = prev ? commonPrefix(p, prev) : 0;
      if (prev && lcp === p.length && lcp === prev.length) {
        const at = path[lcp - 1]!;
        const list = same.get(at) ?? [];
        list.push(id);
        same.set(at, list);
        continue;
      }
      for (let d = lcp; d < p.length; d++) {
        this.byte[n] = p[d]!;
        this.depth[n] = d + 1;
        this.parent[n] = d === 0 ? -1 : path[d - 1]!;
        path[d] = n;
        n++;
      }
      this.token[path[p.length - 1]!] = id;
      prev = p;
    }
    // Subtree ends: the next node whose depth is not greater.
    const stack: number[] = [];
    for (let i = 0; i < total; i++) {
      while (stack.length && this.depth[stack[stack.length - 1]!]! >= this.depth[i]!) this.end[stack.pop()!] = i;
      stack.push(i);
    }
    for (const i of stack) this.end[i] = total;
    this.sameBytes = same;
  }

  /** The child of `node` (-1: the root) with this byte, or -1. */
  child(node: number, byte: number): number {
    let c = node < 0 ? 0 : node + 1;
    const end = node < 0 ? this.size : this.end[node]!;
    while (c < end) {
      if (this.byte[c] === byte) return c;
      c = this.end[c]!;
    }
    return -1;
  }

  /**
   * Some tokens spelling exactly `bytes`, longest match first (a valid split, not necessarily the
   * tokenizer's own), or undefined when a byte starts no token.
   */
  spell(bytes: Uint8Array | readonly number[]): number[] | undefined {
    const out: number[] = [];
    let at = 0;
    while (at < bytes.length) {
      let node = -1;
      let best = -1;
      let bestLen = 0;
      for (let d = 0; at + d < bytes.length; d++) {
        node = this.child(node, bytes[at + d]!);
        if (node < 0) break;
        if (this.token[node]! >= 0) {
          best = this.token[node]!;
          bestLen = d + 1;
        }
      }
      if (best < 0) return undefined;
      out.push(best);
      at += bestLen;
    }
    return out;
  }

  /** Appends the token(s) ending at node i. */
  collectNode(i: number, out: number[]): void {
    const t = this.token[i]!;
    if (t >= 0) out.push(t);
    const more = this.sameBytes.get(i);
    if (more) out.push(...more);
  }

  /** Sets the bit of the token(s) ending at node i. */
  markNode(i: number, bits: Uint32Array): void {
    const t = this.token[i]!;
    if (t >= 0) bits[t >>> 5]! |= 1 << (t & 31);
    const more = this.sameBytes.get(i);
    if (more) for (const u of more) bits[u >>> 5]! |= 1 << (u & 31);
  }
}

function commonPrefix(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

const tries = new WeakMap<Tokenizer, VocabTrie>();
const building = new WeakMap<Tokenizer, Promise<VocabTrie>>();

/** The trie of a tokenizer's vocabulary (built once per tokenizer, about 0.2 s for 150k tokens). */
export function vocabTrieOf(tokenizer: Tokenizer): VocabTrie {
  let t = tries.get(tokenizer);
  if (!t) {
    const pieces: Uint8Array[] = [];
    const ends: number[] = [];
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      pieces.push(tokenizer.tokenToPiece(id));
      if (tokenizer.isEndOfGeneration(id)) ends.push(id);
    }
    t = new VocabTrie(pieces, ends);
    tries.set(tokenizer, t);
  }
  return t;
}

/**
 * vocabTrieOf without holding the thread for the whole build: the pieces are read in slices of
 * about `sliceMs` with `pause()` (an event-loop turn) between them, so other work (a server's
 * streams) goes on; the sort and the trie itself are one slice. One build per tokenizer, shared by
 * concurrent callers.
 */
export function vocabTrieOfAsync(tokenizer: Tokenizer, pause: () => Promise<void>, sliceMs = 8): Promise<VocabTrie> {
  const done = tries.get(tokenizer);
  if (done) return Promise.resolve(done);
  let p = building.get(tokenizer);
  if (!p) {
    p = (async () => {
      const pieces: Uint8Array[] = [];
      const ends: number[] = [];
      let t0 = performance.now();
      for (let id = 0; id < tokenizer.vocabSize; id++) {
        pieces.push(tokenizer.tokenToPiece(id));
        if (tokenizer.isEndOfGeneration(id)) ends.push(id);
        if ((id & 255) === 255 && performance.now() - t0 > sliceMs) {
          await pause();
          t0 = performance.now();
        }
      }
      await pause();
      const t = tries.get(tokenizer) ?? new VocabTrie(pieces, ends);
      tries.set(tokenizer, t);
      return t;
    })();
    building.set(tokenizer, p);
    void p.finally(() => building.delete(tokenizer)).catch(() => {});
  }
  return p;
}
