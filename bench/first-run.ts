// A new user's first minutes, timed: the README's quick-start run command (`npx mimo run ...`) in a
// fresh clone, the first time (npx has never seen the project: a fresh npm cache, offline) and the
// second time. Reported: time to the first output (the prompt's echo), to the first generated
// token, and to the end, for each. test/package/quick-start.test.ts uses the same clone and
// checks that the first run does not rebuild.
//
//   npm run bench:first-run                 # 3 repetitions, saves bench/results/<stamp>-first-run.*
//   npm run bench:first-run -- -r 1 --no-save
//
// The clone holds the repository's files (the working tree), node_modules linked (not installed
// again: minutes, and the network) and the build outputs with their stamps, then runs `npm run
// prepare` as `npm install` does, which rebuilds whatever does not match.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { machineInfo } from "./machine.ts";

const root = fileURLToPath(new URL("../", import.meta.url));

/** The commands of the README's quick start block, comments dropped. */
export function quickStartCommands(): string[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Quick start"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  return block.split("\n").map((l) => l.replace(/\s+#.*$/, "").trim()).filter(Boolean);
}

/** The user's environment: PATH without node_modules/.bin (npm scripts put the project's there). */
export function userEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: (process.env.PATH ?? "").split(delimiter).filter((p) => !p.includes("node_modules/.bin")).join(delimiter) };
}

export interface FreshClone {
  /** The clone's directory. */
  readonly dir: string;
  /** An environment whose npm cache is new (npx has never installed the project) and offline. */
  freshNpmEnv(name: string): NodeJS.ProcessEnv;
  remove(): void;
}

/** A clone of the working tree as `npm install` leaves it (see the header). */
export function freshClone(): FreshClone {
  const base = mkdtempSync(join(tmpdir(), "mimo-clone-"));
  const dir = join(base, "mimo");
  const files = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" });
  if (files.status !== 0) throw new Error(`git ls-files failed: ${files.stderr}`);
  for (const f of files.stdout.split("\0").filter(Boolean)) {
    if (!existsSync(join(root, f))) continue; // deleted in the working tree
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    // An untracked symlink (say, to a folder of benchmark files) stays a symlink.
    if (lstatSync(join(root, f)).isSymbolicLink()) symlinkSync(readlinkSync(join(root, f)), join(dir, f));
    else cpSync(join(root, f), join(dir, f));
  }
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  for (const d of ["dist", "build/kernels", "build/.stamps"]) {
    if (existsSync(join(root, d))) cpSync(join(root, d), join(dir, d), { recursive: true });
  }
  const env = userEnv();
  const prepare = spawnSync("npm", ["run", "prepare", "--silent"], { cwd: dir, env, encoding: "utf8" });
  if (prepare.status !== 0) throw new Error(`npm run prepare failed in the clone: ${prepare.stderr}`);
  return {
    dir,
    freshNpmEnv: (name) => ({ ...env, npm_config_cache: join(base, name), npm_config_offline: "true", npm_config_update_notifier: "false" }),
    remove: () => rmSync(base, { recursive: true, force: true }),
  };
}

export interface TimedRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** ms to the first byte on stdout (the CLI echoes the prompt first). */
  firstOutputMs: number;
  /** ms to the first byte after the echoed prompt: the first generated token. */
  firstTokenMs: number;
  totalMs: number;
}

