// Kernel families of the legacy block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) and the float
// types (F32, F16, BF16): for each GGML type id, which activation format its matmul takes, how to
// place its weights in a thread's memory and which export multiplies. These rows and the K-quants'
// (families-kquants.ts) make the one table of WebAssembly types, WASM_TYPES in types.ts.
//
// Calling convention (every pointer a byte address in the thread's own kernel memory):
//
//   Load time, per weight matrix of nrows rows x k columns (the thread's row shard):
//     repack present: repack(src, dst, nrows, k), src = the llama.cpp rows as in the GGUF file
//       (nrows * rowByteSize bytes), dst = repackedBytes(nrows, k) bytes (src may be freed after).
//     repack absent: the file bytes are used as they are (repackedBytes = the file size of the
//       shard: copy them to dst).
//     Weights should start 16-byte aligned (64 preferred); v128 loads are unaligned-safe anyway.
//
//   Per matmul:
//     1. the coordinator converts the f32 input rows once per activation kind
//        (ACTIVATIONS[kind].convert(x, a, k, ntok), or a plain copy for "f32") into
//        ACTIVATIONS[kind].bytes(k, ntok) bytes, and copies them into each thread's memory;
//        "q8_0" and "q8_1" are the same 64-byte blocks (quantizeAct writes both the Q8_0 and the
//        Q8_1 fields), so one quantization serves every quantized type with the same input;
//     2. each thread runs matmul(w, a, y, k, u0, u1, nrows, ntok):
//          w      the repacked (or copied) matrix of its nrows local rows,
//          a      ntok activation rows, contiguous (row stride ACTIVATIONS[kind].bytes(k, 1)),
//          y      f32 outputs, y[t * nrows + r] (row stride nrows floats),
//          u0..u1 the units of rowGranularity rows to compute: rows u0*G .. min(u1*G, nrows) - 1
//                 (for R8 layouts the 8-row groups, padded rows are never written);
//                 a thread computing all its local rows passes 0, ceil(nrows / G);
//          ntok   tokens; 1 is the decode fast path; more go 4 per weight pass (Q4_0: 2 per pass
//                 over whole 8-row groups), each token's sums bit-identical to ntok = 1.
//     3. the coordinator gathers the f32 outputs.
//   k must be a multiple of 32 for the block types; the float types take any k.

import { GGMLType } from "../quant/ggml-type.ts";
import { ACT_BLOCK_BYTES } from "./kernels.ts";

export type ActivationKind = "q8_0" | "q8_1" | "f16" | "bf16" | "f32";

/** Export names of the activation converters: (x, y, k, n): n rows of k f32 at x -> y. */
export type ActivationExport = "quantizeAct" | "actF16" | "actBF16";

/** Export names of the load-time repackers: (src, dst, nrows, k). */
export type RepackExport = "repackQ4_0" | "repackIQ4_NL" | "repackQ4_1" | "repackQ5_0" | "repackQ5_1" | "repackQ8_0" | "repackF16";

/** Export names of the matmuls: (w, x, y, k, u0, u1, nrows, ntok). */
export type MatmulExport =
  | "matmulQ4_0R8" | "matmulQ4_1R8" | "matmulQ5_0R8" | "matmulQ5_1R8" | "matmulQ8_0R8" | "matmulIQ4_NLR8"
  | "matmulF32" | "matmulF16" | "matmulBF16";

export interface KernelFamily {
  /** GGML type id of the weights. */
  readonly type: number;
  readonly name: string;
  readonly activation: ActivationKind;
  /** Bytes of the matrix in kernel memory (repacked layouts pad nrows to a multiple of 8). */
  repackedBytes(nrows: number, k: number): number;
  readonly repack?: RepackExport;
  readonly matmul: MatmulExport;
  /** Rows a thread split must be a multiple of (the unit of u0..u1). */
  readonly rowGranularity: number;
}

export interface ActivationFormat {
  /** Converter export, or null: the f32 input rows are used as they are. */
  readonly convert: ActivationExport | null;
  /** Bytes of n activation rows of k columns. */
  bytes(k: number, n: number): number;
}

const q8Act: ActivationFormat = { convert: "quantizeAct", bytes: (k, n) => (k / 32) * ACT_BLOCK_BYTES * n };

/**
 * Activation formats. q8_0 / q8_1: 64-byte blocks per 32 columns (32 int8 @0, f32 d @32 =
 * f16-rounded amax/127, i32 sum of the quants @36, f32 s @40 = f16(d_unrounded * sum), d * 2^112
 * @44, -128 and -136 x the sum @48 and @52, padding; see assembly/common.ts),
 * rounding as llama.cpp's AVX2 quantize_row_q8_0/q8_1. f16 / bf16: f32 values (see
 * assembly/floats.ts: rounded to the weight type, pairs reordered per 8 columns, f16 scaled by
 * 2^112). f32: the plain f32 rows.
 */
export const ACTIVATIONS: Readonly<Record<ActivationKind, ActivationFormat>> = {
  q8_0: q8Act,
  q8_1: q8Act,
  f16: { convert: "actF16", bytes: (k, n) => k * 4 * n },
  bf16: { convert: "actBF16", bytes: (k, n) => k * 4 * n },
  f32: { convert: null, bytes: (k, n) => k * 4 * n },
};

