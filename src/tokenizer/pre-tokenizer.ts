// Byte-level BPE pre-tokenization: split text into words the way llama.cpp's unicode_regex_split
// does, so that ids match llama.cpp (and, through its test vectors, Hugging Face).
//
// llama.cpp applies a list of regexes in turn; each one splits every piece left by the previous
// one into matches and the gaps between them. Two patterns (GPT-2's and Llama-3's) run through
// hand-written matchers; every other pattern runs through std::regex on a "collapsed" text in
// which each non-ASCII codepoint is replaced by one byte standing for its Unicode category, and
// \p{..} in the pattern by a class of that byte plus the ASCII members llama.cpp lists. We do the
// same with JS RegExp so the quirks (e.g. "~" is not \p{S}; \s is White_Space) carry over.

import {
  codepointFlags, codepointsOf, stringFromCodepoints, toLowerCodepoint,
  CPT_ACCENT_MARK, CPT_CATEGORY_MASK, CPT_LETTER, CPT_NUMBER, CPT_PUNCTUATION, CPT_SYMBOL, CPT_WHITESPACE,
} from "./unicode.ts";

// ---- the patterns, by llama.cpp pre-tokenizer name -------------------------------------------

const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const LLAMA3 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_ORIGINAL =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Non-ASCII written as escapes: editors may NFC-normalise literal compatibility characters.
const DEEPSEEK_LLM_LETTERS =
  "\\s?[A-Za-z\\u00B5\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u01BA\\u01BC-\\u01BF\\u01C4-\\u0293\\u0295-\\u02AF\\u0370-\\u0373\\u0376\\u0377\\u037B-\\u037D\\u037F\\u0386\\u0388-\\u038A\\u038C\\u038E-\\u03A1\\u03A3-\\u03F5\\u03F7-\\u0481\\u048A-\\u052F\\u0531-\\u0556\\u10A0-\\u10C5\\u13A0-\\u13F5\\u13F8-\\u13FD\\u1C90-\\u1CBA\\u1CBD-\\u1CBF\\u1D00-\\u1D2B\\u1D6B-\\u1D77\\u1D79-\\u1D9A\\u1E00-\\u1F15\\u1F18-\\u1F1D\\u1F20-\\u1F45\\u1F48-\\u1F4D\\u1F50-\\u1F57\\u1F59\\u1F5B\\u1F5D\\u1F5F-\\u1F7D\\u1F80-\\u1FB4\\u1FB6-\\u1FBC\\u1FBE\\u1FC2-\\u1FC4\\u1FC6-\\u1FCC\\u1FD0-\\u1FD3\\u1FD6-\\u1FDB\\u1FE0-\\u1FEC\\u1FF2-\\u1FF4\\u1FF6-\\u1FFC\\u2102\\u2107\\u210A-\\u2113\\u2115\\u2119-\\u211D\\u2124\\u2126\\u2128\\u212A-\\u212D\\u212F-\\u2134\\u2139\\u213C-\\u213F\\u2145-\\u2149\\u214E\\u2183\\u2184\\u2C00-\\u2C7B\\u2C7E-\\u2CE4\\u2CEB-\\u2CEE\\u2CF2\\u2CF3\\uA640-\\uA66D\\uA680-\\uA69B\\uA722-\\uA76F\\uA771-\\uA787\\uA78B-\\uA78E\\uAB70-\\uABBF\\uFB00-\\uFB06\\uFB13-\\uFB17\\uFF21-\\uFF3A\\uFF41-\\uFF5A\\u{10400}-\\u{1044F}\\u{104B0}-\\u{104D3}\\u{104D8}-\\u{104FB}\\u{10C80}-\\u{10CB2}\\u{10CC0}-\\u{10CF2}\\u{118A0}-\\u{118DF}\\u{1E900}-\\u{1E943}]+";
const CJK_RUNS = "[\\u4E00-\\u9FA5\\u0800-\\u4E00\\uAC00-\\uD7FF]+";
const SPLIT_ON_PUNCT_RUNS = " ?[^(\\s|.,!?\\u2026\\u3002\\uFF0C\\u3001\\u0964\\u06D4\\u060C)]+";

