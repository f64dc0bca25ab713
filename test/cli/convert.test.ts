// `mimo convert` on a Hugging Face folder as a user runs it: one summary line, progress, the file
// under its final name only when complete, an existing file kept unless --force.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { writeHfModel } from "../helpers/hf-model.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
const root = tempDir("mimo-cli-convert-");

function mimo(...args: string[]) {
  const r = spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("mimo convert turns a Hugging Face folder into a GGUF, keeps an existing file unless --force, and quantizes with --outtype", async () => {
  const dir = join(root, "Qwen3-tiny");
  writeHfModel(dir, { arch: "qwen3", dim: 64, ffnDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 32, vocabSize: 300, tied: true, dtype: "BF16", seed: 3, shards: 2 });
  const out = join(root, "out.gguf");
  const r = mimo("convert", dir, "-o", out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /Qwen3-tiny: qwen3, 2 layers, tied output, matrices as BF16 -> .*out\.gguf \([\d.]+ MiB\)\n/);
  assert.match(r.stderr, /\[24\/24\] [\d.]+ MiB \/ [\d.]+ MiB blk\.1\.ffn_down\.weight\n/);
  assert.match(r.stderr, /wrote .*out\.gguf: 24 tensors, [\d.]+ MiB in [\d.]+ s\n$/);
  const f = await openGGUFFile(out);
  assert.equal(f.metadata.get("general.name"), "Qwen3-tiny");
  assert.equal(f.tensor("blk.0.attn_q.weight").type, GGMLType.BF16);
  await f.source.close();

  writeFileSync(out, "keep me");
  const again = mimo("convert", join(dir, "config.json"), "-o", out, "--outtype", "q8_0");
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^mimo: error: .*out\.gguf: already exists; refusing to overwrite it/);
  assert.equal(readFileSync(out, "utf8"), "keep me");
  const forced = mimo("convert", join(dir, "config.json"), "-o", out, "--outtype", "q8_0", "--force");
  assert.equal(forced.code, 0, forced.stderr);
  const q = await openGGUFFile(out);
  assert.equal(q.tensor("blk.0.ffn_up.weight").type, GGMLType.Q8_0);
  await q.source.close();
  assert.deepEqual(readdirSync(root).filter((n) => n.endsWith(".partial")), []);

  const bad = mimo("convert", dir, "-o", join(root, "x.gguf"), "--outtype", "q9_9");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--outtype must be auto, one of f32, f16, .*q8_0.*; got "q9_9"/);
});

test("mimo convert --outtype q4_k_m writes the bytes and types of convert to F32 followed by mimo quantize Q4_K_M", async () => {
  const dir = join(root, "Qwen2-256");
  // 256-column rows so the K-quant mixes apply; 4 layers so Q4_K_M's "more bits" layers differ from the rest.
  writeHfModel(dir, { arch: "qwen2", dim: 256, ffnDim: 256, nLayers: 4, nHeads: 4, nKvHeads: 2, vocabSize: 300, tied: false, dtype: "F32", seed: 5 });
  const direct = join(root, "direct-q4km.gguf");
  const r = mimo("convert", dir, "-o", direct, "--outtype", "Q4_K_M");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /separate output, Q4_K_M \(Q4_K, attn_v and ffn_down Q6_K on half the layers\) -> /);
  const f32 = join(root, "f32.gguf");
  assert.equal(mimo("convert", dir, "-o", f32, "--outtype", "f32").code, 0);
  const twoStep = join(root, "two-step-q4km.gguf");
  const q = mimo("quantize", f32, twoStep, "Q4_K_M", "-q");
  assert.equal(q.code, 0, q.stderr);
  const a = await openGGUFFile(direct);
  const b = await openGGUFFile(twoStep);
  try {
    assert.equal(a.metadata.get("general.file_type"), b.metadata.get("general.file_type"));
    const types = new Set<number>();
    for (const t of b.tensors) {
      assert.equal(a.tensor(t.name).type, t.type, t.name);
      assert.deepEqual(await a.readTensorBytes(t.name), await b.readTensorBytes(t.name), t.name);
      types.add(t.type);
    }
    assert.equal(a.tensors.length, b.tensors.length);
    // The mix is really a mix: Q4_K, Q6_K (attn_v/ffn_down on the more-bits layers, output) and F32 norms.
    assert.deepEqual([...types].sort((x, y) => x - y), [GGMLType.F32, GGMLType.Q4_K, GGMLType.Q6_K]);
  } finally {
    await a.source.close();
    await b.source.close();
  }
  const bad = mimo("convert", dir, "-o", join(root, "y.gguf"), "--outtype", "q4_k_x");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /or a file type \(.*q4_k_m.*\); got "q4_k_x"/);
});
