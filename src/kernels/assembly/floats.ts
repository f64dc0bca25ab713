// F16, BF16 and F32 weights: llama.cpp rounds the activations to the weight's type (F16: to f16,
// BF16: to bf16) and dots in f32; F32 is plain f32.
//
// Weights stay in their file layout (row-major, 2 or 4 bytes per value: no f32 copy; F16 appends
// a flag byte per row, see below). The rows are
// contiguous, so one row after another is already one sequential stream, and without per-block
// scales an interleaved ("R8") layout saves nothing: these kernels run over rows r0..r1-1 (any
// split, granularity 1).
//
// Activations are f32 arrays (4 bytes per value, row stride k*4 bytes) written by actF16 /
// actBF16 (F32 weights take plain f32 input):
// - within every full group of 8 columns the order is c0 c2 c4 c6 c1 c3 c5 c7 (the even and odd
//   halves of 8 packed 16-bit weights), the k % 8 tail columns keep their order;
// - actBF16: the bf16 rounding (ties to even, NaN kept quiet) of x, as an f32;
// - actF16: the f16 rounding (ties to even, overflow to inf) of x, times 2^112.
//
// F16 -> f32 without the exponent rebias: for a finite half h, the f32 with bits
// sign(h) | (h & 0x7fff) << 13 is exactly h * 2^-112 (normals and subnormals alike). The 2^112 is
// folded into the activations (exact: |f16| <= 65504 stays finite), so every product w * a is
// exact and equal to the true one (halves have 11-bit significands; |w a| >= 2^-48): the sums are
// exactly llama.cpp's f32 products, in another summation order. Per 8 weights that is 5 integer
// ops (shift, arithmetic shift, AND; arithmetic shift, AND with 0x8FFFE000). A half with exponent
// 31 (inf, NaN) has no such image: repackF16 (load time) copies the rows and appends one flag
// byte per row (1: the row holds an inf or NaN); flagged rows run the exact conversion instead
// (rare; an in-loop check would cost 2 more ops per 8 weights in this compute-bound loop).
// F16 layout: nrows * k halves (the file rows), then nrows flag bytes (f16Bytes = nrows * (2k + 1)).
import { CONST, f16ToF32, f32ToF16 } from "./common";

// Constants at CONST + 576 .. CONST + 607 (absolute 1600..1631, inside the range 1536..2559 of
// the legacy/float kernels, see common.ts), written at kernel entry and loaded into locals (a constant folded
// into each use is rebuilt by V8 at every use).
const F_MASK: usize = 576; // i32x4 0x8FFFE000
const F_HI16: usize = 592; // i32x4 0xFFFF0000

const K_F32: i32 = 0;
const K_F16: i32 = 1;
const K_BF16: i32 = 2;

const TWO112: f32 = reinterpret<f32>(0x77800000); // 2^112
const TWOM112: f32 = reinterpret<f32>(0x07800000); // 2^-112

// a * b + c; relaxed: one FMA (identical to mul + add whenever a * b is exact, as for F16/BF16)
@inline
function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

