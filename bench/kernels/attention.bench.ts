// attentionF16 alone at Qwen2-0.5B shapes (14 heads, 2 KV heads, head dim 64), 24 layers each with
// its own cache, called layer after layer as in a forward pass. Decode: nTok 1 after L cached
// positions (startPos L); prefill: nTok 128 at startPos 0. Reports medians over runs: µs per call
// and ms per token for the 24 layers (prefill: the 128-token call / 128).
// --cold streams 48 MiB before every call (untimed), as the weights of a real forward pass do
// between two attentions of a layer: the cache then comes from DRAM.
// Run: node bench/kernels/attention.bench.ts [--compare DIR] [--wasm DIR] [--cold] [--simd128] [--runs N]
//   --pool         instead: one layer's attention step through the WebAssembly backend's KV pool
//                  (sharded by KV head, one dispatch on all threads) at 1 and 2 threads (--threads
//                  1,2,3), against the kernel on thread 0 alone as the backend ran it before the
//                  pool (per segment: store, then attentionF16 over a whole-head cache). Qwen2-0.5B
//                  (14/2 heads) and Llama-3.2-1B (32/8) shapes, head size 64: 1 segment decoding
//                  after 512 positions, 8 segments decoding after 512 each, a 512-token prefill.
//   --wasm DIR     kernels-{relaxed,simd128}.wasm to time (default build/kernels)
//   --compare DIR  a second build timed interleaved with the first (e.g. a copy of an older one),
//                  with the largest output difference between the two and the count of outputs
//                  whose bits differ. Each build gets the cache layout its cache writer writes
//                  (f16 bits, or f16-rounded f32 before), from the same values.
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { loadKernels, createSharedMemory, KernelArena, type KernelExports } from "../../src/kernels/kernels.ts";
import { WasmBackend } from "../../src/backends/wasm/wasm-backend.ts";
import type { AttentionParams, AttentionSegment } from "../../src/compute/backend.ts";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const path = process.argv.includes("--simd128") ? "simd128" : "relaxed-simd";
if (process.argv.includes("--pool")) {
  await poolBench();
  process.exit(0);
}
const cold = process.argv.includes("--cold");
const RUNS = Number(arg("--runs") ?? 9);
const LAYERS = 24, N_HEADS = 14, N_KV = 2, HD = 64;
const MAX_POS = 2000 + 128;
const FLUSH_BYTES = 48 << 20;

const memory = createSharedMemory(64 * 2 ** 20, 4 * 2 ** 30);
const binaries = (dir: string) => {
  const u = pathToFileURL(resolve(dir) + "/");
  return { relaxed: new URL("kernels-relaxed.wasm", u), simd128: new URL("kernels-simd128.wasm", u) };
};
const arena = new KernelArena(memory);
const kw = N_KV * HD;
// The KV cache writer of a build: f32ToF16Row, named roundToF16Row in builds before the f16 cache.
type RowWriter = (x: number, y: number, n: number) => void;
function cacheWriter(ex: KernelExports): RowWriter {
  const e = ex as unknown as Record<string, RowWriter | undefined>;
  return (e.f32ToF16Row ?? e.roundToF16Row)!;
}
// Bytes per cache value of a build: what its cache writer writes for 4 values (8: f16, 16: f32).
function cacheBytes(ex: KernelExports): number {
  const p = arena.alloc(64);
  const b = arena.u8(p, 64);
  b.fill(0);
  b.fill(0xff, 32, 64);
  cacheWriter(ex)(p, p + 32, 4);
  const n = arena.u8(p + 32, 32).findIndex((x) => x === 0xff);
  arena.top = p;
  return n / 4;
}
interface Build { name: string; ex: KernelExports; bytes: number; kc: number[]; vc: number[] }
const builds: Build[] = [];
for (const dir of [arg("--wasm") ?? "build/kernels", arg("--compare")]) {
  if (!dir) continue;
  const ex = (await loadKernels({ memory, path, binaries: binaries(dir) })).exports;
  const bytes = cacheBytes(ex);
  const kc: number[] = [], vc: number[] = [];
  for (let l = 0; l < LAYERS; l++) {
    kc.push(arena.alloc(MAX_POS * kw * bytes));
    vc.push(arena.alloc(MAX_POS * kw * bytes));
  }
  builds.push({ name: dir, ex, bytes, kc, vc });
}
const ex0 = builds[0]!.ex;

