// One small spec per architecture; the shared transformer in transformer.ts reads them.
// A new architecture is a new entry here (plus tensors it adds), not edits across the engine.

import type { RopeStyle } from "../compute/backend.ts";

export interface ArchitectureSpec {
  /** `general.architecture` value. */
  readonly name: string;
  /** normal: rotate adjacent pairs (Llama); neox: rotate halves (GPT-NeoX, Qwen). */
  readonly ropeStyle: RopeStyle;
  /** q/k/v projections carry biases that must be present. */
  readonly requiresQkvBias: boolean;
  /** RMS norm of each query and key head before RoPE (Qwen3). */
  readonly qkNorm: boolean;
  /** Multi-token-prediction layers follow the main layers (MiMo). */
  readonly mtp: boolean;
}

const specs: readonly ArchitectureSpec[] = [
  { name: "llama", ropeStyle: "normal", requiresQkvBias: false, qkNorm: false, mtp: false },
  { name: "qwen2", ropeStyle: "neox", requiresQkvBias: true, qkNorm: false, mtp: false },
  { name: "qwen3", ropeStyle: "neox", requiresQkvBias: false, qkNorm: true, mtp: false },
  // MiMo-7B: a Qwen2 decoder whose main path is exactly Qwen2, plus MTP layers used for drafting.
  { name: "mimo", ropeStyle: "neox", requiresQkvBias: true, qkNorm: false, mtp: true },
];

export const supportedArchitectures: readonly string[] = specs.map((s) => s.name);

export function findArchitecture(name: string): ArchitectureSpec | undefined {
  return specs.find((s) => s.name === name);
}
