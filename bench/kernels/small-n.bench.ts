// Micro-benchmark: the cost of a matmul over n = 1..9 tokens (a speculative verification pass of
// 1 + k tokens) relative to one token, over the 169 matrices of a Qwen2-0.5B step, 1 thread,
// weights streaming from memory. With --old DIR it runs the kernel builds in DIR (e.g. a copy of
// build/kernels from an older commit) and the current ones alternately and prints both curves.
// Run: node bench/kernels/small-n.bench.ts [--type Q4_0|Q8_0] [--path relaxed-simd-vnni|relaxed-simd|simd128]
//      [--old DIR] [--new DIR] [--runs N] [--n 1,2,3,5,9] [--hot [--hot-shape ROWS,K]] [--min] [--shape mimo-7b] [--match RE]
import { pathToFileURL } from "node:url";
import {
  loadKernels, createSharedMemory, KernelArena, actBytes, q4_0R8Bytes, q8_0R8Bytes, rowGroups,
  type KernelExports, type KernelPath,
} from "../../src/kernels/kernels.ts";
import { qwen2_05bMatrices, mimo7bLayerMatrices, HIDDEN, INTERMEDIATE } from "./shapes.ts";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const type = (arg("--type") ?? "Q4_0") as "Q4_0" | "Q8_0";
const path = (arg("--path") ?? "relaxed-simd-vnni") as KernelPath;
const oldDir = arg("--old");
const RUNS = Number(arg("--runs") ?? 5);
const NS = (arg("--n") ?? "1,2,3,4,5,6,7,8,9").split(",").map(Number);
const MAXN = Math.max(...NS);
// --hot: one 896 x 896 matrix 169 times (in cache: the compute-bound rate)
const hot = process.argv.includes("--hot");
// --shape mimo-7b: two decoder layers of MiMo-7B (k = 4096 and 11008) instead of a Qwen2-0.5B step
const shape7b = arg("--shape") === "mimo-7b";
// --match RE: only the matrices whose names match (e.g. ffn_down)
const match = arg("--match");
// --hot-shape ROWS,K: the in-cache matrix's shape (default 896,896; e.g. 128,4864 for ffn_down's k)
const hotShape = (arg("--hot-shape") ?? `${HIDDEN},${HIDDEN}`).split(",").map(Number) as [number, number];
const mats = (hot ? Array.from({ length: 169 }, () => ({ name: "hot", rows: hotShape[0], k: hotShape[1] })) : shape7b ? mimo7bLayerMatrices(match ? 6 : 2) : qwen2_05bMatrices())
  .filter((m) => !match || new RegExp(match).test(m.name));

const memory = createSharedMemory((oldDir ? 2000 : 1200) * 2 ** 20); // two builds: two repacked copies
const binariesIn = (dir: string) => {
  const base = pathToFileURL(dir.endsWith("/") ? dir : `${dir}/`);
  return {
    relaxed: new URL("kernels-relaxed.wasm", base),
    relaxedVnni: new URL("kernels-relaxed-vnni.wasm", base),
    simd128: new URL("kernels-simd128.wasm", base),
  };
};
// --new DIR: the "new" builds from DIR instead of build/kernels (A/B of two experiments)
const newDir = arg("--new");
const cur = await loadKernels({ memory, path, ...(newDir ? { binaries: binariesIn(newDir) } : {}) });
const builds: Array<{ name: string; ex: KernelExports }> = [{ name: "new", ex: cur.exports }];
if (oldDir) {
  const old = await loadKernels({ memory, path, binaries: binariesIn(oldDir) });
  builds.unshift({ name: "old", ex: old.exports });
}
const ex = cur.exports;
const arena = new KernelArena(memory);

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
const xa: Record<number, number> = {};
for (const k of new Set(mats.map((m) => m.k))) {
  const pf = arena.alloc(k * 4 * MAXN);
  const f = arena.f32(pf, k * MAXN);
  for (let i = 0; i < f.length; i++) f[i] = Math.sin(i * 0.37) * 2;
  xa[k] = arena.alloc(actBytes(k, MAXN));
  ex.quantizeAct(pf, xa[k]!, k, MAXN);
}
const y = arena.alloc(151936 * 4 * MAXN);

