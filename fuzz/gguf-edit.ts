// Byte-level editing of GGUF files for the fuzzer and the hand-built test cases: a scanner that
// records where every header field of a valid file lies, an encoder for metadata values, and
// edits (remove, duplicate or replace a key/value or a tensor info) that keep everything else of
// the file intact. Written from the GGUF spec (ggml docs/gguf.md), independently of src/format,
// so that the reader under test is not also the tool that builds its inputs.

export const T = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;

const scalarSize: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Where a header field lies: `at` is its first byte, `size` its width (4 or 8 for counts/ids). */
export interface Field {
  readonly at: number;
  readonly size: 4 | 8;
  readonly what: string;
}

export interface KvLayout {
  readonly key: string;
  /** The whole key/value: key length, key, type, value. */
  readonly start: number;
  readonly end: number;
  readonly type: number;
  /** The value's bytes (after the type). */
  readonly valueStart: number;
  readonly itemType?: number;
  /** Arrays: start of each item (and `end` after the last). */
  readonly itemStarts?: number[];
}

export interface TensorLayout {
  readonly name: string;
  readonly start: number;
  readonly end: number;
  readonly nDims: number;
  readonly dims: bigint[];
  readonly type: number;
  readonly offset: bigint;
}

export interface GGUFLayout {
  readonly version: number;
  readonly kvs: KvLayout[];
  readonly tensors: TensorLayout[];
  readonly headerEnd: number;
  readonly alignment: number;
  readonly dataStart: number;
  /** Every count, length, type id, dimension and offset of the header. */
  readonly fields: Field[];
}

const dec = new TextDecoder();
const enc = new TextEncoder();

/** Scans a valid GGUF v2/v3 file (throws on anything unexpected: it is only run on good seeds). */
export function scanGGUF(b: Uint8Array): GGUFLayout {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 0;
  const fields: Field[] = [];
  const need = (n: number) => {
    if (!(p + n <= b.byteLength)) throw new Error(`truncated at ${p}`);
  };
  const u32 = (what?: string) => {
    need(4);
    if (what) fields.push({ at: p, size: 4, what });
    const x = v.getUint32(p, true);
    p += 4;
    return x;
  };
  const u64 = (what?: string) => {
    need(8);
    if (what) fields.push({ at: p, size: 8, what });
    const x = v.getBigUint64(p, true);
    p += 8;
    return x;
  };
  const str = (what: string) => {
    const n = Number(u64(`length of ${what}`));
    need(n);
    const s = dec.decode(b.subarray(p, p + n));
    p += n;
    return s;
  };
  if (u32() !== 0x46554747) throw new Error("not GGUF");
  const version = u32();
  const nTensors = Number(u64("tensor count"));
  const nKv = Number(u64("key/value count"));
  const skipValue = (type: number, what: string): void => {
    if (type === T.STRING) str(what);
    else if (type === T.ARRAY) throw new Error("nested arrays are not scanned");
    else if (scalarSize[type] !== undefined) p += scalarSize[type]!;
    else throw new Error(`unknown value type ${type}`);
  };
  const kvs: KvLayout[] = [];
  for (let i = 0; i < nKv; i++) {
    const start = p;
    const key = str(`key #${i}`);
    const type = u32(`type of ${key}`);
    const valueStart = p;
    if (type === T.ARRAY) {
      const itemType = u32(`item type of ${key}`);
      const n = Number(u64(`length of ${key}`));
      const itemStarts: number[] = [];
      for (let j = 0; j < n; j++) {
        if (p > b.byteLength) throw new Error("array runs past the end");
        itemStarts.push(p);
        if (itemType === T.STRING) {
          if (j < 4) str(`${key}[${j}]`); // only the first few string lengths become fields
          else p += 8 + Number(v.getBigUint64(p, true));
        } else skipValue(itemType, "");
      }
      kvs.push({ key, start, end: p, type, valueStart, itemType, itemStarts });
    } else {
      if (type === T.UINT32 || type === T.INT32) fields.push({ at: p, size: 4, what: `value of ${key}` });
      if (type === T.UINT64 || type === T.INT64) fields.push({ at: p, size: 8, what: `value of ${key}` });
      skipValue(type, `value of ${key}`);
      kvs.push({ key, start, end: p, type, valueStart });
    }
  }
  const tensors: TensorLayout[] = [];
  for (let i = 0; i < nTensors; i++) {
    const start = p;
    const name = str(`name of tensor #${i}`);
    const nDims = u32(`n_dims of ${name}`);
    const dims: bigint[] = [];
    for (let d = 0; d < nDims; d++) dims.push(u64(`dim ${d} of ${name}`));
    const type = u32(`type of ${name}`);
    const offset = u64(`offset of ${name}`);
    tensors.push({ name, start, end: p, nDims, dims, type, offset });
  }
  const alignKv = kvs.find((k) => k.key === "general.alignment");
  const alignment = alignKv ? v.getUint32(alignKv.valueStart, true) : 32;
  return { version, kvs, tensors, headerEnd: p, alignment, dataStart: Math.ceil(p / alignment) * alignment, fields };
}

