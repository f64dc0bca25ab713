// Verification cost, A/B: the same GGUF loaded twice in one process, once on the kernel builds of
// another directory (--old DIR: a copy of build/kernels from an older commit) and once on the
// current ones; one forward pass of 1 + k tokens (every row's logits, argmax per row, as a
// verifier does) at the same cached position, alternating between the two builds step by step.
// Prints per build and k the min and median ms and the ratio of the medians to the 1-token step.
// Run: node bench/verify-ab.ts -m FILE --old DIR [-t 1] [--verify 1,2,4,8] [-r 15] [--depth 128]
import { pathToFileURL } from "node:url";
import { loadavg } from "node:os";
import { loadModel } from "../src/index.ts";
import { WasmBackend } from "../src/backends/wasm/wasm-backend.ts";
import { machineInfo } from "./machine.ts";
import { measureBandwidth } from "./bandwidth.ts";

const arg = (name: string, alt?: string): string | undefined => {
  const i = process.argv.findIndex((a) => a === name || a === alt);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const file = arg("-m", "--model");
const oldDir = arg("--old");
if (!file || !oldDir) throw new Error("usage: node bench/verify-ab.ts -m FILE --old DIR [-t threads] [--verify 1,2,4,8] [-r reps] [--depth P]");
const threads = Number(arg("-t", "--threads") ?? 1);
const ks = [0, ...(arg("--verify") ?? "1,2,4,8").split(",").map(Number)];
const reps = Number(arg("-r") ?? 15);
const depth = Number(arg("--depth") ?? 128);

const machine = machineInfo();
const bandwidth = await measureBandwidth(threads, 3);
console.log(`${machine.cpu}, ${machine.cpus} CPUs, SIMD ${machine.simd.join(" ")}; node ${machine.node}; read bandwidth ${threads} thread(s) ${(bandwidth / 1e9).toFixed(1)} GB/s; load average ${loadavg()[0]!.toFixed(2)}`);

const base = pathToFileURL(oldDir.endsWith("/") ? oldDir : `${oldDir}/`);
const builds = [
  { name: "old", kernels: { binaries: { relaxed: new URL("kernels-relaxed.wasm", base), relaxedVnni: new URL("kernels-relaxed-vnni.wasm", base), simd128: new URL("kernels-simd128.wasm", base) } } },
  { name: "new", kernels: {} },
];
const models = [];
for (const b of builds) {
  const backend = await WasmBackend.create({ threads, kernels: b.kernels });
  const model = await loadModel(file, { backend, contextSize: depth + 16 });
  console.log(`${b.name}: ${backend.name}`);
  models.push(model);
}
const vocab = models[0]!.config.vocabSize;
let seed = 12345;
const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 1000) + 100;
const prefix = Array.from({ length: depth }, rand);
const seqs = models.map((m) => {
  const s = m.createSequence();
  m.forward([{ sequence: s, tokens: prefix, logits: "none" }]);
  return s;
});
function argmax(l: Float32Array, a: number, b: number): number {
  let best = a;
  for (let i = a + 1; i < b; i++) if (l[i]! > l[best]!) best = i;
  return best - a;
}
const times = models.map(() => ks.map((): number[] => []));
for (let r = 0; r < reps + 1; r++) { // the first round warms up
  for (let ki = 0; ki < ks.length; ki++) {
    const tokens = Array.from({ length: 1 + ks[ki]! }, rand);
    for (let mi = 0; mi < models.length; mi++) {
      const m = models[mi]!, s = seqs[mi]!;
      const t0 = performance.now();
      const { logits } = m.forward([{ sequence: s, tokens, logits: "all" }])[0]!;
      for (let row = 0; row < tokens.length; row++) argmax(logits, row * vocab, (row + 1) * vocab);
      const ms = performance.now() - t0;
      s.truncate(depth);
      if (r > 0) times[mi]![ki]!.push(ms);
    }
  }
}
const med = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
console.log(`\n${file}, ${threads} thread(s), ${depth} cached positions, ${reps} alternating repetitions; load average at the end ${loadavg()[0]!.toFixed(2)}`);
console.log(`| k | tokens | old ms (min / median) | new ms (min / median) | old ratio | new ratio | new / old |`);
console.log(`|---:|---:|---|---|---:|---:|---:|`);
for (let ki = 0; ki < ks.length; ki++) {
  const o = times[0]![ki]!, n = times[1]![ki]!;
  const ro = med(o) / med(times[0]![0]!), rn = med(n) / med(times[1]![0]!);
  console.log(`| ${ks[ki]} | ${ks[ki]! + 1} | ${Math.min(...o).toFixed(1)} / ${med(o).toFixed(1)} | ${Math.min(...n).toFixed(1)} / ${med(n).toFixed(1)} | ${ro.toFixed(2)} | ${rn.toFixed(2)} | ${(med(n) / med(o)).toFixed(2)} |`);
}
for (const m of models) await m.dispose();