/** How a llama.cpp pre-tokenizer type splits text, and the vocab flags it implies. */
export interface PreTokenizerSpec {
  readonly regexes: readonly string[];
  /** llama.cpp's clean_spaces (decode removes " ," " ." ... ); BPE default is true. */
  readonly cleanSpaces: boolean;
  /** Use a whole word as one token when the vocab has it, skipping merges. */
  readonly ignoreMerges: boolean;
  /** Default for add_bos before tokenizer.ggml.add_bos_token overrides it. */
  readonly addBos: boolean;
  /** Some types unset the default BOS id (chatglm). */
  readonly noBos?: boolean;
}

function spec(regexes: string[], opts: Partial<Omit<PreTokenizerSpec, "regexes">> = {}): PreTokenizerSpec {
  return { regexes, cleanSpaces: opts.cleanSpaces ?? true, ignoreMerges: opts.ignoreMerges ?? false, addBos: opts.addBos ?? false, noBos: opts.noBos };
}

const STARCODER_LIKE = () => spec(["\\p{N}", GPT2]);
const STARCODER_LIKE_NO_CLEAN = () => spec(["\\p{N}", GPT2], { cleanSpaces: false });
const GPT2_LIKE = () => spec([GPT2]);
const LLAMA3_LIKE = () => spec([LLAMA3], { ignoreMerges: true, addBos: true });

