// The README's quick start as a new user runs it in a fresh clone: `npm install`, then the run
// command, typed in a shell whose PATH has no project binaries. The first `npx mimo` installs the
// project into npx's cache (npm does that for a package's own bin) and runs its `prepare` step;
// the build must find itself up to date there instead of rebuilding. The time to the first output
// of that first run is recorded as a benchmark line (timings are never pass/fail); `npm run
// bench:first-run` measures it on its own, with repetitions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { freshClone, promptOf, quickStartCommands, timedRun, userEnv } from "../../bench/first-run.ts";

test("README quick start in a fresh clone: the first run streams a story without rebuilding (benchmark line)", async (t) => {
  const [install, run] = quickStartCommands();
  assert.equal(install, "npm install");
  assert.match(run!, /^npx mimo run /);
  const env = userEnv();
  if (spawnSync("npx", ["--version"], { env, encoding: "utf8" }).status !== 0) {
    t.skip("no npx on PATH");
    return;
  }

  // The clone: the repository's files (working tree, so uncommitted edits count), the
  // dependencies and the build of its prepare step (bench/first-run.ts).
  const fresh = freshClone();
  const clone = fresh.dir;
  try {
    const stampTime = statSync(join(clone, "build/.stamps/dist.json")).mtimeMs;
    const distTime = statSync(join(clone, "dist/index.js")).mtimeMs;

    // A fresh npm cache: npx has never seen this project (the true first run). Offline: the first
    // run needs no network.
    const runEnv = fresh.freshNpmEnv("npm-cache");
    const echo = promptOf(run!);
    const first = await timedRun(run!, clone, runEnv, echo);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(first.stdout.startsWith("Once upon a time"), first.stdout.slice(0, 100));
    assert.match(first.stderr, /load [\d.]+ ms \| prompt \d+ tok in [\d.]+ ms .* \| finish: (length|stop)\n/);
    // npx ran the project's prepare step, which found the build up to date.
    assert.equal(statSync(join(clone, "build/.stamps/dist.json")).mtimeMs, stampTime, "the first run rebuilt the package");
    assert.equal(statSync(join(clone, "dist/index.js")).mtimeMs, distTime, "the first run rebuilt dist/");
    assert.ok(existsSync(join(runEnv.npm_config_cache!, "_npx")), "npx did not install the project into its cache");

    const second = await timedRun(run!, clone, runEnv, echo);
    assert.equal(second.code, 0, second.stderr);
    const s = (ms: number) => (ms / 1000).toFixed(2);
    const npx = spawnSync("npx", ["--version"], { env, encoding: "utf8" }).stdout.trim();
    const node = spawnSync("node", ["--version"], { env, encoding: "utf8" }).stdout.trim();
    t.diagnostic(
      `benchmark: fresh clone, \`${run}\`: first run: first token after ${s(first.firstTokenMs)} s, done in ${s(first.totalMs)} s; ` +
        `second run: ${s(second.firstTokenMs)} s, ${s(second.totalMs)} s (npx ${npx} on system Node ${node}, ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores; npm run bench:first-run measures it alone)`,
    );
  } finally {
    fresh.remove();
  }
});
