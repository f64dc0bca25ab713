// llama2.c checkpoint (legacy v0: 7 x int32 header, f32 weights) + tokenizer.bin -> GGUF tensors and metadata.
// The weight layout of llama2.c equals GGUF's llama layout, so tensors are copied as they are.

import { ModelFileError } from "../format/errors.ts";
import { gguf, type GGUFTypedValue } from "../format/gguf.ts";
import type { GGUFTensorToWrite } from "../format/gguf-writer.ts";
import { tensorName, tensorShape, type TensorDims, type TensorKey } from "../model/tensors.ts";
import { GGMLType } from "../quant/ggml-type.ts";

export interface Llama2cConversion {
  readonly metadata: [string, GGUFTypedValue][];
  readonly tensors: GGUFTensorToWrite[];
}

// SentencePiece token types as GGUF stores them.
const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_BYTE = 6;

export interface Llama2cTokenizer {
  readonly tokens: string[];
  readonly scores: Float32Array;
  readonly types: Int32Array;
}

/** Reads llama2.c's tokenizer.bin: int32 max_token_length, then per token f32 score, int32 length, bytes. */
export function parseLlama2cTokenizer(bytes: Uint8Array, vocabSize: number, fileName: string): Llama2cTokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder("utf-8");
  let pos = 4;
  const tokens: string[] = [];
  const scores = new Float32Array(vocabSize);
  const types = new Int32Array(vocabSize);
  for (let i = 0; i < vocabSize; i++) {
    if (pos + 8 > bytes.byteLength) throw new ModelFileError(fileName, `tokenizer ends after ${i} of ${vocabSize} tokens`);
    scores[i] = view.getFloat32(pos, true);
    const len = view.getInt32(pos + 4, true);
    pos += 8;
    if (len < 0 || pos + len > bytes.byteLength) throw new ModelFileError(fileName, `token ${i} has length ${len}, past the end of the file`);
    let piece = dec.decode(bytes.subarray(pos, pos + len));
    pos += len;
    // llama2.c marks BOS/EOS with newlines around them ("\n<s>\n"); GGUF names them plainly.
    if (i === 0) {
      piece = "<unk>";
      types[i] = TOKEN_UNKNOWN;
    } else if (i === 1 || i === 2) {
      piece = i === 1 ? "<s>" : "</s>";
      types[i] = TOKEN_CONTROL;
    } else if (/^<0x[0-9A-F]{2}>$/.test(piece)) {
      types[i] = TOKEN_BYTE;
    } else {
      types[i] = TOKEN_NORMAL;
      piece = piece.replaceAll(" ", "\u2581");
    }
    tokens.push(piece);
  }
  return { tokens, scores, types };
}

