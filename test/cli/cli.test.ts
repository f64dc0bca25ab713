// The `mimo` command as a user runs it: output on stdout, timings and errors on stderr.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { defaultModelPath } from "../../src/index.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
const dir = tempDir("mimo-cli-");

function mimo(...args: string[]) {
  const r = spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('mimo run "" --temp 0 -n 256 prints the golden story and timings', () => {
  const r = mimo("run", "", "--temp", "0", "-n", "256");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(`${STORIES_DIR}/golden.greedy.txt`, "utf8"));
  assert.match(r.stderr, /load [\d.]+ ms \| prompt 1 tok in [\d.]+ ms \([\d.]+ tok\/s\) \| first token [\d.]+ ms \| generated 256 tok in [\d.]+ ms \([\d.]+ tok\/s\)/);
});

test('mimo run "Zoo" --temp 0 continues the prompt', () => {
  const r = mimo("run", "Zoo", "--temp", "0", "-n", "20", "-q");
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.startsWith("Zoo was a little girl named Lily."), r.stdout);
  assert.equal(r.stderr, "");
});

test("mimo run --spec ngram and --spec draft:FILE print the golden story and the speculation figures", () => {
  const golden = readFileSync(`${STORIES_DIR}/golden.greedy.txt`, "utf8");
  for (const spec of ["ngram", `draft:${defaultModelPath()}`]) {
    const r = mimo("run", "", "--temp", "0", "-n", "256", "--spec", spec, "--draft-max", "4");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, golden);
    assert.match(r.stderr, /speculative (ngram|draft): \d+ draft tokens in \d+ steps, \d+ accepted \([\d.]+%\) \| mean accepted length [\d.]+ \| [\d.]+ tokens per forward pass/);
  }
  const bad = mimo("run", "x", "--spec", "mtp", "-n", "2");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^mimo: error: speculative "mtp" needs a model with multi-token-prediction layers/);
});

test("mimo run with a seed is reproducible", () => {
  const a = mimo("run", "Once upon a time", "-n", "30", "-s", "7", "-q");
  const b = mimo("run", "Once upon a time", "-n", "30", "-s", "7", "-q");
  assert.equal(a.code, 0);
  assert.equal(a.stdout, b.stdout);
});

test("mimo info prints architecture, hyper-parameters, tokenizer and the tensor table", () => {
  const r = mimo("info", `${STORIES_DIR}/derived/stories260K-Q4_K_M.gguf`);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /architecture: "llama"/);
  assert.match(r.stdout, /hyper-parameters: layers 5, dim 64, ffn 172, heads 8, kv heads 4, head dim 8, vocab 512/);
  assert.match(r.stdout, /tokenizer: "llama", 512 tokens, bos 1, eos 2/);
  assert.match(r.stdout, /token_embd\.weight\s+Q5_0\s+\[64, 512\]\s+22528/);
  assert.match(r.stdout, /blk\.0\.ffn_down\.weight\s+F16\s+\[172, 64\]/);
});

test("mimo convert writes a GGUF and refuses to overwrite without --force", () => {
  const out = join(dir, "s.gguf");
  const args = ["convert", `${STORIES_DIR}/stories260K.bin`, "-t", `${STORIES_DIR}/tok512.bin`, "-o", out];
  const r = mimo(...args);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(out));
  const again = mimo(...args);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^mimo: error: .*s\.gguf: already exists; refusing to overwrite it/);
  assert.equal(mimo(...args, "--force").code, 0);
  const run = mimo("run", "", "-m", out, "--temp", "0", "-n", "16", "-q");
  assert.ok(run.stdout.startsWith("Once upon a time, there was a little girl"));
});

test("bad input gives one clear line naming the file and the problem, exit code 1, no stack trace", () => {
  const good = readFileSync(`${STORIES_DIR}/stories260K.gguf`);
  const cases: [string, Uint8Array, RegExp][] = [
    ["truncated.gguf", good.subarray(0, 5000), /file is truncated|runs past the end of the file|truncated or corrupt/],
    ["magic.gguf", Buffer.concat([Buffer.from("GGML"), good.subarray(4)]), /not a GGUF file: magic bytes are 47 47 4d 4c/],
    ["version.gguf", Buffer.concat([good.subarray(0, 4), Buffer.from([9, 0, 0, 0]), good.subarray(8)]), /GGUF version 9 is not supported/],
    ["empty.gguf", new Uint8Array(0), /file is truncated: 0 bytes/],
  ];
  for (const [name, bytes, pattern] of cases) {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    for (const args of [["info", path], ["run", "x", "-m", path]]) {
      const r = mimo(...args);
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.ok(lines[0]!.startsWith(`mimo: error: ${path}: `), lines[0]);
      assert.match(lines[0]!, pattern);
    }
  }
  const missing = mimo("run", "x", "-m", join(dir, "nope.gguf"));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^mimo: error: .*nope\.gguf: no such file\n$/);
});

test("bad options are reported by name", () => {
  const r = mimo("run", "x", "-n", "many");
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--n-predict must be an integer, got "many"/);
  const p = mimo("run", "x", "--top-p", "2", "-q");
  assert.equal(p.code, 1);
  assert.match(p.stderr, /^mimo: error: --top-p must be between 0 and 1, got 2\n$/);
});

test("mimo bench --warmup MS decodes untimed for MS ms before measuring (a lower bound on the run's time) and says so; a negative value is an error naming the flag", () => {
  const args = ["bench", "-m", `${STORIES_DIR}/stories260K.gguf`, "-t", "1", "-p", "0", "-n", "4", "-r", "1", "-q"];
  const t0 = performance.now();
  const r = mimo(...args, "--warmup", "1500");
  const ms = performance.now() - t0;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /each thread count's figures follow 1\.5 s of untimed decoding/);
  assert.ok(ms >= 1500, `the run took ${ms.toFixed(0)} ms, less than its warm-up`);
  const none = mimo(...args, "--warmup", "0");
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /follow 0 s of untimed decoding/);
  const bad = mimo(...args, "--warmup", "-5");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--warmup/);
});

test("mimo bench --scenario command --pause N runs each command after N ms idle; a negative pause is an error naming the flag", () => {
  const r = mimo("bench", "--scenario", "command", "-m", `${STORIES_DIR}/stories260K.gguf`, "-t", "1", "--no-peer", "--commands", "4", "--pause", "20", "-q");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /4 commands, .*1 thread\(s\), each command after 20 ms idle \(--pause\)\./);
  assert.match(r.stdout, /\| stories260K\.gguf \| mimo \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \/ [\d.]+ \| 100% \|/);
  const bad = mimo("bench", "--scenario", "command", "-m", `${STORIES_DIR}/stories260K.gguf`, "--no-peer", "--pause", "-5");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--pause/);
});
