// The edge scenario ("mimo bench --scenario command": greedy JSON actions for the spoken commands)
// in two or more source trees, in alternating processes (round r runs every tree once, in turn),
// each process loading its tree's own src/index.ts. Prints per tree the p50 / p95 of wall-clock
// and process CPU time (every thread) per command over all rounds, and the ratio of each tree's
// p50 to the first tree's; checks that every tree wrote the same JSON for every command. With
// CPU, bandwidth probe and load average.
// Run: node bench/command-trees-ab.ts -m FILE --trees OLD_DIR,NEW_DIR [-t 2] [--commands 50] [--rounds 3]
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { machineInfo } from "./machine.ts";
import { measureBandwidth } from "./bandwidth.ts";

const arg = (name: string, alt?: string): string | undefined => {
  const i = process.argv.findIndex((a) => a === name || a === alt);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const file = arg("-m", "--model");
const threads = Number(arg("-t", "--threads") ?? 2);
const count = Number(arg("--commands") ?? 50);
const worker = arg("--worker");

interface Run {
  ms: number[];
  cpuMs: number[];
  texts: string[];
}

if (worker) {
  // One process: one tree, every command once (after a warm-up command), JSON on stdout.
  const api = (await import(pathToFileURL(join(worker, "src/index.ts")).href)) as typeof import("../src/index.ts");
  const sc = (await import(pathToFileURL(join(worker, "src/cli/bench-command.ts")).href)) as typeof import("../src/cli/bench-command.ts");
  const model = await api.loadModel(file!, { threads, contextSize: 1024 });
  const list = sc.commands.slice(0, count);
  const once = (c: string) => model.complete(sc.commandPrompt(c), { jsonSchema: sc.commandSchema, temperature: 0, maxTokens: 128 });
  await once(sc.commands[sc.commands.length - 1]!);
  const out: Run = { ms: [], cpuMs: [], texts: [] };
  for (const c of list) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await once(c);
    out.ms.push(performance.now() - t0);
    const u = process.cpuUsage(c0);
    out.cpuMs.push((u.user + u.system) / 1000);
    out.texts.push(r.text);
  }
  await model.dispose();
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}

const trees = (arg("--trees") ?? "").split(",").filter(Boolean);
if (!file || trees.length < 2) throw new Error("usage: node bench/command-trees-ab.ts -m FILE --trees OLD_DIR,NEW_DIR [-t threads] [--commands N] [--rounds R]");
const rounds = Number(arg("--rounds") ?? 3);
const machine = machineInfo();
const bandwidth = await measureBandwidth(threads, 3);
console.log(`${machine.cpu}, ${machine.cpus} CPUs, SIMD ${machine.simd.join(" ")}; node ${machine.node}; read bandwidth ${threads} thread(s) ${(bandwidth / 1e9).toFixed(1)} GB/s; load average at start ${loadavg()[0]!.toFixed(2)}; ${new Date().toISOString()}`);
const all = trees.map(() => ({ ms: [] as number[], cpuMs: [] as number[], texts: [] as string[] }));
for (let r = 0; r < rounds; r++) {
  for (let k = 0; k < trees.length; k++) {
    const i = (k + r) % trees.length; // the order turns each round
    const stdout = execFileSync(join(trees[i]!, "node_modules/.bin/node"), [process.argv[1]!, "--worker", trees[i]!, "-m", file, "-t", String(threads), "--commands", String(count)], { encoding: "utf8", maxBuffer: 1 << 26 });
    const run = JSON.parse(stdout) as Run;
    all[i]!.ms.push(...run.ms);
    all[i]!.cpuMs.push(...run.cpuMs);
    all[i]!.texts.push(...run.texts);
    process.stderr.write(`round ${r + 1}/${rounds}: ${trees[i]} done\n`);
  }
}
const pct = (a: number[], q: number) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
console.log(`\n${file}, ${threads} thread(s), ${count} commands x ${rounds} rounds per tree, trees in alternating processes; load average at end ${loadavg()[0]!.toFixed(2)}`);
console.log("| tree | wall p50 ms | wall p95 ms | CPU p50 ms | CPU p95 ms | p50 vs first tree (wall, CPU) | same JSON as first tree |");
console.log("|---|---:|---:|---:|---:|---:|---|");
for (const [i, t] of trees.entries()) {
  const a = all[i]!;
  const same = a.texts.every((x, j) => x === all[0]!.texts[j]);
  console.log(`| ${t} | ${pct(a.ms, 0.5).toFixed(1)} | ${pct(a.ms, 0.95).toFixed(1)} | ${pct(a.cpuMs, 0.5).toFixed(1)} | ${pct(a.cpuMs, 0.95).toFixed(1)} | ${(pct(a.ms, 0.5) / pct(all[0]!.ms, 0.5)).toFixed(3)}, ${(pct(a.cpuMs, 0.5) / pct(all[0]!.cpuMs, 0.5)).toFixed(3)} | ${same ? "yes" : "NO"} |`);
}
