// One small spec per architecture; the shared transformer in transformer.ts reads them.
// A new architecture is a new entry here, plus its column in the tensor table (tensors.ts) where
// its tensors differ from the others', not edits across the engine.

import type { RopeStyle } from "../compute/backend.ts";

export interface ArchitectureSpec {
  /** `general.architecture` value. */
  readonly name: ArchitectureName;
  /** normal: rotate adjacent pairs (Llama); neox: rotate halves (GPT-NeoX, Qwen). */
  readonly ropeStyle: RopeStyle;
  /**
   * The architecture its main path alone is (the file without its multi-token-prediction layers),
   * for runtimes that do not know this one: llama.cpp runs MiMo's main path as qwen2.
   */
  readonly mainPathAs?: ArchitectureName;
}

const specs = [
  { name: "llama", ropeStyle: "normal" },
  { name: "qwen2", ropeStyle: "neox" },
  { name: "qwen3", ropeStyle: "neox" },
  // MiMo-7B: a Qwen2 decoder whose main path is exactly Qwen2, plus MTP layers used for drafting.
  { name: "mimo", ropeStyle: "neox", mainPathAs: "qwen2" },
] as const satisfies readonly { readonly name: string; readonly ropeStyle: RopeStyle; readonly mainPathAs?: string }[];

export type ArchitectureName = (typeof specs)[number]["name"];

export const supportedArchitectures: readonly ArchitectureName[] = specs.map((s) => s.name);

export function findArchitecture(name: string): ArchitectureSpec | undefined {
  return (specs as readonly ArchitectureSpec[]).find((s) => s.name === name);
}
