import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MemoryByteSink, MemoryByteSource } from "../../src/format/byte-source.ts";
import { gguf, GGUFValueType } from "../../src/format/gguf.ts";
import { readGGUF } from "../../src/format/gguf-reader.ts";
import { writeGGUF, type GGUFWriteSpec } from "../../src/format/gguf-writer.ts";
import { openGGUFFile, writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";

import { TESTDATA as testdata } from "../helpers/testdata.ts";
import { tempDir } from "../helpers/temp-dir.ts";

async function toBytes(spec: GGUFWriteSpec): Promise<Uint8Array> {
  const sink = new MemoryByteSink();
  await writeGGUF(sink, spec);
  return sink.bytes();
}

const f32Bytes = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);

function sampleSpec(): GGUFWriteSpec {
  return {
    metadata: [
      ["general.architecture", gguf.str("llama")],
      ["u8", gguf.u8(200)],
      ["i8", gguf.i8(-100)],
      ["u16", gguf.u16(60000)],
      ["i16", gguf.i16(-30000)],
      ["u32", gguf.u32(4000000000)],
      ["i32", gguf.i32(-2000000000)],
      ["f32", gguf.f32(0.5)],
      ["f64", gguf.f64(Math.PI)],
      ["u64", gguf.u64(2n ** 60n)],
      ["i64", gguf.i64(-5)],
      ["bool", gguf.bool(true)],
      ["str", gguf.str("héllo ▁ 🦙")],
      ["strs", gguf.strings(["a", "", "ü"])],
      ["i32s", gguf.i32s([1, -2, 3])],
      ["nested", gguf.array(GGUFValueType.ARRAY, [gguf.i32s([1, 2]), gguf.strings(["x"])])],
    ],
    tensors: [
      { name: "a", type: GGMLType.F32, shape: [3], data: f32Bytes([1, 2, 3]) },
      { name: "b", type: GGMLType.F32, shape: [2, 2], data: () => f32Bytes([4, 5, 6, 7]) },
    ],
  };
}

test("a written GGUF reads back with every metadata type, nested arrays and tensors", async () => {
  const bytes = await toBytes(sampleSpec());
  const f = await readGGUF(new MemoryByteSource(bytes, "sample.gguf"));
  assert.equal(f.version, 3);
  const m = f.metadata;
  assert.equal(m.get("u8"), 200);
  assert.equal(m.get("i8"), -100);
  assert.equal(m.get("u16"), 60000);
  assert.equal(m.get("i16"), -30000);
  assert.equal(m.get("u32"), 4000000000);
  assert.equal(m.get("i32"), -2000000000);
  assert.equal(m.get("f32"), 0.5);
  assert.equal(m.get("f64"), Math.PI);
  assert.equal(m.get("u64"), 2n ** 60n);
  assert.equal(m.get("i64"), -5);
  assert.equal(m.get("bool"), true);
  assert.equal(m.get("str"), "héllo ▁ 🦙");
  assert.deepEqual(m.get("strs"), ["a", "", "ü"]);
  assert.deepEqual(Array.from(m.get("i32s") as Int32Array), [1, -2, 3]);
  const nested = m.get("nested") as unknown[];
  assert.deepEqual(Array.from(nested[0] as Int32Array), [1, 2]);
  assert.deepEqual(nested[1], ["x"]);
  assert.equal(f.tensors.length, 2);
  assert.equal(f.tensor("b").offset % 32, 0);
  assert.deepEqual(Array.from(new Float32Array((await f.readTensorBytes("b")).slice().buffer)), [4, 5, 6, 7]);
  // Rewriting from the typed metadata gives the same bytes.
  const again = await toBytes({ metadata: f.metadataTypes, tensors: sampleSpec().tensors });
  assert.deepEqual(again, bytes);
});

test("general.alignment is honoured for tensor offsets", async () => {
  const spec = sampleSpec();
  const bytes = await toBytes({ ...spec, alignment: 64 });
  const f = await readGGUF(new MemoryByteSource(bytes));
  assert.equal(f.alignment, 64);
  for (const t of f.tensors) assert.equal(t.offset % 64, 0);
});

test("the real stories260K GGUF reads with its 48 tensors and llama metadata", async () => {
  const f = await openGGUFFile(join(testdata, "stories260K/stories260K.gguf"));
  try {
    assert.equal(f.tensors.length, 48);
    assert.equal(f.metadata.get("general.architecture"), "llama");
    assert.equal((f.metadata.get("tokenizer.ggml.tokens") as string[]).length, 512);
    assert.deepEqual(f.tensor("token_embd.weight").shape, [64, 512]);
  } finally {
    await f.close();
  }
});

// ---- bad input: each gives one clear error naming the file and the problem ----

async function expectError(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  await assert.rejects(readGGUF(new MemoryByteSource(bytes, "bad.gguf")), (e: Error) => {
    assert.match(e.message, /^bad\.gguf: /);
    assert.match(e.message, pattern);
    return true;
  });
}

