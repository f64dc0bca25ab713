// Attention over an f16-valued KV cache, with llama.cpp's arithmetic (its non-flash CPU path): the
// query is rounded to f16 for the f16 dot products with the keys, scores are scaled and
// softmaxed in f32, and the weights are rounded to f16 before meeting the f16 values.
// The cache holds f16 bits (2 bytes per value, as llama.cpp's F16 cache).
//
// Every product q*k and w*v is of two f16 values, exact in f32: a fused multiply-add (relaxed
// build) gives the same sums as mul + add, and both builds give the same results.
//
// Cache halves become f32 without the exponent rebias (as F16 weights in floats.ts): a finite
// half h read as the f32 with bits sign(h) | (h & 0x7fff) << 13 is exactly h * 2^-112; the 2^112
// goes into the queries and the weights (exact: f16 values times 2^112 stay finite), so every
// product, hence every sum, is bit for bit that of the unscaled values. A block of cache rows is
// converted once per pass into a scratch tile (each row serves up to 16 heads); inf/NaN halves,
// detected per tile, get their true f32 there.

// Constant vectors at the kernels' attention constants (3584..4095, see common.ts), written by the
// exported functions on entry and loaded into locals: V8 rebuilds a folded v128 constant at every
// use, a loaded one stays in a register.
import { EXP_LO, EXP_HI, EXP_LOG2E, EXP_LN2HI, EXP_LN2LO, EXP_P6, EXP_P5, EXP_P4, EXP_P3, F16S_MASK } from "./common";

const AC: usize = 3584;
const A_ABS: usize = 0; // i32 0x7fffffff
const A_SIGN: usize = 16; // i32 0x80000000
const A_RBIAS: usize = 32; // i32 0xfff
const A_ONEI: usize = 48; // i32 1
const A_RMASK: usize = 64; // i32 ~0x1fff
const A_HALF: usize = 80; // f32 0.5
const A_MINNORM: usize = 96; // i32 bits of 2^-14, the smallest normal f16
const A_INF: usize = 112; // i32 bits of +inf
const A_OVER: usize = 128; // i32 bits just below 65536: above, f16 overflows to inf
const A_QNAN: usize = 144; // i32 0x7fc00000
const A_LO: usize = 160; // f32 -87.3, exp's clamp
const A_HI: usize = 176; // f32 88.3
const A_LOG2E: usize = 192;
const A_RND: usize = 208; // f32 1.5 * 2^23: adding it rounds to an integer, ties to even
const A_LN2HI: usize = 224;
const A_LN2LO: usize = 240;
const A_P6: usize = 256; // 1/720, then 1/120, 1/24, 1/6
const A_P5: usize = 272;
const A_P4: usize = 288;
const A_P3: usize = 304;
const A_ONE: usize = 320; // f32 1
const A_BIAS: usize = 336; // i32 127
const A_NEGINF: usize = 352;
const A_LANE: usize = 368; // i32 0 1 2 3
const A_REBIAS: usize = 384; // i32 0x1c000: (f32 exponent bias - f16's) << 10
const A_HINF: usize = 400; // i32 0x7c00, f16 inf
const A_HNAN: usize = 416; // i32 0x7e00, ggml's f16 NaN
const A_F16S: usize = 432; // i32 0x8fffe000: a sign-extended half << 13 -> sign | magnitude << 13
const A_TWO112: usize = 448; // f32 2^112

function writeConstants(): void {
  v128.store(AC + A_ABS, i32x4.splat(0x7fffffff));
  v128.store(AC + A_SIGN, i32x4.splat(0x80000000));
  v128.store(AC + A_RBIAS, i32x4.splat(0xfff));
  v128.store(AC + A_ONEI, i32x4.splat(1));
  v128.store(AC + A_RMASK, i32x4.splat(~0x1fff));
  v128.store(AC + A_HALF, f32x4.splat(0.5));
  v128.store(AC + A_MINNORM, i32x4.splat(0x38800000));
  v128.store(AC + A_INF, i32x4.splat(0x7f800000));
  v128.store(AC + A_OVER, i32x4.splat(0x477fffff));
  v128.store(AC + A_QNAN, i32x4.splat(0x7fc00000));
  v128.store(AC + A_LO, f32x4.splat(EXP_LO));
  v128.store(AC + A_HI, f32x4.splat(EXP_HI));
  v128.store(AC + A_LOG2E, f32x4.splat(EXP_LOG2E));
  v128.store(AC + A_RND, f32x4.splat(12582912.0));
  v128.store(AC + A_LN2HI, f32x4.splat(EXP_LN2HI));
  v128.store(AC + A_LN2LO, f32x4.splat(EXP_LN2LO));
  v128.store(AC + A_P6, f32x4.splat(EXP_P6));
  v128.store(AC + A_P5, f32x4.splat(EXP_P5));
  v128.store(AC + A_P4, f32x4.splat(EXP_P4));
  v128.store(AC + A_P3, f32x4.splat(EXP_P3));
  v128.store(AC + A_ONE, f32x4.splat(1.0));
  v128.store(AC + A_BIAS, i32x4.splat(127));
  v128.store(AC + A_NEGINF, f32x4.splat(-Infinity));
  v128.store(AC + A_LANE, i32x4(0, 1, 2, 3));
  v128.store(AC + A_REBIAS, i32x4.splat(0x1c000));
  v128.store(AC + A_HINF, i32x4.splat(0x7c00));
  v128.store(AC + A_HNAN, i32x4.splat(0x7e00));
  v128.store(AC + A_F16S, i32x4.splat(F16S_MASK));
  v128.store(AC + A_TWO112, i32x4.splat(0x77800000));
}

