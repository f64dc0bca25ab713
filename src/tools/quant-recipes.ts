// Which type each tensor of a model gets when it is quantized to a file type such as Q4_K_M:
// llama.cpp's rules (src/llama-quant.cpp: llama_tensor_get_type, use_more_bits, the shape
// fallbacks), restated for the types mimo computes. The recipe is a pure function of the tensor
// names, shapes and a few hyper-parameters, so it is tested against tables of expected choices.

import { GGMLType, ggmlTypeLayout, ggmlTypeName, type GGMLTypeId } from "../quant/ggml-type.ts";
import { LlamaFileType } from "../quant/file-type.ts";
import { supportedWeightTypes } from "../quant/traits.ts";

/** A file type (llama.cpp's llama_ftype): the default tensor type and the id stored as general.file_type. */
export interface QuantRecipe {
  readonly name: string;
  /** llama_ftype value (quant/file-type.ts), written as general.file_type. */
  readonly ftype: number;
  readonly defaultType: GGMLTypeId;
  /** What it is, for `mimo quantize --help`. */
  readonly summary: string;
}

const T = GGMLType;

/** Every file type mimo writes: the plain types, and llama.cpp's K-quant mixes. */
export const RECIPES: readonly QuantRecipe[] = [
  { name: "F32", ftype: LlamaFileType.F32, defaultType: T.F32, summary: "32-bit floats" },
  { name: "F16", ftype: LlamaFileType.F16, defaultType: T.F16, summary: "16-bit floats" },
  { name: "BF16", ftype: LlamaFileType.BF16, defaultType: T.BF16, summary: "bfloat16" },
  { name: "Q8_0", ftype: LlamaFileType.Q8_0, defaultType: T.Q8_0, summary: "8.5 bits per weight" },
  { name: "Q6_K", ftype: LlamaFileType.Q6_K, defaultType: T.Q6_K, summary: "6.56 bpw" },
  { name: "Q5_K_M", ftype: LlamaFileType.Q5_K_M, defaultType: T.Q5_K, summary: "Q5_K, attn_v and ffn_down Q6_K on half the layers" },
  { name: "Q5_K_S", ftype: LlamaFileType.Q5_K_S, defaultType: T.Q5_K, summary: "Q5_K" },
  { name: "Q5_1", ftype: LlamaFileType.Q5_1, defaultType: T.Q5_1, summary: "6 bpw" },
  { name: "Q5_0", ftype: LlamaFileType.Q5_0, defaultType: T.Q5_0, summary: "5.5 bpw" },
  { name: "Q4_K_M", ftype: LlamaFileType.Q4_K_M, defaultType: T.Q4_K, summary: "Q4_K, attn_v and ffn_down Q6_K on half the layers" },
  { name: "Q4_K_S", ftype: LlamaFileType.Q4_K_S, defaultType: T.Q4_K, summary: "Q4_K, more bits on the first layers' attn_v and ffn_down" },
  { name: "Q4_1", ftype: LlamaFileType.Q4_1, defaultType: T.Q4_1, summary: "5 bpw" },
  { name: "Q4_0", ftype: LlamaFileType.Q4_0, defaultType: T.Q4_0, summary: "4.5 bpw" },
  { name: "IQ4_NL", ftype: LlamaFileType.IQ4_NL, defaultType: T.IQ4_NL, summary: "4.5 bpw, non-linear levels" },
  { name: "Q3_K_L", ftype: LlamaFileType.Q3_K_L, defaultType: T.Q3_K, summary: "Q3_K, attn_v/attn_output/ffn_down Q5_K" },
  { name: "Q3_K_M", ftype: LlamaFileType.Q3_K_M, defaultType: T.Q3_K, summary: "Q3_K, attn_v/attn_output/ffn_down Q4_K-Q5_K" },
  { name: "Q3_K_S", ftype: LlamaFileType.Q3_K_S, defaultType: T.Q3_K, summary: "Q3_K" },
  { name: "Q2_K", ftype: LlamaFileType.Q2_K, defaultType: T.Q2_K, summary: "Q2_K, attn_v/attn_output/ffn_down Q3_K-Q4_K" },
  { name: "Q2_K_S", ftype: LlamaFileType.Q2_K_S, defaultType: T.Q2_K, summary: "Q2_K, needs an importance matrix" },
];

