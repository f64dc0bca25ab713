// Scalar references for the kernel tests: the quant module's traits table (llama.cpp semantics).
import { getWeightTraits } from "../../src/quant/traits.ts";
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
