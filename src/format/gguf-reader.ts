import type { ByteSource } from "./byte-source.ts";
import { ModelFileError, quote } from "../errors/model-file.ts";
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_SUPPORTED_VERSIONS,
  GGUFValueType,
  minEncodedSize,
  type GGUFTensorInfo,
  type GGUFTypedValue,
} from "./gguf.ts";
import { ggmlTypeLayout as ggmlBlockLayout } from "../quant/ggml-type.ts";

/** Thrown inside the header parser when the bytes read so far end too early. */
class NeedMoreBytes {
  readonly what: string;
  readonly at: number;
  constructor(what: string, at: number) {
    this.what = what;
    this.at = at;
  }
}

// ignoreBOM: a token may be exactly U+FEFF (llama-spm id 30143), which must not be stripped.
const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/**
 * Synchronous cursor over a prefix of the file. The header is parsed from a buffer that holds the
 * first bytes of the file; if it runs out, the caller reads a longer prefix and parses again.
 */
class HeaderCursor {
  pos = 0;
  private readonly view: DataView;
  private readonly bytes: Uint8Array;
  private readonly fileSize: number;
  private readonly fileName: string;

  constructor(bytes: Uint8Array, fileSize: number, fileName: string) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.fileSize = fileSize;
    this.fileName = fileName;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.bytes.byteLength) throw new NeedMoreBytes(what, this.pos);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }
  i8(what: string): number {
    this.need(1, what);
    return this.view.getInt8(this.pos++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  i16(what: string): number {
    this.need(2, what);
    const v = this.view.getInt16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(what: string): number {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f32(what: string): number {
    this.need(4, what);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(what: string): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  u64big(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  i64big(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** A u64 that must fit a JS number (counts, sizes, offsets). */
  u64(what: string): number {
    const at = this.pos;
    const v = this.u64big(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v} at offset ${at}, which is absurdly large`);
    return Number(v);
  }
  /** A length-prefixed count of items of at least `minItemSize` bytes each, checked against the file size. */
  count(what: string, minItemSize: number): number {
    const at = this.pos;
    const n = this.u64(what);
    const rest = this.fileSize - this.pos;
    if (n * minItemSize > rest) {
      this.fail(`${what} is ${n} at offset ${at}, but only ${rest} bytes of the file remain (truncated or corrupt file)`);
    }
    return n;
  }
  string(what: string): string {
    const n = this.count(`length of ${what}`, 1);
    this.need(n, what);
    const s = utf8.decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  fail(problem: string): never {
    throw new ModelFileError(this.fileName, problem);
  }
}

/** ggml's GGML_MAX_NAME: tensor names are shorter (they end with a NUL in a buffer of this size). */
const GGML_MAX_NAME = 64;

/** "UINT32", "STRING", "ARRAY of FLOAT32" ... for messages. */
function valueTypeName(type: number, itemType?: number): string {
  const name = (t: number) => Object.entries(GGUFValueType).find(([, v]) => v === t)?.[0] ?? `unknown(${t})`;
  return type === GGUFValueType.ARRAY && itemType !== undefined ? `ARRAY of ${name(itemType)}` : name(type);
}

function toNumberIfSafe(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function readScalar(c: HeaderCursor, type: number, what: string): unknown {
  switch (type) {
    case GGUFValueType.UINT8: return c.u8(what);
    case GGUFValueType.INT8: return c.i8(what);
    case GGUFValueType.UINT16: return c.u16(what);
    case GGUFValueType.INT16: return c.i16(what);
    case GGUFValueType.UINT32: return c.u32(what);
    case GGUFValueType.INT32: return c.i32(what);
    case GGUFValueType.FLOAT32: return c.f32(what);
    case GGUFValueType.FLOAT64: return c.f64(what);
    case GGUFValueType.UINT64: return toNumberIfSafe(c.u64big(what));
    case GGUFValueType.INT64: return toNumberIfSafe(c.i64big(what));
    case GGUFValueType.BOOL: {
      const at = c.pos;
      const b = c.u8(what);
      if (b > 1) c.fail(`${what} at offset ${at} is a bool with value ${b} (expected 0 or 1)`);
      return b === 1;
    }
    case GGUFValueType.STRING: return c.string(what);
    default: return c.fail(`${what} has unknown value type ${type}`);
  }
}

function readArray(
  c: HeaderCursor,
  what: string,
  depth: number,
): { itemType: GGUFValueType; value: unknown; typedItems?: GGUFTypedValue[] } {
  if (depth > 8) c.fail(`${what} nests arrays more than 8 deep`);
  const at = c.pos;
  const itemType = c.u32(`element type of ${what}`);
  const minSize = minEncodedSize[itemType];
  if (minSize === undefined) c.fail(`${what} at offset ${at} has unknown element type ${itemType}`);
  const n = c.count(`length of ${what}`, minSize);
  const item = `${what}[]`;
  let value: unknown;
  switch (itemType) {
    case GGUFValueType.UINT8: value = fill(new Uint8Array(n), () => c.u8(item)); break;
    case GGUFValueType.INT8: value = fill(new Int8Array(n), () => c.i8(item)); break;
    case GGUFValueType.UINT16: value = fill(new Uint16Array(n), () => c.u16(item)); break;
    case GGUFValueType.INT16: value = fill(new Int16Array(n), () => c.i16(item)); break;
    case GGUFValueType.UINT32: value = fill(new Uint32Array(n), () => c.u32(item)); break;
    case GGUFValueType.INT32: value = fill(new Int32Array(n), () => c.i32(item)); break;
    case GGUFValueType.FLOAT32: value = fill(new Float32Array(n), () => c.f32(item)); break;
    case GGUFValueType.FLOAT64: value = fill(new Float64Array(n), () => c.f64(item)); break;
    case GGUFValueType.UINT64: {
      const a = new BigUint64Array(n);
      for (let i = 0; i < n; i++) a[i] = c.u64big(item);
      value = a;
      break;
    }
    case GGUFValueType.INT64: {
      const a = new BigInt64Array(n);
      for (let i = 0; i < n; i++) a[i] = c.i64big(item);
      value = a;
      break;
    }
    case GGUFValueType.BOOL:
    case GGUFValueType.STRING: {
      const a = new Array<unknown>(n);
      for (let i = 0; i < n; i++) a[i] = readScalar(c, itemType, item);
      value = a;
      break;
    }
    case GGUFValueType.ARRAY: {
      // Nested arrays: plain values for readers; typed items (for the writer) in `typedItems`.
      const plain = new Array<unknown>(n);
      const typedItems = new Array<GGUFTypedValue>(n);
      for (let i = 0; i < n; i++) {
        const inner = readArray(c, item, depth + 1);
        plain[i] = inner.value;
        typedItems[i] = { type: GGUFValueType.ARRAY, itemType: inner.itemType, value: inner.typedItems ?? inner.value };
      }
      return { itemType: GGUFValueType.ARRAY, value: plain, typedItems };
    }
  }
  return { itemType: itemType as GGUFValueType, value };
}

function fill<T extends { length: number; [i: number]: number }>(a: T, next: () => number): T {
  for (let i = 0; i < a.length; i++) a[i] = next();
  return a;
}

interface ParsedHeader {
  version: number;
  metadata: Map<string, unknown>;
  metadataTypes: Map<string, GGUFTypedValue>;
  tensorsRaw: { name: string; type: number; shape: number[]; relOffset: number; at: number }[];
  headerEnd: number;
}

function parseHeader(bytes: Uint8Array, fileSize: number, fileName: string): ParsedHeader {
  const c = new HeaderCursor(bytes, fileSize, fileName);
  const magic = c.u32("magic");
  if (magic !== GGUF_MAGIC) {
    const shown = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    c.fail(`not a GGUF file: magic bytes are ${shown}, expected 47 47 55 46 ("GGUF")`);
  }
  const version = c.u32("version");
  if (!(GGUF_SUPPORTED_VERSIONS as readonly number[]).includes(version)) {
    if (version > 0xffff && (version & 0xffff) === 0) {
      c.fail(`GGUF file is big-endian (version bytes ${version.toString(16)}); only little-endian files are supported`);
    }
    c.fail(`GGUF version ${version} is not supported (supported: ${GGUF_SUPPORTED_VERSIONS.join(", ")})`);
  }
  // Minimum encoded size of a tensor info: name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
  const tensorCount = c.count("tensor count", 32);
  // Minimum size of a key/value: key length (8) + type (4) + 1 byte of value.
  const kvCount = c.count("metadata key/value count", 13);

  const metadata = new Map<string, unknown>();
  const metadataTypes = new Map<string, GGUFTypedValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata key #${i}`);
    if (key === "") c.fail(`metadata key #${i} is empty`);
    const typeAt = c.pos;
    const where = `metadata ${quote(key)}`;
    const type = c.u32(`type of ${where}`);
    let typed: GGUFTypedValue;
    if (type === GGUFValueType.ARRAY) {
      const { itemType, value, typedItems } = readArray(c, where, 0);
      typed = { type: GGUFValueType.ARRAY, itemType, value: typedItems ?? value };
      metadata.set(key, value);
    } else {
      if (minEncodedSize[type] === undefined) c.fail(`${where} at offset ${typeAt} has unknown value type ${type} (known: 0..12)`);
      typed = { type: type as GGUFValueType, value: readScalar(c, type, where) };
    }
    if (metadataTypes.has(key)) c.fail(`metadata key ${quote(key)} appears twice`);
    if (type !== GGUFValueType.ARRAY) metadata.set(key, typed.value);
    metadataTypes.set(key, typed);
  }

  const tensorsRaw: ParsedHeader["tensorsRaw"] = [];
  for (let i = 0; i < tensorCount; i++) {
    const at = c.pos;
    const nameAt = c.pos;
    const name = c.string(`name of tensor #${i}`);
    const where = `tensor ${quote(name)}`;
    // ggml keeps names in a char[GGML_MAX_NAME] with its terminating NUL: llama.cpp refuses longer ones.
    const nameBytes = c.pos - nameAt - 8;
    if (nameBytes >= GGML_MAX_NAME) c.fail(`name of tensor #${i} (${where}) is ${nameBytes} bytes long; GGUF tensor names have at most ${GGML_MAX_NAME - 1}`);
    const nDims = c.u32(`dimension count of ${where}`);
    if (nDims > GGUF_MAX_DIMS) c.fail(`${where} has ${nDims} dimensions (at most ${GGUF_MAX_DIMS} are allowed)`);
    const shape: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const dimAt = c.pos;
      const v = c.u64big(`dimension ${d} of ${where}`);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) c.fail(`${where} dimension ${d} is ${v} at offset ${dimAt}, which is absurdly large`);
      shape.push(Number(v));
    }
    const type = c.u32(`type of ${where}`);
    const relOffset = c.u64(`data offset of ${where}`);
    tensorsRaw.push({ name, type, shape, relOffset, at });
  }
  return { version, metadata, metadataTypes, tensorsRaw, headerEnd: c.pos };
}

/** One tensor's bytes, read piece by piece. */
export interface TensorData {
  readonly byteSize: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Present when the file's source can read synchronously. */
  readonly readSync: ((offset: number, length: number) => Uint8Array) | undefined;
}

/** A parsed GGUF file: metadata and tensor table in memory, tensor bytes read lazily from the source. */
export class GGUFFile {
  readonly source: ByteSource;
  readonly version: number;
  readonly alignment: number;
  readonly metadata: ReadonlyMap<string, unknown>;
  /** The same metadata with its GGUF value types (for rewriting the file faithfully). */
  readonly metadataTypes: ReadonlyMap<string, GGUFTypedValue>;
  readonly tensors: readonly GGUFTensorInfo[];
  /** Absolute offset where the tensor data section starts. */
  readonly dataOffset: number;
  private readonly byName: Map<string, GGUFTensorInfo>;

  constructor(source: ByteSource, h: ParsedHeader, alignment: number, dataOffset: number, tensors: GGUFTensorInfo[]) {
    this.source = source;
    this.version = h.version;
    this.metadata = h.metadata;
    this.metadataTypes = h.metadataTypes;
    this.alignment = alignment;
    this.dataOffset = dataOffset;
    this.tensors = tensors;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  get fileName(): string {
    return this.source.name;
  }
  get fileSize(): number {
    return this.source.size;
  }

  hasTensor(name: string): boolean {
    return this.byName.has(name);
  }

  /** The tensor's info; a clear error if the file lacks it. */
  tensor(name: string): GGUFTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new ModelFileError(this.fileName, `required tensor ${quote(name)} is missing`);
    return t;
  }

  async readTensorBytes(name: string): Promise<Uint8Array> {
    const t = this.tensor(name);
    return this.source.read(t.offset, t.byteSize);
  }

  /** Piecewise access to one tensor's bytes, so a loader can stream it without holding it whole. */
  tensorData(name: string): TensorData {
    const t = this.tensor(name);
    const src = this.source;
    const check = (offset: number, length: number) => {
      if (offset < 0 || length < 0 || offset + length > t.byteSize) {
        throw new RangeError(`tensor ${quote(name)}: bytes ${offset}..${offset + length} are outside its ${t.byteSize} bytes`);
      }
    };
    return {
      byteSize: t.byteSize,
      read: (offset, length) => {
        check(offset, length);
        return src.read(t.offset + offset, length);
      },
      readSync: src.readSync
        ? (offset, length) => {
            check(offset, length);
            return src.readSync!(t.offset + offset, length);
          }
        : undefined,
    };
  }

  async close(): Promise<void> {
    await this.source.close();
  }
}

/** Parses the header of a GGUF v2/v3 file and validates its tensor table against the file size. */
export async function readGGUF(source: ByteSource): Promise<GGUFFile> {
  const name = source.name;
  if (source.size < 24) {
    if (source.size >= 4) {
      const head = await source.read(0, 4);
      if (new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) !== GGUF_MAGIC) {
        const shown = Array.from(head, (b) => b.toString(16).padStart(2, "0")).join(" ");
        throw new ModelFileError(name, `not a GGUF file: magic bytes are ${shown}, expected 47 47 55 46 ("GGUF")`);
      }
    }
    throw new ModelFileError(name, `file is truncated: ${source.size} bytes is shorter than a GGUF header (24 bytes)`);
  }
  let prefixLength = Math.min(source.size, 8 << 20);
  let header: ParsedHeader;
  for (;;) {
    const prefix = await source.read(0, prefixLength);
    try {
      header = parseHeader(prefix, source.size, name);
      break;
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
      if (prefixLength >= source.size) {
        throw new ModelFileError(name, `file is truncated: it ends at byte ${source.size} while reading ${e.what}`);
      }
      prefixLength = Math.min(source.size, prefixLength * 4);
    }
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignTyped = header.metadataTypes.get("general.alignment");
  if (alignTyped !== undefined) {
    // The spec makes it a UINT32, and llama.cpp refuses any other type.
    if (alignTyped.type !== GGUFValueType.UINT32) {
      throw new ModelFileError(name, `metadata "general.alignment" has type ${valueTypeName(alignTyped.type, alignTyped.itemType)}, expected UINT32`);
    }
    const v = alignTyped.value as number | bigint;
    if (typeof v !== "number" || v <= 0 || v > 2 ** 30 || (v & (v - 1)) !== 0) {
      throw new ModelFileError(name, `metadata "general.alignment" is ${String(v)}, expected a power of two from 1 to 2^30`);
    }
    alignment = v;
  }
  const dataOffset = Math.ceil(header.headerEnd / alignment) * alignment;

  const tensors: GGUFTensorInfo[] = [];
  const seen = new Set<string>();
  for (const raw of header.tensorsRaw) {
    const where = `tensor ${quote(raw.name)}`;
    if (seen.has(raw.name)) throw new ModelFileError(name, `${where} appears twice in the tensor table`);
    seen.add(raw.name);
    const layout = ggmlBlockLayout(raw.type);
    if (!layout) throw new ModelFileError(name, `${where} has unknown tensor type id ${raw.type}`);
    const rowLength = raw.shape[0] ?? 1;
    if (rowLength % layout.blockSize !== 0) {
      throw new ModelFileError(name, `${where} has row length ${rowLength}, not a multiple of the ${layout.name} block size ${layout.blockSize}`);
    }
    let elements = 1;
    for (const d of raw.shape) elements *= d;
    if (!Number.isSafeInteger(elements)) throw new ModelFileError(name, `${where} has an absurd shape [${raw.shape.join(", ")}]`);
    const byteSize = (elements / layout.blockSize) * layout.bytesPerBlock;
    if (raw.relOffset % alignment !== 0) {
      throw new ModelFileError(name, `${where} data offset ${raw.relOffset} is not aligned to ${alignment} bytes`);
    }
    const offset = dataOffset + raw.relOffset;
    if (offset + byteSize > source.size) {
      throw new ModelFileError(
        name,
        `${where} (${layout.name}, shape [${raw.shape.join(", ")}], ${byteSize} bytes at offset ${offset}) runs past the end of the file (${source.size} bytes)`,
      );
    }
    tensors.push({ name: raw.name, type: raw.type, shape: raw.shape, offset, byteSize });
  }
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (cur.offset < prev.offset + prev.byteSize) {
      throw new ModelFileError(
        name,
        `tensor ${quote(cur.name)} (bytes ${cur.offset}..${cur.offset + cur.byteSize}) overlaps tensor ${quote(prev.name)} (bytes ${prev.offset}..${prev.offset + prev.byteSize})`,
      );
    }
  }
  return new GGUFFile(source, header!, alignment, dataOffset, tensors);
}


