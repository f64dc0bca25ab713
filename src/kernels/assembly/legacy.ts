// Q4_1, Q5_0, Q5_1 and IQ4_NL weights x Q8 activations (the 64-byte activation blocks of
// quantizeAct: 32 int8 @0, f32 d @32, i32 sum @36, f32 s @40 = f16(d_unrounded * sum)).
//
// All four use 8-row interleaved layouts in the spirit of Q4_0R8 (see q4_0.ts): rows in groups of
// 8 (the last group padded with zero rows), per group and block of 32 columns: f32 scales, then
// the 128 nibble bytes as 8 vectors P(g, h), g = 0..3, h = 0..1, at NIB + 32g + 16h, where byte
// 4k+i of P(g, h) is byte 4g+i of the llama.cpp quants of row 4h+k (low nibble = column 4g+i,
// high nibble = column 16+4g+i). A dot of P with 4 activation bytes splatted to every lane gives
// one i32 per row: no horizontal sums, one sequential stream per thread.
//
//   Q4_1R8   192 bytes: d[8] f32 @0, m[8] f32 @32, nibbles @64
//   Q5_0R8   192 bytes: d[8] f32 @0, H(0), H(1) @32, nibbles @64
//   Q5_1R8   224 bytes: d[8] f32 @0, m[8] f32 @32, H(0), H(1) @64, nibbles @96
//   IQ4_NLR8 144 bytes: d[8] f16 @0 (as Q4_0R8's, see scale4), nibbles @16 (the column-pair layout
//            of Q4_0R8 without VNNI: repackIQ4_NL in q4_0.ts repacks it)
//
// Fifth bits: byte 4k+i of H(h) holds, for row 4h+k, in bit g the fifth bit of column 4g+i and in
// bit 4+g that of column 16+4g+i (g = 0..3). Moving bit g (or 4+g) of each byte to bit 4 is one
// 16-bit shift and an AND with 0x10 (bits never cross a byte boundary for these shift counts).
//
// Integer sums: 5-bit values are 0..31 (Q5_0's -16 is applied once per block through the
// activation quant sum), so a relaxed i16 pair dot is at most 2*31*127 = 7874 and four of them
// fit in i16 before widening. IQ4_NL's table values are -127..113: the relaxed path looks up |v|
// and the sign mask (two swizzles) and moves the sign onto the activation, as dotS does.
import { CONST, C_NIB, C_LO16, C_ONES16, C_F16S, ACT_BLOCK, ACT_D112, f16ToF32, dotU, dotS, dot16, scale4, storeRows4, storeRows8 } from "./common";

// Constants of this file at CONST + 512 .. CONST + 575 (absolute 1536..1599, inside the range
// 1536..2559 of the legacy/float kernels, see common.ts). Written by the kernels themselves at entry
// (idempotent, a few stores per call) so that no loader change is needed; loaded into locals.
const L_X10: usize = 512; // i8x16 0x10
const L_IQ4ABS: usize = 528; // |kvalues_iq4nl|
const L_IQ4SGN: usize = 544; // 0xFF where kvalues_iq4nl < 0
const L_IQ4VAL: usize = 560; // kvalues_iq4nl (int8)

@inline
function writeConsts(): void {
  v128.store(CONST + L_X10, i8x16.splat(0x10));
  v128.store(CONST + L_IQ4ABS, i8x16(127, 104, 83, 65, 49, 35, 22, 10, 1, 13, 25, 38, 53, 69, 89, 113));
  v128.store(CONST + L_IQ4SGN, i8x16(-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0));
  v128.store(CONST + L_IQ4VAL, i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113));
}

// Kinds (compile-time constants after inlining).
const K_Q4_1: i32 = 0;
const K_Q5_0: i32 = 1;
const K_Q5_1: i32 = 2;
const K_IQ4: i32 = 3;

@inline function groupBlock(kind: i32): usize { return kind == K_Q5_1 ? 224 : kind == K_IQ4 ? 144 : 192; }
@inline function nibOff(kind: i32): usize { return kind == K_Q5_1 ? 96 : kind == K_IQ4 ? 16 : 64; }
@inline function hiOff(kind: i32): usize { return kind == K_Q5_1 ? 64 : 32; }
@inline function hasMin(kind: i32): bool { return kind == K_Q4_1 || kind == K_Q5_1; }
@inline function five(kind: i32): bool { return kind == K_Q5_0 || kind == K_Q5_1; }

