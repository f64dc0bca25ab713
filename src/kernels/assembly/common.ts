// Shared helpers for the kernels. The same sources compile three times: with relaxed SIMD (int8
// dots as i16 pmaddubsw sums, best on x64 without VNNI), with relaxed SIMD and KERNEL_VNNI=1 (Q4_0
// and Q8_0 dots as i32 dot-adds, one vpdpbusd with AVX-VNNI), and with plain SIMD128 (the dot is
// emulated with i16 pairs).

// Bytes 0..8191 of the shared memory are reserved for the kernels: constants from CONST (1024) up
// to 4095 (1024..1311 common vectors; 1536..2559 legacy/float types; 2560..3583 K-quants;
// 3584..4095 attention), and a scratch area for the start-up self test at PROBE (4096..6143).
// The TS side allocates from 8192 up.
export const CONST: usize = 1024;

// 1 in the "relaxed-vnni" build (scripts/build-kernels.mjs passes --use KERNEL_VNNI=0|1): the Q4_0
// and Q8_0 kernels then accumulate int8 dots straight into i32 with
// i32x4.relaxed_dot_i8x16_i7x16_add_s (one vpdpbusd with AVX-VNNI) instead of the i16 pmaddubsw
// sums that suit x64 without VNNI. Integer sums are exact either way, and the float accumulation
// per block is the same, so the builds give bit-identical results. Only read under
// ASC_FEATURE_RELAXED_SIMD.
// @ts-ignore: defined on the asc command line
export const VNNI: bool = KERNEL_VNNI != 0;
export const PROBE: usize = 4096;

// Offsets of the constant vectors (written by init(), loaded into locals by the kernels: a constant
// folded into each use is rebuilt by V8 at every use, a value loaded from memory stays in a register).
export const C_NIB: usize = 0; // i8x16 0x0F
export const C_LO16: usize = 16; // i16x8 0x00FF
export const C_HALF: usize = 32; // f32x4 0.5
export const C_ONE: usize = 48; // f32x4 1.0
export const C_SIGN: usize = 64; // i32x4 0x80000000
export const C_ABS: usize = 80; // i32x4 0x7FFFFFFF
export const C_ONES16: usize = 96; // i16x8 1
export const C_F16S: usize = 112; // i32x4 F16S_MASK
// exp4's (elementwise.ts): clamps, log2(e), ln2 in two parts, the polynomial's 1/720..1/6, i32 127
export const C_EXP_LO: usize = 128;
export const C_EXP_HI: usize = 144;
export const C_LOG2E: usize = 160;
export const C_LN2HI: usize = 176;
export const C_LN2LO: usize = 192;
export const C_P6: usize = 208;
export const C_P5: usize = 224;
export const C_P4: usize = 240;
export const C_P3: usize = 256;
export const C_BIAS127: usize = 272;

// The values of exp's range reduction and polynomial (exp4 in elementwise.ts and attention's
// softmax), defined once: clamps, log2(e), ln2 split in two (hi exact in f32), 1/6!..1/3!.
export const EXP_LO: f32 = -87.3;
export const EXP_HI: f32 = 88.3;
export const EXP_LOG2E: f32 = 1.44269504;
export const EXP_LN2HI: f32 = 0.693359375;
export const EXP_LN2LO: f32 = -2.12194440e-4;
export const EXP_P6: f32 = 1.0 / 720.0;
export const EXP_P5: f32 = 1.0 / 120.0;
export const EXP_P4: f32 = 1.0 / 24.0;
export const EXP_P3: f32 = 1.0 / 6.0;
/** Sign, exponent and mantissa of a sign-extended f16 moved to f32 places (f16 -> f32 conversion). */
export const F16S_MASK: i32 = 0x8fffe000;

// Internal activation block (one per 32 inputs, 64 bytes: one cache line when aligned): 32 int8
// quants, f32 d (f16-rounded, as llama.cpp stores it) @32, i32 sum of the quants @36, f32 s @40
// (Q8_1's, see quantize.ts), f32 d * 2^112 @44 (ACT_D112: the partner of f16 weight scales read
// without conversion, see q4_0.ts), i32 -128 x sum @48 (ACT_M128) and -136 x sum @52 (ACT_M136):
// the starts of the VNNI build's Q8_0 and Q4_0 sums (one load-splat each instead of a scalar
// multiply, a move and a shuffle, see q8_0.ts and q4_0.ts); 56..63 unused.
export const ACT_BLOCK: usize = 64;
export const ACT_D112: usize = 44;
export const ACT_M128: usize = 48;
export const ACT_M136: usize = 52;

// Multi-token matmuls run each token pair (or triple) over a chunk of row groups before the next
// pair: the first pair streams the chunk's weights sequentially from memory (the hardware
// prefetcher runs ahead across the groups), the later ones find them in L2. Group by group (every
// pair over a group's few KB, then the next group) restarted the stream at each group and ran
// ~20% slower than in cache (see matmulQ4_0R8). About 192 KB of weights per chunk: in L2 (1 MB on
// Zen 5, 256 KB-2 MB elsewhere) beside the tokens' activations.
export const CHUNK_BYTES: usize = 192 << 10;
@inline
export function chunkGroups(groupBytes: usize): i32 {
  return max(1, <i32>(CHUNK_BYTES / groupBytes));
}

// Whole floats well inside the i32 range -> i32: there the relaxed conversion (one cvttps2dq on
// x64; trunc_sat adds ~5 instructions for NaN and saturation) gives the same integers as the
// SIMD128 build's trunc_sat. Only a NaN lane may differ (a NaN-carrying result either way).
@inline
export function toInt(v: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.relaxed_trunc_f32x4_s(v);
  return i32x4.trunc_sat_f32x4_s(v);
}

