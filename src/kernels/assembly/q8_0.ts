// Q8_0 weights x Q8 activations.
//
// Repacked layout "Q8_0R8": rows in groups of 8 (last group zero-padded); per group and block of
// 32 columns, 272 bytes: the 8 f16 scales (laid out and read as Q4_0R8's, see scale4 in
// common.ts), then 16 vectors T(g, h) at 16 + 32g + 16h, g = 0..7, h = 0..1, where byte 4k+i of
// T(g, h) is quant 4g+i of row 4h+k (in the VNNI build quant + 128, see OFS).
import { CONST, C_ONES16, C_F16S, ACT_BLOCK, ACT_D112, ACT_M128, f16ToF32, VNNI, dotS, hsum, scale4, storeRows4, storeRows8, chunkGroups } from "./common";

const GROUP_BLOCK: usize = 272;

// dotS, or in the VNNI build one i32 dot-add of the repacked quants (stored + 128, 0..255, see
// repackQ8_0) on a sum started by q8Start: the same exact integer sum.
@inline
function dot8(w: v128, a: v128, acc: v128, ones16: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD && VNNI) return i32x4.relaxed_dot_i8x16_i7x16_add_s(a, w, acc);
  return dotS(w, a, acc, ones16);
}

// The start of a block's i32 sum for the activation block at ap: in the VNNI build
// -128 x sum(activation quants), which takes the quants' +128 back out; 0 otherwise.
@inline
function q8Start(ap: usize): v128 {
  if (ASC_FEATURE_RELAXED_SIMD && VNNI) return v128.load32_splat(ap, ACT_M128);
  return i32x4.splat(0);
}
const QS: usize = 16; // offset of T(0, 0) in a group block
// VNNI build: the quants are stored + 128 (XOR 0x80: -128..127 -> 0..255), which a dot-add takes
// as unsigned bytes (vpdpbusd) without the sign moved onto the activations (4 ops per dot saved);
// the loader's self test rejects the build where the dot-add is signed or saturates.
const OFS: u32 = ASC_FEATURE_RELAXED_SIMD && VNNI ? 0x80808080 : 0;

export function repackQ8_0(src: usize, dst: usize, nrows: i32, k: i32): void {
  const nb = k >> 5;
  const ones16 = v128.load(CONST, C_ONES16);
  const rowBytes = <usize>nb * 34;
  const ngroups = (nrows + 7) >> 3;
  let out = dst;
  for (let grp = 0; grp < ngroups; grp++) {
    for (let b = 0; b < nb; b++) {
      for (let r = 0; r < 8; r++) {
        const row = grp * 8 + r;
        const tile = out + QS + (<usize>(r >> 2) << 4) + (<usize>(r & 3) << 2);
        const sp = out + (<usize>(r & 3) << 2) + (<usize>(r >> 2) << 1);
        if (row < nrows) {
          const s = src + <usize>row * rowBytes + <usize>b * 34;
          store<u16>(sp, load<u16>(s));
          for (let g = 0; g < 8; g++) store<u32>(tile + (<usize>g << 5), load<u32>(s + 2 + (<usize>g << 2)) ^ OFS);
        } else {
          store<u16>(sp, 0);
          for (let g = 0; g < 8; g++) store<u32>(tile + (<usize>g << 5), OFS);
        }
      }
      out += GROUP_BLOCK;
    }
  }
}

export function matvecQ8_0R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32): void {
  const nb = k >> 5;
  const ones16 = v128.load(CONST, C_ONES16);
  const f16s = v128.load(CONST, C_F16S);
  let wp = w + <usize>g0 * <usize>nb * GROUP_BLOCK;
  for (let grp = g0; grp < g1; grp++) {
    let f0 = f32x4.splat(0);
    let f1 = f32x4.splat(0);
    let ap = x;
    for (let b = 0; b < nb; b++) {
      let i0 = q8Start(ap), i1 = i0, j0 = i32x4.splat(0), j1 = i32x4.splat(0);
      let a = v128.load32_splat(ap);
      i0 = dot8(v128.load(wp, 16), a, i0, ones16);
      i1 = dot8(v128.load(wp, 32), a, i1, ones16);
      a = v128.load32_splat(ap, 4);
      j0 = dot8(v128.load(wp, 48), a, j0, ones16);
      j1 = dot8(v128.load(wp, 64), a, j1, ones16);
      a = v128.load32_splat(ap, 8);
      i0 = dot8(v128.load(wp, 80), a, i0, ones16);
      i1 = dot8(v128.load(wp, 96), a, i1, ones16);
      a = v128.load32_splat(ap, 12);
      j0 = dot8(v128.load(wp, 112), a, j0, ones16);
      j1 = dot8(v128.load(wp, 128), a, j1, ones16);
      a = v128.load32_splat(ap, 16);
      i0 = dot8(v128.load(wp, 144), a, i0, ones16);
      i1 = dot8(v128.load(wp, 160), a, i1, ones16);
      a = v128.load32_splat(ap, 20);
      j0 = dot8(v128.load(wp, 176), a, j0, ones16);
      j1 = dot8(v128.load(wp, 192), a, j1, ones16);
      a = v128.load32_splat(ap, 24);
      i0 = dot8(v128.load(wp, 208), a, i0, ones16);
      i1 = dot8(v128.load(wp, 224), a, i1, ones16);
      a = v128.load32_splat(ap, 28);
      j0 = dot8(v128.load(wp, 240), a, j0, ones16);
      j1 = dot8(v128.load(wp, 256), a, j1, ones16);
      const da = f32x4.splat(load<f32>(ap, ACT_D112));
      const sv = v128.load(wp);
      f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.add(i0, j0)), f32x4.mul(scale4(sv, 0, f16s), da)));
      f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.add(i1, j1)), f32x4.mul(scale4(sv, 1, f16s), da)));
      wp += GROUP_BLOCK;
      ap += ACT_BLOCK;
    }
    storeRows8(y, grp << 3, nrows, f0, f1);
  }
}