/** Bytes of an 8-row interleaved ("R8") matrix with `groupBlock` bytes per group and 32 columns. */
function r8(groupBlock: number) {
  return (nrows: number, k: number) => Math.ceil(nrows / 8) * (k / 32) * groupBlock;
}

export const LEGACY_FAMILIES: readonly KernelFamily[] = [
  { type: GGMLType.Q4_0, name: "Q4_0", activation: "q8_0", repackedBytes: r8(144), repack: "repackQ4_0", matmul: "matmulQ4_0R8", rowGranularity: 8 },
  { type: GGMLType.Q4_1, name: "Q4_1", activation: "q8_1", repackedBytes: r8(192), repack: "repackQ4_1", matmul: "matmulQ4_1R8", rowGranularity: 8 },
  { type: GGMLType.Q5_0, name: "Q5_0", activation: "q8_0", repackedBytes: r8(192), repack: "repackQ5_0", matmul: "matmulQ5_0R8", rowGranularity: 8 },
  { type: GGMLType.Q5_1, name: "Q5_1", activation: "q8_1", repackedBytes: r8(224), repack: "repackQ5_1", matmul: "matmulQ5_1R8", rowGranularity: 8 },
  { type: GGMLType.Q8_0, name: "Q8_0", activation: "q8_0", repackedBytes: r8(272), repack: "repackQ8_0", matmul: "matmulQ8_0R8", rowGranularity: 8 },
  // IQ4_NL blocks have Q4_0's shape (f16 d, 16 bytes of nibbles): repackIQ4_NL gives the column-pair
  // R8 layout (Q4_0's in the builds without VNNI)
  { type: GGMLType.IQ4_NL, name: "IQ4_NL", activation: "q8_0", repackedBytes: r8(144), repack: "repackIQ4_NL", matmul: "matmulIQ4_NLR8", rowGranularity: 8 },
  { type: GGMLType.F32, name: "F32", activation: "f32", repackedBytes: (n, k) => n * k * 4, matmul: "matmulF32", rowGranularity: 1 },
  // F16: the file rows plus one inf/NaN flag byte per row (repackF16 copies and flags)
  { type: GGMLType.F16, name: "F16", activation: "f16", repackedBytes: (n, k) => n * (k * 2 + 1), repack: "repackF16", matmul: "matmulF16", rowGranularity: 1 },
  { type: GGMLType.BF16, name: "BF16", activation: "bf16", repackedBytes: (n, k) => n * k * 2, matmul: "matmulBF16", rowGranularity: 1 },
];

const byType = new Map<number, KernelFamily>(LEGACY_FAMILIES.map((f) => [f.type, f]));

/** The family of a GGML type id, or undefined when this table does not cover it. */
export function legacyFamily(type: number): KernelFamily | undefined {
  return byType.get(type);
}

/** Signatures of the exports named in this table (a subset of the kernels instance's exports). */
export interface LegacyKernelExports {
  quantizeAct(x: number, y: number, k: number, n: number): void;
  actF16(x: number, y: number, k: number, n: number): void;
  actBF16(x: number, y: number, k: number, n: number): void;
  repackQ4_0(src: number, dst: number, nrows: number, k: number): void;
  repackIQ4_NL(src: number, dst: number, nrows: number, k: number): void;
  repackQ4_1(src: number, dst: number, nrows: number, k: number): void;
  repackQ5_0(src: number, dst: number, nrows: number, k: number): void;
  repackQ5_1(src: number, dst: number, nrows: number, k: number): void;
  repackQ8_0(src: number, dst: number, nrows: number, k: number): void;
  repackF16(src: number, dst: number, nrows: number, k: number): void;
  matmulQ4_0R8(w: number, x: number, y: number, k: number, u0: number, u1: number, nrows: number, ntok: number): void;
  matmulQ4_1R8(w: number, x: number, y: number, k: number, u0: number, u1: number, nrows: number, ntok: number): void;
  matmulQ5_0R8(w: number, x: number, y: number, k: number, u0: number, u1: number, nrows: number, ntok: number): void;
  matmulQ5_1R8(w: number, x: number, y: number, k: number, u0: number, u1: number, nrows: number, ntok: number): void;
  matmulQ8_0R8(w: number, x: number, y: number, k: number, u0: number, u1: number, nrows: number, ntok: number): void;
  matmulIQ4_NLR8(w: number, x: number, y: number, k: number, u0: number, u1: number, nrows: number, ntok: number): void;
  matmulF32(w: number, x: number, y: number, k: number, u0: number, u1: number, nrows: number, ntok: number): void;
  matmulF16(w: number, x: number, y: number, k: number, u0: number, u1: number, nrows: number, ntok: number): void;
  matmulBF16(w: number, x: number, y: number, k: number, u0: number, u1: number, nrows: number, ntok: number): void;
  /** Decode-only entry points of the R8 layouts (matmul with ntok = 1 calls the same code). */
  matvecQ4_1R8(w: number, x: number, y: number, k: number, g0: number, g1: number, nrows: number): void;
  matvecQ5_0R8(w: number, x: number, y: number, k: number, g0: number, g1: number, nrows: number): void;
  matvecQ5_1R8(w: number, x: number, y: number, k: number, g0: number, g1: number, nrows: number): void;
  matvecIQ4_NLR8(w: number, x: number, y: number, k: number, g0: number, g1: number, nrows: number): void;
}
