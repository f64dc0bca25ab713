// Every tensor a model file holds, one row per role: its GGUF name, its shape as a function of the
// hyper-parameters, and in which architectures it appears, required or optional. The loader
// (weights.ts), `mimo synth` (tools/synthetic-model.ts) and the converters read this
// table; nothing else spells a tensor name or shape. Names are llama.cpp's (llama-arch.cpp).

import type { ArchitectureName } from "./architectures.ts";
import type { ModelConfig } from "./config.ts";

/** The hyper-parameters tensor shapes depend on: the ModelConfig fields, named once there. */
export type TensorDims = Pick<ModelConfig, "dim" | "ffnDim" | "nHeads" | "nKvHeads" | "headDim" | "headDimV" | "vocabSize" | "ropeDim">;

/**
 * model: one per file; layer: one per decoder layer (the MTP layers are decoder layers too);
 * mtp: one more per multi-token-prediction layer, on top of its decoder-layer tensors.
 */
export type TensorScope = "model" | "layer" | "mtp";

/**
 * matrix: a 2-D weight a matmul (or an embedding lookup) reads, stored in any quant type; norm: RMS
 * norm weights (values around 1); bias: added vectors (around 0); factors: RoPE frequency factors.
 * Only matrices are quantized: the 1-D kinds stay F32, as llama.cpp's quantizer keeps them.
 */
export type TensorKind = "matrix" | "norm" | "bias" | "factors";

export type Presence = "required" | "optional";

/** Roles by scope, named as the fields of TransformerWeights / LayerWeights / MtpLayerWeights they load into. */
export type ModelTensorKey = "tokenEmbd" | "outputNorm" | "output" | "ropeFreqs";
export type LayerTensorKey =
  | "attnNorm" | "wq" | "wk" | "wv" | "bq" | "bk" | "bv" | "qNorm" | "kNorm" | "wo" | "bo"
  | "ffnNorm" | "gate" | "up" | "down";
export type MtpTensorKey = "tokenNorm" | "hiddenNorm" | "inputProj" | "finalNorm";
export type TensorKey = ModelTensorKey | LayerTensorKey | MtpTensorKey;

export interface TensorRole {
  readonly key: TensorKey;
  readonly scope: TensorScope;
  /** GGUF name; "{i}" stands for the layer index (MTP layers are numbered after the main layers). */
  readonly pattern: string;
  readonly kind: TensorKind;
  /**
   * The tensor's name in a Hugging Face checkpoint (transformers' Llama/Qwen2/Qwen3/MiMo modules):
   * the full name for model tensors; for layer and mtp tensors the part after the layer's prefix,
   * "model.layers.{i}." (MiMo's MTP layers: "model.mtp_layers.{j}."). Absent: not stored there
   * (rope_freqs is computed from config.json).
   */
  readonly hf?: string;
  /** GGUF shape, ne0 first: [columns, rows] for a matrix. */
  shape(d: TensorDims): readonly number[];
  /** The same in every architecture, or per architecture (an architecture not named has no such tensor). */
  readonly presence: Presence | Readonly<Partial<Record<ArchitectureName, Presence>>>;
}

const qDim = (d: TensorDims) => d.nHeads * d.headDim;
const kDim = (d: TensorDims) => d.nKvHeads * d.headDim;
const vDim = (d: TensorDims) => d.nKvHeads * d.headDimV;

// Qwen2 (and MiMo, a Qwen2) must have q/k/v biases; llama.cpp's Llama loads them when present.
const qkvBias = { llama: "optional", qwen2: "required", qwen3: "optional", mimo: "required" } as const;