// Tiles of 2, 3 or 4 tokens over one 4-row half (h) of a group, all blocks: each weight vector
// (and, in the relaxed builds, its sign and absolute value) is loaded once for every token. The
// float arithmetic per token and block is matvecQ8_0R8's (the i32 sum of the block, times the
// scale times the activation's d), so every token's result is bit-identical to the matvec's. A
// 2-token pass costs about 1.6 single-token passes in cache instead of 2 (two matvecs before).
@inline
function q8Tile4(wp: usize, h: i32, ap: usize, astride: usize, nb: i32, y: usize, r: i32, nrows: i32, ones16: v128, f16s: v128): void {
  let f0 = f32x4.splat(0), f1 = f32x4.splat(0), f2 = f32x4.splat(0), f3 = f32x4.splat(0);
  const a1p = astride, a2p = astride * 2, a3p = astride * 3;
  for (let b = 0; b < nb; b++) {
    let i0 = q8Start(ap), i1 = q8Start(ap + a1p), i2 = q8Start(ap + a2p), i3 = q8Start(ap + a3p);
    for (let g = 0; g < 8; g++) {
      const v = v128.load(wp + QS + (<usize>h << 4) + (<usize>g << 5)); // T(g, h)
      const aq = ap + (<usize>g << 2);
      i0 = dot8(v, v128.load32_splat(aq), i0, ones16);
      i1 = dot8(v, v128.load32_splat(aq + a1p), i1, ones16);
      i2 = dot8(v, v128.load32_splat(aq + a2p), i2, ones16);
      i3 = dot8(v, v128.load32_splat(aq + a3p), i3, ones16);
    }
    const sc = scale4(v128.load(wp), h, f16s);
    f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.mul(sc, f32x4.splat(load<f32>(ap, ACT_D112)))));
    f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.mul(sc, f32x4.splat(load<f32>(ap + a1p, ACT_D112)))));
    f2 = f32x4.add(f2, f32x4.mul(f32x4.convert_i32x4_s(i2), f32x4.mul(sc, f32x4.splat(load<f32>(ap + a2p, ACT_D112)))));
    f3 = f32x4.add(f3, f32x4.mul(f32x4.convert_i32x4_s(i3), f32x4.mul(sc, f32x4.splat(load<f32>(ap + a3p, ACT_D112)))));
    wp += GROUP_BLOCK;
    ap += ACT_BLOCK;
  }
  const ys = <usize>nrows << 2;
  storeRows4(y, r, nrows, f0);
  storeRows4(y + ys, r, nrows, f1);
  storeRows4(y + ys * 2, r, nrows, f2);
  storeRows4(y + ys * 3, r, nrows, f3);
}

