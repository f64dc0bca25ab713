// The K-quants: 256-element super-blocks made of 16- or 32-element sub-blocks, each with its
// own small integer scale (and min), which a float16 super-block scale turns into floats.
// Weight types Q2_K, Q3_K, Q4_K, Q5_K, Q6_K pair with the activation type Q8_K, whose blocks
// carry the sums of each 16 quants so the dot product can apply the mins in one step.
// Layouts and rounding follow llama.cpp's ggml-common.h / ggml-quants.c.

import { GGMLType, QK_K } from "./ggml-type.ts";
import { readF16, readF32, readI8, readI16, writeF16, writeF32, writeI16 } from "./half.ts";
import { GROUP_MAX_EPS, makeQ3Quants, makeQkx2Quants, makeQxQuants } from "./k-quant-search.ts";
import type { QuantTraits, WeightQuantTraits } from "./quant-traits.ts";
import { f32, nearestInt } from "./rounding.ts";

function blockCount(name: string, n: number): number {
  if (n % QK_K !== 0) {
    throw new RangeError(`${name}: row length ${n} is not a multiple of the block size ${QK_K}`);
  }
  return n / QK_K;
}

// Scratch shared by the quantizers (JavaScript runs one call at a time per thread).
const levels = new Uint8Array(QK_K);
const levelsSigned = new Int8Array(QK_K);
const levelsAux = new Uint8Array(32);
const subWeights = new Float32Array(32);
const subScales = new Float32Array(16);
const subMins = new Float32Array(16);
const q3Scales = new Int8Array(16);
/** [scale, min] out of getScaleMinK4. */
export const packed = new Uint8Array(2);

const ONE_TENTH = f32(0.1);

/** Packs 4 planes of 2-bit levels: byte l of each 32-byte group holds elements l, l+32, l+64, l+96. */
export function pack2BitLevels(L: ArrayLike<number>, dst: Uint8Array, qsOff: number): void {
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l++) {
      dst[qsOff + j / 4 + l] = L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6);
    }
  }
}

/** Q4_K levels 0..15 into qs: group g holds sub-block 2g in low nibbles, 2g+1 in high nibbles. */
export function packQ4KLevels(L: ArrayLike<number>, dst: Uint8Array, p: number): void {
  for (let g = 0; g < 4; g++) {
    for (let l = 0; l < 32; l++) dst[p + 16 + 32 * g + l] = L[64 * g + l]! | (L[64 * g + l + 32]! << 4);
  }
}

/** Q5_K levels 0..31: low 4 bits as Q4_K's qs (at +48), fifth bit of sub-block j in bit j of qh[l]. */
export function packQ5KLevels(L: ArrayLike<number>, dst: Uint8Array, p: number): void {
  dst.fill(0, p + 16, p + 48);
  for (let g = 0; g < 4; g++) {
    for (let l = 0; l < 32; l++) {
      let l1 = L[64 * g + l];
      let l2 = L[64 * g + l + 32];
      if (l1 > 15) {
        l1 -= 16;
        dst[p + 16 + l] |= 1 << (2 * g);
      }
      if (l2 > 15) {
        l2 -= 16;
        dst[p + 16 + l] |= 2 << (2 * g);
      }
      dst[p + 48 + 32 * g + l] = l1 | (l2 << 4);
    }
  }
}

/** Q6_K levels 0..63 (stored +32) into ql/qh. */
export function packQ6KLevels(levels: ArrayLike<number>, dst: Uint8Array, p: number): void {
  for (let h = 0; h < 2; h++) {
    const L = 128 * h;
    for (let l = 0; l < 32; l++) {
      const l1 = levels[L + l];
      const l2 = levels[L + l + 32];
      const l3 = levels[L + l + 64];
      const l4 = levels[L + l + 96];
      dst[p + 64 * h + l] = (l1 & 0x0f) | ((l3 & 0x0f) << 4);
      dst[p + 64 * h + l + 32] = (l2 & 0x0f) | ((l4 & 0x0f) << 4);
      dst[p + 128 + 32 * h + l] = (l1 >> 4) | ((l2 >> 4) << 2) | ((l3 >> 4) << 4) | ((l4 >> 4) << 6);
    }
  }
}

