import type { AttentionParams, AttentionSegment, ComputeBackend, KvCacheType, KvPool, MatrixHandle, RopeParams } from "../compute/backend.ts";
import type { ModelConfig } from "./config.ts";
import type { LayerTensorKey } from "./tensors.ts";
import type { LayerWeights, MtpLayerWeights, TransformerWeights } from "./weights.ts";

/**
 * Sees the activations of a forward pass, for tools that need statistics of them (importance
 * matrices, pruning scores). The arrays are scratch views, valid only during the call; `n` rows.
 * Costs one property check per layer when unset.
 */
export interface ForwardProbe {
  /** The residual stream entering main layer `layer` (n x dim); layer = nLayers: after the last one. */
  layerInput?(layer: number, x: Float32Array, n: number): void;
  /** The input of the matrix multiplies by the weights `keys` of main layer `layer` (n x cols). */
  matmulInput?(layer: number, keys: readonly LayerTensorKey[], x: Float32Array, n: number, cols: number): void;
}

/** Which rows of a segment an output is wanted for. */
export type RowSelection = "none" | "last" | "all";

/**
 * One sequence's tokens in a forward pass (llama.cpp's llama_batch entries of one seq_id): the
 * tokens go at positions startPos.. of KV pool slot `slot`.
 */
export interface ForwardSegment {
  readonly slot: number;
  readonly startPos: number;
  readonly tokens: readonly number[];
  readonly logits: RowSelection;
  /** Hidden states after the last main layer, before the output norm (MiMo's MTP input). Default "none". */
  readonly hidden?: RowSelection;
}

export interface SegmentOutput {
  /** One row of vocabSize per selected token (empty for "none"). */
  readonly logits: Float32Array;
  /** One row of dim per selected token (empty unless asked). */
  readonly hidden: Float32Array;
}

function rowsOf(sel: RowSelection | undefined, n: number): number {
  return sel === "all" ? n : sel === "last" ? 1 : 0;
}

/** Scratch buffers sized for a batch of up to `capacity` tokens, reused across calls. */
class Scratch {
  capacity = 0;
  x: Float32Array = new Float32Array(0);
  h: Float32Array = new Float32Array(0);
  q: Float32Array = new Float32Array(0);
  k: Float32Array = new Float32Array(0);
  v: Float32Array = new Float32Array(0);
  att: Float32Array = new Float32Array(0);
  o: Float32Array = new Float32Array(0);
  gate: Float32Array = new Float32Array(0);
  up: Float32Array = new Float32Array(0);
  act: Float32Array = new Float32Array(0);
  logits: Float32Array = new Float32Array(0);
  /** MTP input rows: [enorm(embedding) | hnorm(hidden)], 2 * dim each. */
  cat: Float32Array = new Float32Array(0);
  /** The fused matmuls' output lists (rebuilt with the buffers: no array per layer and token). */
  qkvOut: Float32Array[] = [];
  gateUpOut: Float32Array[] = [];
  ensure(n: number, c: ModelConfig, b: ComputeBackend): void {
    if (n <= this.capacity) return;
    // Grow geometrically (backends may never free: wasm memory is a bump arena).
    n = Math.min(Math.max(n, this.capacity * 2), Math.max(n, b.maxBatch));
    this.capacity = n;
    this.x = b.allocate(n * c.dim);
    this.h = b.allocate(n * c.dim);
    this.q = b.allocate(n * c.nHeads * c.headDim);
    this.k = b.allocate(n * c.nKvHeads * c.headDim);
    this.v = b.allocate(n * c.nKvHeads * c.headDimV);
    this.att = b.allocate(n * c.nHeads * c.headDimV);
    this.o = b.allocate(n * c.dim);
    this.gate = b.allocate(n * c.ffnDim);
    this.up = b.allocate(n * c.ffnDim);
    this.act = b.allocate(n * c.ffnDim);
    this.qkvOut = [this.q, this.k, this.v];
    this.gateUpOut = [this.gate, this.up];
  }
  /** Logits for `rows` tokens (only the rows some segment asked for). */
  ensureLogits(rows: number, c: ModelConfig, b: ComputeBackend): Float32Array {
    if (this.logits.length < rows * c.vocabSize) this.logits = b.allocate(rows * c.vocabSize);
    if (this.logitsView.length !== rows * c.vocabSize || this.logitsView.buffer !== this.logits.buffer || this.logitsView.byteOffset !== this.logits.byteOffset) {
      this.logitsView = this.logits.subarray(0, rows * c.vocabSize);
    }
    return this.logitsView;
  }
  /** The last ensureLogits result (one view per row count, not one per call). */
  private logitsView: Float32Array = new Float32Array(0);
  ensureCat(n: number, c: ModelConfig, b: ComputeBackend): Float32Array {
    if (this.cat.length < n * 2 * c.dim) this.cat = b.allocate(Math.max(n, this.capacity) * 2 * c.dim);
    return this.cat.subarray(0, n * 2 * c.dim);
  }
}

