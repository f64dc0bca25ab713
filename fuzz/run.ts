// The fuzz harness: `npm run fuzz -- --cases N --seed S [options]`.
// Each case (a deterministic mutation of stories260K or one of its quantized variants, see
// mutate.ts) runs in a child process under a time and a memory limit, and is classified as typed
// rejection, loaded and generated, other error, hang or memory. Prints a summary table and exits
// non-zero on any outcome but the first two. `--exit-loop N` instead runs the CLI N times on the
// bundled model and counts runs that do not exit in time.
import { fork, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { goodOutcomes, seedFiles, type CaseResult, type Outcome } from "./case.ts";
import type { CaseRequest } from "./child.ts";
import { mutate } from "./mutate.ts";

const { values: a } = parseArgs({
  options: {
    cases: { type: "string", default: "1000" },
    seed: { type: "string", default: "1" },
    first: { type: "string", default: "0" },
    case: { type: "string" },
    backend: { type: "string", default: "reference" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "4" },
    jobs: { type: "string", default: "2" },
    timeout: { type: "string", default: "30000" },
    memory: { type: "string", default: "1024" },
    "cases-per-child": { type: "string", default: "200" },
    save: { type: "string" },
    json: { type: "string" },
    "exit-loop": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

if (a.help) {
  process.stdout.write(`npm run fuzz -- [options]
  --cases N            cases to run (default 1000)
  --seed S             run seed (default 1); case K of seed S is always the same file
  --first K            index of the first case (default 0)
  --case K             run only case K and print its details
  --backend B          reference (default) or wasm
  --threads T          wasm compute threads (default 2)
  --tokens N           tokens generated after a successful load (default 4)
  --jobs J             child processes at once (default 2)
  --timeout MS         time limit per case (default 30000): over it the case is a hang
  --memory MB          resident memory limit of a child (default 1024): over it the case is a memory failure
  --cases-per-child N  cases a child runs before it is replaced (default 200)
  --save DIR           write the file of every bad case there
  --json FILE          write every case's result there
  --exit-loop N        instead: run the CLI N times on the bundled model and count hangs (no exit within
                       --timeout of printing the whole result)
`);
  process.exit(0);
}

const int = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`);
  return n;
};
const seed = int("seed", a.seed);
const jobs = Math.max(1, int("jobs", a.jobs));
const timeoutMs = int("timeout", a.timeout);
const memoryMb = int("memory", a.memory);
const backend = a.backend === "wasm" ? "wasm" : a.backend === "reference" ? "reference" : (() => { throw new Error(`--backend must be reference or wasm, got ${a.backend}`); })();

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Resident memory of a process in MB (Linux), or 0 where /proc is absent. */
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

const machine = `${cpus()[0]?.model ?? "unknown CPU"} x${cpus().length}, Node ${process.versions.node}`;

// ---- the CLI exit loop ----

async function exitLoop(runs: number): Promise<void> {
  const entry = fileURLToPath(new URL("../src/cli/entry.ts", import.meta.url));
  let hangs = 0;
  let failures = 0;
  const times: number[] = [];
  let next = 0;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const child = spawn(process.execPath, [entry, "run", "Once upon a time", "-n", "16", "--temp", "0", "-q"], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      // A hang is a run that printed its whole result and then did not exit: the time limit
      // starts when the output is complete (generation on a loaded machine may be slow).
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          hangs++;
          process.stdout.write(`run ${i}: printed its result but did not exit within ${timeoutMs} ms; killed\n`);
          child.kill("SIGKILL");
        }, timeoutMs);
      };
      // The run prints the prompt, the continuation, then one newline at the end: complete.
      child.stdout.on("data", () => {
        if (out.endsWith("\n")) arm();
      });
      const stuck = setTimeout(() => {
        failures++;
        process.stdout.write(`run ${i}: no result after 10 minutes; killed\n`);
        child.kill("SIGKILL");
      }, 600_000);
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        clearTimeout(stuck);
        times.push(performance.now() - t0);
        if (signal === null && (code !== 0 || !out.startsWith("Once upon a time"))) {
          failures++;
          process.stdout.write(`run ${i}: exit code ${code}: ${err.trim().slice(0, 300)}\n`);
        }
        resolve();
      });
    });
  const worker = async () => {
    while (next < runs) await one(next++);
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  times.sort((x, y) => x - y);
  process.stdout.write(
    `\nCLI exit loop: ${runs} runs of \`mimo run "Once upon a time" -n 16 --temp 0 -q\` (bundled model), ${jobs} at once, ${timeoutMs} ms limit each\n` +
      `| runs | hangs | failed | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|---:|\n` +
      `| ${runs} | ${hangs} | ${failures} | ${percentile(times, 50).toFixed(0)} | ${percentile(times, 99).toFixed(0)} | ${times[times.length - 1]?.toFixed(0)} |\n` +
      `machine: ${machine}\n`,
  );
  process.exitCode = hangs + failures > 0 ? 1 : 0;
}

// ---- the fuzz run ----

interface Slot {
  child: ChildProcess;
  done: number;
}

async function fuzz(first: number, count: number): Promise<void> {
  const childScript = fileURLToPath(new URL("./child.ts", import.meta.url));
  const perChild = Math.max(1, int("cases-per-child", a["cases-per-child"]));
  const tokens = int("tokens", a.tokens);
  const threads = int("threads", a.threads);
  const results: CaseResult[] = [];
  let next = first;
  const end = first + count;
  const t0 = performance.now();
  let lastReport = t0;

  const spawnChild = () =>
    new Promise<Slot>((resolve, reject) => {
      const child = fork(childScript, [], { execArgv: [`--max-old-space-size=${memoryMb}`], stdio: ["ignore", "ignore", "pipe", "ipc"], serialization: "advanced" });
      child.stderr!.resume();
      child.once("message", () => resolve({ child, done: 0 }));
      child.once("error", reject);
    });

  const runOne = (slot: Slot, index: number) =>
    new Promise<CaseResult>((resolve) => {
      const req: CaseRequest = { seed, index, backend, threads, tokens };
      const tStart = performance.now();
      let settled = false;
      let stderr = "";
      const onErr = (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000));
      slot.child.stderr!.on("data", onErr);
      const finish = (r: CaseResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(poll);
        slot.child.stderr!.off("data", onErr);
        slot.child.off("message", onMessage);
        slot.child.off("exit", onExit);
        resolve(r);
      };
      const bad = (outcome: Outcome, reason: string): CaseResult => {
        const m = mutate(readFileSync(join(fileURLToPath(new URL("../", import.meta.url)), seedFiles[index % seedFiles.length]!)), seed, index);
        return { index, seedFile: seedFiles[index % seedFiles.length]!, kinds: m.kinds, details: m.details, outcome, ms: performance.now() - tStart, reason };
      };
      const onMessage = (r: CaseResult) => finish(r);
      const onExit = (code: number | null, signal: string | null) => {
        if (settled) return;
        const oom = /heap out of memory|allocation failed|Array buffer allocation failed/i.test(stderr);
        finish(bad(oom ? "memory" : "error", `child exited (code ${code}, signal ${signal})${oom ? ": out of memory" : ""}: ${stderr.trim().split("\n").slice(-3).join(" / ").slice(0, 400)}`));
      };
      const timer = setTimeout(() => {
        slot.child.kill("SIGKILL");
        finish(bad("hang", `no result after ${timeoutMs} ms`));
      }, timeoutMs);
      const poll = setInterval(() => {
        const mb = rssMb(slot.child.pid!);
        if (mb > memoryMb) {
          slot.child.kill("SIGKILL");
          finish(bad("memory", `resident memory ${mb.toFixed(0)} MB over the ${memoryMb} MB limit`));
        }
      }, 50);
      slot.child.on("message", onMessage);
      slot.child.once("exit", onExit);
      slot.child.send(req);
    });

  const worker = async () => {
    let slot: Slot | undefined;
    while (next < end) {
      const index = next++;
      if (!slot || slot.done >= perChild || slot.child.exitCode !== null || slot.child.signalCode !== null) {
        if (slot) slot.child.kill("SIGKILL");
        slot = await spawnChild();
      }
      const r = await runOne(slot, index);
      slot.done++;
      if (r.outcome === "hang" || r.outcome === "memory" || slot.child.killed) {
        slot.child.kill("SIGKILL");
        slot = undefined;
      }
      results.push(r);
      if (!goodOutcomes.includes(r.outcome)) {
        process.stdout.write(`case ${r.index} (${r.seedFile}; ${r.kinds.join("+")}: ${r.details.join(" | ").slice(0, 160)}): ${r.outcome}: ${r.reason ?? ""} ${r.error ?? ""}\n`.slice(0, 1200));
        if (a.save) {
          mkdirSync(a.save, { recursive: true });
          const m = mutate(readFileSync(join(fileURLToPath(new URL("../", import.meta.url)), r.seedFile)), seed, r.index);
          writeFileSync(join(a.save, `case-${seed}-${r.index}.gguf`), m.bytes);
        }
      }
      const tNow = performance.now();
      if (tNow - lastReport > 30_000) {
        lastReport = tNow;
        process.stderr.write(`${results.length} of ${count} cases, ${((tNow - t0) / 1000).toFixed(0)} s\n`);
      }
    }
    slot?.child.kill("SIGKILL");
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  const wallS = (performance.now() - t0) / 1000;
  results.sort((x, y) => x.index - y.index);
  if (a.json) writeFileSync(a.json, JSON.stringify({ seed, first, count, backend, machine, results }, null, 1));

  const outcomes: Outcome[] = ["rejected", "generated", "error", "hang", "memory"];
  const label: Record<Outcome, string> = { rejected: "typed rejection", generated: "loaded and generated", error: "other error", hang: "hang", memory: "memory" };
  const by = (o: Outcome) => results.filter((r) => r.outcome === o).length;
  const times = results.map((r) => r.ms).sort((x, y) => x - y);
  const lines: string[] = [];
  lines.push(`\nfuzz: ${count} cases (seed ${seed}, cases ${first}..${first + count - 1}), backend ${backend}${backend === "wasm" ? ` x${threads} threads` : ""}, ${jobs} child processes, limits ${timeoutMs} ms / ${memoryMb} MB per case`);
  lines.push(`| outcome | cases | share |`, `|---|---:|---:|`);
  for (const o of outcomes) lines.push(`| ${label[o]} | ${by(o)} | ${((100 * by(o)) / Math.max(1, results.length)).toFixed(2)}% |`);
  lines.push("", `| mutation | cases | rejected | generated | bad |`, `|---|---:|---:|---:|---:|`);
  const kinds = [...new Set(results.flatMap((r) => r.kinds))].sort();
  for (const k of kinds) {
    const rs = results.filter((r) => r.kinds.includes(k));
    const n = (o: Outcome) => rs.filter((r) => r.outcome === o).length;
    lines.push(`| ${k} | ${rs.length} | ${n("rejected")} | ${n("generated")} | ${rs.length - n("rejected") - n("generated")} |`);
  }
  lines.push(
    "",
    `time per case: p50 ${percentile(times, 50).toFixed(0)} ms, p99 ${percentile(times, 99).toFixed(0)} ms, max ${times[times.length - 1]?.toFixed(0)} ms; wall ${wallS.toFixed(0)} s`,
    `machine: ${machine}`,
  );
  const badCount = results.length - by("rejected") - by("generated");
  if (badCount > 0) lines.push(`${badCount} bad cases; reproduce one with: npm run fuzz -- --seed ${seed} --case K`);
  process.stdout.write(lines.join("\n") + "\n");
  process.exitCode = badCount > 0 ? 1 : 0;
}

if (a["exit-loop"] !== undefined) await exitLoop(int("exit-loop", a["exit-loop"]));
else if (a.case !== undefined) {
  const k = int("case", a.case);
  const m = mutate(readFileSync(join(fileURLToPath(new URL("../", import.meta.url)), seedFiles[k % seedFiles.length]!)), seed, k);
  process.stdout.write(`case ${k} of seed ${seed}: ${seedFiles[k % seedFiles.length]}, ${m.kinds.join(" + ")}: ${m.details.join(" | ")}\n`);
  if (a.save) {
    mkdirSync(a.save, { recursive: true });
    writeFileSync(join(a.save, `case-${seed}-${k}.gguf`), m.bytes);
  }
  await fuzz(k, 1);
} else await fuzz(int("first", a.first), int("cases", a.cases));
