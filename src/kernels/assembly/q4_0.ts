// Q4_0 weights x Q8 activations.
//
// Repacked layout "Q4_0R8" (the builds without VNNI; the VNNI build's differs in the nibbles'
// order, see repackRowPairs): rows in groups of 8 (the last group padded with zero rows); per group
// and block of 32 columns, 144 bytes: the 8 f16 scales (S, below), then 8 vectors P(g, h) at
// 16 + 32g + 16h for g = 0..3, h = 0..1, where byte 4k+i of P(g, h) is byte 4g+i of the Q4_0
// quants of row 4h+k (low nibble = column 4g+i, high nibble = column 16+4g+i). A dot of P's
// nibbles with 4 activation bytes splatted to every lane yields one i32 per row: no horizontal
// sums, one sequential stream per thread.
//
// S keeps the file's f16 scales (the same bytes per weight as the file, where f32 scales cost 11%
// more memory and bandwidth): 32-bit lane k holds row k's scale in its low half and row 4+k's in
// its high half, so two shifts and an AND per 4 rows (scale4) turn them into f32 values 2^-112
// times the scale; the activation block carries d * 2^112 (quantize.ts), so their product is
// exactly the f32 product of the two scales, as llama.cpp computes it.
import { CONST, C_NIB, C_LO16, C_ONES16, C_F16S, ACT_BLOCK, ACT_D112, ACT_M128, ACT_M136, f16ToF32, VNNI, dotU, dot16, hsum, scale4, storeRows4, storeRows8, chunkGroups } from "./common";

const GROUP_BLOCK: usize = 144;
const QS: usize = 16; // offset of P(0, 0) in a group block

// The column-pair layout above (both builds without VNNI; IQ4_NL in every build).
export function repackIQ4_NL(src: usize, dst: usize, nrows: i32, k: i32): void {
  const nb = k >> 5;
  const rowBytes = <usize>nb * 18;
  const ngroups = (nrows + 7) >> 3;
  let out = dst;
  for (let grp = 0; grp < ngroups; grp++) {
    for (let b = 0; b < nb; b++) {
      for (let r = 0; r < 8; r++) {
        const row = grp * 8 + r;
        const tile = out + QS + (<usize>(r >> 2) << 4) + (<usize>(r & 3) << 2);
        const sp = out + (<usize>(r & 3) << 2) + (<usize>(r >> 2) << 1);
        if (row < nrows) {
          const s = src + <usize>row * rowBytes + <usize>b * 18;
          store<u16>(sp, load<u16>(s));
          store<u32>(tile, load<u32>(s, 2));
          store<u32>(tile, load<u32>(s, 6), 32);
          store<u32>(tile, load<u32>(s, 10), 64);
          store<u32>(tile, load<u32>(s, 14), 96);
        } else {
          store<u16>(sp, 0);
          store<u32>(tile, 0);
          store<u32>(tile, 0, 32);
          store<u32>(tile, 0, 64);
          store<u32>(tile, 0, 96);
        }
      }
      out += GROUP_BLOCK;
    }
  }
}

// Q4_0 weights of llama.cpp's layout -> this build's R8 layout (VNNI: row pairs, below).
export function repackQ4_0(src: usize, dst: usize, nrows: i32, k: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD && VNNI) repackRowPairs(src, dst, nrows, k);
  else repackIQ4_NL(src, dst, nrows, k);
}

// VNNI build: "row pairs". Per group and block, the same 16 scale bytes, then 8 vectors V(g) at
// 16 + 16g (g = 0..7), where byte 4k+i of V(g) holds column 4g+i of row k in its low nibble and of
// row 4+k in its high nibble. A dot-add of the whole byte (0..255: vpdpbusd takes it unsigned) with
// the 4 activations of columns 4g..4g+3 adds row k's sum plus 16 x row (4+k)'s; a dot-add of the
// byte with its low nibble cleared adds 16 x row (4+k)'s. Over a block, chain L - chain H is rows
// 0..3 and H >> 4 (exact: a multiple of 16) rows 4..7: one AND per 16 weight bytes, where the
// column-pair layout needs a shift and two ANDs. The loader's self test rejects this build where
// the dot-add is signed or saturates on bytes >= 128 (its relaxed semantics allow either).
function repackRowPairs(src: usize, dst: usize, nrows: i32, k: i32): void {
  const nb = k >> 5;
  const rowBytes = <usize>nb * 18;
  const ngroups = (nrows + 7) >> 3;
  let out = dst;
  for (let grp = 0; grp < ngroups; grp++) {
    for (let b = 0; b < nb; b++) {
      memory.fill(out + QS, 0, 128);
      for (let r = 0; r < 8; r++) {
        const row = grp * 8 + r;
        const sp = out + (<usize>(r & 3) << 2) + (<usize>(r >> 2) << 1);
        if (row >= nrows) {
          store<u16>(sp, 0);
          continue;
        }
        const s = src + <usize>row * rowBytes + <usize>b * 18;
        store<u16>(sp, load<u16>(s));
        const lane = out + QS + (<usize>(r & 3) << 2);
        const sh = <u32>(r >> 2) << 2;
        for (let j = 0; j < 16; j++) {
          const q = <u32>load<u8>(s + 2 + j);
          const lo = lane + (<usize>(j >> 2) << 4) + <usize>(j & 3); // column j
          const hi = lo + 64; // column 16 + j
          store<u8>(lo, <u32>load<u8>(lo) | ((q & 15) << sh));
          store<u8>(hi, <u32>load<u8>(hi) | ((q >> 4) << sh));
        }
      }
      out += GROUP_BLOCK;
    }
  }
}