@inline
export function f16ToF32(h: u32): f32 {
  const bits = (h & 0x7fff) << 13;
  let f = reinterpret<f32>(bits) * reinterpret<f32>(0x77800000); // * 2^112 fixes the exponent bias
  if ((h & 0x7c00) == 0x7c00) f = reinterpret<f32>(bits | 0x7f800000);
  return reinterpret<f32>(reinterpret<u32>(f) | ((h & 0x8000) << 16));
}

// Round-to-nearest-even f32 -> f16 (same algorithm as ggml's software conversion).
export function f32ToF16(f: f32): u32 {
  let base = (Mathf.abs(f) * reinterpret<f32>(0x77800000)) * reinterpret<f32>(0x08800000);
  const w = reinterpret<u32>(f);
  const shl1w = w + w;
  const sign = w & 0x80000000;
  let bias = shl1w & 0xff000000;
  if (bias < 0x71000000) bias = 0x71000000;
  base = reinterpret<f32>((bias >> 1) + 0x07800000) + base;
  const bits = reinterpret<u32>(base);
  const expBits = (bits >> 13) & 0x00007c00;
  const mantBits = bits & 0x00000fff;
  const nonsign = expBits + mantBits;
  return (sign >> 16) | (shl1w > 0xff000000 ? 0x7e00 : nonsign);
}

// Per 32-bit lane k: acc[k] + sum_{i<4} a[4k+i] * w[4k+i], with a signed int8 and w in 0..127.
@inline
export function dotU(w: v128, a: v128, acc: v128, lo16: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return i32x4.relaxed_dot_i8x16_i7x16_add_s(a, w, acc);
  } else {
    const we = v128.and(w, lo16);
    const wo = i16x8.shr_u(w, 8);
    const ae = i16x8.shr_s(i16x8.shl(a, 8), 8);
    const ao = i16x8.shr_s(a, 8);
    return i32x4.add(acc, i32x4.add(i32x4.dot_i16x8_s(we, ae), i32x4.dot_i16x8_s(wo, ao)));
  }
}

// Per 16-bit lane j: a[2j]*w[2j] + a[2j+1]*w[2j+1] (relaxed: one pmaddubsw on x64 without VNNI).
// Only for the relaxed build. With w a nibble (0..15) and |a| <= 127 a lane is at most 3810, so
// the 8 such dots of a Q4 block can be summed in i16 before one widening per block.
@inline
export function dot16(w: v128, a: v128): v128 {
  return i16x8.relaxed_dot_i8x16_i7x16_s(a, w);
}

// Same with both operands signed int8 (-127..127): relaxed path moves w's sign onto a.
@inline
export function dotS(w: v128, a: v128, acc: v128, ones16: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const neg = i8x16.lt_s(w, i8x16.splat(0));
    const as = i8x16.sub(v128.xor(a, neg), neg);
    // i16 pair sums (at most 2*127*127, no overflow), widened with a ones vector kept in a register
    // (the i32x4 relaxed dot rebuilds that constant at every use on x64 without VNNI)
    return i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(as, i8x16.abs(w)), ones16));
  } else {
    const we = i16x8.shr_s(i16x8.shl(w, 8), 8);
    const wo = i16x8.shr_s(w, 8);
    const ae = i16x8.shr_s(i16x8.shl(a, 8), 8);
    const ao = i16x8.shr_s(a, 8);
    return i32x4.add(acc, i32x4.add(i32x4.dot_i16x8_s(we, ae), i32x4.dot_i16x8_s(wo, ao)));
  }
}

// f16 scales of rows 4h..4h+3 from the 16-byte scale vector of an R8 group block (32-bit lane k:
// row k's f16 in the low half, row 4+k's in the high half), as f32 = scale * 2^-112: the f16 bits
// with the sign moved to bit 31 and exponent|mantissa to bits 27..13 (exact for every finite f16,
// subnormals too). Multiplied by an activation's d * 2^112 (ACT_D112) this gives exactly the f32
// product of the two scales. f16s is C_F16S.
@inline
export function scale4(s: v128, h: i32, f16s: v128): v128 {
  const v = h == 0 ? i32x4.shl(s, 16) : s;
  return v128.and(i32x4.shr_s(v, 3), f16s);
}

@inline
export function hsum(v: v128): f32 {
  const s = f32x4.add(v, i8x16.shuffle(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

@inline
export function hmax(v: v128): f32 {
  const s = f32x4.max(v, i8x16.shuffle(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  return Mathf.max(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

// Stores rows r..r+7 of y from two f32x4 (rows r..r+3, r+4..r+7), dropping rows >= nrows.
@inline
export function storeRows8(y: usize, r: i32, nrows: i32, f0: v128, f1: v128): void {
  const p = y + (<usize>r << 2);
  if (r + 8 <= nrows) {
    v128.store(p, f0);
    v128.store(p, f1, 16);
  } else {
    storeRows4(y, r, nrows, f0);
    storeRows4(y, r + 4, nrows, f1);
  }
}

@inline
export function storeRows4(y: usize, r: i32, nrows: i32, f: v128): void {
  const p = y + (<usize>r << 2);
  if (r + 4 <= nrows) {
    v128.store(p, f);
  } else {
    if (r < nrows) store<f32>(p, f32x4.extract_lane(f, 0));
    if (r + 1 < nrows) store<f32>(p, f32x4.extract_lane(f, 1), 4);
    if (r + 2 < nrows) store<f32>(p, f32x4.extract_lane(f, 2), 8);
    if (r + 3 < nrows) store<f32>(p, f32x4.extract_lane(f, 3), 12);
  }
}