/** Q3_K levels 0..7: the high bit into hmask (element e -> bit e / 32 of hmask[e % 32]), the low two bits as planes. Modifies L. */
export function packQ3KLevels(levelsSigned: Int8Array | Uint8Array, dst: Uint8Array, p: number): void {
  dst.fill(0, p, p + 32);
  for (let e = 0; e < QK_K; e++) {
    if (levelsSigned[e] > 3) {
      dst[p + (e & 31)] |= 1 << (e >> 5);
      levelsSigned[e] -= 4;
    }
  }
  pack2BitLevels(levelsSigned, dst, p + 32);
}

// ============================================================================================
// Q4_K / Q5_K scale packing: 8 sub-blocks, each with a 6-bit scale and a 6-bit min, in 12 bytes.
// bytes 0-3: scales 0-3 (low 6 bits) + high 2 bits of scales 4-7
// bytes 4-7: mins 0-3 (low 6 bits) + high 2 bits of mins 4-7
// bytes 8-11: low 4 bits of scale j+4 | low 4 bits of min j+4 << 4
// ============================================================================================

/** ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j into packed[0], packed[1]. */
export function getScaleMinK4(j: number, q: Uint8Array, off: number): void {
  if (j < 4) {
    packed[0] = q[off + j] & 63;
    packed[1] = q[off + j + 4] & 63;
  } else {
    packed[0] = (q[off + j + 4] & 0x0f) | ((q[off + j - 4] >> 6) << 4);
    packed[1] = (q[off + j + 4] >> 4) | ((q[off + j] >> 6) << 4);
  }
}

export function putScaleMinK4(j: number, ls: number, lm: number, q: Uint8Array, off: number): void {
  if (j < 4) {
    q[off + j] = ls;
    q[off + j + 4] = lm;
  } else {
    q[off + j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
    q[off + j - 4] |= (ls >> 4) << 6;
    q[off + j] |= (lm >> 4) << 6;
  }
}

/**
 * The shared first half of the Q4_K / Q5_K reference quantizers: fit each 32-element sub-block
 * with make_qkx2_quants, quantize the 8 scales and 8 mins to 6 bits against the largest of each,
 * then recompute every level against the scale and min as stored. Leaves levels 0..nmax in
 * `levels` and writes d, dmin and the 12 scale bytes at `p`.
 */
function quantizeQ45KScalesAndLevels(
  x: Float32Array,
  s: number,
  dst: Uint8Array,
  p: number,
  nmax: number,
  rmin: number,
  nstep: number,
): void {
  let maxScale = 0; // as the min is subtracted, scales are always positive
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    // weight each element by the sub-block's RMS plus its own magnitude
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = f32(sumX2 + f32(x[s + 32 * j + l] * x[s + 32 * j + l]));
    const avX = f32(Math.sqrt(f32(sumX2 / 32)));
    for (let l = 0; l < 32; l++) subWeights[l] = f32(avX + Math.abs(x[s + 32 * j + l]));
    const scale = makeQkx2Quants(
      32, nmax, x, s + 32 * j, subWeights, levels, 32 * j, levelsAux, rmin, ONE_TENTH, nstep, false, subMins, j,
    );
    subScales[j] = scale;
    if (scale > maxScale) maxScale = scale;
    if (subMins[j] > maxMin) maxMin = subMins[j];
  }
  const invScale = maxScale > 0 ? f32(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f32(63 / maxMin) : 0;
  const scalesOff = p + 4;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(f32(invScale * subScales[j])) & 0xff);
    const lm = Math.min(63, nearestInt(f32(invMin * subMins[j])) & 0xff);
    putScaleMinK4(j, ls, lm, dst, scalesOff);
  }
  writeF16(dst, p, f32(maxScale / 63));
  writeF16(dst, p + 2, f32(maxMin / 63));

  const d = readF16(dst, p);
  const dmin = readF16(dst, p + 2);
  for (let j = 0; j < 8; j++) {
    getScaleMinK4(j, dst, scalesOff);
    const dj = f32(d * packed[0]);
    if (dj === 0) continue; // keep the levels make_qkx2_quants chose
    const dm = f32(dmin * packed[1]);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(f32(f32(x[s + 32 * j + ii] + dm) / dj));
      levels[32 * j + ii] = Math.max(0, Math.min(nmax, l));
    }
  }
}

