// Plain TypeScript kernels: the arithmetic of llama.cpp's CPU backend, written for clarity.
// They are the correctness reference the WebAssembly kernels are tested against.

import type {
  AttentionParams,
  AttentionSegment,
  ComputeBackend,
  KvPool,
  KvPoolSpec,
  MatrixHandle,
  RopeParams,
  WeightBytes,
  WeightInfo,
} from "../compute/backend.ts";
import { getQuantTraits, getWeightTraits } from "../quant/traits.ts";
import { rowByteSize } from "../quant/traits.ts";
import { f16ToF32, f32ToF16 } from "../quant/half.ts";

const f32 = Math.fround;

interface ReferenceMatrix extends MatrixHandle {
  readonly bytes: Uint8Array;
  readonly rowBytes: number;
}

interface ReferenceKvPool extends KvPool {
  /** Per layer and slot (index layer * slots + slot): [position][kvHead * headDim], values rounded to f16 as llama.cpp's F16 cache stores them. */
  readonly k: Float32Array[];
  readonly v: Float32Array[];
}

/** Rounds to the nearest f16 value (llama.cpp keeps the KV cache and attention inputs in f16). */
function toF16(x: number): number {
  return f16ToF32(f32ToF16(x));
}

export class ReferenceBackend implements ComputeBackend {
  readonly name = "reference";
  readonly maxBatch = 512;
  private scratch = new Uint8Array(0);

  allocate(n: number): Float32Array {
    return new Float32Array(n);
  }

  loadVector(data: Float32Array): Float32Array {
    return data;
  }

  matmulMulti(ws: readonly MatrixHandle[], x: Float32Array, nTokens: number, outs: readonly Float32Array[]): void {
    ws.forEach((w, i) => this.matmul(w, x, nTokens, outs[i]!));
  }

  async loadMatrix(info: WeightInfo, data: WeightBytes): Promise<MatrixHandle> {
    const bytes = await data.read(0, data.byteSize);
    const cols = info.shape[0] ?? 1;
    const rows = info.shape.slice(1).reduce((a, b) => a * b, 1);
    getWeightTraits(info.type, info.name); // fails early, naming the tensor, if the type is unsupported
    const m: ReferenceMatrix = { info, rows, cols, bytes, rowBytes: rowByteSize(info.type, cols) };
    return m;
  }

  matmul(handle: MatrixHandle, x: Float32Array, nTokens: number, out: Float32Array): void {
    const w = handle as ReferenceMatrix;
    this.matmulRaw(w.info, w.bytes, w.rows, w.cols, x, nTokens, out);
  }

  /** The rows set in `rows`, each as matmul computes it (the same quantized input, the same dot product). */
  matmulRows(handle: MatrixHandle, x: Float32Array, rows: Uint32Array, out: Float32Array): number {
    const w = handle as ReferenceMatrix;
    const traits = getWeightTraits(w.info.type, w.info.name);
    const actTraits = getQuantTraits(traits.vecDotType);
    const actRowBytes = rowByteSize(actTraits.type, w.cols);
    if (this.scratch.byteLength < actRowBytes) this.scratch = new Uint8Array(actRowBytes);
    (actTraits.quantizeActivationRow ?? actTraits.quantizeRow)(x, 0, this.scratch, 0, w.cols);
    let n = 0;
    const words = Math.min(rows.length, (w.rows + 31) >>> 5);
    for (let i = 0; i < words; i++) {
      for (let bits = rows[i]!; bits !== 0; bits &= bits - 1) {
        const r = i * 32 + (31 - Math.clz32(bits & -bits));
        if (r >= w.rows) break;
        out[r] = traits.vecDot(w.cols, w.bytes, r * w.rowBytes, this.scratch, 0);
        n++;
      }
    }
    return n;
  }