/** `tokenizer.ggml.pre` values llama.cpp (2025-02) accepts, and what each one means. */
export const preTokenizers: ReadonlyMap<string, PreTokenizerSpec> = new Map<string, PreTokenizerSpec>([
  ["default", spec(["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"])],
  ["llama3", LLAMA3_LIKE()],
  ["llama-v3", LLAMA3_LIKE()],
  ["llama-bpe", LLAMA3_LIKE()],
  ["falcon3", LLAMA3_LIKE()],
  ["dbrx", spec([LLAMA3])],
  ["smaug-bpe", spec([LLAMA3])],
  ["deepseek-llm", spec(["[\r\n]", DEEPSEEK_LLM_LETTERS, "\\s?[!-/:-~\\uFF01-\\uFF0F\\uFF1A-\\uFF5E\\u2018-\\u201F\\u3000-\\u3002]+", "\\s+$", CJK_RUNS, "\\p{N}+"], { cleanSpaces: false })],
  ["deepseek-v3", spec([
    "\\p{N}{1,3}",
    "[\\u4E00-\\u9FA5\\u3040-\\u309F\\u30A0-\\u30FF]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
  ], { cleanSpaces: false })],
  ["deepseek-coder", spec(["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_RUNS, "\\p{N}"], { cleanSpaces: false })],
  ["falcon", spec(["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]"])],
  ["mpt", GPT2_LIKE()],
  ["starcoder", STARCODER_LIKE()],
  ["refact", STARCODER_LIKE()],
  ["command-r", STARCODER_LIKE_NO_CLEAN()],
  ["smollm", STARCODER_LIKE_NO_CLEAN()],
  ["codeshell", STARCODER_LIKE()],
  ["exaone", STARCODER_LIKE()],
  ["minerva-7b", STARCODER_LIKE()],
  ["gpt-2", GPT2_LIKE()],
  ["phi-2", GPT2_LIKE()],
  ["jina-es", GPT2_LIKE()],
  ["jina-de", GPT2_LIKE()],
  ["gigachat", GPT2_LIKE()],
  ["jina-v1-en", GPT2_LIKE()],
  ["jina-v2-es", GPT2_LIKE()],
  ["jina-v2-de", GPT2_LIKE()],
  ["jina-v2-code", GPT2_LIKE()],
  ["roberta-bpe", GPT2_LIKE()],
  ["olmo", GPT2_LIKE()],
  ["jais", GPT2_LIKE()],
  ["qwen2", spec([QWEN2], { cleanSpaces: false })],
  ["deepseek-r1-qwen", spec([QWEN2], { cleanSpaces: false })],
  ["stablelm2", spec([QWEN2])],
  ["megrez", spec([QWEN2])],
  ["chatglm-bpe", spec([LLAMA3], { noBos: true })],
  ["poro-chat", spec([SPLIT_ON_PUNCT_RUNS], { cleanSpaces: false })],
  ["bloom", spec([SPLIT_ON_PUNCT_RUNS])],
  ["gpt3-finnish", spec([SPLIT_ON_PUNCT_RUNS])],
  ["viking", spec([SPLIT_ON_PUNCT_RUNS, "\\p{N}"], { cleanSpaces: false })],
  ["tekken", spec([
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ], { cleanSpaces: false, ignoreMerges: true, addBos: true })],
  ["chameleon", spec([
    "<sentinel:[0-9]+>",
    "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
    "([\\t\\n]|    |  )",
    "\\p{N}",
    "[\\p{P}!-/:-@\\[-`{-~]",
    GPT2,
  ], { cleanSpaces: false, addBos: true })],
]);

/** The original Hugging Face regexes of the two common families, for recognising tokenizer.json files. */
export const hfPatterns = {
  llama3: LLAMA3_ORIGINAL,
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
} as const;

// ---- splitting ---------------------------------------------------------------------------------

const OUT_OF_RANGE = -1;

type CustomSplit = (cpts: readonly number[], offsets: readonly number[]) => number[];

/**
 * Split `text` into words; returns the words as strings (not yet byte-level encoded).
 * Offsets are kept in codepoints, as llama.cpp does.
 */
export function splitWords(text: string, regexes: readonly string[], compiled: CompiledRegexes): string[] {
  const cpts = codepointsOf(text);
  if (cpts.length === 0) return [];
  let offsets: number[] = [cpts.length];
  let collapsed: string | undefined;
  let wideText: number[] | undefined;
  for (const pattern of regexes) {
    const custom = customSplitters.get(pattern);
    if (custom) {
      offsets = custom(cpts, offsets);
      continue;
    }
    const re = compiled.get(pattern);
    if (re.collapsed) {
      collapsed ??= collapseText(cpts);
      offsets = splitWithRegex(re.regex, offsets, (start, end) => collapsed!.slice(start, end), false);
    } else {
      wideText ??= cpts.map((c) => (c > 0x7f && (codepointFlags(c) & CPT_WHITESPACE) ? 0x0b : c));
      offsets = splitWithRegex(re.regex, offsets, (start, end) => stringFromCodepoints(wideText!, start, end), true);
    }
  }
  const words: string[] = [];
  let start = 0;
  for (const len of offsets) {
    words.push(stringFromCodepoints(cpts, start, start + len));
    start += len;
  }
  return words;
}

/** Each chunk of `offsets` is split into regex matches and the gaps between them. */
function splitWithRegex(
  regex: RegExp, offsets: readonly number[], chunkText: (start: number, end: number) => string, unicode: boolean,
): number[] {
  const out: number[] = [];
  let start = 0;
  for (const len of offsets) {
    const s = chunkText(start, start + len);
    start += len;
    regex.lastIndex = 0;
    let prevEnd = 0; // in UTF-16 units of s
    let prevEndCp = 0; // same position in codepoints
    for (;;) {
      const m = regex.exec(s);
      if (m === null) break;
      const matchStart = m.index;
      const matchEnd = matchStart + m[0].length;
      if (matchEnd === matchStart) {
        // Empty matches add no piece; step past them as regex iterators do.
        regex.lastIndex = matchEnd + (unicode && isHighSurrogateAt(s, matchEnd) ? 2 : 1);
        if (regex.lastIndex > s.length) break;
        continue;
      }
      if (matchStart > prevEnd) {
        const gap = unicode ? countCodepoints(s, prevEnd, matchStart) : matchStart - prevEnd;
        out.push(gap);
        prevEndCp += gap;
      }
      const n = unicode ? countCodepoints(s, matchStart, matchEnd) : matchEnd - matchStart;
      out.push(n);
      prevEndCp += n;
      prevEnd = matchEnd;
    }
    if (prevEndCp < len) out.push(len - prevEndCp);
  }
  return out;
}

function isHighSurrogateAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  return c >= 0xd800 && c <= 0xdbff;
}

function countCodepoints(s: string, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xdc00 || c > 0xdfff) n++;
  }
  return n;
}

// One char per codepoint: ASCII stays, other whitespace becomes \v, other codepoints become a
// marker for their category (llama.cpp's text_collapsed).
const categoryMarker: ReadonlyMap<number, string> = new Map([
  [CPT_NUMBER, "\xD1"],
  [CPT_LETTER, "\xD2"],
  [CPT_PUNCTUATION, "\xD3"],
  [CPT_ACCENT_MARK, "\xD4"],
  [CPT_SYMBOL, "\xD5"],
]);
const OTHER_MARKER = "\xD0";

function collapseText(cpts: readonly number[]): string {
  const parts: string[] = new Array(cpts.length);
  for (let i = 0; i < cpts.length; i++) {
    const c = cpts[i]!;
    if (c < 0x80) {
      parts[i] = String.fromCharCode(c);
      continue;
    }
    const f = codepointFlags(c);
    parts[i] = f & CPT_WHITESPACE ? "\x0B" : categoryMarker.get(f & CPT_CATEGORY_MASK) ?? OTHER_MARKER;
  }
  return parts.join("");
}