/** Finds the byte offset of the first occurrence of `needle` (for patching headers). */
function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Byte offset of the tensor-info record of tensor `name` (at its name's length prefix). */
function tensorInfoAt(bytes: Uint8Array, name: string): number {
  const enc = new TextEncoder().encode(name);
  const lenPrefix = new Uint8Array(8 + enc.length);
  new DataView(lenPrefix.buffer).setBigUint64(0, BigInt(enc.length), true);
  lenPrefix.set(enc, 8);
  // Tensor infos come after the metadata: search from the end of the "nested" key region.
  const at = indexOf(bytes, lenPrefix, indexOf(bytes, new TextEncoder().encode("nested")));
  assert.ok(at > 0);
  return at;
}

test("bad input: a truncated file", async () => {
  const bytes = await toBytes(sampleSpec());
  await expectError(bytes.subarray(0, 100), /truncated/);
  await expectError(bytes.subarray(0, 10), /truncated/);
  await expectError(bytes.subarray(0, bytes.length - 4), /runs past the end of the file/);
});

test("bad input: wrong magic", async () => {
  const bytes = await toBytes(sampleSpec());
  bytes.set([0x47, 0x47, 0x4d, 0x4c], 0);
  await expectError(bytes, /not a GGUF file: magic bytes are 47 47 4d 4c/);
});

test("bad input: unsupported version (GGUF v1 file and a future version)", async () => {
  const bytes = await toBytes(sampleSpec());
  new DataView(bytes.buffer).setUint32(4, 7, true);
  await expectError(bytes, /GGUF version 7 is not supported \(supported: 2, 3\)/);
  const v1 = await openGGUFFile(join(testdata, "stories260K/legacy/tinyllamas-stories-260k-f32.gguf")).catch((e: Error) => e);
  assert.ok(v1 instanceof Error);
  assert.match(v1.message, /tinyllamas-stories-260k-f32\.gguf: GGUF version 1 is not supported/);
});

test("bad input: unknown tensor type id", async () => {
  const bytes = await toBytes(sampleSpec());
  const at = tensorInfoAt(bytes, "a");
  // name (8+1) + n_dims (4) + 1 dim (8) -> type
  new DataView(bytes.buffer).setUint32(at + 9 + 4 + 8, 99, true);
  await expectError(bytes, /tensor "a" has unknown tensor type id 99/);
});

test("bad input: tensor data past the end of the file", async () => {
  const bytes = await toBytes(sampleSpec());
  const at = tensorInfoAt(bytes, "b");
  new DataView(bytes.buffer).setBigUint64(at + 9 + 4 + 16 + 4, 1n << 20n, true);
  await expectError(bytes, /tensor "b" .* runs past the end of the file/);
});

test("bad input: overlapping and misaligned tensor data", async () => {
  const bytes = await toBytes(sampleSpec());
  const at = tensorInfoAt(bytes, "b");
  const view = new DataView(bytes.buffer);
  view.setBigUint64(at + 9 + 4 + 16 + 4, 0n, true); // b at a's offset
  await expectError(bytes, /overlaps tensor/);
  view.setBigUint64(at + 9 + 4 + 16 + 4, 33n, true);
  await expectError(bytes, /tensor "b" data offset 33 is not aligned to 32 bytes/);
});

test("bad input: more than 4 dimensions", async () => {
  const bytes = await toBytes(sampleSpec());
  const at = tensorInfoAt(bytes, "a");
  new DataView(bytes.buffer).setUint32(at + 9, 5, true);
  await expectError(bytes, /tensor "a" has 5 dimensions \(at most 4 are allowed\)/);
});

test("bad input: absurd string and array lengths fail fast without allocating", async () => {
  const bytes = await toBytes(sampleSpec());
  const view = new DataView(bytes.buffer);
  // The first key's length prefix sits right after the 24-byte header.
  view.setBigUint64(24, 0xffffffffffffn, true);
  await expectError(bytes, /length of metadata key #0 is \d+ at offset 24, but only \d+ bytes of the file remain/);
  const bytes2 = await toBytes(sampleSpec());
  const strsKey = indexOf(bytes2, new TextEncoder().encode("strs"));
  // key "strs" then type (4) then item type (4) then count (8)
  new DataView(bytes2.buffer).setBigUint64(strsKey + 4 + 4 + 4, 1n << 50n, true);
  const t0 = performance.now();
  await expectError(bytes2, /length of metadata "strs" is \d+ .* but only \d+ bytes of the file remain/);
  assert.ok(performance.now() - t0 < 1000);
  const bytes3 = await toBytes(sampleSpec());
  new DataView(bytes3.buffer).setBigUint64(8, 1n << 62n, true);
  await expectError(bytes3, /tensor count is \d+ at offset 8, which is absurdly large|tensor count/);
});

test("writing refuses to overwrite an existing file unless asked", async () => {
  const dir = tempDir("mimo-gguf-");
  const path = join(dir, "x.gguf");
  writeFileSync(path, "precious");
  await assert.rejects(writeGGUFFile(path, sampleSpec()), /already exists; refusing to overwrite/);
  assert.equal(readFileSync(path, "utf8"), "precious");
  await writeGGUFFile(path, sampleSpec(), { overwrite: true });
  const f = await openGGUFFile(path);
  assert.equal(f.tensors.length, 2);
  await f.close();
});
