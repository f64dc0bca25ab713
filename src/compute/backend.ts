// The narrow interface between the model's forward pass and the kernels that do the arithmetic.
// backends/reference.ts (plain TypeScript, llama.cpp's exact arithmetic) implements it for
// correctness; backends/wasm (WebAssembly SIMD kernels on worker threads) for speed. This file
// imports nothing but its folder's profile type: the model above and the backends below both
// depend on it.

import type { OpProfile } from "./profile.ts";

/** How RoPE pairs the dimensions of a head: (2i, 2i+1) ("normal", llama) or (i, i + d/2) ("neox"). */
export type RopeStyle = "normal" | "neox";

/** A weight's bytes, read piece by piece (a GGUF tensor satisfies it). */
export interface WeightBytes {
  readonly byteSize: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Present when the source can read synchronously. */
  readonly readSync: ((offset: number, length: number) => Uint8Array) | undefined;
}

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

/**
 * The KV cache: a pool of `slots` sequences of `slotSize` positions each, every layer's keys and
 * values (llama.cpp's -np x -c). Slot s holds the keys/values of one sequence at positions
 * 0..n-1; which slot belongs to which sequence, and how long each is, is the caller's
 * bookkeeping (runtime/sequence.ts): the backend only stores and attends.
 */
export interface KvPoolSpec {
  readonly nLayers: number;
  /** Sequences the pool holds at once. */
  readonly slots: number;
  /** Positions one slot holds (the longest a sequence may grow). */
  readonly slotSize: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly headDimV: number;
  /** Element type. f16 is llama.cpp's default (and half the memory); f32 is exact. */
  readonly type: KvCacheType;
  /**
   * Query heads attending over these KV heads (a multiple of nKvHeads), when known: a backend may
   * lay the cache out for it (the wasm backend keeps an f16 cache's values as f32 for small groups).
   */
  readonly nHeads?: number;
}

export type KvCacheType = "f16" | "f32";

/** The pool's storage, owned by the backend. */
export interface KvPool {
  readonly spec: KvPoolSpec;
}

/** One sequence's tokens in a batch, as the attention step sees them. */
export interface AttentionSegment {
  /** Slot of the pool holding this sequence. */
  readonly slot: number;
  /** Position of the segment's first token: the slot already holds positions 0..startPos-1. */
  readonly startPos: number;
  readonly nTokens: number;
  /** Row of the segment's first token in the batch's q, k, v and out (segments are contiguous runs of rows). */
  readonly row: number;
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
  /** Where a backend that can profile its ops records them (see OpProfile); undefined: not profiling. */
  profile?: OpProfile | undefined;

  /**
   * Places a 2-D weight matrix (any supported quant type) into backend memory, reading its bytes
   * from `data` piece by piece (a backend may stream them without holding the tensor whole).
   */
  loadMatrix(info: WeightInfo, data: WeightBytes, usage?: MatrixUsage): Promise<MatrixHandle>;

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

  /**
   * One token's matmul for only some rows: `rows` is a bitset over w's rows (row r when bit
   * r & 31 of word r >>> 5 is set; words past its end are empty). For every row set, out[r] gets
   * exactly the value matmul(w, x, 1, out) gives it; a backend may compute more rows than asked
   * (the whole groups of its weight layout) and leaves every other entry of out as it was.
   * Returns how many rows it computed, or undefined, having done nothing, where it cannot or
   * where it would not pay (too many rows: the caller runs matmul). Constrained decoding's output
   * head: only the tokens a grammar allows need logits.
   */
  matmulRows?(w: MatrixHandle, x: Float32Array, rows: Uint32Array, out: Float32Array): number | undefined;

  /** Embedding lookup: dequantized rows `ids` of `w` into out[i*cols ..]. */
  getRows(w: MatrixHandle, ids: readonly number[], out: Float32Array): void;

  /** out = x / rms(x) * weight, per row of `dim` (in place allowed). */
  rmsNorm(x: Float32Array, nRows: number, dim: number, weight: Float32Array, eps: number, out: Float32Array): void;

  /** Rotates each head of x[t] (nHeads heads of p.headDim) by position positions[t], in place. */
  rope(x: Float32Array, nTokens: number, nHeads: number, positions: readonly number[], p: RopeParams): void;

  createKvPool(spec: KvPoolSpec): KvPool;

  /** Copies positions 0..n-1 of every layer from slot `src` to slot `dst` (a sequence's fork). */
  copyKv(pool: KvPool, src: number, dst: number, n: number): void;

  /**
   * The attention step of layer `layer` for a batch: for each segment, stores the keys and values
   * of its tokens (rows seg.row.. of k and v) at positions startPos.. of its slot, then runs causal
   * attention of its queries over positions 0..startPos+t of that slot. q holds nHeads x headDim
   * per row, k/v nKvHeads x headDim(V), out nHeads x headDimV. A segment's results never depend
   * on the other segments in the batch.
   */
  attention(pool: KvPool, layer: number, segments: readonly AttentionSegment[], q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams, out: Float32Array): void;

  /**
   * A layer's q/k/v projections of x (n x cols), RoPE of q and k, and attention(pool, layer, ...),
   * in one step where the backend can fuse them (the wasm backend on several threads: one
   * dispatch instead of two, and no q/k/v copies between the threads). The same results, bit for
   * bit, as matmulMulti([wq, wk, wv]) + rope + attention. Returns false, having done nothing,
   * where it cannot: the caller then runs the steps one by one.
   */
  qkvAttention?(
    pool: KvPool, layer: number, segments: readonly AttentionSegment[], x: Float32Array, nTokens: number,
    wq: MatrixHandle, wk: MatrixHandle, wv: MatrixHandle, positions: readonly number[], rope: RopeParams, p: AttentionParams, out: Float32Array,
  ): boolean;

  /**
   * out = swiglu(gate·x, up·x) (n x gate.rows) in one step where the backend can fuse it (the wasm
   * backend on several threads: each thread applies SwiGLU to its own rows); the same bits as
   * matmulMulti([gate, up]) + swiglu. Returns false, having done nothing, where it cannot.
   */
  matmulSwiglu?(gate: MatrixHandle, up: MatrixHandle, x: Float32Array, nTokens: number, out: Float32Array): boolean;

  /** out[i] = silu(gate[i]) * up[i]. */
  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void;

  /** x[t*bias.length + i] += bias[i] for each of nRows rows. */
  addBias(x: Float32Array, nRows: number, bias: Float32Array): void;

  /** x[i] += y[i]. */
  addInPlace(x: Float32Array, y: Float32Array, n: number): void;

  /**
   * Index of the largest value of x (the first on ties, NaN never, 0 if none is above -inf), where
   * the backend has a faster way than a JavaScript loop for this array (greedy sampling over a
   * large vocabulary); undefined: ask someone else.
   */
  argmax?(x: Float32Array): number | undefined;

  /**
   * The largest non-NaN value (-inf if none) of each whole block of 16 values of x, where the
   * backend has a faster way than a JavaScript loop for this array (top-k over a large
   * vocabulary); a buffer valid until the next call, or undefined.
   */
  blockMax?(x: Float32Array): Float32Array | undefined;

  /**
   * Told true when a forward pass starts and false when it ends: a backend with worker threads
   * may wake sleeping ones at the start, so that they are up by the pass's first dispatch.
   */
  pass?(on: boolean): void;

  /** Frees the backend: stops its threads (resolves once every one has exited). */
  dispose(): Promise<void>;
}
