// The legacy 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (weights) and Q8_1
// (activations). Layouts and rounding follow llama.cpp's ggml-common.h / ggml-quants.c.
//
// In every 4- and 5-bit type byte j of `qs` holds element j in its low nibble and element j + 16
// in its high nibble; the 5-bit types keep element i's fifth bit in bit i of the u32 `qh`.
// The "_0" types are symmetric (x = d * q, q centred by subtracting 8 or 16); the "_1" types
// store a minimum too (x = d * q + m).

import { GGMLType } from "./ggml-type.ts";
import { readF16, readI8, readU32, writeF16, writeU32 } from "./half.ts";
import type { QuantTraits, WeightQuantTraits } from "./quant-traits.ts";
import { f32, roundHalfAwayFromZero, truncToInt8, truncToUint8 } from "./rounding.ts";

const QK = 32;
const HALF = QK / 2;
const FLT_MAX = 3.4028234663852886e38;

// ---- block byte layouts (offsets within one block) ----
// Q4_0: d f16 @0, qs[16] @2                  (18 bytes)
// Q4_1: d f16 @0, m f16 @2, qs[16] @4        (20 bytes)
// Q5_0: d f16 @0, qh u32 @2, qs[16] @6       (22 bytes)
// Q5_1: d f16 @0, m f16 @2, qh u32 @4, qs @8 (24 bytes)
// Q8_0: d f16 @0, qs int8[32] @2             (34 bytes)
// Q8_1: d f16 @0, s f16 @2 (= d * sum of qs), qs int8[32] @4 (36 bytes)

function assertWholeBlocks(name: string, n: number, blockSize: number): void {
  if (n % blockSize !== 0) {
    throw new RangeError(`${name}: row length ${n} is not a multiple of the block size ${blockSize}`);
  }
}

/** The element of largest magnitude (the first one on ties), sign kept; 0 for an all-zero block. */
function signedAbsMax(x: Float32Array, start: number): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QK; j++) {
    const v = x[start + j];
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return max;
}