// ===================== Q4_K =====================
// d f16 @0, dmin f16 @2, scales[12] @4, qs[128] @16 (144 bytes).
// qs: 4 groups of 32 bytes; group g holds sub-block 2g in low nibbles, 2g+1 in high nibbles.
// x = d * scale_j * q - dmin * min_j

export const Q4_KTraits: WeightQuantTraits = {
  type: GGMLType.Q4_K,
  name: "Q4_K",
  blockSize: QK_K,
  bytesPerBlock: 144,
  vecDotType: GGMLType.Q8_K,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    const nb = blockCount("Q4_K", n);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < nb; b++, p += 144) {
      const d = readF16(src, p);
      const dmin = readF16(src, p + 2);
      for (let g = 0; g < 4; g++) {
        const qs = p + 16 + 32 * g;
        getScaleMinK4(2 * g, src, p + 4);
        const d1 = f32(d * packed[0]);
        const m1 = f32(dmin * packed[1]);
        getScaleMinK4(2 * g + 1, src, p + 4);
        const d2 = f32(d * packed[0]);
        const m2 = f32(dmin * packed[1]);
        for (let l = 0; l < 32; l++) dst[o++] = f32(d1 * (src[qs + l] & 0x0f)) - m1;
        for (let l = 0; l < 32; l++) dst[o++] = f32(d2 * (src[qs + l] >> 4)) - m2;
      }
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    const nb = blockCount("Q4_K", n);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < nb; b++, s += QK_K, p += 144) {
      quantizeQ45KScalesAndLevels(src, s, dst, p, 15, -1, 20);
      packQ4KLevels(levels, dst, p);
    }
  },

  vecDot(n, w, wOff, a, aOff) {
    const nb = blockCount("Q4_K", n);
    let sum = 0;
    for (let b = 0, p = wOff, q = aOff; b < nb; b++, p += 144, q += 292) {
      let sumi = 0; // sum over sub-blocks of scale_j * (q4 . q8)
      let summs = 0; // sum over sub-blocks of min_j * sum(q8)
      for (let j = 0; j < 8; j++) {
        getScaleMinK4(j, w, p + 4);
        const qs = p + 16 + 32 * (j >> 1);
        const shift = (j & 1) * 4;
        const q8 = q + 4 + 32 * j;
        let isum = 0;
        for (let l = 0; l < 32; l++) isum += ((w[qs + l] >> shift) & 0x0f) * readI8(a, q8 + l);
        sumi += packed[0] * isum;
        summs += packed[1] * (readI16(a, q + 260 + 4 * j) + readI16(a, q + 262 + 4 * j));
      }
      const ad = readF32(a, q);
      const d = f32(readF16(w, p) * ad);
      const dmin = f32(readF16(w, p + 2) * ad);
      sum = f32(sum + f32(f32(d * sumi) - f32(dmin * summs)));
    }
    return sum;
  },
};

// ===================== Q5_K =====================
// d f16 @0, dmin f16 @2, scales[12] @4, qh[32] @16, qs[128] @48 (176 bytes).
// As Q4_K, plus the fifth bit of element l of sub-block j in bit j of qh[l].

