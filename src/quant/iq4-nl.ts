// IQ4_NL: 32-element blocks of 4-bit indices into a fixed non-linear table, one f16 scale.
// llama.cpp falls back to it when a K-quant is asked for rows that aren't multiples of 256,
// so small models quantized to Q2_K/Q3_K contain it. Layout: d f16 @0, qs[16] @2 (element j in
// the low nibble of byte j, element j+16 in the high nibble), value = d * table[nibble].

import { GGMLType } from "./ggml-type.ts";
import { readF16, readI8, writeF16 } from "./half.ts";
import type { WeightQuantTraits } from "./quant-traits.ts";
import { GROUP_MAX_EPS } from "./k-quant-search.ts";
import { f32 } from "./rounding.ts";

const QK = 32;
/** llama.cpp's kvalues_iq4nl. */
const IQ4_NL_VALUES = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113] as const;

/** The scale search of quantize_row_iq4_nl_impl: llama.cpp's ntry for files (ntry = -1 is the _ref variant). */
const NTRY = 7;

/**
 * ggml's best_index_int8 on the 16 table values: the index of the table value nearest to x, ties
 * going to the larger value. Written as llama.cpp now writes it (compare 2x with the exact sum of
 * two neighbours). The older form (binary search, then compare x - lo with hi - x in float32)
 * picks the same index for every float32 x but NaN (checked over all 2^32 bit patterns: near a
 * midpoint both differences are exact); for NaN it gives 15 where this gives 0.
 */
function bestIndex(x: number): number {
  const x2 = f32(x + x);
  let idx = 0;
  for (let step = 8; step > 0; step >>= 1) {
    const j = idx + step;
    if (x2 >= IQ4_NL_VALUES[j - 1]! + IQ4_NL_VALUES[j]!) idx = j;
  }
  return idx;
}

const L = new Uint8Array(QK);

/**
 * One block, as quantize_row_iq4_nl_impl computes it for super_block_size = block_size = 32:
 * weights x² (or the importance-derived `weights` where given), a first fit with the extreme element at +127, then a search
 * over 2 * ntry + 1 scales mapping the extreme element to -127 + itry, keeping the weighted
 * least-squares scale with the best score; d (f16) is that float32 scale, and the indices are
 * recomputed from it. Every float32 intermediate is rounded as in the C code.
 */
export function iq4nlQuantizeBlock(x: Float32Array, s: number, dst: Uint8Array, p: number, weights?: Float32Array): void {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QK; j++) {
    const ax = Math.abs(x[s + j]!);
    if (ax > amax) {
      amax = ax;
      max = x[s + j]!;
    }
  }
  let scale = 0;
  if (amax >= GROUP_MAX_EPS) {
    const v0 = IQ4_NL_VALUES[0];
    let d = f32(-max / v0); // ntry > 0
    let id = f32(1 / d);
    let sumqx = 0;
    let sumq2 = 0;
    for (let j = 0; j < QK; j++) {
      const xj = x[s + j]!;
      const q = IQ4_NL_VALUES[bestIndex(f32(id * xj))]!;
      const wq = f32((weights ? weights[j]! : f32(xj * xj)) * q);
      sumqx = f32(sumqx + f32(wq * xj));
      sumq2 = f32(sumq2 + f32(wq * q));
    }
    // (upstream now guards sumq2 > 0; with amax >= 1e-15 the extreme element's weight keeps it positive)
    d = sumq2 > 0 ? f32(sumqx / sumq2) : 0;
    let best = f32(d * sumqx);
    for (let itry = -NTRY; itry <= NTRY; itry++) {
      id = f32((itry + v0) / max);
      sumqx = 0;
      sumq2 = 0;
      for (let j = 0; j < QK; j++) {
        const xj = x[s + j]!;
        const q = IQ4_NL_VALUES[bestIndex(f32(id * xj))]!;
        const wq = f32((weights ? weights[j]! : f32(xj * xj)) * q);
        sumqx = f32(sumqx + f32(wq * xj));
        sumq2 = f32(sumq2 + f32(wq * q));
      }
      if (sumq2 > 0 && f32(sumqx * sumqx) > f32(best * sumq2)) {
        d = f32(sumqx / sumq2);
        best = f32(d * sumqx);
      }
    }
    scale = d;
  }
  writeF16(dst, p, scale);
  // the final indices come from the float32 scale, not its f16 rounding; a zero block gets 1s (index 8)
  const id = scale !== 0 ? f32(1 / scale) : 0;
  for (let j = 0; j < QK; j++) L[j] = bestIndex(f32(id * x[s + j]!));
  for (let j = 0; j < QK / 2; j++) dst[p + 2 + j] = L[j]! | (L[j + 16]! << 4);
}

export const IQ4_NLTraits: WeightQuantTraits = {
  type: GGMLType.IQ4_NL,
  name: "IQ4_NL",
  blockSize: QK,
  bytesPerBlock: 18,
  vecDotType: GGMLType.Q8_0,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    if (n % QK !== 0) throw new RangeError(`IQ4_NL: row length ${n} is not a multiple of the block size ${QK}`);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < n / QK; b++, p += 18, o += QK) {
      const d = readF16(src, p);
      for (let j = 0; j < QK / 2; j++) {
        const byte = src[p + 2 + j]!;
        dst[o + j] = f32(d * IQ4_NL_VALUES[byte & 0x0f]!);
        dst[o + j + 16] = f32(d * IQ4_NL_VALUES[byte >> 4]!);
      }
    }
  },

  // quantize_iq4_nl without an importance matrix (what ggml_quantize_chunk, and so llama-quantize,
  // runs): quantize_row_iq4_nl_impl(32, 32, ..., quant_weights = NULL, ntry = 7) on every block.
  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    if (n % QK !== 0) throw new RangeError(`IQ4_NL: row length ${n} is not a multiple of the block size ${QK}`);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < n / QK; b++, s += QK, p += 18) {
      iq4nlQuantizeBlock(src, s, dst, p);
    }
  },

  // ggml_vec_dot_iq4_nl_q8_0: integer sums of table values times int8 activations, per block.
  vecDot(n, w, wOff, a, aOff) {
    if (n % QK !== 0) throw new RangeError(`IQ4_NL: row length ${n} is not a multiple of the block size ${QK}`);
    let sum = 0;
    for (let b = 0, p = wOff, q = aOff; b < n / QK; b++, p += 18, q += 34) {
      let sumi = 0;
      for (let j = 0; j < QK / 2; j++) {
        const byte = w[p + 2 + j]!;
        sumi += IQ4_NL_VALUES[byte & 0x0f]! * readI8(a, q + 2 + j) + IQ4_NL_VALUES[byte >> 4]! * readI8(a, q + 2 + j + 16);
      }
      sum = f32(sum + f32(f32(readF16(w, p) * readF16(a, q)) * sumi));
    }
    return sum;
  },
};
