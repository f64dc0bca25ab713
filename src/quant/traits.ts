// The quant traits table: for each GGML type mimo computes with, its block layout, how to decode
// and encode rows, and the dot product with its activation partner type — the one place that
// knows block layouts (like ggml's type_traits / type_traits_cpu). Code that loops over types
// asks this table.

import { BF16Traits, F16Traits, F32Traits } from "./float.ts";
import { ggmlTypeLayout, ggmlTypeName } from "./ggml-type.ts";
import type { GGMLTypeId } from "./ggml-type.ts";
import { Q2_KTraits, Q3_KTraits, Q4_KTraits, Q5_KTraits, Q6_KTraits, Q8_KTraits } from "./k-quants.ts";
import { Q4_0Traits, Q4_1Traits, Q5_0Traits, Q5_1Traits, Q8_0Traits, Q8_1Traits } from "./legacy.ts";
import type { QuantTraits, WeightQuantTraits } from "./quant-traits.ts";
import { IQ4_NLTraits } from "./iq4-nl.ts";
import { UnsupportedTensorTypeError } from "../errors/model-file.ts";

export { UnsupportedTensorTypeError };

export type { DequantizeRow, QuantizeRow, QuantTraits, VecDot, WeightQuantTraits } from "./quant-traits.ts";
export { GGMLType, QK_K, ggmlTypeFromName, ggmlTypeLayout, ggmlTypeName, isGGMLType } from "./ggml-type.ts";
export type { GGMLTypeId, GGMLTypeLayout, GGMLTypeName } from "./ggml-type.ts";
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./half.ts";

/** Types a model's tensors may have, in the order error messages list them. */
const weightTraits: readonly WeightQuantTraits[] = [
  F32Traits,
  F16Traits,
  BF16Traits,
  Q4_0Traits,
  Q4_1Traits,
  Q5_0Traits,
  Q5_1Traits,
  Q8_0Traits,
  Q2_KTraits,
  Q3_KTraits,
  Q4_KTraits,
  Q5_KTraits,
  Q6_KTraits,
  IQ4_NLTraits,
];

/** Types that only ever hold quantized activations (the vecDotType of some weight type). */
const activationOnlyTraits: readonly QuantTraits[] = [Q8_1Traits, Q8_KTraits];

const traitsByType = new Map<number, QuantTraits>(
  [...weightTraits, ...activationOnlyTraits].map((t) => [t.type, t]),
);

/** Every type id with traits (weight types, then Q8_1 and Q8_K). */
export const supportedTypes: readonly GGMLTypeId[] = [...traitsByType.keys()] as GGMLTypeId[];

/** The type ids mimo accepts for model tensors. */
export const supportedWeightTypes: readonly GGMLTypeId[] = weightTraits.map((t) => t.type);

/** The error for a type mimo cannot compute with (in the model-file error hierarchy; names the file when given). */
export function unsupportedType(type: number, tensorName?: string, file?: string): UnsupportedTensorTypeError {
  return new UnsupportedTensorTypeError(type, ggmlTypeName(type), weightTraits.map((t) => t.name), tensorName, file);
}

/** A row length that is not a whole number of blocks of the tensor's type. */
export class BlockSizeMismatchError extends RangeError {
  readonly type: number;
  readonly rowLength: number;
  readonly blockSize: number;
  readonly tensorName: string | undefined;

  constructor(type: number, rowLength: number, blockSize: number, tensorName?: string) {
    const subject = tensorName !== undefined ? `tensor "${tensorName}" (type ${ggmlTypeName(type)})` : `type ${ggmlTypeName(type)}`;
    super(`${subject}: row length ${rowLength} is not a multiple of the block size ${blockSize}`);
    this.name = "BlockSizeMismatchError";
    this.type = type;
    this.rowLength = rowLength;
    this.blockSize = blockSize;
    this.tensorName = tensorName;
  }
}

/**
 * The traits of a type, including the activation-only types Q8_1 and Q8_K.
 * Throws UnsupportedTensorTypeError naming the tensor (when given) and the type otherwise.
 */
export function getQuantTraits(type: number, tensorName?: string): QuantTraits {
  const traits = traitsByType.get(type);
  if (!traits) throw unsupportedType(type, tensorName);
  return traits;
}

/**
 * The traits of a type a model tensor can have (it has a dot product with an activation type).
 * Throws UnsupportedTensorTypeError for anything else, including Q8_1 and Q8_K.
 */
export function getWeightTraits(type: number, tensorName?: string): WeightQuantTraits {
  const traits = traitsByType.get(type);
  if (!traits || traits.vecDot === null) throw unsupportedType(type, tensorName);
  return traits as WeightQuantTraits;
}

/** True if mimo has traits for `type`. */
export function isSupportedType(type: number): boolean {
  return traitsByType.has(type);
}

function layoutOrThrow(type: number, tensorName?: string) {
  const layout = ggmlTypeLayout(type);
  // sizes are known for every type ggml defines, supported or not; only unknown ids fail here
  if (!layout) throw unsupportedType(type, tensorName);
  return layout;
}

/** Bytes of a row of `n` elements of `type` (any GGML type, supported or not). */
export function rowByteSize(type: number, n: number, tensorName?: string): number {
  const { blockSize, bytesPerBlock } = layoutOrThrow(type, tensorName);
  if (!Number.isSafeInteger(n) || n < 0 || n % blockSize !== 0) {
    throw new BlockSizeMismatchError(type, n, blockSize, tensorName);
  }
  return (n / blockSize) * bytesPerBlock;
}

/**
 * Bytes of a tensor of `type` with ggml-order `shape` (shape[0] is the row length, which must be
 * a whole number of blocks; the other dimensions count rows).
 */
export function tensorByteSize(type: number, shape: readonly number[], tensorName?: string): number {
  const rowLength = shape.length > 0 ? shape[0] : 1;
  let rows = 1;
  for (let i = 1; i < shape.length; i++) rows *= shape[i];
  return rowByteSize(type, rowLength, tensorName) * rows;
}
