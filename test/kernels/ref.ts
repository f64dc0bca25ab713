// Scalar references for the kernel tests: the quant module's traits table (llama.cpp semantics).
import { getQuantTraits, getWeightTraits, rowByteSize } from "../../src/quant/traits.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import type { WeightQuantTraits } from "../../src/quant/quant-traits.ts";

export const refQ4_0: WeightQuantTraits = getWeightTraits(GGMLType.Q4_0);
export const refQ8_0: WeightQuantTraits = getWeightTraits(GGMLType.Q8_0);

/** Deterministic pseudo-random numbers (mulberry32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n floats, roughly normal, with a per-32-block scale varying over a few orders of magnitude. */
export function randomFloats(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  let scale = 1;
  for (let i = 0; i < n; i++) {
    if (i % 32 === 0) scale = Math.exp((r() - 0.5) * 6);
    out[i] = (r() + r() + r() - 1.5) * scale;
  }
  return out;
}

/** Quantizes nrows x k floats to a weight type with the reference quantizer. */
export function quantizeMatrix(t: WeightQuantTraits, x: Float32Array, nrows: number, k: number): Uint8Array {
  const rowBytes = (k / t.blockSize) * t.bytesPerBlock;
  const out = new Uint8Array(nrows * rowBytes);
  for (let r = 0; r < nrows; r++) t.quantizeRow(x, r * k, out, r * rowBytes, k);
  return out;
}

/**
 * Reference outputs want[t][r] of a weight matrix (nrows x k, llama.cpp layout) times ntok f32
 * rows, each quantized as the runtime quantizes the weight type's partner, and the magnitudes
 * sum |w a| that scale the tolerance.
 */
export function expectedRows(t: WeightQuantTraits, w: Uint8Array, nrows: number, k: number, x: Float32Array, ntok: number) {
  const at = getQuantTraits(t.vecDotType);
  const quantize = at.quantizeActivationRow ?? at.quantizeRow;
  const a = new Uint8Array(rowByteSize(at.type, k));
  const rowBytes = rowByteSize(t.type, k);
  const wf = new Float32Array(k * nrows), af = new Float32Array(k);
  for (let r = 0; r < nrows; r++) t.dequantizeRow(w, r * rowBytes, wf, r * k, k);
  const want: Float64Array[] = [], mag: Float64Array[] = [];
  for (let tok = 0; tok < ntok; tok++) {
    quantize(x, tok * k, a, 0, k);
    at.dequantizeRow(a, 0, af, 0, k);
    const y = new Float64Array(nrows), m = new Float64Array(nrows);
    for (let r = 0; r < nrows; r++) {
      y[r] = t.vecDot(k, w, r * rowBytes, a, 0);
      let s = 0;
      for (let j = 0; j < k; j++) s += Math.abs(wf[r * k + j]! * af[j]!);
      m[r] = s;
    }
    want.push(y);
    mag.push(m);
  }
  return { want, mag };
}

/** Equal up to float summation order: 1e-5 of the magnitude; NaN and infinities exactly. */
export function closeTo(got: number, want: number, mag: number): boolean {
  if (Number.isNaN(want)) return Number.isNaN(got);
  if (!Number.isFinite(want)) return got === want;
  return Math.abs(got - want) <= 1e-5 * mag + 1e-30;
}
