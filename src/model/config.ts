import { ModelFileError, UnsupportedModelError, quote } from "../format/errors.ts";
import type { GGUFFile } from "../format/gguf-reader.ts";
import { findArchitecture, supportedArchitectures, type ArchitectureSpec } from "./architectures.ts";
import { MetadataReader } from "./metadata.ts";
import { hasMtpLayers, tensorName } from "./tensors.ts";

/** Every hyper-parameter the forward pass needs, read once from GGUF metadata. */
export interface ModelConfig {
  readonly arch: ArchitectureSpec;
  readonly name: string | undefined;
  /** Main decoder layers (MTP layers not counted). */
  readonly nLayers: number;
  /** Multi-token-prediction layers stored after the main layers (MiMo), else 0. */
  readonly nMtpLayers: number;
  readonly dim: number;
  readonly ffnDim: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly headDimV: number;
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly normEps: number;
  readonly ropeBase: number;
  /** How many leading dimensions of each head are rotated. */
  readonly ropeDim: number;
  /** Multiplies positions (linear RoPE scaling); 1 when unscaled. */
  readonly ropeFreqScale: number;
}

export function readModelConfig(file: GGUFFile): ModelConfig {
  const md = new MetadataReader(file.fileName, file.metadata);
  const archName = md.string("general.architecture");
  const arch = findArchitecture(archName);
  if (!arch) {
    throw new UnsupportedModelError(
      file.fileName,
      `architecture ${quote(archName)} is not supported (supported: ${supportedArchitectures.join(", ")})`,
    );
  }
  const k = (key: string) => `${archName}.${key}`;
  const blockCount = md.count(k("block_count"));
  const nMtpLayers = hasMtpLayers(arch.name) ? (md.optionalNumber(k("nextn_predict_layers")) ?? 0) : 0;
  if (nMtpLayers < 0 || nMtpLayers >= blockCount) {
    throw new ModelFileError(file.fileName, `metadata "${k("nextn_predict_layers")}" is ${nMtpLayers}, but block_count is ${blockCount}`);
  }
  const dim = md.count(k("embedding_length"));
  const nHeads = md.count(k("attention.head_count"));
  const nKvHeads = md.optionalCount(k("attention.head_count_kv")) ?? nHeads;
  if (nHeads % nKvHeads !== 0) {
    throw new ModelFileError(file.fileName, `attention.head_count ${nHeads} is not a multiple of head_count_kv ${nKvHeads}`);
  }
  const headDim = md.optionalCount(k("attention.key_length")) ?? dim / nHeads;
  if (!Number.isInteger(headDim)) {
    throw new ModelFileError(file.fileName, `embedding_length ${dim} is not divisible by head_count ${nHeads}; attention.key_length is needed`);
  }
  const headDimV = md.optionalCount(k("attention.value_length")) ?? headDim;
  const ropeDim = md.optionalCount(k("rope.dimension_count")) ?? headDim;
  if (ropeDim > headDim || ropeDim % 2 !== 0) {
    throw new ModelFileError(file.fileName, `rope.dimension_count ${ropeDim} must be even and at most the head size ${headDim}`);
  }
  const scalingType = md.optionalString(k("rope.scaling.type")) ?? "none";
  let ropeFreqScale = 1;
  if (scalingType === "linear") {
    const factor = md.optionalNumber(k("rope.scaling.factor")) ?? 1;
    ropeFreqScale = factor > 0 ? 1 / factor : 1;
  } else if (scalingType !== "none") {
    throw new UnsupportedModelError(file.fileName, `rope scaling type ${quote(scalingType)} is not supported (supported: none, linear)`);
  }
  const embd = file.tensor(tensorName("tokenEmbd"));
  if (embd.shape.length !== 2 || embd.shape[0] !== dim) {
    throw new ModelFileError(file.fileName, `tensor "${embd.name}" has shape [${embd.shape.join(", ")}], expected [${dim}, vocabulary size]`);
  }
  const vocabSize = embd.shape[1]!;
  const contextLength = md.optionalCount(k("context_length")) ?? 2048;
  // A sequence needs room for a prompt token and a generated one.
  if (contextLength < 2) throw new ModelFileError(file.fileName, `metadata "${k("context_length")}" is ${contextLength}, expected at least 2`);
  return {
    arch,
    name: md.optionalString("general.name"),
    nLayers: blockCount - nMtpLayers,
    nMtpLayers,
    dim,
    ffnDim: md.count(k("feed_forward_length")),
    nHeads,
    nKvHeads,
    headDim,
    headDimV,
    vocabSize,
    contextLength,
    normEps: md.optionalNumber(k("attention.layer_norm_rms_epsilon")) ?? 1e-5,
    ropeBase: md.optionalNumber(k("rope.freq_base")) ?? 10000,
    ropeDim,
    ropeFreqScale,
  };
}

/**
 * The tokenizer and the weights must agree on the vocabulary (llama.cpp requires token_embd and
 * output to have exactly as many rows as the tokenizer has tokens): a mismatch would otherwise show
 * up while generating, as an id one side does not have.
 */
export function checkTokenizerFits(file: GGUFFile, config: ModelConfig, tokenizerSize: number): void {
  if (tokenizerSize !== config.vocabSize) {
    throw new ModelFileError(
      file.fileName,
      `the tokenizer has ${tokenizerSize} tokens (tokenizer.ggml.tokens) but tensor "${tensorName("tokenEmbd")}" has ${config.vocabSize} rows; they must be equal`,
    );
  }
  const out = tensorName("output");
  if (file.hasTensor(out)) {
    const rows = file.tensor(out).shape[1];
    if (rows !== tokenizerSize) {
      throw new ModelFileError(file.fileName, `tensor "${out}" has ${rows ?? "no"} rows but the tokenizer has ${tokenizerSize} tokens; they must be equal`);
    }
  }
}
