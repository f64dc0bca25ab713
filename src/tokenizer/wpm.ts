// WordPiece (BERT) as llama.cpp runs it (llm_tokenizer_wpm_session): normalize (first codepoint
// of NFD, lowercase), split on whitespace and around punctuation / CJK characters, then take the
// longest vocabulary match from the left with "▁" marking a word start; a word that cannot be
// spelled completely becomes the unknown token.

import {
  codepointFlags, codepointsOf, nfdFirstCodepoint, toLowerCodepoint,
  CPT_ACCENT_MARK, CPT_CONTROL, CPT_PUNCTUATION, CPT_SYMBOL, CPT_WHITESPACE,
} from "./unicode.ts";
import type { Vocab } from "./vocab.ts";

export function wpmTokenize(vocab: Vocab, text: string, output: number[]): void {
  for (const word of wpmWords(text)) {
    const w = "\u2581" + word;
    const before = output.length;
    let spelled = true;
    for (let i = 0; i < w.length && spelled;) {
      spelled = false;
      for (let j = Math.min(w.length, i + vocab.maxTokenLength); j > i; j--) {
        const id = vocab.tokenToId.get(w.slice(i, j));
        if (id !== undefined) {
          output.push(id);
          i = j;
          spelled = true;
          break;
        }
      }
    }
    if (!spelled) output.length = before;
    if (output.length === before && vocab.unk !== undefined) output.push(vocab.unk);
  }
}

function wpmWords(text: string): string[] {
  const words: string[] = [""];
  const last = () => words[words.length - 1]!;
  for (const raw of codepointsOf(text)) {
    const cpt = nfdFirstCodepoint(raw);
    const flags = codepointFlags(cpt);
    if (flags & CPT_WHITESPACE) {
      if (last() !== "") words.push("");
      continue;
    }
    if (cpt === 0 || cpt === 0xfffd || flags & CPT_CONTROL) continue;
    // Combining marks are dropped (BERT's strip_accents). llama.cpp of 2025-02 kept them, which made
    // e.g. "e\u0301" unknown; current llama.cpp drops them, and so do we.
    if (flags & CPT_ACCENT_MARK) continue;
    const s = String.fromCodePoint(toLowerCodepoint(cpt));
    if (flags & CPT_PUNCTUATION || (cpt < 0x7f && flags & CPT_SYMBOL) || isChineseChar(cpt)) {
      if (last() !== "") words.push("");
      words[words.length - 1] = s;
      words.push("");
    } else {
      words[words.length - 1] += s;
    }
  }
  if (last() === "") words.pop();
  return words;
}

function isChineseChar(c: number): boolean {
  return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) ||
    (c >= 0x20000 && c <= 0x2a6df) || (c >= 0x2a700 && c <= 0x2b73f) ||
    (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b920 && c <= 0x2ceaf) || // 0x2B920 (not 0x2B820) as HF's Rust code has it
    (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}
