// Unicode facts the tokenizers need, shaped like llama.cpp's unicode.cpp: one general-category
// flag per codepoint plus a White_Space bit, and GPT-2's byte <-> printable-char mapping.

export const CPT_UNDEFINED = 0x0001; // Cn (unassigned)
export const CPT_NUMBER = 0x0002; // \p{N}
export const CPT_LETTER = 0x0004; // \p{L}
export const CPT_SEPARATOR = 0x0008; // \p{Z}
export const CPT_ACCENT_MARK = 0x0010; // \p{M}
export const CPT_PUNCTUATION = 0x0020; // \p{P}
export const CPT_SYMBOL = 0x0040; // \p{S}
export const CPT_CONTROL = 0x0080; // \p{C} except Cn
export const CPT_CATEGORY_MASK = 0x00ff;
export const CPT_WHITESPACE = 0x0100; // Unicode White_Space property (what llama.cpp calls \s)

const categoryTests: ReadonlyArray<readonly [RegExp, number]> = [
  [/^\p{L}$/u, CPT_LETTER],
  [/^\p{N}$/u, CPT_NUMBER],
  [/^\p{P}$/u, CPT_PUNCTUATION],
  [/^\p{S}$/u, CPT_SYMBOL],
  [/^\p{M}$/u, CPT_ACCENT_MARK],
  [/^\p{Z}$/u, CPT_SEPARATOR],
  [/^\p{Cn}$/u, CPT_UNDEFINED],
  [/^\p{C}$/u, CPT_CONTROL],
];
const whiteSpaceTest = /^\p{White_Space}$/u;

// Computed on first use per codepoint: a full 0x110000 table would cost ~1 s at start-up.
// 0 means "not computed yet" (every real codepoint has at least one flag).
const flagCache = new Uint16Array(0x110000);

function computeFlags(cpt: number): number {
  const ch = String.fromCodePoint(cpt);
  let flags = 0;
  for (const [re, flag] of categoryTests) {
    if (re.test(ch)) {
      flags = flag;
      break;
    }
  }
  if (flags === 0) flags = CPT_UNDEFINED;
  if (whiteSpaceTest.test(ch)) flags |= CPT_WHITESPACE;
  return flags;
}

/** Category flag (one of CPT_*) | CPT_WHITESPACE; 0 for "no codepoint" (out of range). */
export function codepointFlags(cpt: number): number {
  if (cpt < 0 || cpt >= 0x110000) return 0;
  let f = flagCache[cpt]!;
  if (f === 0) {
    f = computeFlags(cpt);
    flagCache[cpt] = f;
  }
  return f;
}

/** Simple (1:1) lowercase mapping, as UnicodeData's lowercase column. */
export function toLowerCodepoint(cpt: number): number {
  if (cpt < 0x80) return cpt >= 0x41 && cpt <= 0x5a ? cpt + 32 : cpt;
  const lower = String.fromCodePoint(cpt).toLowerCase();
  // Full mappings that expand (U+0130 -> "i\u0307") keep their first codepoint, which is the simple one.
  return lower.codePointAt(0)!;
}

/** First codepoint of the canonical decomposition (llama.cpp's 1:1 "NFD" table). */
export function nfdFirstCodepoint(cpt: number): number {
  if (cpt < 0xc0) return cpt;
  return String.fromCodePoint(cpt).normalize("NFD").codePointAt(0)!;
}

/** Codepoints of a JS string; lone surrogates become U+FFFD as invalid UTF-8 would in llama.cpp. */
export function codepointsOf(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out.push(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
        i++;
        continue;
      }
    }
    out.push(c >= 0xd800 && c <= 0xdfff ? 0xfffd : c);
  }
  return out;
}

export function stringFromCodepoints(cpts: ArrayLike<number>, start = 0, end = cpts.length): string {
  let s = "";
  // fromCodePoint with many arguments is fast, but argument count is limited; go in slices.
  for (let i = start; i < end; i += 4096) {
    const stop = Math.min(end, i + 4096);
    s += String.fromCodePoint(...Array.prototype.slice.call(cpts, i, stop));
  }
  return s;
}

export const utf8Encoder = new TextEncoder();

// GPT-2 byte-level BPE represents each byte as a printable char: bytes that are printable
// latin-1 stand for themselves, the others are moved to U+0100 upwards in byte order.
function buildByteToChar(): string[] {
  const map: string[] = new Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = printable(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  }
  return map;
}

export const byteToChar: readonly string[] = buildByteToChar();
export const charToByte: ReadonlyMap<string, number> = new Map(byteToChar.map((c, b) => [c, b]));

/** UTF-8 bytes of `text`, each replaced by its byte-level char. */
export function byteLevelEncode(text: string): string {
  const bytes = utf8Encoder.encode(text);
  let s = "";
  for (const b of bytes) s += byteToChar[b];
  return s;
}
