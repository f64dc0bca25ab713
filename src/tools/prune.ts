// `mimo prune`: structured pruning that writes a smaller GGUF of the same architecture, which mimo
// and llama.cpp load like any other file (the hyper-parameters in the metadata are updated).
//
// - depth: remove whole decoder layers, the n with the lowest Block Influence (ShortGPT, Men et
//   al. 2024: BI = 1 - mean over tokens of cos(layer input, layer output), on calibration text),
//   or the layers named;
// - width: remove FFN channels (the intermediate dimension: rows of ffn_gate/ffn_up, columns of
//   ffn_down), the same number in every layer (llama.cpp's llama/qwen2 loaders take one
//   feed_forward_length for all layers), each layer its least important by
//     wanda: ||a_j||_2 * sum_i |W_down[i, j]|  (Wanda, Sun et al. 2023, summed over the channel), or
//     flap:  var(a_j) * sum_i W_down[i, j]^2   (FLAP's fluctuation metric, An et al. 2024),
//   where a_j is channel j's activation (the input of ffn_down) over the calibration tokens;
// - attention: remove whole KV groups (a key/value head with the query heads that share it), the
//   same number in every layer, scored as the FFN channels are, over the group's columns of
//   attn_output.
// MTP layers (MiMo) are kept and renumbered after the main layers.

import { gguf, type GGUFTypedValue } from "../format/gguf.ts";
import type { GGUFFile } from "../format/gguf-reader.ts";
import type { GGUFTensorToWrite } from "../format/gguf-writer.ts";
import type { ModelConfig } from "../model/config.ts";
import { parseTensorName } from "../model/tensors.ts";
import { openGGUFFile, writeGGUFFile } from "../platform/node-file.ts";
import { ggmlTypeLayout, ggmlTypeName } from "../quant/ggml-type.ts";
import { getQuantTraits, rowByteSize } from "../quant/traits.ts";
import type { Model } from "../runtime/model.ts";
import { calibrationChunks } from "./imatrix.ts";
import { fallbackType } from "./quant-recipes.ts";

export type ChannelMetric = "wanda" | "flap";

/** Activation statistics of one main layer, summed over the calibration tokens. */
export interface LayerActivationStats {
  /** Sum over tokens of cos(layer input, layer output). */
  readonly cosSum: number;
  /** Per FFN channel: sum and sum of squares of its activation (ffn_down's input). */
  readonly ffnSum: Float64Array;
  readonly ffnSumSq: Float64Array;
  /** Per attention output column (nHeads x headDimV): sum and sum of squares (attn_output's input). */
  readonly attSum: Float64Array;
  readonly attSumSq: Float64Array;
}

export interface ActivationStats {
  readonly tokens: number;
  readonly chunks: number;
  readonly chunkSize: number;
  readonly layers: readonly LayerActivationStats[];
}

export interface LayerImportance {
  readonly layer: number;
  /** ShortGPT's Block Influence: 1 - mean cos(input, output). Low: the layer changes little. */
  readonly blockInfluence: number;
  /** Per FFN channel. */
  readonly ffn: Float64Array;
  /** Per KV group. */
  readonly kvGroups: Float64Array;
}

