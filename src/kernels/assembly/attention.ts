// Attention over an f16-valued KV cache, with llama.cpp's arithmetic (its non-flash CPU path): the
// query is rounded to f16 for the f16 dot products with the keys, scores are scaled and
// softmaxed in f32, and the weights are rounded to f16 before meeting the f16 values.
// Conversions are done four lanes at a time with integer SIMD (wasm has no f16 arithmetic).

import { exp4 } from "./elementwise";

// f16 bits (in the low 16 bits of each u32 lane) -> f32. Exact for every value incl. subnormals,
// infinities and NaN: the shifted bits read as a tiny float times 2^112 restore the exponent bias.
@inline
export function f16x4ToF32(h: v128): v128 {
  const bits = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  let f = f32x4.mul(bits, f32x4.splat(reinterpret<f32>(0x77800000)));
  const special = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
  f = v128.bitselect(v128.or(bits, i32x4.splat(0x7f800000)), f, special);
  return v128.or(f, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

// f32 -> f16 bits (u32 lanes), round to nearest even, as ggml's software conversion.
@inline
export function f32x4ToF16(f: v128): v128 {
  let base = f32x4.mul(f32x4.mul(f32x4.abs(f), f32x4.splat(reinterpret<f32>(0x77800000))), f32x4.splat(reinterpret<f32>(0x08800000)));
  const shl1w = i32x4.shl(f, 1);
  const sign = v128.and(f, i32x4.splat(0x80000000));
  const bias = i32x4.max_u(v128.and(shl1w, i32x4.splat(0xff000000)), i32x4.splat(0x71000000));
  base = f32x4.add(i32x4.add(i32x4.shr_u(bias, 1), i32x4.splat(0x07800000)), base);
  const nonsign = i32x4.add(v128.and(i32x4.shr_u(base, 13), i32x4.splat(0x7c00)), v128.and(base, i32x4.splat(0xfff)));
  const nan = i32x4.gt_u(shl1w, i32x4.splat(0xff000000));
  return v128.or(i32x4.shr_u(sign, 16), v128.bitselect(i32x4.splat(0x7e00), nonsign, nan));
}

// The f32 nearest to x that an f16 can hold.
@inline
function roundF16x4(x: v128): v128 {
  return f16x4ToF32(f32x4ToF16(x));
}

// n f32 at x -> n f32 at y, each rounded to the nearest f16 value (n % 4 == 0). The KV cache keeps
// f16-rounded values as f32: the same numbers as an f16 cache, without a conversion in the hot loop.
export function roundToF16Row(x: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i += 4) v128.store(y + (<usize>i << 2), roundF16x4(v128.load(x + (<usize>i << 2))));
}

/**
 * Causal attention of nTok queries at positions startPos.. over the cache of one layer.
 * q: f32 [nTok][nHeads][hd]; kc: f32 [pos][nKvHeads][hd]; vc: f32 [pos][nKvHeads][hdV] (cache
 * values already rounded to f16); out: f32 [nTok][nHeads][hdV]; scratch: room for
 * hd + startPos + nTok + 4 f32. hd and hdV are multiples of 4. Query t sees positions 0..startPos+t.
 */
export function attentionF16(
  q: usize, kc: usize, vc: usize, out: usize, scratch: usize,
  startPos: i32, nTok: i32, nHeads: i32, nKvHeads: i32, hd: i32, hdV: i32, scale: f32,
): void {
  const group = nHeads / nKvHeads;
  const kStride = <usize>(nKvHeads * hd) << 2;
  const vStride = <usize>(nKvHeads * hdV) << 2;
  const qh = scratch;
  const scores = scratch + (<usize>hd << 2);
  for (let t = 0; t < nTok; t++) {
    const visible = startPos + t + 1;
    for (let h = 0; h < nHeads; h++) {
      const kvh = h / group;
      const qp = q + (<usize>((t * nHeads + h) * hd) << 2);
      for (let d = 0; d < hd; d += 4) v128.store(qh + (<usize>d << 2), roundF16x4(v128.load(qp + (<usize>d << 2))));
      // Scores and their max; keys two at a time to keep two independent sums in flight.
      let kp = kc + (<usize>(kvh * hd) << 2);
      let max: f32 = -Infinity;
      let j = 0;
      for (; j + 2 <= visible; j += 2) {
        let a0 = f32x4.splat(0);
        let a1 = f32x4.splat(0);
        const kp1 = kp + kStride;
        for (let d = 0; d < hd; d += 4) {
          const qv = v128.load(qh + (<usize>d << 2));
          a0 = f32x4.add(a0, f32x4.mul(qv, v128.load(kp + (<usize>d << 2))));
          a1 = f32x4.add(a1, f32x4.mul(qv, v128.load(kp1 + (<usize>d << 2))));
        }
        const s0: f32 = (f32x4.extract_lane(a0, 0) + f32x4.extract_lane(a0, 1) + f32x4.extract_lane(a0, 2) + f32x4.extract_lane(a0, 3)) * scale;
        const s1: f32 = (f32x4.extract_lane(a1, 0) + f32x4.extract_lane(a1, 1) + f32x4.extract_lane(a1, 2) + f32x4.extract_lane(a1, 3)) * scale;
        store<f32>(scores + (<usize>j << 2), s0);
        store<f32>(scores + (<usize>j << 2), s1, 4);
        max = Mathf.max(max, Mathf.max(s0, s1));
        kp += kStride << 1;
      }
      if (j < visible) {
        let a0 = f32x4.splat(0);
        for (let d = 0; d < hd; d += 4) a0 = f32x4.add(a0, f32x4.mul(v128.load(qh + (<usize>d << 2)), v128.load(kp + (<usize>d << 2))));
        const s0: f32 = (f32x4.extract_lane(a0, 0) + f32x4.extract_lane(a0, 1) + f32x4.extract_lane(a0, 2) + f32x4.extract_lane(a0, 3)) * scale;
        store<f32>(scores + (<usize>j << 2), s0);
        max = Mathf.max(max, s0);
      }
      // exp(s - max) and their sum (f64 accumulation, as ggml), then weights rounded to f16.
      const mv = f32x4.splat(max);
      let sum: f64 = 0;
      j = 0;
      for (; j + 4 <= visible; j += 4) {
        const e = exp4(f32x4.sub(v128.load(scores + (<usize>j << 2)), mv));
        v128.store(scores + (<usize>j << 2), e);
        sum += <f64>f32x4.extract_lane(e, 0) + <f64>f32x4.extract_lane(e, 1) + <f64>f32x4.extract_lane(e, 2) + <f64>f32x4.extract_lane(e, 3);
      }
      for (; j < visible; j++) {
        const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(scores + (<usize>j << 2)) - max)), 0);
        store<f32>(scores + (<usize>j << 2), e);
        sum += <f64>e;
      }
      // Pad to a multiple of 4 so the rounding pass below is whole vectors.
      for (let pad = visible; pad < ((visible + 3) & ~3); pad++) store<f32>(scores + (<usize>pad << 2), 0);
      const inv = f32x4.splat(<f32>(1.0 / sum));
      for (j = 0; j < visible; j += 4) v128.store(scores + (<usize>j << 2), roundF16x4(f32x4.mul(v128.load(scores + (<usize>j << 2)), inv)));
      // Weighted sum of the values, 16 output dims at a time held in registers.
      const op = out + (<usize>((t * nHeads + h) * hdV) << 2);
      const vbase = vc + (<usize>(kvh * hdV) << 2);
      let d = 0;
      for (; d + 16 <= hdV; d += 16) {
        let o0 = f32x4.splat(0), o1 = f32x4.splat(0), o2 = f32x4.splat(0), o3 = f32x4.splat(0);
        let vp = vbase + (<usize>d << 2);
        for (let jj = 0; jj < visible; jj++) {
          const p = v128.load32_splat(scores + (<usize>jj << 2));
          o0 = f32x4.add(o0, f32x4.mul(p, v128.load(vp)));
          o1 = f32x4.add(o1, f32x4.mul(p, v128.load(vp, 16)));
          o2 = f32x4.add(o2, f32x4.mul(p, v128.load(vp, 32)));
          o3 = f32x4.add(o3, f32x4.mul(p, v128.load(vp, 48)));
          vp += vStride;
        }
        v128.store(op + (<usize>d << 2), o0);
        v128.store(op + (<usize>d << 2), o1, 16);
        v128.store(op + (<usize>d << 2), o2, 32);
        v128.store(op + (<usize>d << 2), o3, 48);
      }
      for (; d < hdV; d += 4) {
        let o0 = f32x4.splat(0);
        let vp = vbase + (<usize>d << 2);
        for (let jj = 0; jj < visible; jj++) {
          o0 = f32x4.add(o0, f32x4.mul(v128.load32_splat(scores + (<usize>jj << 2)), v128.load(vp)));
          vp += vStride;
        }
        v128.store(op + (<usize>d << 2), o0);
      }
    }
  }
}
