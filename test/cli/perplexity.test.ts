// `mimo perplexity` as a user runs it: the figure on stdout, progress on stderr, the base file
// written once and compared against.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { STORIES_DIR, TESTDATA } from "../helpers/testdata.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
const dir = tempDir("mimo-cli-ppl-");
const TEXT = join(TESTDATA, "eval", "stories.txt");

function mimo(...args: string[]) {
  const r = spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("mimo perplexity prints llama-perplexity's estimate, saves a base file once, and compares a quantized model against it", () => {
  const base = join(dir, "base.kld");
  const f32 = `${STORIES_DIR}/stories260K.gguf`;
  const r = mimo("perplexity", f32, "--text", TEXT, "-c", "128", "--chunks", "4", "--kl-divergence-base", base);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^4 chunks of 128 tokens \(252 scored of \d+ in the text\)\nFinal estimate: PPL = \d+\.\d{4} \+\/- \d+\.\d{5}\n$/);
  assert.match(r.stderr, /\[1\/4\] [\d.]+,\[2\/4\] [\d.]+,\[3\/4\] [\d.]+,\[4\/4\] [\d.]+\n/);
  assert.ok(existsSync(base));
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".partial")), []);

  const again = mimo("perplexity", f32, "--text", TEXT, "-c", "128", "--chunks", "4", "--kl-divergence-base", base);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^mimo: error: .*base\.kld: already exists; refusing to overwrite it/);

  const kl = mimo("perplexity", `${STORIES_DIR}/derived/stories260K-Q4_K_M.gguf`, "--kl-divergence-base", base, "--kl-divergence", "--json");
  assert.equal(kl.code, 0, kl.stderr);
  const j = JSON.parse(kl.stdout);
  assert.equal(j.scoredTokens, 252);
  assert.ok(j.klDivergence.value > 0 && j.klDivergence.value < 1, kl.stdout);
  assert.ok(j.sameTopToken.value > 0.5 && j.sameTopToken.value <= 1);
  assert.ok(j.perplexityRatio.value > 0.9 && j.perplexityRatio.value < 1.5);

  const human = mimo("perplexity", f32, "--kl-divergence-base", base, "--kl-divergence");
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /Mean PPL\(Q\)\/PPL\(base\)\s+: (0\.9999|1\.0000)\d+ ± /);
  assert.match(human.stdout, /Same top p: 100\.000 ± 0\.000 %/);
});

test("mimo perplexity explains what is missing", () => {
  const noText = mimo("perplexity", `${STORIES_DIR}/stories260K.gguf`);
  assert.equal(noText.code, 1);
  assert.match(noText.stderr, /--text <file> is required/);
});
