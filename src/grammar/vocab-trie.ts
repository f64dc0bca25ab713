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

  /** `arrays`: built already (VocabTrie.build, in slices); otherwise built here. */
  constructor(pieces: readonly Uint8Array[], endTokens: readonly number[], arrays?: TrieArrays) {
    this.vocabSize = pieces.length;
    this.words = (pieces.length + 31) >>> 5;
    this.pieces = pieces;
    this.endTokens = [...endTokens];
    let a = arrays;
    if (!a) {
      const steps = trieArrays(pieces, endTokens);
      for (let r = steps.next(); ; r = steps.next()) {
        if (r.done) {
          a = r.value;
          break;
        }
      }
    }
    this.size = a.size;
    this.maxDepth = a.maxDepth;
    this.byte = a.byte;
    this.depth = a.depth;
    this.end = a.end;
    this.parent = a.parent;
    this.token = a.token;
    this.sameBytes = a.sameBytes;
  }

  /** The trie built in slices of about `sliceMs`, with `pause()` between them. */
  static async build(pieces: readonly Uint8Array[], endTokens: readonly number[], pause: () => Promise<void>, sliceMs = 8): Promise<VocabTrie> {
    const steps = trieArrays(pieces, endTokens);
    let t0 = performance.now();
    for (;;) {
      const r = steps.next();
      if (r.done) return new VocabTrie(pieces, endTokens, r.value);
      if (performance.now() - t0 > sliceMs) {
        await pause();
        t0 = performance.now();
      }
    }
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

interface TrieArrays {
  readonly size: number;
  readonly maxDepth: number;
  readonly byte: Uint8Array;
  readonly depth: Uint16Array;
  readonly end: Int32Array;
  readonly parent: Int32Array;
  readonly token: Int32Array;
  readonly sameBytes: ReadonlyMap<number, readonly number[]>;
}

/** Every 4096 steps of a loop: a point where the build may pause. */
const STEP = 4096;

/**
 * The trie's arrays: tokens sorted by their bytes (bucketed by the first byte, each bucket sorted
 * alone: the same order as one sort), laid out in preorder. Yields every few thousand steps so a
 * caller can spread the work over event-loop turns (VocabTrie.build).
 */
function* trieArrays(pieces: readonly Uint8Array[], endTokens: readonly number[]): Generator<void, TrieArrays> {
  const isEnd = new Set(endTokens);
  // Bytes as a latin1 string: the engine's string comparison sorts them bytewise, fast.
  const keys: string[] = new Array(pieces.length);
  const buckets: number[][] = Array.from({ length: 256 }, () => []);
  for (let i = 0; i < pieces.length; i++) {
    if (i % STEP === 0) yield;
    if (pieces[i]!.length === 0 || isEnd.has(i)) continue;
    buckets[pieces[i]![0]!]!.push(i);
    keys[i] = String.fromCharCode.apply(null, pieces[i] as unknown as number[]);
  }
  const ids: number[] = [];
  for (const b of buckets) {
    if (b.length === 0) continue;
    b.sort((x, y) => (keys[x]! < keys[y]! ? -1 : keys[x]! > keys[y]! ? 1 : x - y));
    for (const id of b) ids.push(id);
    yield;
  }
  let total = 0;
  let maxDepth = 0;
  for (let k = 0; k < ids.length; k++) {
    if (k % STEP === 0) yield;
    const p = pieces[ids[k]!]!;
    const lcp = k === 0 ? 0 : commonPrefix(p, pieces[ids[k - 1]!]!);
    total += p.length - lcp;
    maxDepth = Math.max(maxDepth, p.length);
  }
  const byte = new Uint8Array(total);
  const depth = new Uint16Array(total);
  const end = new Int32Array(total);
  const parent = new Int32Array(total);
  const token = new Int32Array(total).fill(-1);
  const same = new Map<number, number[]>();
  // path[d] = node index of the current path at depth d+1.
  const path = new Int32Array(maxDepth + 1);
  let n = 0;
  let prev: Uint8Array | undefined;
  for (let k = 0; k < ids.length; k++) {
    if (k % STEP === 0) yield;
    const id = ids[k]!;
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
      byte[n] = p[d]!;
      depth[n] = d + 1;
      parent[n] = d === 0 ? -1 : path[d - 1]!;
      path[d] = n;
      n++;
    }
    token[path[p.length - 1]!] = id;
    prev = p;
  }
  // Subtree ends: the next node whose depth is not greater.
  const stack: number[] = [];
  for (let i = 0; i < total; i++) {
    if (i % (16 * STEP) === 0) yield;
    while (stack.length && depth[stack[stack.length - 1]!]! >= depth[i]!) end[stack.pop()!] = i;
    stack.push(i);
  }
  for (const i of stack) end[i] = total;
  return { size: total, maxDepth, byte, depth, end, parent, token, sameBytes: same };
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
 * vocabTrieOf without holding the thread for the whole build: the pieces are read and the trie
 * built (VocabTrie.build) in slices of about `sliceMs` with `pause()` (an event-loop turn) between
 * them, so other work (a server's streams) goes on; the longest slice is the sort of the tokens
 * sharing a first byte. One build per tokenizer, shared by concurrent callers.
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
      const t = tries.get(tokenizer) ?? (await VocabTrie.build(pieces, ends, pause, sliceMs));
      tries.set(tokenizer, t);
      return t;
    })();
    building.set(tokenizer, p);
    void p.finally(() => building.delete(tokenizer)).catch(() => {});
  }
  return p;
}
