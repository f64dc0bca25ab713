// Ids back to bytes and text, as llama.cpp's token_to_piece / detokenize do it.

import { charToByte, utf8Encoder } from "./unicode.ts";
import { TokenAttr, type Vocab } from "./vocab.ts";

const SPECIAL = TokenAttr.UNKNOWN | TokenAttr.CONTROL;
const EMPTY = new Uint8Array(0);

/** Raw bytes of one token; control/unknown tokens are empty unless `renderSpecial`. */
export class PieceTable {
  private readonly vocab: Vocab;
  private readonly cache: (Uint8Array | undefined)[];

  constructor(vocab: Vocab) {
    this.vocab = vocab;
    this.cache = new Array(vocab.tokens.length);
  }

  piece(id: number, renderSpecial: boolean): Uint8Array {
    const { vocab } = this;
    if (!Number.isInteger(id) || id < 0 || id >= vocab.tokens.length) {
      throw new RangeError(`token id ${id} is out of range (vocabulary has ${vocab.tokens.length} tokens)`);
    }
    if (!renderSpecial && vocab.attrs[id]! & SPECIAL) return EMPTY;
    let p = this.cache[id];
    if (p === undefined) {
      p = this.compute(id);
      this.cache[id] = p;
    }
    return p;
  }

  private compute(id: number): Uint8Array {
    const { vocab } = this;
    const attr = vocab.attrs[id]!;
    const text = vocab.tokens[id]!;
    if (attr & (SPECIAL | TokenAttr.USER_DEFINED)) return utf8Encoder.encode(text);
    if (vocab.kind === "bpe") {
      return attr & TokenAttr.NORMAL ? byteLevelDecode(text) : EMPTY;
    }
    if (attr & TokenAttr.NORMAL) return utf8Encoder.encode(text.replaceAll("\u2581", " "));
    if (attr & TokenAttr.BYTE) return Uint8Array.of(parseInt(text.slice(3, 5), 16));
    return EMPTY; // unused / undefined types render as nothing
  }
}

function byteLevelDecode(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const b = charToByte.get(ch);
    if (b !== undefined) {
      out.push(b);
      continue;
    }
    // Not a byte-level char: llama.cpp writes a visible marker instead of failing.
    const bytes = utf8Encoder.encode(ch);
    const marker = `[UNK_BYTE_0x${[...bytes].map((x) => x.toString(16).padStart(2, "0")).join("")}${text}]`;
    out.push(...utf8Encoder.encode(marker));
  }
  return Uint8Array.from(out);
}

/**
 * llama.cpp's clean_up_tokenization_spaces, three passes over the decoded text:
 *   " ?" " !" " ." " ,"  -> drop the space;
 *   " ' "                -> "'";
 *   " 's" " 'm" " 're" " 've" -> drop the space.
 * Written as a chain of streaming rewriters, each holding back at most a partial match (3 chars),
 * so that a stream decoder can emit text as it comes and still equal the whole-text result.
 */
export class SpaceCleaner {
  private held1 = ""; // pass 1: "" or " "
  private held2 = ""; // pass 2: "", " ", " '"
  private held3 = ""; // pass 3: "", " ", " '", " 'r", " 'v"

  push(text: string): string {
    let out = "";
    for (let i = 0; i < text.length; i++) out += this.pass1(text[i]!);
    return out;
  }

  flush(): string {
    let out = "";
    const h1 = this.held1;
    this.held1 = "";
    for (const c of h1) out += this.pass2(c);
    const h2 = this.held2;
    this.held2 = "";
    for (const c of h2) out += this.pass3(c);
    out += this.held3;
    this.held3 = "";
    return out;
  }

  private pass1(c: string): string {
    if (this.held1 === " ") {
      this.held1 = "";
      if (c === "?" || c === "!" || c === "." || c === ",") return this.pass2(c);
      const out = this.pass2(" ");
      return out + this.pass1(c);
    }
    if (c === " ") {
      this.held1 = " ";
      return "";
    }
    return this.pass2(c);
  }

  private pass2(c: string): string {
    const h = this.held2;
    if (h === "") {
      if (c === " ") {
        this.held2 = " ";
        return "";
      }
      return this.pass3(c);
    }
    if (h === " ") {
      if (c === "'") {
        this.held2 = " '";
        return "";
      }
      if (c === " ") return this.pass3(" ");
      this.held2 = "";
      return this.pass3(" ") + this.pass3(c);
    }
    // h === " '"
    this.held2 = "";
    if (c === " ") return this.pass3("'");
    return this.pass3(" ") + this.pass3("'") + this.pass2(c);
  }

  private pass3(c: string): string {
    const h = this.held3;
    if (h === "") {
      if (c === " ") {
        this.held3 = " ";
        return "";
      }
      return c;
    }
    if (h === " ") {
      if (c === "'") {
        this.held3 = " '";
        return "";
      }
      if (c === " ") return " ";
      this.held3 = "";
      return " " + c;
    }
    if (h === " '") {
      if (c === "s" || c === "m") {
        this.held3 = "";
        return "'" + c;
      }
      if (c === "r" || c === "v") {
        this.held3 = " '" + c;
        return "";
      }
      this.held3 = "";
      return " '" + this.pass3(c);
    }
    // h === " 'r" or " 'v"
    this.held3 = "";
    if (c === "e") return h.slice(1) + "e";
    return h + this.pass3(c);
  }
}

export function cleanSpaces(text: string): string {
  const cleaner = new SpaceCleaner();
  return cleaner.push(text) + cleaner.flush();
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