// y[r] = sum over blocks of dot(w row r, x) for rows of groups g0..g1-1 (rows >= nrows dropped).
export function matvecQ4_0R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32): void {
  const nb = k >> 5;
  const m = v128.load(CONST, C_NIB);
  const mh = v128.not(m); // 0xF0: the high nibbles (VNNI)
  const f16s = v128.load(CONST, C_F16S);
  const lo16 = v128.load(CONST, C_LO16);
  const ones16 = v128.load(CONST, C_ONES16);
  let wp = w + <usize>g0 * <usize>nb * GROUP_BLOCK;
  for (let grp = g0; grp < g1; grp++) {
    let f0 = f32x4.splat(0);
    let f1 = f32x4.splat(0);
    let ap = x;
    for (let b = 0; b < nb; b++) {
      let i0: v128, i1: v128;
      if (ASC_FEATURE_RELAXED_SIMD && VNNI) {
        // row-pair layout (repackRowPairs), i32 dot-adds (one vpdpbusd each): L and H start at
        // 17 and 16 x (-8 x sum of the activation quants) (ACT_M136, ACT_M128: written by
        // quantizeAct), so that L - H and H >> 4 carry the nibbles' -8 offset; two chains each (even and odd vectors) halve the dot-add latency per
        // block (in cache 15% faster than the column-pair layout's single chain, 18% with them)
        let h = v128.load32_splat(ap, ACT_M128);
        let l = v128.load32_splat(ap, ACT_M136);
        let l2 = i32x4.splat(0), h2 = l2; // two chains each: half the dot-add latency per block
        for (let g: usize = 0; g < 32; g += 8) {
          const v0 = v128.load(wp + (g << 2), 16), v1 = v128.load(wp + (g << 2), 32);
          const a0 = v128.load32_splat(ap + g), a1 = v128.load32_splat(ap + g, 4);
          l = dotU(v0, a0, l, lo16);
          h = dotU(v128.and(v0, mh), a0, h, lo16);
          l2 = dotU(v1, a1, l2, lo16);
          h2 = dotU(v128.and(v1, mh), a1, h2, lo16);
        }
        l = i32x4.add(l, l2);
        h = i32x4.add(h, h2);
        i0 = i32x4.sub(l, h);
        i1 = i32x4.shr_s(h, 4);
      } else if (ASC_FEATURE_RELAXED_SIMD) {
        // i16 pair sums (pmaddubsw without VNNI) summed over the block, widened once per block
        let v0 = v128.load(wp, 16), v1 = v128.load(wp, 32);
        let al = v128.load32_splat(ap), ah = v128.load32_splat(ap, 16);
        let s0 = i16x8.add(dot16(v128.and(v0, m), al), dot16(v128.and(i16x8.shr_u(v0, 4), m), ah));
        let s1 = i16x8.add(dot16(v128.and(v1, m), al), dot16(v128.and(i16x8.shr_u(v1, 4), m), ah));
        v0 = v128.load(wp, 48); v1 = v128.load(wp, 64);
        al = v128.load32_splat(ap, 4); ah = v128.load32_splat(ap, 20);
        s0 = i16x8.add(s0, i16x8.add(dot16(v128.and(v0, m), al), dot16(v128.and(i16x8.shr_u(v0, 4), m), ah)));
        s1 = i16x8.add(s1, i16x8.add(dot16(v128.and(v1, m), al), dot16(v128.and(i16x8.shr_u(v1, 4), m), ah)));
        v0 = v128.load(wp, 80); v1 = v128.load(wp, 96);
        al = v128.load32_splat(ap, 8); ah = v128.load32_splat(ap, 24);
        s0 = i16x8.add(s0, i16x8.add(dot16(v128.and(v0, m), al), dot16(v128.and(i16x8.shr_u(v0, 4), m), ah)));
        s1 = i16x8.add(s1, i16x8.add(dot16(v128.and(v1, m), al), dot16(v128.and(i16x8.shr_u(v1, 4), m), ah)));
        v0 = v128.load(wp, 112); v1 = v128.load(wp, 128);
        al = v128.load32_splat(ap, 12); ah = v128.load32_splat(ap, 28);
        s0 = i16x8.add(s0, i16x8.add(dot16(v128.and(v0, m), al), dot16(v128.and(i16x8.shr_u(v0, 4), m), ah)));
        s1 = i16x8.add(s1, i16x8.add(dot16(v128.and(v1, m), al), dot16(v128.and(i16x8.shr_u(v1, 4), m), ah)));
        i0 = i32x4.dot_i16x8_s(s0, ones16);
        i1 = i32x4.dot_i16x8_s(s1, ones16);
      } else {
        i0 = i32x4.splat(0); i1 = i32x4.splat(0);
        let j0 = i32x4.splat(0), j1 = i32x4.splat(0);
        for (let g = 0; g < 4; g++) {
          const v0 = v128.load(wp + (<usize>g << 5), 16), v1 = v128.load(wp + (<usize>g << 5), 32);
          const al = v128.load32_splat(ap + (<usize>g << 2)), ah = v128.load32_splat(ap + (<usize>g << 2), 16);
          i0 = dotU(v128.and(v0, m), al, i0, lo16);
          i1 = dotU(v128.and(v1, m), al, i1, lo16);
          j0 = dotU(v128.and(i16x8.shr_u(v0, 4), m), ah, j0, lo16);
          j1 = dotU(v128.and(i16x8.shr_u(v1, 4), m), ah, j1, lo16);
        }
        i0 = i32x4.add(i0, j0);
        i1 = i32x4.add(i1, j1);
      }
      if (!(ASC_FEATURE_RELAXED_SIMD && VNNI)) {
        // nibbles are 0..15: subtract 8 * sum(activation quants) for the -8 offset
        const s8 = i32x4.splat(load<i32>(ap, 36) << 3);
        i0 = i32x4.sub(i0, s8);
        i1 = i32x4.sub(i1, s8);
      }
      const da = v128.load32_splat(ap, ACT_D112);
      const sv = v128.load(wp);
      f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.mul(scale4(sv, 0, f16s), da)));
      f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.mul(scale4(sv, 1, f16s), da)));
      wp += GROUP_BLOCK;
      ap += ACT_BLOCK;
    }
    storeRows8(y, grp << 3, nrows, f0, f1);
  }
}