const q = arena.alloc(128 * N_HEADS * HD * 4);
const outs = builds.map(() => arena.alloc(128 * N_HEADS * HD * 4));
// The documented scratch need, the larger of the new and the old contract:
// min(nHeads, 16) * (hd + startPos + nTok + 3) + 4 * max(1024, hd, hdV) f32.
const scratch = arena.alloc((Math.min(N_HEADS, 16) * (HD + MAX_POS + 3) + 4 * Math.max(1024, HD)) * 4);
const tmp = arena.alloc(MAX_POS * kw * 4);
const flush = cold ? arena.alloc(FLUSH_BYTES) : 0;

let seed = 0x2545f491;
const fill = (p: number, n: number, amp: number) => {
  const f = arena.f32(p, n);
  for (let i = 0; i < n; i++) {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    f[i] = ((seed >>> 0) / 4294967296 - 0.5) * amp;
  }
};
for (let l = 0; l < LAYERS; l++) {
  // Keys scaled so that the softmax is neither flat nor one-hot; every build's cache from the
  // same values.
  fill(tmp, MAX_POS * kw, 4);
  for (const b of builds) cacheWriter(b.ex)(tmp, b.kc[l]!, MAX_POS * kw);
  fill(tmp, MAX_POS * kw, 2);
  for (const b of builds) cacheWriter(b.ex)(tmp, b.vc[l]!, MAX_POS * kw);
}
fill(q, 128 * N_HEADS * HD, 4);
if (cold) arena.u8(flush, FLUSH_BYTES).fill(1); // written: untouched pages would all map to one zero page
const scale = 1 / Math.sqrt(HD);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;

// Every layer once, reps times; µs per call.
function step({ ex, kc, vc }: Build, out: number, startPos: number, nTok: number, reps: number): number {
  if (!cold) {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) {
      for (let l = 0; l < LAYERS; l++) ex.attentionF16(q, kc[l]!, vc[l]!, out, scratch, startPos, nTok, N_HEADS, N_KV, HD, HD, scale);
    }
    return ((performance.now() - t0) * 1000) / (reps * LAYERS);
  }
  let total = 0;
  for (let r = 0; r < reps; r++) {
    for (let l = 0; l < LAYERS; l++) {
      ex0.streamSum(flush, FLUSH_BYTES);
      const t0 = performance.now();
      ex.attentionF16(q, kc[l]!, vc[l]!, out, scratch, startPos, nTok, N_HEADS, N_KV, HD, HD, scale);
      total += performance.now() - t0;
    }
  }
  return (total * 1000) / (reps * LAYERS);
}

const cases = [
  { label: "decode L=64", startPos: 64, nTok: 1 },
  { label: "decode L=116", startPos: 116, nTok: 1 },
  { label: "decode L=256", startPos: 256, nTok: 1 },
  { label: "decode L=1024", startPos: 1024, nTok: 1 },
  { label: "decode L=2000", startPos: 2000, nTok: 1 },
  { label: "prefill 128 @0", startPos: 0, nTok: 128 },
];

console.log(`attentionF16, ${path}, ${N_HEADS} heads / ${N_KV} KV heads, hd ${HD}, ${LAYERS} layers${cold ? ", cold cache" : ""}, median of ${RUNS}`);
console.log(`cache: ${builds.map((b) => `${b.name} ${b.bytes} B/value`).join(", ")}`);
for (const c of cases) {
  for (const [i, b] of builds.entries()) step(b, outs[i]!, c.startPos, c.nTok, 1); // warm-up
  const probe = step(builds[0]!, outs[0]!, c.startPos, c.nTok, 1) * LAYERS; // µs per pass over the layers
  const reps = Math.max(1, Math.round((cold ? 3000 : 20000) / Math.max(probe, 1)));
  const times = builds.map(() => [] as number[]);
  for (let r = 0; r < RUNS; r++) builds.forEach((b, i) => times[i]!.push(step(b, outs[i]!, c.startPos, c.nTok, reps)));
  const cols = builds.map((_, i) => {
    const perCall = median(times[i]!);
    const perTok = (perCall * LAYERS) / c.nTok / 1000;
    return `${perCall.toFixed(1).padStart(8)} µs/call ${perTok.toFixed(3).padStart(7)} ms/tok/24L`;
  });
  let extra = "";
  if (builds.length > 1) {
    const n = c.nTok * N_HEADS * HD;
    const a = arena.f32(outs[0]!, n), b = arena.f32(outs[1]!, n);
    const ab = new Uint32Array(a.buffer, a.byteOffset, n), bb = new Uint32Array(b.buffer, b.byteOffset, n);
    let d = 0, m = 0, nd = 0;
    for (let i = 0; i < n; i++) {
      d = Math.max(d, Math.abs(a[i]! - b[i]!));
      m = Math.max(m, Math.abs(b[i]!));
      if (ab[i] !== bb[i]) nd++;
    }
    extra = `  x${(median(times[1]!) / median(times[0]!)).toFixed(2)}  max|Δ| ${d.toExponential(1)} (max |out| ${m.toFixed(2)}), ${nd}/${n} differ in bits`;
  }
  console.log(`${c.label.padEnd(16)}${cols.join("  |")}${extra}`);
}
if (builds.length > 1) console.log(`columns: ${builds.map((b) => b.name).join(" | ")}; xN = second / first`);

