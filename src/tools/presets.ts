// Real model shapes for synthetic benchmark files (`mimo synth --preset ...`): the hyper-parameters
// of each model's published Hugging Face config.json, so that a file with deterministic random
// weights is read, multiplied and cached exactly like the real model (speed does not depend on
// the values). Sources are recorded per preset.

import { findArchitecture } from "../model/architectures.ts";
import { hasMtpLayers } from "../model/tensors.ts";
import { ggmlTypeName } from "../quant/ggml-type.ts";
import type { SyntheticArch, SyntheticModelSpec } from "./synthetic-model.ts";

/** The config.json fields a preset is made of (names as in Hugging Face configs). */
export interface ModelPreset {
  /** Model id on Hugging Face. */
  readonly hfId: string;
  /** Where the numbers were read. */
  readonly source: string;
  readonly arch: SyntheticArch;
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly num_key_value_heads: number;
  /** Only where config.json states it (Qwen3, Llama 3.2); otherwise hidden_size / heads. */
  readonly head_dim?: number;
  readonly vocab_size: number;
  readonly tie_word_embeddings: boolean;
  readonly rope_theta: number;
  readonly rms_norm_eps: number;
  readonly max_position_embeddings: number;
  /** Llama 3 RoPE scaling (written as llama.cpp does: a rope_freqs tensor). */
  readonly rope_scaling?: {
    readonly factor: number;
    readonly low_freq_factor: number;
    readonly high_freq_factor: number;
    readonly original_max_position_embeddings: number;
  };
  /** MiMo multi-token-prediction layers. */
  readonly num_nextn_predict_layers?: number;
  readonly bos_token_id: number;
  readonly eos_token_id: number;
  /**
   * The tokenizer to embed: a bundled tokenizer.json (qwen, llama3), or Llama 2's SentencePiece
   * vocabulary (llama2: the test data's llama.cpp vocabulary file, in a repository checkout).
   */
  readonly tokenizer: "qwen" | "llama3" | "llama2";
}