/** llama-quantize's shorter names. */
const ALIASES: Readonly<Record<string, string>> = { Q4_K: "Q4_K_M", Q5_K: "Q5_K_M", Q3_K: "Q3_K_M" };

export function findRecipe(name: string): QuantRecipe | undefined {
  const key = name.toUpperCase();
  return RECIPES.find((r) => r.name === (ALIASES[key] ?? key));
}

/** The hyper-parameters the rules read (llama.cpp's hparams). */
export interface RecipeModel {
  readonly arch: string;
  readonly nHead: number;
  readonly nHeadKv: number;
  /** block_count: every decoder layer, multi-token-prediction layers included (llama.cpp's n_layer_all). */
  readonly nLayerAll: number;
}

export interface RecipeTensor {
  readonly name: string;
  /** ggml order: shape[0] is the row length. */
  readonly shape: readonly number[];
  /** Its type in the input file. */
  readonly type: number;
}

export interface TypeOverride {
  /** Matched anywhere in the tensor name (a regular expression, as llama-quantize's --tensor-type). */
  readonly pattern: RegExp;
  readonly type: GGMLTypeId;
}

export interface RecipeOptions {
  /** Every quantized tensor gets the default type (no mix, only the shape fallbacks). */
  readonly pure?: boolean;
  /** First match wins; applied instead of the mix, before the shape fallback. */
  readonly overrides?: readonly TypeOverride[];
  readonly outputType?: GGMLTypeId;
  readonly tokenEmbeddingType?: GGMLTypeId;
  /** Keep output.weight as it is (llama-quantize --leave-output-tensor). */
  readonly leaveOutput?: boolean;
  readonly hasImatrix?: boolean;
}

export interface TypeChoice {
  readonly name: string;
  /** The type written. */
  readonly type: number;
  /** Whether the tensor is converted at all (false: 1-D tensors, norms: copied as they are). */
  readonly quantized: boolean;
  /** The rules wanted a type the row length does not allow, so the fallback was used. */
  readonly fallbackFrom?: number;
}

/** Number of dimensions ignoring trailing 1s (ggml_n_dims). */
function nDims(shape: readonly number[]): number {
  let n = shape.length;
  while (n > 1 && shape[n - 1] === 1) n--;
  return Math.max(1, n);
}

/** Whether llama.cpp quantizes this tensor at all (tensor_allows_quantization, the parts that apply to decoder LMs). */
export function allowsQuantization(t: RecipeTensor, o: RecipeOptions = {}): boolean {
  if (nDims(t.shape) < 2) return false;
  if (!t.name.endsWith("weight")) return false;
  if (t.name.includes("_norm.weight")) return false;
  if (o.leaveOutput && t.name === "output.weight") return false;
  return true;
}

type Category = "output" | "token_embd" | "attn_v" | "attn_k" | "attn_q" | "attn_output" | "ffn_up" | "ffn_gate" | "ffn_down" | "other";

/** tensor_get_category: broad roles by name (attn_qkv and attn_kv_b count as attn_v). */
function categoryOf(name: string): Category {
  if (name === "output.weight") return "output";
  if (name === "token_embd.weight") return "token_embd";
  if (name.includes("attn_qkv.weight") || name.includes("attn_kv_b.weight") || name.includes("attn_v.weight")) return "attn_v";
  if (name.includes("attn_k.weight")) return "attn_k";
  if (name.includes("attn_q.weight")) return "attn_q";
  if (name.includes("attn_output.weight")) return "attn_output";
  if (name.includes("ffn_up")) return "ffn_up";
  if (name.includes("ffn_gate")) return "ffn_gate";
  if (name.includes("ffn_down")) return "ffn_down";
  return "other";
}

const blockSize = (t: number) => ggmlTypeLayout(t)?.blockSize ?? 1;
const isQuantizedType = (t: number) => blockSize(t) > 1;

/**
 * The type llama.cpp writes instead when a row of `cols` is not whole blocks of `type`
 * (tensor_type_fallback): 256-element K-quants drop to a 32-element type, and F16 if even that
 * does not fit.
 */