/** The table, in the order files list their tensors. */
export const TENSORS: readonly TensorRole[] = [
  { key: "tokenEmbd", scope: "model", pattern: "token_embd.weight", hf: "model.embed_tokens.weight", kind: "matrix", shape: (d) => [d.dim, d.vocabSize], presence: "required" },
  { key: "outputNorm", scope: "model", pattern: "output_norm.weight", hf: "model.norm.weight", kind: "norm", shape: (d) => [d.dim], presence: "required" },
  // Llama 3 RoPE scaling: one factor per rotated pair dividing its frequency.
  { key: "ropeFreqs", scope: "model", pattern: "rope_freqs.weight", kind: "factors", shape: (d) => [d.ropeDim / 2], presence: "optional" },
  // Absent: the output projection is the token embedding (tied).
  { key: "output", scope: "model", pattern: "output.weight", hf: "lm_head.weight", kind: "matrix", shape: (d) => [d.dim, d.vocabSize], presence: "optional" },

  { key: "attnNorm", scope: "layer", pattern: "blk.{i}.attn_norm.weight", hf: "input_layernorm.weight", kind: "norm", shape: (d) => [d.dim], presence: "required" },
  { key: "wq", scope: "layer", pattern: "blk.{i}.attn_q.weight", hf: "self_attn.q_proj.weight", kind: "matrix", shape: (d) => [d.dim, qDim(d)], presence: "required" },
  { key: "wk", scope: "layer", pattern: "blk.{i}.attn_k.weight", hf: "self_attn.k_proj.weight", kind: "matrix", shape: (d) => [d.dim, kDim(d)], presence: "required" },
  { key: "wv", scope: "layer", pattern: "blk.{i}.attn_v.weight", hf: "self_attn.v_proj.weight", kind: "matrix", shape: (d) => [d.dim, vDim(d)], presence: "required" },
  { key: "bq", scope: "layer", pattern: "blk.{i}.attn_q.bias", hf: "self_attn.q_proj.bias", kind: "bias", shape: (d) => [qDim(d)], presence: qkvBias },
  { key: "bk", scope: "layer", pattern: "blk.{i}.attn_k.bias", hf: "self_attn.k_proj.bias", kind: "bias", shape: (d) => [kDim(d)], presence: qkvBias },
  { key: "bv", scope: "layer", pattern: "blk.{i}.attn_v.bias", hf: "self_attn.v_proj.bias", kind: "bias", shape: (d) => [vDim(d)], presence: qkvBias },
  // Qwen3: RMS norm of each query and key head before RoPE.
  { key: "qNorm", scope: "layer", pattern: "blk.{i}.attn_q_norm.weight", hf: "self_attn.q_norm.weight", kind: "norm", shape: (d) => [d.headDim], presence: { qwen3: "required" } },
  { key: "kNorm", scope: "layer", pattern: "blk.{i}.attn_k_norm.weight", hf: "self_attn.k_norm.weight", kind: "norm", shape: (d) => [d.headDim], presence: { qwen3: "required" } },
  { key: "wo", scope: "layer", pattern: "blk.{i}.attn_output.weight", hf: "self_attn.o_proj.weight", kind: "matrix", shape: (d) => [d.nHeads * d.headDimV, d.dim], presence: "required" },
  { key: "bo", scope: "layer", pattern: "blk.{i}.attn_output.bias", hf: "self_attn.o_proj.bias", kind: "bias", shape: (d) => [d.dim], presence: "optional" },
  { key: "ffnNorm", scope: "layer", pattern: "blk.{i}.ffn_norm.weight", hf: "post_attention_layernorm.weight", kind: "norm", shape: (d) => [d.dim], presence: "required" },
  { key: "gate", scope: "layer", pattern: "blk.{i}.ffn_gate.weight", hf: "mlp.gate_proj.weight", kind: "matrix", shape: (d) => [d.dim, d.ffnDim], presence: "required" },
  { key: "up", scope: "layer", pattern: "blk.{i}.ffn_up.weight", hf: "mlp.up_proj.weight", kind: "matrix", shape: (d) => [d.dim, d.ffnDim], presence: "required" },
  { key: "down", scope: "layer", pattern: "blk.{i}.ffn_down.weight", hf: "mlp.down_proj.weight", kind: "matrix", shape: (d) => [d.ffnDim, d.dim], presence: "required" },

  // MiMo's multi-token-prediction layer (Transformer.mtpForward): eh_proj · cat[enorm(e), hnorm(h)]
  // -> a decoder layer -> shared_head_norm -> the shared output projection, with e the embedding of
  // the next token and h the main model's last hidden state (before output_norm).
  //
  // Convention for eh_proj (fixed; every writer and reader of these files follows it): its 2*dim
  // columns multiply cat[enorm(e), hnorm(h)], the EMBEDDING half FIRST, as in llama.cpp's NextN
  // tensors (DeepSeek-V3, GLM-4.5), so the name means the same in every architecture. MiMo's own
  // checkpoint names these token_layernorm (enorm), hidden_layernorm (hnorm), final_layernorm
  // (shared_head_norm) and input_proj, and its input_proj multiplies cat[hidden_layernorm(h),
  // token_layernorm(e)] (hidden half first): a converter from MiMo's safetensors swaps the two
  // column halves of input_proj.weight when it writes eh_proj.
  { key: "tokenNorm", scope: "mtp", pattern: "blk.{i}.nextn.enorm.weight", hf: "token_layernorm.weight", kind: "norm", shape: (d) => [d.dim], presence: { mimo: "required" } },
  { key: "hiddenNorm", scope: "mtp", pattern: "blk.{i}.nextn.hnorm.weight", hf: "hidden_layernorm.weight", kind: "norm", shape: (d) => [d.dim], presence: { mimo: "required" } },
  { key: "inputProj", scope: "mtp", pattern: "blk.{i}.nextn.eh_proj.weight", hf: "input_proj.weight", kind: "matrix", shape: (d) => [2 * d.dim, d.dim], presence: { mimo: "required" } },
  { key: "finalNorm", scope: "mtp", pattern: "blk.{i}.nextn.shared_head_norm.weight", hf: "final_layernorm.weight", kind: "norm", shape: (d) => [d.dim], presence: { mimo: "required" } },
];