/** Runs the calibration text and sums what the importance scores need, per main layer. */
export function collectActivationStats(model: Model, text: string, o: { chunkSize?: number; maxChunks?: number; onChunk?: (done: number, total: number) => void } = {}): ActivationStats {
  const c = model.config;
  const chunkSize = o.chunkSize ?? Math.min(512, model.contextSize);
  const chunks = calibrationChunks(model, text, chunkSize, o.maxChunks);
  const attCols = c.nHeads * c.headDimV;
  const acc = Array.from({ length: c.nLayers }, () => ({
    cosSum: 0,
    ffnSum: new Float64Array(c.ffnDim),
    ffnSumSq: new Float64Array(c.ffnDim),
    attSum: new Float64Array(attCols),
    attSumSq: new Float64Array(attCols),
  }));
  let prev: Float32Array | undefined;
  let tokens = 0;
  model.setForwardProbe({
    layerInput(layer, x, n) {
      const dim = c.dim;
      if (layer > 0 && prev) {
        const a = acc[layer - 1]!;
        for (let r = 0; r < n; r++) {
          let dot = 0;
          let na = 0;
          let nb = 0;
          for (let j = r * dim; j < (r + 1) * dim; j++) {
            dot += prev[j]! * x[j]!;
            na += prev[j]! * prev[j]!;
            nb += x[j]! * x[j]!;
          }
          a.cosSum += na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 1;
        }
      }
      if (layer === 0) tokens += n;
      prev = layer < c.nLayers ? x.slice(0, n * dim) : undefined;
    },
    matmulInput(layer, keys, x, n, cols) {
      const a = acc[layer]!;
      const [sum, sumSq] = keys[0] === "down" ? [a.ffnSum, a.ffnSumSq] : keys[0] === "wo" ? [a.attSum, a.attSumSq] : [undefined, undefined];
      if (!sum || !sumSq) return;
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < cols; j++) {
          const v = x[r * cols + j]!;
          sum[j] += v;
          sumSq[j] += v * v;
        }
      }
    },
  });
  try {
    chunks.forEach((chunk, i) => {
      model.evaluate(chunk);
      o.onChunk?.(i + 1, chunks.length);
    });
  } finally {
    model.setForwardProbe(undefined);
  }
  return { tokens, chunks: chunks.length, chunkSize, layers: acc };
}

/** Per column of a matrix: the sum of |w| and the sum of w² over its rows (any stored type). */
export async function columnNorms(file: GGUFFile, name: string): Promise<{ abs: Float64Array; sq: Float64Array }> {
  const t = file.tensor(name);
  const cols = t.shape[0]!;
  const rows = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const traits = getQuantTraits(t.type, name);
  const rb = rowByteSize(t.type, cols);
  const bytes = await file.readTensorBytes(name);
  const row = new Float32Array(cols);
  const abs = new Float64Array(cols);
  const sq = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    traits.dequantizeRow(bytes, r * rb, row, 0, cols);
    for (let j = 0; j < cols; j++) {
      abs[j] += Math.abs(row[j]!);
      sq[j] += row[j]! * row[j]!;
    }
  }
  return { abs, sq };
}

/** A channel's score from its activation statistics and its weight column. */
function score(metric: ChannelMetric, sum: number, sumSq: number, n: number, wAbs: number, wSq: number): number {
  if (metric === "wanda") return Math.sqrt(sumSq) * wAbs;
  // sample variance of the activation (n - 1 in the denominator)
  const variance = n > 1 ? (sumSq - (sum * sum) / n) / (n - 1) : 0;
  return Math.max(0, variance) * wSq;
}

/** Block Influence and channel / KV-group scores of every main layer. */
export async function layerImportances(file: GGUFFile, config: ModelConfig, stats: ActivationStats, metric: ChannelMetric): Promise<LayerImportance[]> {
  const c = config;
  const groupSize = c.nHeads / c.nKvHeads;
  const out: LayerImportance[] = [];
  for (let l = 0; l < c.nLayers + c.nMtpLayers; l++) {
    // MTP layers see no calibration activations here: their channels are ranked by weights alone
    // (as if every activation had unit size), and they are never removed.
    const s = stats.layers[l] ?? unitStats(c, stats.tokens);
    const down = await columnNorms(file, `blk.${l}.ffn_down.weight`);
    const wo = await columnNorms(file, `blk.${l}.attn_output.weight`);
    const ffn = new Float64Array(c.ffnDim);
    for (let j = 0; j < c.ffnDim; j++) ffn[j] = score(metric, s.ffnSum[j]!, s.ffnSumSq[j]!, stats.tokens, down.abs[j]!, down.sq[j]!);
    const kvGroups = new Float64Array(c.nKvHeads);
    for (let g = 0; g < c.nKvHeads; g++) {
      for (let col = g * groupSize * c.headDimV; col < (g + 1) * groupSize * c.headDimV; col++) {
        kvGroups[g] += score(metric, s.attSum[col]!, s.attSumSq[col]!, stats.tokens, wo.abs[col]!, wo.sq[col]!);
      }
    }
    out.push({ layer: l, blockInfluence: l < c.nLayers ? 1 - s.cosSum / stats.tokens : NaN, ffn, kvGroups });
  }
  return out;
}

