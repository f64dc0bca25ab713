// `mimo quantize` and `mimo imatrix` as a user runs them: summary and warnings on stderr, clear
// errors, nothing overwritten without --force, no partial file left behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadModel } from "../../src/index.ts";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
const dir = tempDir("mimo-cli-quantize-");
const stories = `${STORIES_DIR}/stories260K.gguf`;

function mimo(...args: string[]) {
  const r = spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("mimo quantize writes a file mimo runs, summarises it, and refuses to overwrite without --force", async () => {
  const out = join(dir, "q4km.gguf");
  const r = mimo("quantize", stories, out, "Q4_K_M", "-t", "2");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /wrote .*q4km\.gguf: Q4_K_M, 1\.2 MB -> 0\.3 MB of tensors \([\d.]+ bits per weight\); tensors: .*Q5_0.*; \d+ fell back to another type because their rows are not whole blocks \| 2 threads/);
  const model = await loadModel(out, { backend: "reference" });
  try {
    assert.equal((await model.complete("", { temperature: 0, maxTokens: 8 })).tokens.length, 8);
  } finally {
    await model.dispose();
  }
  const again = mimo("quantize", stories, out, "Q8_0");
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^mimo: error: .*q4km\.gguf: already exists; refusing to overwrite it/);
  assert.equal(mimo("quantize", stories, out, "Q8_0", "--force", "-q").code, 0);
});

test("requantizing a quantized file warns; unknown types and bad overrides are clear errors", () => {
  const r = mimo("quantize", `${STORIES_DIR}/derived/stories260K-Q4_K_M.gguf`, join(dir, "re.gguf"), "Q4_0", "-q");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: .*stories260K-Q4_K_M\.gguf is already quantized \(.*Q5_0.*\); requantizing loses more quality/);
  const bad = mimo("quantize", stories, join(dir, "bad.gguf"), "Q4_X");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown quantization type "Q4_X" \(one of F32, F16, BF16, Q8_0, Q6_K, Q5_K_M/);
  const badTT = mimo("quantize", stories, join(dir, "bad.gguf"), "Q4_K_M", "--tensor-type", "ffn_up=Q9");
  assert.equal(badTT.code, 1);
  assert.match(badTT.stderr, /--tensor-type "ffn_up=Q9": Q9 is not a tensor type mimo computes/);
  assert.ok(!existsSync(join(dir, "bad.gguf")));
});

test("an unwritable destination fails naming it, and leaves no partial or temporary file", () => {
  const r = mimo("quantize", stories, join(dir, "no-such-folder", "x.gguf"), "Q8_0", "-q");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-such-folder.*x\.gguf: cannot write here/);
  const needs = mimo("quantize", stories, join(dir, "q2ks.gguf"), "Q2_K_S", "-q");
  assert.equal(needs.code, 0, needs.stderr); // stories260K has no Q2_K tensors (its rows fall back), so no importance matrix is needed
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith(".")), []);
});

test("mimo imatrix writes llama.cpp's GGUF importance matrix; --imatrix uses it and rejects another model's", () => {
  const text = join(dir, "calib.txt");
  writeFileSync(text, "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ".repeat(12));
  const im = join(dir, "stories.imatrix.gguf");
  const r = mimo("imatrix", stories, "--text", text, "-c", "64", "-o", im, "-q");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /wrote .*stories\.imatrix\.gguf: 35 matrices, \d+ chunks of 64 tokens/);
  const q = mimo("quantize", stories, join(dir, "q4-imatrix.gguf"), "Q4_0", "--imatrix", im, "-q");
  assert.equal(q.code, 0, q.stderr);
  const short = mimo("imatrix", stories, "--text", text, "-c", "4096", "-o", join(dir, "x.gguf"));
  assert.equal(short.code, 1);
  assert.match(short.stderr, /chunk size 4096 exceeds the context size|fewer than one chunk/);
  // an importance matrix of another model (different column counts)
  const other = join(dir, "other.imatrix.gguf");
  writeFileSync(other, Buffer.from("not an imatrix at all"));
  const bad = mimo("quantize", stories, join(dir, "x2.gguf"), "Q4_0", "--imatrix", other);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /other\.imatrix\.gguf: is not an importance matrix/);
});