// ---------------------------------------------------------------------------------------------
// Repacking (load time)

// Byte i of H for one row from qh >> i: bit g <- bit 4g, bit 4+g <- bit 16+4g (g = 0..3).
@inline
function hiBits(x: u32): u32 {
  x &= 0x11111111;
  return (x & 1) | ((x >> 3) & 2) | ((x >> 6) & 4) | ((x >> 9) & 8)
    | ((x >> 12) & 16) | ((x >> 15) & 32) | ((x >> 18) & 64) | ((x >> 21) & 128);
}

// Source block layouts (llama.cpp): Q4_1 d@0 m@2 qs@4 (20 B); Q5_0 d@0 qh@2 qs@6 (22 B);
// Q5_1 d@0 m@2 qh@4 qs@8 (24 B).
@inline
function repack(src: usize, dst: usize, nrows: i32, k: i32, kind: i32): void {
  const nb = k >> 5;
  const sb: usize = kind == K_Q4_1 ? 20 : kind == K_Q5_0 ? 22 : 24;
  const qsOff: usize = kind == K_Q4_1 ? 4 : kind == K_Q5_0 ? 6 : 8;
  const GB = groupBlock(kind), NIB = nibOff(kind), HOFF = hiOff(kind);
  const rowBytes = <usize>nb * sb;
  const ngroups = (nrows + 7) >> 3;
  let out = dst;
  for (let grp = 0; grp < ngroups; grp++) {
    for (let b = 0; b < nb; b++) {
      for (let r = 0; r < 8; r++) {
        const row = grp * 8 + r;
        const lane = (<usize>(r >> 2) << 4) + (<usize>(r & 3) << 2);
        const tile = out + NIB + lane;
        if (row < nrows) {
          const s = src + <usize>row * rowBytes + <usize>b * sb;
          store<f32>(out + (<usize>r << 2), f16ToF32(<u32>load<u16>(s)));
          if (hasMin(kind)) store<f32>(out + 32 + (<usize>r << 2), f16ToF32(<u32>load<u16>(s, 2)));
          store<u32>(tile, load<u32>(s + qsOff));
          store<u32>(tile, load<u32>(s + qsOff, 4), 32);
          store<u32>(tile, load<u32>(s + qsOff, 8), 64);
          store<u32>(tile, load<u32>(s + qsOff, 12), 96);
          if (five(kind)) {
            const qh = load<u32>(s + (kind == K_Q5_0 ? 2 : 4));
            store<u32>(out + HOFF + lane, hiBits(qh) | (hiBits(qh >> 1) << 8) | (hiBits(qh >> 2) << 16) | (hiBits(qh >> 3) << 24));
          }
        } else {
          store<f32>(out + (<usize>r << 2), 0);
          if (hasMin(kind)) store<f32>(out + 32 + (<usize>r << 2), 0);
          store<u32>(tile, 0);
          store<u32>(tile, 0, 32);
          store<u32>(tile, 0, 64);
          store<u32>(tile, 0, 96);
          if (five(kind)) store<u32>(out + HOFF + lane, 0);
        }
      }
      out += GB;
    }
  }
}

export function repackQ4_1(src: usize, dst: usize, nrows: i32, k: i32): void { repack(src, dst, nrows, k, K_Q4_1); }
export function repackQ5_0(src: usize, dst: usize, nrows: i32, k: i32): void { repack(src, dst, nrows, k, K_Q5_0); }
export function repackQ5_1(src: usize, dst: usize, nrows: i32, k: i32): void { repack(src, dst, nrows, k, K_Q5_1); }

// ---------------------------------------------------------------------------------------------
// Weight decoding of one vector P(g, h): the values of columns 4g+i (lo) and 16+4g+i (hi).

// 5-bit: hl = H << (4 - g), hh = H >> g (16-bit shifts); bit 4 of each byte is the fifth bit.
@inline function lo5(v: v128, hl: v128, m: v128, x10: v128): v128 { return v128.or(v128.and(v, m), v128.and(hl, x10)); }
@inline function hi5(v: v128, hh: v128, m: v128, x10: v128): v128 { return v128.or(v128.and(i16x8.shr_u(v, 4), m), v128.and(hh, x10)); }

