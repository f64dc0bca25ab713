// llama.cpp's file types (`enum llama_ftype` in llama.h): what `general.file_type` records, the
// type most of a file's matrices have (1-D tensors are always F32). Names as llama-quantize
// spells them; the numbers are what files store.

import { GGMLType, type GGMLTypeName } from "./ggml-type.ts";

export const LlamaFileType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 7,
  Q5_0: 8,
  Q5_1: 9,
  Q2_K: 10,
  Q3_K_S: 11,
  Q3_K_M: 12,
  Q3_K_L: 13,
  Q4_K_S: 14,
  Q4_K_M: 15,
  Q5_K_S: 16,
  Q5_K_M: 17,
  Q6_K: 18,
  IQ2_XXS: 19,
  IQ2_XS: 20,
  Q2_K_S: 21,
  IQ3_XS: 22,
  IQ3_XXS: 23,
  IQ1_S: 24,
  IQ4_NL: 25,
  IQ3_S: 26,
  IQ3_M: 27,
  IQ2_S: 28,
  IQ2_M: 29,
  IQ4_XS: 30,
  IQ1_M: 31,
  BF16: 32,
  TQ1_0: 36,
  TQ2_0: 37,
  MXFP4_MOE: 38,
} as const;

export type LlamaFileTypeName = keyof typeof LlamaFileType;

/**
 * The file type of a file whose matrices all have one GGML type (a "pure" file): the type's own
 * file type, or for a K-quant the small-recipe variant whose matrices are mostly that type.
 */
export function pureFileType(type: number): number | undefined {
  const name = (Object.keys(GGMLType) as GGMLTypeName[]).find((n) => GGMLType[n] === type);
  if (name === undefined) return undefined;
  const direct = (LlamaFileType as Record<string, number>)[name];
  if (direct !== undefined) return direct;
  const small: Partial<Record<GGMLTypeName, number>> = { Q3_K: LlamaFileType.Q3_K_S, Q4_K: LlamaFileType.Q4_K_S, Q5_K: LlamaFileType.Q5_K_S };
  return small[name];
}
