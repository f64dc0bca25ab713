// The edge scenario's commands with the sparse output head on and off (sparseHead: false computes
// every logit: the path before it), in one process on one loaded model, alternating command by
// command (command i runs sparse in one round and full in the other, so each variant sees every
// command once and no command follows itself in the prefix cache). Prints p50 / p95 of wall-clock
// and process CPU time (every thread) per command for each, their ratios, the output-head rows
// per command, and checks that both give the same text. With CPU, bandwidth probe, load average.
// Run: node bench/sparse-head-ab.ts -m FILE [-t 2] [--commands 50] [--rounds 2]
import { loadavg } from "node:os";
import { loadModel } from "../src/index.ts";
import { commandPrompt, commandSchema, commands } from "../src/cli/bench-command.ts";
import { machineInfo } from "./machine.ts";
import { measureBandwidth } from "./bandwidth.ts";

const arg = (name: string, alt?: string): string | undefined => {
  const i = process.argv.findIndex((a) => a === name || a === alt);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const file = arg("-m", "--model");
if (!file) throw new Error("usage: node bench/sparse-head-ab.ts -m FILE [-t threads] [--commands N] [--rounds R]");
const threads = Number(arg("-t", "--threads") ?? 2);
const list = commands.slice(0, Number(arg("--commands") ?? commands.length));
const rounds = Number(arg("--rounds") ?? 2);

const machine = machineInfo();
const bandwidth = await measureBandwidth(threads, 3);
console.log(`${machine.cpu}, ${machine.cpus} CPUs, SIMD ${machine.simd.join(" ")}; node ${machine.node}; read bandwidth ${threads} thread(s) ${(bandwidth / 1e9).toFixed(1)} GB/s; load average at start ${loadavg()[0]!.toFixed(2)}; ${new Date().toISOString()}`);

const model = await loadModel(file, { threads, contextSize: 1024 });
const run = async (command: string, sparseHead: boolean) => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await model.complete(commandPrompt(command), { jsonSchema: commandSchema, temperature: 0, maxTokens: 128, sparseHead });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, text: r.text, headRows: r.stats.outputHeadRows };
};
for (const c of list.slice(0, 2)) {
  await run(c, true);
  await run(c, false);
}
const res = { sparse: [] as Awaited<ReturnType<typeof run>>[], full: [] as Awaited<ReturnType<typeof run>>[] };
const texts = new Map<string, string>();
let mismatches = 0;
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < list.length; i++) {
    const sparse = (i + r) % 2 === 0;
    const x = await run(list[i]!, sparse);
    (sparse ? res.sparse : res.full).push(x);
    const seen = texts.get(list[i]!);
    if (seen !== undefined && seen !== x.text) mismatches++;
    texts.set(list[i]!, x.text);
  }
}
await model.dispose();

const pct = (a: number[], q: number) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
console.log(`\n${file}, ${threads} thread(s), ${list.length} commands x ${rounds} rounds, alternating sparse / full head per command; load average at end ${loadavg()[0]!.toFixed(2)}`);
console.log("| head | commands | wall p50 ms | wall p95 ms | CPU p50 ms | CPU p95 ms | head rows per command |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const [name, xs] of [["sparse", res.sparse], ["full", res.full]] as const) {
  console.log(`| ${name} | ${xs.length} | ${pct(xs.map((x) => x.ms), 0.5).toFixed(1)} | ${pct(xs.map((x) => x.ms), 0.95).toFixed(1)} | ${pct(xs.map((x) => x.cpuMs), 0.5).toFixed(1)} | ${pct(xs.map((x) => x.cpuMs), 0.95).toFixed(1)} | ${mean(xs.map((x) => x.headRows)).toFixed(0)} |`);
}
const ratio = (f: (x: { ms: number; cpuMs: number }) => number) => (pct(res.sparse.map(f), 0.5) / pct(res.full.map(f), 0.5)).toFixed(3);
console.log(`\nsparse / full at p50: wall ${ratio((x) => x.ms)}, CPU ${ratio((x) => x.cpuMs)}; outputs that differed between the variants: ${mismatches}`);