@inline
function hsum4(v: v128): f32 {
  const s = f32x4.add(v, i8x16.shuffle(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

// Position of column j in the activation row (see the header).
@inline
function actIndex(j: i32, k8: i32): i32 {
  return j < k8 ? (j & ~7) + ((j & 1) << 2) + ((j & 7) >> 1) : j;
}

// ---------------------------------------------------------------------------------------------
// Activation conversion: n rows of k f32 at x -> n rows of k f32 at y (y != x).

// f32 -> nearest f16 value (ties to even, beyond 65504 -> inf, NaN kept), as f32, 4 lanes.
@inline
function roundF16x4(x: v128): v128 {
  const sign = v128.and(x, i32x4.splat(0x80000000));
  const b = v128.and(x, i32x4.splat(0x7fffffff));
  // normal halves: round the mantissa to 10 bits (a carry correctly bumps the exponent)
  let rn = v128.and(i32x4.add(i32x4.add(b, i32x4.splat(0xfff)), v128.and(i32x4.shr_u(b, 13), i32x4.splat(1))), i32x4.splat(0xffffe000));
  rn = v128.bitselect(i32x4.splat(0x7f800000), rn, i32x4.gt_s(rn, i32x4.splat(0x477fe000)));
  // subnormal halves (|x| < 2^-14): multiples of 2^-24, which is the ulp of [0.5, 1)
  const sub = f32x4.sub(f32x4.add(b, f32x4.splat(0.5)), f32x4.splat(0.5));
  let r = v128.bitselect(sub, rn, i32x4.lt_s(b, i32x4.splat(0x38800000)));
  r = v128.bitselect(v128.or(b, i32x4.splat(0x00400000)), r, i32x4.gt_s(b, i32x4.splat(0x7f800000)));
  return v128.or(r, sign);
}

// f32 -> nearest bf16 value as f32 (ggml's GGML_FP32_TO_BF16), 4 lanes.
@inline
function roundBF16x4(x: v128): v128 {
  const r = v128.and(i32x4.add(i32x4.add(x, i32x4.splat(0x7fff)), v128.and(i32x4.shr_u(x, 16), i32x4.splat(1))), i32x4.splat(0xffff0000));
  const nan = i32x4.gt_s(v128.and(x, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  return v128.bitselect(v128.and(v128.or(x, i32x4.splat(0x00400000)), i32x4.splat(0xffff0000)), r, nan);
}

@inline
function roundF16(x: f32): f32 {
  return f16ToF32(f32ToF16(x));
}

@inline
function roundBF16(x: f32): f32 {
  const b = reinterpret<u32>(x);
  if ((b & 0x7fffffff) > 0x7f800000) return reinterpret<f32>((b | 0x00400000) & 0xffff0000);
  return reinterpret<f32>((b + 0x7fff + ((b >> 16) & 1)) & 0xffff0000);
}

@inline
function actConvert(x: usize, y: usize, k: i32, n: i32, kind: i32): void {
  const k8 = k & ~7;
  const s112 = f32x4.splat(TWO112);
  for (let t = 0; t < n; t++) {
    let j = 0;
    for (; j < k8; j += 8) {
      const x0 = v128.load(x), x1 = v128.load(x, 16);
      let ev = i8x16.shuffle(x0, x1, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
      let od = i8x16.shuffle(x0, x1, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
      if (kind == K_F16) {
        ev = f32x4.mul(roundF16x4(ev), s112);
        od = f32x4.mul(roundF16x4(od), s112);
      } else {
        ev = roundBF16x4(ev);
        od = roundBF16x4(od);
      }
      v128.store(y, ev);
      v128.store(y, od, 16);
      x += 32;
      y += 32;
    }
    for (; j < k; j++) {
      const v = load<f32>(x);
      store<f32>(y, kind == K_F16 ? roundF16(v) * TWO112 : roundBF16(v));
      x += 4;
      y += 4;
    }
  }
}

/** n rows of k f32 -> the "f16" activation rows of matmulF16 (see the header). */
export function actF16(x: usize, y: usize, k: i32, n: i32): void { actConvert(x, y, k, n, K_F16); }
/** n rows of k f32 -> the "bf16" activation rows of matmulBF16. */
export function actBF16(x: usize, y: usize, k: i32, n: i32): void { actConvert(x, y, k, n, K_BF16); }

// ---------------------------------------------------------------------------------------------
// Weight decoding: 8 packed 16-bit values -> f32 of the even (c0 c2 c4 c6) and odd columns.

@inline
function evenF(v: v128, kind: i32, fm: v128): v128 {
  if (kind == K_F16) return v128.and(i32x4.shr_s(i32x4.shl(v, 16), 3), fm);
  return i32x4.shl(v, 16);
}

@inline
function oddF(v: v128, kind: i32, fm: v128, hi16: v128): v128 {
  if (kind == K_F16) return v128.and(i32x4.shr_s(v, 3), fm);
  return v128.and(v, hi16);
}

// One weight value at p (scalar tail).
@inline
function scalarW(p: usize, kind: i32): f32 {
  if (kind == K_F32) return load<f32>(p);
  const h = <u32>load<u16>(p);
  if (kind == K_BF16) return reinterpret<f32>(h << 16);
  return reinterpret<f32>(((h & 0x8000) << 16) | ((h & 0x7fff) << 13));
}

// Exact row dot for an F16 row holding inf or NaN: the exact conversion, activations unscaled.
@inline
function exactF16Row(wr: usize, xa: usize, k: i32): f32 {
  const k8 = k & ~7;
  let s: f32 = 0;
  for (let j = 0; j < k; j++) {
    s += f16ToF32(<u32>load<u16>(wr + (<usize>j << 1))) * (load<f32>(xa + (<usize>actIndex(j, k8) << 2)) * TWOM112);
  }
  return s;
}

@noinline
function exactF16Rows(wr: usize, xa: usize, xstride: usize, k: i32, y: usize, ystride: usize, ntok: i32): void {
  for (let t = 0; t < ntok; t++) {
    store<f32>(y + <usize>t * ystride, exactF16Row(wr, xa + <usize>t * xstride, k));
  }
}

// 1 token: W[r]·x for one row; bad: an F16 row holding inf/NaN (exact path). The accumulators
// and their order are rowDot4's (a: columns 0-3 of each 8, b: columns 4-7), so a token's result
// never depends on how many tokens share the call (a sequence batched with others gives the same
// bits as alone); the loop is unrolled to 16 columns to keep two FMA chains in flight each.
@inline
function rowDot1(wr: usize, xa: usize, k: i32, kind: i32, fm: v128, hi16: v128, bad: bool): f32 {
  if (kind == K_F16 && bad) return exactF16Row(wr, xa, k);
  let a = f32x4.splat(0), b = f32x4.splat(0);
  let j = 0;
  const k16 = k & ~15, k8 = k & ~7;
  if (kind == K_F32) {
    for (; j < k16; j += 16) {
      const p = wr + (<usize>j << 2), q = xa + (<usize>j << 2);
      a = madd(v128.load(p), v128.load(q), a);
      b = madd(v128.load(p, 16), v128.load(q, 16), b);
      a = madd(v128.load(p, 32), v128.load(q, 32), a);
      b = madd(v128.load(p, 48), v128.load(q, 48), b);
    }
    if (j < k8) {
      const p = wr + (<usize>j << 2), q = xa + (<usize>j << 2);
      a = madd(v128.load(p), v128.load(q), a);
      b = madd(v128.load(p, 16), v128.load(q, 16), b);
      j += 8;
    }
  } else {
    for (; j < k16; j += 16) {
      const p = wr + (<usize>j << 1), q = xa + (<usize>j << 2);
      const v = v128.load(p), u = v128.load(p, 16);
      a = madd(evenF(v, kind, fm), v128.load(q), a);
      b = madd(oddF(v, kind, fm, hi16), v128.load(q, 16), b);
      a = madd(evenF(u, kind, fm), v128.load(q, 32), a);
      b = madd(oddF(u, kind, fm, hi16), v128.load(q, 48), b);
    }
    if (j < k8) {
      const p = wr + (<usize>j << 1), q = xa + (<usize>j << 2);
      const v = v128.load(p);
      a = madd(evenF(v, kind, fm), v128.load(q), a);
      b = madd(oddF(v, kind, fm, hi16), v128.load(q, 16), b);
      j += 8;
    }
  }
  let s = hsum4(f32x4.add(a, b));
  const wsz: usize = kind == K_F32 ? 2 : 1;
  for (; j < k; j++) s += scalarW(wr + (<usize>j << wsz), kind) * load<f32>(xa + (<usize>j << 2));
  return s;
}

// 1 token, 4 rows (wr, wr + rowBytes, ...): each row's accumulators, their order and its tail are
// rowDot1's, so every result is rowDot1's bits; the activation loads are shared by the rows and 8
// FMA chains are in flight instead of 2 (a decode step's matvec is otherwise latency-bound when
// the weights are in cache). Results to y, y + 4, y + 8, y + 12. No F16 row may be flagged.
@inline
function rowDot1x4(wr: usize, rowBytes: usize, xa: usize, k: i32, kind: i32, fm: v128, hi16: v128, y: usize): void {
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
  let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
  const w0 = wr, w1 = wr + rowBytes, w2 = wr + rowBytes * 2, w3 = wr + rowBytes * 3;
  const wsz: usize = kind == K_F32 ? 2 : 1;
  let j = 0;
  // Eight columns per step (rowDot1's 16-column unroll is two such steps: the same order).
  const k8 = k & ~7;
  for (; j < k8; j += 8) {
    const q = xa + (<usize>j << 2), o = <usize>j << wsz;
    const x0 = v128.load(q), x1 = v128.load(q, 16);
    if (kind == K_F32) {
      a0 = madd(v128.load(w0 + o), x0, a0);
      b0 = madd(v128.load(w0 + o, 16), x1, b0);
      a1 = madd(v128.load(w1 + o), x0, a1);
      b1 = madd(v128.load(w1 + o, 16), x1, b1);
      a2 = madd(v128.load(w2 + o), x0, a2);
      b2 = madd(v128.load(w2 + o, 16), x1, b2);
      a3 = madd(v128.load(w3 + o), x0, a3);
      b3 = madd(v128.load(w3 + o, 16), x1, b3);
    } else {
      let v = v128.load(w0 + o);
      a0 = madd(evenF(v, kind, fm), x0, a0);
      b0 = madd(oddF(v, kind, fm, hi16), x1, b0);
      v = v128.load(w1 + o);
      a1 = madd(evenF(v, kind, fm), x0, a1);
      b1 = madd(oddF(v, kind, fm, hi16), x1, b1);
      v = v128.load(w2 + o);
      a2 = madd(evenF(v, kind, fm), x0, a2);
      b2 = madd(oddF(v, kind, fm, hi16), x1, b2);
      v = v128.load(w3 + o);
      a3 = madd(evenF(v, kind, fm), x0, a3);
      b3 = madd(oddF(v, kind, fm, hi16), x1, b3);
    }
  }
  let s0 = hsum4(f32x4.add(a0, b0)), s1 = hsum4(f32x4.add(a1, b1));
  let s2 = hsum4(f32x4.add(a2, b2)), s3 = hsum4(f32x4.add(a3, b3));
  for (; j < k; j++) {
    const xv = load<f32>(xa + (<usize>j << 2)), o = <usize>j << wsz;
    s0 += scalarW(w0 + o, kind) * xv;
    s1 += scalarW(w1 + o, kind) * xv;
    s2 += scalarW(w2 + o, kind) * xv;
    s3 += scalarW(w3 + o, kind) * xv;
  }
  store<f32>(y, s0);
  store<f32>(y, s1, 4);
  store<f32>(y, s2, 8);
  store<f32>(y, s3, 12);
}

// 4 tokens: W[r]·X[t], t = 0..3, each weight vector decoded once; results to y + t*ystride.
@inline
function rowDot4(wr: usize, xa: usize, xs: usize, k: i32, kind: i32, fm: v128, hi16: v128, y: usize, ys: usize, bad: bool): void {
  if (kind == K_F16 && bad) {
    exactF16Rows(wr, xa, xs, k, y, ys, 4);
    return;
  }
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  const x1 = xs, x2 = xs * 2, x3 = xs * 3;
  let j = 0;
  if (kind == K_F32) {
    const k8 = k & ~7;
    for (; j < k8; j += 8) {
      const p = wr + (<usize>j << 2), q = xa + (<usize>j << 2);
      const v = v128.load(p), u = v128.load(p, 16);
      a0 = madd(v, v128.load(q), a0);
      a1 = madd(v, v128.load(q + x1), a1);
      a2 = madd(v, v128.load(q + x2), a2);
      a3 = madd(v, v128.load(q + x3), a3);
      b0 = madd(u, v128.load(q, 16), b0);
      b1 = madd(u, v128.load(q + x1, 16), b1);
      b2 = madd(u, v128.load(q + x2, 16), b2);
      b3 = madd(u, v128.load(q + x3, 16), b3);
    }
  } else {
    const k8 = k & ~7;
    for (; j < k8; j += 8) {
      const p = wr + (<usize>j << 1), q = xa + (<usize>j << 2);
      const v = v128.load(p);
      const ev = evenF(v, kind, fm), od = oddF(v, kind, fm, hi16);
      a0 = madd(ev, v128.load(q), a0);
      a1 = madd(ev, v128.load(q + x1), a1);
      a2 = madd(ev, v128.load(q + x2), a2);
      a3 = madd(ev, v128.load(q + x3), a3);
      b0 = madd(od, v128.load(q, 16), b0);
      b1 = madd(od, v128.load(q + x1, 16), b1);
      b2 = madd(od, v128.load(q + x2, 16), b2);
      b3 = madd(od, v128.load(q + x3, 16), b3);
    }
  }
  let s0 = hsum4(f32x4.add(a0, b0)), s1 = hsum4(f32x4.add(a1, b1));
  let s2 = hsum4(f32x4.add(a2, b2)), s3 = hsum4(f32x4.add(a3, b3));
  const wsz: usize = kind == K_F32 ? 2 : 1;
  for (; j < k; j++) {
    const wv = scalarW(wr + (<usize>j << wsz), kind);
    const q = xa + (<usize>j << 2);
    s0 += wv * load<f32>(q);
    s1 += wv * load<f32>(q + x1);
    s2 += wv * load<f32>(q + x2);
    s3 += wv * load<f32>(q + x3);
  }
  store<f32>(y, s0);
  store<f32>(y + ys, s1);
  store<f32>(y + ys * 2, s2);
  store<f32>(y + ys * 3, s3);
}

// Y[t][r] = W[r]·X[t] for rows r0..r1-1 (w: the whole row-major matrix, row r at w + r*k*size),
// ntok activation rows at x (stride k*4 bytes), y row stride nrows f32.
@inline
function matmulFloat(w: usize, x: usize, y: usize, k: i32, r0: i32, r1: i32, nrows: i32, ntok: i32, kind: i32): void {
  v128.store(CONST + F_MASK, i32x4.splat(0x8fffe000));
  v128.store(CONST + F_HI16, i32x4.splat(0xffff0000));
  const fm = v128.load(CONST, F_MASK);
  const hi16 = v128.load(CONST, F_HI16);
  const rowBytes = <usize>k << (kind == K_F32 ? 2 : 1);
  const xs = <usize>k << 2;
  const ys = <usize>nrows << 2;
  const ntok4 = ntok & ~3;
  const flags = w + <usize>nrows * rowBytes; // F16 only: one inf/NaN flag byte per row
  let r = r0;
  if (ntok == 1) {
    // One token (a decode step): four rows at a time, unless an F16 row of the four is flagged.
    for (; r + 4 <= r1; r += 4) {
      if (kind == K_F16 && load<u32>(flags + <usize>r) != 0) {
        for (let i = r; i < r + 4; i++) store<f32>(y + (<usize>i << 2), rowDot1(w + <usize>i * rowBytes, x, k, kind, fm, hi16, load<u8>(flags + <usize>i) != 0));
        continue;
      }
      rowDot1x4(w + <usize>r * rowBytes, rowBytes, x, k, kind, fm, hi16, y + (<usize>r << 2));
    }
  }
  for (; r < r1; r++) {
    const wr = w + <usize>r * rowBytes;
    const yr = y + (<usize>r << 2);
    const bad = kind == K_F16 && load<u8>(flags + <usize>r) != 0;
    for (let t = 0; t < ntok4; t += 4) {
      rowDot4(wr, x + <usize>t * xs, xs, k, kind, fm, hi16, yr + <usize>t * ys, ys, bad);
    }
    for (let t = ntok4; t < ntok; t++) {
      store<f32>(yr + <usize>t * ys, rowDot1(wr, x + <usize>t * xs, k, kind, fm, hi16, bad));
    }
  }
}

// F16 weights -> the F16 layout (the rows, then one flag byte per row: 1 if it holds inf or NaN).
export function repackF16(src: usize, dst: usize, nrows: i32, k: i32): void {
  const rowBytes = <usize>k << 1;
  memory.copy(dst, src, <usize>nrows * rowBytes);
  const flags = dst + <usize>nrows * rowBytes;
  const e = i16x8.splat(0x7c00);
  const k8 = k & ~7;
  for (let r = 0; r < nrows; r++) {
    const p = src + <usize>r * rowBytes;
    let bad = i16x8.splat(0);
    let j = 0;
    for (; j < k8; j += 8) bad = v128.or(bad, i16x8.eq(v128.and(v128.load(p + (<usize>j << 1)), e), e));
    let f: u8 = v128.any_true(bad) ? 1 : 0;
    for (; j < k; j++) if ((load<u16>(p + (<usize>j << 1)) & 0x7c00) == 0x7c00) f = 1;
    store<u8>(flags + <usize>r, f);
  }
}

export function matmulF32(w: usize, x: usize, y: usize, k: i32, r0: i32, r1: i32, nrows: i32, ntok: i32): void { matmulFloat(w, x, y, k, r0, r1, nrows, ntok, K_F32); }
export function matmulF16(w: usize, x: usize, y: usize, k: i32, r0: i32, r1: i32, nrows: i32, ntok: i32): void { matmulFloat(w, x, y, k, r0, r1, nrows, ntok, K_F16); }
export function matmulBF16(w: usize, x: usize, y: usize, k: i32, r0: i32, r1: i32, nrows: i32, ntok: i32): void { matmulFloat(w, x, y, k, r0, r1, nrows, ntok, K_BF16); }
