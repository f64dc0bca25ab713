// Splitting text on special-token texts before tokenizing the rest (llama.cpp's
// tokenizer_st_partition). User-defined tokens are always matched; control and unknown tokens
// only when the caller asks to parse special tokens.

import { TokenAttr, type Vocab } from "./vocab.ts";

export type Fragment = { readonly token: number } | { readonly text: string };

const isCSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

export function partitionSpecial(vocab: Vocab, text: string, parseSpecial: boolean): Fragment[] {
  let fragments: Fragment[] = text === "" ? [] : [{ text }];
  for (const id of vocab.specialTokens) {
    const attr = vocab.attrs[id]!;
    if (!parseSpecial && attr & (TokenAttr.CONTROL | TokenAttr.UNKNOWN)) continue;
    const special = vocab.tokens[id]!;
    if (!fragments.some((f) => "text" in f && f.text.includes(special))) continue;
    const out: Fragment[] = [];
    for (const f of fragments) {
      if (!("text" in f)) {
        out.push(f);
        continue;
      }
      let rest = f.text;
      for (;;) {
        const at = rest.indexOf(special);
        if (at < 0) break;
        let leftEnd = at;
        if (attr & TokenAttr.LSTRIP) while (leftEnd > 0 && isCSpace(rest.charCodeAt(leftEnd - 1))) leftEnd--;
        if (leftEnd > 0) out.push({ text: rest.slice(0, leftEnd) });
        out.push({ token: id });
        let rightStart = at + special.length;
        if (attr & TokenAttr.RSTRIP) while (rightStart < rest.length && isCSpace(rest.charCodeAt(rightStart))) rightStart++;
        rest = rest.slice(rightStart);
      }
      if (rest !== "") out.push({ text: rest });
    }
    fragments = out;
  }
  return fragments;
}