// The f32 nearest to x that an f16 can hold (ties to even; overflow to inf; NaN to the quiet NaN
// of x's sign): ggml's f32 -> f16 -> f32, bit for bit for every f32. Normal f16 range: drop 13
// fraction bits with rounding; below 2^-14 a multiple of 2^-24, which adding and removing 0.5 gives.
@inline
function roundF16(x: v128, cAbs: v128, cSign: v128, cRBias: v128, cOneI: v128, cRMask: v128, cHalf: v128, cMinNorm: v128, cInf: v128, cOver: v128, cQNaN: v128): v128 {
  const a = v128.and(x, cAbs);
  const nrm = v128.and(i32x4.add(i32x4.add(a, cRBias), v128.and(i32x4.shr_u(a, 13), cOneI)), cRMask);
  const sub = f32x4.sub(f32x4.add(a, cHalf), cHalf);
  let r = v128.bitselect(sub, nrm, i32x4.lt_s(a, cMinNorm));
  r = v128.bitselect(cInf, r, i32x4.gt_s(r, cOver));
  r = v128.bitselect(cQNaN, r, i32x4.gt_s(a, cInf));
  return v128.or(r, v128.and(x, cSign));
}

// The f16 bits (in i32 lanes) of x: the rounding of roundF16 (ggml's f32 -> f16, bit for bit).
// Normal range: the rounded f32 bits >> 13, rebiased, clamped to inf; below 2^-14 the multiple of
// 2^-24 is the low bits of x + 0.5 (whose f32 ulp is 2^-24); NaN: 0x7e00.
@inline
function f16Bits(x: v128, cAbs: v128, cSign: v128, cRBias: v128, cOneI: v128, cRMask: v128, cHalf: v128, cMinNorm: v128, cInf: v128, cRebias: v128, cHInf: v128, cHNaN: v128): v128 {
  const a = v128.and(x, cAbs);
  const nrm = v128.and(i32x4.add(i32x4.add(a, cRBias), v128.and(i32x4.shr_u(a, 13), cOneI)), cRMask);
  const hn = i32x4.min_s(i32x4.sub(i32x4.shr_u(nrm, 13), cRebias), cHInf);
  const hs = i32x4.sub(f32x4.add(a, cHalf), cHalf); // cHalf's bits are 0x3f000000
  let h = v128.bitselect(hs, hn, i32x4.lt_s(a, cMinNorm));
  h = v128.bitselect(cHNaN, h, i32x4.gt_s(a, cInf));
  return v128.or(h, i32x4.shr_u(v128.and(x, cSign), 16));
}

// n f32 at x -> n f16 (u16 bits) at y, rounded to nearest even as ggml does (n % 4 == 0). y may
// equal x (each 8-byte write lands on bytes already read): what the KV cache stores.
export function f32ToF16Row(x: usize, y: usize, n: i32): void {
  writeConstants();
  toF16Row(x, y, n);
}

// f32ToF16Row once the constants are written.
function toF16Row(x: usize, y: usize, n: i32): void {
  const cAbs = v128.load(AC + A_ABS), cSign = v128.load(AC + A_SIGN), cRBias = v128.load(AC + A_RBIAS);
  const cOneI = v128.load(AC + A_ONEI), cRMask = v128.load(AC + A_RMASK), cHalf = v128.load(AC + A_HALF);
  const cMinNorm = v128.load(AC + A_MINNORM), cInf = v128.load(AC + A_INF), cRebias = v128.load(AC + A_REBIAS);
  const cHInf = v128.load(AC + A_HINF), cHNaN = v128.load(AC + A_HNAN);
  const end = x + (<usize>n << 2);
  for (; x + 32 <= end; x += 32, y += 16) {
    const h0 = f16Bits(v128.load(x), cAbs, cSign, cRBias, cOneI, cRMask, cHalf, cMinNorm, cInf, cRebias, cHInf, cHNaN);
    const h1 = f16Bits(v128.load(x, 16), cAbs, cSign, cRBias, cOneI, cRMask, cHalf, cMinNorm, cInf, cRebias, cHInf, cHNaN);
    v128.store(y, i16x8.narrow_i32x4_u(h0, h1)); // lanes are 0..0xffff: no saturation
  }
  if (x < end) {
    const h0 = f16Bits(v128.load(x), cAbs, cSign, cRBias, cOneI, cRMask, cHalf, cMinNorm, cInf, cRebias, cHInf, cHNaN);
    v128.store64_lane(y, i16x8.narrow_i32x4_u(h0, h0), 0);
  }
}