export const Q5_KTraits: WeightQuantTraits = {
  type: GGMLType.Q5_K,
  name: "Q5_K",
  blockSize: QK_K,
  bytesPerBlock: 176,
  vecDotType: GGMLType.Q8_K,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    const nb = blockCount("Q5_K", n);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < nb; b++, p += 176) {
      const d = readF16(src, p);
      const dmin = readF16(src, p + 2);
      for (let g = 0; g < 4; g++) {
        const qs = p + 48 + 32 * g;
        const lowBit = 1 << (2 * g);
        const highBit = lowBit << 1;
        getScaleMinK4(2 * g, src, p + 4);
        const d1 = f32(d * packed[0]);
        const m1 = f32(dmin * packed[1]);
        getScaleMinK4(2 * g + 1, src, p + 4);
        const d2 = f32(d * packed[0]);
        const m2 = f32(dmin * packed[1]);
        for (let l = 0; l < 32; l++) {
          dst[o++] = f32(d1 * ((src[qs + l] & 0x0f) + (src[p + 16 + l] & lowBit ? 16 : 0))) - m1;
        }
        for (let l = 0; l < 32; l++) {
          dst[o++] = f32(d2 * ((src[qs + l] >> 4) + (src[p + 16 + l] & highBit ? 16 : 0))) - m2;
        }
      }
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    const nb = blockCount("Q5_K", n);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < nb; b++, s += QK_K, p += 176) {
      quantizeQ45KScalesAndLevels(src, s, dst, p, 31, -0.5, 15);
      packQ5KLevels(levels, dst, p);
    }
  },

  vecDot(n, w, wOff, a, aOff) {
    const nb = blockCount("Q5_K", n);
    let sum = 0;
    for (let b = 0, p = wOff, q = aOff; b < nb; b++, p += 176, q += 292) {
      let sumi = 0;
      let summs = 0;
      for (let j = 0; j < 8; j++) {
        getScaleMinK4(j, w, p + 4);
        const qs = p + 48 + 32 * (j >> 1);
        const shift = (j & 1) * 4;
        const q8 = q + 4 + 32 * j;
        let isum = 0;
        for (let l = 0; l < 32; l++) {
          const q5 = ((w[qs + l] >> shift) & 0x0f) | (((w[p + 16 + l] >> j) & 1) << 4);
          isum += q5 * readI8(a, q8 + l);
        }
        sumi += packed[0] * isum;
        summs += packed[1] * (readI16(a, q + 260 + 4 * j) + readI16(a, q + 262 + 4 * j));
      }
      const ad = readF32(a, q);
      const d = f32(readF16(w, p) * ad);
      const dmin = f32(readF16(w, p + 2) * ad);
      sum = f32(sum + f32(f32(d * sumi) - f32(dmin * summs)));
    }
    return sum;
  },
};

// ===================== Q6_K =====================
// ql[128] @0, qh[64] @128, scales int8[16] @192, d f16 @208 (210 bytes).
// Two halves of 128 elements; in half h, element l + 32k (l < 32, k < 4) has its low 4 bits in
// ql[64h + l + 32(k&1)] (low nibble for k < 2, high for k >= 2) and its top 2 bits in bits 2k..2k+1
// of qh[32h + l]. Levels are stored +32. 16-element sub-block i uses scales[i]: x = d * scale * q.

/**
 * One Q6_K super-block: each 16-element sub-block fitted by make_qx_quants (weights x², or the
 * importance weights qw[qwOff ..] as quantize_row_q6_K_impl passes them), the 16 scales to int8
 * against the largest, then every level recomputed against the stored scales.
 */