export function fallbackType(type: number, cols: number): number {
  if (cols % blockSize(type) === 0) return type;
  let r: number;
  switch (type) {
    case T.IQ1_S: case T.IQ1_M: case T.IQ2_XXS: case T.IQ2_XS: case T.IQ2_S: case T.IQ3_XXS: case T.IQ3_S: case T.IQ4_XS:
      r = T.IQ4_NL; break;
    case T.Q2_0: case T.Q2_K: case T.Q3_K: case T.TQ1_0: case T.TQ2_0:
      r = T.Q4_0; break;
    case T.Q4_K: r = T.Q5_0; break;
    case T.Q5_K: r = T.Q5_1; break;
    case T.Q6_K: r = T.Q8_0; break;
    default:
      if (blockSize(type) <= 32) { r = type; break; }
      throw new RangeError(`no fallback type is defined for ${ggmlTypeName(type)}`);
  }
  return cols % blockSize(r) === 0 ? r : T.F16;
}

/** llama.cpp's "more bits" layers: the first and last eighth, and every third layer between. */
export function useMoreBits(i: number, n: number): boolean {
  const e = Math.trunc(n / 8);
  return i < e || i >= Math.trunc((7 * n) / 8) || (i - e) % 3 === 2;
}

/** The layer number of "blk.N.…" names (-1 for the others), llama.cpp's tensor order key. */
function layerOf(name: string): number {
  const m = /^blk\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

/** llama.cpp's tensor order (its loader's weights_map): by layer (others first), then by name. */
export function llamaCppTensorOrder<T extends { readonly name: string }>(tensors: readonly T[]): T[] {
  return [...tensors].sort((a, b) => layerOf(a.name) - layerOf(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The type of every tensor when a model is quantized with `recipe`, in the order given. The
 * layer counters of the mixes advance in llama.cpp's tensor order, as there.
 */
export function chooseTensorTypes(tensors: readonly RecipeTensor[], recipe: QuantRecipe, model: RecipeModel, o: RecipeOptions = {}): TypeChoice[] {
  const ftype = recipe.name;
  const defaultType = recipe.defaultType;
  const nGqa = Math.trunc(model.nHead / model.nHeadKv);
  const tied = !tensors.some((t) => t.name === "output.weight");
  const nAttnV = tensors.filter((t) => categoryOf(t.name) === "attn_v").length;
  const nLayer = model.nLayerAll;
  let iAttnV = 0;
  let iFfnDown = 0;

  // llama_tensor_get_type_impl for the mixes mimo writes (no MoE, no 70B, no IQ1-IQ3 file types).
  const mix = (t: RecipeTensor, cat: Category, start: number): number => {
    let type = start;
    if (cat === "output" || (tied && cat === "token_embd")) {
      if (o.outputType !== undefined) return o.outputType;
      if (t.shape[0]! % blockSize(type) !== 0) return T.Q8_0;
      return type !== T.Q8_0 ? T.Q6_K : type;
    }
    if (cat === "token_embd") return o.tokenEmbeddingType ?? type;
    if (cat === "attn_v") {
      if (ftype === "Q2_K") type = nGqa >= 4 ? T.Q4_K : T.Q3_K;
      else if (ftype === "Q2_K_S" && nGqa >= 4) type = T.Q4_K;
      else if (ftype === "Q3_K_M") type = iAttnV < 2 ? T.Q5_K : T.Q4_K;
      else if (ftype === "Q3_K_L") type = T.Q5_K;
      else if (ftype === "IQ4_NL" && nGqa >= 4) type = T.Q5_K;
      else if ((ftype === "Q4_K_M" || ftype === "Q5_K_M") && useMoreBits(iAttnV, nAttnV)) type = T.Q6_K;
      else if (ftype === "Q4_K_S" && iAttnV < 4) type = T.Q5_K;
      iAttnV++;
      return type;
    }
    if (cat === "ffn_down") {
      const i = iFfnDown++;
      const n = nLayer;
      const eighth = Math.trunc(n / 8);
      const falcon = model.arch === "falcon";
      if (ftype === "Q2_K") type = T.Q3_K;
      else if (ftype === "Q2_K_S") { if (i < eighth) type = T.Q4_K; }
      else if (ftype === "Q3_K_M") type = i < Math.trunc(n / 16) ? T.Q5_K : !falcon || useMoreBits(i, n) ? T.Q4_K : T.Q3_K;
      else if (ftype === "Q3_K_L") type = falcon ? T.Q4_K : T.Q5_K;
      else if (ftype === "Q4_K_M") {
        if (falcon) type = i < Math.trunc(n / 16) ? T.Q6_K : useMoreBits(i, n) ? T.Q5_K : T.Q4_K;
        else if (useMoreBits(i, n)) type = T.Q6_K;
      } else if (i < eighth && ftype === "IQ4_NL" && !o.hasImatrix) type = T.Q5_K;
      else if (ftype === "Q5_K_M" && useMoreBits(i, n)) type = T.Q6_K;
      else if (ftype === "Q4_K_S" && !falcon && i < eighth) type = T.Q5_K;
      else if ((ftype === "Q4_0" || ftype === "Q5_0") && o.hasImatrix && i < eighth) type = ftype === "Q4_0" ? T.Q4_1 : T.Q5_1;
      return type;
    }
    if (cat === "attn_output") {
      if (model.arch !== "falcon") {
        if (ftype === "Q2_K") type = T.Q3_K;
        else if (ftype === "Q3_K_M") type = T.Q4_K;
        else if (ftype === "Q3_K_L") type = T.Q5_K;
      } else if (ftype === "Q3_K_L") type = T.Q4_K;
      return type;
    }
    return type;
  };

  const choices = new Map<string, TypeChoice>();
  for (const t of llamaCppTensorOrder(tensors)) {
    if (!allowsQuantization(t, o)) {
      choices.set(t.name, { name: t.name, type: t.type, quantized: false });
      continue;
    }
    const cat = categoryOf(t.name);
    if (o.tokenEmbeddingType !== undefined && cat === "token_embd") {
      choices.set(t.name, { name: t.name, type: o.tokenEmbeddingType, quantized: true });
      continue;
    }
    if (o.outputType !== undefined && cat === "output") {
      choices.set(t.name, { name: t.name, type: o.outputType, quantized: true });
      continue;
    }
    let type: number = defaultType;
    let fallbackFrom: number | undefined;
    if (isQuantizedType(defaultType)) {
      const manual = o.overrides?.find((ov) => ov.pattern.test(t.name));
      if (manual) type = manual.type;
      // (as in llama.cpp, the mix's layer counters advance only for tensors the mix decides)
      else if (!o.pure) type = mix(t, cat, type);
      const fb = fallbackType(type, t.shape[0]!);
      if (fb !== type) fallbackFrom = type;
      type = fb;
    }
    choices.set(t.name, { name: t.name, type, quantized: true, ...(fallbackFrom !== undefined ? { fallbackFrom } : {}) });
  }
  return tensors.map((t) => choices.get(t.name)!);
}

/** Parses llama-quantize's `--tensor-type PATTERN=TYPE` (the type must be one mimo computes). */
export function parseTypeOverride(spec: string): TypeOverride {
  const eq = spec.lastIndexOf("=");
  if (eq <= 0 || eq === spec.length - 1) throw new RangeError(`--tensor-type "${spec}": expected PATTERN=TYPE, e.g. attn_v=Q6_K or "blk\\.[0-3]\\.ffn_down=Q8_0"`);
  const pattern = spec.slice(0, eq);
  const typeName = spec.slice(eq + 1).toUpperCase();
  const type = supportedWeightTypes.find((t) => ggmlTypeName(t) === typeName);
  if (type === undefined) {
    throw new RangeError(`--tensor-type "${spec}": ${typeName} is not a tensor type mimo computes (one of ${supportedWeightTypes.map(ggmlTypeName).join(", ")})`);
  }
  let re: RegExp;
  try {
    re = new RegExp(pattern);
  } catch (e) {
    throw new RangeError(`--tensor-type "${spec}": the pattern is not a valid regular expression (${(e as Error).message})`);
  }
  return { pattern: re, type };
}