export function convertLlama2c(checkpoint: Uint8Array, tokenizer: Uint8Array, names: { checkpoint: string; tokenizer: string; modelName?: string }): Llama2cConversion {
  if (checkpoint.byteLength < 28) throw new ModelFileError(names.checkpoint, "too short for a llama2.c checkpoint header (28 bytes)");
  const h = new DataView(checkpoint.buffer, checkpoint.byteOffset, 28);
  const [dim, hidden, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = Array.from({ length: 7 }, (_, i) => h.getInt32(i * 4, true)) as [number, number, number, number, number, number, number];
  if (dim === 0x616b3432) throw new ModelFileError(names.checkpoint, "is a llama2.c version 1+ export (magic 'ak42'); only the legacy v0 format is supported");
  const sane = [dim, hidden, nLayers, nHeads, nKvHeads, seqLen].every((v) => v > 0 && v < 1 << 20) && vocabRaw !== 0 && Math.abs(vocabRaw) < 1 << 22;
  if (!sane || dim % nHeads !== 0 || nHeads % nKvHeads !== 0) {
    throw new ModelFileError(names.checkpoint, `header [${[dim, hidden, nLayers, nHeads, nKvHeads, vocabRaw, seqLen].join(", ")}] is not a llama2.c config`);
  }
  const shared = vocabRaw > 0;
  const vocab = Math.abs(vocabRaw);
  const headSize = dim / nHeads;
  const kvDim = nKvHeads * headSize;

  let off = 28;
  const take = (count: number, what: string): Uint8Array => {
    const bytes = count * 4;
    if (off + bytes > checkpoint.byteLength) {
      throw new ModelFileError(names.checkpoint, `ends inside ${what} (needs ${off + bytes} bytes, has ${checkpoint.byteLength})`);
    }
    // Copy: Float32 tensors must not alias the source buffer at an unaligned offset.
    const out = checkpoint.slice(off, off + bytes);
    off += bytes;
    return out;
  };
  const perLayer = (count: number, what: string): Uint8Array[] => {
    const all = take(count * nLayers, what);
    return Array.from({ length: nLayers }, (_, l) => all.subarray(l * count * 4, (l + 1) * count * 4));
  };
  const embedding = take(vocab * dim, "token_embedding_table");
  const attnNorm = perLayer(dim, "rms_att_weight");
  const wq = perLayer(dim * dim, "wq");
  const wk = perLayer(dim * kvDim, "wk");
  const wv = perLayer(dim * kvDim, "wv");
  const wo = perLayer(dim * dim, "wo");
  const ffnNorm = perLayer(dim, "rms_ffn_weight");
  const w1 = perLayer(hidden * dim, "w1");
  const w2 = perLayer(dim * hidden, "w2");
  const w3 = perLayer(hidden * dim, "w3");
  const finalNorm = take(dim, "rms_final_weight");
  take(seqLen * (headSize / 2) * 2, "freq_cis tables"); // RoPE tables: recomputed at run time
  const classifier = shared ? undefined : take(vocab * dim, "wcls");

  const tok = parseLlama2cTokenizer(tokenizer, vocab, names.tokenizer);
  // llama2.c's weights, by the table's roles, in the order this converter has always written them.
  const dims: TensorDims = { dim, ffnDim: hidden, nHeads, nKvHeads, headDim: headSize, headDimV: headSize, vocabSize: vocab, ropeDim: headSize };
  const tensors: GGUFTensorToWrite[] = [];
  const put = (key: TensorKey, data: Uint8Array, layer?: number): void => {
    tensors.push({ name: tensorName(key, layer), type: GGMLType.F32, shape: tensorShape(key, dims), data });
  };
  put("tokenEmbd", embedding);
  put("outputNorm", finalNorm);
  if (classifier) put("output", classifier);
  for (let l = 0; l < nLayers; l++) {
    put("attnNorm", attnNorm[l]!, l);
    put("wq", wq[l]!, l);
    put("wk", wk[l]!, l);
    put("wv", wv[l]!, l);
    put("wo", wo[l]!, l);
    put("ffnNorm", ffnNorm[l]!, l);
    put("gate", w1[l]!, l);
    put("down", w2[l]!, l);
    put("up", w3[l]!, l);
  }
  const metadata: [string, GGUFTypedValue][] = [
    ["general.architecture", gguf.str("llama")],
    ["general.name", gguf.str(names.modelName ?? "llama2.c model")],
    ["general.file_type", gguf.u32(0)],
    ["llama.context_length", gguf.u32(seqLen)],
    ["llama.embedding_length", gguf.u32(dim)],
    ["llama.feed_forward_length", gguf.u32(hidden)],
    ["llama.block_count", gguf.u32(nLayers)],
    ["llama.attention.head_count", gguf.u32(nHeads)],
    ["llama.attention.head_count_kv", gguf.u32(nKvHeads)],
    ["llama.rope.dimension_count", gguf.u32(headSize)],
    ["llama.rope.freq_base", gguf.f32(10000)],
    ["llama.attention.layer_norm_rms_epsilon", gguf.f32(1e-5)],
    ["tokenizer.ggml.model", gguf.str("llama")],
    ["tokenizer.ggml.tokens", gguf.strings(tok.tokens)],
    ["tokenizer.ggml.scores", gguf.f32s(tok.scores)],
    ["tokenizer.ggml.token_type", gguf.i32s(tok.types)],
    ["tokenizer.ggml.unknown_token_id", gguf.u32(0)],
    ["tokenizer.ggml.bos_token_id", gguf.u32(1)],
    ["tokenizer.ggml.eos_token_id", gguf.u32(2)],
    ["tokenizer.ggml.add_bos_token", gguf.bool(true)],
    ["tokenizer.ggml.add_eos_token", gguf.bool(false)],
  ];
  return { metadata, tensors };
}