export function quantizeQ6KBlock(src: Float32Array, s: number, dst: Uint8Array, p: number, qw?: Float32Array, qwOff = 0): void {
  let maxScale = 0;
  let maxAbsScale = 0;
  for (let ib = 0; ib < 16; ib++) {
    const scale = makeQxQuants(16, 32, src, s + 16 * ib, levels, 16 * ib, qw, qwOff + 16 * ib);
    subScales[ib] = scale;
    if (Math.abs(scale) > maxAbsScale) {
      maxAbsScale = Math.abs(scale);
      maxScale = scale;
    }
  }
  if (maxAbsScale < GROUP_MAX_EPS) {
    dst.fill(0, p, p + 210);
    return;
  }
  // the sub-block scale of largest magnitude becomes -128, the others proportionally
  const iscale = f32(-128 / maxScale);
  writeF16(dst, p + 208, f32(1 / iscale));
  for (let ib = 0; ib < 16; ib++) {
    dst[p + 192 + ib] = Math.min(127, nearestInt(f32(iscale * subScales[ib]))) & 0xff;
  }
  const d = readF16(dst, p + 208);
  for (let j = 0; j < 16; j++) {
    const dj = f32(d * readI8(dst, p + 192 + j));
    if (dj === 0) continue; // keep the levels make_qx_quants chose
    for (let ii = 0; ii < 16; ii++) {
      const l = nearestInt(f32(src[s + 16 * j + ii] / dj));
      levels[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
    }
  }
  packQ6KLevels(levels, dst, p);
}

export const Q6_KTraits: WeightQuantTraits = {
  type: GGMLType.Q6_K,
  name: "Q6_K",
  blockSize: QK_K,
  bytesPerBlock: 210,
  vecDotType: GGMLType.Q8_K,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    const nb = blockCount("Q6_K", n);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < nb; b++, p += 210, o += QK_K) {
      const d = readF16(src, p + 208);
      for (let h = 0; h < 2; h++) {
        const ql = p + 64 * h;
        const qh = p + 128 + 32 * h;
        const sc = p + 192 + 8 * h;
        const y = o + 128 * h;
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const hi = src[qh + l];
          const q1 = ((src[ql + l] & 0x0f) | ((hi & 3) << 4)) - 32;
          const q2 = ((src[ql + l + 32] & 0x0f) | (((hi >> 2) & 3) << 4)) - 32;
          const q3 = ((src[ql + l] >> 4) | (((hi >> 4) & 3) << 4)) - 32;
          const q4 = ((src[ql + l + 32] >> 4) | (((hi >> 6) & 3) << 4)) - 32;
          dst[y + l] = f32(d * readI8(src, sc + is)) * q1;
          dst[y + l + 32] = f32(d * readI8(src, sc + is + 2)) * q2;
          dst[y + l + 64] = f32(d * readI8(src, sc + is + 4)) * q3;
          dst[y + l + 96] = f32(d * readI8(src, sc + is + 6)) * q4;
        }
      }
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    const nb = blockCount("Q6_K", n);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < nb; b++, s += QK_K, p += 210) quantizeQ6KBlock(src, s, dst, p);
  },

  vecDot(n, w, wOff, a, aOff) {
    const nb = blockCount("Q6_K", n);
    let sum = 0;
    for (let b = 0, p = wOff, q = aOff; b < nb; b++, p += 210, q += 292) {
      let sumi = 0;
      for (let h = 0; h < 2; h++) {
        const ql = p + 64 * h;
        const qh = p + 128 + 32 * h;
        const q8 = q + 4 + 128 * h;
        // four 32-element quarters k, each two 16-element sub-blocks
        for (let k = 0; k < 4; k++) {
          const lowShift = k < 2 ? 0 : 4;
          const lowOff = ql + 32 * (k & 1);
          for (let half = 0; half < 2; half++) {
            let isum = 0;
            for (let l = 16 * half; l < 16 * half + 16; l++) {
              const q6 = (((w[lowOff + l] >> lowShift) & 0x0f) | (((w[qh + l] >> (2 * k)) & 3) << 4)) - 32;
              isum += q6 * readI8(a, q8 + 32 * k + l);
            }
            sumi += readI8(w, p + 192 + 8 * h + 2 * k + half) * isum;
          }
        }
      }
      sum = f32(sum + f32(f32(readF16(w, p + 208) * readF32(a, q)) * sumi));
    }
    return sum;
  },
};

