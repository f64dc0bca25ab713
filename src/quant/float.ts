// Plain element types: F32, F16 and BF16. Their dot products pair with their own type (as in
// llama.cpp's CPU backend) and accumulate in float64 (ggml's `ggml_float`), returning a float32.

import { GGMLType } from "./ggml-type.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, readF32, writeF32 } from "./half.ts";
import type { WeightQuantTraits } from "./quant-traits.ts";
import { f32 } from "./rounding.ts";

// A Float32Array view needs a 4-byte aligned start; take it when the bytes allow (no copy).
// Typed arrays use the host's byte order, and GGUF data is little-endian like every host mimo targets.
function f32View(bytes: Uint8Array, byteOffset: number, n: number): Float32Array | null {
  const start = bytes.byteOffset + byteOffset;
  return start % 4 === 0 ? new Float32Array(bytes.buffer, start, n) : null;
}

export const F32Traits: WeightQuantTraits = {
  type: GGMLType.F32,
  name: "F32",
  blockSize: 1,
  bytesPerBlock: 4,
  vecDotType: GGMLType.F32,

  dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
    const view = f32View(src, srcByteOffset, n);
    if (view) {
      dst.set(view, dstOffset);
      return;
    }
    for (let i = 0; i < n; i++) dst[dstOffset + i] = readF32(src, srcByteOffset + 4 * i);
  },

  quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
    const view = f32View(dst, dstByteOffset, n);
    if (view) {
      view.set(src.subarray(srcOffset, srcOffset + n));
      return;
    }
    for (let i = 0; i < n; i++) writeF32(dst, dstByteOffset + 4 * i, src[srcOffset + i]);
  },

  vecDot(n, w, wOff, a, aOff) {
    const wv = f32View(w, wOff, n);
    const av = f32View(a, aOff, n);
    let sum = 0;
    if (wv && av) {
      for (let i = 0; i < n; i++) sum += f32(wv[i] * av[i]);
    } else {
      for (let i = 0; i < n; i++) sum += f32(readF32(w, wOff + 4 * i) * readF32(a, aOff + 4 * i));
    }
    return f32(sum);
  },
};

/** Traits of a 16-bit float type, given its bit conversions (F16 and BF16 differ only there). */
function halfTraits(
  type: typeof GGMLType.F16 | typeof GGMLType.BF16,
  name: "F16" | "BF16",
  toF32: (bits: number) => number,
  fromF32: (x: number) => number,
): WeightQuantTraits {
  return {
    type,
    name,
    blockSize: 1,
    bytesPerBlock: 2,
    vecDotType: type,

    dequantizeRow(src, srcByteOffset, dst, dstOffset, n) {
      for (let i = 0, p = srcByteOffset; i < n; i++, p += 2) dst[dstOffset + i] = toF32(src[p] | (src[p + 1] << 8));
    },

    quantizeRow(src, srcOffset, dst, dstByteOffset, n) {
      for (let i = 0, p = dstByteOffset; i < n; i++, p += 2) {
        const h = fromF32(src[srcOffset + i]);
        dst[p] = h & 0xff;
        dst[p + 1] = h >> 8;
      }
    },

    vecDot(n, w, wOff, a, aOff) {
      // a product of two 16-bit floats is exact in float32, so only the float64 sum rounds
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const p = wOff + 2 * i;
        const q = aOff + 2 * i;
        sum += toF32(w[p] | (w[p + 1] << 8)) * toF32(a[q] | (a[q + 1] << 8));
      }
      return f32(sum);
    },
  };
}

export const F16Traits: WeightQuantTraits = halfTraits(GGMLType.F16, "F16", f16ToF32, f32ToF16);
export const BF16Traits: WeightQuantTraits = halfTraits(GGMLType.BF16, "BF16", bf16ToF32, f32ToBf16);