/** The KV pool's attention step (new) against the kernel on thread 0 alone (old); see --pool above. */
async function poolBench(): Promise<void> {
  const runs = Number(arg("--runs") ?? 9);
  const threadCounts = (arg("--threads") ?? "1,2").split(",").map(Number);
  const CTX = 512;
  const shapes = [
    { name: "qwen2-0.5b", nHeads: 14, nKvHeads: 2, hd: 64 },
    { name: "llama-3.2-1b", nHeads: 32, nKvHeads: 8, hd: 64 },
  ];
  const cases = [
    { label: "decode, 1 seq @512", nSeg: 1, startPos: CTX, nTok: 1 },
    { label: "decode, 8 seqs @512", nSeg: 8, startPos: CTX, nTok: 1 },
    { label: "prefill 512", nSeg: 1, startPos: 0, nTok: CTX },
  ];
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  let rs = 0x1234567;
  const rand = (x: Float32Array, amp: number) => {
    for (let i = 0; i < x.length; i++) {
      rs ^= rs << 13; rs ^= rs >>> 17; rs ^= rs << 5;
      x[i] = ((rs >>> 0) / 4294967296 - 0.5) * amp;
    }
  };
  // Times the functions interleaved (each run times each once: drift and other processes' load
  // fall on all alike), µs per call: [median, min] over runs of ~20 ms each, after ~200 ms of
  // warm-up each (the optimizing compiler's tier-up of the kernels, in every thread).
  const timeAll = (fns: Array<() => void>): Array<[number, number]> => {
    const reps = fns.map((fn) => {
      const w0 = performance.now();
      let n = 0;
      while (performance.now() - w0 < 200 || n < 2) { fn(); n++; }
      const t0 = performance.now();
      fn();
      return Math.max(1, Math.round(20 / Math.max(performance.now() - t0, 0.001)));
    });
    const ts = fns.map(() => [] as number[]);
    for (let r = 0; r < runs; r++) {
      fns.forEach((fn, i) => {
        const t = performance.now();
        for (let j = 0; j < reps[i]!; j++) fn();
        ts[i]!.push(((performance.now() - t) * 1000) / reps[i]!);
      });
    }
    return ts.map((x) => [med(x), Math.min(...x)]);
  };
  // CPU time of other processes while a case ran (Linux /proc/stat): threads only scale on idle cores.
  const busyJiffies = (): number | undefined => {
    try {
      const a = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
      return a[0]! + a[1]! + a[2]! + a[5]! + a[6]! + a[7]!; // user nice system irq softirq steal
    } catch {
      return undefined;
    }
  };
  const K = await loadKernels({ path });
  const backends = await Promise.all(threadCounts.map((threads) => WasmBackend.create({ threads, kernels: { path } })));
  console.log(`one layer's attention step, ${path}, µs per call: median (min) of ${runs} interleaved runs (old: the kernel on thread 0 alone; new: the KV pool on N threads)`);
  console.log(`${"shape".padEnd(14)}${"case".padEnd(22)}${"old".padStart(22)}${threadCounts.map((t) => `new x${t}`.padStart(22)).join("")}${threadCounts.map((t) => `old/new x${t}`.padStart(14)).join("")}${"others".padStart(8)}`);
  for (const sh of shapes) {
    const p: AttentionParams = { nHeads: sh.nHeads, nKvHeads: sh.nKvHeads, headDim: sh.hd, headDimV: sh.hd, scale: 1 / Math.sqrt(sh.hd) };
    const qw = sh.nHeads * sh.hd, kw = sh.nKvHeads * sh.hd;
    for (const c of cases) {
      const rows = c.nSeg * c.nTok;
      const q = new Float32Array(rows * qw), k = new Float32Array(rows * kw), v = new Float32Array(rows * kw);
      rand(q, 4); rand(k, 4); rand(v, 2);
      // Each sequence's history (startPos positions) and the new rows' keys/values.
      const hk = new Float32Array(c.startPos * kw), hv = new Float32Array(c.startPos * kw);
      rand(hk, 4); rand(hv, 2);
      const segs: AttentionSegment[] = Array.from({ length: c.nSeg }, (_, i) => ({ slot: i, startPos: c.startPos, nTokens: c.nTok, row: i * c.nTok }));
      // Old: per segment, f32ToF16Row of the new rows into a whole-head cache, then attentionF16 (thread 0's memory).
      const arena = new KernelArena(K.memory);
      const ex = K.exports;
      const put = (x: Float32Array) => {
        const ptr = arena.alloc(Math.max(1, x.length) * 4);
        arena.f32(ptr, x.length).set(x);
        return ptr;
      };
      const pq = put(q), pk = put(k), pv = put(v), pOut = arena.alloc(rows * qw * 4);
      const scratch = arena.alloc((16 * (sh.hd + CTX + c.nTok + 8) + 4 * 1024) * 4);
      const caches = segs.map(() => {
        const kc = arena.alloc((c.startPos + c.nTok) * kw * 2), vc = arena.alloc((c.startPos + c.nTok) * kw * 2);
        if (c.startPos > 0) {
          ex.f32ToF16Row(put(hk), kc, hk.length);
          ex.f32ToF16Row(put(hv), vc, hv.length);
        }
        return { kc, vc };
      });
      const oldFn = () => {
        for (const [i, s] of segs.entries()) {
          const { kc, vc } = caches[i]!;
          ex.f32ToF16Row(pk + s.row * kw * 4, kc + s.startPos * kw * 2, s.nTokens * kw);
          ex.f32ToF16Row(pv + s.row * kw * 4, vc + s.startPos * kw * 2, s.nTokens * kw);
          ex.attentionF16(pq + s.row * qw * 4, kc, vc, pOut + s.row * qw * 4, scratch, s.startPos, s.nTokens, sh.nHeads, sh.nKvHeads, sh.hd, sh.hd, p.scale);
        }
      };
      oldFn();
      const oldOut = arena.f32(pOut, rows * qw).slice();
      // New: the backend's pool, on buffers of the backend (as the forward pass's).
      const outs: Float32Array[] = [];
      const newFns = backends.map((b) => {
        const pool = b.createKvPool({ nLayers: 1, slots: c.nSeg, slotSize: c.startPos + c.nTok, nKvHeads: sh.nKvHeads, headDim: sh.hd, headDimV: sh.hd, type: "f16" });
        if (c.startPos > 0) {
          const hq = b.allocate(c.startPos * qw), ho = b.allocate(c.startPos * qw);
          for (const s of segs) b.attention(pool, 0, [{ slot: s.slot, startPos: 0, nTokens: c.startPos, row: 0 }], hq, hk, hv, p, ho);
        }
        const [bq, bk, bv, bo] = [q, k, v, new Float32Array(rows * qw)].map((x) => {
          const y = b.allocate(x.length);
          y.set(x);
          return y;
        });
        outs.push(bo!);
        return () => b.attention(pool, 0, segs, bq!, bk!, bv!, p, bo!);
      });
      const b0 = busyJiffies(), c0 = process.cpuUsage(), w0 = performance.now();
      const [old, ...news] = timeAll([oldFn, ...newFns]);
      const b1 = busyJiffies(), c1 = process.cpuUsage(c0), wall = performance.now() - w0;
      const others = b0 === undefined || b1 === undefined ? "" : `${(((b1 - b0) * 10 - (c1.user + c1.system) / 1000) / wall).toFixed(2)}`.padStart(8);
      const same = outs.map((o) => o.every((x, i) => Object.is(x, oldOut[i])));
      const fmt = ([m, lo]: [number, number]) => `${m.toFixed(1)} (${lo.toFixed(1)})`;
      const cols = news.map((n, i) => `${fmt(n)}${same[i] ? "" : "!"}`.padStart(22)).join("");
      const ratios = news.map((n) => `${(old![0] / n[0]).toFixed(2)}`.padStart(14)).join("");
      console.log(`${sh.name.padEnd(14)}${c.label.padEnd(22)}${fmt(old!).padStart(22)}${cols}${ratios}${others}`);
    }
  }
  console.log("(! after a time: outputs differ in bits from the old path's; others: cores other processes kept busy meanwhile)");
  for (const b of backends) b.dispose();
}