// The same in the VNNI build's row-pair layout (see repackRowPairs): per token, chains L and H
// over the block's 8 vectors (each split in two, even and odd vectors: half the dot-add latency
// per block, 13% faster in cache than one chain each), one AND per weight vector for both tokens.
@inline
function q4PairRows(wp: usize, ap: usize, astride: usize, nb: i32, y: usize, ystride: usize, r: i32, nrows: i32, mh: v128, f16s: v128): void {
  let e0 = f32x4.splat(0), o0 = f32x4.splat(0), e1 = f32x4.splat(0), o1 = f32x4.splat(0);
  let x0 = ap, x1 = ap + astride;
  for (let b = 0; b < nb; b++) {
    let h0 = v128.load32_splat(x0, ACT_M128), h1 = v128.load32_splat(x1, ACT_M128);
    let l0 = v128.load32_splat(x0, ACT_M136), l1 = v128.load32_splat(x1, ACT_M136);
    let l2 = i32x4.splat(0), h2 = l2, l3 = l2, h3 = l2;
    for (let g: usize = 0; g < 32; g += 8) {
      let v = v128.load(wp + (g << 2), 16), n = v128.and(v, mh);
      let a = v128.load32_splat(x0 + g);
      l0 = dotU(v, a, l0, mh); h0 = dotU(n, a, h0, mh);
      a = v128.load32_splat(x1 + g);
      l1 = dotU(v, a, l1, mh); h1 = dotU(n, a, h1, mh);
      v = v128.load(wp + (g << 2), 32); n = v128.and(v, mh);
      a = v128.load32_splat(x0 + g, 4);
      l2 = dotU(v, a, l2, mh); h2 = dotU(n, a, h2, mh);
      a = v128.load32_splat(x1 + g, 4);
      l3 = dotU(v, a, l3, mh); h3 = dotU(n, a, h3, mh);
    }
    h0 = i32x4.add(h0, h2); h1 = i32x4.add(h1, h3);
    const p0 = i32x4.sub(i32x4.add(l0, l2), h0), q0 = i32x4.shr_s(h0, 4);
    const p1 = i32x4.sub(i32x4.add(l1, l3), h1), q1 = i32x4.shr_s(h1, 4);
    const sv = v128.load(wp);
    const s0 = scale4(sv, 0, f16s), s1 = scale4(sv, 1, f16s);
    let da = v128.load32_splat(x0, ACT_D112);
    e0 = f32x4.add(e0, f32x4.mul(f32x4.convert_i32x4_s(p0), f32x4.mul(s0, da)));
    o0 = f32x4.add(o0, f32x4.mul(f32x4.convert_i32x4_s(q0), f32x4.mul(s1, da)));
    da = v128.load32_splat(x1, ACT_D112);
    e1 = f32x4.add(e1, f32x4.mul(f32x4.convert_i32x4_s(p1), f32x4.mul(s0, da)));
    o1 = f32x4.add(o1, f32x4.mul(f32x4.convert_i32x4_s(q1), f32x4.mul(s1, da)));
    wp += GROUP_BLOCK;
    x0 += ACT_BLOCK;
    x1 += ACT_BLOCK;
  }
  storeRows8(y, r, nrows, e0, o0);
  storeRows8(y + ystride, r, nrows, e1, o1);
}

