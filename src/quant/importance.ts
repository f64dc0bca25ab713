// Importance-weighted quantizers: the searches llama.cpp runs when an importance matrix is given
// (ggml-quants.c quantize_row_<type>_impl with quant_weights; what llama-quantize --imatrix
// writes), byte for byte. Each column's squared error is weighted by its importance (the mean
// squared activation it is multiplied with) times sqrt(sigma² + x²). Block layouts are the ones
// of the traits table (the packers are shared with the reference quantizers).

import { GGMLType, QK_K, type GGMLTypeId } from "./ggml-type.ts";
import { readF16, writeF16 } from "./half.ts";
import { iq4nlQuantizeBlock } from "./iq4-nl.ts";
// llama.cpp's make_qkx3_quants differs from make_qkx2_quants only in testing `max <= min` where
// qkx2 tests `max == min`; the two agree for every input (max >= min, or both tests fail on NaN),
// so the weighted quantizers use makeQkx2Quants with their own weights.
import { makeQkx2Quants, makeQpQuants, makeQxQuants } from "./k-quant-search.ts";
import { getScaleMinK4, pack2BitLevels, packQ3KLevels, packQ4KLevels, packQ5KLevels, packQ6KLevels, packed, putScaleMinK4, quantizeQ6KBlock } from "./k-quants.ts";
import { f32, nearestInt } from "./rounding.ts";

/** Like QuantizeRow, with one importance weight per column of the row (importance[0] is column 0). */
export type WeightedQuantizeRow = (src: Float32Array, srcOffset: number, dst: Uint8Array, dstByteOffset: number, n: number, importance: Float32Array) => void;

const RMIN = f32(-0.9);
const RDELTA = f32(0.05);

// Scratch (one call at a time per thread).
const L = new Uint8Array(QK_K);
const Laux = new Uint8Array(32);
const weight = new Float32Array(32);
const sw = new Float32Array(16);
const scales = new Float32Array(16);
const mins = new Float32Array(16);
const Ls = new Uint8Array(16);
const Lm = new Uint8Array(16);

function checkBlocks(name: string, n: number, block: number, importance: Float32Array): void {
  if (n % block !== 0) throw new RangeError(`${name}: row length ${n} is not a multiple of the block size ${block}`);
  if (importance.length < n) throw new RangeError(`${name}: ${importance.length} importance weights for a row of ${n}`);
}

function sumSquares(x: Float32Array, s: number, n: number): number {
  let sum = 0;
  for (let j = 0; j < n; j++) sum = f32(sum + f32(x[s + j]! * x[s + j]!));
  return sum;
}

/** weight[l] = qw[l] * sqrt(sigma2 + x²) for n elements. */
function fillWeights(x: Float32Array, s: number, qw: Float32Array, q: number, sigma2: number, n: number): void {
  for (let l = 0; l < n; l++) weight[l] = f32(qw[q + l]! * f32(Math.sqrt(f32(sigma2 + f32(x[s + l]! * x[s + l]!)))));
}

function sumOf(a: Float32Array, n: number): number {
  let sum = 0;
  for (let l = 0; l < n; l++) sum = f32(sum + a[l]!);
  return sum;
}

// ===================== K-quants =====================

function q2K(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("Q2_K", n, QK_K, qw);
  for (let b = 0, s = xOff, p = yOff; b < n / QK_K; b++, s += QK_K, p += 84) {
    const sigma2 = f32(sumSquares(x, s, QK_K) / QK_K);
    for (let j = 0; j < 16; j++) {
      fillWeights(x, s + 16 * j, qw, QK_K * b + 16 * j, sigma2, 16);
      sw[j] = sumOf(weight, 16);
      scales[j] = makeQkx2Quants(16, 3, x, s + 16 * j, weight, L, 16 * j, Laux, RMIN, RDELTA, 36, false, mins, j);
    }
    const dm = makeQpQuants(16, 15, scales, Ls, sw);
    const mm = makeQpQuants(16, 15, mins, Lm, sw);
    writeF16(y, p + 80, dm);
    writeF16(y, p + 82, mm);
    const d = readF16(y, p + 80);
    const dmin = readF16(y, p + 82);
    for (let j = 0; j < 16; j++) y[p + j] = Ls[j]! | (Lm[j]! << 4);
    for (let j = 0; j < 16; j++) {
      const dj = f32(d * (y[p + j]! & 0x0f));
      if (dj === 0) continue;
      const m = f32(dmin * (y[p + j]! >> 4));
      for (let ii = 0; ii < 16; ii++) L[16 * j + ii] = Math.max(0, Math.min(3, nearestInt(f32(f32(x[s + 16 * j + ii]! + m) / dj))));
    }
    pack2BitLevels(L, y, p + 16);
  }
}

