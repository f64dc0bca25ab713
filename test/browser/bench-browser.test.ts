// `npm run bench:browser` works: one short run on the bundled model proves the harness (the
// loopback page, mimo and wllama in Chromium, mimo in Node, the same prompt tokens for all, which
// wllama's own counts confirm in the page). Figures are printed, never judged: timing is not a test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHROMIUM = process.env.MIMO_CHROMIUM ?? "/usr/bin/chromium";
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}; .ci/run installs Debian's chromium package`);
const skip = haveBrowser ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set MIMO_CHROMIUM)`;

test("bench:browser: mimo and wllama in Chromium and mimo in Node measure the same prompt on stories260K", { skip, timeout: 120_000 }, (t) => {
  const r = spawnSync(process.execPath, ["bench/browser.ts", "--files", "stories260K", "-t", "1", "-p", "8", "-n", "8", "-r", "1", "--no-save", "--no-bandwidth", "--json"], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, MIMO_CHROMIUM: CHROMIUM },
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    chromium: string;
    wllamaSimd: Record<string, boolean>;
    results: { file: string; threads: number; runs: { engine: string; describe?: string; error?: string; tests: Record<string, { median: number }> }[] }[];
  };
  assert.match(out.chromium, /^\d+\./);
  const [c] = out.results;
  assert.equal(c?.file, "stories260K.gguf");
  assert.deepEqual(c.runs.map((x) => x.engine), ["mimo", "wllama", "mimo-node"]);
  for (const run of c.runs) {
    assert.equal(run.error, undefined, `${run.engine}: ${run.error}`);
    for (const name of ["pp8", "tg8"]) assert.ok(run.tests[name]!.median > 0, `${run.engine} ${name}`);
    t.diagnostic(`${run.engine} (${run.describe}): pp8 ${run.tests.pp8!.median.toFixed(0)} tok/s, tg8 ${run.tests.tg8!.median.toFixed(0)} tok/s`);
  }
  assert.match(c.runs[0]!.describe!, /^wasm-/);
  assert.match(c.runs[1]!.describe!, /^@wllama\/wllama/);
  // The caveat the README states, read from wllama's own wasm.
  assert.equal(out.wllamaSimd.ggml_vec_dot_q4_0_q8_0, false);
  assert.equal(out.wllamaSimd.ggml_vec_dot_q8_0_q8_0, true);
});
