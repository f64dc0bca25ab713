// The README's quick start as a new user runs it in a fresh clone: `npm install`, then the run
// command, typed in a shell whose PATH has no project binaries. The first `npx mimo` installs the
// project into npx's cache (npm does that for a package's own bin) and runs its `prepare` step;
// the build must find itself up to date there instead of rebuilding. The time to the first output
// of that first run is recorded as a benchmark line (timings are never pass/fail).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** The commands of the README's quick start block, comments dropped. */
function quickStartCommands(): string[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Quick start"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  return block.split("\n").map((l) => l.replace(/\s+#.*$/, "").trim()).filter(Boolean);
}

/** The user's PATH: no node_modules/.bin (npm test puts the project's there). */
function userPath(): string {
  return (process.env.PATH ?? "").split(delimiter).filter((p) => !p.includes("node_modules/.bin")).join(delimiter);
}

async function timed(cmd: string, cwd: string, env: NodeJS.ProcessEnv) {
  const t0 = performance.now();
  const child = spawn("sh", ["-c", cmd], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let firstOutputMs = 0;
  child.stdout.on("data", (d: Buffer) => {
    if (!firstOutputMs) firstOutputMs = performance.now() - t0;
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { code, stdout, stderr, firstOutputMs, totalMs: performance.now() - t0 };
}

test("README quick start in a fresh clone: the first run streams a story without rebuilding (benchmark line)", async (t) => {
  const [install, run] = quickStartCommands();
  assert.equal(install, "npm install");
  assert.match(run!, /^npx mimo run /);
  const env = { ...process.env, PATH: userPath() };
  if (spawnSync("npx", ["--version"], { env, encoding: "utf8" }).status !== 0) {
    t.skip("no npx on PATH");
    return;
  }

  // The clone: the repository's files (working tree, so uncommitted edits count).
  const clone = join(mkdtempSync(join(tmpdir(), "mimo-clone-")), "mimo");
  const files = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" });
  assert.equal(files.status, 0, files.stderr);
  for (const f of files.stdout.split("\0").filter(Boolean)) {
    if (!existsSync(join(root, f))) continue; // deleted in the working tree
    mkdirSync(dirname(join(clone, f)), { recursive: true });
    cpSync(join(root, f), join(clone, f));
  }
  // What `npm install` leaves in it: the dependencies (the same tree as this checkout's, linked
  // rather than installed again: minutes, and the network) and the build of its prepare step. The
  // build's outputs are copied with their stamps; the stamps hold the hash of the sources, which
  // are identical, and `prepare` below rebuilds whatever does not match.
  symlinkSync(join(root, "node_modules"), join(clone, "node_modules"), "dir");
  for (const d of ["dist", "build/kernels", "build/.stamps"]) {
    if (existsSync(join(root, d))) cpSync(join(root, d), join(clone, d), { recursive: true });
  }
  const prepare = spawnSync("npm", ["run", "prepare", "--silent"], { cwd: clone, env, encoding: "utf8" });
  assert.equal(prepare.status, 0, prepare.stderr);
  const stampTime = statSync(join(clone, "build/.stamps/dist.json")).mtimeMs;
  const distTime = statSync(join(clone, "dist/index.js")).mtimeMs;

  // A fresh npm cache: npx has never seen this project (the true first run). Offline: the first
  // run needs no network.
  const runEnv = { ...env, npm_config_cache: join(dirname(clone), "npm-cache"), npm_config_offline: "true", npm_config_update_notifier: "false" };
  const first = await timed(run!, clone, runEnv);
  assert.equal(first.code, 0, first.stderr);
  assert.ok(first.stdout.startsWith("Once upon a time"), first.stdout.slice(0, 100));
  assert.match(first.stderr, /load [\d.]+ ms \| prompt \d+ tok in [\d.]+ ms .* \| finish: (length|stop)\n/);
  // npx ran the project's prepare step, which found the build up to date.
  assert.equal(statSync(join(clone, "build/.stamps/dist.json")).mtimeMs, stampTime, "the first run rebuilt the package");
  assert.equal(statSync(join(clone, "dist/index.js")).mtimeMs, distTime, "the first run rebuilt dist/");
  assert.ok(existsSync(join(dirname(clone), "npm-cache", "_npx")), "npx did not install the project into its cache");

  const second = await timed(run!, clone, runEnv);
  assert.equal(second.code, 0, second.stderr);
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const npx = spawnSync("npx", ["--version"], { env, encoding: "utf8" }).stdout.trim();
  const node = spawnSync("node", ["--version"], { env, encoding: "utf8" }).stdout.trim();
  t.diagnostic(
    `benchmark: fresh clone, \`${run}\`: first run: first output after ${s(first.firstOutputMs)} s, done in ${s(first.totalMs)} s; ` +
      `second run: ${s(second.firstOutputMs)} s, ${s(second.totalMs)} s (npx ${npx} on system Node ${node}, ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores)`,
  );
});