// What \p{X} stands for in a collapsed pattern: the marker plus the ASCII members llama.cpp lists
// (note: llama.cpp's ASCII \p{S} omits "~").
const collapsedClassBody: ReadonlyMap<string, string> = new Map([
  ["N", "\\xD1\\x30-\\x39"],
  ["L", "\\xD2\\x41-\\x5A\\x61-\\x7A"],
  ["P", "\\xD3\\x21-\\x23\\x25-\\x2A\\x2C-\\x2F\\x3A-\\x3B\\x3F-\\x40\\x5B-\\x5D\\x5F\\x7B\\x7D"],
  ["M", "\\xD4"],
  ["S", "\\xD5\\x24\\x2B\\x3C-\\x3E\\x5E\\x60\\x7C"],
]);

interface CompiledRegex {
  readonly regex: RegExp;
  readonly collapsed: boolean;
}

/** Compiled JS forms of llama.cpp patterns, cached per tokenizer. */
export class CompiledRegexes {
  private readonly cache = new Map<string, CompiledRegex>();

  get(pattern: string): CompiledRegex {
    let c = this.cache.get(pattern);
    if (!c) {
      c = compilePattern(pattern);
      this.cache.set(pattern, c);
    }
    return c;
  }
}

function compilePattern(pattern: string): CompiledRegex {
  const usesCategories = /\\p\{[NLPMS]\}/.test(pattern);
  if (usesCategories) {
    if ([...pattern].some((ch) => ch.codePointAt(0)! >= 0x80)) {
      throw new Error(`pre-tokenizer regex mixes \\p{..} with non-ASCII characters (unsupported, as in llama.cpp): ${pattern}`);
    }
    return { regex: new RegExp(rewritePattern(pattern, true), "g"), collapsed: true };
  }
  return { regex: new RegExp(rewritePattern(pattern, false), "gu"), collapsed: false };
}

// Rewrites \p{X} for the collapsed text, and \s / \S to the C-locale whitespace set that
// std::regex uses (JS \s would also match U+FEFF and others).
function rewritePattern(pattern: string, collapsed: boolean): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "\\" && i + 1 < pattern.length) {
      const next = pattern[i + 1]!;
      if (collapsed && next === "p" && pattern[i + 2] === "{" && pattern[i + 4] === "}") {
        const body = collapsedClassBody.get(pattern[i + 3]!);
        if (body !== undefined) {
          out += inClass ? body : `[${body}]`;
          i += 4;
          continue;
        }
      }
      if (next === "s") {
        out += inClass ? "\\t\\n\\v\\f\\r " : "[\\t\\n\\v\\f\\r ]";
        i += 1;
        continue;
      }
      if (next === "S" && !inClass) {
        out += "[^\\t\\n\\v\\f\\r ]";
        i += 1;
        continue;
      }
      out += ch + next;
      i += 1;
      continue;
    }
    if (ch === "[" && !inClass) inClass = true;
    else if (ch === "]" && inClass) inClass = false;
    out += ch;
  }
  return out;
}

// ---- llama.cpp's hand-written matchers -------------------------------------------------------

const APOSTROPHE = 0x27, SPACE = 0x20, CR = 0x0d, LF = 0x0a;
const isContractionOne = (c: number) => c === 0x73 /* s */ || c === 0x74 /* t */ || c === 0x6d /* m */ || c === 0x64; /* d */
const isContractionTwo = (a: number, b: number) =>
  (a === 0x72 && b === 0x65) /* re */ || (a === 0x76 && b === 0x65) /* ve */ || (a === 0x6c && b === 0x6c); /* ll */

function forEachChunk(
  cpts: readonly number[], offsets: readonly number[],
  body: (ini: number, end: number, cpt: (p: number) => number, flags: (p: number) => number, emit: (end: number) => number) => void,
): number[] {
  const out: number[] = [];
  let start = 0;
  for (const len of offsets) {
    const ini = start, end = start + len;
    start = end;
    const cpt = (p: number) => (p >= ini && p < end ? cpts[p]! : OUT_OF_RANGE);
    const flags = (p: number) => (p >= ini && p < end ? codepointFlags(cpts[p]!) : 0);
    let prevEnd = ini;
    const emit = (e: number) => {
      const n = e - prevEnd;
      if (n > 0) out.push(n);
      prevEnd = e;
      return n;
    };
    body(ini, end, cpt, flags, emit);
  }
  return out;
}

