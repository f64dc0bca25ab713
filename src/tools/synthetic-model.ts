// GGUF files with deterministic random weights at a chosen shape and quant type: oracle tests
// for every architecture x quant type without downloads, and benchmark files at real model shapes.

import { gguf, type GGUFTypedValue } from "../format/gguf.ts";
import type { GGUFTensorToWrite, GGUFWriteSpec } from "../format/gguf-writer.ts";
import { GGMLType, ggmlTypeName } from "../quant/ggml-type.ts";
import { fallbackType } from "./quant-recipes.ts";
import { f32ToF16 as f16Bits, getQuantTraits, rowByteSize } from "../quant/traits.ts";
import { SeededRandom } from "../sampling/rng.ts";
import type { ArchitectureName } from "../model/architectures.ts";
import { architectureTensors, hasMtpLayers, presenceIn, tensorName, type TensorDims, type TensorRole, type TensorScope } from "../model/tensors.ts";

/** Any architecture mimo loads: its tensors are the table's (model/tensors.ts). */
export type SyntheticArch = ArchitectureName;

export interface SyntheticModelSpec {
  readonly arch: SyntheticArch;
  readonly name?: string;
  readonly dim: number;
  readonly ffnDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  /** Default dim / nHeads (Qwen3 sets it explicitly). */
  readonly headDim?: number;
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly ropeBase?: number;
  /** RMS norm epsilon; default 1e-6. */
  readonly normEps?: number;
  /** Llama 3 RoPE frequency factors (headDim / 2 of them), written as the table's ropeFreqs tensor. */
  readonly ropeFreqFactors?: Float32Array;
  /**
   * GGML type of the 2-D weight matrices (norms and biases stay F32, as llama.cpp's quantizer keeps
   * them). A matrix whose rows are not whole blocks of it gets llama.cpp's fallback (typeForRow).
   */
  readonly weightType: number;
  /** Per-matrix type (a recipe's choice, see quant-recipes.ts); default weightType / embeddingType. */
  readonly typeOf?: (name: string, shape: readonly number[]) => number;
  /** Type of the token embedding and output matrices; default weightType. */
  readonly embeddingType?: number;
  /** Share the token embedding as the output matrix (no output tensor). */
  readonly tiedOutput?: boolean;
  /** Multi-token-prediction layers, for an architecture that has them (default 1). */
  readonly nMtpLayers?: number;
  readonly seed: number;
  /**
   * Skip the random-values-then-quantize path and fill quant blocks with random bits and sane
   * scales directly (fast; for benchmark files, where values don't matter).
   */
  readonly fastRandomBlocks?: boolean;
  /** Scale of random matrix entries relative to 1/sqrt(cols). Default 1. */
  readonly matrixGain?: number;
  /** Qwen3 q/k norm weights (around this value). Smaller gives softer attention. Default 1. */
  readonly qkNormGain?: number;
  /** Scale of the output matrix entries relative to 1/sqrt(dim). Default 4. */
  readonly outputGain?: number;
  /** Tokenizer metadata to embed; default a small synthetic SentencePiece vocabulary. */
  readonly tokenizer?: [string, GGUFTypedValue][];
}

/** Tokenizer metadata of a made-up SentencePiece vocabulary: unk, bos, eos, 256 byte tokens, then pieces. */
export function syntheticSpmTokenizer(vocabSize: number): [string, GGUFTypedValue][] {
  if (vocabSize < 300) throw new RangeError(`synthetic vocabulary needs at least 300 tokens, got ${vocabSize}`);
  const tokens: string[] = ["<unk>", "<s>", "</s>"];
  const types: number[] = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(6);
  }
  const letters = "abcdefghijklmnopqrstuvwxyz";
  for (let i = tokens.length; i < vocabSize; i++) {
    // Distinct pieces: "▁" + base-26 spelling of i.
    let s = "";
    let k = i;
    do {
      s = letters[k % 26]! + s;
      k = Math.floor(k / 26);
    } while (k > 0);
    tokens.push("\u2581" + s);
    types.push(1);
  }
  const scores = tokens.map((_, i) => (i < 259 ? 0 : -i));
  return [
    ["tokenizer.ggml.model", gguf.str("llama")],
    ["tokenizer.ggml.tokens", gguf.strings(tokens)],
    ["tokenizer.ggml.scores", gguf.f32s(scores)],
    ["tokenizer.ggml.token_type", gguf.i32s(types)],
    ["tokenizer.ggml.unknown_token_id", gguf.u32(0)],
    ["tokenizer.ggml.bos_token_id", gguf.u32(1)],
    ["tokenizer.ggml.eos_token_id", gguf.u32(2)],
    ["tokenizer.ggml.add_bos_token", gguf.bool(true)],
    ["tokenizer.ggml.add_eos_token", gguf.bool(false)],
  ];
}