/** Statistics of unit activations with unit fluctuation (for layers the calibration does not reach). */
function unitStats(c: ModelConfig, tokens: number): LayerActivationStats {
  const n = Math.max(2, tokens);
  // sum 0 and sum of squares n - 1: an RMS of ~1 and a sample variance of 1
  return {
    cosSum: NaN,
    ffnSum: new Float64Array(c.ffnDim),
    ffnSumSq: new Float64Array(c.ffnDim).fill(n - 1),
    attSum: new Float64Array(c.nHeads * c.headDimV),
    attSumSq: new Float64Array(c.nHeads * c.headDimV).fill(n - 1),
  };
}

export interface PruneRequest {
  /** Remove this many main layers, those of lowest Block Influence. */
  readonly removeLayers?: number;
  /** Remove exactly these main layers. */
  readonly layers?: readonly number[];
  /** Remove this fraction of the FFN channels (0 <= r < 1), rounded to `ffnAlign`. */
  readonly ffnRatio?: number;
  /** The kept FFN width is a multiple of this (default: 256 if the width is, else 32; 1 for any). */
  readonly ffnAlign?: number;
  /** Remove this many KV groups (with their query heads) from every layer. */
  readonly kvGroups?: number;
}

export interface PrunePlan {
  /** Main layers removed (ascending). */
  readonly removedLayers: readonly number[];
  /** Per layer of the input (MTP layers too): the FFN channels kept (ascending); undefined if not pruned. */
  readonly ffnKeep?: readonly (readonly number[])[];
  /** Per layer of the input: the KV groups kept (ascending). */
  readonly kvKeep?: readonly (readonly number[])[];
}

/** Whether any statistics are needed (named layers alone need none). */
export function needsCalibration(r: PruneRequest): boolean {
  return (r.removeLayers ?? 0) > 0 || (r.ffnRatio ?? 0) > 0 || (r.kvGroups ?? 0) > 0;
}

/** The indices of the `keep` largest scores, ascending (ties: the lower index is kept). */
function topIndices(scores: ArrayLike<number>, keep: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, keep).sort((a, b) => a - b);
}

/** The kept FFN width for a removal ratio, a multiple of `align`, at least one `align`. */
export function keptWidth(ffnDim: number, ratio: number, align: number): number {
  if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`--ffn-ratio must be at least 0 and below 1, got ${ratio}`);
  if (!(Number.isInteger(align) && align >= 1)) throw new RangeError(`--ffn-align must be a positive integer, got ${align}`);
  if (ratio === 0) return ffnDim;
  const target = ffnDim * (1 - ratio);
  return Math.min(ffnDim, Math.max(align, Math.round(target / align) * align));
}

export function defaultFfnAlign(ffnDim: number): number {
  return ffnDim % 256 === 0 ? 256 : 32;
}

