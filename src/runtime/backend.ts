// The narrow interface between the model's forward pass and the kernels that do the arithmetic.
// The plain TypeScript kernels (kernels/reference.ts) implement it for correctness; the
// WebAssembly SIMD kernels with worker threads implement the same contract for speed.

import type { RopeStyle } from "../model/architectures.ts";
import type { TensorData } from "../format/gguf-reader.ts";

export interface WeightInfo {
  readonly name: string;
  /** GGML type id. */
  readonly type: number;
  /** ggml order: shape[0] is the row length (input features), shape[1] the number of rows. */
  readonly shape: readonly number[];
}

/** A weight matrix placed in a backend's memory (possibly repacked). */
export interface MatrixHandle {
  readonly info: WeightInfo;
  /** Output features. */
  readonly rows: number;
  /** Input features. */
  readonly cols: number;
}

export interface KvCacheSpec {
  readonly nLayers: number;
  /** Positions the cache can hold. */
  readonly contextSize: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly headDimV: number;
  /** Element type of the cache. f16 is llama.cpp's default (and half the memory); f32 is exact. */
  readonly type: KvCacheType;
}

export type KvCacheType = "f16" | "f32";

/** Keys and values of every layer for positions 0..length-1; the backend owns its storage. */
export interface KvCache {
  readonly spec: KvCacheSpec;
}

export interface RopeParams {
  readonly style: RopeStyle;
  readonly headDim: number;
  /** Leading dimensions of each head that are rotated. */
  readonly ropeDim: number;
  readonly base: number;
  readonly freqScale: number;
  /** Per-pair divisors of the frequency (Llama 3 `rope_freqs.weight`), or undefined. */
  readonly freqFactors?: Float32Array;
}

export interface AttentionParams {
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly headDimV: number;
  readonly scale: number;
}

/** What a matrix is used for: matmul weights, embedding rows (getRows), or both (tied embeddings). */
export type MatrixUsage = "matmul" | "rows" | "both";

export interface ComputeBackend {
  readonly name: string;
  /** Most tokens one forward call may carry (the transformer splits longer batches). */
  readonly maxBatch: number;

  /**
   * Places a 2-D weight matrix (any supported quant type) into backend memory, reading its bytes
   * from `data` piece by piece (a backend may stream them without holding the tensor whole).
   */
  loadMatrix(info: WeightInfo, data: TensorData, usage?: MatrixUsage): Promise<MatrixHandle>;

  /** A 1-D weight (norm, bias) in backend memory. */
  loadVector(data: Float32Array): Float32Array;

  /** An activation buffer of n floats the backend's ops can work on. */
  allocate(n: number): Float32Array;

  /** Several matmuls sharing one input (q/k/v, gate/up): the input is quantized once. */
  matmulMulti(ws: readonly MatrixHandle[], x: Float32Array, nTokens: number, outs: readonly Float32Array[]): void;

  /**
   * out[t*rows + r] = dot(W row r, x[t*cols ..]) for t < nTokens, with llama.cpp's semantics:
   * each activation row is quantized once to the weight type's partner type and the dot product
   * runs in that integer/float arithmetic.
   */
  matmul(w: MatrixHandle, x: Float32Array, nTokens: number, out: Float32Array): void;

  /** Embedding lookup: dequantized rows `ids` of `w` into out[i*cols ..]. */
  getRows(w: MatrixHandle, ids: readonly number[], out: Float32Array): void;

  /** out = x / rms(x) * weight, per row of `dim` (in place allowed). */
  rmsNorm(x: Float32Array, nRows: number, dim: number, weight: Float32Array, eps: number, out: Float32Array): void;

  /** Rotates each head of x[t] (nHeads heads of p.headDim) by position positions[t], in place. */
  rope(x: Float32Array, nTokens: number, nHeads: number, positions: readonly number[], p: RopeParams): void;

  createKvCache(spec: KvCacheSpec): KvCache;

  /** Stores keys/values of nTokens tokens at positions startPos.. of layer `layer`. */
  storeKv(cache: KvCache, layer: number, k: Float32Array, v: Float32Array, startPos: number, nTokens: number): void;

  /**
   * Causal attention of nTokens queries at positions startPos.. over the cache of `layer`
   * (positions 0..startPos+t for query t). out holds nTokens x nHeads x headDimV.
   */
  attention(cache: KvCache, layer: number, q: Float32Array, startPos: number, nTokens: number, p: AttentionParams, out: Float32Array): void;

  /** out[i] = silu(gate[i]) * up[i]. */
  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void;

  /** x[t*bias.length + i] += bias[i] for each of nRows rows. */
  addBias(x: Float32Array, nRows: number, bias: Float32Array): void;

  /** x[i] += y[i]. */
  addInPlace(x: Float32Array, y: Float32Array, n: number): void;

  dispose(): void;
}
