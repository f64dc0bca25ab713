// Exact conversions between float32 and the 16-bit float formats GGML stores (IEEE half "F16",
// bfloat16 "BF16"), and little-endian byte access to block fields. Every function treats its
// input as a float32 (it is rounded to float32 first), as ggml's C code does.

// One float32 <-> its bit pattern. A Uint32Array and a Float32Array over the same bytes agree on
// byte order, so this reinterpretation is independent of the platform's endianness.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

export function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0];
}

export function f32FromBits(bits: number): number {
  scratchU32[0] = bits;
  return scratchF32[0];
}

// All 65536 half-precision values as float32, built once (256 KiB): dequantization reads a
// scale per block, and a table lookup is the cheapest exact conversion.
const F16_TO_F32 = buildF16Table();

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: mant * 2^-24, exact in float32
      table[h] = (sign ? -mant : mant) * 2 ** -24;
    } else if (exp === 31) {
      // infinity or NaN; the NaN payload moves to the top of the float32 mantissa, as in ggml
      bits[h] = sign | 0x7f800000 | (mant << 13);
    } else {
      bits[h] = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
  }
  return table;
}

/** IEEE half bits -> the float32 value (exact). */
export function f16ToF32(h: number): number {
  return F16_TO_F32[h & 0xffff];
}

/**
 * float32 -> IEEE half bits, rounding to nearest, ties to even (as ggml's GGML_FP32_TO_FP16):
 * values beyond the half range become infinity, NaN becomes the quiet NaN 0x7E00 (with sign).
 */
export function f32ToF16(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  if (exp > 142) return sign | 0x7c00; // >= 2^16: beyond the largest half even after rounding
  if (exp >= 113) {
    // normal half: drop 13 mantissa bits; a carry out of the mantissa correctly bumps the
    // exponent (and 65520 and above round up to infinity, 0x7C00)
    let h = ((exp - 112) << 10) | (mant >> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  if (exp < 102) return sign; // below 2^-25: rounds to zero
  // subnormal half: count units of 2^-24 in the full 24-bit significand
  const significand = mant | 0x800000;
  const shift = 126 - exp; // 14..24
  let h = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1) !== 0)) h++;
  return sign | h;
}

/** bfloat16 bits -> float32 value (exact: bfloat16 is the top half of a float32). */
export function bf16ToF32(b: number): number {
  return f32FromBits((b & 0xffff) << 16);
}

/**
 * float32 -> bfloat16 bits as ggml's GGML_FP32_TO_BF16: round to nearest, ties to even; a NaN
 * keeps its top bits and is forced quiet (bit 6 set), so it never turns into infinity.
 */
export function f32ToBf16(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 64) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---- little-endian field access within block bytes ----

/** The float32 value of the f16 stored at `offset`. */
export function readF16(bytes: Uint8Array, offset: number): number {
  return F16_TO_F32[bytes[offset] | (bytes[offset + 1] << 8)];
}

/** Stores `x` (rounded to half) at `offset`. */
export function writeF16(bytes: Uint8Array, offset: number, x: number): void {
  const h = f32ToF16(x);
  bytes[offset] = h & 0xff;
  bytes[offset + 1] = h >> 8;
}

export function readF32(bytes: Uint8Array, offset: number): number {
  return f32FromBits(
    bytes[offset] | (bytes[offset + 1] << 8) | (bytes[offset + 2] << 16) | (bytes[offset + 3] << 24),
  );
}

export function writeF32(bytes: Uint8Array, offset: number, x: number): void {
  const bits = f32Bits(x);
  bytes[offset] = bits & 0xff;
  bytes[offset + 1] = (bits >>> 8) & 0xff;
  bytes[offset + 2] = (bits >>> 16) & 0xff;
  bytes[offset + 3] = bits >>> 24;
}

/** The int8 stored at `offset`. */
export function readI8(bytes: Uint8Array, offset: number): number {
  return (bytes[offset] << 24) >> 24;
}

export function readI16(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] | (bytes[offset + 1] << 8)) << 16) >> 16;
}

export function writeI16(bytes: Uint8Array, offset: number, v: number): void {
  bytes[offset] = v & 0xff;
  bytes[offset + 1] = (v >> 8) & 0xff;
}

export function readU32(bytes: Uint8Array, offset: number): number {
  return (
    (bytes[offset] | (bytes[offset + 1] << 8) | (bytes[offset + 2] << 16) | (bytes[offset + 3] << 24)) >>> 0
  );
}

export function writeU32(bytes: Uint8Array, offset: number, v: number): void {
  bytes[offset] = v & 0xff;
  bytes[offset + 1] = (v >>> 8) & 0xff;
  bytes[offset + 2] = (v >>> 16) & 0xff;
  bytes[offset + 3] = (v >>> 24) & 0xff;
}