function minAndMax(x: Float32Array, start: number): [number, number] {
  let min = FLT_MAX;
  let max = -FLT_MAX;
  for (let j = 0; j < QK; j++) {
    const v = x[start + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

// ===================== Q4_0 =====================

export const Q4_0Traits: WeightQuantTraits = {
  type: GGMLType.Q4_0,
  name: "Q4_0",
  blockSize: QK,
  bytesPerBlock: 18,
  vecDotType: GGMLType.Q8_0,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    assertWholeBlocks("Q4_0", n, QK);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < n / QK; b++, p += 18, o += QK) {
      const d = readF16(src, p);
      for (let j = 0; j < HALF; j++) {
        const q = src[p + 2 + j];
        dst[o + j] = ((q & 0x0f) - 8) * d;
        dst[o + j + HALF] = ((q >> 4) - 8) * d;
      }
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    assertWholeBlocks("Q4_0", n, QK);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < n / QK; b++, s += QK, p += 18) {
      // the extreme value maps to -8 exactly, so the sign of d keeps it in range
      const max = signedAbsMax(src, s);
      const d = f32(max / -8);
      const id = d !== 0 ? f32(1 / d) : 0;
      writeF16(dst, p, d);
      for (let j = 0; j < HALF; j++) {
        // llama.cpp truncates x/d + 8.5 toward zero, i.e. rounds half up, then caps at 15
        const lo = Math.min(15, truncToInt8(f32(f32(src[s + j] * id) + 8.5))) & 0xff;
        const hi = Math.min(15, truncToInt8(f32(f32(src[s + j + HALF] * id) + 8.5))) & 0xff;
        dst[p + 2 + j] = (lo | (hi << 4)) & 0xff;
      }
    }
  },

  vecDot(n, w, wOff, a, aOff) {
    assertWholeBlocks("Q4_0", n, QK);
    let sum = 0;
    for (let b = 0, p = wOff, q = aOff; b < n / QK; b++, p += 18, q += 34) {
      let sumi = 0;
      for (let j = 0; j < HALF; j++) {
        const x = w[p + 2 + j];
        sumi += ((x & 0x0f) - 8) * readI8(a, q + 2 + j) + ((x >> 4) - 8) * readI8(a, q + 2 + j + HALF);
      }
      sum = f32(sum + f32(f32(sumi * readF16(w, p)) * readF16(a, q)));
    }
    return sum;
  },
};

// ===================== Q4_1 =====================

export const Q4_1Traits: WeightQuantTraits = {
  type: GGMLType.Q4_1,
  name: "Q4_1",
  blockSize: QK,
  bytesPerBlock: 20,
  vecDotType: GGMLType.Q8_1,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    assertWholeBlocks("Q4_1", n, QK);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < n / QK; b++, p += 20, o += QK) {
      const d = readF16(src, p);
      const m = readF16(src, p + 2);
      for (let j = 0; j < HALF; j++) {
        const q = src[p + 4 + j];
        dst[o + j] = f32((q & 0x0f) * d) + m;
        dst[o + j + HALF] = f32((q >> 4) * d) + m;
      }
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    assertWholeBlocks("Q4_1", n, QK);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < n / QK; b++, s += QK, p += 20) {
      const [min, max] = minAndMax(src, s);
      const d = f32(f32(max - min) / 15);
      const id = d !== 0 ? f32(1 / d) : 0;
      writeF16(dst, p, d);
      writeF16(dst, p + 2, min);
      for (let j = 0; j < HALF; j++) {
        const lo = Math.min(15, truncToInt8(f32(f32(f32(src[s + j] - min) * id) + 0.5))) & 0xff;
        const hi = Math.min(15, truncToInt8(f32(f32(f32(src[s + j + HALF] - min) * id) + 0.5))) & 0xff;
        dst[p + 4 + j] = (lo | (hi << 4)) & 0xff;
      }
    }
  },

  vecDot(n, w, wOff, a, aOff) {
    assertWholeBlocks("Q4_1", n, QK);
    let sum = 0;
    let summs = 0;
    for (let b = 0, p = wOff, q = aOff; b < n / QK; b++, p += 20, q += 36) {
      let sumi = 0;
      for (let j = 0; j < HALF; j++) {
        const x = w[p + 4 + j];
        sumi += (x & 0x0f) * readI8(a, q + 4 + j) + (x >> 4) * readI8(a, q + 4 + j + HALF);
      }
      // As llama.cpp's SIMD kernels do: fused multiply-add of the block's integer sum into one
      // accumulator, the min terms m * s (s = d * sum(a), precomputed) into another.
      sum = f32(sum + f32(readF16(w, p) * readF16(a, q)) * sumi);
      summs = f32(summs + f32(readF16(w, p + 2) * readF16(a, q + 2)));
    }
    return f32(sum + summs);
  },
};

// ===================== Q5_0 =====================

export const Q5_0Traits: WeightQuantTraits = {
  type: GGMLType.Q5_0,
  name: "Q5_0",
  blockSize: QK,
  bytesPerBlock: 22,
  vecDotType: GGMLType.Q8_0,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    assertWholeBlocks("Q5_0", n, QK);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < n / QK; b++, p += 22, o += QK) {
      const d = readF16(src, p);
      const qh = readU32(src, p + 2);
      for (let j = 0; j < HALF; j++) {
        const q = src[p + 6 + j];
        dst[o + j] = (((q & 0x0f) | (((qh >>> j) & 1) << 4)) - 16) * d;
        dst[o + j + HALF] = (((q >> 4) | (((qh >>> (j + HALF)) & 1) << 4)) - 16) * d;
      }
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    assertWholeBlocks("Q5_0", n, QK);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < n / QK; b++, s += QK, p += 22) {
      const max = signedAbsMax(src, s);
      const d = f32(max / -16);
      const id = d !== 0 ? f32(1 / d) : 0;
      writeF16(dst, p, d);
      let qh = 0;
      for (let j = 0; j < HALF; j++) {
        const lo = Math.min(31, truncToInt8(f32(f32(src[s + j] * id) + 16.5))) & 0xff;
        const hi = Math.min(31, truncToInt8(f32(f32(src[s + j + HALF] * id) + 16.5))) & 0xff;
        dst[p + 6 + j] = (lo & 0x0f) | ((hi & 0x0f) << 4);
        qh |= ((lo >> 4) & 1) << j;
        qh |= ((hi >> 4) & 1) << (j + HALF);
      }
      writeU32(dst, p + 2, qh >>> 0);
    }
  },

  vecDot(n, w, wOff, a, aOff) {
    assertWholeBlocks("Q5_0", n, QK);
    let sum = 0;
    for (let b = 0, p = wOff, q = aOff; b < n / QK; b++, p += 22, q += 34) {
      const qh = readU32(w, p + 2);
      let sumi = 0;
      for (let j = 0; j < HALF; j++) {
        const x = w[p + 6 + j];
        const x0 = ((x & 0x0f) | (((qh >>> j) & 1) << 4)) - 16;
        const x1 = ((x >> 4) | (((qh >>> (j + HALF)) & 1) << 4)) - 16;
        sumi += x0 * readI8(a, q + 2 + j) + x1 * readI8(a, q + 2 + j + HALF);
      }
      sum = f32(sum + f32(f32(readF16(w, p) * readF16(a, q)) * sumi));
    }
    return sum;
  },
};

