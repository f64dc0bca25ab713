// Hugging Face tokenizer.json (byte-level BPE) -> GGUF tokenizer metadata, written the way
// llama.cpp's convert_hf_to_gguf.py (get_vocab_base + gguf-py SpecialVocab) writes it.

import { gguf, type GGUFTypedValue } from "../format/gguf.ts";
import { hfPatterns, preTokenizers } from "./pre-tokenizer.ts";
import { TokenizerError, TokenType } from "./vocab.ts";

export interface TokenizerJsonOptions {
  /** Parsed tokenizer_config.json: bos/eos/unk/pad... token texts, add_bos_token/add_eos_token, chat_template. */
  tokenizerConfig?: unknown;
  /** Parsed config.json: vocab_size (padding ids become "[PADn]" unused tokens), *_token_id fallbacks. */
  modelConfig?: unknown;
  /** Force `tokenizer.ggml.pre` instead of recognising the pre-tokenizer. */
  pre?: string;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

export function tokenizerJsonToGGUFMetadata(json: unknown, opts: TokenizerJsonOptions = {}): Map<string, unknown> {
  if (!isObject(json) || !isObject(json.model)) throw new TokenizerError("tokenizer.json", "expected an object with a \"model\" object");
  const model = json.model;
  const decoder = isObject(json.decoder) ? json.decoder : undefined;
  if (model.type !== "BPE" || model.byte_fallback === true || decoder?.type !== "ByteLevel") {
    throw new TokenizerError(
      "tokenizer.json",
      `only byte-level BPE can be imported (model.type "BPE" without byte_fallback, decoder "ByteLevel"); ` +
        `got model.type ${JSON.stringify(model.type)}, decoder ${JSON.stringify(decoder?.type)}`,
    );
  }
  if (!isObject(model.vocab)) throw new TokenizerError("tokenizer.json", "model.vocab should be an object of token -> id");

  const added: AddedToken[] = [];
  for (const t of Array.isArray(json.added_tokens) ? json.added_tokens : []) {
    if (isObject(t) && typeof t.id === "number" && typeof t.content === "string") {
      added.push({ id: t.id, content: t.content, special: t.special === true });
    }
  }
  const addedByContent = new Map<string, AddedToken>();
  for (const t of added) if (!addedByContent.has(t.content)) addedByContent.set(t.content, t);

  // id -> text over the model vocabulary plus added tokens (HF's tokenizer.vocab).
  const byId = new Map<number, string>();
  for (const [text, id] of Object.entries(model.vocab)) {
    if (typeof id !== "number") throw new TokenizerError("tokenizer.json", `id of ${JSON.stringify(text)} is not a number`);
    byId.set(id, text);
  }
  for (const t of added) byId.set(t.id, t.content);
  let maxId = -1;
  for (const id of byId.keys()) if (id > maxId) maxId = id;

  const modelConfig = isObject(opts.modelConfig) ? opts.modelConfig : {};
  const n = typeof modelConfig.vocab_size === "number" ? modelConfig.vocab_size : maxId + 1;
  if (n <= maxId) throw new TokenizerError("config.json", `vocab_size ${n} is smaller than the largest token id ${maxId} + 1`);

  const tokens: string[] = new Array(n);
  const types = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let text = byId.get(i);
    if (text === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TokenType.UNUSED;
      continue;
    }
    const a = addedByContent.get(text);
    if (a !== undefined) {
      if (a.special || looksSpecial(text)) {
        types[i] = TokenType.CONTROL;
      } else {
        text = text.replaceAll("\u2581", " "); // user-defined tokens are matched against raw text
        types[i] = TokenType.USER_DEFINED;
      }
    } else {
      types[i] = TokenType.NORMAL;
    }
    tokens[i] = text;
  }

  const md = new Map<string, unknown>();
  md.set("tokenizer.ggml.model", "gpt2");
  md.set("tokenizer.ggml.pre", opts.pre ?? detectPre(json.pre_tokenizer));
  md.set("tokenizer.ggml.tokens", tokens);
  md.set("tokenizer.ggml.token_type", types);
  md.set("tokenizer.ggml.merges", mergesOf(model.merges));

  // Special tokens: tokenizer_config.json first, then config.json ids, as gguf-py does.
  const tokCfg = isObject(opts.tokenizerConfig) ? opts.tokenizerConfig : undefined;
  const special = new Map<string, number>();
  const kinds = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"] as const;
  if (tokCfg) {
    for (const kind of kinds) {
      const entry = tokCfg[`${kind}_token`];
      const content = typeof entry === "string" ? entry : isObject(entry) && typeof entry.content === "string" ? entry.content : undefined;
      const id = content === undefined ? undefined : added.find((t) => t.content === content)?.id;
      if (id !== undefined && id < n) special.set(kind, id);
    }
  }
  for (const kind of kinds) {
    const id = modelConfig[`${kind}_token_id`];
    if (typeof id === "number" && Number.isInteger(id) && id >= 0 && id < n && !special.has(kind)) special.set(kind, id);
  }
  if (!tokCfg && opts.modelConfig === undefined) guessSpecialTokens(json, addedByContent, special);