const WS = CPT_WHITESPACE, L = CPT_LETTER, N = CPT_NUMBER;

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
const splitGpt2: CustomSplit = (cpts, offsets) =>
  forEachChunk(cpts, offsets, (ini, end, cpt, flags, emit) => {
    for (let pos = ini; pos < end;) {
      const c = cpt(pos);
      const f = flags(pos);
      if (c === APOSTROPHE && pos + 1 < end) {
        const n1 = cpt(pos + 1);
        if (isContractionOne(n1)) {
          pos += emit(pos + 2);
          continue;
        }
        if (pos + 2 < end && isContractionTwo(n1, cpt(pos + 2))) {
          pos += emit(pos + 3);
          continue;
        }
      }
      let f2 = c === SPACE ? flags(pos + 1) : f;
      if (f2 & L) {
        if (c === SPACE) pos++;
        while (f2 & L) f2 = flags(++pos);
        emit(pos);
        continue;
      }
      if (f2 & N) {
        if (c === SPACE) pos++;
        while (f2 & N) f2 = flags(++pos);
        emit(pos);
        continue;
      }
      if (!(f2 & (WS | L | N)) && f2 !== 0) {
        if (c === SPACE) pos++;
        while (!(f2 & (WS | L | N)) && f2 !== 0) f2 = flags(++pos);
        emit(pos);
        continue;
      }
      let nws = 0;
      while (flags(pos + nws) & WS) nws++;
      // \s+(?!\S): leave the last whitespace to prefix the next word
      if (nws > 1 && cpt(pos + nws) !== OUT_OF_RANGE) {
        pos += nws - 1;
        emit(pos);
        continue;
      }
      if (nws > 0) {
        pos += nws;
        emit(pos);
        continue;
      }
      emit(++pos);
    }
  });

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
const splitLlama3: CustomSplit = (cpts, offsets) =>
  forEachChunk(cpts, offsets, (ini, end, cpt, flags, emit) => {
    for (let pos = ini; pos < end;) {
      const c = cpt(pos);
      const f = flags(pos);
      if (c === APOSTROPHE && pos + 1 < end) {
        const n1 = toLowerCodepoint(cpt(pos + 1));
        if (isContractionOne(n1)) {
          pos += emit(pos + 2);
          continue;
        }
        if (pos + 2 < end && isContractionTwo(n1, toLowerCodepoint(cpt(pos + 2)))) {
          pos += emit(pos + 3);
          continue;
        }
      }
      if (!(c === CR || c === LF || f & N)) {
        if (f & L || flags(pos + 1) & L) {
          pos++;
          while (flags(pos) & L) pos++;
          emit(pos);
          continue;
        }
      }
      if (f & N) {
        let groupStart = pos;
        while (flags(pos) & N) {
          if (++pos - groupStart >= 3) {
            emit(pos);
            groupStart = pos;
          }
        }
        emit(pos);
        continue;
      }
      let f2 = c === SPACE ? flags(pos + 1) : f;
      // (llama.cpp tests the current codepoint's flags for "in range" here, not f2's)
      if (!(f2 & (WS | L | N)) && f !== 0) {
        if (c === SPACE) pos++;
        while (!(f2 & (WS | L | N)) && f2 !== 0) f2 = flags(++pos);
        let c2 = cpt(pos);
        while (c2 === CR || c2 === LF) c2 = cpt(++pos);
        emit(pos);
        continue;
      }
      let nws = 0;
      let lastLineBreakEnd = 0;
      while (flags(pos + nws) & WS) {
        const c2 = cpt(pos + nws);
        if (c2 === CR || c2 === LF) lastLineBreakEnd = pos + nws + 1;
        nws++;
      }
      if (lastLineBreakEnd > 0) {
        pos = lastLineBreakEnd;
        emit(pos);
        continue;
      }
      if (nws > 1 && cpt(pos + nws) !== OUT_OF_RANGE) {
        pos += nws - 1;
        emit(pos);
        continue;
      }
      if (nws > 0) {
        pos += nws;
        emit(pos);
        continue;
      }
      emit(++pos);
    }
  });

const customSplitters: ReadonlyMap<string, CustomSplit> = new Map([
  [GPT2, splitGpt2],
  [LLAMA3, splitLlama3],
  [LLAMA3_ORIGINAL, splitLlama3],
]);