// n f32 at x -> n f32 at y (n % 4 == 0; y may equal x): each rounded to f16 as f32ToF16Row does,
// then stored as loadTile would convert that half (h * 2^-112, inf and NaN as themselves). A cache
// of these is attentionF32's: the same values as an f16 cache, with no conversion per read.
function toScaledF32Row(x: usize, y: usize, n: i32): void {
  const cAbs = v128.load(AC + A_ABS), cSign = v128.load(AC + A_SIGN), cRBias = v128.load(AC + A_RBIAS);
  const cOneI = v128.load(AC + A_ONEI), cRMask = v128.load(AC + A_RMASK), cHalf = v128.load(AC + A_HALF);
  const cMinNorm = v128.load(AC + A_MINNORM), cInf = v128.load(AC + A_INF), cRebias = v128.load(AC + A_REBIAS);
  const cHInf = v128.load(AC + A_HINF), cHNaN = v128.load(AC + A_HNAN), cMask = v128.load(AC + A_F16S);
  const end = x + (<usize>n << 2);
  for (; x < end; x += 16, y += 16) {
    const h = f16Bits(v128.load(x), cAbs, cSign, cRBias, cOneI, cRMask, cHalf, cMinNorm, cInf, cRebias, cHInf, cHNaN);
    // As loadTile: the half sign-extended, << 13, masked to sign | magnitude << 13; exponent 31 -> 255.
    const e = v128.and(i32x4.shl(i32x4.shr_s(i32x4.shl(h, 16), 16), 13), cMask);
    const special = i32x4.gt_s(v128.and(e, cAbs), i32x4.splat(0x0f7fffff));
    v128.store(y, i32x4.add(e, v128.and(special, i32x4.splat(0x70000000))));
  }
}

// nRows rows of `width` halves (width % 4 == 0; row stride srcStride bytes) -> contiguous f32 rows
// at dst, each finite half h as h * 2^-112 (see the header), inf and NaN as themselves.
function loadTile(src: usize, srcStride: usize, nRows: i32, width: i32, dst: usize): void {
  const cMask = v128.load(AC + A_F16S);
  const rowBytes = <usize>width << 1;
  let mx = i16x8.splat(0); // max of h << 1 (the sign dropped): exponent 31 shows as >= 0xf800
  let d = dst;
  for (let r = 0; r < nRows; r++) {
    let s = src + <usize>r * srcStride;
    const end = s + rowBytes;
    for (; s + 16 <= end; s += 16, d += 32) {
      const h = v128.load(s);
      mx = i16x8.max_u(mx, i16x8.shl(h, 1));
      v128.store(d, v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(h), 13), cMask));
      v128.store(d, v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(h), 13), cMask), 16);
    }
    if (s < end) {
      const h = v128.load64_zero(s);
      mx = i16x8.max_u(mx, i16x8.shl(h, 1));
      v128.store(d, v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(h), 13), cMask));
      d += 16;
    }
  }
  if (v128.any_true(i16x8.ge_u(mx, i16x8.splat(<i16>0xf800)))) {
    // Rare: magnitudes from 0x0f800000 (exponent 31) get the f32 exponent 255: + 0x70000000.
    for (let p = dst; p < d; p += 16) {
      const e = v128.load(p);
      const special = i32x4.gt_s(v128.and(e, i32x4.splat(0x7fffffff)), i32x4.splat(0x0f7fffff));
      v128.store(p, i32x4.add(e, v128.and(special, i32x4.splat(0x70000000))));
    }
  }
}

// a * b + c; the products here are exact (see the header), so fused or not gives the same value.
@inline
function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

// [sum(x0), sum(x1), sum(x2), sum(x3)]: four horizontal sums in two transposing steps.
@inline
function hsum4x4(x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const t0 = f32x4.add(i32x4.shuffle(x0, x1, 0, 4, 1, 5), i32x4.shuffle(x0, x1, 2, 6, 3, 7));
  const t1 = f32x4.add(i32x4.shuffle(x2, x3, 0, 4, 1, 5), i32x4.shuffle(x2, x3, 2, 6, 3, 7));
  return f32x4.add(i64x2.shuffle(t0, t1, 0, 2), i64x2.shuffle(t0, t1, 1, 3));
}

