// Micro-benchmark: the Q4_0 and Q8_0 matvecs of one Qwen2-0.5B decode step (169 matrices), 1 and 2
// threads, relaxed SIMD vs SIMD128, repacked (8-row interleaved) vs original llama.cpp layout.
// Run: node bench/kernels/matvec.bench.ts [--quick]. Timings are noisy on a shared 2-core machine.
import { Worker } from "node:worker_threads";
import {
  loadKernels, createSharedMemory, KernelArena, actBytes, q4_0R8Bytes, q8_0R8Bytes, rowGroups,
  type KernelExports, type Kernels,
} from "../../src/kernels/kernels.ts";
import { qwen2_05bMatrices, HIDDEN, INTERMEDIATE, LAYERS } from "./shapes.ts";
import type { Job } from "./matvec-worker.ts";

const quick = process.argv.includes("--quick");
const RUNS = quick ? 3 : 7;
const mats = qwen2_05bMatrices();

const memory = createSharedMemory(1900 * 2 ** 20);
const relaxed = await loadKernels({ memory, path: "relaxed-simd" });
const plain = await loadKernels({ memory, path: "simd128" });
const arena = new KernelArena(memory);
const ex = relaxed.exports;

// Random quants, scales in a small positive range (speed does not depend on the values).
let seed = 0x9e3779b9;
function fillRandom(p: number, bytes: number): void {
  const u32 = new Uint32Array(memory.buffer, p, Math.ceil(bytes / 4));
  let s = seed;
  for (let i = 0; i < u32.length; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    u32[i] = s >>> 0;
  }
  seed = s;
}
function setScales(p: number, nblocks: number, blockBytes: number): void {
  const dv = new DataView(memory.buffer);
  for (let b = 0; b < nblocks; b++) dv.setUint16(p + b * blockBytes, 0x1c00 | (b & 0x3ff), true);
}
function clampQ8(p: number, nblocks: number): void { // Q8_0 quants are -127..127
  const u8 = new Uint8Array(memory.buffer, p, nblocks * 34);
  for (let i = 0; i < u8.length; i++) if (u8[i] === 0x80) u8[i] = 0x81;
}

// activations for both input widths, 16 tokens (prefill)
const TOK = 16;
const xa: Record<number, number> = {};
for (const k of [HIDDEN, INTERMEDIATE]) {
  const pf = arena.alloc(k * 4 * TOK);
  const f = arena.f32(pf, k * TOK);
  for (let i = 0; i < f.length; i++) f[i] = Math.sin(i * 0.37) * 2;
  xa[k] = arena.alloc(actBytes(k, TOK));
  ex.quantizeAct(pf, xa[k], k, TOK);
}
const y = arena.alloc(151936 * 4 * TOK);

interface Placed { w: number; x: number; y: number; k: number; rows: number }
function place(type: "Q4_0" | "Q8_0") {
  const bb = type === "Q4_0" ? 18 : 34;
  const orig: Placed[] = [], r8: Placed[] = [];
  let fileBytes = 0, r8Bytes = 0, repackMs = 0;
  for (const m of mats) {
    const nb = (m.rows * m.k) / 32;
    const bytes = nb * bb;
    const p = arena.alloc(bytes + 4);
    fillRandom(p, bytes);
    setScales(p, nb, bb);
    if (type === "Q8_0") clampQ8(p, nb);
    const rb = type === "Q4_0" ? q4_0R8Bytes(m.rows, m.k) : q8_0R8Bytes(m.rows, m.k);
    const pr = arena.alloc(rb);
    const t0 = performance.now();
    if (type === "Q4_0") ex.repackQ4_0(p, pr, m.rows, m.k); else ex.repackQ8_0(p, pr, m.rows, m.k);
    repackMs += performance.now() - t0;
    orig.push({ w: p, x: xa[m.k], y, k: m.k, rows: m.rows });
    r8.push({ w: pr, x: xa[m.k], y, k: m.k, rows: m.rows });
    fileBytes += bytes;
    r8Bytes += rb;
  }
  return { orig, r8, fileBytes, r8Bytes, repackMs };
}

const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];

function run1(k: KernelExports, fn: Job["fn"], list: Placed[]): number {
  const f = k[fn];
  const repacked = fn.endsWith("R8");
  const times: number[] = [];
  for (let r = 0; r < RUNS + 1; r++) {
    const t0 = performance.now();
    for (const m of list) {
      if (repacked) (f as KernelExports["matvecQ4_0R8"])(m.w, m.x, m.y, m.k, 0, rowGroups(m.rows), m.rows);
      else (f as KernelExports["matvecQ4_0"])(m.w, m.x, m.y, m.k, 0, m.rows);
    }
    if (r > 0) times.push(performance.now() - t0); // first run warms up
  }
  return median(times);
}

