// The vocabulary as llama.cpp loads it from GGUF metadata (llama_vocab::impl::load): token texts,
// scores and attributes, special ids with llama.cpp's defaults and text-based detection, and the
// flags that steer tokenization.

import { TokenizerError, quote } from "../errors/model-file.ts";
import { preTokenizers, type PreTokenizerSpec } from "./pre-tokenizer.ts";

export { TokenizerError };

/** GGUF `tokenizer.ggml.token_type` values. */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type TokenType = (typeof TokenType)[keyof typeof TokenType];

/** Per-token attribute bits (llama.cpp's llama_token_attr). */
export const TokenAttr = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
  NORMALIZED: 1 << 6,
  LSTRIP: 1 << 7,
  RSTRIP: 1 << 8,
  SINGLE_WORD: 1 << 9,
} as const;

const attrOfType: Record<number, number> = {
  [TokenType.UNDEFINED]: TokenAttr.UNDEFINED,
  [TokenType.NORMAL]: TokenAttr.NORMAL,
  [TokenType.UNKNOWN]: TokenAttr.UNKNOWN,
  [TokenType.CONTROL]: TokenAttr.CONTROL,
  [TokenType.USER_DEFINED]: TokenAttr.USER_DEFINED,
  [TokenType.UNUSED]: TokenAttr.UNUSED,
  [TokenType.BYTE]: TokenAttr.BYTE,
};

export type VocabKind = "spm" | "bpe" | "wpm";

/** `tokenizer.ggml.model` values we can tokenize with, and the algorithm each one names. */
export const supportedModels: ReadonlyMap<string, VocabKind> = new Map([
  ["llama", "spm"],
  ["gpt2", "bpe"],
  ["bert", "wpm"],
]);

export interface Vocab {
  readonly kind: VocabKind;
  readonly model: string;
  readonly preName: string | undefined;
  readonly pre: PreTokenizerSpec | undefined;
  readonly tokens: readonly string[];
  readonly scores: Float32Array;
  readonly attrs: Uint16Array;
  readonly tokenToId: ReadonlyMap<string, number>;
  /** BPE merge ranks keyed by "left right" (the GGUF merge string). */
  readonly mergeRanks: ReadonlyMap<string, number>;
  readonly maxTokenLength: number; // in UTF-16 units
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly eot: number | undefined;
  readonly eom: number | undefined;
  readonly unk: number | undefined;
  readonly sep: number | undefined;
  readonly pad: number | undefined;
  readonly mask: number | undefined;
  readonly fimPre: number | undefined;
  readonly fimSuf: number | undefined;
  readonly fimMid: number | undefined;
  readonly fimPad: number | undefined;
  readonly fimRep: number | undefined;
  readonly fimSep: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly addSpacePrefix: boolean;
  readonly cleanSpaces: boolean;
  readonly ignoreMerges: boolean;
  /** Ids that end generation (eos, eot, eom, fim pad/rep/sep and end-of-turn-looking tokens). */
  readonly eogIds: ReadonlySet<number>;
  /** Control, user-defined and unknown tokens, longest text first: matched before tokenizing text. */
  readonly specialTokens: readonly number[];
}

// ---- metadata access -----------------------------------------------------------------------

type Metadata = ReadonlyMap<string, unknown>;