// Scaled scores of two queries (qa, qb; end = qa + hd * 4) against the keys k0..k3, stored at sa
// and sb. Eight accumulators: each key row loaded once for both queries.
@inline
function scores2x4(qa: usize, qb: usize, k0: usize, k1: usize, k2: usize, k3: usize, end: usize, sa: usize, sb: usize, sc: v128): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  const dq = qb - qa;
  for (; qa < end; qa += 16) {
    const x = v128.load(qa), y = v128.load(qa + dq);
    let k = v128.load(k0);
    a0 = madd(x, k, a0); b0 = madd(y, k, b0);
    k = v128.load(k1);
    a1 = madd(x, k, a1); b1 = madd(y, k, b1);
    k = v128.load(k2);
    a2 = madd(x, k, a2); b2 = madd(y, k, b2);
    k = v128.load(k3);
    a3 = madd(x, k, a3); b3 = madd(y, k, b3);
    k0 += 16; k1 += 16; k2 += 16; k3 += 16;
  }
  v128.store(sa, f32x4.mul(hsum4x4(a0, a1, a2, a3), sc));
  v128.store(sb, f32x4.mul(hsum4x4(b0, b1, b2, b3), sc));
}

// One query against 4 keys; two accumulators per key (even and odd 4-dim slices) so that the
// adds do not wait on each other.
@inline
function scores1x4(qa: usize, k0: usize, k1: usize, k2: usize, k3: usize, end: usize, sa: usize, sc: v128): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  for (; qa + 32 <= end; qa += 32) {
    const x = v128.load(qa);
    a0 = madd(x, v128.load(k0), a0);
    a1 = madd(x, v128.load(k1), a1);
    a2 = madd(x, v128.load(k2), a2);
    a3 = madd(x, v128.load(k3), a3);
    const y = v128.load(qa, 16);
    b0 = madd(y, v128.load(k0, 16), b0);
    b1 = madd(y, v128.load(k1, 16), b1);
    b2 = madd(y, v128.load(k2, 16), b2);
    b3 = madd(y, v128.load(k3, 16), b3);
    k0 += 32; k1 += 32; k2 += 32; k3 += 32;
  }
  if (qa < end) {
    const x = v128.load(qa);
    a0 = madd(x, v128.load(k0), a0);
    a1 = madd(x, v128.load(k1), a1);
    a2 = madd(x, v128.load(k2), a2);
    a3 = madd(x, v128.load(k3), a3);
  }
  v128.store(sa, f32x4.mul(hsum4x4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3)), sc));
}

// Output rows oa, ob (16 dims each, accumulated in place) += the weights at wa, wb times the value
// rows at vp, vp + vStride, ... (n positions). Position order as a plain loop: sums unchanged by
// the blocking.
@inline
function values2x16(wa: usize, wb: usize, vp: usize, vStride: usize, n: i32, oa: usize, ob: usize): void {
  let a0 = v128.load(oa), a1 = v128.load(oa, 16), a2 = v128.load(oa, 32), a3 = v128.load(oa, 48);
  let b0 = v128.load(ob), b1 = v128.load(ob, 16), b2 = v128.load(ob, 32), b3 = v128.load(ob, 48);
  const wend = wa + (<usize>n << 2);
  const dw = wb - wa;
  for (; wa < wend; wa += 4) {
    const x = v128.load32_splat(wa), y = v128.load32_splat(wa + dw);
    let v = v128.load(vp);
    a0 = madd(x, v, a0); b0 = madd(y, v, b0);
    v = v128.load(vp, 16);
    a1 = madd(x, v, a1); b1 = madd(y, v, b1);
    v = v128.load(vp, 32);
    a2 = madd(x, v, a2); b2 = madd(y, v, b2);
    v = v128.load(vp, 48);
    a3 = madd(x, v, a3); b3 = madd(y, v, b3);
    vp += vStride;
  }
  v128.store(oa, a0); v128.store(oa, a1, 16); v128.store(oa, a2, 32); v128.store(oa, a3, 48);
  v128.store(ob, b0); v128.store(ob, b1, 16); v128.store(ob, b2, 32); v128.store(ob, b3, 48);
}

@inline
function values2x4(wa: usize, wb: usize, vp: usize, vStride: usize, n: i32, oa: usize, ob: usize): void {
  let a0 = v128.load(oa), b0 = v128.load(ob);
  const wend = wa + (<usize>n << 2);
  const dw = wb - wa;
  for (; wa < wend; wa += 4) {
    const v = v128.load(vp);
    a0 = madd(v128.load32_splat(wa), v, a0);
    b0 = madd(v128.load32_splat(wa + dw), v, b0);
    vp += vStride;
  }
  v128.store(oa, a0);
  v128.store(ob, b0);
}