// The same for 3 tokens (an odd count's last three): one chain of each kind per token (split chains
// would spill), 6% faster in cache than a pair and a lone matvec.
@inline
function q4TripleRows(wp: usize, ap: usize, astride: usize, nb: i32, y: usize, ystride: usize, r: i32, nrows: i32, mh: v128, f16s: v128): void {
  let e0 = f32x4.splat(0), o0 = f32x4.splat(0), e1 = f32x4.splat(0), o1 = f32x4.splat(0), e2 = f32x4.splat(0), o2 = f32x4.splat(0);
  let x0 = ap, x1 = ap + astride, x2 = ap + astride * 2;
  for (let b = 0; b < nb; b++) {
    let h0 = v128.load32_splat(x0, ACT_M128), h1 = v128.load32_splat(x1, ACT_M128), h2 = v128.load32_splat(x2, ACT_M128);
    let l0 = v128.load32_splat(x0, ACT_M136), l1 = v128.load32_splat(x1, ACT_M136), l2 = v128.load32_splat(x2, ACT_M136);
    for (let g: usize = 0; g < 32; g += 4) {
      const v = v128.load(wp + (g << 2), 16), n = v128.and(v, mh);
      let a = v128.load32_splat(x0 + g);
      l0 = dotU(v, a, l0, mh); h0 = dotU(n, a, h0, mh);
      a = v128.load32_splat(x1 + g);
      l1 = dotU(v, a, l1, mh); h1 = dotU(n, a, h1, mh);
      a = v128.load32_splat(x2 + g);
      l2 = dotU(v, a, l2, mh); h2 = dotU(n, a, h2, mh);
    }
    const sv = v128.load(wp);
    const s0 = scale4(sv, 0, f16s), s1 = scale4(sv, 1, f16s);
    let da = v128.load32_splat(x0, ACT_D112);
    e0 = f32x4.add(e0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(l0, h0)), f32x4.mul(s0, da)));
    o0 = f32x4.add(o0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.shr_s(h0, 4)), f32x4.mul(s1, da)));
    da = v128.load32_splat(x1, ACT_D112);
    e1 = f32x4.add(e1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(l1, h1)), f32x4.mul(s0, da)));
    o1 = f32x4.add(o1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.shr_s(h1, 4)), f32x4.mul(s1, da)));
    da = v128.load32_splat(x2, ACT_D112);
    e2 = f32x4.add(e2, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(l2, h2)), f32x4.mul(s0, da)));
    o2 = f32x4.add(o2, f32x4.mul(f32x4.convert_i32x4_s(i32x4.shr_s(h2, 4)), f32x4.mul(s1, da)));
    wp += GROUP_BLOCK;
    x0 += ACT_BLOCK;
    x1 += ACT_BLOCK;
    x2 += ACT_BLOCK;
  }
  storeRows8(y, r, nrows, e0, o0);
  storeRows8(y + ystride, r, nrows, e1, o1);
  storeRows8(y + ystride * 2, r, nrows, e2, o2);
}

