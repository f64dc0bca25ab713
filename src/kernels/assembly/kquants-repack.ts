// Load-time repacking of K-quant rows (llama.cpp block layouts) into the "R8" layouts of
// kquants.ts: rows in groups of 8 (the last group padded with zero rows), per group and
// super-block a header of f32 d / dmin and decoded integer scales, then the quant bytes
// interleaved 4 bytes x 4 rows per 16-byte vector (chunk c, half h at +32c + 16h).
//
// Bytes per row per 256 columns (original -> R8): Q4_K 144 -> 152, Q5_K 176 -> 184,
// Q6_K 210 -> 212, Q3_K 110 -> 116, Q2_K 84 -> 88.
//   Q4_K: f32 d[8] @0, f32 dmin[8] @32, u8 scale[8 sub][8 row] @64, u8 min pairs [4 p][8 row][2] @128,
//         qs @192 (32 chunks)
//   Q5_K: as Q4_K, qh @192 (8 chunks), qs @448 (32 chunks)
//   Q6_K: f32 d[8] @0, i8 scale[16 sub][8 row] @32, quants re-encoded as 6 sets of 8 chunks @160
//         (set (hf, k) at 160 + 768hf + 256k; see rowQ6_K)
//   Q3_K: f32 d[8] @0, i8 scale[16 sub][8 row] @32 (6-bit, -32..31), hmask @160 (8 chunks), qs @416 (16 chunks)
//   Q2_K: f32 d[8] @0, f32 dmin[8] @32, u8 scale|min<<4 [16 sub][8 row] @64, qs @192 (16 chunks)
import { f16ToF32 } from "./common";

// nbytes (multiple of 4) of one row's quant bytes at s -> interleaved at dst for row r of the group
@inline
function interleave(dst: usize, s: usize, nbytes: i32, r: i32): void {
  const o = dst + (<usize>(r >> 2) << 4) + (<usize>(r & 3) << 2);
  for (let i = 0; i < nbytes; i += 4) store<u32>(o + (<usize>i << 3), s == 0 ? 0 : load<u32>(s + <usize>i));
}

@inline
function f16(s: usize, off: usize): f32 {
  return f16ToF32(<u32>load<u16>(s + off));
}

// get_scale_min_k4: 6-bit scale (low byte) and min (high byte) of sub-block j
@inline
function scaleMinK4(j: i32, q: usize): u32 {
  if (j < 4) return (<u32>load<u8>(q + j) & 63) | ((<u32>load<u8>(q + j + 4) & 63) << 8);
  const sc = (<u32>load<u8>(q + j + 4) & 0x0f) | ((<u32>load<u8>(q + j - 4) >> 6) << 4);
  const mn = (<u32>load<u8>(q + j + 4) >> 4) | ((<u32>load<u8>(q + j) >> 6) << 4);
  return sc | (mn << 8);
}

// Loops over groups, super-blocks and rows; ROW(out, s, r) with s = 0 for padding rows.
// (Written out per type: a function-typed parameter would need a static data segment.)
@inline
function srcOf(src: usize, row: i32, nrows: i32, rowBytes: usize, b: i32, bb: i32): usize {
  return row < nrows ? src + <usize>row * rowBytes + <usize>b * bb : 0;
}

function rowQ4_K(out: usize, s: usize, r: i32): void {
  store<f32>(out + (<usize>r << 2), s == 0 ? 0 : f16(s, 0));
  store<f32>(out + 32 + (<usize>r << 2), s == 0 ? 0 : f16(s, 2));
  for (let j = 0; j < 8; j++) {
    const sm = s == 0 ? 0 : scaleMinK4(j, s + 4);
    store<u8>(out + 64 + (<usize>j << 3) + r, <u8>sm);
    store<u8>(out + 128 + (<usize>(j >> 1) << 4) + (<usize>r << 1) + (j & 1), <u8>(sm >> 8));
  }
  interleave(out + 192, s == 0 ? 0 : s + 16, 128, r);
}

function rowQ5_K(out: usize, s: usize, r: i32): void {
  store<f32>(out + (<usize>r << 2), s == 0 ? 0 : f16(s, 0));
  store<f32>(out + 32 + (<usize>r << 2), s == 0 ? 0 : f16(s, 2));
  for (let j = 0; j < 8; j++) {
    const sm = s == 0 ? 0 : scaleMinK4(j, s + 4);
    store<u8>(out + 64 + (<usize>j << 3) + r, <u8>sm);
    store<u8>(out + 128 + (<usize>(j >> 1) << 4) + (<usize>r << 1) + (j & 1), <u8>(sm >> 8));
  }
  interleave(out + 192, s == 0 ? 0 : s + 16, 32, r);
  interleave(out + 448, s == 0 ? 0 : s + 48, 128, r);
}