@inline
function values1x32(wa: usize, vp: usize, vStride: usize, n: i32, oa: usize): void {
  let a0 = v128.load(oa), a1 = v128.load(oa, 16), a2 = v128.load(oa, 32), a3 = v128.load(oa, 48);
  let a4 = v128.load(oa, 64), a5 = v128.load(oa, 80), a6 = v128.load(oa, 96), a7 = v128.load(oa, 112);
  const wend = wa + (<usize>n << 2);
  for (; wa < wend; wa += 4) {
    const x = v128.load32_splat(wa);
    a0 = madd(x, v128.load(vp), a0);
    a1 = madd(x, v128.load(vp, 16), a1);
    a2 = madd(x, v128.load(vp, 32), a2);
    a3 = madd(x, v128.load(vp, 48), a3);
    a4 = madd(x, v128.load(vp, 64), a4);
    a5 = madd(x, v128.load(vp, 80), a5);
    a6 = madd(x, v128.load(vp, 96), a6);
    a7 = madd(x, v128.load(vp, 112), a7);
    vp += vStride;
  }
  v128.store(oa, a0); v128.store(oa, a1, 16); v128.store(oa, a2, 32); v128.store(oa, a3, 48);
  v128.store(oa, a4, 64); v128.store(oa, a5, 80); v128.store(oa, a6, 96); v128.store(oa, a7, 112);
}

@inline
function values1x4(wa: usize, vp: usize, vStride: usize, n: i32, oa: usize): void {
  let a0 = v128.load(oa);
  const wend = wa + (<usize>n << 2);
  for (; wa < wend; wa += 4) {
    a0 = madd(v128.load32_splat(wa), v128.load(vp), a0);
    vp += vStride;
  }
  v128.store(oa, a0);
}

// Scores at row[0..end) (end = 16 * ceil(visible / 4); the lanes of the last vector from
// `rem` on, if rem > 0, are not scores) -> softmax weights rounded to f16, times 2^112 (for the
// cache's scaled values, see the header), in place; those lanes become 0. exp(s - max) is exp4 of elementwise.ts step for step, bit for bit for every input
// (clamps as pmin/pmax: one instruction each; n = nearest(x log2 e) as the f32 sum with 1.5 * 2^23,
// whose bits also give 2^n); its sum is accumulated in f64, as ggml does.
function softmaxRow(row: usize, end: usize, rem: i32): void {
  const negInf = v128.load(AC + A_NEGINF);
  const last = end - 16;
  const tailMask = i32x4.lt_s(v128.load(AC + A_LANE), i32x4.splat(rem == 0 ? 4 : rem));
  v128.store(row + last, v128.bitselect(v128.load(row + last), negInf, tailMask));
  let mx = negInf;
  for (let o: usize = 0; o < end; o += 16) mx = f32x4.pmax(mx, v128.load(row + o));
  mx = f32x4.pmax(mx, i32x4.shuffle(mx, mx, 2, 3, 0, 1));
  mx = f32x4.pmax(mx, i32x4.shuffle(mx, mx, 1, 0, 3, 2));
  let sum: f64 = 0;
  {
    const cLo = v128.load(AC + A_LO), cHi = v128.load(AC + A_HI), cLog2e = v128.load(AC + A_LOG2E);
    const cRnd = v128.load(AC + A_RND), cLn2hi = v128.load(AC + A_LN2HI), cLn2lo = v128.load(AC + A_LN2LO);
    const cP6 = v128.load(AC + A_P6), cP5 = v128.load(AC + A_P5), cP4 = v128.load(AC + A_P4);
    const cP3 = v128.load(AC + A_P3), cHalf = v128.load(AC + A_HALF), cOne = v128.load(AC + A_ONE);
    const cBias = v128.load(AC + A_BIAS);
    let s0 = f64x2.splat(0), s1 = f64x2.splat(0);
    for (let o: usize = 0; o < end; o += 16) {
      const x = f32x4.pmin(f32x4.pmax(f32x4.sub(v128.load(row + o), mx), cLo), cHi);
      const nr = f32x4.add(f32x4.mul(x, cLog2e), cRnd);
      const n = f32x4.sub(nr, cRnd);
      let r = f32x4.sub(x, f32x4.mul(n, cLn2hi));
      r = f32x4.sub(r, f32x4.mul(n, cLn2lo));
      let p = f32x4.add(f32x4.mul(cP6, r), cP5);
      p = f32x4.add(f32x4.mul(p, r), cP4);
      p = f32x4.add(f32x4.mul(p, r), cP3);
      p = f32x4.add(f32x4.mul(p, r), cHalf);
      p = f32x4.add(f32x4.mul(p, r), cOne);
      p = f32x4.add(f32x4.mul(p, r), cOne);
      let e = f32x4.mul(p, i32x4.shl(i32x4.add(nr, cBias), 23));
      if (o == last) e = v128.and(e, tailMask);
      v128.store(row + o, e);
      s0 = f64x2.add(s0, f64x2.promote_low_f32x4(e));
      s1 = f64x2.add(s1, f64x2.promote_low_f32x4(i32x4.shuffle(e, e, 2, 3, 0, 1)));
    }
    s0 = f64x2.add(s0, s1);
    sum = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1);
  }
  const inv = f32x4.splat(<f32>(1.0 / sum));
  const cAbs = v128.load(AC + A_ABS), cSign = v128.load(AC + A_SIGN), cRBias = v128.load(AC + A_RBIAS);
  const cOneI = v128.load(AC + A_ONEI), cRMask = v128.load(AC + A_RMASK), cHalf = v128.load(AC + A_HALF);
  const cMinNorm = v128.load(AC + A_MINNORM), cInf = v128.load(AC + A_INF), cOver = v128.load(AC + A_OVER);
  const cQNaN = v128.load(AC + A_QNAN), c112 = v128.load(AC + A_TWO112);
  for (let o: usize = 0; o < end; o += 16) {
    const w = roundF16(f32x4.mul(v128.load(row + o), inv), cAbs, cSign, cRBias, cOneI, cRMask, cHalf, cMinNorm, cInf, cOver, cQNaN);
    v128.store(row + o, f32x4.mul(w, c112));
  }
}

