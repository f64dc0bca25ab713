// SentencePiece-style BPE as llama.cpp runs it (llm_tokenizer_spm_session): start from single
// characters, repeatedly merge the adjacent pair whose concatenation is the highest-scoring
// vocabulary token (leftmost on ties), and spell whatever is left outside the vocabulary as
// <0xXX> byte tokens.

import { utf8Encoder } from "./unicode.ts";
import type { Vocab } from "./vocab.ts";

/** Tokenizes text that already has spaces escaped as "▁" (and the dummy prefix added). */
export function spmTokenize(vocab: Vocab, text: string, output: number[]): void {
  // Symbols are the characters of `text` in a linked list; a merged-away symbol gets length 0.
  const n = text.length;
  const { start, len, prev, next } = symbolArrays(n);
  let count = 0;
  for (let i = 0; i < n;) {
    const c = text.charCodeAt(i);
    const w = c >= 0xd800 && c <= 0xdbff && i + 1 < n ? 2 : 1;
    start[count] = i;
    len[count] = w;
    prev[count] = count - 1;
    i += w;
    next[count] = i === n ? -1 : count + 1;
    count++;
  }
  if (count === 0) return;

  const queue = sharedQueue;
  queue.clear();
  const { tokenToId, scores } = vocab;
  const tryAddBigram = (left: number, right: number) => {
    if (left === -1 || right === -1) return;
    const size = len[left]! + len[right]!;
    const id = tokenToId.get(text.substr(start[left]!, size));
    if (id !== undefined) queue.push(scores[id]!, left, right, size);
  };
  for (let i = 1; i < count; i++) tryAddBigram(i - 1, i);

  while (queue.size > 0) {
    const b = queue.pop();
    const left = queue.left[b]!, right = queue.right[b]!;
    // Stale entry: one side was merged into something else since it was queued.
    if (len[left] === 0 || len[right] === 0 || len[left]! + len[right]! !== queue.length[b]) continue;
    len[left] = len[left]! + len[right]!;
    len[right] = 0;
    next[left] = next[right]!;
    if (next[right]! >= 0) prev[next[right]!] = left;
    tryAddBigram(prev[left]!, left);
    tryAddBigram(left, next[left]!);
  }

  for (let i = 0; i !== -1; i = next[i]!) {
    const piece = text.substr(start[i]!, len[i]!);
    const id = tokenToId.get(piece);
    if (id !== undefined) {
      output.push(id);
      continue;
    }
    // Only single characters can be missing (merges always form vocabulary tokens): byte fallback.
    for (const byte of utf8Encoder.encode(piece)) output.push(byteToken(vocab, byte));
  }
}

// Scratch space reused across calls (tokenizing is synchronous): most calls are short, and
// allocating fresh arrays for each would cost more than the tokenizing.
let symbols = { start: new Int32Array(1024), len: new Int32Array(1024), prev: new Int32Array(1024), next: new Int32Array(1024) };

function symbolArrays(n: number) {
  if (symbols.start.length < n) {
    const cap = Math.max(n, symbols.start.length * 2);
    symbols = { start: new Int32Array(cap), len: new Int32Array(cap), prev: new Int32Array(cap), next: new Int32Array(cap) };
  }
  return symbols;
}

/**
 * Max-heap of candidate merges: highest score first, then leftmost. Entries live in parallel
 * arrays (no object per bigram) because long prompts queue millions of them.
 */
class BigramQueue {
  score = new Float32Array(256);
  left = new Int32Array(256);
  right = new Int32Array(256);
  length = new Int32Array(256);
  private heap = new Int32Array(256);
  private entries = 0;
  size = 0;

  clear(): void {
    this.entries = 0;
    this.size = 0;
  }

  push(score: number, left: number, right: number, length: number): void {
    if (this.entries === this.score.length) this.grow();
    const e = this.entries++;
    this.score[e] = score;
    this.left[e] = left;
    this.right[e] = right;
    this.length[e] = length;
    const heap = this.heap;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!this.before(e, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = e;
  }

  /** Removes the best entry and returns its index into the parallel arrays. */
  pop(): number {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap[--this.size]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.size) break;
      const r = l + 1;
      const child = r < this.size && this.before(heap[r]!, heap[l]!) ? r : l;
      if (!this.before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }

  private before(a: number, b: number): boolean {
    const sa = this.score[a]!, sb = this.score[b]!;
    return sa > sb || (sa === sb && this.left[a]! < this.left[b]!);
  }

  private grow(): void {
    const cap = this.score.length * 2;
    const widen = <T extends Float32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.score = widen(this.score, (k) => new Float32Array(k));
    this.left = widen(this.left, (k) => new Int32Array(k));
    this.right = widen(this.right, (k) => new Int32Array(k));
    this.length = widen(this.length, (k) => new Int32Array(k));
    this.heap = widen(this.heap, (k) => new Int32Array(k));
  }
}

const sharedQueue = new BigramQueue();

const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, "0");

/**
 * The first byte no token can spell ("<0xXX>", the byte as a one-char token, or the unknown
 * token), or undefined when every byte can be spelled: what SPM's byte fallback needs.
 */
export function unspellableByte(vocab: Vocab): string | undefined {
  if (vocab.unk !== undefined) return undefined;
  for (let b = 0; b < 256; b++) {
    if (vocab.tokenToId.get(`<0x${hex(b)}>`) === undefined && (b >= 0x80 || vocab.tokenToId.get(String.fromCharCode(b)) === undefined)) return `0x${hex(b)}`;
  }
  return undefined;
}

/** Token of a raw byte: "<0xXX>", else the byte itself as a one-char token, else unknown. */
export function byteToken(vocab: Vocab, byte: number): number {
  const id = vocab.tokenToId.get(`<0x${hex(byte)}>`) ?? (byte < 0x80 ? vocab.tokenToId.get(String.fromCharCode(byte)) : undefined);
  if (id !== undefined) return id;
  // llama.cpp aborts here; a vocabulary without byte tokens spells the character as unknown instead.
  if (vocab.unk !== undefined) return vocab.unk;
  throw new Error(`vocabulary has no token for byte 0x${hex(byte)} and no unknown token`);
}