// ===================== Q3_K =====================
// hmask[32] @0, qs[64] @32, scales[12] @96, d f16 @108 (110 bytes).
// Element e = 128h + 32k + l (h < 2, k < 4, l < 32): low 2 bits at bits 2k of qs[32h + l], high
// bit in bit 4h + k of hmask[l] (set means +0, clear means -4), so q = low - (high ? 0 : 4) in
// -4..3. 16-element sub-block i has a 6-bit scale (stored +32): low 4 bits in scales[i] (i < 8) or
// the high nibble of scales[i - 8], top 2 bits at bits 2(i/4) of scales[8 + i%4].

/** Unpacks the 16 signed 6-bit sub-block scales of the Q3_K block at p into q3Scales. */
function unpackQ3KScales(src: Uint8Array, p: number): void {
  const sc = p + 96;
  for (let i = 0; i < 16; i++) {
    const low = i < 8 ? src[sc + i] & 0x0f : src[sc + i - 8] >> 4;
    const high = (src[sc + 8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    q3Scales[i] = (low | (high << 4)) - 32;
  }
}

export const Q3_KTraits: WeightQuantTraits = {
  type: GGMLType.Q3_K,
  name: "Q3_K",
  blockSize: QK_K,
  bytesPerBlock: 110,
  vecDotType: GGMLType.Q8_K,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    const nb = blockCount("Q3_K", n);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < nb; b++, p += 110) {
      const d = readF16(src, p + 108);
      unpackQ3KScales(src, p);
      for (let h = 0; h < 2; h++) {
        for (let k = 0; k < 4; k++) {
          const mask = 1 << (4 * h + k);
          for (let half = 0; half < 2; half++) {
            const dl = f32(d * q3Scales[8 * h + 2 * k + half]);
            for (let l = 16 * half; l < 16 * half + 16; l++) {
              const q = ((src[p + 32 + 32 * h + l] >> (2 * k)) & 3) - (src[p + l] & mask ? 0 : 4);
              dst[o++] = dl * q;
            }
          }
        }
      }
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    const nb = blockCount("Q3_K", n);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < nb; b++, s += QK_K, p += 110) {
      let maxScale = 0;
      let amax = 0;
      for (let j = 0; j < 16; j++) {
        const scale = makeQ3Quants(16, 4, src, s + 16 * j, levelsSigned, 16 * j);
        subScales[j] = scale;
        if (Math.abs(scale) > amax) {
          amax = Math.abs(scale);
          maxScale = scale;
        }
      }
      const sc = p + 96;
      dst.fill(0, sc, sc + 12);
      if (maxScale !== 0) {
        const iscale = f32(-32 / maxScale);
        for (let j = 0; j < 16; j++) {
          const l = Math.max(-32, Math.min(31, (nearestInt(f32(iscale * subScales[j])) << 24) >> 24)) + 32;
          if (j < 8) dst[sc + j] = l & 0x0f;
          else dst[sc + j - 8] |= (l & 0x0f) << 4;
          dst[sc + 8 + (j & 3)] |= (l >> 4) << (2 * (j >> 2));
        }
        writeF16(dst, p + 108, f32(1 / iscale));
      } else {
        writeF16(dst, p + 108, 0);
      }
      const d = readF16(dst, p + 108);
      unpackQ3KScales(dst, p);
      for (let j = 0; j < 16; j++) {
        const dj = f32(d * q3Scales[j]);
        if (dj === 0) continue; // keep the levels make_q3_quants chose
        for (let ii = 0; ii < 16; ii++) {
          const l = nearestInt(f32(src[s + 16 * j + ii] / dj));
          levelsSigned[16 * j + ii] = Math.max(-4, Math.min(3, l)) + 4;
        }
      }
      packQ3KLevels(levelsSigned, dst, p);
    }
  },

  vecDot(n, w, wOff, a, aOff) {
    const nb = blockCount("Q3_K", n);
    let sum = 0;
    for (let b = 0, p = wOff, q = aOff; b < nb; b++, p += 110, q += 292) {
      unpackQ3KScales(w, p);
      let sumi = 0;
      for (let h = 0; h < 2; h++) {
        for (let k = 0; k < 4; k++) {
          const mask = 1 << (4 * h + k);
          const q8 = q + 4 + 128 * h + 32 * k;
          for (let half = 0; half < 2; half++) {
            let isum = 0;
            for (let l = 16 * half; l < 16 * half + 16; l++) {
              const q3 = ((w[p + 32 + 32 * h + l] >> (2 * k)) & 3) - (w[p + l] & mask ? 0 : 4);
              isum += q3 * readI8(a, q8 + l);
            }
            sumi += q3Scales[8 * h + 2 * k + half] * isum;
          }
        }
      }
      sum = f32(sum + f32(f32(readF16(w, p + 108) * readF32(a, q)) * sumi));
    }
    return sum;
  },
};

