// Element-wise f32 kernels of a decoder layer. n is any length (a scalar tail handles n % 4).
import { CONST, C_HALF, C_ONE, C_EXP_LO, C_EXP_HI, C_LOG2E, C_LN2HI, C_LN2LO, C_P6, C_P5, C_P4, C_P3, C_BIAS127, toInt } from "./common";

// e^x for 4 lanes: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n through the exponent bits.
// Relative error about 2e-7; inputs are clamped to [-87.3, 88.3] (finite, normal results).
// Constants come from memory (init(), common.ts): folded ones V8 rebuilt at every use (3
// instructions each); the clamps are pmax/pmin (one instruction each; f32x4.max/min take ~8 for
// NaN and -0 rules that cannot matter here: a NaN passes either way) and the integer n converts
// with toInt. Same values as the plain forms for every input (attention's softmaxRow matches it).
@inline
export function exp4(x: v128): v128 {
  x = f32x4.pmin(f32x4.pmax(x, v128.load(CONST, C_EXP_LO)), v128.load(CONST, C_EXP_HI));
  const n = f32x4.nearest(f32x4.mul(x, v128.load(CONST, C_LOG2E)));
  let r = f32x4.sub(x, f32x4.mul(n, v128.load(CONST, C_LN2HI)));
  r = f32x4.sub(r, f32x4.mul(n, v128.load(CONST, C_LN2LO)));
  let p = v128.load(CONST, C_P6);
  p = f32x4.add(f32x4.mul(p, r), v128.load(CONST, C_P5));
  p = f32x4.add(f32x4.mul(p, r), v128.load(CONST, C_P4));
  p = f32x4.add(f32x4.mul(p, r), v128.load(CONST, C_P3));
  p = f32x4.add(f32x4.mul(p, r), v128.load(CONST, C_HALF));
  const one = v128.load(CONST, C_ONE);
  p = f32x4.add(f32x4.mul(p, r), one);
  p = f32x4.add(f32x4.mul(p, r), one);
  const e = i32x4.shl(i32x4.add(toInt(n), v128.load(CONST, C_BIAS127)), 23);
  return f32x4.mul(p, e);
}

@inline
function exp1(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}

@inline
function hsum4(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

// y = x / sqrt(mean(x^2) + eps) * w, for nrows rows of n (w shared). y may alias x.
// Squares are summed in f64 as ggml does: the normed values feed the 8-bit activation
// quantizer, where a last-bit difference can flip a rounding.
export function rmsNorm(x: usize, w: usize, y: usize, n: i32, nrows: i32, eps: f32): void {
  const n4 = n & ~3;
  for (let r = 0; r < nrows; r++) {
    let s0 = f64x2.splat(0);
    let s1 = f64x2.splat(0);
    let i = 0;
    for (; i < n4; i += 4) {
      const v = v128.load(x + (<usize>i << 2));
      const sq = f32x4.mul(v, v);
      s0 = f64x2.add(s0, f64x2.promote_low_f32x4(sq));
      s1 = f64x2.add(s1, f64x2.promote_low_f32x4(i32x4.shuffle(sq, sq, 2, 3, 0, 1)));
    }
    const both = f64x2.add(s0, s1);
    let ss: f64 = f64x2.extract_lane(both, 0) + f64x2.extract_lane(both, 1);
    for (; i < n; i++) { const v = load<f32>(x + (<usize>i << 2)); ss += <f64>(v * v); }
    const mean = <f32>(ss / <f64>n);
    const scale: f32 = <f32>1.0 / Mathf.sqrt(mean + eps);
    const sc = f32x4.splat(scale);
    i = 0;
    for (; i < n4; i += 4) {
      const o = <usize>i << 2;
      v128.store(y + o, f32x4.mul(f32x4.mul(v128.load(x + o), sc), v128.load(w + o)));
    }
    for (; i < n; i++) { const o = <usize>i << 2; store<f32>(y + o, load<f32>(x + o) * scale * load<f32>(w + o)); }
    x += <usize>n << 2;
    y += <usize>n << 2;
  }
}

// y = a + b (y may alias a or b).
export function add(a: usize, b: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) { const o = <usize>i << 2; v128.store(y + o, f32x4.add(v128.load(a + o), v128.load(b + o))); }
  for (; i < n; i++) { const o = <usize>i << 2; store<f32>(y + o, load<f32>(a + o) + load<f32>(b + o)); }
}

