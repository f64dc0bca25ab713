// Entry point of the kernels module. Every export takes byte addresses into the imported shared
// memory; nothing here allocates, so many instances (one per thread) can share one memory.
import { CONST, C_NIB, C_LO16, C_HALF, C_ONE, C_SIGN, C_ABS, C_ONES16, C_F16S, C_EXP_LO, C_EXP_HI, C_LOG2E, C_LN2HI, C_LN2LO, C_P6, C_P5, C_P4, C_P3, C_BIAS127, EXP_LO, EXP_HI, EXP_LOG2E, EXP_LN2HI, EXP_LN2LO, EXP_P6, EXP_P5, EXP_P4, EXP_P3, F16S_MASK } from "./common";

export { quantizeAct, quantizeRowQ8_0, q8_0ToAct } from "./quantize";
export { repackQ4_0, repackIQ4_NL, matvecQ4_0R8, matmulQ4_0R8, matvecQ4_0 } from "./q4_0";
export { rmsNorm, add, mul, swiglu, softmax, rope, argmaxF32, blockMaxF32 } from "./elementwise";
export { repackQ8_0, matvecQ8_0R8, matmulQ8_0R8, matvecQ8_0 } from "./q8_0";
export { quantizeQ8_K } from "./q8_k";
export { initKQuants } from "./kquants-common";
export { repackQ4_K, repackQ5_K, repackQ6_K, repackQ3_K, repackQ2_K } from "./kquants-repack";
export { matmulQ4_KR8, matmulQ5_KR8, matmulQ6_KR8, matmulQ3_KR8, matmulQ2_KR8 } from "./kquants";
export { repackQ4_1, repackQ5_0, repackQ5_1, matvecQ4_1R8, matvecQ5_0R8, matvecQ5_1R8, matvecIQ4_NLR8, matmulQ4_1R8, matmulQ5_0R8, matmulQ5_1R8, matmulIQ4_NLR8 } from "./legacy";
export { actF16, actBF16, repackF16, matmulF32, matmulF16, matmulBF16 } from "./floats";

// Writes the constant vectors the kernels load into registers. Idempotent; each instance calls it.
export function init(): void {
  v128.store(CONST + C_NIB, i8x16.splat(0x0f));
  v128.store(CONST + C_LO16, i16x8.splat(0x00ff));
  v128.store(CONST + C_HALF, f32x4.splat(0.5));
  v128.store(CONST + C_ONE, f32x4.splat(1.0));
  v128.store(CONST + C_SIGN, i32x4.splat(0x80000000));
  v128.store(CONST + C_ABS, i32x4.splat(0x7fffffff));
  v128.store(CONST + C_ONES16, i16x8.splat(1));
  v128.store(CONST + C_F16S, i32x4.splat(F16S_MASK));
  v128.store(CONST + C_EXP_LO, f32x4.splat(EXP_LO));
  v128.store(CONST + C_EXP_HI, f32x4.splat(EXP_HI));
  v128.store(CONST + C_LOG2E, f32x4.splat(EXP_LOG2E));
  v128.store(CONST + C_LN2HI, f32x4.splat(EXP_LN2HI));
  v128.store(CONST + C_LN2LO, f32x4.splat(EXP_LN2LO));
  v128.store(CONST + C_P6, f32x4.splat(EXP_P6));
  v128.store(CONST + C_P5, f32x4.splat(EXP_P5));
  v128.store(CONST + C_P4, f32x4.splat(EXP_P4));
  v128.store(CONST + C_P3, f32x4.splat(EXP_P3));
  v128.store(CONST + C_BIAS127, i32x4.splat(127));
}

// 1 when built with relaxed SIMD.
export function relaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

// Reads bytes (a multiple of 64) at p and returns a checksum: the memory read bandwidth probe.
export function streamSum(p: usize, bytes: usize): i32 {
  let a = i32x4.splat(0), b = i32x4.splat(0), c = i32x4.splat(0), d = i32x4.splat(0);
  const end = p + bytes;
  while (p < end) {
    a = i32x4.add(a, v128.load(p));
    b = i32x4.add(b, v128.load(p, 16));
    c = i32x4.add(c, v128.load(p, 32));
    d = i32x4.add(d, v128.load(p, 48));
    p += 64;
  }
  const s = i32x4.add(i32x4.add(a, b), i32x4.add(c, d));
  return i32x4.extract_lane(s, 0) ^ i32x4.extract_lane(s, 3);
}
export { attentionF16, attentionF32, f32ToF16Row } from "./attention";
