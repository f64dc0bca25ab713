import type { AttentionParams, ComputeBackend, KvCache, KvCacheType, RopeParams } from "../compute/backend.ts";
import type { ModelConfig } from "./config.ts";
import type { LayerWeights, TransformerWeights } from "./weights.ts";

export interface ForwardResult {
  /** Logits of the last token, or of every token when asked (nTokens x vocab). */
  readonly logits: Float32Array;
  /** Hidden state of the last token after the last main layer, before the output norm (MTP input). */
  readonly lastHidden: Float32Array;
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
  last: Float32Array = new Float32Array(0);
  logits: Float32Array = new Float32Array(0);
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
    if (this.last.length === 0) this.last = b.allocate(c.dim);
  }
  /** Logits for `rows` tokens: one row for generation, more only when all logits are asked for. */
  ensureLogits(rows: number, c: ModelConfig, b: ComputeBackend): Float32Array {
    if (this.logits.length < rows * c.vocabSize) this.logits = b.allocate(rows * c.vocabSize);
    return this.logits.subarray(0, rows * c.vocabSize);
  }
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

  createKvCache(contextSize: number, type: KvCacheType = "f16"): KvCache {
    const c = this.config;
    return this.backend.createKvCache({
      nLayers: c.nLayers + c.nMtpLayers,
      contextSize,
      nKvHeads: c.nKvHeads,
      headDim: c.headDim,
      headDimV: c.headDimV,
      type,
    });
  }

  /**
   * Runs `tokens` at positions startPos.. and returns the logits of the last one (or all), in
   * micro-batches of at most backend.maxBatch tokens.
   */
  forward(tokens: readonly number[], startPos: number, kv: KvCache, opts: { allLogits?: boolean; borrowLogits?: boolean } = {}): ForwardResult {
    const c = this.config;
    const n = tokens.length;
    if (n === 0) throw new RangeError("forward needs at least one token");
    if (startPos + n > kv.spec.contextSize) {
      throw new RangeError(`context is full: ${startPos + n} positions needed, the context holds ${kv.spec.contextSize}`);
    }
    const step = Math.max(1, this.backend.maxBatch);
    // borrowLogits: the last token's logits are returned as a view of the scratch buffer, valid
    // until the next forward (saves a vocabulary-sized copy and its garbage per decoded token).
    const borrow = opts.borrowLogits === true && !opts.allLogits;
    let logits: Float32Array = borrow ? new Float32Array(0) : new Float32Array((opts.allLogits ? n : 1) * c.vocabSize);
    let lastHidden: Float32Array = new Float32Array(0);
    for (let i = 0; i < n; i += step) {
      const chunk = n <= step ? tokens : tokens.slice(i, i + step);
      const isLast = i + step >= n;
      const r = this.forwardBatch(chunk, startPos + i, kv, opts.allLogits === true, isLast);
      if (opts.allLogits) logits.set(r.logits, i * c.vocabSize);
      else if (isLast) {
        if (borrow) logits = r.logits;
        else logits.set(r.logits);
      }
      if (isLast) lastHidden = r.lastHidden;
    }
    return { logits, lastHidden };
  }

  private forwardBatch(tokens: readonly number[], startPos: number, kv: KvCache, allLogits: boolean, wantLogits: boolean): ForwardResult {
    const c = this.config;
    const b = this.backend;
    const w = this.weights;
    const n = tokens.length;
    this.scratch.ensure(n, c, b);
    const s = this.scratch;
    const positions = Array.from({ length: n }, (_, i) => startPos + i);

    b.getRows(w.tokenEmbd, tokens, s.x);
    for (let l = 0; l < c.nLayers; l++) this.layer(w.layers[l]!, l, kv, s.x, n, startPos, positions);

    const lastHidden = s.x.slice((n - 1) * c.dim, n * c.dim);
    if (!wantLogits && !allLogits) return { logits: new Float32Array(0), lastHidden };
    const outRows = allLogits ? n : 1;
    let normed: Float32Array;
    if (allLogits) {
      b.rmsNorm(s.x, n, c.dim, w.outputNorm, c.normEps, s.h);
      normed = s.h;
    } else {
      s.last.set(s.x.subarray((n - 1) * c.dim, n * c.dim));
      b.rmsNorm(s.last, 1, c.dim, w.outputNorm, c.normEps, s.last);
      normed = s.last;
    }
    const logits = s.ensureLogits(outRows, c, b);
    b.matmul(w.output, normed, outRows, logits);
    return { logits, lastHidden };
  }

  /** One decoder block, updating the residual stream x (n tokens) in place. */
  private layer(L: LayerWeights, l: number, kv: KvCache, x: Float32Array, n: number, startPos: number, positions: number[]): void {
    const c = this.config;
    const b = this.backend;
    const s = this.scratch;

    // Attention: norm, q/k/v projections, (qk norm), rope, cache, attend, output projection, residual.
    b.rmsNorm(x, n, c.dim, L.attnNorm, c.normEps, s.h);
    b.matmulMulti([L.wq, L.wk, L.wv], s.h, n, [s.q, s.k, s.v]);
    if (L.bq) b.addBias(s.q, n, L.bq);
    if (L.bk) b.addBias(s.k, n, L.bk);
    if (L.bv) b.addBias(s.v, n, L.bv);
    if (L.qNorm) b.rmsNorm(s.q, n * c.nHeads, c.headDim, L.qNorm, c.normEps, s.q);
    if (L.kNorm) b.rmsNorm(s.k, n * c.nKvHeads, c.headDim, L.kNorm, c.normEps, s.k);
    b.rope(s.q, n, c.nHeads, positions, this.rope);
    b.rope(s.k, n, c.nKvHeads, positions, this.rope);
    b.storeKv(kv, l, s.k, s.v, startPos, n);
    b.attention(kv, l, s.q, startPos, n, this.attn, s.att);
    b.matmul(L.wo, s.att, n, s.o);
    if (L.bo) b.addBias(s.o, n, L.bo);
    b.addInPlace(x, s.o, n * c.dim);

    // Feed-forward: norm, gate and up projections, SwiGLU, down projection, residual.
    b.rmsNorm(x, n, c.dim, L.ffnNorm, c.normEps, s.h);
    b.matmulMulti([L.gate, L.up], s.h, n, [s.gate, s.up]);
    b.swiglu(s.gate, s.up, n * c.ffnDim, s.act);
    b.matmul(L.down, s.act, n, s.o);
    b.addInPlace(x, s.o, n * c.dim);
  }

}