@inline
function q8Tile3(wp: usize, h: i32, ap: usize, astride: usize, nb: i32, y: usize, r: i32, nrows: i32, ones16: v128, f16s: v128): void {
  let f0 = f32x4.splat(0), f1 = f32x4.splat(0), f2 = f32x4.splat(0);
  const a1p = astride, a2p = astride * 2;
  for (let b = 0; b < nb; b++) {
    let i0 = q8Start(ap), i1 = q8Start(ap + a1p), i2 = q8Start(ap + a2p);
    for (let g = 0; g < 8; g++) {
      const v = v128.load(wp + QS + (<usize>h << 4) + (<usize>g << 5)); // T(g, h)
      const aq = ap + (<usize>g << 2);
      i0 = dot8(v, v128.load32_splat(aq), i0, ones16);
      i1 = dot8(v, v128.load32_splat(aq + a1p), i1, ones16);
      i2 = dot8(v, v128.load32_splat(aq + a2p), i2, ones16);
    }
    const sc = scale4(v128.load(wp), h, f16s);
    f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.mul(sc, f32x4.splat(load<f32>(ap, ACT_D112)))));
    f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.mul(sc, f32x4.splat(load<f32>(ap + a1p, ACT_D112)))));
    f2 = f32x4.add(f2, f32x4.mul(f32x4.convert_i32x4_s(i2), f32x4.mul(sc, f32x4.splat(load<f32>(ap + a2p, ACT_D112)))));
    wp += GROUP_BLOCK;
    ap += ACT_BLOCK;
  }
  const ys = <usize>nrows << 2;
  storeRows4(y, r, nrows, f0);
  storeRows4(y + ys, r, nrows, f1);
  storeRows4(y + ys * 2, r, nrows, f2);
}

@inline
function q8Tile2(wp: usize, h: i32, ap: usize, astride: usize, nb: i32, y: usize, r: i32, nrows: i32, ones16: v128, f16s: v128): void {
  let f0 = f32x4.splat(0), f1 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let i0 = q8Start(ap), i1 = q8Start(ap + astride);
    for (let g = 0; g < 8; g++) {
      const v = v128.load(wp + QS + (<usize>h << 4) + (<usize>g << 5)); // T(g, h)
      const aq = ap + (<usize>g << 2);
      i0 = dot8(v, v128.load32_splat(aq), i0, ones16);
      i1 = dot8(v, v128.load32_splat(aq + astride), i1, ones16);
    }
    const sc = scale4(v128.load(wp), h, f16s);
    f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.mul(sc, f32x4.splat(load<f32>(ap, ACT_D112)))));
    f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.mul(sc, f32x4.splat(load<f32>(ap + astride, ACT_D112)))));
    wp += GROUP_BLOCK;
    ap += ACT_BLOCK;
  }
  storeRows4(y, r, nrows, f0);
  storeRows4(y + (<usize>nrows << 2), r, nrows, f1);
}

// VNNI build: 8 rows (a whole group) x 2 tokens: each weight vector loaded once for both tokens,
// each activation splat used for both 4-row halves, two chains per sum (even and odd columns
// groups: half the dot-add latency per block). In cache 1.40 one-token matvecs for 2 tokens (the
// 4-row tile of 2 tokens: 2.3), so the VNNI build goes in pairs plus a lone matvec, like Q4_0.
@inline
function q8PairG(wp: usize, ap: usize, astride: usize, nb: i32, y: usize, ystride: usize, r: i32, nrows: i32, f16s: v128): void {
  let e0 = f32x4.splat(0), o0 = f32x4.splat(0), e1 = f32x4.splat(0), o1 = f32x4.splat(0);
  let x0 = ap, x1 = ap + astride;
  for (let b = 0; b < nb; b++) {
    let i0 = q8Start(x0), i1 = i0, k0 = q8Start(x1), k1 = k0;
    let j0 = i32x4.splat(0), j1 = j0, m0 = j0, m1 = j0;
    for (let g: usize = 0; g < 32; g += 8) {
      let v0 = v128.load(wp + (g << 3), QS), v1 = v128.load(wp + (g << 3), QS + 16);
      let a = v128.load32_splat(x0 + g);
      i0 = dot8(v0, a, i0, f16s); i1 = dot8(v1, a, i1, f16s);
      a = v128.load32_splat(x1 + g);
      k0 = dot8(v0, a, k0, f16s); k1 = dot8(v1, a, k1, f16s);
      v0 = v128.load(wp + (g << 3), QS + 32); v1 = v128.load(wp + (g << 3), QS + 48);
      a = v128.load32_splat(x0 + g, 4);
      j0 = dot8(v0, a, j0, f16s); j1 = dot8(v1, a, j1, f16s);
      a = v128.load32_splat(x1 + g, 4);
      m0 = dot8(v0, a, m0, f16s); m1 = dot8(v1, a, m1, f16s);
    }
    i0 = i32x4.add(i0, j0); i1 = i32x4.add(i1, j1); k0 = i32x4.add(k0, m0); k1 = i32x4.add(k1, m1);
    const sv = v128.load(wp);
    const s0 = scale4(sv, 0, f16s), s1 = scale4(sv, 1, f16s);
    let da = v128.load32_splat(x0, ACT_D112);
    e0 = f32x4.add(e0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.mul(s0, da)));
    o0 = f32x4.add(o0, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.mul(s1, da)));
    da = v128.load32_splat(x1, ACT_D112);
    e1 = f32x4.add(e1, f32x4.mul(f32x4.convert_i32x4_s(k0), f32x4.mul(s0, da)));
    o1 = f32x4.add(o1, f32x4.mul(f32x4.convert_i32x4_s(k1), f32x4.mul(s1, da)));
    wp += GROUP_BLOCK;
    x0 += ACT_BLOCK;
    x1 += ACT_BLOCK;
  }
  storeRows8(y, r, nrows, e0, o0);
  storeRows8(y + ystride, r, nrows, e1, o1);
}

