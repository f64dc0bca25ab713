// Hand-built malformed model files, after llama.cpp's tests/test-gguf.cpp (its HANDCRAFTED_* file
// types) and the 2024 GGUF parser CVEs (heap overflows from n_kv, n_tensors, n_dims, string and
// array lengths), plus the inconsistencies a fuzzing campaign found passing the load: each is
// rejected by loadModel with the right error class and a one-line message naming the file, the
// field or tensor, and what was expected. A few go through the CLI too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadModel, ModelFileError, TokenizerError, UnsupportedModelError, writeGGUFFile } from "../../src/index.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { tempDir } from "../helpers/temp-dir.ts";
import {
  T, addKv, concat, duplicateKv, duplicateTensor, gstr, kvBytes, kvIndex, removeKv, replaceTensor, scanGGUF, setKv, spliceHeader,
  stringItems, tensorIndex, tensorInfoBytes, u32, u64, val,
} from "../../fuzz/gguf-edit.ts";

const dir = tempDir("mimo-malformed-");
const seed = new Uint8Array(readFileSync(`${STORIES_DIR}/stories260K.gguf`));
const L = scanGGUF(seed);
const MAGIC = new Uint8Array([0x47, 0x47, 0x55, 0x46]);

/** A bare header: magic, version, tensor count, key/value count, then `rest`. */
const header = (version: number, nTensors: bigint | number, nKv: bigint | number, ...rest: Uint8Array[]) =>
  concat(MAGIC, u32(version), u64(nTensors), u64(nKv), ...rest);

/** The seed with tensor `name`'s info replaced. */
function withTensor(name: string, edit: (t: { dims: bigint[]; type: number; offset: bigint }) => { name?: string | Uint8Array; dims?: (bigint | number)[]; type?: number; offset?: bigint | number }) {
  const i = tensorIndex(L, name);
  const t = L.tensors[i]!;
  const e = edit({ dims: [...t.dims], type: t.type, offset: t.offset });
  return replaceTensor(seed, L, i, tensorInfoBytes(e.name ?? t.name, e.dims ?? t.dims, e.type ?? t.type, e.offset ?? t.offset));
}

const tokens = stringItems(seed, L.kvs[kvIndex(L, "tokenizer.ggml.tokens")]!);

interface Case {
  readonly name: string;
  readonly bytes: () => Uint8Array | Promise<Uint8Array>;
  readonly error: new (...args: never[]) => ModelFileError;
  /** The problem part of the message (after "<file>: "). */
  readonly problem: RegExp;
}