/** Decides what to remove. `importances` is needed for everything but named layers. */
export function planPrune(config: ModelConfig, r: PruneRequest, importances?: readonly LayerImportance[]): PrunePlan {
  const c = config;
  const need = () => {
    if (!importances) throw new Error("pruning by importance needs calibration statistics (--text FILE)");
    return importances;
  };
  let removed: number[] = [];
  if (r.layers && r.layers.length > 0) {
    if (r.removeLayers) throw new RangeError("give either --remove-layers N or --layers LIST, not both");
    for (const l of r.layers) {
      if (!(Number.isInteger(l) && l >= 0 && l < c.nLayers)) throw new RangeError(`--layers: ${l} is not a main layer of this model (0..${c.nLayers - 1})`);
    }
    removed = [...new Set(r.layers)].sort((a, b) => a - b);
  } else if (r.removeLayers) {
    if (!(Number.isInteger(r.removeLayers) && r.removeLayers > 0)) throw new RangeError(`--remove-layers must be a positive integer, got ${r.removeLayers}`);
    const imp = need();
    const order = imp.filter((x) => x.layer < c.nLayers).sort((a, b) => a.blockInfluence - b.blockInfluence || a.layer - b.layer);
    removed = order.slice(0, r.removeLayers).map((x) => x.layer).sort((a, b) => a - b);
  }
  if (removed.length >= c.nLayers) throw new RangeError(`cannot remove ${removed.length} of the model's ${c.nLayers} layers: at least one must stay`);

  let ffnKeep: number[][] | undefined;
  if ((r.ffnRatio ?? 0) > 0) {
    const imp = need();
    const keep = keptWidth(c.ffnDim, r.ffnRatio!, r.ffnAlign ?? defaultFfnAlign(c.ffnDim));
    if (keep < c.ffnDim) ffnKeep = imp.map((x) => topIndices(x.ffn, keep));
  } else if (r.ffnRatio !== undefined) keptWidth(c.ffnDim, r.ffnRatio, r.ffnAlign ?? 1); // validates

  let kvKeep: number[][] | undefined;
  if ((r.kvGroups ?? 0) > 0) {
    if (!(Number.isInteger(r.kvGroups) && r.kvGroups! > 0)) throw new RangeError(`--kv-groups must be a positive integer, got ${r.kvGroups}`);
    if (r.kvGroups! >= c.nKvHeads) {
      throw new RangeError(`cannot remove ${r.kvGroups} KV group(s): the model has ${c.nKvHeads}${c.nKvHeads === 1 ? " (one group: nothing to remove)" : ""}, and at least one must stay`);
    }
    const imp = need();
    kvKeep = imp.map((x) => topIndices(x.kvGroups, c.nKvHeads - r.kvGroups!));
  }
  return { removedLayers: removed, ...(ffnKeep ? { ffnKeep } : {}), ...(kvKeep ? { kvKeep } : {}) };
}

/** Rows `keep` of a [cols x rows] tensor: whole rows are copied as bytes (any type). */
function selectRows(bytes: Uint8Array, type: number, cols: number, keep: readonly number[]): Uint8Array {
  const rb = rowByteSize(type, cols);
  const out = new Uint8Array(rb * keep.length);
  keep.forEach((r, i) => out.set(bytes.subarray(r * rb, (r + 1) * rb), i * rb));
  return out;
}

/**
 * Columns `keep` of every row. Float types are exact; quantized rows are dequantized, cut and
 * quantized again (to the same type, or llama.cpp's fallback when the new row is not whole blocks).
 */
function selectColumns(bytes: Uint8Array, type: number, cols: number, rows: number, keep: readonly number[]): { type: number; bytes: Uint8Array } {
  const from = getQuantTraits(type);
  const newType = fallbackType(type, keep.length);
  const to = getQuantTraits(newType);
  const rbIn = rowByteSize(type, cols);
  const rbOut = rowByteSize(newType, keep.length);
  const out = new Uint8Array(rbOut * rows);
  const row = new Float32Array(cols);
  const cut = new Float32Array(keep.length);
  for (let r = 0; r < rows; r++) {
    from.dequantizeRow(bytes, r * rbIn, row, 0, cols);
    for (let i = 0; i < keep.length; i++) cut[i] = row[keep[i]!]!;
    to.quantizeRow(cut, 0, out, r * rbOut, keep.length);
  }
  return { type: newType, bytes: out };
}

/** Expands kept heads (or groups) into the kept rows/columns, `width` each. */
function expand(units: readonly number[], width: number): number[] {
  return units.flatMap((u) => Array.from({ length: width }, (_, i) => u * width + i));
}

export interface PruneSummary {
  readonly inputBytes: number;
  readonly outputBytes: number;
  readonly layers: number;
  readonly ffnDim: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  /** Tensors whose columns were cut from quantized data and quantized again. */
  readonly requantized: readonly string[];
}