// IQ4_NL relaxed: sum over lanes of |w| * (a with w's sign) per i16 pair, widened to i32.
@inline
function iq4Dot(idx: v128, a: v128, acc: v128, tabs: v128, tsgn: v128, tval: v128, ones16: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const s = i8x16.relaxed_swizzle(tsgn, idx);
    const as = i8x16.sub(v128.xor(a, s), s);
    return i32x4.add(acc, i32x4.dot_i16x8_s(dot16(i8x16.relaxed_swizzle(tabs, idx), as), ones16));
  } else {
    return dotS(i8x16.swizzle(tval, idx), a, acc, ones16);
  }
}

// ---------------------------------------------------------------------------------------------
// Decode: y[r] = W[r]·x for the rows of 8-row groups g0..g1-1 (rows >= nrows dropped).

@inline
function matvecR8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32, kind: i32): void {
  writeConsts();
  const nb = k >> 5;
  const m = v128.load(CONST, C_NIB);
  const lo16 = v128.load(CONST, C_LO16);
  const ones16 = v128.load(CONST, C_ONES16);
  const x10 = v128.load(CONST, L_X10);
  const tabs = v128.load(CONST, L_IQ4ABS), tsgn = v128.load(CONST, L_IQ4SGN), tval = v128.load(CONST, L_IQ4VAL);
  const f16s = v128.load(CONST, C_F16S);
  const GB = groupBlock(kind), NIB = nibOff(kind), HOFF = hiOff(kind);
  let wp = w + <usize>g0 * <usize>nb * GB;
  for (let grp = g0; grp < g1; grp++) {
    let f0 = f32x4.splat(0), f1 = f32x4.splat(0);
    let e0 = f32x4.splat(0), e1 = f32x4.splat(0);
    let ap = x;
    for (let b = 0; b < nb; b++) {
      const q = wp + NIB;
      let i0 = i32x4.splat(0), i1 = i32x4.splat(0);
      if (kind == K_IQ4) {
        for (let g = 0; g < 4; g++) {
          const v0 = v128.load(q + (<usize>g << 5)), v1 = v128.load(q + (<usize>g << 5), 16);
          const al = v128.load32_splat(ap + (<usize>g << 2)), ah = v128.load32_splat(ap + (<usize>g << 2), 16);
          i0 = iq4Dot(v128.and(v0, m), al, i0, tabs, tsgn, tval, ones16);
          i1 = iq4Dot(v128.and(v1, m), al, i1, tabs, tsgn, tval, ones16);
          i0 = iq4Dot(v128.and(i16x8.shr_u(v0, 4), m), ah, i0, tabs, tsgn, tval, ones16);
          i1 = iq4Dot(v128.and(i16x8.shr_u(v1, 4), m), ah, i1, tabs, tsgn, tval, ones16);
        }
      } else if (five(kind)) {
        const H0 = v128.load(wp + HOFF), H1 = v128.load(wp + HOFF, 16);
        if (ASC_FEATURE_RELAXED_SIMD) {
          // g = 0, 1 summed in i16 (4 pair dots <= 31496), widened; then g = 2, 3
          let v0 = v128.load(q), v1 = v128.load(q, 16);
          let al = v128.load32_splat(ap), ah = v128.load32_splat(ap, 16);
          let s0 = i16x8.add(dot16(lo5(v0, i16x8.shl(H0, 4), m, x10), al), dot16(hi5(v0, H0, m, x10), ah));
          let s1 = i16x8.add(dot16(lo5(v1, i16x8.shl(H1, 4), m, x10), al), dot16(hi5(v1, H1, m, x10), ah));
          v0 = v128.load(q, 32); v1 = v128.load(q, 48);
          al = v128.load32_splat(ap, 4); ah = v128.load32_splat(ap, 20);
          s0 = i16x8.add(s0, i16x8.add(dot16(lo5(v0, i16x8.shl(H0, 3), m, x10), al), dot16(hi5(v0, i16x8.shr_u(H0, 1), m, x10), ah)));
          s1 = i16x8.add(s1, i16x8.add(dot16(lo5(v1, i16x8.shl(H1, 3), m, x10), al), dot16(hi5(v1, i16x8.shr_u(H1, 1), m, x10), ah)));
          i0 = i32x4.dot_i16x8_s(s0, ones16);
          i1 = i32x4.dot_i16x8_s(s1, ones16);
          v0 = v128.load(q, 64); v1 = v128.load(q, 80);
          al = v128.load32_splat(ap, 8); ah = v128.load32_splat(ap, 24);
          s0 = i16x8.add(dot16(lo5(v0, i16x8.shl(H0, 2), m, x10), al), dot16(hi5(v0, i16x8.shr_u(H0, 2), m, x10), ah));
          s1 = i16x8.add(dot16(lo5(v1, i16x8.shl(H1, 2), m, x10), al), dot16(hi5(v1, i16x8.shr_u(H1, 2), m, x10), ah));
          v0 = v128.load(q, 96); v1 = v128.load(q, 112);
          al = v128.load32_splat(ap, 12); ah = v128.load32_splat(ap, 28);
          s0 = i16x8.add(s0, i16x8.add(dot16(lo5(v0, i16x8.shl(H0, 1), m, x10), al), dot16(hi5(v0, i16x8.shr_u(H0, 3), m, x10), ah)));
          s1 = i16x8.add(s1, i16x8.add(dot16(lo5(v1, i16x8.shl(H1, 1), m, x10), al), dot16(hi5(v1, i16x8.shr_u(H1, 3), m, x10), ah)));
          i0 = i32x4.add(i0, i32x4.dot_i16x8_s(s0, ones16));
          i1 = i32x4.add(i1, i32x4.dot_i16x8_s(s1, ones16));
        } else {
          let hl0 = i16x8.shl(H0, 4), hl1 = i16x8.shl(H1, 4), hh0 = H0, hh1 = H1;
          for (let g = 0; g < 4; g++) {
            const v0 = v128.load(q + (<usize>g << 5)), v1 = v128.load(q + (<usize>g << 5), 16);
            const al = v128.load32_splat(ap + (<usize>g << 2)), ah = v128.load32_splat(ap + (<usize>g << 2), 16);
            i0 = dotU(lo5(v0, hl0, m, x10), al, i0, lo16);
            i1 = dotU(lo5(v1, hl1, m, x10), al, i1, lo16);
            i0 = dotU(hi5(v0, hh0, m, x10), ah, i0, lo16);
            i1 = dotU(hi5(v1, hh1, m, x10), ah, i1, lo16);
            hl0 = i16x8.shr_u(hl0, 1); hl1 = i16x8.shr_u(hl1, 1);
            hh0 = i16x8.shr_u(hh0, 1); hh1 = i16x8.shr_u(hh1, 1);
          }
        }
      } else { // Q4_1: as Q4_0 without the -8
        if (ASC_FEATURE_RELAXED_SIMD) {
          let s0 = i16x8.splat(0), s1 = i16x8.splat(0);
          for (let g = 0; g < 4; g++) {
            const v0 = v128.load(q + (<usize>g << 5)), v1 = v128.load(q + (<usize>g << 5), 16);
            const al = v128.load32_splat(ap + (<usize>g << 2)), ah = v128.load32_splat(ap + (<usize>g << 2), 16);
            s0 = i16x8.add(s0, i16x8.add(dot16(v128.and(v0, m), al), dot16(v128.and(i16x8.shr_u(v0, 4), m), ah)));
            s1 = i16x8.add(s1, i16x8.add(dot16(v128.and(v1, m), al), dot16(v128.and(i16x8.shr_u(v1, 4), m), ah)));
          }
          i0 = i32x4.dot_i16x8_s(s0, ones16);
          i1 = i32x4.dot_i16x8_s(s1, ones16);
        } else {
          for (let g = 0; g < 4; g++) {
            const v0 = v128.load(q + (<usize>g << 5)), v1 = v128.load(q + (<usize>g << 5), 16);
            const al = v128.load32_splat(ap + (<usize>g << 2)), ah = v128.load32_splat(ap + (<usize>g << 2), 16);
            i0 = dotU(v128.and(v0, m), al, i0, lo16);
            i1 = dotU(v128.and(v1, m), al, i1, lo16);
            i0 = dotU(v128.and(i16x8.shr_u(v0, 4), m), ah, i0, lo16);
            i1 = dotU(v128.and(i16x8.shr_u(v1, 4), m), ah, i1, lo16);
          }
        }
      }
      if (kind == K_Q5_0) { // values are q + 16
        const s16 = i32x4.splat(load<i32>(ap, 36) << 4);
        i0 = i32x4.sub(i0, s16);
        i1 = i32x4.sub(i1, s16);
      }
      const da = f32x4.splat(kind == K_IQ4 ? load<f32>(ap, ACT_D112) : load<f32>(ap, 32));
      const sc0 = kind == K_IQ4 ? scale4(v128.load(wp), 0, f16s) : v128.load(wp);
      const sc1 = kind == K_IQ4 ? scale4(v128.load(wp), 1, f16s) : v128.load(wp, 16);
      f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.mul(sc0, da)));
      f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.mul(sc1, da)));
      if (hasMin(kind)) { // m_w * s_a in a separate sum (llama.cpp's order)
        const sa = f32x4.splat(load<f32>(ap, 40));
        e0 = f32x4.add(e0, f32x4.mul(v128.load(wp, 32), sa));
        e1 = f32x4.add(e1, f32x4.mul(v128.load(wp, 48), sa));
      }
      wp += GB;
      ap += ACT_BLOCK;
    }
    if (hasMin(kind)) {
      f0 = f32x4.add(f0, e0);
      f1 = f32x4.add(f1, e1);
    }
    storeRows8(y, grp << 3, nrows, f0, f1);
  }
}

