// Byte-level BPE as llama.cpp runs it (llm_tokenizer_bpe_session): pre-tokenize into words, map
// each word's UTF-8 bytes to GPT-2's printable chars, then apply merges lowest rank first
// (leftmost on ties).

import { PriorityQueue } from "./priority-queue.ts";
import { CompiledRegexes, splitWords } from "./pre-tokenizer.ts";
import { byteLevelEncode } from "./unicode.ts";
import type { Vocab } from "./vocab.ts";

interface Bigram {
  left: number;
  right: number;
  text: string;
  rank: number;
}

const bigramBefore = (a: Bigram, b: Bigram) => a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

const WORD_CACHE_LIMIT = 50_000;

export class BpeTokenizer {
  private readonly vocab: Vocab;
  private readonly regexes: readonly string[];
  private readonly compiled = new CompiledRegexes();
  // Words recur a lot in real text; their ids never change.
  private readonly wordCache = new Map<string, readonly number[]>();

  constructor(vocab: Vocab) {
    this.vocab = vocab;
    this.regexes = vocab.pre!.regexes;
  }

  tokenize(text: string, output: number[]): void {
    for (const word of splitWords(text, this.regexes, this.compiled)) {
      const encoded = byteLevelEncode(word);
      let ids = this.wordCache.get(encoded);
      if (ids === undefined) {
        ids = this.tokenizeWord(encoded);
        if (this.wordCache.size >= WORD_CACHE_LIMIT) this.wordCache.clear();
        this.wordCache.set(encoded, ids);
      }
      for (const id of ids) output.push(id);
    }
  }

  private tokenizeWord(word: string): number[] {
    const { tokenToId, mergeRanks } = this.vocab;
    if (this.vocab.ignoreMerges) {
      const whole = tokenToId.get(word);
      if (whole !== undefined) return [whole];
    }
    // One symbol per byte-level char; merged-away symbols become "".
    const sym: string[] = [...word];
    const prev = sym.map((_, i) => i - 1);
    const next = sym.map((_, i) => (i + 1 < sym.length ? i + 1 : -1));
    const queue = new PriorityQueue<Bigram>(bigramBefore);
    const addBigram = (left: number, right: number) => {
      if (left === -1 || right === -1) return;
      const rank = mergeRanks.get(sym[left] + " " + sym[right]);
      if (rank === undefined) return;
      queue.push({ left, right, text: sym[left]! + sym[right]!, rank });
    };
    for (let i = 1; i < sym.length; i++) addBigram(i - 1, i);

    for (let bigram = queue.pop(); bigram !== undefined; bigram = queue.pop()) {
      const { left, right } = bigram;
      if (sym[left] === "" || sym[right] === "") continue;
      if (sym[left]! + sym[right]! !== bigram.text) continue; // outdated
      sym[left] = bigram.text;
      sym[right] = "";
      next[left] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = left;
      addBigram(prev[left]!, left);
      addBigram(left, next[left]!);
    }

    const ids: number[] = [];
    for (const s of sym) {
      if (s === "") continue;
      const id = tokenToId.get(s);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // llama.cpp looks up each UTF-8 byte of the symbol as a one-byte token; only ASCII can match.
      for (const ch of s) {
        const one = ch.charCodeAt(0) < 0x80 ? tokenToId.get(ch) : undefined;
        if (one !== undefined) ids.push(one);
      }
    }
    return ids;
  }
}