const Ls3 = new Uint8Array(16);
const L3 = new Uint8Array(QK_K);

function q3K(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("Q3_K", n, QK_K, qw);
  for (let b = 0, s = xOff, p = yOff; b < n / QK_K; b++, s += QK_K, p += 110) {
    const sigma2 = f32(f32(2 * sumSquares(x, s, QK_K)) / QK_K);
    for (let j = 0; j < 16; j++) {
      fillWeights(x, s + 16 * j, qw, QK_K * b + 16 * j, sigma2, 16);
      sw[j] = sumOf(weight, 16);
      scales[j] = makeQxQuants(16, 4, x, s + 16 * j, L3, 16 * j, weight, 0);
    }
    const sc = p + 96;
    y.fill(0, sc, sc + 12);
    const dBlock = makeQxQuants(16, 32, scales, 0, Ls3, 0, sw, 0);
    for (let j = 0; j < 16; j++) {
      let l = Ls3[j]!;
      if (j < 8) y[sc + j] = l & 0x0f;
      else y[sc + j - 8] |= (l & 0x0f) << 4;
      l >>= 4;
      y[sc + 8 + (j % 4)] |= l << (2 * (j >> 2));
    }
    writeF16(y, p + 108, dBlock);
    const d = readF16(y, p + 108);
    for (let j = 0; j < 16; j++) {
      const low = j < 8 ? y[sc + j]! & 0x0f : y[sc + j - 8]! >> 4;
      const scj = (low | (((y[sc + 8 + (j % 4)]! >> (2 * (j >> 2))) & 3) << 4)) - 32;
      const dj = f32(d * scj);
      if (dj === 0) continue;
      for (let ii = 0; ii < 16; ii++) L3[16 * j + ii] = Math.max(-4, Math.min(3, nearestInt(f32(x[s + 16 * j + ii]! / dj)))) + 4;
    }
    packQ3KLevels(L3, y, p);
  }
}

/** The shared body of Q4_K and Q5_K: scales and mins by make_qkx3_quants + make_qp_quants, levels, d/dmin. */
function q45K(x: Float32Array, s: number, y: Uint8Array, p: number, b: number, qw: Float32Array, nmax: number, clampScales: boolean): void {
  const sigma2 = f32(f32(2 * sumSquares(x, s, QK_K)) / QK_K);
  for (let j = 0; j < 8; j++) {
    fillWeights(x, s + 32 * j, qw, QK_K * b + 32 * j, sigma2, 32);
    sw[j] = sumOf(weight, 32);
    scales[j] = makeQkx2Quants(32, nmax, x, s + 32 * j, weight, L, 32 * j, Laux, RMIN, RDELTA, 36, false, mins, j);
  }
  const dBlock = makeQpQuants(8, 63, scales, Ls, sw);
  const mBlock = makeQpQuants(8, 63, mins, Lm, sw);
  for (let j = 0; j < 8; j++) {
    const ls = clampScales ? Math.min(63, Ls[j]!) : Ls[j]!;
    const lm = clampScales ? Math.min(63, Lm[j]!) : Lm[j]!;
    putScaleMinK4(j, ls, lm, y, p + 4);
  }
  writeF16(y, p, dBlock);
  writeF16(y, p + 2, mBlock);
  const d = readF16(y, p);
  const dmin = readF16(y, p + 2);
  for (let j = 0; j < 8; j++) {
    getScaleMinK4(j, y, p + 4);
    const dj = f32(d * packed[0]!);
    if (dj === 0) continue;
    const dm = f32(dmin * packed[1]!);
    for (let ii = 0; ii < 32; ii++) L[32 * j + ii] = Math.max(0, Math.min(nmax, nearestInt(f32(f32(x[s + 32 * j + ii]! + dm) / dj))));
  }
}

function q4K(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("Q4_K", n, QK_K, qw);
  for (let b = 0, s = xOff, p = yOff; b < n / QK_K; b++, s += QK_K, p += 144) {
    q45K(x, s, y, p, b, qw, 15, false);
    packQ4KLevels(L, y, p);
  }
}

function q5K(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("Q5_K", n, QK_K, qw);
  for (let b = 0, s = xOff, p = yOff; b < n / QK_K; b++, s += QK_K, p += 176) {
    q45K(x, s, y, p, b, qw, 31, true);
    packQ5KLevels(L, y, p);
  }
}

function q6K(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("Q6_K", n, QK_K, qw);
  // The reference search with the raw importance as the weights (no sigma term for Q6_K).
  for (let b = 0, s = xOff, p = yOff; b < n / QK_K; b++, s += QK_K, p += 210) quantizeQ6KBlock(x, s, y, p, qw, QK_K * b);
}

