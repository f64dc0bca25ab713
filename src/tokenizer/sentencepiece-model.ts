// SentencePiece `tokenizer.model` (a protobuf ModelProto) -> GGUF tokenizer metadata, as llama.cpp's
// convert_hf_to_gguf.py writes it for Llama 2 / Mistral style checkpoints (_create_vocab_sentencepiece
// + gguf-py SpecialVocab): tokenizer.ggml.model "llama", pre "default", every piece with its score
// and type, added tokens from added_tokens.json and tokenizer_config.json's added_tokens_decoder,
// padding "[PADn]" up to config.json's vocab_size.
//
// The protobuf fields read (sentencepiece_model.proto): ModelProto.pieces = 1 { piece = 1 (string),
// score = 2 (float), type = 3 (enum, default NORMAL) }, ModelProto.trainer_spec = 2 { unk_id = 40,
// bos_id = 41, eos_id = 42, pad_id = 43 }, ModelProto.normalizer_spec = 3 { add_dummy_prefix = 3 }.

import { looksSpecial } from "./hf-import.ts";
import { TokenizerError, TokenType } from "./vocab.ts";

export interface SentencePiece {
  readonly piece: string;
  readonly score: number;
  /** sentencepiece's type numbers equal GGUF's token types (1 normal .. 6 byte). */
  readonly type: number;
}

export interface SentencePieceModel {
  readonly pieces: readonly SentencePiece[];
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly addDummyPrefix: boolean;
}

class ProtoReader {
  pos: number;
  readonly end: number;
  private readonly buf: Uint8Array;
  constructor(buf: Uint8Array, start = 0, end = buf.byteLength) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new TokenizerError("tokenizer.model: truncated protobuf varint");
      const b = this.buf[this.pos++]!;
      if (shift < 53) result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 70) throw new TokenizerError("tokenizer.model: malformed protobuf varint");
    }
  }
  /** Field number and wire type of the next key. */
  key(): [number, number] {
    const k = this.varint();
    return [Math.floor(k / 8), k % 8];
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.end) throw new TokenizerError("tokenizer.model: protobuf field runs past its message");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  float(): number {
    if (this.pos + 4 > this.end) throw new TokenizerError("tokenizer.model: truncated protobuf float");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new TokenizerError(`tokenizer.model: unsupported protobuf wire type ${wire}`);
    if (this.pos > this.end) throw new TokenizerError("tokenizer.model: truncated protobuf message");
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }); // a piece may be U+FEFF itself