const cases: Case[] = [
  // ---- header (test-gguf.cpp HANDCRAFTED_HEADER_*) ----
  { name: "HEADER_BAD_MAGIC", bytes: () => concat(new Uint8Array([0x46, 0x55, 0x47, 0x47]), u32(3), u64(0), u64(0)), error: ModelFileError, problem: /^not a GGUF file: magic bytes are 46 55 47 47, expected 47 47 55 46 \("GGUF"\)$/ },
  { name: "HEADER_BAD_VERSION_0", bytes: () => header(0, 0, 0), error: ModelFileError, problem: /^GGUF version 0 is not supported \(supported: 2, 3\)$/ },
  { name: "HEADER_BAD_VERSION_1", bytes: () => header(1, 0, 0), error: ModelFileError, problem: /^GGUF version 1 is not supported/ },
  { name: "HEADER_BAD_VERSION_FUTURE", bytes: () => header(4, 0, 0), error: ModelFileError, problem: /^GGUF version 4 is not supported/ },
  { name: "HEADER_BAD_N_TENSORS (CVE-2024-21836)", bytes: () => header(3, 2n ** 64n - 1n, 0), error: ModelFileError, problem: /^tensor count is 18446744073709551615 at offset 8, which is absurdly large$/ },
  { name: "n_tensors past the file", bytes: () => header(3, 1n << 40n, 0), error: ModelFileError, problem: /^tensor count is 1099511627776 at offset 8, but only 8 bytes of the file remain/ },
  { name: "HEADER_BAD_N_KV (CVE-2024-21825)", bytes: () => header(3, 0, 2n ** 64n - 1n), error: ModelFileError, problem: /^metadata key\/value count is 18446744073709551615 at offset 16, which is absurdly large$/ },
  { name: "HEADER_EMPTY", bytes: () => header(3, 0, 0), error: ModelFileError, problem: /^required metadata key "general\.architecture" is missing$/ },
  { name: "empty file", bytes: () => new Uint8Array(0), error: ModelFileError, problem: /^file is truncated: 0 bytes is shorter than a GGUF header \(24 bytes\)$/ },
  { name: "big-endian file", bytes: () => concat(MAGIC, new Uint8Array([0, 0, 0, 3]), u64(0), u64(0)), error: ModelFileError, problem: /big-endian/ },

  // ---- key/values (HANDCRAFTED_KV_*) ----
  { name: "KV_BAD_KEY_SIZE (CVE-2024-23496, gguf_fread_str)", bytes: () => header(3, 0, 1, u64(2n ** 64n - 1n), new Uint8Array(16)), error: ModelFileError, problem: /^length of metadata key #0 is 18446744073709551615 at offset 24, which is absurdly large$/ },
  { name: "key length past the file", bytes: () => header(3, 0, 1, u64(1000), new Uint8Array(16)), error: ModelFileError, problem: /^length of metadata key #0 is 1000 at offset 24, but only 16 bytes of the file remain/ },
  { name: "KV_EMPTY_KEY", bytes: () => header(3, 0, 1, kvBytes("", val.u32(1))), error: ModelFileError, problem: /^metadata key #0 is empty$/ },
  { name: "KV_BAD_TYPE", bytes: () => header(3, 0, 1, gstr("my_key"), u32(13), new Uint8Array(8)), error: ModelFileError, problem: /^metadata "my_key" at offset 38 has unknown value type 13/ },
  { name: "array of an unknown element type", bytes: () => header(3, 0, 1, gstr("a"), u32(T.ARRAY), u32(0xffffffff), u64(1), new Uint8Array(8)), error: ModelFileError, problem: /^metadata "a" at offset 37 has unknown element type 4294967295$/ },
  { name: "KV_DUPLICATE_KEY", bytes: () => duplicateKv(seed, L, kvIndex(L, "llama.block_count")), error: ModelFileError, problem: /^metadata key "llama\.block_count" appears twice$/ },
  { name: "KV_BAD_ALIGN (13)", bytes: () => addKv(seed, L, "general.alignment", val.u32(13)), error: ModelFileError, problem: /^metadata "general\.alignment" is 13, expected a power of two from 1 to 2\^30$/ },
  { name: "alignment 0 (a division by zero in old readers)", bytes: () => addKv(seed, L, "general.alignment", val.u32(0)), error: ModelFileError, problem: /^metadata "general\.alignment" is 0, expected a power of two/ },
  { name: "KV_WRONG_TYPE_ALIGN (INT32)", bytes: () => addKv(seed, L, "general.alignment", val.i32(32)), error: ModelFileError, problem: /^metadata "general\.alignment" has type INT32, expected UINT32$/ },
  { name: "alignment stored as a string", bytes: () => addKv(seed, L, "general.alignment", val.str("32")), error: ModelFileError, problem: /^metadata "general\.alignment" has type STRING, expected UINT32$/ },
  { name: "string value length (CVE-2024-23496)", bytes: () => header(3, 0, 1, gstr("s"), u32(T.STRING), u64(2n ** 63n)), error: ModelFileError, problem: /^length of metadata "s" is 9223372036854775808 at offset 37, which is absurdly large$/ },
  { name: "array length times element size overflows (CVE-2024-23605)", bytes: () => header(3, 0, 1, gstr("a"), u32(T.ARRAY), u32(T.UINT64), u64(2n ** 50n), new Uint8Array(8)), error: ModelFileError, problem: /^length of metadata "a" is 1125899906842624 at offset 41, but only 8 bytes of the file remain/ },
  { name: "array of strings longer than the file", bytes: () => setKv(seed, L, "tokenizer.ggml.tokens", val.raw(T.ARRAY, concat(u32(T.STRING), u64(2n ** 40n)))), error: ModelFileError, problem: /^length of metadata "tokenizer\.ggml\.tokens" is 1099511627776 at offset \d+, but only \d+ bytes of the file remain/ },
  { name: "arrays nested 100 deep", bytes: () => header(3, 0, 1, gstr("n"), u32(T.ARRAY), ...Array.from({ length: 100 }, () => concat(u32(T.ARRAY), u64(1))), new Uint8Array(16)), error: ModelFileError, problem: /^metadata "n"(\[\])+ nests arrays more than 8 deep$/ },
  { name: "bool of value 2", bytes: () => addKv(seed, L, "x.flag", val.raw(T.BOOL, new Uint8Array([2]))), error: ModelFileError, problem: /^metadata "x\.flag" at offset \d+ is a bool with value 2 \(expected 0 or 1\)$/ },

  // ---- tensor infos (HANDCRAFTED_TENSORS_*) ----
  { name: "TENSORS_BAD_NAME_SIZE", bytes: () => withTensor("output_norm.weight", () => ({ name: "my_tensor_0_with_a_very_long_name_which_is_longer_than_what_is_allowed_for_ggml_tensors" })), error: ModelFileError, problem: /^name of tensor #\d+ \(tensor "my_tensor_0_with_a_very_long_name_which_is_longe…" \(87 chars\)\) is 87 bytes long; GGUF tensor names have at most 63$/ },
  { name: "TENSORS_BAD_N_DIMS (CVE-2024-21802)", bytes: () => withTensor("output_norm.weight", (t) => ({ dims: [...t.dims, 1n, 1n, 1n, 1n] })), error: ModelFileError, problem: /^tensor "output_norm\.weight" has 5 dimensions \(at most 4 are allowed\)$/ },
  { name: "n_dims 0xFFFFFFFF", bytes: () => spliceHeader(seed, L, L.tensors[0]!.start, L.tensors[0]!.end, concat(gstr(L.tensors[0]!.name), u32(0xffffffff))), error: ModelFileError, problem: /has 4294967295 dimensions \(at most 4 are allowed\)$/ },
  { name: "TENSORS_BAD_SHAPE (row length not a whole number of blocks)", bytes: async () => quantizedWith("blk.0.ffn_gate.weight", (t) => ({ dims: [t.dims[0]! - 1n, t.dims[1]!] })), error: ModelFileError, problem: /^tensor "blk\.0\.ffn_gate\.weight" has row length 255, not a multiple of the Q4_0 block size 32$/ },
  { name: "TENSORS_NE_TOO_BIG", bytes: () => withTensor("output_norm.weight", () => ({ dims: [2n ** 40n, 2n ** 40n] })), error: ModelFileError, problem: /^tensor "output_norm\.weight" has an absurd shape \[1099511627776, 1099511627776\]$/ },
  { name: "DATA_MEM_SIZE_OVERFLOW (dim 0x7FFFFFFFFFFFFFC0)", bytes: () => withTensor("output_norm.weight", () => ({ dims: [0x7fffffffffffffc0n, 1n] })), error: ModelFileError, problem: /^tensor "output_norm\.weight" dimension 0 is 9223372036854775744 at offset \d+, which is absurdly large$/ },
  { name: "TENSORS_BAD_TYPE", bytes: () => withTensor("output_norm.weight", () => ({ type: 0xffffffff })), error: ModelFileError, problem: /^tensor "output_norm\.weight" has unknown tensor type id 4294967295$/ },
  { name: "TENSORS_BAD_OFFSET (past the end)", bytes: () => withTensor("output_norm.weight", () => ({ offset: 1n << 32n })), error: ModelFileError, problem: /^tensor "output_norm\.weight" \(F32, shape \[64\], 256 bytes at offset 4294981472\) runs past the end of the file \(1185376 bytes\)$/ },
  { name: "offset + size wraps around 2^64", bytes: () => withTensor("output_norm.weight", () => ({ offset: 2n ** 64n - 32n })), error: ModelFileError, problem: /^data offset of tensor "output_norm\.weight" is 18446744073709551584 at offset \d+, which is absurdly large$/ },
  { name: "TENSORS_DUPLICATE_NAME", bytes: () => duplicateTensor(seed, L, tensorIndex(L, "output_norm.weight")), error: ModelFileError, problem: /^tensor "output_norm\.weight" appears twice in the tensor table$/ },
  { name: "TENSORS_BAD_ALIGN (offset not aligned)", bytes: () => withTensor("output_norm.weight", (t) => ({ offset: t.offset + 4n })), error: ModelFileError, problem: /^tensor "output_norm\.weight" data offset \d+ is not aligned to 32 bytes$/ },
  { name: "overlapping tensors", bytes: () => withTensor("output_norm.weight", () => ({ offset: L.tensors[tensorIndex(L, "token_embd.weight")]!.offset })), error: ModelFileError, problem: /overlaps tensor/ },
  { name: "DATA_NOT_ENOUGH_DATA (truncated data)", bytes: () => seed.slice(0, seed.byteLength - 100), error: ModelFileError, problem: /runs past the end of the file \(1185276 bytes\)$/ },
  { name: "truncated header", bytes: () => seed.slice(0, 5000), error: ModelFileError, problem: /^file is truncated: it ends at byte 5000 while reading (length of )?metadata "tokenizer\.ggml\.tokens"\[\]$|^length of metadata "tokenizer\.ggml\.tokens"\[\] is \d+ at offset \d+, but only \d+ bytes of the file remain/ },
  { name: "TENSORS_ZERO_DIM (a valid container, but not this model's shape)", bytes: () => withTensor("output_norm.weight", () => ({ dims: [0n] })), error: ModelFileError, problem: /^tensor "output_norm\.weight" has shape \[0\], expected \[64\]$/ },

  // ---- what passed the load before and failed while generating ----
  { name: "fewer tokens than token_embd rows", bytes: () => setKv(seed, L, "tokenizer.ggml.tokens", val.strings(tokens.slice(0, 500))), error: ModelFileError, problem: /^the tokenizer has 500 tokens \(tokenizer\.ggml\.tokens\) but tensor "token_embd\.weight" has 512 rows; they must be equal$/ },
  { name: "tokenizer arrays consistent but smaller than token_embd", bytes: () => shrinkVocab(500), error: ModelFileError, problem: /^the tokenizer has 500 tokens \(tokenizer\.ggml\.tokens\) but tensor "token_embd\.weight" has 512 rows; they must be equal$/ },
  { name: "more tokens than token_embd rows", bytes: () => growVocab(600), error: ModelFileError, problem: /^the tokenizer has 600 tokens \(tokenizer\.ggml\.tokens\) but tensor "token_embd\.weight" has 512 rows; they must be equal$/ },
  { name: "empty vocabulary", bytes: () => shrinkVocab(0), error: TokenizerError, problem: /^tokenizer\.ggml\.tokens is empty: the vocabulary has no tokens$/ },
  { name: "BOS id outside the vocabulary", bytes: () => setKv(seed, L, "tokenizer.ggml.bos_token_id", val.u32(600)), error: TokenizerError, problem: /^metadata "tokenizer\.ggml\.bos_token_id" is 600, outside the vocabulary of 512 tokens \(0\.\.511\)$/ },
  { name: "EOS id -1", bytes: () => setKv(seed, L, "tokenizer.ggml.eos_token_id", val.i32(-1)), error: TokenizerError, problem: /^metadata "tokenizer\.ggml\.eos_token_id" is -1, outside the vocabulary/ },
  { name: "context_length 1", bytes: () => setKv(seed, L, "llama.context_length", val.u32(1)), error: ModelFileError, problem: /^metadata "llama\.context_length" is 1, expected at least 2$/ },
  { name: "tokenizer model missing", bytes: () => removeKv(seed, L, "tokenizer.ggml.model"), error: TokenizerError, problem: /^metadata has no tokenizer\.ggml\.model; supported: llama, gpt2, bert$/ },
  { name: "tokenizer model not supported", bytes: () => setKv(seed, L, "tokenizer.ggml.model", val.str("rwkv")), error: TokenizerError, problem: /^tokenizer model "rwkv" is not supported \(supported: llama, gpt2, bert\)$/ },
  { name: "gpt2 tokenizer without merges", bytes: () => setKv(seed, L, "tokenizer.ggml.model", val.str("gpt2")), error: TokenizerError, problem: /^BPE \(gpt2\) tokenizer metadata has no tokenizer\.ggml\.merges$/ },
  { name: "token_type shorter than tokens", bytes: () => setKv(seed, L, "tokenizer.ggml.token_type", val.i32s([1, 1, 1])), error: TokenizerError, problem: /^tokenizer\.ggml\.token_type has 3 entries for 512 tokens$/ },
  { name: "tokens missing", bytes: () => removeKv(seed, L, "tokenizer.ggml.tokens"), error: TokenizerError, problem: /^metadata has no tokenizer\.ggml\.tokens$/ },
  { name: "a bool stored as a string", bytes: () => addKv(seed, L, "tokenizer.ggml.add_bos_token", val.str("true")), error: TokenizerError, problem: /^metadata "tokenizer\.ggml\.add_bos_token" should be a bool, found the string "true"$/ },
  { name: "a count stored as a string", bytes: () => setKv(seed, L, "llama.block_count", val.str("five")), error: ModelFileError, problem: /^metadata "llama\.block_count" should be a number, found string "five"$/ },
  { name: "architecture with escape sequences", bytes: () => setKv(seed, L, "general.architecture", val.str("\x1b[31mllama\u202e\0")), error: UnsupportedModelError, problem: /^architecture "\\x1b\[31mllama\\u\{202e\}\\0" is not supported \(supported: llama, qwen2, qwen3, mimo\)$/ },

  // ---- corrupt names: escaped and cut ----
  { name: "a 200 KB key of NUL bytes, twice", bytes: () => addKv(addKv(seed, L, new Uint8Array(200_000), val.u32(1)), scanGGUF(addKv(seed, L, new Uint8Array(200_000), val.u32(1))), new Uint8Array(200_000), val.u32(1)), error: ModelFileError, problem: /^metadata key "(\\0){48}…" \(200000 chars\) appears twice$/ },
  { name: "a tensor name of control bytes", bytes: () => withTensor("output_norm.weight", () => ({ name: new Uint8Array([0x6f, 0x0a, 0x00, 0x1b, 0x7f]) })), error: ModelFileError, problem: /^required tensor "output_norm\.weight" is missing$/ },
];

/** The seed with a consistent vocabulary of n tokens (tokens, scores, token types cut together). */
function shrinkVocab(n: number): Uint8Array {
  let f: Uint8Array = seed;
  for (const [key, v] of [
    ["tokenizer.ggml.tokens", val.strings(tokens.slice(0, n))],
    ["tokenizer.ggml.scores", val.f32s(Array.from({ length: n }, () => 0))],
    ["tokenizer.ggml.token_type", val.i32s(Array.from({ length: n }, (_, i) => (i < 3 ? 3 : i < 259 ? 6 : 1)))],
  ] as const) f = setKv(f, scanGGUF(f), key, v);
  if (n <= 2) for (const k of ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"]) f = removeKv(f, scanGGUF(f), k);
  return f;
}

function growVocab(n: number): Uint8Array {
  const extra = Array.from({ length: n - tokens.length }, (_, i) => new TextEncoder().encode(`<extra_${i}>`));
  let f: Uint8Array = setKv(seed, L, "tokenizer.ggml.tokens", val.strings([...tokens, ...extra]));
  f = setKv(f, scanGGUF(f), "tokenizer.ggml.scores", val.f32s(Array.from({ length: n }, () => 0)));
  return setKv(f, scanGGUF(f), "tokenizer.ggml.token_type", val.i32s(Array.from({ length: n }, () => 1)));
}

/** A small synthetic Q4_0 model with one tensor info edited (for block-size cases). */
async function quantizedWith(name: string, edit: (t: { dims: bigint[] }) => { dims: bigint[] }): Promise<Uint8Array> {
  const path = join(dir, "q4.gguf");
  await writeGGUFFile(path, syntheticModel({ arch: "llama", dim: 256, ffnDim: 256, nHeads: 4, nKvHeads: 2, nLayers: 1, vocabSize: 300, contextLength: 64, weightType: GGMLType.Q4_0, seed: 1 }), { overwrite: true });
  const f = new Uint8Array(readFileSync(path));
  const l = scanGGUF(f);
  const i = tensorIndex(l, name);
  const t = l.tensors[i]!;
  return replaceTensor(f, l, i, tensorInfoBytes(t.name, edit({ dims: [...t.dims] }).dims, t.type, t.offset));
}

const written = new Map<string, string>();
async function fileOf(c: Case): Promise<string> {
  let path = written.get(c.name);
  if (!path) {
    path = join(dir, `${c.name.replace(/[^A-Za-z0-9]+/g, "_")}.gguf`);
    writeFileSync(path, await c.bytes());
    written.set(c.name, path);
  }
  return path;
}

for (const c of cases) {
  test(`${c.name}: ${c.error.name}`, async () => {
    const path = await fileOf(c);
    await assert.rejects(loadModel(path, { backend: "reference" }), (e: unknown) => {
      assert.ok(e instanceof c.error, `expected ${c.error.name}, got ${String(e).slice(0, 300)}`);
      assert.equal(e.file, path);
      assert.ok(e.message.startsWith(`${path}: `), e.message.slice(0, 200));
      assert.match(e.problem, c.problem);
      assert.ok(!/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(e.message) && e.message.length <= 700, `not one printable line: ${JSON.stringify(e.message.slice(0, 300))}`);
      return true;
    });
  });
}

test("head size 6: the default backend falls back to reference; asking for wasm names the backend that can run it", async () => {
  const path = join(dir, "head6.gguf");
  await writeGGUFFile(path, syntheticModel({ arch: "llama", dim: 48, ffnDim: 64, nHeads: 8, nKvHeads: 4, nLayers: 1, vocabSize: 300, contextLength: 64, weightType: GGMLType.F32, seed: 1 }), { overwrite: true });
  const model = await loadModel(path);
  try {
    assert.equal(model.backendName, "reference");
    assert.equal((await model.complete([1, 2, 3], { temperature: 0, maxTokens: 3, ignoreEos: true })).tokens.length, 3);
  } finally {
    await model.dispose();
  }
  await assert.rejects(loadModel(path, { backend: "wasm" }), (e: unknown) =>
    e instanceof UnsupportedModelError &&
    e.message === `${path}: head size 6 is not a multiple of 4, which the wasm backend's attention kernels need; load it with backend: "reference" (CLI: --backend reference)`);
});

// ---- the CLI: one line naming the file, a non-zero exit, no stack trace ----

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
function mimo(...args: string[]) {
  const r = spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", timeout: 120_000, env: { ...process.env, MIMO_DEBUG: "" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("the CLI reports malformed files in one line naming the file, exits 1, and prints no stack trace", async () => {
  for (const name of ["a 200 KB key of NUL bytes, twice", "HEADER_BAD_N_KV (CVE-2024-21825)", "BOS id outside the vocabulary", "architecture with escape sequences"]) {
    const path = await fileOf(cases.find((c) => c.name === name)!);
    for (const args of [["run", "x", "-m", path, "-n", "2"], ["info", path]]) {
      if (args[0] === "info" && !name.startsWith("HEADER")) continue; // info shows what it can of a readable header
      const r = mimo(...args);
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      const lines = r.stderr.split("\n");
      assert.equal(lines.length, 2, `${name}: ${JSON.stringify(r.stderr.slice(0, 400))}`);
      assert.equal(lines[1], "");
      assert.ok(lines[0]!.startsWith(`mimo: error: ${path}: `), lines[0]);
      assert.ok(lines[0]!.length <= 720 && !/[\p{Cc}\p{Cf}]/u.test(lines[0]!), lines[0]);
      assert.ok(!/\n\s+at /.test(r.stderr));
    }
  }
});

test("the CLI runs a head-size-6 model on the reference backend by default and explains --backend wasm", async () => {
  const path = join(dir, "head6.gguf");
  const ok = mimo("run", "", "-m", path, "-n", "3", "--temp", "0", "--ignore-eos", "-q");
  assert.equal(ok.code, 0, ok.stderr);
  const r = mimo("run", "", "-m", path, "-n", "3", "--backend", "wasm");
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `mimo: error: ${path}: head size 6 is not a multiple of 4, which the wasm backend's attention kernels need; load it with backend: "reference" (CLI: --backend reference)\n`);
});