// 8 rows (a whole group) x 2 tokens: each weight vector is loaded and its nibbles unpacked once
// per block for both tokens, and each activation splat serves all 8 rows (4-token tiles of 4-row
// halves unpacked per half and reloaded the activations for each half). The i32 sums start at
// -8 * sum of the activation quants (the nibbles' offset) and take the low and high nibbles' dots;
// the float arithmetic per block is matvecQ4_0R8's, in the same order: bit-identical results.
@inline
function q4Pair(wp: usize, ap: usize, astride: usize, nb: i32, y: usize, ystride: usize, r: i32, nrows: i32, m: v128, lo16: v128, ones16: v128, f16s: v128): void {
  let e0 = f32x4.splat(0), o0 = f32x4.splat(0), e1 = f32x4.splat(0), o1 = f32x4.splat(0);
  const a1 = ap + astride;
  for (let b: usize = 0; b < <usize>nb; b++) {
    const bo = b * ACT_BLOCK;
    let p0: v128, q0: v128, p1: v128, q1: v128;
    if (ASC_FEATURE_RELAXED_SIMD && !VNNI) {
      p0 = i32x4.splat(0); q0 = p0; p1 = p0; q1 = p0;
    } else {
      p0 = i32x4.splat(-(load<i32>(ap + bo, 36) << 3)); q0 = p0;
      p1 = i32x4.splat(-(load<i32>(a1 + bo, 36) << 3)); q1 = p1;
    }
    for (let g: usize = 0; g < 16; g += 4) {
      const v0 = v128.load(wp + (g << 3), 16), v1 = v128.load(wp + (g << 3), 32);
      const l0 = v128.and(v0, m), h0 = v128.and(i16x8.shr_u(v0, 4), m);
      const l1 = v128.and(v1, m), h1 = v128.and(i16x8.shr_u(v1, 4), m);
      const c = bo + g;
      if (ASC_FEATURE_RELAXED_SIMD && !VNNI) { // i16 sums over the block (see matvecQ4_0R8)
        let al = v128.load32_splat(ap + c), ah = v128.load32_splat(ap + c, 16);
        p0 = i16x8.add(p0, i16x8.add(dot16(l0, al), dot16(h0, ah)));
        q0 = i16x8.add(q0, i16x8.add(dot16(l1, al), dot16(h1, ah)));
        al = v128.load32_splat(a1 + c); ah = v128.load32_splat(a1 + c, 16);
        p1 = i16x8.add(p1, i16x8.add(dot16(l0, al), dot16(h0, ah)));
        q1 = i16x8.add(q1, i16x8.add(dot16(l1, al), dot16(h1, ah)));
      } else {
        let al = v128.load32_splat(ap + c), ah = v128.load32_splat(ap + c, 16);
        p0 = dotU(l0, al, p0, lo16); q0 = dotU(l1, al, q0, lo16);
        p0 = dotU(h0, ah, p0, lo16); q0 = dotU(h1, ah, q0, lo16);
        al = v128.load32_splat(a1 + c); ah = v128.load32_splat(a1 + c, 16);
        p1 = dotU(l0, al, p1, lo16); q1 = dotU(l1, al, q1, lo16);
        p1 = dotU(h0, ah, p1, lo16); q1 = dotU(h1, ah, q1, lo16);
      }
    }
    if (ASC_FEATURE_RELAXED_SIMD && !VNNI) {
      let s = i32x4.splat(load<i32>(ap + bo, 36) << 3);
      p0 = i32x4.sub(i32x4.dot_i16x8_s(p0, ones16), s); q0 = i32x4.sub(i32x4.dot_i16x8_s(q0, ones16), s);
      s = i32x4.splat(load<i32>(a1 + bo, 36) << 3);
      p1 = i32x4.sub(i32x4.dot_i16x8_s(p1, ones16), s); q1 = i32x4.sub(i32x4.dot_i16x8_s(q1, ones16), s);
    }
    const sv = v128.load(wp);
    const s0 = scale4(sv, 0, f16s), s1 = scale4(sv, 1, f16s);
    let da = v128.load32_splat(ap + bo, ACT_D112);
    e0 = f32x4.add(e0, f32x4.mul(f32x4.convert_i32x4_s(p0), f32x4.mul(s0, da)));
    o0 = f32x4.add(o0, f32x4.mul(f32x4.convert_i32x4_s(q0), f32x4.mul(s1, da)));
    da = v128.load32_splat(a1 + bo, ACT_D112);
    e1 = f32x4.add(e1, f32x4.mul(f32x4.convert_i32x4_s(p1), f32x4.mul(s0, da)));
    o1 = f32x4.add(o1, f32x4.mul(f32x4.convert_i32x4_s(q1), f32x4.mul(s1, da)));
    wp += GROUP_BLOCK;
  }
  storeRows8(y, r, nrows, e0, o0);
  storeRows8(y + ystride, r, nrows, e1, o1);
}