// Q6_K quants re-encoded: per half hf, quarter k < 3 and element l < 32, byte = q6(128hf + 32k + l)
// | bits 2k..2k+1 of q6(128hf + 96 + l) << 6, stored at chunk l/4 of vector set (hf, k).
function rowQ6_K(out: usize, s: usize, r: i32): void {
  store<f32>(out + (<usize>r << 2), s == 0 ? 0 : f16(s, 208));
  for (let j = 0; j < 16; j++) store<i8>(out + 32 + (<usize>j << 3) + r, s == 0 ? 0 : load<i8>(s + 192 + j));
  const o = out + 160 + (<usize>(r >> 2) << 4) + (<usize>(r & 3) << 2);
  for (let hf = 0; hf < 2; hf++) {
    for (let l = 0; l < 32; l++) {
      let b0: u32 = 0, b1: u32 = 0, b2: u32 = 0;
      if (s != 0) {
        const qh = <u32>load<u8>(s + 128 + 32 * hf + l);
        const l0 = <u32>load<u8>(s + 64 * hf + l), l1 = <u32>load<u8>(s + 64 * hf + 32 + l);
        const q3 = (l1 >> 4) | ((qh >> 6) << 4);
        b0 = (l0 & 15) | ((qh & 3) << 4) | ((q3 & 3) << 6);
        b1 = (l1 & 15) | (((qh >> 2) & 3) << 4) | (((q3 >> 2) & 3) << 6);
        b2 = (l0 >> 4) | (((qh >> 4) & 3) << 4) | ((q3 >> 4) << 6);
      }
      const p = o + <usize>(768 * hf + ((l >> 2) << 5) + (l & 3));
      store<u8>(p, <u8>b0);
      store<u8>(p, <u8>b1, 256);
      store<u8>(p, <u8>b2, 512);
    }
  }
}

function rowQ3_K(out: usize, s: usize, r: i32): void {
  store<f32>(out + (<usize>r << 2), s == 0 ? 0 : f16(s, 108));
  for (let j = 0; j < 16; j++) {
    let v: i32 = 0;
    if (s != 0) {
      const sc = s + 96;
      const low = j < 8 ? <i32>load<u8>(sc + j) & 0x0f : <i32>load<u8>(sc + j - 8) >> 4;
      const high = (<i32>load<u8>(sc + 8 + (j & 3)) >> (2 * (j >> 2))) & 3;
      v = (low | (high << 4)) - 32;
    }
    store<i8>(out + 32 + (<usize>j << 3) + r, <i8>v);
  }
  interleave(out + 160, s, 32, r);
  interleave(out + 416, s == 0 ? 0 : s + 32, 64, r);
}

function rowQ2_K(out: usize, s: usize, r: i32): void {
  store<f32>(out + (<usize>r << 2), s == 0 ? 0 : f16(s, 80));
  store<f32>(out + 32 + (<usize>r << 2), s == 0 ? 0 : f16(s, 82));
  for (let j = 0; j < 16; j++) store<u8>(out + 64 + (<usize>j << 3) + r, s == 0 ? 0 : load<u8>(s + j));
  interleave(out + 192, s == 0 ? 0 : s + 16, 64, r);
}

export function repackQ4_K(src: usize, dst: usize, nrows: i32, k: i32): void {
  const nsb = k >> 8;
  const rowBytes = <usize>nsb * 144;
  let out = dst;
  for (let grp = 0; grp < (nrows + 7) >> 3; grp++) {
    for (let b = 0; b < nsb; b++) {
      for (let r = 0; r < 8; r++) rowQ4_K(out, srcOf(src, grp * 8 + r, nrows, rowBytes, b, 144), r);
      out += 1216;
    }
  }
}
export function repackQ5_K(src: usize, dst: usize, nrows: i32, k: i32): void {
  const nsb = k >> 8;
  const rowBytes = <usize>nsb * 176;
  let out = dst;
  for (let grp = 0; grp < (nrows + 7) >> 3; grp++) {
    for (let b = 0; b < nsb; b++) {
      for (let r = 0; r < 8; r++) rowQ5_K(out, srcOf(src, grp * 8 + r, nrows, rowBytes, b, 176), r);
      out += 1472;
    }
  }
}
export function repackQ6_K(src: usize, dst: usize, nrows: i32, k: i32): void {
  const nsb = k >> 8;
  const rowBytes = <usize>nsb * 210;
  let out = dst;
  for (let grp = 0; grp < (nrows + 7) >> 3; grp++) {
    for (let b = 0; b < nsb; b++) {
      for (let r = 0; r < 8; r++) rowQ6_K(out, srcOf(src, grp * 8 + r, nrows, rowBytes, b, 210), r);
      out += 1696;
    }
  }
}
export function repackQ3_K(src: usize, dst: usize, nrows: i32, k: i32): void {
  const nsb = k >> 8;
  const rowBytes = <usize>nsb * 110;
  let out = dst;
  for (let grp = 0; grp < (nrows + 7) >> 3; grp++) {
    for (let b = 0; b < nsb; b++) {
      for (let r = 0; r < 8; r++) rowQ3_K(out, srcOf(src, grp * 8 + r, nrows, rowBytes, b, 110), r);
      out += 928;
    }
  }
}
export function repackQ2_K(src: usize, dst: usize, nrows: i32, k: i32): void {
  const nsb = k >> 8;
  const rowBytes = <usize>nsb * 84;
  let out = dst;
  for (let grp = 0; grp < (nrows + 7) >> 3; grp++) {
    for (let b = 0; b < nsb; b++) {
      for (let r = 0; r < 8; r++) rowQ2_K(out, srcOf(src, grp * 8 + r, nrows, rowBytes, b, 84), r);
      out += 704;
    }
  }
}