export const presets = {
  // https://huggingface.co/Qwen/Qwen2-0.5B/blob/main/config.json (as quoted in
  // rwth-i6/i6_experiments .../configurations/qwen2/qwen2_configs.py, "Qwen2-0_5B").
  "qwen2-0.5b": {
    hfId: "Qwen/Qwen2-0.5B",
    source: "Qwen/Qwen2-0.5B config.json",
    arch: "qwen2",
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    vocab_size: 151936,
    tie_word_embeddings: true,
    rope_theta: 1000000,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 131072,
    bos_token_id: 151643,
    eos_token_id: 151643,
    tokenizer: "qwen",
  },
  // https://huggingface.co/Qwen/Qwen2-1.5B/blob/main/config.json (as copied by fine-tunes that
  // name "_name_or_path": "Qwen/Qwen2-1.5B", e.g. huggingface.co/Egoli/Qwen2-1.5b-identity).
  "qwen2-1.5b": {
    hfId: "Qwen/Qwen2-1.5B",
    source: "Qwen/Qwen2-1.5B config.json",
    arch: "qwen2",
    hidden_size: 1536,
    intermediate_size: 8960,
    num_hidden_layers: 28,
    num_attention_heads: 12,
    num_key_value_heads: 2,
    vocab_size: 151936,
    tie_word_embeddings: true,
    rope_theta: 1000000,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 131072,
    bos_token_id: 151643,
    eos_token_id: 151643,
    tokenizer: "qwen",
  },
  // https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json (as quoted, with its
  // _commit_hash, in kevinstephano/thunder_model_blocks hf_llama/llama_config.py).
  "llama-3.2-1b": {
    hfId: "meta-llama/Llama-3.2-1B",
    source: "meta-llama/Llama-3.2-1B config.json",
    arch: "llama",
    hidden_size: 2048,
    intermediate_size: 8192,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    vocab_size: 128256,
    tie_word_embeddings: true,
    rope_theta: 500000,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 131072,
    rope_scaling: { factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    bos_token_id: 128000,
    eos_token_id: 128001,
    tokenizer: "llama3",
  },
  // https://huggingface.co/Qwen/Qwen3-0.6B/raw/main/config.json
  "qwen3-0.6b": {
    hfId: "Qwen/Qwen3-0.6B",
    source: "Qwen/Qwen3-0.6B config.json",
    arch: "qwen3",
    hidden_size: 1024,
    intermediate_size: 3072,
    num_hidden_layers: 28,
    num_attention_heads: 16,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 151936,
    tie_word_embeddings: true,
    rope_theta: 1000000,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 40960,
    bos_token_id: 151643,
    eos_token_id: 151645,
    tokenizer: "qwen",
  },
  // Karpathy's TinyStories models (llama2.c, huggingface.co/karpathy/tinyllamas): dim, n_layers,
  // n_heads, n_kv_heads and max context length from the model table of karpathy/llama2.c's
  // README; hidden_dim as its model.py derives it (4 * dim, times 2/3, rounded up to a multiple of
  // multiple_of = 32); ModelArgs' norm_eps 1e-5 and RoPE theta 10000; the classifier shares the
  // token embedding (weight tying); Llama 2's 32,000-token SentencePiece vocabulary.
  stories15m: {
    hfId: "karpathy/tinyllamas stories15M",
    source: "karpathy/llama2.c README model table + model.py",
    arch: "llama",
    hidden_size: 288,
    intermediate_size: 768,
    num_hidden_layers: 6,
    num_attention_heads: 6,
    num_key_value_heads: 6,
    vocab_size: 32000,
    tie_word_embeddings: true,
    rope_theta: 10000,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 256,
    bos_token_id: 1,
    eos_token_id: 2,
    tokenizer: "llama2",
  },
  stories42m: {
    hfId: "karpathy/tinyllamas stories42M",
    source: "karpathy/llama2.c README model table + model.py",
    arch: "llama",
    hidden_size: 512,
    intermediate_size: 1376,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    num_key_value_heads: 8,
    vocab_size: 32000,
    tie_word_embeddings: true,
    rope_theta: 10000,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 1024,
    bos_token_id: 1,
    eos_token_id: 2,
    tokenizer: "llama2",
  },
  stories110m: {
    hfId: "karpathy/tinyllamas stories110M",
    source: "karpathy/llama2.c README model table + model.py",
    arch: "llama",
    hidden_size: 768,
    intermediate_size: 2048,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    num_key_value_heads: 12,
    vocab_size: 32000,
    tie_word_embeddings: true,
    rope_theta: 10000,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 1024,
    bos_token_id: 1,
    eos_token_id: 2,
    tokenizer: "llama2",
  },
  // XiaomiMiMo/MiMo-7B-Base: a Qwen2 decoder (MiMoConfig extends Qwen2Config, q/k/v biases) plus
  // num_nextn_predict_layers MTP layers. Shapes from the config.json of a MiMo-7B fine-tune
  // (huggingface.co/TencentBAC/FastMTP/raw/main/config.json: hidden 4096, intermediate 11008,
  // 36 layers, 32/8 heads, head_dim 128, rope_theta 640000, eps 1e-5, 32768 positions, 1 MTP
  // layer); vocab_size 151680 and untied output as in the configs built on the same backbone
  // (MiMo-Audio: "vocab_size": 151680, "tie_word_embeddings": false, "rope_theta": 640000).
  "mimo-7b": {
    hfId: "XiaomiMiMo/MiMo-7B-Base",
    source: "XiaomiMiMo/MiMo-7B-Base config.json (via TencentBAC/FastMTP config.json)",
    arch: "mimo",
    hidden_size: 4096,
    intermediate_size: 11008,
    num_hidden_layers: 36,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 151680,
    tie_word_embeddings: false,
    rope_theta: 640000,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 32768,
    num_nextn_predict_layers: 1,
    bos_token_id: 151643,
    eos_token_id: 151645,
    tokenizer: "qwen",
  },
} as const satisfies Record<string, ModelPreset>;

export type PresetName = keyof typeof presets;
export const presetNames = Object.keys(presets) as PresetName[];

export function findPreset(name: string): ModelPreset | undefined {
  return Object.hasOwn(presets, name) ? presets[name as PresetName] : undefined;
}

/** Llama 3 rope frequency factors, as llama.cpp's convert_hf_to_gguf.py computes rope_freqs. */
export function llama3RopeFactors(p: ModelPreset): Float32Array | undefined {
  const s = p.rope_scaling;
  if (!s) return undefined;
  const dim = p.head_dim ?? p.hidden_size / p.num_attention_heads;
  const lowWavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const highWavelen = s.original_max_position_embeddings / s.high_freq_factor;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / Math.pow(p.rope_theta, (2 * i) / dim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

export interface PresetSpecOptions {
  /** GGML type of the 2-D weights (token_embd and output too, shape permitting). */
  readonly type: number;
  readonly seed?: number;
  /** Override the number of decoder layers (small files for quick tests). */
  readonly layers?: number;
  /** MiMo: write the main path as its own architecture (plain qwen2) without the MTP layers (llama.cpp has no "mimo"). */
  readonly noMtp?: boolean;
  /** Random quant payload with sane scales instead of quantizing random values (default true). */
  readonly fast?: boolean;
  /** Tokenizer metadata to embed (default: a synthetic SentencePiece vocabulary). */
  readonly tokenizer?: SyntheticModelSpec["tokenizer"];
}

/** The synthetic-model spec of a preset at a quant type. */
export function presetSpec(name: string, o: PresetSpecOptions): SyntheticModelSpec {
  const p = findPreset(name);
  if (!p) throw new RangeError(`unknown preset "${name}" (presets: ${presetNames.join(", ")})`);
  const nLayers = o.layers ?? p.num_hidden_layers;
  if (!(Number.isInteger(nLayers) && nLayers >= 1)) throw new RangeError(`layers must be a positive integer, got ${o.layers}`);
  const arch: SyntheticArch = (o.noMtp && findArchitecture(p.arch)!.mainPathAs) || p.arch;
  return {
    arch,
    name: `synthetic ${p.hfId} shape${o.layers !== undefined ? ` (${nLayers} layers)` : ""}, ${ggmlTypeName(o.type)}`,
    dim: p.hidden_size,
    ffnDim: p.intermediate_size,
    nLayers,
    nHeads: p.num_attention_heads,
    nKvHeads: p.num_key_value_heads,
    headDim: p.head_dim,
    vocabSize: p.vocab_size,
    contextLength: p.max_position_embeddings,
    ropeBase: p.rope_theta,
    normEps: p.rms_norm_eps,
    ropeFreqFactors: llama3RopeFactors(p),
    weightType: o.type,
    tiedOutput: p.tie_word_embeddings,
    nMtpLayers: hasMtpLayers(arch) ? (p.num_nextn_predict_layers ?? 0) : 0,
    seed: o.seed ?? 1,
    fastRandomBlocks: o.fast ?? true,
    tokenizer: o.tokenizer,
  };
}