/** Parses the fields of a SentencePiece ModelProto that a GGUF vocabulary needs. */
export function parseSentencePieceModel(bytes: Uint8Array): SentencePieceModel {
  const r = new ProtoReader(bytes);
  const pieces: SentencePiece[] = [];
  let unkId = 0, bosId = 1, eosId = 2, padId = -1;
  let addDummyPrefix = true;
  const signed = (v: number) => (v > 2 ** 31 ? v - 2 ** 64 : v); // int32 -1 is a 10-byte varint
  while (r.pos < r.end) {
    const [field, wire] = r.key();
    if (field === 1 && wire === 2) {
      const m = r.bytes();
      const p = new ProtoReader(m);
      let piece = "", score = 0, type: number = TokenType.NORMAL;
      while (p.pos < p.end) {
        const [f, w] = p.key();
        if (f === 1 && w === 2) piece = utf8.decode(p.bytes());
        else if (f === 2 && w === 5) score = p.float();
        else if (f === 3 && w === 0) type = p.varint();
        else p.skip(w);
      }
      if (type < 1 || type > 6) throw new TokenizerError(`tokenizer.model: piece ${pieces.length} has unknown type ${type}`);
      pieces.push({ piece, score, type });
    } else if (field === 2 && wire === 2) {
      const m = r.bytes();
      const p = new ProtoReader(m);
      while (p.pos < p.end) {
        const [f, w] = p.key();
        if (w === 0 && f >= 40 && f <= 43) {
          const v = signed(p.varint());
          if (f === 40) unkId = v;
          else if (f === 41) bosId = v;
          else if (f === 42) eosId = v;
          else padId = v;
        } else p.skip(w);
      }
    } else if (field === 3 && wire === 2) {
      const m = r.bytes();
      const p = new ProtoReader(m);
      while (p.pos < p.end) {
        const [f, w] = p.key();
        if (f === 3 && w === 0) addDummyPrefix = p.varint() !== 0;
        else p.skip(w);
      }
    } else {
      r.skip(wire);
    }
  }
  if (pieces.length === 0) throw new TokenizerError("tokenizer.model: no pieces: not a SentencePiece model");
  return { pieces, unkId, bosId, eosId, padId, addDummyPrefix };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

export interface SentencePieceImportOptions {
  /** Parsed tokenizer_config.json. */
  readonly tokenizerConfig?: unknown;
  /** Parsed config.json (vocab_size, *_token_id). */
  readonly modelConfig?: unknown;
  /** Parsed added_tokens.json ({ text: id }). */
  readonly addedTokens?: unknown;
}

/** GGUF tokenizer metadata of a SentencePiece model, as tokenizerJsonToGGUFMetadata returns it for BPE. */
export function sentencePieceToGGUFMetadata(model: SentencePieceModel, opts: SentencePieceImportOptions = {}): Map<string, unknown> {
  const modelConfig = isObject(opts.modelConfig) ? opts.modelConfig : {};
  const n = typeof modelConfig.vocab_size === "number" ? modelConfig.vocab_size : model.pieces.length;
  const tokens: string[] = Array.from({ length: n }, (_, i) => `[PAD${i}]`);
  const scores = new Float32Array(n).fill(-10000);
  const types = new Int32Array(n).fill(TokenType.UNUSED);
  model.pieces.forEach((p, i) => {
    if (i >= n) return;
    tokens[i] = p.piece;
    scores[i] = p.score;
    types[i] = p.type === TokenType.USER_DEFINED ? TokenType.NORMAL : p.type; // IsUnknown/IsControl/IsUnused/IsByte, else normal
  });
  if (isObject(opts.addedTokens)) {
    for (const [text, id] of Object.entries(opts.addedTokens)) {
      if (typeof id !== "number" || id < 0 || id >= n) continue;
      tokens[id] = text;
      scores[id] = -1000;
      types[id] = TokenType.USER_DEFINED;
    }
  }
  const tokCfg = isObject(opts.tokenizerConfig) ? opts.tokenizerConfig : undefined;
  const decoderEntries = tokCfg && isObject(tokCfg.added_tokens_decoder) ? Object.entries(tokCfg.added_tokens_decoder) : [];
  for (const [idText, data] of decoderEntries) {
    const id = Number(idText);
    if (!Number.isInteger(id) || id < 0 || id >= n || !isObject(data) || typeof data.content !== "string") continue;
    let text = data.content;
    if (data.special === true || looksSpecial(text)) types[id] = TokenType.CONTROL;
    else {
      text = text.replaceAll("\u2581", " ");
      types[id] = TokenType.USER_DEFINED;
    }
    scores[id] = -1000;
    tokens[id] = text;
  }

  const md = new Map<string, unknown>();
  md.set("tokenizer.ggml.model", "llama");
  md.set("tokenizer.ggml.pre", "default");
  md.set("tokenizer.ggml.tokens", tokens);
  md.set("tokenizer.ggml.scores", scores);
  md.set("tokenizer.ggml.token_type", types);
  // Special tokens: tokenizer_config.json's texts, then config.json's ids (gguf-py's SpecialVocab order).
  const kinds = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"] as const;
  const keyOf: Record<(typeof kinds)[number], string> = {
    bos: "tokenizer.ggml.bos_token_id", eos: "tokenizer.ggml.eos_token_id", unk: "tokenizer.ggml.unknown_token_id",
    sep: "tokenizer.ggml.seperator_token_id", pad: "tokenizer.ggml.padding_token_id", cls: "tokenizer.ggml.cls_token_id", mask: "tokenizer.ggml.mask_token_id",
  };
  for (const kind of kinds) {
    const entry = tokCfg?.[`${kind}_token`];
    const content = typeof entry === "string" ? entry : isObject(entry) && typeof entry.content === "string" ? entry.content : undefined;
    let id = content === undefined ? -1 : tokens.indexOf(content);
    if (id < 0 && typeof modelConfig[`${kind}_token_id`] === "number") id = modelConfig[`${kind}_token_id`] as number;
    if (id >= 0 && id < n) md.set(keyOf[kind], id);
  }
  if (tokCfg) {
    if (typeof tokCfg.add_bos_token === "boolean") md.set("tokenizer.ggml.add_bos_token", tokCfg.add_bos_token);
    if (typeof tokCfg.add_eos_token === "boolean") md.set("tokenizer.ggml.add_eos_token", tokCfg.add_eos_token);
    if (typeof tokCfg.add_prefix_space === "boolean") md.set("tokenizer.ggml.add_space_prefix", tokCfg.add_prefix_space);
    if (typeof tokCfg.chat_template === "string") md.set("tokenizer.chat_template", tokCfg.chat_template);
  }
  return md;
}
