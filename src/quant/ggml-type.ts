// GGML tensor type ids, numbered exactly as ggml.h's `enum ggml_type` (the numbers are what GGUF
// files store), with the block layout of every type, so that any part of mimo can name and size
// a tensor of any type — even one it cannot compute with. How to compute with a type is the
// business of the traits table (./traits.ts); this file only knows ids, names and sizes.

/** Every GGML type id. Gaps (4, 5, 31-33, 36-38) are ids ggml removed; files never use them. */
export const GGMLType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
  NVFP4: 40,
  Q1_0: 41,
  Q2_0: 42,
} as const;

export type GGMLTypeName = keyof typeof GGMLType;
export type GGMLTypeId = (typeof GGMLType)[GGMLTypeName];

/** Elements per super-block of the K-quants (ggml's QK_K). */
export const QK_K = 256;

export interface GGMLTypeLayout {
  readonly id: GGMLTypeId;
  readonly name: GGMLTypeName;
  /** Elements per block (1 for plain element types). */
  readonly blockSize: number;
  /** Bytes of one block. */
  readonly bytesPerBlock: number;
}

// [name, blockSize, bytesPerBlock]; the byte counts are sizeof(block_*) in ggml-common.h.
const layoutRows: ReadonlyArray<readonly [GGMLTypeName, number, number]> = [
  ["F32", 1, 4],
  ["F16", 1, 2],
  ["Q4_0", 32, 2 + 16], // f16 d, 32 x 4-bit
  ["Q4_1", 32, 2 + 2 + 16], // f16 d, f16 m, 32 x 4-bit
  ["Q5_0", 32, 2 + 4 + 16], // f16 d, 32 high bits, 32 x 4-bit
  ["Q5_1", 32, 2 + 2 + 4 + 16], // f16 d, f16 m, 32 high bits, 32 x 4-bit
  ["Q8_0", 32, 2 + 32], // f16 d, 32 x int8
  ["Q8_1", 32, 2 + 2 + 32], // f16 d, f16 s = d * sum(qs), 32 x int8
  ["Q2_K", QK_K, 16 + 64 + 2 + 2], // 16 x (4-bit scale | 4-bit min), 256 x 2-bit, f16 d, f16 dmin
  ["Q3_K", QK_K, 32 + 64 + 12 + 2], // high-bit mask, 256 x 2-bit, 16 x 6-bit scales, f16 d
  ["Q4_K", QK_K, 2 + 2 + 12 + 128], // f16 d, f16 dmin, 8 x (6-bit scale, 6-bit min), 256 x 4-bit
  ["Q5_K", QK_K, 2 + 2 + 12 + 32 + 128], // as Q4_K plus 256 high bits
  ["Q6_K", QK_K, 128 + 64 + 16 + 2], // low 4 bits, high 2 bits, 16 x int8 scales, f16 d
  ["Q8_K", QK_K, 4 + 256 + 32], // f32 d, 256 x int8, 16 x int16 sums of 16
  ["IQ2_XXS", QK_K, 66],
  ["IQ2_XS", QK_K, 74],
  ["IQ3_XXS", QK_K, 98],
  ["IQ1_S", QK_K, 50],
  ["IQ4_NL", 32, 18],
  ["IQ3_S", QK_K, 110],
  ["IQ2_S", QK_K, 82],
  ["IQ4_XS", QK_K, 136],
  ["I8", 1, 1],
  ["I16", 1, 2],
  ["I32", 1, 4],
  ["I64", 1, 8],
  ["F64", 1, 8],
  ["IQ1_M", QK_K, 56],
  ["BF16", 1, 2],
  ["TQ1_0", QK_K, 54],
  ["TQ2_0", QK_K, 66],
  ["MXFP4", 32, 17],
  ["NVFP4", 64, 36],
  ["Q1_0", 128, 18],
  ["Q2_0", 64, 18],
];

const layoutsById = new Map<number, GGMLTypeLayout>(
  layoutRows.map(([name, blockSize, bytesPerBlock]) => [
    GGMLType[name],
    { id: GGMLType[name], name, blockSize, bytesPerBlock },
  ]),
);

/** True if `id` is a type id ggml defines (removed ids and ids beyond the enum are not). */
export function isGGMLType(id: number): id is GGMLTypeId {
  return layoutsById.has(id);
}

/** Name of a type id as ggml.h spells it after `GGML_TYPE_` ("Q4_K"); unknown ids read "unknown(N)". */
export function ggmlTypeName(id: number): string {
  return layoutsById.get(id)?.name ?? `unknown(${id})`;
}

/** Block layout of any GGML type, or undefined for an id ggml does not define. */
export function ggmlTypeLayout(id: number): GGMLTypeLayout | undefined {
  return layoutsById.get(id);
}

/** Type id for a name such as "Q4_K" (case-insensitive), or undefined. */
export function ggmlTypeFromName(name: string): GGMLTypeId | undefined {
  const key = name.toUpperCase();
  return Object.hasOwn(GGMLType, key) ? GGMLType[key as GGMLTypeName] : undefined;
}
