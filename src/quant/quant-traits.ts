// The shape of one row of the quant traits table (see ./traits.ts for the table itself).

import type { GGMLTypeId, GGMLTypeName } from "./ggml-type.ts";

/**
 * Decodes `n` elements (a multiple of the block size) stored from byte `srcByteOffset` of `src`
 * into `dst[dstOffset .. dstOffset + n)`.
 */
export type DequantizeRow = (
  src: Uint8Array,
  srcByteOffset: number,
  dst: Float32Array,
  dstOffset: number,
  n: number,
) => void;

/**
 * Encodes `src[srcOffset .. srcOffset + n)` (n a multiple of the block size) into blocks written
 * from byte `dstByteOffset` of `dst` (rowByteSize(type, n) bytes). The rounding is identical to
 * the quantizer llama.cpp writes files with (no importance matrix), so files are byte-identical:
 * the reference quantizer `quantize_row_<type>_ref`, except for IQ4_NL, whose files come from
 * `quantize_iq4_nl` (a wider scale search than quantize_row_iq4_nl_ref).
 */
export type QuantizeRow = (
  src: Float32Array,
  srcOffset: number,
  dst: Uint8Array,
  dstByteOffset: number,
  n: number,
) => void;

/**
 * The dot product of `n` elements of a weight row (this type, from byte `wOff` of `w`) with an
 * activation row of the partner type `vecDotType` (from byte `aOff` of `a`), with the semantics
 * of llama.cpp's `ggml_vec_dot_<w>_<a>`: integer multiply-accumulate within each block, then
 * scaled by the blocks' float scales (and offset by the mins terms where the type has them).
 * The result is a float32 value.
 */
export type VecDot = (n: number, w: Uint8Array, wOff: number, a: Uint8Array, aOff: number) => number;

export interface QuantTraits {
  readonly type: GGMLTypeId;
  readonly name: GGMLTypeName;
  /** Elements per block. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly bytesPerBlock: number;
  readonly dequantizeRow: DequantizeRow;
  readonly quantizeRow: QuantizeRow;
  /**
   * How llama.cpp's x86 CPU backend quantizes activations of this type at run time, where that
   * differs from the reference quantizer used for files (its AVX2 Q8_0/Q8_1 code scales by
   * 127/amax and rounds ties to even). Undefined: activations use quantizeRow.
   */
  readonly quantizeActivationRow?: QuantizeRow;
  /**
   * The activation type llama.cpp's CPU backend quantizes the other operand to before the dot
   * product (its type_traits_cpu `vec_dot_type`); null for the activation-only types Q8_1 and
   * Q8_K, which are never the weight side of a dot product.
   */
  readonly vecDotType: GGMLTypeId | null;
  /** Null exactly when vecDotType is null. */
  readonly vecDot: VecDot | null;
}

/** Traits of a type that can be the weight side of a dot product. */
export interface WeightQuantTraits extends QuantTraits {
  readonly vecDotType: GGMLTypeId;
  readonly vecDot: VecDot;
}
