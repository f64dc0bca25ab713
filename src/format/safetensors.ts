// safetensors (Hugging Face): u64 little-endian header length N, N bytes of JSON
// { "__metadata__": {...}, "<tensor>": { "dtype", "shape", "data_offsets": [begin, end] } },
// then the tensors' bytes, row-major, offsets relative to the end of the header. Only the header
// is read here; tensor bytes are read on demand through the ByteSource.

import type { ByteSource } from "./byte-source.ts";
import { ModelFileError } from "./errors.ts";

/** Element sizes of the dtypes safetensors defines. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

/** Headers above this size are refused as corrupt (real ones are well under 10 MB). */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsTensor {
  readonly name: string;
  readonly dtype: string;
  /** Row-major (PyTorch) order: the last dimension is the row. */
  readonly shape: readonly number[];
  /** Absolute byte offset in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface SafetensorsFile {
  readonly source: ByteSource;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, SafetensorsTensor>;
}

export function safetensorsDtypeBytes(dtype: string): number | undefined {
  return DTYPE_BYTES[dtype];
}

/** Parses and checks the header: every tensor's dtype, shape and byte range. */
export async function readSafetensors(source: ByteSource): Promise<SafetensorsFile> {
  const bad = (problem: string): never => {
    throw new ModelFileError(source.name, problem);
  };
  if (source.size < 8) bad(`is ${source.size} bytes, too short for a safetensors file`);
  const lenBytes = await source.read(0, 8);
  const headerLen = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLen < 2 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > source.size) {
    bad(`header length ${headerLen} is impossible for a file of ${source.size} bytes: not a safetensors file, or corrupt`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await source.read(8, headerLen)));
  } catch (e) {
    bad(`header is not valid JSON (${(e as Error).message}): corrupt safetensors file`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) bad("header is not a JSON object: corrupt safetensors file");
  const dataStart = 8 + headerLen;
  const dataSize = source.size - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof entry === "object" && entry !== null) metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null) bad(`tensor "${name}": header entry is not an object`);
    const dtype = e.dtype;
    if (typeof dtype !== "string" || DTYPE_BYTES[dtype] === undefined) bad(`tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of sizes`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0) || offs[1] < offs[0]) {
      bad(`tensor "${name}": data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
    }
    const [begin, end] = offs as [number, number];
    const expected = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype as string]!;
    if (end - begin !== expected) bad(`tensor "${name}": ${end - begin} bytes for ${dtype} [${(shape as number[]).join(", ")}], which needs ${expected}`);
    if (end > dataSize) bad(`tensor "${name}": data ends at byte ${dataStart + end}, past the end of the file (${source.size} bytes): truncated`);
    ranges.push([begin, end, name]);
    tensors.set(name, { name, dtype: dtype as string, shape: shape as number[], offset: dataStart + begin, byteLength: end - begin });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]![0] < ranges[i - 1]![1]) bad(`tensors "${ranges[i - 1]![2]}" and "${ranges[i]![2]}" overlap: corrupt safetensors file`);
  }
  return { source, metadata, tensors };
}
