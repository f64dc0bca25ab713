// Shared vocabulary of the GGUF container format (spec: ggml's docs/gguf.md).

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_MAX_DIMS = 4;
export const GGUF_SUPPORTED_VERSIONS = [2, 3] as const;

export const GGUFValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GGUFValueType = (typeof GGUFValueType)[keyof typeof GGUFValueType];

/** Smallest encoded size of one value of each type (for rejecting absurd array lengths early). */
export const minEncodedSize: Record<number, number> = {
  0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8,
};

/**
 * A metadata value with its GGUF type, so files can be rewritten without losing types.
 * Scalars: number (bigint for 64-bit ints beyond 2^53), boolean, string.
 * Arrays: string[], boolean[], a typed array for numbers, or an array of nested arrays.
 */
export interface GGUFTypedValue {
  readonly type: GGUFValueType;
  /** For arrays: the element type (nested arrays: ARRAY, with their own types in `value`). */
  readonly itemType?: GGUFValueType;
  readonly value: unknown;
}

export interface GGUFTensorInfo {
  readonly name: string;
  /** GGML type id (see quant/ggml-type). */
  readonly type: number;
  /** ggml order: shape[0] is the row length (fastest-varying). */
  readonly shape: readonly number[];
  /** Absolute offset of the tensor's bytes in the file. */
  readonly offset: number;
  readonly byteSize: number;
}

// Helpers to build typed metadata for the writer.
export const gguf = {
  u8: (v: number): GGUFTypedValue => ({ type: GGUFValueType.UINT8, value: v }),
  i8: (v: number): GGUFTypedValue => ({ type: GGUFValueType.INT8, value: v }),
  u16: (v: number): GGUFTypedValue => ({ type: GGUFValueType.UINT16, value: v }),
  i16: (v: number): GGUFTypedValue => ({ type: GGUFValueType.INT16, value: v }),
  u32: (v: number): GGUFTypedValue => ({ type: GGUFValueType.UINT32, value: v }),
  i32: (v: number): GGUFTypedValue => ({ type: GGUFValueType.INT32, value: v }),
  f32: (v: number): GGUFTypedValue => ({ type: GGUFValueType.FLOAT32, value: v }),
  f64: (v: number): GGUFTypedValue => ({ type: GGUFValueType.FLOAT64, value: v }),
  u64: (v: number | bigint): GGUFTypedValue => ({ type: GGUFValueType.UINT64, value: v }),
  i64: (v: number | bigint): GGUFTypedValue => ({ type: GGUFValueType.INT64, value: v }),
  bool: (v: boolean): GGUFTypedValue => ({ type: GGUFValueType.BOOL, value: v }),
  str: (v: string): GGUFTypedValue => ({ type: GGUFValueType.STRING, value: v }),
  array: (itemType: GGUFValueType, value: unknown): GGUFTypedValue => ({
    type: GGUFValueType.ARRAY,
    itemType,
    value,
  }),
  strings: (v: readonly string[]): GGUFTypedValue => ({ type: GGUFValueType.ARRAY, itemType: GGUFValueType.STRING, value: v }),
  f32s: (v: ArrayLike<number>): GGUFTypedValue => ({ type: GGUFValueType.ARRAY, itemType: GGUFValueType.FLOAT32, value: Float32Array.from(v) }),
  i32s: (v: ArrayLike<number>): GGUFTypedValue => ({ type: GGUFValueType.ARRAY, itemType: GGUFValueType.INT32, value: Int32Array.from(v) }),
};