// ===================== Q2_K =====================
// scales[16] @0, qs[64] @16, d f16 @80, dmin f16 @82 (84 bytes).
// 16-element sub-block i: scales[i] = 4-bit scale | 4-bit min << 4; x = d * scale * q - dmin * min.
// Element e = 128h + 32k + l: 2 bits at bits 2k of qs[32h + l].

export const Q2_KTraits: WeightQuantTraits = {
  type: GGMLType.Q2_K,
  name: "Q2_K",
  blockSize: QK_K,
  bytesPerBlock: 84,
  vecDotType: GGMLType.Q8_K,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    const nb = blockCount("Q2_K", n);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < nb; b++, p += 84) {
      const d = readF16(src, p + 80);
      const dmin = readF16(src, p + 82);
      for (let h = 0; h < 2; h++) {
        for (let k = 0; k < 4; k++) {
          for (let half = 0; half < 2; half++) {
            const sc = src[p + 8 * h + 2 * k + half];
            const dl = f32(d * (sc & 0x0f));
            const ml = f32(dmin * (sc >> 4));
            for (let l = 16 * half; l < 16 * half + 16; l++) {
              dst[o++] = f32(dl * ((src[p + 16 + 32 * h + l] >> (2 * k)) & 3)) - ml;
            }
          }
        }
      }
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    const nb = blockCount("Q2_K", n);
    const q4scale = 15;
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < nb; b++, s += QK_K, p += 84) {
      let maxScale = 0;
      let maxMin = 0;
      for (let j = 0; j < 16; j++) {
        for (let l = 0; l < 16; l++) subWeights[l] = Math.abs(src[s + 16 * j + l]);
        const scale = makeQkx2Quants(
          16, 3, src, s + 16 * j, subWeights, levels, 16 * j, levelsAux, -0.5, ONE_TENTH, 15, true, subMins, j,
        );
        subScales[j] = scale;
        if (scale > maxScale) maxScale = scale;
        if (subMins[j] > maxMin) maxMin = subMins[j];
      }
      if (maxScale > 0) {
        const iscale = f32(q4scale / maxScale);
        for (let j = 0; j < 16; j++) dst[p + j] = nearestInt(f32(iscale * subScales[j])) & 0xff;
        writeF16(dst, p + 80, f32(maxScale / q4scale));
      } else {
        dst.fill(0, p, p + 16);
        writeF16(dst, p + 80, 0);
      }
      if (maxMin > 0) {
        const iscale = f32(q4scale / maxMin);
        for (let j = 0; j < 16; j++) dst[p + j] |= nearestInt(f32(iscale * subMins[j])) << 4;
        writeF16(dst, p + 82, f32(maxMin / q4scale));
      } else {
        writeF16(dst, p + 82, 0);
      }
      const d = readF16(dst, p + 80);
      const dmin = readF16(dst, p + 82);
      for (let j = 0; j < 16; j++) {
        const dj = f32(d * (dst[p + j] & 0x0f));
        if (dj === 0) continue; // keep the levels make_qkx2_quants chose
        const dm = f32(dmin * (dst[p + j] >> 4));
        for (let ii = 0; ii < 16; ii++) {
          const l = nearestInt(f32(f32(src[s + 16 * j + ii] + dm) / dj));
          levels[16 * j + ii] = Math.max(0, Math.min(3, l));
        }
      }
      pack2BitLevels(levels, dst, p + 16);
    }
  },

  vecDot(n, w, wOff, a, aOff) {
    const nb = blockCount("Q2_K", n);
    let sum = 0;
    for (let b = 0, p = wOff, q = aOff; b < nb; b++, p += 84, q += 292) {
      let summs = 0;
      for (let j = 0; j < 16; j++) summs += readI16(a, q + 260 + 2 * j) * (w[p + j] >> 4);
      let isum = 0;
      for (let h = 0; h < 2; h++) {
        for (let k = 0; k < 4; k++) {
          const q8 = q + 4 + 128 * h + 32 * k;
          for (let half = 0; half < 2; half++) {
            let isuml = 0;
            for (let l = 16 * half; l < 16 * half + 16; l++) {
              isuml += readI8(a, q8 + l) * ((w[p + 16 + 32 * h + l] >> (2 * k)) & 3);
            }
            isum += (w[p + 8 * h + 2 * k + half] & 0x0f) * isuml;
          }
        }
      }
      const ad = readF32(a, q);
      const dall = f32(ad * readF16(w, p + 80));
      const dmin = f32(ad * readF16(w, p + 82));
      sum = f32(sum + f32(f32(dall * isum) - f32(dmin * summs)));
    }
    return sum;
  },
};