  const keyOf: Record<(typeof kinds)[number], string> = {
    bos: "tokenizer.ggml.bos_token_id",
    eos: "tokenizer.ggml.eos_token_id",
    unk: "tokenizer.ggml.unknown_token_id",
    sep: "tokenizer.ggml.seperator_token_id",
    pad: "tokenizer.ggml.padding_token_id",
    cls: "tokenizer.ggml.cls_token_id",
    mask: "tokenizer.ggml.mask_token_id",
  };
  for (const kind of kinds) {
    const id = special.get(kind);
    if (id !== undefined) md.set(keyOf[kind], id);
  }
  if (tokCfg) {
    if (typeof tokCfg.add_bos_token === "boolean") md.set("tokenizer.ggml.add_bos_token", tokCfg.add_bos_token);
    if (typeof tokCfg.add_eos_token === "boolean") md.set("tokenizer.ggml.add_eos_token", tokCfg.add_eos_token);
    if (typeof tokCfg.chat_template === "string") md.set("tokenizer.chat_template", tokCfg.chat_template);
  } else {
    const templateBos = templateBosToken(json.post_processor);
    if (templateBos !== undefined) md.set("tokenizer.ggml.add_bos_token", true);
  }
  return md;
}

/** The metadata tokenizerJsonToGGUFMetadata returns as typed GGUF values (ids u32, scores f32, flags bool), in order. */
export function typedTokenizerMetadata(md: ReadonlyMap<string, unknown>): [string, GGUFTypedValue][] {
  return [...md].map(([key, v]) => [key, typedValue(key, v)]);
}

function typedValue(key: string, v: unknown): GGUFTypedValue {
  if (typeof v === "string") return gguf.str(v);
  if (typeof v === "boolean") return gguf.bool(v);
  if (typeof v === "number") return Number.isInteger(v) && v >= 0 ? gguf.u32(v) : gguf.f32(v);
  if (v instanceof Int32Array) return gguf.i32s(v);
  if (v instanceof Float32Array) return gguf.f32s(v);
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return gguf.strings(v);
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) return gguf.f32s(v);
  throw new TypeError(`tokenizer metadata "${key}": cannot write this value`);
}

/** convert_hf_to_gguf.py's does_token_look_special. */
export function looksSpecial(t: string): boolean {
  return (
    ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].includes(t) ||
    (t.startsWith("<|") && t.endsWith("|>")) ||
    (t.startsWith("<｜") && t.endsWith("｜>")) ||
    (t.startsWith("<unused") && t.endsWith(">"))
  );
}

function mergesOf(merges: unknown): string[] {
  if (!Array.isArray(merges)) throw new TokenizerError("tokenizer.json", "model.merges should be an array");
  return merges.map((m, i) => {
    if (typeof m === "string") return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
      // The pair form (transformers >= 4.45) may contain spaces; GGUF's "a b" form cannot, so
      // spaces become U+0120 as gguf-py does.
      return `${m[0].replaceAll(" ", "\u0120")} ${m[1].replaceAll(" ", "\u0120")}`;
    }
    throw new TokenizerError("tokenizer.json", `merge #${i} is neither "a b" nor ["a", "b"]`);
  });
}

/** Name llama.cpp uses for this pre-tokenizer (llama.cpp itself decides by hashing test output). */
function detectPre(pre: unknown): string {
  const known = `supported here: ${Object.keys(hfPatterns).join(", ")} regexes and plain GPT-2 ByteLevel; pass { pre } to choose one of: ${[...preTokenizers.keys()].join(", ")}`;
  if (isObject(pre) && pre.type === "ByteLevel" && pre.use_regex !== false) return "gpt-2";
  const steps = isObject(pre) && pre.type === "Sequence" && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : isObject(pre) ? [pre] : [];
  const splits = steps.filter((s): s is Json => isObject(s) && s.type === "Split");
  if (splits.length === 1) {
    const pattern = isObject(splits[0]!.pattern) ? splits[0]!.pattern.Regex : undefined;
    if (pattern === hfPatterns.llama3) return "llama-bpe";
    if (pattern === hfPatterns.qwen2) return "qwen2";
    throw new TokenizerError("tokenizer.json", `unknown pre-tokenizer regex ${JSON.stringify(pattern)}; ${known}`);
  }
  throw new TokenizerError("tokenizer.json", `unrecognised pre_tokenizer ${JSON.stringify(pre)?.slice(0, 200)}; ${known}`);
}

/** The special token a TemplateProcessing post-processor puts before the text, if any. */
function templateBosToken(post: unknown): string | undefined {
  const procs = isObject(post) && post.type === "Sequence" && Array.isArray(post.processors) ? post.processors : [post];
  for (const p of procs) {
    if (!isObject(p) || p.type !== "TemplateProcessing" || !Array.isArray(p.single)) continue;
    const first = p.single[0];
    if (isObject(first) && isObject(first.SpecialToken) && typeof first.SpecialToken.id === "string") return first.SpecialToken.id;
  }
  return undefined;
}

// Without tokenizer_config.json / config.json, pick BOS/EOS by the conventional texts so that the
// result is usable (llama.cpp would otherwise fall back to id 11).
function guessSpecialTokens(json: Json, added: ReadonlyMap<string, AddedToken>, special: Map<string, number>): void {
  const first = (texts: readonly (string | undefined)[]) => {
    for (const t of texts) if (t !== undefined && added.has(t)) return added.get(t)!.id;
    return undefined;
  };
  const eos = first(["<|end_of_text|>", "<|endoftext|>", "</s>", "<｜end▁of▁sentence｜>"]);
  const bos = first([templateBosToken(json.post_processor), "<|begin_of_text|>", "<s>", "<｜begin▁of▁sentence｜>", "<|startoftext|>", "<|endoftext|>"]);
  if (bos !== undefined) special.set("bos", bos);
  if (eos !== undefined) special.set("eos", eos);
}