export function matvecQ4_1R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32): void { matvecR8(w, x, y, k, g0, g1, nrows, K_Q4_1); }
export function matvecQ5_0R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32): void { matvecR8(w, x, y, k, g0, g1, nrows, K_Q5_0); }
export function matvecQ5_1R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32): void { matvecR8(w, x, y, k, g0, g1, nrows, K_Q5_1); }
export function matvecIQ4_NLR8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32): void { matvecR8(w, x, y, k, g0, g1, nrows, K_IQ4); }

// ---------------------------------------------------------------------------------------------
// Prefill: 4 rows (half h of a group, h = 0 or 16 bytes) x 4 tokens per pass over the weights;
// each vector is decoded once for the 4 tokens. Activations of token t at ap + t*astride; results
// to y + (t*nrows + r)*4.

@inline
function tile4(wp: usize, ap: usize, astride: usize, nb: i32, y: usize, r: i32, nrows: i32, h: usize, kind: i32,
  m: v128, lo16: v128, ones16: v128, x10: v128, tabs: v128, tsgn: v128, tval: v128, f16s: v128): void {
  const GB = groupBlock(kind), NIB = nibOff(kind), HOFF = hiOff(kind);
  let f0 = f32x4.splat(0), f1 = f32x4.splat(0), f2 = f32x4.splat(0), f3 = f32x4.splat(0);
  let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0);
  const a1p = astride, a2p = astride * 2, a3p = astride * 3;
  for (let b = 0; b < nb; b++) {
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    let hl = i32x4.splat(0), hh = i32x4.splat(0);
    if (five(kind)) {
      hh = v128.load(wp + HOFF + h);
      hl = i16x8.shl(hh, 4);
    }
    for (let g = 0; g < 4; g++) {
      const v = v128.load(wp + NIB + h + (<usize>g << 5));
      const aq = ap + (<usize>g << 2);
      if (kind == K_IQ4) {
        const lo = v128.and(v, m);
        const hi = v128.and(i16x8.shr_u(v, 4), m);
        i0 = iq4Dot(lo, v128.load32_splat(aq), i0, tabs, tsgn, tval, ones16);
        i1 = iq4Dot(lo, v128.load32_splat(aq + a1p), i1, tabs, tsgn, tval, ones16);
        i2 = iq4Dot(lo, v128.load32_splat(aq + a2p), i2, tabs, tsgn, tval, ones16);
        i3 = iq4Dot(lo, v128.load32_splat(aq + a3p), i3, tabs, tsgn, tval, ones16);
        i0 = iq4Dot(hi, v128.load32_splat(aq, 16), i0, tabs, tsgn, tval, ones16);
        i1 = iq4Dot(hi, v128.load32_splat(aq + a1p, 16), i1, tabs, tsgn, tval, ones16);
        i2 = iq4Dot(hi, v128.load32_splat(aq + a2p, 16), i2, tabs, tsgn, tval, ones16);
        i3 = iq4Dot(hi, v128.load32_splat(aq + a3p, 16), i3, tabs, tsgn, tval, ones16);
      } else {
        let lo: v128, hi: v128;
        if (five(kind)) {
          lo = lo5(v, hl, m, x10);
          hi = hi5(v, hh, m, x10);
          hl = i16x8.shr_u(hl, 1);
          hh = i16x8.shr_u(hh, 1);
        } else {
          lo = v128.and(v, m);
          hi = v128.and(i16x8.shr_u(v, 4), m);
        }
        if (ASC_FEATURE_RELAXED_SIMD) {
          // 4-bit: i16 sums over the block (8 x 3810), widened after it; 5-bit: widened per g
          let s0 = i16x8.add(dot16(lo, v128.load32_splat(aq)), dot16(hi, v128.load32_splat(aq, 16)));
          let s1 = i16x8.add(dot16(lo, v128.load32_splat(aq + a1p)), dot16(hi, v128.load32_splat(aq + a1p, 16)));
          let s2 = i16x8.add(dot16(lo, v128.load32_splat(aq + a2p)), dot16(hi, v128.load32_splat(aq + a2p, 16)));
          let s3 = i16x8.add(dot16(lo, v128.load32_splat(aq + a3p)), dot16(hi, v128.load32_splat(aq + a3p, 16)));
          if (five(kind)) {
            i0 = i32x4.add(i0, i32x4.dot_i16x8_s(s0, ones16));
            i1 = i32x4.add(i1, i32x4.dot_i16x8_s(s1, ones16));
            i2 = i32x4.add(i2, i32x4.dot_i16x8_s(s2, ones16));
            i3 = i32x4.add(i3, i32x4.dot_i16x8_s(s3, ones16));
          } else {
            i0 = i16x8.add(i0, s0);
            i1 = i16x8.add(i1, s1);
            i2 = i16x8.add(i2, s2);
            i3 = i16x8.add(i3, s3);
          }
        } else {
          i0 = dotU(lo, v128.load32_splat(aq), i0, lo16);
          i1 = dotU(lo, v128.load32_splat(aq + a1p), i1, lo16);
          i2 = dotU(lo, v128.load32_splat(aq + a2p), i2, lo16);
          i3 = dotU(lo, v128.load32_splat(aq + a3p), i3, lo16);
          i0 = dotU(hi, v128.load32_splat(aq, 16), i0, lo16);
          i1 = dotU(hi, v128.load32_splat(aq + a1p, 16), i1, lo16);
          i2 = dotU(hi, v128.load32_splat(aq + a2p, 16), i2, lo16);
          i3 = dotU(hi, v128.load32_splat(aq + a3p, 16), i3, lo16);
        }
      }
    }
    if (ASC_FEATURE_RELAXED_SIMD && kind == K_Q4_1) {
      i0 = i32x4.dot_i16x8_s(i0, ones16);
      i1 = i32x4.dot_i16x8_s(i1, ones16);
      i2 = i32x4.dot_i16x8_s(i2, ones16);
      i3 = i32x4.dot_i16x8_s(i3, ones16);
    }
    if (kind == K_Q5_0) {
      i0 = i32x4.sub(i0, i32x4.splat(load<i32>(ap, 36) << 4));
      i1 = i32x4.sub(i1, i32x4.splat(load<i32>(ap + a1p, 36) << 4));
      i2 = i32x4.sub(i2, i32x4.splat(load<i32>(ap + a2p, 36) << 4));
      i3 = i32x4.sub(i3, i32x4.splat(load<i32>(ap + a3p, 36) << 4));
    }
    const sc = kind == K_IQ4 ? scale4(v128.load(wp), h == 0 ? 0 : 1, f16s) : v128.load(wp + h);
    f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.mul(sc, f32x4.splat(kind == K_IQ4 ? load<f32>(ap, ACT_D112) : load<f32>(ap, 32)))));
    f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.mul(sc, f32x4.splat(kind == K_IQ4 ? load<f32>(ap + a1p, ACT_D112) : load<f32>(ap + a1p, 32)))));
    f2 = f32x4.add(f2, f32x4.mul(f32x4.convert_i32x4_s(i2), f32x4.mul(sc, f32x4.splat(kind == K_IQ4 ? load<f32>(ap + a2p, ACT_D112) : load<f32>(ap + a2p, 32)))));
    f3 = f32x4.add(f3, f32x4.mul(f32x4.convert_i32x4_s(i3), f32x4.mul(sc, f32x4.splat(kind == K_IQ4 ? load<f32>(ap + a3p, ACT_D112) : load<f32>(ap + a3p, 32)))));
    if (hasMin(kind)) {
      const mn = v128.load(wp + 32 + h);
      e0 = f32x4.add(e0, f32x4.mul(mn, f32x4.splat(load<f32>(ap, 40))));
      e1 = f32x4.add(e1, f32x4.mul(mn, f32x4.splat(load<f32>(ap + a1p, 40))));
      e2 = f32x4.add(e2, f32x4.mul(mn, f32x4.splat(load<f32>(ap + a2p, 40))));
      e3 = f32x4.add(e3, f32x4.mul(mn, f32x4.splat(load<f32>(ap + a3p, 40))));
    }
    wp += GB;
    ap += ACT_BLOCK;
  }
  if (hasMin(kind)) {
    f0 = f32x4.add(f0, e0);
    f1 = f32x4.add(f1, e1);
    f2 = f32x4.add(f2, e2);
    f3 = f32x4.add(f3, e3);
  }
  const ys = <usize>nrows << 2;
  storeRows4(y, r, nrows, f0);
  storeRows4(y + ys, r, nrows, f1);
  storeRows4(y + ys * 2, r, nrows, f2);
  storeRows4(y + ys * 3, r, nrows, f3);
}