// ===================== Q5_1 =====================

export const Q5_1Traits: WeightQuantTraits = {
  type: GGMLType.Q5_1,
  name: "Q5_1",
  blockSize: QK,
  bytesPerBlock: 24,
  vecDotType: GGMLType.Q8_1,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    assertWholeBlocks("Q5_1", n, QK);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < n / QK; b++, p += 24, o += QK) {
      const d = readF16(src, p);
      const m = readF16(src, p + 2);
      const qh = readU32(src, p + 4);
      for (let j = 0; j < HALF; j++) {
        const q = src[p + 8 + j];
        dst[o + j] = f32(((q & 0x0f) | (((qh >>> j) & 1) << 4)) * d) + m;
        dst[o + j + HALF] = f32(((q >> 4) | (((qh >>> (j + HALF)) & 1) << 4)) * d) + m;
      }
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    assertWholeBlocks("Q5_1", n, QK);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < n / QK; b++, s += QK, p += 24) {
      const [min, max] = minAndMax(src, s);
      const d = f32(f32(max - min) / 31);
      const id = d !== 0 ? f32(1 / d) : 0;
      writeF16(dst, p, d);
      writeF16(dst, p + 2, min);
      let qh = 0;
      for (let j = 0; j < HALF; j++) {
        // unlike Q4_1 llama.cpp does not cap at 31 here; a 32 would wrap, as in C
        const lo = truncToUint8(f32(f32(f32(src[s + j] - min) * id) + 0.5));
        const hi = truncToUint8(f32(f32(f32(src[s + j + HALF] - min) * id) + 0.5));
        dst[p + 8 + j] = (lo & 0x0f) | ((hi & 0x0f) << 4);
        qh |= ((lo >> 4) & 1) << j;
        qh |= ((hi >> 4) & 1) << (j + HALF);
      }
      writeU32(dst, p + 4, qh >>> 0);
    }
  },

  vecDot(n, w, wOff, a, aOff) {
    assertWholeBlocks("Q5_1", n, QK);
    let sum = 0;
    let summs = 0;
    for (let b = 0, p = wOff, q = aOff; b < n / QK; b++, p += 24, q += 36) {
      const qh = readU32(w, p + 4);
      let sumi = 0;
      for (let j = 0; j < HALF; j++) {
        const x = w[p + 8 + j];
        const x0 = (x & 0x0f) | (((qh >>> j) & 1) << 4);
        const x1 = (x >> 4) | (((qh >>> (j + HALF)) & 1) << 4);
        sumi += x0 * readI8(a, q + 4 + j) + x1 * readI8(a, q + 4 + j + HALF);
      }
      // As llama.cpp's SIMD kernels do: fused multiply-add of the block's integer sum into one
      // accumulator, the min terms m * s (s = d * sum(a), precomputed) into another.
      sum = f32(sum + f32(readF16(w, p) * readF16(a, q)) * sumi);
      summs = f32(summs + f32(readF16(w, p + 2) * readF16(a, q + 2)));
    }
    return f32(sum + summs);
  },
};

// ===================== Q8_0 =====================

/** Largest |x| of a block of 32 (0 for an all-zero block). */
function absMax(x: Float32Array, start: number): number {
  let amax = 0;
  for (let j = 0; j < QK; j++) {
    const v = Math.abs(x[start + j]);
    amax = amax > v ? amax : v;
  }
  return amax;
}

/** Round half to even, as _mm256_round_ps(_MM_ROUND_NEAREST) does. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(r - v) === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * Q8_0 / Q8_1 activation blocks as llama.cpp's AVX2 quantize_row_q8_0 / q8_1 write them:
 * d = amax/127, q = round-half-even(x * (127/amax)), and for Q8_1 s = d * sum(q).
 */