const byKey = new Map<TensorKey, TensorRole>(TENSORS.map((r) => [r.key, r]));

export function tensorRole(key: TensorKey): TensorRole {
  return byKey.get(key)!;
}

/** Whether the architecture has the tensor, and if so whether a file must. */
export function presenceIn(role: TensorRole, arch: ArchitectureName): Presence | undefined {
  return typeof role.presence === "string" ? role.presence : role.presence[arch];
}

/** The roles of one scope an architecture has, in table order. */
export function architectureTensors(arch: ArchitectureName, scope: TensorScope): readonly TensorRole[] {
  return TENSORS.filter((r) => r.scope === scope && presenceIn(r, arch) !== undefined);
}

/** Whether the architecture has multi-token-prediction layers after its main layers. */
export function hasMtpLayers(arch: ArchitectureName): boolean {
  return architectureTensors(arch, "mtp").length > 0;
}

/** The GGUF name of a role's tensor (of layer `layer` for per-layer roles). */
export function tensorName(role: TensorRole | TensorKey, layer?: number): string {
  const r = typeof role === "string" ? tensorRole(role) : role;
  if (r.scope === "model") return r.pattern;
  if (layer === undefined || !Number.isInteger(layer) || layer < 0) throw new RangeError(`tensor ${r.key} needs a layer index, got ${layer}`);
  return r.pattern.replace("{i}", String(layer));
}

/** The GGUF shape of a role's tensor. */
export function tensorShape(role: TensorRole | TensorKey, d: TensorDims): readonly number[] {
  return (typeof role === "string" ? tensorRole(role) : role).shape(d);
}

const patterns = TENSORS.map((r) => ({ role: r, re: new RegExp("^" + r.pattern.replaceAll(".", "\\.").replace("{i}", "(\\d+)") + "$") }));

/** The role (and layer) of a GGUF tensor name; undefined for a name no role has. */
export function parseTensorName(name: string): { readonly role: TensorRole; readonly layer?: number } | undefined {
  for (const { role, re } of patterns) {
    const m = re.exec(name);
    if (m) return m[1] === undefined ? { role } : { role, layer: Number(m[1]) };
  }
  return undefined;
}