// Heads in one pass over the cache: whole KV-head groups while they fit (or an even share of a
// group larger than this). Each key and value row is then read once per pass, in address order.
const MAX_HEADS = 16;
// f32 per cache tile (16 KB, in L1 while all heads of a pass use it): key rows of
// 4 * floor(TILE / (4 hd)) positions, value rows of floor(TILE / hdV).
const TILE = 4096;

/**
 * Causal attention of nTok queries at positions startPos.. over the cache of one layer.
 * q: f32 [nTok][nHeads][hd]; kc: f16 [pos][nKvHeads][hd]; vc: f16 [pos][nKvHeads][hdV] (u16
 * bits, as f32ToF16Row writes them); out: f32 [nTok][nHeads][hdV]; scratch: room for
 * min(nHeads * nTok, 16) * (hd + startPos + nTok + 3) + 4 * max(1024, hd, hdV) f32. hd and hdV are
 * multiples of 4. Query t sees positions 0..startPos+t.
 *
 * The last three arguments (0 when absent, as a JavaScript call without them passes) serve a
 * shard of the heads (the WebAssembly backend's KV pool, sharded by KV head across threads):
 * - rowKvHeads: the KV heads of a whole row of q, out and kIn/vIn, of which these nKvHeads are a
 *   contiguous run (q and out then point at the run's first head of the first row): rows of q
 *   and out are rowKvHeads * group heads apart. 0: nKvHeads.
 * - kIn, vIn: if kIn != 0, first stores the nTok rows of keys and values there (f32, rows of
 *   rowKvHeads heads, pointing at the run's first head) as f16 at positions startPos.. of kc, vc,
 *   as f32ToF16Row does.
 * Every head is computed as with the whole row (a KV group always stays in one call): a shard's
 * outputs are bit for bit those of the whole.
 */
export function attentionF16(
  q: usize, kc: usize, vc: usize, out: usize, scratch: usize,
  startPos: i32, nTok: i32, nHeads: i32, nKvHeads: i32, hd: i32, hdV: i32, scale: f32,
  rowKvHeads: i32, kIn: usize, vIn: usize,
): void {
  writeConstants();
  if (rowKvHeads == 0) rowKvHeads = nKvHeads;
  if (kIn != 0) {
    const kw = nKvHeads * hd, vw = nKvHeads * hdV;
    const kInStride = <usize>(rowKvHeads * hd) << 2, vInStride = <usize>(rowKvHeads * hdV) << 2;
    for (let t = 0; t < nTok; t++) {
      toF16Row(kIn + <usize>t * kInStride, kc + (<usize>(startPos + t) * kw << 1), kw);
      toF16Row(vIn + <usize>t * vInStride, vc + (<usize>(startPos + t) * vw << 1), vw);
    }
  }
  attend(q, kc, vc, out, scratch, startPos, nTok, nHeads, nKvHeads, rowKvHeads * (nHeads / nKvHeads), hd, hdV, scale, false);
}

/**
 * attentionF16 over a cache of the same values kept as f32 (toScaledF32Row's form: 4 bytes per
 * value, kc: [pos][nKvHeads][hd] f32, vc likewise): the keys and values are read in place instead
 * of being converted into a tile on every call. Bit for bit attentionF16's outputs (the products
 * and their order are the same). Same arguments; kIn/vIn rows are stored in that form.
 */
