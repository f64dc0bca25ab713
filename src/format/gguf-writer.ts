import type { ByteSink } from "./byte-source.ts";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUFValueType, type GGUFTypedValue } from "./gguf.ts";
import { ggmlTypeLayout as ggmlBlockLayout, ggmlTypeName as ggmlTypeNameOf } from "../quant/ggml-type.ts";

export interface GGUFTensorToWrite {
  readonly name: string;
  readonly type: number;
  /** ggml order: shape[0] is the row length. */
  readonly shape: readonly number[];
  /**
   * The tensor's bytes, or a function producing them when the writer reaches this tensor (keeps
   * memory flat): all at once, or as consecutive pieces (a large tensor converted a slice at a time).
   */
  readonly data: Uint8Array | (() => Uint8Array | Promise<Uint8Array> | AsyncIterable<Uint8Array>);
}

export interface GGUFWriteSpec {
  readonly metadata: Iterable<readonly [string, GGUFTypedValue]>;
  readonly tensors: readonly GGUFTensorToWrite[];
  readonly alignment?: number;
  /** Called after each tensor is written (progress for long writes). */
  readonly onTensorWritten?: (index: number, total: number, name: string) => void;
}

const utf8 = new TextEncoder();

/** Little-endian byte builder for the header. */
class HeaderBuilder {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private reserve(n: number): void {
    if (this.length + n <= this.buf.byteLength) return;
    let cap = this.buf.byteLength * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.reserve(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.reserve(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.reserve(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.reserve(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: number | bigint): void { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: number | bigint): void { this.reserve(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array): void { this.reserve(b.byteLength); this.buf.set(b, this.length); this.length += b.byteLength; }
  string(s: string): void {
    const b = utf8.encode(s);
    this.u64(b.byteLength);
    this.bytes(b);
  }
  padTo(alignment: number): void {
    const target = Math.ceil(this.length / alignment) * alignment;
    this.reserve(target - this.length);
    this.buf.fill(0, this.length, target);
    this.length = target;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(h: HeaderBuilder, type: number, v: unknown, key: string): void {
  switch (type) {
    case GGUFValueType.UINT8: return h.u8(v as number);
    case GGUFValueType.INT8: return h.i8(v as number);
    case GGUFValueType.UINT16: return h.u16(v as number);
    case GGUFValueType.INT16: return h.i16(v as number);
    case GGUFValueType.UINT32: return h.u32(v as number);
    case GGUFValueType.INT32: return h.i32(v as number);
    case GGUFValueType.FLOAT32: return h.f32(v as number);
    case GGUFValueType.FLOAT64: return h.f64(v as number);
    case GGUFValueType.UINT64: return h.u64(v as number | bigint);
    case GGUFValueType.INT64: return h.i64(v as number | bigint);
    case GGUFValueType.BOOL: return h.u8(v ? 1 : 0);
    case GGUFValueType.STRING:
      if (typeof v !== "string") throw new TypeError(`metadata "${key}": expected a string`);
      return h.string(v);
    default:
      throw new TypeError(`metadata "${key}": cannot write value type ${type}`);
  }
}

function writeValue(h: HeaderBuilder, tv: GGUFTypedValue, key: string): void {
  h.u32(tv.type);
  if (tv.type !== GGUFValueType.ARRAY) return writeScalar(h, tv.type, tv.value, key);
  writeArrayBody(h, tv, key);
}

function writeArrayBody(h: HeaderBuilder, tv: GGUFTypedValue, key: string): void {
  const itemType = tv.itemType;
  if (itemType === undefined) throw new TypeError(`metadata "${key}": array without an element type`);
  const items = tv.value as ArrayLike<unknown>;
  h.u32(itemType);
  h.u64(items.length);
  for (let i = 0; i < items.length; i++) {
    if (itemType === GGUFValueType.ARRAY) writeArrayBody(h, items[i] as GGUFTypedValue, key);
    else writeScalar(h, itemType, items[i], key);
  }
}

/** The byte size of a tensor of this type and shape (error if the row is not whole blocks). */
export function tensorDataSize(type: number, shape: readonly number[], name: string): number {
  const layout = ggmlBlockLayout(type);
  if (!layout) throw new TypeError(`tensor "${name}": unknown GGML type id ${type}`);
  const row = shape[0] ?? 1;
  if (row % layout.blockSize !== 0) {
    throw new TypeError(`tensor "${name}": row length ${row} is not a multiple of the ${ggmlTypeNameOf(type)} block size ${layout.blockSize}`);
  }
  return (shape.reduce((a, b) => a * b, 1) / layout.blockSize) * layout.bytesPerBlock;
}

/** Writes a GGUF v3 file to `sink`, streaming tensor data one tensor at a time. */
export async function writeGGUF(sink: ByteSink, spec: GGUFWriteSpec): Promise<void> {
  const metadata = [...spec.metadata];
  let alignment = spec.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const alignEntry = metadata.find(([k]) => k === "general.alignment");
  if (alignEntry) alignment = alignEntry[1].value as number;
  else if (alignment !== GGUF_DEFAULT_ALIGNMENT) metadata.push(["general.alignment", { type: GGUFValueType.UINT32, value: alignment }]);

  const h = new HeaderBuilder();
  h.u32(GGUF_MAGIC);
  h.u32(3);
  h.u64(spec.tensors.length);
  h.u64(metadata.length);
  for (const [key, value] of metadata) {
    h.string(key);
    writeValue(h, value, key);
  }
  const sizes = spec.tensors.map((t) => tensorDataSize(t.type, t.shape, t.name));
  let rel = 0;
  const offsets: number[] = [];
  for (let i = 0; i < spec.tensors.length; i++) {
    offsets.push(rel);
    rel += Math.ceil(sizes[i]! / alignment) * alignment;
  }
  spec.tensors.forEach((t, i) => {
    h.string(t.name);
    h.u32(t.shape.length);
    for (const d of t.shape) h.u64(d);
    h.u32(t.type);
    h.u64(offsets[i]!);
  });
  h.padTo(alignment);
  await sink.write(h.result());

  for (let i = 0; i < spec.tensors.length; i++) {
    const t = spec.tensors[i]!;
    const data = typeof t.data === "function" ? await t.data() : t.data;
    const wrongSize = (n: number) => new TypeError(`tensor "${t.name}": got ${n} bytes, expected ${sizes[i]} for ${ggmlTypeNameOf(t.type)} [${t.shape.join(", ")}]`);
    let written = 0;
    if (data instanceof Uint8Array) {
      if (data.byteLength !== sizes[i]) throw wrongSize(data.byteLength);
      await sink.write(data);
      written = data.byteLength;
    } else {
      for await (const piece of data) {
        if (written + piece.byteLength > sizes[i]!) throw wrongSize(written + piece.byteLength);
        await sink.write(piece);
        written += piece.byteLength;
      }
      if (written !== sizes[i]) throw wrongSize(written);
    }
    const pad = Math.ceil(written / alignment) * alignment - written;
    if (pad > 0 && i < spec.tensors.length - 1) await sink.write(new Uint8Array(pad));
    spec.onTensorWritten?.(i, spec.tensors.length, t.name);
  }
  await sink.close();
}
