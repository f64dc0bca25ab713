// Quantization to int8 blocks of 32.
// - Activations (quantizeAct): as llama.cpp's x86 runtime quantizer (AVX2 quantize_row_q8_0 /
//   q8_1): d = amax/127, id = amax != 0 ? 127/amax : 0, q = round-half-even(x * id) (f32x4.nearest),
//   d stored as f16; for the Q8_1 partner types s = f16(d * sum(q)) with the UNROUNDED f32 d.
// - Weights (quantizeRowQ8_0): llama.cpp's reference quantizer quantize_row_q8_0_ref, byte for
//   byte: id = 1/d, q = roundf(x * id) (half away from zero).
import { CONST, C_HALF, C_ONE, C_SIGN, C_ABS, ACT_BLOCK, ACT_D112, ACT_M128, ACT_M136, f16ToF32, f32ToF16, toInt } from "./common";

const TWO112: f32 = reinterpret<f32>(0x77800000); // 2^112

// roundf (half away from zero) of 4 lanes, exact: frac = s - trunc(s) is exact below 2^23.
@inline
function roundAway(s: v128, half: v128, one: v128, sign: v128, absm: v128): v128 {
  const t = f32x4.trunc(s);
  const frac = v128.and(f32x4.sub(s, t), absm);
  const step = v128.or(v128.and(s, sign), one);
  return i32x4.trunc_sat_f32x4_s(f32x4.add(t, v128.and(f32x4.ge(frac, half), step)));
}

// toInt (common.ts): whole floats in -127..127 here (x * 127/amax rounded).
// Quantizes one block of 32 floats at x; writes 32 int8 at q. Returns the f32 scale d (unrounded).
// rne: activation rounding (id = 127/amax, ties to even), else the reference (id = 1/d, roundf).
@inline
function quantBlock(x: usize, q: usize, half: v128, one: v128, sign: v128, absm: v128, rne: bool): f32 {
  const v0 = v128.load(x), v1 = v128.load(x, 16), v2 = v128.load(x, 32), v3 = v128.load(x, 48);
  const v4 = v128.load(x, 64), v5 = v128.load(x, 80), v6 = v128.load(x, 96), v7 = v128.load(x, 112);
  // |x| as integers: for floats without the sign bit the integer order is the float order, and a
  // NaN's bits exceed inf's, so the max is a NaN where f32x4.max gave one (that is ~8 x64
  // instructions for its NaN and -0 rules, this one: the block's scale costs a third of before)
  let m = i32x4.max_s(
    i32x4.max_s(i32x4.max_s(v128.and(v0, absm), v128.and(v1, absm)), i32x4.max_s(v128.and(v2, absm), v128.and(v3, absm))),
    i32x4.max_s(i32x4.max_s(v128.and(v4, absm), v128.and(v5, absm)), i32x4.max_s(v128.and(v6, absm), v128.and(v7, absm))),
  );
  m = i32x4.max_s(m, i8x16.shuffle(m, m, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  m = i32x4.max_s(m, i8x16.shuffle(m, m, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3));
  const amax = reinterpret<f32>(i32x4.extract_lane(m, 0));
  const d: f32 = amax / 127.0;
  let id: f32;
  if (rne) id = amax != 0 ? <f32>127.0 / amax : 0;
  else id = d != 0 ? <f32>1.0 / d : 0;
  const ids = f32x4.splat(id);
  if (rne) {
    const a0 = toInt(f32x4.nearest(f32x4.mul(v0, ids)));
    const a1 = toInt(f32x4.nearest(f32x4.mul(v1, ids)));
    const a2 = toInt(f32x4.nearest(f32x4.mul(v2, ids)));
    const a3 = toInt(f32x4.nearest(f32x4.mul(v3, ids)));
    const a4 = toInt(f32x4.nearest(f32x4.mul(v4, ids)));
    const a5 = toInt(f32x4.nearest(f32x4.mul(v5, ids)));
    const a6 = toInt(f32x4.nearest(f32x4.mul(v6, ids)));
    const a7 = toInt(f32x4.nearest(f32x4.mul(v7, ids)));
    v128.store(q, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(a0, a1), i16x8.narrow_i32x4_s(a2, a3)));
    v128.store(q, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(a4, a5), i16x8.narrow_i32x4_s(a6, a7)), 16);
    return d;
  }
  const a0 = roundAway(f32x4.mul(v0, ids), half, one, sign, absm);
  const a1 = roundAway(f32x4.mul(v1, ids), half, one, sign, absm);
  const a2 = roundAway(f32x4.mul(v2, ids), half, one, sign, absm);
  const a3 = roundAway(f32x4.mul(v3, ids), half, one, sign, absm);
  const a4 = roundAway(f32x4.mul(v4, ids), half, one, sign, absm);
  const a5 = roundAway(f32x4.mul(v5, ids), half, one, sign, absm);
  const a6 = roundAway(f32x4.mul(v6, ids), half, one, sign, absm);
  const a7 = roundAway(f32x4.mul(v7, ids), half, one, sign, absm);
  v128.store(q, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(a0, a1), i16x8.narrow_i32x4_s(a2, a3)));
  v128.store(q, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(a4, a5), i16x8.narrow_i32x4_s(a6, a7)), 16);
  return d;
}