const bb = type === "Q4_0" ? 18 : 34;
// each build repacks its own copy (the repacked layout may differ between builds)
const placedBy = new Map<KernelExports, Array<{ w: number; k: number; rows: number }>>();
const scratch = arena.alloc(Math.max(...mats.map((m) => (m.rows * m.k) / 32)) * bb + 64);
for (const m of hot ? mats.slice(0, 1) : mats) {
  const nb = (m.rows * m.k) / 32;
  fillRandom(scratch, nb * bb);
  const dv = new DataView(memory.buffer);
  for (let b = 0; b < nb; b++) dv.setUint16(scratch + b * bb, 0x1c00 | (b & 0x3ff), true);
  if (type === "Q8_0") {
    const u8 = new Uint8Array(memory.buffer, scratch, nb * bb);
    for (let i = 0; i < u8.length; i++) if (u8[i] === 0x80) u8[i] = 0x81;
  }
  for (const b of builds) {
    const pr = arena.alloc(type === "Q4_0" ? q4_0R8Bytes(m.rows, m.k) : q8_0R8Bytes(m.rows, m.k));
    if (type === "Q4_0") b.ex.repackQ4_0(scratch, pr, m.rows, m.k); else b.ex.repackQ8_0(scratch, pr, m.rows, m.k);
    const list = placedBy.get(b.ex) ?? [];
    list.push({ w: pr, k: m.k, rows: m.rows });
    placedBy.set(b.ex, list);
  }
}
type MatmulName = "matmulQ4_0R8" | "matmulQ8_0R8";
const fn: MatmulName = type === "Q4_0" ? "matmulQ4_0R8" : "matmulQ8_0R8";

if (hot) for (const placed of placedBy.values()) while (placed.length < mats.length) placed.push(placed[0]!);
// --fn-new NAME: another export of the current build in place of the type's matmul (experiments)
const fnNew = (arg("--fn-new") ?? fn) as MatmulName;
function step(e: KernelExports, n: number, name: MatmulName = fn): number {
  const f = e[name];
  const placed = placedBy.get(e)!;
  if (hot) { // the fastest of 169 single calls, times 169: the compute cost without preemptions
    const m = placed[0]!;
    let best = Infinity;
    for (let i = 0; i < placed.length; i++) {
      const t0 = performance.now();
      f(m.w, xa[m.k]!, y, m.k, 0, rowGroups(m.rows), m.rows, n);
      best = Math.min(best, performance.now() - t0);
    }
    return best * placed.length;
  }
  const t0 = performance.now();
  for (const m of placed) f(m.w, xa[m.k]!, y, m.k, 0, rowGroups(m.rows), m.rows, n);
  return performance.now() - t0;
}

// --min: the fastest run instead of the median (steadier on a shared machine for in-cache runs)
const useMin = process.argv.includes("--min");
const median = (a: number[]): number => useMin ? Math.min(...a) : [...a].sort((p, q) => p - q)[a.length >> 1]!;
const times = new Map<string, number[]>();
for (const b of builds) for (const n of NS) step(b.ex, n, b.name === "new" ? fnNew : fn); // warm-up
for (let r = 0; r < RUNS; r++) {
  for (const n of NS) {
    for (const b of builds) {
      const key = `${b.name} ${n}`;
      const t = times.get(key) ?? [];
      t.push(step(b.ex, n, b.name === "new" ? fnNew : fn));
      times.set(key, t);
    }
  }
}
console.log(`${type} ${path}${hot ? " in cache" : ""}, 1 thread, ${mats.length} matrices, ${useMin ? "fastest" : "medians"} of ${RUNS} alternating runs`);
console.log(`n  ${builds.map((b) => `${b.name} ms  ${b.name} x`.padStart(18)).join("  ")}`);
for (const n of NS) {
  const cells = builds.map((b) => {
    const ms = median(times.get(`${b.name} ${n}`)!);
    const base = median(times.get(`${b.name} 1`) ?? [NaN]);
    return `${ms.toFixed(2).padStart(8)} ${(ms / base).toFixed(2).padStart(8)}`;
  });
  console.log(`${String(n).padEnd(2)} ${cells.join("  ")}`);
}