// ===================== Q8_K (activations for the K-quants) =====================
// d f32 @0, qs int8[256] @4, bsums int16[16] @260 (292 bytes); bsums[i] = sum of qs[16i .. 16i+16).

export const Q8_KTraits: QuantTraits = {
  type: GGMLType.Q8_K,
  name: "Q8_K",
  blockSize: QK_K,
  bytesPerBlock: 292,
  vecDotType: null,
  vecDot: null,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    const nb = blockCount("Q8_K", n);
    for (let b = 0, p = srcByteOffset, o = dstOffset; b < nb; b++, p += 292) {
      const d = readF32(src, p);
      for (let j = 0; j < QK_K; j++) dst[o++] = d * readI8(src, p + 4 + j);
    }
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    const nb = blockCount("Q8_K", n);
    for (let b = 0, s = srcOffset, p = dstByteOffset; b < nb; b++, s += QK_K, p += 292) {
      let max = 0;
      let amax = 0;
      for (let j = 0; j < QK_K; j++) {
        const ax = Math.abs(src[s + j]);
        if (ax > amax) {
          amax = ax;
          max = src[s + j];
        }
      }
      if (amax === 0) {
        // llama.cpp leaves bsums unwritten here; zero is their only meaningful value
        dst.fill(0, p, p + 292);
        continue;
      }
      // -127 (not -128) keeps every quant in -127..127, as llama.cpp chose for its SIMD dots
      const iscale = f32(-127 / max);
      for (let j = 0; j < QK_K; j++) {
        dst[p + 4 + j] = Math.min(127, nearestInt(f32(iscale * src[s + j]))) & 0xff;
      }
      for (let j = 0; j < 16; j++) {
        let sum = 0;
        for (let ii = 0; ii < 16; ii++) sum += readI8(dst, p + 4 + 16 * j + ii);
        writeI16(dst, p + 260 + 2 * j, sum);
      }
      writeF32(dst, p, f32(1 / iscale));
    }
  },
};