// Index of the largest of the n f32 at x, as the scalar loop `if (x[i] > best) best = x[i]`
// from best = -inf finds it: the first index on ties, NaN never chosen, 0 when nothing is above
// -inf. Eight lanes each keep their own first maximum; the lanes are then merged (ties: the lower
// index), and the tail after the last group of eight is scanned as the scalar loop would.
export function argmaxF32(x: usize, n: i32): i32 {
  let bvA = f32x4.splat(-Infinity), bvB = f32x4.splat(-Infinity);
  let biA = i32x4.splat(0), biB = i32x4.splat(0);
  let idxA = i32x4(0, 1, 2, 3), idxB = i32x4(4, 5, 6, 7);
  const step = i32x4.splat(8);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = x + (<usize>i << 2);
    const a = v128.load(p), b = v128.load(p, 16);
    const ga = f32x4.gt(a, bvA), gb = f32x4.gt(b, bvB);
    bvA = v128.bitselect(a, bvA, ga);
    biA = v128.bitselect(idxA, biA, ga);
    bvB = v128.bitselect(b, bvB, gb);
    biB = v128.bitselect(idxB, biB, gb);
    idxA = i32x4.add(idxA, step);
    idxB = i32x4.add(idxB, step);
  }
  let best: f32 = -Infinity;
  let bi: i32 = 0;
  for (let l = 0; l < 8; l++) {
    let v: f32, j: i32;
    switch (l) {
      case 0: v = f32x4.extract_lane(bvA, 0); j = i32x4.extract_lane(biA, 0); break;
      case 1: v = f32x4.extract_lane(bvA, 1); j = i32x4.extract_lane(biA, 1); break;
      case 2: v = f32x4.extract_lane(bvA, 2); j = i32x4.extract_lane(biA, 2); break;
      case 3: v = f32x4.extract_lane(bvA, 3); j = i32x4.extract_lane(biA, 3); break;
      case 4: v = f32x4.extract_lane(bvB, 0); j = i32x4.extract_lane(biB, 0); break;
      case 5: v = f32x4.extract_lane(bvB, 1); j = i32x4.extract_lane(biB, 1); break;
      case 6: v = f32x4.extract_lane(bvB, 2); j = i32x4.extract_lane(biB, 2); break;
      default: v = f32x4.extract_lane(bvB, 3); j = i32x4.extract_lane(biB, 3); break;
    }
    if (v > best || (v == best && j < bi)) {
      best = v;
      bi = j;
    }
  }
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > best) {
      best = v;
      bi = i;
    }
  }
  return bi;
}

// For each whole block of 16 f32 at x (n / 16 of them), the largest value that is not NaN
// (-inf if none) at out: a top-k scan over a large vocabulary reads these first and looks inside
// only the blocks whose largest value can still enter its list (with NaN ignored, a block is
// skipped exactly when the scalar scan would skip each of its values).
export function blockMaxF32(x: usize, n: i32, out: usize): void {
  const nb = n >> 4;
  const negInf = f32x4.splat(-Infinity);
  for (let b = 0; b < nb; b++) {
    const p = x + (<usize>b << 6);
    let m = negInf, m2 = negInf;
    let a = v128.load(p);
    m = v128.bitselect(a, m, f32x4.gt(a, m));
    a = v128.load(p, 16);
    m2 = v128.bitselect(a, m2, f32x4.gt(a, m2));
    a = v128.load(p, 32);
    m = v128.bitselect(a, m, f32x4.gt(a, m));
    a = v128.load(p, 48);
    m2 = v128.bitselect(a, m2, f32x4.gt(a, m2));
    m = v128.bitselect(m2, m, f32x4.gt(m2, m)); // neither holds NaN
    m = f32x4.max(m, i32x4.shuffle(m, m, 2, 3, 0, 1));
    m = f32x4.max(m, i32x4.shuffle(m, m, 1, 0, 3, 2));
    store<f32>(out + (<usize>b << 2), f32x4.extract_lane(m, 0));
  }
}

// y = a * b.
export function mul(a: usize, b: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) { const o = <usize>i << 2; v128.store(y + o, f32x4.mul(v128.load(a + o), v128.load(b + o))); }
  for (; i < n; i++) { const o = <usize>i << 2; store<f32>(y + o, load<f32>(a + o) * load<f32>(b + o)); }
}