function quantizeQ8ActivationRow(src: Float32Array, srcOffset: number, dst: Uint8Array, dstByteOffset: number, n: number, withSum: boolean): void {
  const blockBytes = withSum ? 36 : 34;
  const qsAt = withSum ? 4 : 2;
  assertWholeBlocks(withSum ? "Q8_1" : "Q8_0", n, QK);
  for (let b = 0, s = srcOffset, p = dstByteOffset; b < n / QK; b++, s += QK, p += blockBytes) {
    const amax = absMax(src, s);
    const d = f32(amax / 127);
    const id = amax !== 0 ? f32(127 / amax) : 0;
    writeF16(dst, p, d);
    let sum = 0;
    for (let j = 0; j < QK; j++) {
      const q = roundHalfEven(f32(src[s + j] * id));
      dst[p + qsAt + j] = q & 0xff;
      sum += q;
    }
    if (withSum) writeF16(dst, p + 2, f32(d * sum));
  }
}

export const Q8_0Traits: WeightQuantTraits = {
  type: GGMLType.Q8_0,
  name: "Q8_0",
  blockSize: QK,
  bytesPerBlock: 34,
  vecDotType: GGMLType.Q8_0,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    assertWholeBlocks("Q8_0", n, QK);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < n / QK; b++, p += 34, o += QK) {
      const d = readF16(src, p);
      for (let j = 0; j < QK; j++) dst[o + j] = readI8(src, p + 2 + j) * d;
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    assertWholeBlocks("Q8_0", n, QK);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < n / QK; b++, s += QK, p += 34) {
      const d = f32(absMax(src, s) / 127);
      const id = d !== 0 ? f32(1 / d) : 0;
      writeF16(dst, p, d);
      for (let j = 0; j < QK; j++) {
        dst[p + 2 + j] = truncToInt8(roundHalfAwayFromZero(f32(src[s + j] * id))) & 0xff;
      }
    }
  },

  quantizeActivationRow(src, srcOffset, dst, dstByteOffset, n) {
    quantizeQ8ActivationRow(src, srcOffset, dst, dstByteOffset, n, false);
  },

  vecDot(n, w, wOff, a, aOff) {
    assertWholeBlocks("Q8_0", n, QK);
    let sum = 0;
    for (let b = 0, p = wOff, q = aOff; b < n / QK; b++, p += 34, q += 34) {
      let sumi = 0;
      for (let j = 0; j < QK; j++) sumi += readI8(w, p + 2 + j) * readI8(a, q + 2 + j);
      sum = f32(sum + f32(sumi * f32(readF16(w, p) * readF16(a, q))));
    }
    return sum;
  },
};

// ===================== Q8_1 (activations for Q4_1 / Q5_1) =====================

export const Q8_1Traits: QuantTraits = {
  type: GGMLType.Q8_1,
  name: "Q8_1",
  blockSize: QK,
  bytesPerBlock: 36,
  vecDotType: null,
  vecDot: null,

  // ggml has no Q8_1 to-float; this is the plain meaning of the block (s is redundant).
  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    assertWholeBlocks("Q8_1", n, QK);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < n / QK; b++, p += 36, o += QK) {
      const d = readF16(src, p);
      for (let j = 0; j < QK; j++) dst[o + j] = readI8(src, p + 4 + j) * d;
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    assertWholeBlocks("Q8_1", n, QK);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < n / QK; b++, s += QK, p += 36) {
      const d = f32(absMax(src, s) / 127);
      const id = d !== 0 ? f32(1 / d) : 0;
      writeF16(dst, p, d);
      let sum = 0;
      for (let j = 0; j < QK; j++) {
        const q = truncToInt8(roundHalfAwayFromZero(f32(src[s + j] * id)));
        dst[p + 4 + j] = q & 0xff;
        sum += q;
      }
      // s = d * sum(q): lets a Q4_1/Q5_1 dot product apply the weight block's min in one multiply
      writeF16(dst, p + 2, f32(sum * d));
    }
  },

  quantizeActivationRow(src, srcOffset, dst, dstByteOffset, n) {
    quantizeQ8ActivationRow(src, srcOffset, dst, dstByteOffset, n, true);
  },
};