/** Writes the pruned model. */
export async function writePrunedModel(input: string, output: string, config: ModelConfig, plan: PrunePlan, o: { overwrite?: boolean } = {}): Promise<PruneSummary> {
  const c = config;
  const file = await openGGUFFile(input);
  try {
    const arch = c.arch.name;
    const removed = new Set(plan.removedLayers);
    const newIndex = new Map<number, number>();
    let next = 0;
    for (let l = 0; l < c.nLayers + c.nMtpLayers; l++) if (!removed.has(l)) newIndex.set(l, next++);
    const groupSize = c.nHeads / c.nKvHeads;
    const keptFfn = plan.ffnKeep?.[0]?.length ?? c.ffnDim;
    const keptGroups = plan.kvKeep?.[0]?.length ?? c.nKvHeads;

    const md = new Map<string, GGUFTypedValue>(file.metadataTypes);
    const setCount = (key: string, v: number) => md.set(`${arch}.${key}`, gguf.u32(v));
    setCount("block_count", next);
    if (plan.ffnKeep) setCount("feed_forward_length", keptFfn);
    if (plan.kvKeep) {
      setCount("attention.head_count", keptGroups * groupSize);
      setCount("attention.head_count_kv", keptGroups);
      // the head size no longer follows from embedding_length / head_count: state it
      setCount("attention.key_length", c.headDim);
      setCount("attention.value_length", c.headDimV);
    }

    const requantized: string[] = [];
    const tensors: GGUFTensorToWrite[] = [];
    for (const t of file.tensors) {
      const parsed = parseTensorName(t.name);
      const layer = parsed?.layer;
      if (layer !== undefined && removed.has(layer)) continue;
      const name = layer !== undefined ? t.name.replace(/^blk\.\d+\./, `blk.${newIndex.get(layer)}.`) : t.name;
      const key = parsed?.role.key;
      const ffn = layer !== undefined ? plan.ffnKeep?.[layer] : undefined;
      const kv = layer !== undefined ? plan.kvKeep?.[layer] : undefined;
      const cols = t.shape[0]!;
      const rows = t.shape.slice(1).reduce((a, b) => a * b, 1);
      let rowKeep: number[] | undefined;
      let colKeep: number[] | undefined;
      if (ffn && (key === "gate" || key === "up")) rowKeep = [...ffn];
      if (ffn && key === "down") colKeep = [...ffn];
      if (kv) {
        const heads = kv.flatMap((g) => Array.from({ length: groupSize }, (_, i) => g * groupSize + i));
        if (key === "wq" || key === "bq") (key === "wq" ? (rowKeep = expand(heads, c.headDim)) : (colKeep = expand(heads, c.headDim)));
        if (key === "wk" || key === "bk") (key === "wk" ? (rowKeep = expand(kv, c.headDim)) : (colKeep = expand(kv, c.headDim)));
        if (key === "wv" || key === "bv") (key === "wv" ? (rowKeep = expand(kv, c.headDimV)) : (colKeep = expand(kv, c.headDimV)));
        if (key === "wo") colKeep = expand(heads, c.headDimV);
      }
      if (!rowKeep && !colKeep) {
        tensors.push({ name, type: t.type, shape: t.shape, data: () => file.readTensorBytes(t.name) });
        continue;
      }
      if (rowKeep) {
        const keep = rowKeep;
        tensors.push({ name, type: t.type, shape: [cols, keep.length], data: async () => selectRows(await file.readTensorBytes(t.name), t.type, cols, keep) });
      } else {
        const keep = colKeep!;
        const newType = fallbackType(t.type, keep.length);
        if ((ggmlTypeLayout(t.type)?.blockSize ?? 1) > 1) requantized.push(`${name} (${ggmlTypeName(t.type)}${newType !== t.type ? ` -> ${ggmlTypeName(newType)}` : ""})`);
        const shape = t.shape.length === 1 ? [keep.length] : [keep.length, ...t.shape.slice(1)];
        tensors.push({ name, type: newType, shape, data: async () => selectColumns(await file.readTensorBytes(t.name), t.type, cols, rows, keep).bytes });
      }
    }
    await writeGGUFFile(output, { metadata: [...md], tensors }, { overwrite: o.overwrite });
    const outputBytes = tensors.reduce((a, t) => a + rowByteSize(t.type, t.shape[0]!) * t.shape.slice(1).reduce((x, y) => x * y, 1), 0);
    return {
      inputBytes: file.tensors.reduce((a, t) => a + t.byteSize, 0),
      outputBytes,
      layers: c.nLayers - removed.size,
      ffnDim: keptFfn,
      nHeads: keptGroups * groupSize,
      nKvHeads: keptGroups,
      requantized,
    };
  } finally {
    await file.close();
  }
}