// y = silu(g) * u = g / (1 + e^-g) * u.
export function swiglu(g: usize, u: usize, y: usize, n: i32): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const gv = v128.load(g + o);
    const s = f32x4.div(gv, f32x4.add(one, exp4(f32x4.neg(gv))));
    v128.store(y + o, f32x4.mul(s, v128.load(u + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const gv = load<f32>(g + o);
    store<f32>(y + o, gv / (<f32>1 + exp1(-gv)) * load<f32>(u + o));
  }
}

// In-place softmax of nrows rows of n, each scaled first by scale (scale = 1 for plain softmax).
export function softmax(x: usize, n: i32, nrows: i32, scale: f32): void {
  const sc = f32x4.splat(scale);
  for (let r = 0; r < nrows; r++) {
    let m: f32 = -Infinity;
    let i = 0;
    let mv = f32x4.splat(-Infinity);
    for (; i + 4 <= n; i += 4) mv = f32x4.max(mv, v128.load(x + (<usize>i << 2)));
    m = Mathf.max(Mathf.max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), Mathf.max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    for (; i < n; i++) m = Mathf.max(m, load<f32>(x + (<usize>i << 2)));
    const ms = f32x4.splat(m);
    let sv = f32x4.splat(0);
    i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const e = exp4(f32x4.mul(f32x4.sub(v128.load(x + o), ms), sc));
      v128.store(x + o, e);
      sv = f32x4.add(sv, e);
    }
    let s = hsum4(sv);
    for (; i < n; i++) {
      const o = <usize>i << 2;
      const e = exp1((load<f32>(x + o) - m) * scale);
      store<f32>(x + o, e);
      s += e;
    }
    const inv = f32x4.splat(<f32>1 / s);
    i = 0;
    for (; i + 4 <= n; i += 4) { const o = <usize>i << 2; v128.store(x + o, f32x4.mul(v128.load(x + o), inv)); }
    for (; i < n; i++) { const o = <usize>i << 2; store<f32>(x + o, load<f32>(x + o) / s); }
    x += <usize>n << 2;
  }
}

// Rotates nheads heads of d values in place with a (cos, sin) table (see ropeTable in kernels.ts;
// computed outside: the std Math sin/cos/pow would bring data segments into the shared memory). neox = 0: pairs
// (2i, 2i+1) (llama); neox = 1: pairs (i, i + d/2) (NeoX / Qwen2).
export function rope(x: usize, nheads: i32, d: i32, cs: usize, neox: i32): void {
  const half = d >> 1;
  for (let h = 0; h < nheads; h++) {
    const p = x + (<usize>(h * d) << 2);
    if (neox) {
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const c01 = v128.load(cs + (<usize>i << 3)), c23 = v128.load(cs + (<usize>i << 3), 16);
        const c = i8x16.shuffle(c01, c23, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
        const s = i8x16.shuffle(c01, c23, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
        const a = v128.load(p + (<usize>i << 2)), b = v128.load(p + (<usize>(i + half) << 2));
        v128.store(p + (<usize>i << 2), f32x4.sub(f32x4.mul(a, c), f32x4.mul(b, s)));
        v128.store(p + (<usize>(i + half) << 2), f32x4.add(f32x4.mul(a, s), f32x4.mul(b, c)));
      }
      for (; i < half; i++) {
        const c = load<f32>(cs + (<usize>i << 3)), s = load<f32>(cs + (<usize>i << 3), 4);
        const a = load<f32>(p + (<usize>i << 2)), b = load<f32>(p + (<usize>(i + half) << 2));
        store<f32>(p + (<usize>i << 2), a * c - b * s);
        store<f32>(p + (<usize>(i + half) << 2), a * s + b * c);
      }
    } else {
      for (let i = 0; i < half; i++) {
        const c = load<f32>(cs + (<usize>i << 3)), s = load<f32>(cs + (<usize>i << 3), 4);
        const q = p + (<usize>i << 3);
        const a = load<f32>(q), b = load<f32>(q, 4);
        store<f32>(q, a * c - b * s);
        store<f32>(q, a * s + b * c, 4);
      }
    }
  }
}