/**
 * One run of a multi-token-prediction layer over positions startPos.. of a sequence: row i fuses
 * the target's hidden state at position startPos + i with the embedding of the token that follows
 * it, `nextTokens[i]`, and predicts the token after that.
 */
export interface MtpSegment {
  readonly slot: number;
  readonly startPos: number;
  /** The token at position startPos + i + 1, for each row i. */
  readonly nextTokens: readonly number[];
  /** One row of dim per token: the main model's hidden states (Transformer.forward's `hidden`) or an MTP output. */
  readonly hidden: Float32Array;
  readonly logits: RowSelection;
}

/**
 * The decoder-only transformer shared by llama, qwen2, qwen3 and mimo. `forward` runs a batch of
 * tokens (the whole prompt at once for prefill, one token for decode) in the order the math happens.
 */
export class Transformer {
  readonly config: ModelConfig;
  readonly weights: TransformerWeights;
  readonly backend: ComputeBackend;
  private readonly rope: RopeParams;
  private readonly attn: AttentionParams;
  private readonly scratch = new Scratch();
  /** Reused per forward (a decode step allocates no arrays): the parts of a one-micro-batch call, its borrowed outputs. */
  private readonly oneBatch: Part[] = [];
  private readonly borrowed: { logits: Float32Array; hidden: Float32Array }[] = [];
  private readonly batchTokens: number[] = [];
  private readonly batchPositions: number[] = [];
  private readonly batchAttn: { slot: number; startPos: number; nTokens: number; row: number }[] = [];
  private readonly batchHidden: Float32Array[] = [];
  private readonly batchResult: { logits: Float32Array; hidden: Float32Array[] } = { logits: EMPTY, hidden: this.batchHidden };
  /** Per layer (main, then MTP): the matrices of its fused matmuls. */
  private readonly fused: { qkv: MatrixHandle[]; gateUp: MatrixHandle[] }[] = [];
  /** Set by tools that collect activation statistics (see ForwardProbe); undefined otherwise. */
  probe: ForwardProbe | undefined = undefined;

  constructor(config: ModelConfig, weights: TransformerWeights, backend: ComputeBackend) {
    this.config = config;
    this.weights = weights;
    this.backend = backend;
    this.rope = {
      style: config.arch.ropeStyle,
      headDim: config.headDim,
      ropeDim: config.ropeDim,
      base: config.ropeBase,
      freqScale: config.ropeFreqScale,
      freqFactors: weights.ropeFreqs,
    };
    this.attn = {
      nHeads: config.nHeads,
      nKvHeads: config.nKvHeads,
      headDim: config.headDim,
      headDimV: config.headDimV,
      scale: 1 / Math.sqrt(config.headDim),
    };
  }

  /** The KV pool: `slots` sequences of `slotSize` positions, every main and MTP layer. */
  createKvPool(slots: number, slotSize: number, type: KvCacheType = "f16"): KvPool {
    const c = this.config;
    return this.backend.createKvPool({
      nLayers: c.nLayers + c.nMtpLayers,
      slots,
      slotSize,
      nKvHeads: c.nKvHeads,
      headDim: c.headDim,
      headDimV: c.headDimV,
      type,
      nHeads: c.nHeads,
    });
  }

