// `mimo prune` as a user runs it: --report prints the importances, pruning writes a smaller file
// and says what it removed, bad requests are clear errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
const dir = tempDir("mimo-cli-prune-");
const stories = `${STORIES_DIR}/stories260K.gguf`;
const text = `${STORIES_DIR}/golden.greedy.txt`;

function mimo(...args: string[]) {
  const r = spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("mimo prune --report prints per-layer importances; pruning writes a smaller file; bad requests are clear errors", () => {
  const rep = mimo("prune", stories, "--text", text, "--report", "-c", "64", "-q");
  assert.equal(rep.code, 0, rep.stderr);
  assert.match(rep.stdout, /^\d+ chunks of 64 tokens \(\d+ tokens\) from .*golden\.greedy\.txt\nlayer  block influence  ffn channel wanda/);
  assert.equal(rep.stdout.split("\n").filter((l) => /^\s+\d\s+0\.\d{4}\s/.test(l)).length, 5);
  assert.match(rep.stdout, /layers by block influence, lowest first \(removed first by --remove-layers\): (\d, ){4}\d/);

  const out = join(dir, "p.gguf");
  const r = mimo("prune", stories, out, "--text", text, "-c", "64", "--remove-layers", "1", "--ffn-ratio", "0.25", "-q");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /wrote .*p\.gguf: 5 -> 4 layers \(removed \d\), ffn 172 -> 128, heads 8\/4 -> 8\/4; 1\.17 -> 0\.\d\d MB of tensors/);
  const run = mimo("run", "Once", "-m", out, "--temp", "0", "-n", "8", "-q");
  assert.equal(run.code, 0, run.stderr);

  const named = mimo("prune", stories, join(dir, "n.gguf"), "--layers", "1,3", "-q");
  assert.equal(named.code, 0, named.stderr); // named layers need no calibration text
  assert.match(named.stderr, /5 -> 3 layers \(removed 1, 3\)/);

  const noText = mimo("prune", stories, join(dir, "x.gguf"), "--ffn-ratio", "0.5");
  assert.equal(noText.code, 1);
  assert.match(noText.stderr, /importance scores need calibration text: --text FILE/);
  const tooMany = mimo("prune", stories, join(dir, "x.gguf"), "--text", text, "-c", "64", "--kv-groups", "4", "-q");
  assert.equal(tooMany.code, 1);
  assert.match(tooMany.stderr, /cannot remove 4 KV group\(s\): the model has 4, and at least one must stay/);
  const badRatio = mimo("prune", stories, join(dir, "x.gguf"), "--ffn-ratio", "1.5");
  assert.equal(badRatio.code, 1);
  assert.match(badRatio.stderr, /--ffn-ratio is the fraction of FFN channels to remove/);
  const exists = mimo("prune", stories, out, "--layers", "0");
  assert.equal(exists.code, 1);
  assert.match(exists.stderr, /p\.gguf: already exists; refusing to overwrite it/);
});