// ---- encoding ----

export function u32(x: number): Uint8Array {
  const o = new Uint8Array(4);
  new DataView(o.buffer).setUint32(0, x >>> 0, true);
  return o;
}
export function u64(x: number | bigint): Uint8Array {
  const o = new Uint8Array(8);
  new DataView(o.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(x)), true);
  return o;
}
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
export function gstr(s: string | Uint8Array): Uint8Array {
  const bytes = typeof s === "string" ? enc.encode(s) : s;
  return concat(u64(bytes.byteLength), bytes);
}

/** A metadata value: its type id and encoded bytes (after the type). */
export interface Value {
  readonly type: number;
  readonly bytes: Uint8Array;
}
export const val = {
  u32: (x: number): Value => ({ type: T.UINT32, bytes: u32(x) }),
  i32: (x: number): Value => ({ type: T.INT32, bytes: u32(x) }),
  u64: (x: number | bigint): Value => ({ type: T.UINT64, bytes: u64(x) }),
  f32: (x: number): Value => {
    const o = new Uint8Array(4);
    new DataView(o.buffer).setFloat32(0, x, true);
    return { type: T.FLOAT32, bytes: o };
  },
  bool: (x: boolean | number): Value => ({ type: T.BOOL, bytes: new Uint8Array([Number(x)]) }),
  str: (s: string | Uint8Array): Value => ({ type: T.STRING, bytes: gstr(s) }),
  strings: (a: readonly (string | Uint8Array)[]): Value => ({ type: T.ARRAY, bytes: concat(u32(T.STRING), u64(a.length), ...a.map(gstr)) }),
  i32s: (a: readonly number[]): Value => ({ type: T.ARRAY, bytes: concat(u32(T.INT32), u64(a.length), ...a.map(u32)) }),
  f32s: (a: readonly number[]): Value => ({ type: T.ARRAY, bytes: concat(u32(T.FLOAT32), u64(a.length), ...a.map((x) => val.f32(x).bytes)) }),
  /** Raw bytes with any type id (for unknown types and lies). */
  raw: (type: number, bytes: Uint8Array): Value => ({ type, bytes }),
};

export function kvBytes(key: string | Uint8Array, value: Value): Uint8Array {
  return concat(gstr(key), u32(value.type), value.bytes);
}

export function tensorInfoBytes(name: string | Uint8Array, dims: readonly (number | bigint)[], type: number, offset: number | bigint): Uint8Array {
  return concat(gstr(name), u32(dims.length), ...dims.map(u64), u32(type), u64(offset));
}

// ---- edits ----

/**
 * A file rebuilt from a new header (magic to the end of the tensor infos) and the original data
 * section, padded to the alignment so the tensors' relative offsets still point at their bytes.
 */
export function withHeader(file: Uint8Array, layout: GGUFLayout, header: Uint8Array, alignment = layout.alignment): Uint8Array {
  const dataStart = Math.ceil(header.byteLength / alignment) * alignment;
  const out = new Uint8Array(dataStart + (file.byteLength - layout.dataStart));
  out.set(header);
  out.set(file.subarray(layout.dataStart), dataStart);
  return out;
}

function setCount(header: Uint8Array, at: number, n: number): void {
  new DataView(header.buffer, header.byteOffset).setBigUint64(at, BigInt(n), true);
}