/** Typed reads of tokenizer metadata; a mistyped value is a TokenizerError naming the file and key. */
class TokenizerMetadata {
  readonly file: string | undefined;
  private readonly md: Metadata;
  constructor(md: Metadata, file: string | undefined) {
    this.md = md;
    this.file = file;
  }
  fail(problem: string): never {
    throw new TokenizerError(this.file, problem);
  }
  private wrongType(key: string, expected: string, v: unknown): never {
    this.fail(`metadata "${key}" should be ${expected}, found ${describe(v)}`);
  }
  string(key: string): string | undefined {
    const v = this.md.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== "string") this.wrongType(key, "a string", v);
    return v;
  }
  bool(key: string): boolean | undefined {
    const v = this.md.get(key);
    if (v === undefined) return undefined;
    if (typeof v === "boolean") return v;
    if (typeof v === "number" || typeof v === "bigint") return v !== 0 && v !== 0n;
    this.wrongType(key, "a bool", v);
  }
  int(key: string): number | undefined {
    const v = this.md.get(key);
    if (v === undefined) return undefined;
    if (typeof v === "number" && Number.isInteger(v)) return v;
    if (typeof v === "bigint") return v > BigInt(Number.MAX_SAFE_INTEGER) || v < 0n ? Number.MAX_SAFE_INTEGER : Number(v);
    this.wrongType(key, "an integer", v);
  }
  stringArray(key: string): readonly string[] | undefined {
    const v = this.md.get(key);
    if (v === undefined) return undefined;
    if (Array.isArray(v) && v.every((s) => typeof s === "string")) return v as string[];
    this.wrongType(key, "an array of strings", v);
  }
  numberArray(key: string): ArrayLike<number> | undefined {
    const v = this.md.get(key);
    if (v === undefined) return undefined;
    if (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)) {
      return v as unknown as ArrayLike<number>;
    }
    if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v as number[];
    this.wrongType(key, "a numeric array", v);
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}${v.length > 0 ? ` ${typeof v[0]}s` : ""}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${(v as unknown as ArrayLike<number>).length}`;
  if (typeof v === "string") return `the string ${quote(v)}`;
  return `${typeof v} ${String(v)}`;
}

// ---- loading -------------------------------------------------------------------------------

const supportedList = () => [...supportedModels.keys()].join(", ");

// Special-token texts llama.cpp recognises when the metadata does not name the id.
const eotTexts = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "<｜end▁of▁sentence｜>"];
const eomTexts = ["<|eom_id|>"];
const fimPreTexts = ["<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"];
const fimSufTexts = ["<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"];
const fimMidTexts = ["<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"];
const fimPadTexts = ["<|fim_pad|>", "<fim-pad>", "<PAD>"];
const fimRepTexts = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"];
const fimSepTexts = ["<|file_sep|>"];
const eogTexts = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>"];

/**
 * Reads the vocabulary from GGUF metadata. `file` names the model file in errors (TokenizerError,
 * a ModelFileError); without it the messages name only the problem.
 */
export function loadVocab(metadata: Metadata, file?: string): Vocab {
  const md: TokenizerMetadata = new TokenizerMetadata(metadata, file);
  const model = md.string("tokenizer.ggml.model");
  if (model === undefined) md.fail(`metadata has no tokenizer.ggml.model; supported: ${supportedList()}`);
  const kind = supportedModels.get(model);
  if (kind === undefined) md.fail(`tokenizer model ${quote(model)} is not supported (supported: ${supportedList()})`);
  const preName = md.string("tokenizer.ggml.pre");

  // Defaults per model type, as llama.cpp sets them before reading the metadata.
  let bos: number | undefined, eos: number | undefined, unk: number | undefined;
  let sep: number | undefined, pad: number | undefined, mask: number | undefined;
  let addSpacePrefix = false, cleanSpaces = false, addBos = false, addEos = false, ignoreMerges = false;
  let pre: PreTokenizerSpec | undefined;
  if (kind === "spm") {
    bos = 1; eos = 2; unk = 0;
    addSpacePrefix = true; addBos = true;
  } else if (kind === "wpm") {
    bos = 101; unk = 100; sep = 102; pad = 0; mask = 103;
    cleanSpaces = true; addBos = true;
  } else {
    bos = 11; eos = 11; // llama.cpp's (GPT-2 era) fallback when the file names none
    const name = preName === undefined || preName === "" ? "default" : preName;
    pre = preTokenizers.get(name);
    if (pre === undefined) {
      md.fail(`unknown pre-tokenizer ${quote(name)} (tokenizer.ggml.pre); supported: ${[...preTokenizers.keys()].join(", ")}`);
    }
    cleanSpaces = pre.cleanSpaces;
    ignoreMerges = pre.ignoreMerges;
    addBos = pre.addBos;
    if (pre.noBos) bos = undefined;
  }
  addSpacePrefix = md.bool("tokenizer.ggml.add_space_prefix") ?? addSpacePrefix;

  const rawTokens = md.stringArray("tokenizer.ggml.tokens");
  if (rawTokens === undefined) md.fail("metadata has no tokenizer.ggml.tokens");
  const n = rawTokens.length;
  if (n === 0) md.fail("tokenizer.ggml.tokens is empty: the vocabulary has no tokens");
  const scoresIn = md.numberArray("tokenizer.ggml.scores");
  const typesIn = md.numberArray("tokenizer.ggml.token_type");
  if (scoresIn && scoresIn.length < n) md.fail(`tokenizer.ggml.scores has ${scoresIn.length} entries for ${n} tokens`);
  if (typesIn && typesIn.length < n) md.fail(`tokenizer.ggml.token_type has ${typesIn.length} entries for ${n} tokens`);

  const tokens: string[] = new Array(n);
  const scores = new Float32Array(n);
  const attrs = new Uint16Array(n);
  const tokenToId = new Map<string, number>();
  let maxTokenLength = 0;
  for (let i = 0; i < n; i++) {
    const text = rawTokens[i] === "" ? `[EMPTY_${i}]` : rawTokens[i]!;
    tokens[i] = text;
    tokenToId.set(text, i);
    if (text.length > maxTokenLength) maxTokenLength = text.length;
    if (scoresIn) scores[i] = scoresIn[i]!;
    attrs[i] = typesIn ? attrOfType[typesIn[i]!] ?? TokenAttr.UNDEFINED : TokenAttr.NORMAL;
  }

  const mergeRanks = new Map<string, number>();
  if (kind === "bpe") {
    const merges = md.stringArray("tokenizer.ggml.merges");
    if (merges === undefined) md.fail("BPE (gpt2) tokenizer metadata has no tokenizer.ggml.merges");
    for (let i = 0; i < merges.length; i++) {
      const m = merges[i]!;
      // "left right", split at the first space after the first character (a lone " " can be a
      // left part); a line without a separator pairs nothing. The first rank of a pair wins.
      if (m.indexOf(" ", 1) < 0) continue;
      if (!mergeRanks.has(m)) mergeRanks.set(m, i);
    }
  }

  // Ids generation depends on (BOS starts a prompt, EOS/EOT/EOM end it, UNK spells what the
  // vocabulary lacks) must exist; llama.cpp ignores the others when out of range, and so do we.
  const specialId = (key: string, dflt: number | undefined, required = false): number | undefined => {
    const v = md.int(key);
    if (v === undefined) return dflt;
    if (v >= 0 && v < n) return v;
    if (required) md.fail(`metadata "${key}" is ${v}, outside the vocabulary of ${n} tokens (0..${n - 1})`);
    return dflt;
  };
  bos = specialId("tokenizer.ggml.bos_token_id", bos, true);
  eos = specialId("tokenizer.ggml.eos_token_id", eos, true);
  let eot = specialId("tokenizer.ggml.eot_token_id", undefined, true);
  let eom = specialId("tokenizer.ggml.eom_token_id", undefined, true);
  unk = specialId("tokenizer.ggml.unknown_token_id", unk, true);
  sep = specialId("tokenizer.ggml.seperator_token_id", sep);
  pad = specialId("tokenizer.ggml.padding_token_id", pad);
  mask = specialId("tokenizer.ggml.mask_token_id", mask);
  let fimPre = specialId("tokenizer.ggml.fim_pre_token_id", undefined);
  let fimSuf = specialId("tokenizer.ggml.fim_suf_token_id", undefined);
  let fimMid = specialId("tokenizer.ggml.fim_mid_token_id", undefined);
  let fimPad = specialId("tokenizer.ggml.fim_pad_token_id", undefined);
  let fimRep = specialId("tokenizer.ggml.fim_rep_token_id", undefined);
  let fimSep = specialId("tokenizer.ggml.fim_sep_token_id", undefined);
  fimPre = specialId("tokenizer.ggml.prefix_token_id", fimPre);
  fimSuf = specialId("tokenizer.ggml.suffix_token_id", fimSuf);
  fimMid = specialId("tokenizer.ggml.middle_token_id", fimMid);
  // Defaults that do not exist in this vocabulary would only produce out-of-range ids.
  const inRange = (id: number | undefined) => (id !== undefined && id < n ? id : undefined);
  bos = inRange(bos); eos = inRange(eos); unk = inRange(unk); sep = inRange(sep); pad = inRange(pad); mask = inRange(mask);

  addBos = md.bool("tokenizer.ggml.add_bos_token") ?? addBos;
  addEos = md.bool("tokenizer.ggml.add_eos_token") ?? addEos;

  // Text-based detection of ids the metadata left out; such tokens are forced to control type.
  // llama.cpp walks a hash map, so when several candidates exist its pick is arbitrary; we take
  // the first candidate in list order.
  const markControl = (id: number) => {
    if ((attrs[id]! & TokenAttr.CONTROL) === 0) attrs[id] = TokenAttr.CONTROL;
  };
  const detect = (current: number | undefined, texts: readonly string[]): number | undefined => {
    if (current !== undefined) return current;
    for (const t of texts) {
      const id = tokenToId.get(t);
      if (id !== undefined) {
        markControl(id);
        return id;
      }
    }
    return undefined;
  };
  eot = detect(eot, eotTexts);
  eom = detect(eom, eomTexts);
  fimPre = detect(fimPre, fimPreTexts);
  fimSuf = detect(fimSuf, fimSufTexts);
  fimMid = detect(fimMid, fimMidTexts);
  fimPad = detect(fimPad, fimPadTexts);
  fimRep = detect(fimRep, fimRepTexts);
  fimSep = detect(fimSep, fimSepTexts);
  const eogIds = new Set<number>();
  for (const id of [fimPad, fimRep, fimSep]) if (id !== undefined) eogIds.add(id);
  for (const t of eogTexts) {
    const id = tokenToId.get(t);
    if (id !== undefined) {
      eogIds.add(id);
      markControl(id);
    }
  }
  for (const id of [eos, eot, eom]) if (id !== undefined) eogIds.add(id);

  const specialTokens: number[] = [];
  for (let id = 0; id < n; id++) {
    if (attrs[id]! & (TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN)) specialTokens.push(id);
  }
  specialTokens.sort((a, b) => utf8Length(tokens[b]!) - utf8Length(tokens[a]!) || a - b);

  // Per-model attribute fix-ups llama.cpp applies by name.
  const modelName = (typeof metadata.get("general.name") === "string" ? (metadata.get("general.name") as string) : "").toLowerCase();
  const setAttr = (id: number | undefined, attr: number, on: boolean) => {
    if (id === undefined) return;
    attrs[id] = on ? attrs[id]! | attr : attrs[id]! & ~attr;
  };
  if (preName && ["jina-v2-de", "jina-v2-es", "jina-v2-code"].some((s) => preName.includes(s))) {
    setAttr(tokenToId.get("<mask>"), TokenAttr.LSTRIP, true);
  } else if (modelName.includes("phi-3") || modelName.includes("phi3")) {
    for (const id of specialTokens) setAttr(id, TokenAttr.RSTRIP, true);
    setAttr(tokenToId.get("</s>"), TokenAttr.RSTRIP, true);
    for (const t of ["<unk>", "<s>", "<|endoftext|>"]) setAttr(tokenToId.get(t), TokenAttr.RSTRIP, false);
  }

  return {
    kind, model, preName, pre, tokens, scores, attrs, tokenToId, mergeRanks, maxTokenLength,
    bos, eos, eot, eom, unk, sep, pad, mask, fimPre, fimSuf, fimMid, fimPad, fimRep, fimSep,
    addBos, addEos, addSpacePrefix, cleanSpaces, ignoreMerges, eogIds, specialTokens,
  };
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