// ===================== 32-element types =====================

function rowSigma2(x: Float32Array, s: number, n: number): number {
  return f32(sumSquares(x, s, n) / n);
}

function q4_0(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("Q4_0", n, 32, qw);
  const sigma2 = rowSigma2(x, xOff, n);
  for (let b = 0, s = xOff, p = yOff; b < n / 32; b++, s += 32, p += 18) {
    fillWeights(x, s, qw, 32 * b, sigma2, 32);
    writeF16(y, p, makeQxQuants(32, 8, x, s, L, 0, weight, 0));
    for (let j = 0; j < 16; j++) y[p + 2 + j] = L[j]! | (L[j + 16]! << 4);
  }
}

const theMin = new Float32Array(1);

function q4_1(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("Q4_1", n, 32, qw);
  const sigma2 = rowSigma2(x, xOff, n);
  for (let b = 0, s = xOff, p = yOff; b < n / 32; b++, s += 32, p += 20) {
    fillWeights(x, s, qw, 32 * b, sigma2, 32);
    const d = makeQkx2Quants(32, 15, x, s, weight, L, 0, Laux, RMIN, RDELTA, 36, false, theMin, 0);
    writeF16(y, p, d);
    writeF16(y, p + 2, -theMin[0]!);
    for (let j = 0; j < 16; j++) y[p + 4 + j] = L[j]! | (L[j + 16]! << 4);
  }
}

/** Q5_0/Q5_1 payload: low nibbles in qs, the fifth bits in the 32-bit qh (element j -> bit j). */
function pack5(y: Uint8Array, qhAt: number, qsAt: number): void {
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const a = L[j]!;
    const c = L[j + 16]!;
    y[qsAt + j] = (a & 0x0f) | ((c & 0x0f) << 4);
    qh |= ((a & 0x10) >> 4) << j;
    qh |= ((c & 0x10) >> 4) << (j + 16);
  }
  y[qhAt] = qh & 0xff;
  y[qhAt + 1] = (qh >>> 8) & 0xff;
  y[qhAt + 2] = (qh >>> 16) & 0xff;
  y[qhAt + 3] = (qh >>> 24) & 0xff;
}

function q5_0(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("Q5_0", n, 32, qw);
  const sigma2 = rowSigma2(x, xOff, n);
  for (let b = 0, s = xOff, p = yOff; b < n / 32; b++, s += 32, p += 22) {
    fillWeights(x, s, qw, 32 * b, sigma2, 32);
    writeF16(y, p, makeQxQuants(32, 16, x, s, L, 0, weight, 0));
    pack5(y, p + 2, p + 6);
  }
}

function q5_1(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("Q5_1", n, 32, qw);
  const sigma2 = rowSigma2(x, xOff, n);
  for (let b = 0, s = xOff, p = yOff; b < n / 32; b++, s += 32, p += 24) {
    fillWeights(x, s, qw, 32 * b, sigma2, 32);
    const d = makeQkx2Quants(32, 31, x, s, weight, L, 0, Laux, RMIN, RDELTA, 36, false, theMin, 0);
    writeF16(y, p, d);
    writeF16(y, p + 2, -theMin[0]!);
    pack5(y, p + 4, p + 8);
  }
}

function iq4nl(x: Float32Array, xOff: number, y: Uint8Array, yOff: number, n: number, qw: Float32Array): void {
  checkBlocks("IQ4_NL", n, 32, qw);
  for (let b = 0, s = xOff, p = yOff; b < n / 32; b++, s += 32, p += 18) {
    // sigma² over the (32-element) super-block, times 2 / 32
    const sigma2 = f32(sumSquares(x, s, 32) * f32(2 / 32));
    fillWeights(x, s, qw, 32 * b, sigma2, 32);
    iq4nlQuantizeBlock(x, s, y, p, weight);
  }
}

const table = new Map<number, WeightedQuantizeRow>([
  [GGMLType.Q2_K, q2K],
  [GGMLType.Q3_K, q3K],
  [GGMLType.Q4_K, q4K],
  [GGMLType.Q5_K, q5K],
  [GGMLType.Q6_K, q6K],
  [GGMLType.Q4_0, q4_0],
  [GGMLType.Q4_1, q4_1],
  [GGMLType.Q5_0, q5_0],
  [GGMLType.Q5_1, q5_1],
  [GGMLType.IQ4_NL, iq4nl],
]);

/** The importance-weighted quantizer of a type, or undefined where llama.cpp ignores the matrix (Q8_0, floats). */
export function weightedQuantizeRow(type: GGMLTypeId | number): WeightedQuantizeRow | undefined {
  return table.get(type);
}