// Two workers, each its own instance on the shared memory, half the row groups each.
const NT = 2;
const ctlBuf = new SharedArrayBuffer(16);
const ctl = new Int32Array(ctlBuf);
function makeWorkers(k: Kernels): Worker[] {
  return Array.from({ length: NT }, (_, index) => new Worker(new URL("./matvec-worker.ts", import.meta.url), {
    workerData: { module: k.module, memory, ctl: ctlBuf, index, nthreads: NT },
  }));
}
async function runN(workers: Worker[], fn: Job["fn"], list: Placed[]): Promise<number> {
  const job: Job = { fn, repacked: fn.endsWith("R8"), mats: list };
  const times: number[] = [];
  const STEPS = 2;
  for (let r = 0; r < RUNS + 1; r++) {
    ctl[3] = STEPS;
    const done = workers.map((w) => new Promise((res) => w.once("message", res)));
    const t0 = performance.now();
    for (const w of workers) w.postMessage(job);
    await Promise.all(done);
    if (r > 0) times.push((performance.now() - t0) / STEPS);
  }
  return median(times);
}

const rows: string[][] = [];
function report(label: string, ms: number, fileBytes: number) {
  const gbs = fileBytes / (ms / 1000) / 1e9;
  rows.push([label, ms.toFixed(2), gbs.toFixed(1), (1000 / ms).toFixed(0)]);
  console.log(`${label.padEnd(44)} ${ms.toFixed(2).padStart(7)} ms  ${gbs.toFixed(1).padStart(5)} GB/s  ${(1000 / ms).toFixed(0).padStart(4)} tok/s`);
}

console.log(`node ${process.version}; ${mats.length} matvecs per step; ${RUNS} runs, median; GB/s of original-layout weight bytes`);
const wRelaxed = makeWorkers(relaxed);
const wPlain = makeWorkers(plain);
for (const type of ["Q4_0", "Q8_0"] as const) {
  const p = place(type);
  console.log(`\n${type}: ${(p.fileBytes / 1e6).toFixed(0)} MB original, ${(p.r8Bytes / 1e6).toFixed(0)} MB repacked (repack ${p.repackMs.toFixed(0)} ms, ${(p.fileBytes / p.repackMs / 1e6).toFixed(1)} GB/s)`);
  if (type === "Q4_0") { // read-bandwidth ceiling over the same bytes (one stream, 1 thread)
    const lo = p.orig[0].w, bytes = Math.floor((p.r8[p.r8.length - 1].w - lo) / 64) * 64;
    const times: number[] = [];
    for (let r = 0; r < RUNS; r++) { const t0 = performance.now(); ex.streamSum(lo, bytes); times.push(performance.now() - t0); }
    console.log(`${"read bandwidth (streamSum), 1 thread".padEnd(44)} ${(bytes / median(times) / 1e6).toFixed(1).padStart(15)} GB/s`);
  }
  const r8 = type === "Q4_0" ? "matvecQ4_0R8" : "matvecQ8_0R8";
  const og = type === "Q4_0" ? "matvecQ4_0" : "matvecQ8_0";
  report(`${type} repacked  relaxed  1 thread`, run1(relaxed.exports, r8, p.r8), p.fileBytes);
  report(`${type} original  relaxed  1 thread`, run1(relaxed.exports, og, p.orig), p.fileBytes);
  report(`${type} repacked  simd128  1 thread`, run1(plain.exports, r8, p.r8), p.fileBytes);
  report(`${type} original  simd128  1 thread`, run1(plain.exports, og, p.orig), p.fileBytes);
  report(`${type} repacked  relaxed  2 threads`, await runN(wRelaxed, r8, p.r8), p.fileBytes);
  report(`${type} original  relaxed  2 threads`, await runN(wRelaxed, og, p.orig), p.fileBytes);
  report(`${type} repacked  simd128  2 threads`, await runN(wPlain, r8, p.r8), p.fileBytes);

  // hot cache: one 896x896 matrix again and again
  {
    const m = p.r8[0];
    const reps = 2000;
    const f = relaxed.exports[r8];
    const times: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) f(m.w, m.x, m.y, m.k, 0, rowGroups(m.rows), m.rows);
      times.push(performance.now() - t0);
    }
    const ms = median(times) / reps;
    const bytes = (m.rows * m.k / 32) * (type === "Q4_0" ? 18 : 34);
    console.log(`${`${type} repacked  relaxed  in cache (896x896)`.padEnd(44)} ${(bytes / (ms / 1000) / 1e9).toFixed(1).padStart(15)} GB/s`);
  }

  // prefill: the 168 layer matrices for TOK tokens in one call each (output matrix left out)
  {
    const mm = type === "Q4_0" ? "matmulQ4_0R8" : "matmulQ8_0R8";
    const layerMats = p.r8.slice(0, LAYERS * 7);
    for (const k of [relaxed, plain]) {
      for (const ntok of [4, TOK]) {
        const times: number[] = [];
        for (let r = 0; r < Math.max(3, RUNS >> 1) + 1; r++) {
          const t0 = performance.now();
          for (const m of layerMats) k.exports[mm](m.w, m.x, m.y, m.k, 0, rowGroups(m.rows), m.rows, ntok);
          if (r > 0) times.push(performance.now() - t0);
        }
        const ms = median(times);
        console.log(`${`${type} prefill ${k.path} ${ntok} tokens/pass, 1 thread`.padEnd(44)} ${ms.toFixed(2).padStart(7)} ms  ${(ntok * 1000 / ms).toFixed(0).padStart(5)} tok/s (layers only)`);
      }
    }
  }
}
for (const w of [...wRelaxed, ...wPlain]) await w.terminate();
