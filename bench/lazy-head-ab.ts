// Verification passes with the output head computed for every row ("all") against the lazy head
// (rows computed 2 at a time as verification reads them, up to the first rejected draft), in one
// process on one loaded model, alternating pass by pass: the same forward of 1 + k tokens at the
// same cached position, then either all k + 1 logits rows or the rows a verifier at acceptance p
// reads (a rejection position drawn per pass, seeded, the same for both). Prints per k the min and
// median ms of each and their ratio, with CPU, bandwidth probe and load average.
// Run: node bench/lazy-head-ab.ts -m FILE [-t 2] [--verify 1,2,4,8] [-p 0.7] [-r 15] [--depth 128]
import { loadavg } from "node:os";
import { loadModel } from "../src/index.ts";
import type { Transformer } from "../src/model/transformer.ts";
import { argmax } from "../src/sampling/chain.ts";
import { SeededRandom } from "../src/sampling/rng.ts";
import { LazyLogitRows } from "../src/speculative/verify.ts";
import { machineInfo } from "./machine.ts";
import { measureBandwidth } from "./bandwidth.ts";

const arg = (name: string, alt?: string): string | undefined => {
  const i = process.argv.findIndex((a) => a === name || a === alt);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const file = arg("-m", "--model");
if (!file) throw new Error("usage: node bench/lazy-head-ab.ts -m FILE [-t threads] [--verify 1,2,4,8] [-p acceptance] [-r reps] [--depth P]");
const threads = Number(arg("-t", "--threads") ?? 2);
const ks = (arg("--verify") ?? "1,2,4,8").split(",").map(Number);
const p = Number(arg("-p") ?? 0.7);
const reps = Number(arg("-r") ?? 15);
const depth = Number(arg("--depth") ?? 128);

const machine = machineInfo();
const bandwidth = await measureBandwidth(threads, 3);
console.log(`${machine.cpu}, ${machine.cpus} CPUs, SIMD ${machine.simd.join(" ")}; node ${machine.node}; read bandwidth ${threads} thread(s) ${(bandwidth / 1e9).toFixed(1)} GB/s; load average ${loadavg()[0]!.toFixed(2)}`);

const model = await loadModel(file, { threads, contextSize: depth + 64 });
const t = (model as unknown as { transformer: Transformer }).transformer;
const pool = t.createKvPool(1, depth + 64);
const vocab = t.config.vocabSize;
const dim = t.config.dim;
const rng = new SeededRandom(1);
const prefix = Array.from({ length: depth }, () => 1 + Math.floor(rng.next() * (vocab - 1)));
t.forward([{ slot: 0, startPos: 0, tokens: prefix, logits: "none" }], pool);

/** Rows a verifier at acceptance p reads: draft i is accepted with probability p while the ones before it were. */
function rowsRead(k: number, r: SeededRandom): number {
  let n = 1;
  while (n <= k && r.next() < p) n++;
  return n;
}

const stat = (a: number[]): { min: number; med: number } => {
  const s = [...a].sort((x, y) => x - y);
  return { min: s[0]!, med: s[s.length >> 1]! };
};
console.log(`\n${file}, ${threads} thread(s), ${depth} cached positions, acceptance ${p}, ${reps} alternating repetitions`);
console.log("| k | tokens | all rows ms (min / median) | lazy ms (min / median) | rows read (mean) | lazy / all (min, median) |");
console.log("|---:|---:|---|---|---:|---:|");
for (const k of ks) {
  const tokens = Array.from({ length: k + 1 }, () => 1 + Math.floor(rng.next() * (vocab - 1)));
  const all: number[] = [];
  const lazy: number[] = [];
  let read = 0;
  const pick = new SeededRandom(100 + k);
  for (let r = -2; r < reps; r++) {
    const need = rowsRead(k, pick);
    for (const mode of r % 2 === 0 ? ["all", "lazy"] : ["lazy", "all"]) {
      const t0 = performance.now();
      if (mode === "all") {
        const out = t.forward([{ slot: 0, startPos: depth, tokens, logits: "all" }], pool, { borrow: true })[0]!;
        for (let i = 0; i < need; i++) argmax(out.logits.subarray(i * vocab, (i + 1) * vocab));
      } else {
        const out = t.forward([{ slot: 0, startPos: depth, tokens, logits: "none", hidden: "all" }], pool, { borrow: true })[0]!;
        const rows = new LazyLogitRows(k + 1, vocab, (from, to) => t.head(out.hidden.subarray(from * dim, to * dim), to - from));
        for (let i = 0; i < need; i++) argmax(rows.row(i));
      }
      const ms = performance.now() - t0;
      if (r >= 0) (mode === "all" ? all : lazy).push(ms);
    }
    if (r >= 0) read += need;
  }
  const a = stat(all);
  const l = stat(lazy);
  console.log(`| ${k} | ${k + 1} | ${a.min.toFixed(1)} / ${a.med.toFixed(1)} | ${l.min.toFixed(1)} / ${l.med.toFixed(1)} | ${(read / reps).toFixed(2)} | ${(l.min / a.min).toFixed(2)}, ${(l.med / a.med).toFixed(2)} |`);
}
console.log(`load average at the end ${loadavg()[0]!.toFixed(2)}`);
await model.dispose();
