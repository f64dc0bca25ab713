// Q8_K activation quantization, bit-identical to llama.cpp's quantize_row_q8_K_ref (what its x86
// backend runs): per 256 floats, max = the value of largest magnitude (first one on ties),
// iscale = -127/max, q = min(127, nearest_int(iscale * x)), d = 1/iscale (f32), bsums[16] = int16
// sums of each 16 quants. Block: f32 d @0, int8 qs[256] @4, int16 bsums[16] @260 (292 bytes).

// n rows of k floats (k % 256 == 0, rows contiguous) -> n * k/256 Q8_K blocks at y.
export function quantizeQ8_K(x: usize, y: usize, k: i32, n: i32): void {
  const nb = (k >> 8) * n;
  quantizeBlocks(x, y, nb);
}

@inline
function absv(v: v128): v128 {
  return v128.and(v, i32x4.splat(0x7fffffff));
}

function quantizeBlocks(x: usize, y: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    let m0 = f32x4.splat(0), m1 = f32x4.splat(0), m2 = f32x4.splat(0), m3 = f32x4.splat(0);
    for (let i: usize = 0; i < 1024; i += 64) {
      m0 = f32x4.max(m0, absv(v128.load(x + i)));
      m1 = f32x4.max(m1, absv(v128.load(x + i, 16)));
      m2 = f32x4.max(m2, absv(v128.load(x + i, 32)));
      m3 = f32x4.max(m3, absv(v128.load(x + i, 48)));
    }
    const mm = f32x4.max(f32x4.max(m0, m1), f32x4.max(m2, m3));
    const m4 = f32x4.max(mm, i8x16.shuffle(mm, mm, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    const amax = Mathf.max(f32x4.extract_lane(m4, 0), f32x4.extract_lane(m4, 1));
    if (amax == 0) {
      memory.fill(y, 0, 292);
      x += 1024;
      y += 292;
      continue;
    }
    // the signed value of the first element of largest magnitude
    let max: f32 = amax;
    const am = f32x4.splat(amax);
    for (let i: usize = 0; i < 1024; i += 16) {
      const v = v128.load(x + i);
      const eq = f32x4.eq(absv(v), am);
      if (v128.any_true(eq)) {
        max = load<f32>(x + i + (<usize>ctz(i32x4.bitmask(eq)) << 2));
        break;
      }
    }
    const iscale: f32 = <f32>-127.0 / max;
    const is = f32x4.splat(iscale);
    const c127 = i32x4.splat(127);
    for (let j: usize = 0; j < 16; j++) {
      const p = x + (j << 6);
      const q0 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p), is))), c127);
      const q1 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 16), is))), c127);
      const q2 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 32), is))), c127);
      const q3 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 48), is))), c127);
      const s = i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3));
      const q = i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3));
      v128.store(y + 4 + (j << 4), q);
      const sum = i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
      store<i16>(y + 260 + (j << 1), <i16>sum);
    }
    store<f32>(y, <f32>1.0 / iscale);
    x += 1024;
    y += 292;
  }
}
