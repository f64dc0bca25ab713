// The float32 arithmetic and integer rounding of llama.cpp's reference quantizers, reproduced
// exactly. JavaScript computes in float64; rounding each +, -, *, / or sqrt of float32 operands
// to float32 (Math.fround) gives the float32 result bit for bit (float64 carries more than
// 2 x 24 + 2 bits, so the double rounding is harmless). Quantizer code therefore wraps every
// float32 intermediate of the C code in `f32(...)`.

import { f32Bits } from "./half.ts";

export const f32 = Math.fround;

const MAGIC_ROUND = 12582912; // 1.5 * 2^23: adding it leaves the rounded integer in the low mantissa bits

/**
 * ggml's `nearest_int`: round to nearest, ties to even, via the float32 magic-number trick.
 * Exact for |x| <= 2^22; beyond that it returns what the C code returns (mantissa bits).
 */
export function nearestInt(x: number): number {
  const v = f32(x + MAGIC_ROUND);
  // in range, v is an integer in [2^23, 2^24) and the subtraction is exact: no bit access needed
  if (Math.abs(x) <= 4194303) return v - MAGIC_ROUND;
  return (f32Bits(v) & 0x007fffff) - 0x00400000;
}

/** C's `roundf`: round to nearest, ties away from zero. */
export function roundHalfAwayFromZero(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/**
 * A C conversion of a float to `int8_t` as x86 compilers emit it: truncate toward zero to int32
 * (cvttss2si), keep the low 8 bits, read them as signed.
 */
export function truncToInt8(x: number): number {
  return (truncToInt32(x) << 24) >> 24;
}

/** A C conversion of a float to `uint8_t` as x86 compilers emit it (low 8 bits of the int32). */
export function truncToUint8(x: number): number {
  return truncToInt32(x) & 0xff;
}

// cvttss2si: NaN and out-of-range values give the "integer indefinite" 0x80000000.
function truncToInt32(x: number): number {
  return x > -2147483649 && x < 2147483648 ? Math.trunc(x) | 0 : -2147483648;
}