  /** The matmul on a matrix's original bytes (also the fallback of faster backends for types they lack). */
  matmulRaw(info: WeightInfo, bytes: Uint8Array, rows: number, cols: number, x: Float32Array, nTokens: number, out: Float32Array): void {
    const w = { info, bytes, rows, cols, rowBytes: rowByteSize(info.type, cols) };
    const traits = getWeightTraits(w.info.type, w.info.name);
    const actTraits = getQuantTraits(traits.vecDotType);
    const vecDot = traits.vecDot;
    const actRowBytes = rowByteSize(actTraits.type, w.cols);
    if (this.scratch.byteLength < actRowBytes * nTokens) this.scratch = new Uint8Array(actRowBytes * nTokens);
    const act = this.scratch;
    const quantize = actTraits.quantizeActivationRow ?? actTraits.quantizeRow;
    for (let t = 0; t < nTokens; t++) quantize(x, t * w.cols, act, t * actRowBytes, w.cols);
    for (let t = 0; t < nTokens; t++) {
      const o = t * w.rows;
      for (let r = 0; r < w.rows; r++) {
        out[o + r] = vecDot(w.cols, w.bytes, r * w.rowBytes, act, t * actRowBytes);
      }
    }
  }

  getRows(handle: MatrixHandle, ids: readonly number[], out: Float32Array): void {
    const w = handle as ReferenceMatrix;
    const traits = getQuantTraits(w.info.type, w.info.name);
    ids.forEach((id, i) => {
      if (!(id >= 0 && id < w.rows)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${w.rows - 1})`);
      traits.dequantizeRow(w.bytes, id * w.rowBytes, out, i * w.cols, w.cols);
    });
  }

  rmsNorm(x: Float32Array, nRows: number, dim: number, weight: Float32Array, eps: number, out: Float32Array): void {
    for (let r = 0; r < nRows; r++) {
      const o = r * dim;
      let sum = 0; // ggml sums squares in double
      for (let i = 0; i < dim; i++) sum += f32(x[o + i]! * x[o + i]!);
      const scale = f32(1 / f32(Math.sqrt(f32(f32(sum / dim) + f32(eps)))));
      for (let i = 0; i < dim; i++) out[o + i] = f32(f32(x[o + i]! * scale) * weight[i]!);
    }
  }

  rope(x: Float32Array, nTokens: number, nHeads: number, positions: readonly number[], p: RopeParams): void {
    const half = p.ropeDim / 2;
    // Angles as ggml computes them: theta = pos * base^(-2i/ropeDim), built by repeated multiplication in f32.
    const thetaScale = f32(Math.pow(p.base, -2 / p.ropeDim));
    const cos = new Float32Array(half);
    const sin = new Float32Array(half);
    for (let t = 0; t < nTokens; t++) {
      let theta = f32(positions[t]!);
      for (let i = 0; i < half; i++) {
        const ff = p.freqFactors ? p.freqFactors[i]! : 1;
        const angle = f32(p.freqScale * f32(theta / ff));
        cos[i] = f32(Math.cos(angle));
        sin[i] = f32(Math.sin(angle));
        theta = f32(theta * thetaScale);
      }
      for (let h = 0; h < nHeads; h++) {
        const base = (t * nHeads + h) * p.headDim;
        for (let i = 0; i < half; i++) {
          // normal: rotate (x[2i], x[2i+1]); neox: rotate (x[i], x[i + ropeDim/2]).
          const a = p.style === "normal" ? base + 2 * i : base + i;
          const b = p.style === "normal" ? a + 1 : a + half;
          const x0 = x[a]!;
          const x1 = x[b]!;
          x[a] = f32(f32(x0 * cos[i]!) - f32(x1 * sin[i]!));
          x[b] = f32(f32(x0 * sin[i]!) + f32(x1 * cos[i]!));
        }
      }
    }
  }

  createKvPool(spec: KvPoolSpec): KvPool {
    const k: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (let i = 0; i < spec.nLayers * spec.slots; i++) {
      k.push(new Float32Array(spec.slotSize * spec.nKvHeads * spec.headDim));
      v.push(new Float32Array(spec.slotSize * spec.nKvHeads * spec.headDimV));
    }
    const pool: ReferenceKvPool = { spec, k, v };
    return pool;
  }

  copyKv(pool: KvPool, src: number, dst: number, n: number): void {
    const c = pool as ReferenceKvPool;
    const { slots, nKvHeads, headDim, headDimV } = c.spec;
    for (let l = 0; l < c.spec.nLayers; l++) {
      c.k[l * slots + dst]!.set(c.k[l * slots + src]!.subarray(0, n * nKvHeads * headDim));
      c.v[l * slots + dst]!.set(c.v[l * slots + src]!.subarray(0, n * nKvHeads * headDimV));
    }
  }

  attention(pool: KvPool, layer: number, segments: readonly AttentionSegment[], q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams, out: Float32Array): void {
    const c = pool as ReferenceKvPool;
    const kw = c.spec.nKvHeads * c.spec.headDim;
    const vw = c.spec.nKvHeads * c.spec.headDimV;
    for (const s of segments) {
      if (s.startPos + s.nTokens > c.spec.slotSize) {
        throw new RangeError(`context is full: ${s.startPos + s.nTokens} positions needed, a sequence holds ${c.spec.slotSize}`);
      }
      const kl = c.k[layer * c.spec.slots + s.slot]!;
      const vl = c.v[layer * c.spec.slots + s.slot]!;
      const round = c.spec.type === "f16" ? toF16 : f32;
      for (let i = 0; i < s.nTokens * kw; i++) kl[s.startPos * kw + i] = round(k[s.row * kw + i]!);
      for (let i = 0; i < s.nTokens * vw; i++) vl[s.startPos * vw + i] = round(v[s.row * vw + i]!);
      this.attend(kl, vl, c.spec.type, q.subarray(s.row * p.nHeads * p.headDim), s.startPos, s.nTokens, p, out.subarray(s.row * p.nHeads * p.headDimV));
    }
  }

  private attend(kl: Float32Array, vl: Float32Array, type: string, q: Float32Array, startPos: number, nTokens: number, p: AttentionParams, out: Float32Array): void {
    const group = p.nHeads / p.nKvHeads;
    const kw = p.nKvHeads * p.headDim;
    const vw = p.nKvHeads * p.headDimV;
    const nKv = startPos + nTokens;
    const scores = new Float32Array(nKv);
    const qh = new Float32Array(p.headDim);
    // With an f16 cache llama.cpp converts q and the softmax weights to f16 for its f16 dot products.
    const round = type === "f16" ? toF16 : f32;
    for (let t = 0; t < nTokens; t++) {
      const visible = startPos + t + 1; // causal mask
      for (let h = 0; h < p.nHeads; h++) {
        const kvh = Math.floor(h / group);
        const qo = (t * p.nHeads + h) * p.headDim;
        // llama.cpp multiplies the f16 K cache by q converted to f16, accumulating in f32.
        for (let d = 0; d < p.headDim; d++) qh[d] = round(q[qo + d]!);
        let max = -Infinity;
        for (let j = 0; j < visible; j++) {
          const ko = j * kw + kvh * p.headDim;
          let s = 0;
          for (let d = 0; d < p.headDim; d++) s += qh[d]! * kl[ko + d]!;
          const scaled = f32(f32(s) * p.scale);
          scores[j] = scaled;
          if (scaled > max) max = scaled;
        }
        let sum = 0;
        for (let j = 0; j < visible; j++) {
          const e = f32(Math.exp(scores[j]! - max));
          scores[j] = e;
          sum += e;
        }
        const inv = f32(1 / sum);
        // The probabilities meet the f16 V cache as f16 values, as in llama.cpp's KQV product.
        for (let j = 0; j < visible; j++) scores[j] = round(f32(scores[j]! * inv));
        const oo = (t * p.nHeads + h) * p.headDimV;
        for (let d = 0; d < p.headDimV; d++) {
          let acc = 0;
          for (let j = 0; j < visible; j++) acc += scores[j]! * vl[j * vw + kvh * p.headDimV + d]!;
          out[oo + d] = f32(acc);
        }
      }
    }
  }

  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
    for (let i = 0; i < n; i++) {
      const g = gate[i]!;
      const silu = f32(g / f32(1 + f32(Math.exp(-g))));
      out[i] = f32(silu * up[i]!);
    }
  }

  addBias(x: Float32Array, nRows: number, bias: Float32Array): void {
    const n = bias.length;
    for (let r = 0; r < nRows; r++) for (let i = 0; i < n; i++) x[r * n + i] = f32(x[r * n + i]! + bias[i]!);
  }

  addInPlace(x: Float32Array, y: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) x[i] = f32(x[i]! + y[i]!);
  }

  async dispose(): Promise<void> {}
}