/**
 * The type llama.cpp's quantizer writes for a matrix whose rows are not whole blocks of the
 * requested type (quant-recipes.ts: K-quants fall back to a 32-element block type, else F16).
 */
export function typeForRow(type: number, cols: number): number {
  return fallbackType(type, cols);
}

/** Deterministic per-tensor seed from the model seed and the tensor name. */
function tensorSeed(seed: number, name: string): number {
  let h = seed >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function randomF32(n: number, rng: SeededRandom, scale: number, offset = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = offset + (rng.next() * 2 - 1) * scale;
  return out;
}

function quantizeMatrix(values: Float32Array, type: number, cols: number, rows: number, name: string): Uint8Array {
  const traits = getQuantTraits(type, name);
  const rb = rowByteSize(type, cols);
  const out = new Uint8Array(rb * rows);
  for (let r = 0; r < rows; r++) traits.quantizeRow(values, r * cols, out, r * rb, cols);
  return out;
}

/** The GGUF write spec (metadata + lazily generated tensors) of a synthetic model. */
export function syntheticModel(spec: SyntheticModelSpec): GGUFWriteSpec {
  const s = spec;
  const headDim = s.headDim ?? s.dim / s.nHeads;
  const dims: TensorDims = {
    dim: s.dim, ffnDim: s.ffnDim, nHeads: s.nHeads, nKvHeads: s.nKvHeads, headDim, headDimV: headDim, vocabSize: s.vocabSize, ropeDim: headDim,
  };
  const nMtp = hasMtpLayers(s.arch) ? (s.nMtpLayers ?? 1) : 0;
  const embType = s.embeddingType ?? s.weightType;
  const matrixGain = s.matrixGain ?? 1;
  const qkNormGain = s.qkNormGain ?? 1;
  const tensors: GGUFTensorToWrite[] = [];

  const matrix = (name: string, shape: readonly number[], requested: number, gain: number): void => {
    const [cols, rows] = shape as readonly [number, number];
    const type = s.typeOf?.(name, shape) ?? typeForRow(requested, cols);
    tensors.push({
      name,
      type,
      shape: [cols, rows],
      data: () => {
        const rng = new SeededRandom(tensorSeed(s.seed, name));
        if (s.fastRandomBlocks) return randomBlocks(type, cols, rows, rng, gain / Math.sqrt(cols));
        return quantizeMatrix(randomF32(cols * rows, rng, gain / Math.sqrt(cols)), type, cols, rows, name);
      },
    });
  };
  const vector = (name: string, n: number, scale: number, offset: number): void => {
    tensors.push({
      name,
      type: GGMLType.F32,
      shape: [n],
      data: () => new Uint8Array(randomF32(n, new SeededRandom(tensorSeed(s.seed, name)), scale, offset).buffer),
    });
  };

  // Required tensors always; of the optional ones, output unless tied and rope_freqs when given.
  const writes = (role: TensorRole): boolean => {
    const presence = presenceIn(role, s.arch);
    if (presence === "required") return true;
    if (role.key === "output") return !s.tiedOutput;
    if (role.key === "ropeFreqs") return s.ropeFreqFactors !== undefined;
    return false;
  };
  const write = (scope: TensorScope, layer?: number): void => {
    for (const role of architectureTensors(s.arch, scope)) {
      if (!writes(role)) continue;
      const name = tensorName(role, layer);
      const shape = role.shape(dims);
      switch (role.kind) {
        case "matrix":
          // Embeddings of unit scale so the residual stream is not dominated by the layers' noise.
          if (role.key === "tokenEmbd") matrix(name, shape, embType, Math.sqrt(s.dim));
          else if (role.key === "output") matrix(name, shape, embType, s.outputGain ?? 4);
          else matrix(name, shape, s.weightType, matrixGain);
          break;
        case "norm":
          if (role.key === "qNorm" || role.key === "kNorm") vector(name, shape[0]!, 0.1 * qkNormGain, qkNormGain);
          else vector(name, shape[0]!, 0.1, 1);
          break;
        case "bias":
          vector(name, shape[0]!, 0.1, 0);
          break;
        case "factors": {
          const factors = s.ropeFreqFactors!;
          if (factors.length !== shape[0]) throw new RangeError(`ropeFreqFactors needs ${shape[0]} values, got ${factors.length}`);
          tensors.push({ name, type: GGMLType.F32, shape: [factors.length], data: () => new Uint8Array(Float32Array.from(factors).buffer) });
          break;
        }
      }
    }
  };
  write("model");
  for (let i = 0; i < s.nLayers; i++) write("layer", i);
  // MTP layers: a decoder layer plus the table's nextn tensors. eh_proj is written in the table's
  // half order (its first dim columns multiply enorm(embedding), the last dim hnorm(hidden); see
  // tensors.ts), so a file from here is wired as a converted MiMo checkpoint (random values).
  for (let j = 0; j < nMtp; j++) {
    write("layer", s.nLayers + j);
    write("mtp", s.nLayers + j);
  }

  const a = s.arch;
  const metadata: [string, GGUFTypedValue][] = [
    ["general.architecture", gguf.str(a)],
    ["general.name", gguf.str(s.name ?? `synthetic-${a}-${ggmlTypeName(s.weightType)}`)],
    [`${a}.context_length`, gguf.u32(s.contextLength)],
    [`${a}.embedding_length`, gguf.u32(s.dim)],
    [`${a}.feed_forward_length`, gguf.u32(s.ffnDim)],
    [`${a}.block_count`, gguf.u32(s.nLayers + nMtp)],
    [`${a}.attention.head_count`, gguf.u32(s.nHeads)],
    [`${a}.attention.head_count_kv`, gguf.u32(s.nKvHeads)],
    [`${a}.rope.freq_base`, gguf.f32(s.ropeBase ?? 10000)],
    [`${a}.attention.layer_norm_rms_epsilon`, gguf.f32(s.normEps ?? 1e-6)],
  ];
  if (s.headDim !== undefined) {
    metadata.push([`${a}.attention.key_length`, gguf.u32(headDim)], [`${a}.attention.value_length`, gguf.u32(headDim)]);
  }
  if (nMtp > 0) metadata.push([`${a}.nextn_predict_layers`, gguf.u32(nMtp)]);
  metadata.push(...(s.tokenizer ?? syntheticSpmTokenizer(s.vocabSize)));
  return { metadata, tensors };
}

/**
 * Random quant blocks without quantizing: random payload bits, block scales drawn so dequantized
 * values have roughly the requested scale. Only for benchmark files (speed doesn't depend on values).
 */
function randomBlocks(type: number, cols: number, rows: number, rng: SeededRandom, scale: number): Uint8Array {
  const bytes = new Uint8Array(rowByteSize(type, cols) * rows);
  // Random bits everywhere (fast: 4 bytes per draw), then fix the scale fields of known layouts.
  const words = new Uint32Array(bytes.buffer, 0, bytes.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = rng.nextU32();
  for (let i = words.length * 4; i < bytes.length; i++) bytes[i] = rng.nextU32() & 0xff;
  const traits = getQuantTraits(type);
  const view = new DataView(bytes.buffer);
  const f16Scale = f16Bits(scale / 8);
  const blocks = bytes.byteLength / traits.bytesPerBlock;
  const name = ggmlTypeName(type);
  for (let b = 0; b < blocks; b++) {
    const o = b * traits.bytesPerBlock;
    switch (name) {
      case "Q4_0": case "Q5_0": case "Q8_0": case "IQ4_NL":
        view.setUint16(o, name === "Q8_0" ? f16Bits(scale / 64) : f16Scale, true);
        break;
      case "Q4_1": case "Q5_1":
        view.setUint16(o, f16Scale, true);
        view.setUint16(o + 2, f16Bits(-scale), true);
        break;
      case "Q2_K": view.setUint16(o + 80, f16Scale, true); view.setUint16(o + 82, f16Scale, true); break;
      case "Q3_K": view.setUint16(o + 108, f16Bits(scale / 64), true); break;
      case "Q4_K": case "Q5_K": view.setUint16(o, f16Bits(scale / 64), true); view.setUint16(o + 2, f16Bits(scale / 64), true); break;
      case "Q6_K": view.setUint16(o + 208, f16Bits(scale / 512), true); break;
      case "F16": case "BF16": case "F32":
        // Random bits would be NaN/huge floats: write real values.
        return quantizeMatrix(randomF32(cols * rows, rng, scale), type, cols, rows, "random");
    }
  }
  // Q4_0 quants are q - 8 with q in 0..15, mean -1/2: that common mode adds up coherently through
  // the layers until every input gives the same output. Mapping q = 0 to 8 makes them symmetric.
  if (name === "Q4_0") {
    for (let b = 0; b < blocks; b++) {
      const o = b * traits.bytesPerBlock + 2;
      for (let i = o; i < o + 16; i++) {
        const v = bytes[i]!;
        if ((v & 0x0f) === 0 || (v & 0xf0) === 0) bytes[i] = ((v & 0x0f) === 0 ? v | 0x08 : v) | ((v & 0xf0) === 0 ? 0x80 : 0);
      }
    }
  }
  // llama.cpp's Q8_0 quantizer never writes -128 (quants are round(x / d) with |x / d| <= 127).
  if (name === "Q8_0") {
    for (let b = 0; b < blocks; b++) {
      const o = b * traits.bytesPerBlock + 2;
      for (let i = o; i < o + 32; i++) if (bytes[i] === 0x80) bytes[i] = 0x81;
    }
  }
  return bytes;
}
