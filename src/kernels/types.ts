// The weight types the WebAssembly kernels multiply, one row per GGML type: its activation format,
// repacked size, repack and matmul exports and row granularity. The rows are defined with their
// kernels' calling conventions (families-legacy.ts: legacy blocks, IQ4_NL and floats;
// families-kquants.ts: Q2_K..Q6_K); the backend and the tests take the list from here.

import { ACTIVATIONS as LEGACY_ACTIVATIONS, LEGACY_FAMILIES, type ActivationKind as LegacyActivationKind } from "./families-legacy.ts";
import { KQUANT_FAMILIES, Q8_K_ACTIVATION } from "./families-kquants.ts";

/** The format a matmul's f32 input rows are converted to before the kernels read them. */
export type WasmActivationKind = LegacyActivationKind | "q8_k";

export interface WasmActivationFormat {
  /** Converter export (x, y, k, n): n rows of k f32 at x -> y; null: the f32 rows as they are. */
  readonly convert: string | null;
  /** Bytes of n activation rows of k columns. */
  bytes(k: number, n: number): number;
}

/** How one weight type runs on the kernels. */
export interface WasmType {
  /** GGML type id of the weights. */
  readonly type: number;
  readonly name: string;
  readonly activation: WasmActivationKind;
  /** Bytes of a shard of nrows rows of k columns in kernel memory. */
  repackedBytes(nrows: number, k: number): number;
  /** Load-time repacker export (src, dst, nrows, k); absent: the file's rows are copied as they are. */
  readonly repack?: string;
  /** matmul(w, act, y, k, u0, u1, nrows, ntok) export. */
  readonly matmul: string;
  /** Rows per unit of work (u0..u1): a thread's shard is a whole number of units. */
  readonly rowGranularity: number;
}

/** Every activation format, by kind. */
export const WASM_ACTIVATIONS: Readonly<Record<WasmActivationKind, WasmActivationFormat>> = {
  ...LEGACY_ACTIVATIONS,
  q8_k: Q8_K_ACTIVATION,
};

/** Every weight type the kernels multiply. */
export const WASM_TYPES: readonly WasmType[] = [...LEGACY_FAMILIES, ...KQUANT_FAMILIES];

const byType = new Map(WASM_TYPES.map((t) => [t.type, t]));

/** The row of a GGML type id, or undefined when the kernels do not multiply it. */
export function wasmType(type: number): WasmType | undefined {
  return byType.get(type);
}