// 8 rows x 3 tokens (an odd batch's last three), in the same arithmetic: each block does rows 0..3
// for the three tokens, then rows 4..7, so that three i32 sums, one unpacked weight vector and the
// six f32 sums fit in the 15 vector registers V8 allocates (a pair's layout for three tokens
// spills). A third token this way costs about 0.8 of a pair's second, where a lone token after
// the pairs (the matvec again) cost a whole one: 3 tokens 2.07x one token in cache, was 2.27x.
@inline
function q4Triple(wp: usize, ap: usize, astride: usize, nb: i32, y: usize, ystride: usize, r: i32, nrows: i32, m: v128, lo16: v128, ones16: v128, f16s: v128): void {
  let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0);
  let o0 = f32x4.splat(0), o1 = f32x4.splat(0), o2 = f32x4.splat(0);
  const a1 = ap + astride, a2 = ap + astride * 2;
  for (let b: usize = 0; b < <usize>nb; b++) {
    const bo = b * ACT_BLOCK;
    const sv = v128.load(wp);
    let p0: v128, p1: v128, p2: v128, sc: v128;
    // rows 0..3
    if (ASC_FEATURE_RELAXED_SIMD && !VNNI) { // i16 sums over the block (see matvecQ4_0R8), widened once
      p0 = i32x4.splat(0); p1 = p0; p2 = p0;
      for (let g: usize = 0; g < 16; g += 4) {
        const v = v128.load(wp + (g << 3), 16);
        const l = v128.and(v, m), h = v128.and(i16x8.shr_u(v, 4), m);
        const c = bo + g;
        p0 = i16x8.add(p0, i16x8.add(dot16(l, v128.load32_splat(ap + c)), dot16(h, v128.load32_splat(ap + c, 16))));
        p1 = i16x8.add(p1, i16x8.add(dot16(l, v128.load32_splat(a1 + c)), dot16(h, v128.load32_splat(a1 + c, 16))));
        p2 = i16x8.add(p2, i16x8.add(dot16(l, v128.load32_splat(a2 + c)), dot16(h, v128.load32_splat(a2 + c, 16))));
      }
      p0 = i32x4.sub(i32x4.dot_i16x8_s(p0, ones16), i32x4.splat(load<i32>(ap + bo, 36) << 3));
      p1 = i32x4.sub(i32x4.dot_i16x8_s(p1, ones16), i32x4.splat(load<i32>(a1 + bo, 36) << 3));
      p2 = i32x4.sub(i32x4.dot_i16x8_s(p2, ones16), i32x4.splat(load<i32>(a2 + bo, 36) << 3));
    } else {
      p0 = i32x4.splat(-(load<i32>(ap + bo, 36) << 3));
      p1 = i32x4.splat(-(load<i32>(a1 + bo, 36) << 3));
      p2 = i32x4.splat(-(load<i32>(a2 + bo, 36) << 3));
      for (let g: usize = 0; g < 16; g += 4) {
        const v = v128.load(wp + (g << 3), 16);
        const l = v128.and(v, m), h = v128.and(i16x8.shr_u(v, 4), m);
        const c = bo + g;
        p0 = dotU(l, v128.load32_splat(ap + c), p0, lo16);
        p1 = dotU(l, v128.load32_splat(a1 + c), p1, lo16);
        p2 = dotU(l, v128.load32_splat(a2 + c), p2, lo16);
        p0 = dotU(h, v128.load32_splat(ap + c, 16), p0, lo16);
        p1 = dotU(h, v128.load32_splat(a1 + c, 16), p1, lo16);
        p2 = dotU(h, v128.load32_splat(a2 + c, 16), p2, lo16);
      }
    }
    sc = scale4(sv, 0, f16s);
    e0 = f32x4.add(e0, f32x4.mul(f32x4.convert_i32x4_s(p0), f32x4.mul(sc, v128.load32_splat(ap + bo, ACT_D112))));
    e1 = f32x4.add(e1, f32x4.mul(f32x4.convert_i32x4_s(p1), f32x4.mul(sc, v128.load32_splat(a1 + bo, ACT_D112))));
    e2 = f32x4.add(e2, f32x4.mul(f32x4.convert_i32x4_s(p2), f32x4.mul(sc, v128.load32_splat(a2 + bo, ACT_D112))));
    // rows 4..7
    if (ASC_FEATURE_RELAXED_SIMD && !VNNI) { // i16 sums over the block (see matvecQ4_0R8), widened once
      p0 = i32x4.splat(0); p1 = p0; p2 = p0;
      for (let g: usize = 0; g < 16; g += 4) {
        const v = v128.load(wp + (g << 3), 32);
        const l = v128.and(v, m), h = v128.and(i16x8.shr_u(v, 4), m);
        const c = bo + g;
        p0 = i16x8.add(p0, i16x8.add(dot16(l, v128.load32_splat(ap + c)), dot16(h, v128.load32_splat(ap + c, 16))));
        p1 = i16x8.add(p1, i16x8.add(dot16(l, v128.load32_splat(a1 + c)), dot16(h, v128.load32_splat(a1 + c, 16))));
        p2 = i16x8.add(p2, i16x8.add(dot16(l, v128.load32_splat(a2 + c)), dot16(h, v128.load32_splat(a2 + c, 16))));
      }
      p0 = i32x4.sub(i32x4.dot_i16x8_s(p0, ones16), i32x4.splat(load<i32>(ap + bo, 36) << 3));
      p1 = i32x4.sub(i32x4.dot_i16x8_s(p1, ones16), i32x4.splat(load<i32>(a1 + bo, 36) << 3));
      p2 = i32x4.sub(i32x4.dot_i16x8_s(p2, ones16), i32x4.splat(load<i32>(a2 + bo, 36) << 3));
    } else {
      p0 = i32x4.splat(-(load<i32>(ap + bo, 36) << 3));
      p1 = i32x4.splat(-(load<i32>(a1 + bo, 36) << 3));
      p2 = i32x4.splat(-(load<i32>(a2 + bo, 36) << 3));
      for (let g: usize = 0; g < 16; g += 4) {
        const v = v128.load(wp + (g << 3), 32);
        const l = v128.and(v, m), h = v128.and(i16x8.shr_u(v, 4), m);
        const c = bo + g;
        p0 = dotU(l, v128.load32_splat(ap + c), p0, lo16);
        p1 = dotU(l, v128.load32_splat(a1 + c), p1, lo16);
        p2 = dotU(l, v128.load32_splat(a2 + c), p2, lo16);
        p0 = dotU(h, v128.load32_splat(ap + c, 16), p0, lo16);
        p1 = dotU(h, v128.load32_splat(a1 + c, 16), p1, lo16);
        p2 = dotU(h, v128.load32_splat(a2 + c, 16), p2, lo16);
      }
    }
    sc = scale4(sv, 1, f16s);
    o0 = f32x4.add(o0, f32x4.mul(f32x4.convert_i32x4_s(p0), f32x4.mul(sc, v128.load32_splat(ap + bo, ACT_D112))));
    o1 = f32x4.add(o1, f32x4.mul(f32x4.convert_i32x4_s(p1), f32x4.mul(sc, v128.load32_splat(a1 + bo, ACT_D112))));
    o2 = f32x4.add(o2, f32x4.mul(f32x4.convert_i32x4_s(p2), f32x4.mul(sc, v128.load32_splat(a2 + bo, ACT_D112))));
    wp += GROUP_BLOCK;
  }
  storeRows8(y, r, nrows, e0, o0);
  storeRows8(y + ystride, r, nrows, e1, o1);
  storeRows8(y + ystride * 2, r, nrows, e2, o2);
}