  /**
   * One forward pass over a batch of segments (one per sequence): every matmul runs once over
   * all their tokens (weights are read once per micro-batch for every sequence), while RoPE
   * positions, KV stores and causal attention are per segment. A segment's outputs are the same
   * bits whatever it is batched with. Batches longer than backend.maxBatch tokens run in
   * micro-batches. With `borrow`, outputs may be views of scratch buffers, valid until the next
   * forward (saves a vocabulary-sized copy per decoded token).
   */
  forward(segments: readonly ForwardSegment[], pool: KvPool, opts: { borrow?: boolean } = {}): SegmentOutput[] {
    const c = this.config;
    let total = 0;
    for (const seg of segments) {
      const n = seg.tokens.length;
      if (n === 0) throw new RangeError("a forward segment needs at least one token");
      if (seg.startPos + n > pool.spec.slotSize) {
        throw new RangeError(`context is full: ${seg.startPos + n} positions needed, a sequence holds ${pool.spec.slotSize}`);
      }
      if (!(Number.isInteger(seg.slot) && seg.slot >= 0 && seg.slot < pool.spec.slots)) throw new RangeError(`KV slot ${seg.slot} is outside the pool (0..${pool.spec.slots - 1})`);
      total += n;
    }
    const step = Math.max(1, this.backend.maxBatch);
    if (total <= step) {
      // One micro-batch (every decode step): reused part and output objects, no array per call.
      const parts = this.oneBatch;
      parts.length = segments.length;
      for (let i = 0; i < segments.length; i++) {
        const seg = segments[i]!;
        const p = (parts[i] ??= { seg, index: i, from: 0, to: 0, logitRows: 0, hiddenRows: 0 });
        p.seg = seg;
        p.index = i;
        p.from = 0;
        p.to = seg.tokens.length;
        p.logitRows = rowsOf(seg.logits, seg.tokens.length);
        p.hiddenRows = rowsOf(seg.hidden, seg.tokens.length);
      }
      const r = this.microBatch(parts, pool);
      // The logits rows come out in segment order, each segment's a contiguous run.
      const outs: { logits: Float32Array; hidden: Float32Array }[] = opts.borrow ? this.borrowed : [];
      outs.length = segments.length;
      let row = 0;
      for (let i = 0; i < segments.length; i++) {
        const lr = parts[i]!.logitRows;
        const view = lr === 0 ? EMPTY : lr * c.vocabSize === r.logits.length ? r.logits : r.logits.subarray(row * c.vocabSize, (row + lr) * c.vocabSize);
        row += lr;
        const logits = opts.borrow ? view : view.slice();
        const o = outs[i];
        if (o && opts.borrow) {
          o.logits = logits;
          o.hidden = r.hidden[i]!;
        } else outs[i] = { logits, hidden: r.hidden[i]! };
      }
      return outs;
    }
    const logitRows = segments.map((seg) => rowsOf(seg.logits, seg.tokens.length));
    const hiddenRows = segments.map((seg) => rowsOf(seg.hidden, seg.tokens.length));
    // Several micro-batches: segments are cut at token boundaries; outputs copied as they come.
    const outs = segments.map((_, i) => ({
      logits: new Float32Array(logitRows[i]! * c.vocabSize),
      hidden: new Float32Array(hiddenRows[i]! * c.dim),
    }));
    let parts: Part[] = [];
    let budget = step;
    const flush = (): void => {
      if (parts.length === 0) return;
      const r = this.microBatch(parts, pool);
      let row = 0;
      parts.forEach((p, j) => {
        const i = p.index;
        const lr = p.logitRows;
        // Row offset of this part's first selected row within the segment's output.
        const firstSel = p.seg.logits === "all" ? p.from : 0;
        if (lr > 0) outs[i]!.logits.set(r.logits.subarray(row * c.vocabSize, (row + lr) * c.vocabSize), firstSel * c.vocabSize);
        row += lr;
        const h = r.hidden[j]!;
        if (h.length > 0) outs[i]!.hidden.set(h, (p.seg.hidden === "all" ? p.from : 0) * c.dim);
      });
      parts = [];
      budget = step;
    };
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i]!;
      const n = seg.tokens.length;
      for (let from = 0; from < n; ) {
        if (budget === 0) flush();
        const to = Math.min(n, from + budget);
        const isEnd = to === n;
        parts.push({
          seg,
          index: i,
          from,
          to,
          logitRows: seg.logits === "all" ? to - from : seg.logits === "last" && isEnd ? 1 : 0,
          hiddenRows: seg.hidden === "all" ? to - from : seg.hidden === "last" && isEnd ? 1 : 0,
        });
        budget -= to - from;
        from = to;
      }
    }
    flush();
    return outs;
  }

  /**
   * MiMo's multi-token prediction (layer `index` of config.nMtpLayers), as Xiaomi's mimo_mtp.py
   * wires it: x = eh_proj · [enorm(e) ; hnorm(h)] with e the next token's embedding (zero at
   * position 0) and h the hidden state; one decoder block with its own KV cache layer (after the
   * main layers) at the same positions; then shared_head_norm and the shared output projection.
   * The half order of eh_proj's columns is the table's convention (see tensors.ts): embedding half
   * first. Returns the selected logits rows (valid until the next forward) and every row's output
   * after shared_head_norm, which a further MTP step takes as its hidden input.
   */
  mtpForward(index: number, seg: MtpSegment, pool: KvPool): { logits: Float32Array; hidden: Float32Array } {
    const c = this.config;
    const b = this.backend;
    const L: MtpLayerWeights | undefined = this.weights.mtpLayers[index];
    if (!L) throw new RangeError(`MTP layer ${index} does not exist: this model has ${c.nMtpLayers}`);
    const n = seg.nextTokens.length;
    if (n === 0) throw new RangeError("an MTP segment needs at least one token");
    if (seg.hidden.length !== n * c.dim) throw new RangeError(`MTP segment: ${n} tokens need ${n * c.dim} hidden values, got ${seg.hidden.length}`);
    if (seg.startPos + n > pool.spec.slotSize) throw new RangeError(`context is full: ${seg.startPos + n} positions needed, a sequence holds ${pool.spec.slotSize}`);
    if (n > Math.max(1, b.maxBatch)) throw new RangeError(`MTP segment of ${n} tokens is longer than the backend's batch (${b.maxBatch})`);
    this.scratch.ensure(n, c, b);
    const s = this.scratch;
    const cat = s.ensureCat(n, c, b);
    const positions = Array.from({ length: n }, (_, i) => seg.startPos + i);

    // [enorm(e) ; hnorm(h)] per row: embedding half first.
    b.getRows(this.weights.tokenEmbd, seg.nextTokens, s.x);
    if (seg.startPos === 0) s.x.fill(0, 0, c.dim);
    b.rmsNorm(s.x, n, c.dim, L.tokenNorm, c.normEps, s.h);
    s.o.set(seg.hidden);
    b.rmsNorm(s.o, n, c.dim, L.hiddenNorm, c.normEps, s.o);
    for (let i = 0; i < n; i++) {
      cat.set(s.h.subarray(i * c.dim, (i + 1) * c.dim), i * 2 * c.dim);
      cat.set(s.o.subarray(i * c.dim, (i + 1) * c.dim), i * 2 * c.dim + c.dim);
    }
    b.matmul(L.inputProj, cat, n, s.x);

    const attn: AttentionSegment[] = [{ slot: seg.slot, startPos: seg.startPos, nTokens: n, row: 0 }];
    this.layer(L, c.nLayers + index, pool, attn, s.x, n, positions);

    b.rmsNorm(s.x, n, c.dim, L.finalNorm, c.normEps, s.x);
    const hidden = s.x.slice(0, n * c.dim);
    const rows = rowsOf(seg.logits, n);
    if (rows === 0) return { logits: EMPTY, hidden };
    s.h.set(s.x.subarray((n - rows) * c.dim, n * c.dim));
    const logits = s.ensureLogits(rows, c, b);
    b.matmul(this.weights.output, s.h, rows, logits);
    return { logits, hidden };
  }

  /**
   * Logits of `rows` hidden states as `forward` returns them (after the last layer, before the
   * output norm): the output norm and head, exactly as the forward pass applies them (row by row:
   * the same bits whatever the number of rows). Lets speculative verification compute rows only
   * as far as the first rejected draft token. A scratch view, valid until the next forward or head.
   */
  head(hidden: Float32Array, rows: number): Float32Array {
    const c = this.config;
    const b = this.backend;
    if (!(Number.isInteger(rows) && rows >= 1 && rows <= Math.max(1, b.maxBatch))) throw new RangeError(`head: ${rows} rows (1..${Math.max(1, b.maxBatch)})`);
    if (hidden.length !== rows * c.dim) throw new RangeError(`head: ${rows} rows need ${rows * c.dim} hidden values, got ${hidden.length}`);
    this.scratch.ensure(rows, c, b);
    const s = this.scratch;
    s.h.set(hidden);
    b.rmsNorm(s.h, rows, c.dim, this.weights.outputNorm, c.normEps, s.h);
    const logits = s.ensureLogits(rows, c, b);
    b.matmul(this.weights.output, s.h, rows, logits);
    return logits;
  }

  /**
   * One hidden state's logits for the tokens set in `tokens` (a bitset over the vocabulary, as a
   * grammar's mask): the output norm and the head's rows for those tokens only where the backend
   * can (matmulRows), each value bit for bit what `head` gives it. Other tokens read -Infinity,
   * or a real logit where the backend computed their row along (a whole row group); a backend
   * that declines computes them all. A buffer of its own (not the forward's logits, which other
   * segments of the same pass may still be reading), valid until the next call. `rowsComputed`
   * then tells how many rows of the head ran.
   */
  headRows(hidden: Float32Array, tokens: Uint32Array): Float32Array {
    const c = this.config;
    const b = this.backend;
    if (hidden.length !== c.dim) throw new RangeError(`headRows: one row needs ${c.dim} hidden values, got ${hidden.length}`);
    this.scratch.ensure(1, c, b);
    const s = this.scratch;
    s.h.set(hidden);
    b.rmsNorm(s.h, 1, c.dim, this.weights.outputNorm, c.normEps, s.h);
    if (this.sparseLogits.length !== c.vocabSize) this.sparseLogits = b.allocate(c.vocabSize);
    const logits = this.sparseLogits;
    logits.fill(-Infinity);
    const n = b.matmulRows?.(this.weights.output, s.h, tokens, logits);
    if (n === undefined) b.matmul(this.weights.output, s.h, 1, logits);
    this.rowsComputed = n ?? c.vocabSize;
    return logits;
  }
  private sparseLogits: Float32Array = EMPTY;
  /** Rows of the output head the last headRows call computed. */
  rowsComputed = 0;

  /** Runs one micro-batch of segment parts (at most maxBatch tokens); logits rows in part order. */
  private microBatch(parts: readonly Part[], pool: KvPool): { logits: Float32Array; hidden: Float32Array[] } {
    const b = this.backend;
    b.pass?.(true);
    try {
      return this.microBatchInPass(parts, pool);
    } finally {
      b.pass?.(false);
    }
  }

  private microBatchInPass(parts: readonly Part[], pool: KvPool): { logits: Float32Array; hidden: Float32Array[] } {
    const c = this.config;
    const b = this.backend;
    const w = this.weights;
    let n = 0;
    for (const p of parts) n += p.to - p.from;
    this.scratch.ensure(n, c, b);
    const s = this.scratch;
    const tokens = this.batchTokens;
    const positions = this.batchPositions;
    tokens.length = n;
    positions.length = n;
    const attn = this.batchAttn;
    attn.length = parts.length;
    let row = 0;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      const start = p.seg.startPos + p.from;
      for (let t = p.from; t < p.to; t++) {
        tokens[row + t - p.from] = p.seg.tokens[t]!;
        positions[row + t - p.from] = p.seg.startPos + t;
      }
      const a = (attn[i] ??= { slot: 0, startPos: 0, nTokens: 0, row: 0 });
      a.slot = p.seg.slot;
      a.startPos = start;
      a.nTokens = p.to - p.from;
      a.row = row;
      row += p.to - p.from;
    }

    b.getRows(w.tokenEmbd, tokens, s.x);
    for (let l = 0; l < c.nLayers; l++) this.layer(w.layers[l]!, l, pool, attn, s.x, n, positions);
    this.probe?.layerInput?.(c.nLayers, s.x, n);

    // Hidden states and the rows that need logits, gathered in part order.
    const hidden = this.batchHidden;
    hidden.length = parts.length;
    const result = this.batchResult;
    let outRows = 0;
    row = 0;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      const len = p.to - p.from;
      hidden[i] = p.hiddenRows === 0 ? EMPTY : s.x.slice((row + len - p.hiddenRows) * c.dim, (row + len) * c.dim);
      if (p.logitRows > 0) {
        const src = (row + len - p.logitRows) * c.dim;
        if (n > 1) s.h.set(s.x.subarray(src, src + p.logitRows * c.dim), outRows * c.dim); // one token: normed from x below
        outRows += p.logitRows;
      }
      row += len;
    }
    result.logits = EMPTY;
    if (outRows === 0) return result;
    b.rmsNorm(n === 1 ? s.x : s.h, outRows, c.dim, w.outputNorm, c.normEps, s.h);
    result.logits = s.ensureLogits(outRows, c, b);
    b.matmul(w.output, s.h, outRows, result.logits);
    return result;
  }

  /** One decoder block, updating the residual stream x (n tokens) in place. */
  private layer(L: LayerWeights, l: number, pool: KvPool, segs: readonly AttentionSegment[], x: Float32Array, n: number, positions: number[]): void {
    const c = this.config;
    const b = this.backend;
    const s = this.scratch;
    const probe = l < c.nLayers ? this.probe : undefined; // main layers only (not the MTP layers)
    probe?.layerInput?.(l, x, n);

    // Attention: norm, q/k/v projections, (qk norm), rope, store k/v and attend per sequence, output projection, residual.
    b.rmsNorm(x, n, c.dim, L.attnNorm, c.normEps, s.h);
    probe?.matmulInput?.(l, QKV, s.h, n, c.dim);
    // Without biases or q/k norms in between, a backend may fuse projections, RoPE and attention.
    const plain = !(L.bq || L.bk || L.bv || L.qNorm || L.kNorm);
    const fused = (this.fused[l] ??= { qkv: [L.wq, L.wk, L.wv], gateUp: [L.gate, L.up] });
    if (!(plain && b.qkvAttention?.(pool, l, segs, s.h, n, L.wq, L.wk, L.wv, positions, this.rope, this.attn, s.att))) {
      b.matmulMulti(fused.qkv, s.h, n, s.qkvOut);
      if (L.bq) b.addBias(s.q, n, L.bq);
      if (L.bk) b.addBias(s.k, n, L.bk);
      if (L.bv) b.addBias(s.v, n, L.bv);
      if (L.qNorm) b.rmsNorm(s.q, n * c.nHeads, c.headDim, L.qNorm, c.normEps, s.q);
      if (L.kNorm) b.rmsNorm(s.k, n * c.nKvHeads, c.headDim, L.kNorm, c.normEps, s.k);
      b.rope(s.q, n, c.nHeads, positions, this.rope);
      b.rope(s.k, n, c.nKvHeads, positions, this.rope);
      b.attention(pool, l, segs, s.q, s.k, s.v, this.attn, s.att);
    }
    probe?.matmulInput?.(l, WO, s.att, n, c.nHeads * c.headDimV);
    b.matmul(L.wo, s.att, n, s.o);
    if (L.bo) b.addBias(s.o, n, L.bo);
    b.addInPlace(x, s.o, n * c.dim);

    // Feed-forward: norm, gate and up projections, SwiGLU, down projection, residual.
    b.rmsNorm(x, n, c.dim, L.ffnNorm, c.normEps, s.h);
    probe?.matmulInput?.(l, GATE_UP, s.h, n, c.dim);
    if (!b.matmulSwiglu?.(L.gate, L.up, s.h, n, s.act)) {
      b.matmulMulti(fused.gateUp, s.h, n, s.gateUpOut);
      b.swiglu(s.gate, s.up, n * c.ffnDim, s.act);
    }
    probe?.matmulInput?.(l, DOWN, s.act, n, c.ffnDim);
    b.matmul(L.down, s.act, n, s.o);
    b.addInPlace(x, s.o, n * c.dim);
  }
}

/** A run of one segment's tokens [from, to) inside a micro-batch. */
interface Part {
  seg: ForwardSegment;
  /** Index of the segment in the forward call. */
  index: number;
  from: number;
  to: number;
  logitRows: number;
  hiddenRows: number;
}

const EMPTY = new Float32Array(0);
const QKV: readonly LayerTensorKey[] = ["wq", "wk", "wv"];
const WO: readonly LayerTensorKey[] = ["wo"];
const GATE_UP: readonly LayerTensorKey[] = ["gate", "up"];
const DOWN: readonly LayerTensorKey[] = ["down"];