/** Replaces header bytes [start, end) with `insert`, adjusting the key/value or tensor count by `dKv`/`dTensors`. */
export function spliceHeader(file: Uint8Array, layout: GGUFLayout, start: number, end: number, insert: Uint8Array, dKv = 0, dTensors = 0, alignment?: number): Uint8Array {
  const header = concat(file.subarray(0, start), insert, file.subarray(end, layout.headerEnd));
  if (dTensors) setCount(header, 8, layout.tensors.length + dTensors);
  if (dKv) setCount(header, 16, layout.kvs.length + dKv);
  return withHeader(file, layout, header, alignment);
}

export function kvIndex(layout: GGUFLayout, key: string): number {
  const i = layout.kvs.findIndex((k) => k.key === key);
  if (i < 0) throw new Error(`no key ${key}`);
  return i;
}

export function removeKv(file: Uint8Array, layout: GGUFLayout, key: string): Uint8Array {
  const kv = layout.kvs[kvIndex(layout, key)]!;
  return spliceHeader(file, layout, kv.start, kv.end, new Uint8Array(0), -1);
}

export function setKv(file: Uint8Array, layout: GGUFLayout, key: string, value: Value): Uint8Array {
  const i = layout.kvs.findIndex((k) => k.key === key);
  if (i < 0) return addKv(file, layout, key, value);
  const kv = layout.kvs[i]!;
  return spliceHeader(file, layout, kv.start, kv.end, kvBytes(key, value));
}

/** Appends a key/value after the last one (a key already present makes a duplicate). */
export function addKv(file: Uint8Array, layout: GGUFLayout, key: string | Uint8Array, value: Value, alignment?: number): Uint8Array {
  const at = layout.kvs.length ? layout.kvs[layout.kvs.length - 1]!.end : 24;
  return spliceHeader(file, layout, at, at, kvBytes(key, value), 1, 0, alignment);
}

export function duplicateKv(file: Uint8Array, layout: GGUFLayout, index: number): Uint8Array {
  const kv = layout.kvs[index]!;
  return spliceHeader(file, layout, kv.end, kv.end, file.slice(kv.start, kv.end), 1);
}

export function removeTensor(file: Uint8Array, layout: GGUFLayout, index: number): Uint8Array {
  const t = layout.tensors[index]!;
  return spliceHeader(file, layout, t.start, t.end, new Uint8Array(0), 0, -1);
}

export function duplicateTensor(file: Uint8Array, layout: GGUFLayout, index: number): Uint8Array {
  const t = layout.tensors[index]!;
  return spliceHeader(file, layout, t.end, t.end, file.slice(t.start, t.end), 0, 1);
}

export function replaceTensor(file: Uint8Array, layout: GGUFLayout, index: number, info: Uint8Array): Uint8Array {
  const t = layout.tensors[index]!;
  return spliceHeader(file, layout, t.start, t.end, info);
}

export function tensorIndex(layout: GGUFLayout, name: string): number {
  const i = layout.tensors.findIndex((t) => t.name === name);
  if (i < 0) throw new Error(`no tensor ${name}`);
  return i;
}

/** The items of a string array as raw bytes (each without its length). */
export function stringItems(file: Uint8Array, kv: KvLayout): Uint8Array[] {
  const starts = kv.itemStarts ?? [];
  const v = new DataView(file.buffer, file.byteOffset);
  return starts.map((s) => {
    const n = Number(v.getBigUint64(s, true));
    return file.slice(s + 8, s + 8 + n);
  });
}

/** The numeric items of an array of INT32/UINT32/FLOAT32. */
export function numberItems(file: Uint8Array, kv: KvLayout): number[] {
  const v = new DataView(file.buffer, file.byteOffset);
  return (kv.itemStarts ?? []).map((s) =>
    kv.itemType === T.FLOAT32 ? v.getFloat32(s, true) : kv.itemType === T.INT32 ? v.getInt32(s, true) : v.getUint32(s, true),
  );
}

/** Writes an unsigned value into a header field in place (a copy of the file). */
export function setField(file: Uint8Array, f: Field, x: bigint): Uint8Array {
  const out = file.slice();
  const v = new DataView(out.buffer);
  if (f.size === 4) v.setUint32(f.at, Number(BigInt.asUintN(32, x)), true);
  else v.setBigUint64(f.at, BigInt.asUintN(64, x), true);
  return out;
}

export function readField(file: Uint8Array, f: Field): bigint {
  const v = new DataView(file.buffer, file.byteOffset);
  return f.size === 4 ? BigInt(v.getUint32(f.at, true)) : v.getBigUint64(f.at, true);
}