// ntok activation rows -> y[t*nrows + r]: one token is the matvec; more go in tiles of 4 over each
// group's weights (which stay in cache between the tiles), the rest (2 or 3) in one smaller tile;
// a single leftover token after tiles of 4 takes the matvec. The VNNI build: whole-group pairs and
// a lone matvec (in cache, relative to its matvec: 3 tokens 2.4x, 4 tokens 2.9x, 9 tokens 7.0x,
// where the tiles took 2.8x, 3.5x, 8.0x).
export function matmulQ8_0R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32, ntok: i32): void {
  if (ntok == 1) {
    matvecQ8_0R8(w, x, y, k, g0, g1, nrows);
    return;
  }
  const nb = k >> 5;
  const ones16 = v128.load(CONST, C_ONES16);
  const f16s = v128.load(CONST, C_F16S);
  const gstride = <usize>nb * GROUP_BLOCK;
  const astride = <usize>nb * ACT_BLOCK;
  const ystride = <usize>nrows << 2;
  const ntok4 = ntok & ~3;
  const rest = ntok - ntok4;
  // each tile over a chunk of groups before the next tile (see chunkGroups)
  const chunk = chunkGroups(gstride);
  for (let c0 = g0; c0 < g1; c0 += chunk) {
    const c1 = min(g1, c0 + chunk);
    if (ASC_FEATURE_RELAXED_SIMD && VNNI) { // pairs, an odd count's last token alone
      let t = 0;
      for (; t + 2 <= ntok; t += 2) {
        for (let grp = c0; grp < c1; grp++) q8PairG(w + <usize>grp * gstride, x + <usize>t * astride, astride, nb, y + <usize>t * ystride, ystride, grp << 3, nrows, f16s);
      }
      if (t < ntok) matvecQ8_0R8(w, x + <usize>t * astride, y + <usize>t * ystride, k, c0, c1, nrows);
      continue;
    }
    for (let t = 0; t < ntok4; t += 4) {
      const ap = x + <usize>t * astride;
      const yp = y + <usize>t * ystride;
      for (let grp = c0; grp < c1; grp++) {
        const wp = w + <usize>grp * gstride;
        q8Tile4(wp, 0, ap, astride, nb, yp, grp << 3, nrows, ones16, f16s);
        q8Tile4(wp, 1, ap, astride, nb, yp, (grp << 3) + 4, nrows, ones16, f16s);
      }
    }
    const ap = x + <usize>ntok4 * astride;
    const yp = y + <usize>ntok4 * ystride;
    if (rest == 1) {
      matvecQ8_0R8(w, ap, yp, k, c0, c1, nrows);
      continue;
    }
    for (let grp = c0; grp < c1 && rest > 1; grp++) {
      const wp = w + <usize>grp * gstride;
      const r = grp << 3;
      if (rest == 3) {
        q8Tile3(wp, 0, ap, astride, nb, yp, r, nrows, ones16, f16s);
        q8Tile3(wp, 1, ap, astride, nb, yp, r + 4, nrows, ones16, f16s);
      } else {
        q8Tile2(wp, 0, ap, astride, nb, yp, r, nrows, ones16, f16s);
        q8Tile2(wp, 1, ap, astride, nb, yp, r + 4, nrows, ones16, f16s);
      }
    }
  }
}

export function matvecQ8_0(w: usize, x: usize, y: usize, k: i32, r0: i32, r1: i32): void {
  const nb = k >> 5;
  const ones16 = v128.load(CONST, C_ONES16);
  const rowBytes = <usize>nb * 34;
  let wp = w + <usize>r0 * rowBytes;
  for (let r = r0; r < r1; r++) {
    let f = f32x4.splat(0);
    let ap = x;
    for (let b = 0; b < nb; b++) {
      let acc = dotS(v128.load(wp, 2), v128.load(ap), i32x4.splat(0), ones16);
      acc = dotS(v128.load(wp, 18), v128.load(ap, 16), acc, ones16);
      const d = f16ToF32(<u32>load<u16>(wp)) * load<f32>(ap, 32);
      f = f32x4.add(f, f32x4.mul(f32x4.convert_i32x4_s(acc), f32x4.splat(d)));
      wp += 34;
      ap += ACT_BLOCK;
    }
    store<f32>(y + (<usize>r << 2), hsum(f));
  }
}