// Y[t][r] = W[r]·X[t] for ntok activation rows (x stride k/32 blocks, y row stride nrows f32) and
// the rows of groups g0..g1-1. ntok = 1 runs the decode kernel; otherwise tokens go in tiles of 4
// over each group's weights (in cache between tiles), leftover tokens one at a time.
@inline
function matmulR8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32, ntok: i32, kind: i32): void {
  if (ntok == 1) {
    matvecR8(w, x, y, k, g0, g1, nrows, kind);
    return;
  }
  writeConsts();
  const nb = k >> 5;
  const m = v128.load(CONST, C_NIB);
  const lo16 = v128.load(CONST, C_LO16);
  const ones16 = v128.load(CONST, C_ONES16);
  const x10 = v128.load(CONST, L_X10);
  const tabs = v128.load(CONST, L_IQ4ABS), tsgn = v128.load(CONST, L_IQ4SGN), tval = v128.load(CONST, L_IQ4VAL);
  const f16s = v128.load(CONST, C_F16S);
  const gstride = <usize>nb * groupBlock(kind);
  const astride = <usize>nb * ACT_BLOCK;
  const ystride = <usize>nrows << 2;
  const ntok4 = ntok & ~3;
  for (let grp = g0; grp < g1; grp++) {
    const wp = w + <usize>grp * gstride;
    const r = grp << 3;
    for (let t = 0; t < ntok4; t += 4) {
      const ap = x + <usize>t * astride;
      const yp = y + <usize>t * ystride;
      tile4(wp, ap, astride, nb, yp, r, nrows, 0, kind, m, lo16, ones16, x10, tabs, tsgn, tval, f16s);
      tile4(wp, ap, astride, nb, yp, r + 4, nrows, 16, kind, m, lo16, ones16, x10, tabs, tsgn, tval, f16s);
    }
    for (let t = ntok4; t < ntok; t++) {
      matvecR8(w, x + <usize>t * astride, y + <usize>t * ystride, k, grp, grp + 1, nrows, kind);
    }
  }
}

export function matmulQ4_1R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32, ntok: i32): void { matmulR8(w, x, y, k, g0, g1, nrows, ntok, K_Q4_1); }
export function matmulQ5_0R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32, ntok: i32): void { matmulR8(w, x, y, k, g0, g1, nrows, ntok, K_Q5_0); }
export function matmulQ5_1R8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32, ntok: i32): void { matmulR8(w, x, y, k, g0, g1, nrows, ntok, K_Q5_1); }
export function matmulIQ4_NLR8(w: usize, x: usize, y: usize, k: i32, g0: i32, g1: i32, nrows: i32, ntok: i32): void { matmulR8(w, x, y, k, g0, g1, nrows, ntok, K_IQ4); }
