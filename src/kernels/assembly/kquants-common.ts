// Shared pieces of the K-quant kernels (kquants.ts, kquants-repack.ts, q8_k.ts).

// Constant vectors of the K-quant kernels, bytes 2560..2703 of the reserved area (2560..3583 is
// the K-quants' share, see common.ts). Every exported K-quant kernel rewrites them on entry (kconsts(): 9 stores,
// nothing next to a matmul), so they need no init call and survive anything else written there
// (e.g. the loader's start-up self test); the kernels then load them into locals (a constant
// folded into each use is rebuilt by V8 at every use, a value loaded from memory stays in a register).
export const KC: usize = 2560;

@inline
export function kconsts(): void {
  v128.store(KC, i8x16.splat(0x0f), 0); // m: low nibble
  v128.store(KC, i16x8.splat(0x00ff), 16); // lo16: even bytes as i16
  v128.store(KC, i8x16.splat(0x30), 32); // m30: bits 4-5
  v128.store(KC, i8x16.splat(0x03), 48); // m3: bits 0-1
  v128.store(KC, i8x16.splat(0x04), 64); // m4: bit 2
  v128.store(KC, i8x16.splat(0x10), 80); // m10: bit 4
  v128.store(KC, i16x8.splat(0x000f), 96); // lo4: low nibble of each i16
  v128.store(KC, i8x16.splat(0x3f), 112); // m3f: bits 0-5
  v128.store(KC, i8x16.splat(0x0c), 128); // m0c: bits 2-3
}

/** Writes the constants (the kernels also do it themselves on every call). */
export function initKQuants(): void {
  kconsts();
}

// Per i16 lane j: q[2j]*s[2j] + q[2j+1]*s[2j+1], q unsigned 0..127 (weight quants), s signed int8
// (activation quants). Relaxed: one pmaddubsw on x64 (pairs never saturate: 2*127*127 < 32768
// fails only for q > 127, excluded). SIMD128: even/odd i16 products.
@inline
export function d16(q: v128, s: v128, lo16: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return i16x8.relaxed_dot_i8x16_i7x16_s(s, q);
  } else {
    return i16x8.add(
      i16x8.mul(v128.and(q, lo16), i16x8.shr_s(i16x8.shl(s, 8), 8)),
      i16x8.mul(i16x8.shr_u(q, 8), i16x8.shr_s(s, 8)),
    );
  }
}