// ntok activation rows (x, stride k/32 blocks) -> y[t*nrows + r]: one token is the decode matvec;
// more go in pairs over each group's weights (which stay in cache between passes), an odd count's
// last three in a triple. Column-pair layout (without VNNI), measured in cache on 1 thread (AMD
// EPYC) relative to one token: 2 tokens 1.25-1.29x, 3 tokens 2.07x, 5 tokens 3.3x, 9 tokens 5.8x
// (4-token tiles of 4-row halves: 1.65x, 2.65x, 3.9x, 6.9x; 4-token tiles of whole groups spill;
// a 4-token tile over 4-row halves with i32 chains from the offset: 3.55x vs 2.99x for two pairs).
// VNNI build, row pairs, 896 x 896 in cache: 1 token 1.9 ms per 169 matvecs (column pairs: 2.4),
// 2 tokens 1.7x that (3.3 ms; column pairs 3.6-3.9), 3 tokens 2.6x (5.0 ms; 6.0-6.4).
// Each pair runs over a chunk of groups (chunkGroups) before the next pair. Streaming Qwen2-0.5B's
// ffn_gate/up (1 thread, VNNI) this took 13 tokens from 44.3 to 38.0 ms, 8 from 30.4 to 24.4 (in
// cache: 30.4 and 18.7): group by group, the later pairs were fast but every group's first pair
// stalled on memory, the stream restarting at each group (the prefetcher does not run ahead).
export function matmulQ4_0R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32, ntok: i32): void {
  if (ntok == 1) {
    matvecQ4_0R8(w, x, y, k, g0, g1, nrows);
    return;
  }
  const nb = k >> 5;
  // the pairs' nibble mask: 0x0F, or 0xF0 in the VNNI build (the high nibbles, see repackRowPairs)
  const m = ASC_FEATURE_RELAXED_SIMD && VNNI ? v128.not(v128.load(CONST, C_NIB)) : v128.load(CONST, C_NIB);
  const lo16 = v128.load(CONST, C_LO16);
  const ones16 = v128.load(CONST, C_ONES16);
  const f16s = v128.load(CONST, C_F16S);
  const gstride = <usize>nb * GROUP_BLOCK;
  const astride = <usize>nb * ACT_BLOCK;
  const ystride = <usize>nrows << 2;
  const chunk = chunkGroups(gstride);
  for (let c0 = g0; c0 < g1; c0 += chunk) {
    const c1 = min(g1, c0 + chunk);
    let t = 0;
    if (ASC_FEATURE_RELAXED_SIMD && VNNI) { // pairs, an odd count's last three as a triple
      for (; t + 2 <= ntok && t + 3 != ntok; t += 2) {
        for (let grp = c0; grp < c1; grp++) q4PairRows(w + <usize>grp * gstride, x + <usize>t * astride, astride, nb, y + <usize>t * ystride, ystride, grp << 3, nrows, m, f16s);
      }
      if (t + 3 == ntok) {
        for (let grp = c0; grp < c1; grp++) q4TripleRows(w + <usize>grp * gstride, x + <usize>t * astride, astride, nb, y + <usize>t * ystride, ystride, grp << 3, nrows, m, f16s);
      }
      continue;
    }
    for (; t + 2 <= ntok && t + 3 != ntok; t += 2) {
      for (let grp = c0; grp < c1; grp++) q4Pair(w + <usize>grp * gstride, x + <usize>t * astride, astride, nb, y + <usize>t * ystride, ystride, grp << 3, nrows, m, lo16, ones16, f16s);
    }
    if (t + 3 == ntok) {
      for (let grp = c0; grp < c1; grp++) q4Triple(w + <usize>grp * gstride, x + <usize>t * astride, astride, nb, y + <usize>t * ystride, ystride, grp << 3, nrows, m, lo16, ones16, f16s);
    }
  }
}