/** Runs a shell command, timing its output; `echo`: what it prints before its first token. */
export async function timedRun(cmd: string, cwd: string, env: NodeJS.ProcessEnv, echo = ""): Promise<TimedRun> {
  const t0 = performance.now();
  const child = spawn("sh", ["-c", cmd], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let firstOutputMs = 0;
  let firstTokenMs = 0;
  child.stdout.on("data", (d: Buffer) => {
    const now = performance.now() - t0;
    if (!firstOutputMs) firstOutputMs = now;
    stdout += d.toString();
    if (!firstTokenMs && stdout.length > echo.length) firstTokenMs = now;
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { code, stdout, stderr, firstOutputMs, firstTokenMs, totalMs: performance.now() - t0 };
}

/** The prompt of a `npx mimo run "PROMPT" ...` command (what the CLI echoes). */
export function promptOf(run: string): string {
  return /run\s+"([^"]*)"/.exec(run)?.[1] ?? "";
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values: a } = parseArgs({ options: { reps: { type: "string", short: "r", default: "3" }, "no-save": { type: "boolean", default: false } } });
  const reps = Number(a.reps);
  if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`-r must be a positive integer, got "${a.reps}"`);
  const run = quickStartCommands().find((c) => c.startsWith("npx mimo run "));
  if (!run) throw new Error("README.md's quick start has no `npx mimo run` command");
  const echo = promptOf(run);
  const loadAtStart = loadavg()[0]!;
  const log = (s: string) => process.stderr.write(`bench:first-run: ${s}\n`);
  log(`\`${run}\` in a fresh clone, ${reps} repetition(s)`);
  const clone = freshClone();
  const rows: { rep: number; first: TimedRun; second: TimedRun }[] = [];
  try {
    for (let r = 1; r <= reps; r++) {
      const env = clone.freshNpmEnv(`npm-cache-${r}`); // npx has never seen the project
      const first = await timedRun(run, clone.dir, env, echo);
      const second = await timedRun(run, clone.dir, env, echo);
      for (const [name, x] of [["first", first], ["second", second]] as const) {
        if (x.code !== 0 || !x.stdout.startsWith(echo)) throw new Error(`the ${name} run failed (exit ${x.code}): ${x.stderr.trim().split("\n").at(-1)}`);
      }
      rows.push({ rep: r, first, second });
      log(`rep ${r}: first run: first token after ${(first.firstTokenMs / 1000).toFixed(2)} s; second run: ${(second.firstTokenMs / 1000).toFixed(2)} s`);
    }
  } finally {
    clone.remove();
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[(xs.length - 1) >> 1]!;
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const v = (cmd: string) => spawnSync(cmd, ["--version"], { env: userEnv(), encoding: "utf8" }).stdout.trim();
  const machine = { ...machineInfo(), loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadavg()[0]! };
  const lines = [
    `\`${run}\` in a fresh clone (medians of ${reps}; each repetition with a new npm cache, offline):`,
    "",
    "| run | first output (the prompt's echo) | first generated token | done |",
    "|---|---|---|---|",
    ...(["first", "second"] as const).map(
      (k) => `| ${k === "first" ? "first (npx installs the project into its cache)" : "second"} | ${s(median(rows.map((x) => x[k].firstOutputMs)))} s | ${s(median(rows.map((x) => x[k].firstTokenMs)))} s | ${s(median(rows.map((x) => x[k].totalMs)))} s |`,
    ),
    "",
    `Machine: ${machine.cpu}, ${machine.cpus} CPUs; npx ${v("npx")} on the system Node ${v("node")}; load average ${loadAtStart.toFixed(2)} at the start, ${machine.loadAverageAtEnd.toFixed(2)} at the end (above ~1 means other work shared the CPUs).`,
  ];
  const md = lines.join("\n") + "\n";
  process.stdout.write(md);
  if (!a["no-save"]) {
    const d = new Date();
    const stamp = `${d.toISOString().slice(0, 10)}-${d.toISOString().slice(11, 16).replace(":", "")}-first-run`;
    mkdirSync(join(root, "bench/results"), { recursive: true });
    writeFileSync(join(root, "bench/results", `${stamp}.md`), `# bench:first-run ${d.toISOString()}\n\n${md}`);
    const strip = (x: TimedRun) => ({ code: x.code, firstOutputMs: x.firstOutputMs, firstTokenMs: x.firstTokenMs, totalMs: x.totalMs, stats: x.stderr.trim().split("\n").at(-1) });
    writeFileSync(join(root, "bench/results", `${stamp}.json`), JSON.stringify({ date: d.toISOString(), machine, command: run, rows: rows.map((x) => ({ rep: x.rep, first: strip(x.first), second: strip(x.second) })) }, null, 2) + "\n");
    log(`saved bench/results/${stamp}.md and .json`);
  }
}