export function attentionF32(
  q: usize, kc: usize, vc: usize, out: usize, scratch: usize,
  startPos: i32, nTok: i32, nHeads: i32, nKvHeads: i32, hd: i32, hdV: i32, scale: f32,
  rowKvHeads: i32, kIn: usize, vIn: usize,
): void {
  writeConstants();
  if (rowKvHeads == 0) rowKvHeads = nKvHeads;
  if (kIn != 0) {
    const kw = nKvHeads * hd, vw = nKvHeads * hdV;
    const kInStride = <usize>(rowKvHeads * hd) << 2, vInStride = <usize>(rowKvHeads * hdV) << 2;
    for (let t = 0; t < nTok; t++) {
      toScaledF32Row(kIn + <usize>t * kInStride, kc + (<usize>(startPos + t) * kw << 2), kw);
      toScaledF32Row(vIn + <usize>t * vInStride, vc + (<usize>(startPos + t) * vw << 2), vw);
    }
  }
  attend(q, kc, vc, out, scratch, startPos, nTok, nHeads, nKvHeads, rowKvHeads * (nHeads / nKvHeads), hd, hdV, scale, true);
}

// attentionF16 after the store: rows of q and out are rowHeads heads long. scaledF32: the cache
// holds toScaledF32Row's f32 values (read in place) instead of halves (converted per tile).
// Several tokens (a prompt's rest, forced or drafted tokens) share a pass over the cache when a
// KV group is at most half of MAX_HEADS: passes of one KV head's group for up to MAX_HEADS / group
// tokens, so each key and value tile is converted once for them all (one token per pass converted
// every tile once per token: ~30% of the multi-token attention time at Qwen2-0.5B's group of 7).
// Each token's rows see only its own positions, in the same order and tiles: the same bits.
function attend(
  q: usize, kc: usize, vc: usize, out: usize, scratch: usize,
  startPos: i32, nTok: i32, nHeads: i32, nKvHeads: i32, rowHeads: i32, hd: i32, hdV: i32, scale: f32,
  scaledF32: bool,
): void {
  const group = nHeads / nKvHeads;
  const nChunks = (group + MAX_HEADS - 1) / MAX_HEADS;
  const chunk = (group + nChunks - 1) / nChunks; // heads of one group in a pass
  const multi = nTok > 1 && group <= MAX_HEADS / 2;
  const kvPer = multi ? 1 : max(1, MAX_HEADS / group); // KV heads in a pass
  const tokPer = multi ? MAX_HEADS / group : 1; // tokens in a pass
  const vb: usize = scaledF32 ? 2 : 1; // log2 of a cached value's bytes
  const kStride = <usize>(nKvHeads * hd) << vb; // cache rows
  const vStride = <usize>(nKvHeads * hdV) << vb;
  const qBytes = <usize>hd << 2;
  const oBytes = <usize>hdV << 2;
  const qRow = <usize>rowHeads * qBytes; // bytes from one token's queries to the next's
  const oRow = <usize>rowHeads * oBytes;
  const rowBytes = <usize>((startPos + nTok + 3) & ~3) << 2; // one head's scores, then weights
  // After the query and score rows of the most heads a pass can have: the f32 tile.
  const tile = scratch + <usize>min(nHeads * nTok, MAX_HEADS) * (qBytes + rowBytes);
  const kBlock = max(4, (TILE / hd) & ~3); // a multiple of 4: score groups do not straddle tiles
  const vBlock = max(1, TILE / hdV);
  const sc = f32x4.splat(scale);
  for (let t0 = 0; t0 < nTok; t0 += tokPer) {
    const nt = min(tokPer, nTok - t0);
    const visMax = startPos + t0 + nt; // positions the pass's last token sees
    for (let kv0 = 0; kv0 < nKvHeads; kv0 += kvPer) {
      const nkv = min(kvPer, nKvHeads - kv0);
      for (let c0 = 0; c0 < group; c0 += chunk) {
        // Pass over heads (kv0 + kv) * group + c0 + i, kv < nkv, i < g, of tokens t0 + tt, tt < nt:
        // scratch row (tt * nkv + kv) * g + i.
        const g = min(chunk, group - c0);
        const nh = nt * nkv * g;
        const qr = scratch;
        const srows = scratch + <usize>nh * qBytes;
        {
          // Queries rounded to f16 (llama.cpp's f16 dot products with the f16 keys), times 2^112.
          const cAbs = v128.load(AC + A_ABS), cSign = v128.load(AC + A_SIGN), cRBias = v128.load(AC + A_RBIAS);
          const cOneI = v128.load(AC + A_ONEI), cRMask = v128.load(AC + A_RMASK), cHalf = v128.load(AC + A_HALF);
          const cMinNorm = v128.load(AC + A_MINNORM), cInf = v128.load(AC + A_INF), cOver = v128.load(AC + A_OVER);
          const cQNaN = v128.load(AC + A_QNAN), c112 = v128.load(AC + A_TWO112);
          for (let tt = 0; tt < nt; tt++) {
            for (let kv = 0; kv < nkv; kv++) {
              const src = q + <usize>(t0 + tt) * qRow + <usize>((kv0 + kv) * group + c0) * qBytes;
              const dst = qr + <usize>((tt * nkv + kv) * g) * qBytes;
              for (let o: usize = 0; o < <usize>g * qBytes; o += 16) {
                const r = roundF16(v128.load(src + o), cAbs, cSign, cRBias, cOneI, cRMask, cHalf, cMinNorm, cInf, cOver, cQNaN);
                v128.store(dst + o, f32x4.mul(r, c112));
              }
            }
          }
        }
        // Scores: per tile of key rows and KV head, 4 positions at a time; within them two heads
        // at a time; each token over the tile's positions it sees.
        for (let jb = 0; jb < visMax; jb += kBlock) {
          const nb = min(kBlock, visMax - jb);
          for (let kv = 0; kv < nkv; kv++) {
            // Key rows of this block: the f32 cache in place, or halves converted into the tile.
            let kt = kc + <usize>jb * kStride + (<usize>(kv0 + kv) * hd << vb);
            let ks = kStride;
            if (!scaledF32) {
              loadTile(kt, kStride, nb, hd, tile);
              kt = tile;
              ks = qBytes;
            }
            for (let tt = 0; tt < nt; tt++) {
              const visible = startPos + t0 + tt + 1;
              const jEnd = min(jb + nb, visible);
              const full = visible & ~3;
              const rem = visible - full;
              const row = (tt * nkv + kv) * g;
              for (let j = jb; j < jEnd; j += 4) {
                let d1 = ks, d2 = ks << 1, d3 = ks * 3;
                if (j == full) {
                  // Past the last position: repeat its first key (no read past the tile's rows);
                  // the softmax ignores these lanes.
                  if (rem < 2) d1 = 0;
                  if (rem < 3) d2 = 0;
                  d3 = 0;
                }
                const k0 = kt + <usize>(j - jb) * ks;
                let qa = qr + <usize>row * qBytes;
                let sa = srows + <usize>row * rowBytes + (<usize>j << 2);
                let i = 0;
                for (; i + 2 <= g; i += 2) {
                  scores2x4(qa, qa + qBytes, k0, k0 + d1, k0 + d2, k0 + d3, qa + qBytes, sa, sa + rowBytes, sc);
                  qa += qBytes << 1;
                  sa += rowBytes << 1;
                }
                if (i < g) scores1x4(qa, k0, k0 + d1, k0 + d2, k0 + d3, qa + qBytes, sa, sc);
              }
            }
          }
        }
        for (let tt = 0; tt < nt; tt++) {
          const visible = startPos + t0 + tt + 1;
          const rowEnd = <usize>((visible + 3) & ~3) << 2;
          const rem = visible & 3;
          const r0 = tt * nkv * g;
          for (let i = 0; i < nkv * g; i++) softmaxRow(srows + <usize>(r0 + i) * rowBytes, rowEnd, rem);
          for (let kv = 0; kv < nkv; kv++) {
            const op = out + <usize>(t0 + tt) * oRow + <usize>((kv0 + kv) * group + c0) * oBytes;
            for (let o: usize = 0; o < <usize>g * oBytes; o += 16) v128.store(op + o, i32x4.splat(0));
          }
        }
        // Values, a tile of positions at a time for all heads and tokens of the pass; each output
        // sums its positions in order, so the tiling does not change it.
        for (let jb = 0; jb < visMax; jb += vBlock) {
          const nAll = min(vBlock, visMax - jb);
          for (let kv = 0; kv < nkv; kv++) {
            let vt = vc + <usize>jb * vStride + (<usize>(kv0 + kv) * hdV << vb);
            let vs = vStride;
            if (!scaledF32) {
              loadTile(vt, vStride, nAll, hdV, tile);
              vt = tile;
              vs = oBytes;
            }
            for (let tt = 0; tt < nt; tt++) {
              const visible = startPos + t0 + tt + 1;
              if (jb >= visible) continue;
              const n = min(vBlock, visible - jb);
              let oa = out + <usize>(t0 + tt) * oRow + <usize>((kv0 + kv) * group + c0) * oBytes;
              let wa = srows + <usize>((tt * nkv + kv) * g) * rowBytes + (<usize>jb << 2);
              let i = 0;
              for (; i + 2 <= g; i += 2) {
                let d: usize = 0;
                for (; d + 64 <= oBytes; d += 64) values2x16(wa, wa + rowBytes, vt + d, vs, n, oa + d, oa + oBytes + d);
                for (; d < oBytes; d += 16) values2x4(wa, wa + rowBytes, vt + d, vs, n, oa + d, oa + oBytes + d);
                wa += rowBytes << 1;
                oa += oBytes << 1;
              }
              if (i < g) {
                let d: usize = 0;
                for (; d + 128 <= oBytes; d += 128) values1x32(wa, vt + d, vs, n, oa + d);
                for (; d < oBytes; d += 16) values1x4(wa, vt + d, vs, n, oa + d);
              }
            }
          }
        }
      }
    }
  }
}