@inline
function sumQ(q: usize): i32 {
  const s16 = i16x8.add(i16x8.extadd_pairwise_i8x16_s(v128.load(q)), i16x8.extadd_pairwise_i8x16_s(v128.load(q, 16)));
  const s = i32x4.extadd_pairwise_i16x8_s(s16);
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
}

// n rows of k floats (k a multiple of 32, rows contiguous) -> n * k/32 internal activation blocks:
// 32 int8 @0, f32 d (f16-rounded) @32, i32 sum of the quants @36, f32 s @40 = the f16 rounding of
// d_unrounded * sum (llama.cpp's Q8_1 s, used by the Q4_1/Q5_1 kernels), f32 d * 2^112 @44. One
// quantization serves both partner types (Q8_0 and Q8_1).
export function quantizeAct(x: usize, y: usize, k: i32, n: i32): void {
  const half = v128.load(CONST, C_HALF), one = v128.load(CONST, C_ONE);
  const sign = v128.load(CONST, C_SIGN), absm = v128.load(CONST, C_ABS);
  const nblocks = (k >> 5) * n;
  for (let b = 0; b < nblocks; b++) {
    const d = quantBlock(x, y, half, one, sign, absm, true);
    const sum = sumQ(y);
    const dr = f16ToF32(f32ToF16(d));
    store<f32>(y, dr, 32);
    store<i32>(y, sum, 36);
    store<f32>(y, f16ToF32(f32ToF16(d * <f32>sum)), 40);
    store<f32>(y, dr * TWO112, ACT_D112);
    store<i32>(y, sum * -128, ACT_M128);
    store<i32>(y, sum * -136, ACT_M136);
    x += 128;
    y += ACT_BLOCK;
  }
}

// One row of k floats -> llama.cpp Q8_0 blocks (f16 d, 32 int8; 34 bytes each).
export function quantizeRowQ8_0(x: usize, y: usize, k: i32): void {
  const half = v128.load(CONST, C_HALF), one = v128.load(CONST, C_ONE);
  const sign = v128.load(CONST, C_SIGN), absm = v128.load(CONST, C_ABS);
  const nb = k >> 5;
  for (let b = 0; b < nb; b++) {
    const d = quantBlock(x, y + 2, half, one, sign, absm, false);
    store<u16>(y, <u16>f32ToF16(d));
    x += 128;
    y += 34;
  }
}

// llama.cpp Q8_0 blocks -> internal activation blocks (for callers holding Q8_0 data).
export function q8_0ToAct(x: usize, y: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    v128.store(y, v128.load(x, 2));
    v128.store(y, v128.load(x, 18), 16);
    const d = f16ToF32(<u32>load<u16>(x));
    const sum = sumQ(y);
    store<f32>(y, d, 32);
    store<i32>(y, sum, 36);
    // the unrounded d is gone: s from the f16 d (close to, not exactly, llama.cpp's Q8_1 s)
    store<f32>(y, f16ToF32(f32ToF16(d * <f32>sum)), 40);
    store<f32>(y, d * TWO112, ACT_D112);
    store<i32>(y, sum * -128, ACT_M128);
    store<i32>(y, sum * -136, ACT_M136);
    x += 34;
    y += ACT_BLOCK;
  }
}