// Original llama.cpp layout (18-byte blocks), one row at a time: the baseline the repacked layout
// is measured against, and the path for weights that are not repacked.
export function matvecQ4_0(w: usize, x: usize, y: usize, k: i32, r0: i32, r1: i32): void {
  const nb = k >> 5;
  const m = v128.load(CONST, C_NIB);
  const lo16 = v128.load(CONST, C_LO16);
  const ones16 = v128.load(CONST, C_ONES16);
  const rowBytes = <usize>nb * 18;
  let wp = w + <usize>r0 * rowBytes;
  for (let r = r0; r < r1; r++) {
    let f = f32x4.splat(0);
    let ap = x;
    for (let b = 0; b < nb; b++) {
      const q = v128.load(wp, 2);
      let acc: v128;
      if (ASC_FEATURE_RELAXED_SIMD) {
        acc = i32x4.dot_i16x8_s(i16x8.add(dot16(v128.and(q, m), v128.load(ap)), dot16(v128.and(i16x8.shr_u(q, 4), m), v128.load(ap, 16))), ones16);
      } else {
        acc = dotU(v128.and(q, m), v128.load(ap), i32x4.splat(0), lo16);
        acc = dotU(v128.and(i16x8.shr_u(q, 4), m), v128.load(ap, 16), acc, lo16);
      }
      acc = i32x4.sub(acc, i32x4.replace_lane(i32x4.splat(0), 0, load<i32>(ap, 36) << 3));
      const d = f16ToF32(<u32>load<u16>(wp)) * load<f32>(ap, 32);
      f = f32x4.add(f, f32x4.mul(f32x4.convert_i32x4_s(acc), f32x4.splat(d)));
      wp += 18;
      ap += ACT_BLOCK;
    }
    store<f32>(y + (<usize>r << 2), hsum(f));
  }
}
