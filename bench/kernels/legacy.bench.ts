// Decode matvecs of one Qwen2-0.5B step (169 matrices) at 1 thread, per weight type of the
// families-legacy table (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, F16, BF16, F32), relaxed SIMD and
// SIMD128; plus the in-cache speed on one 896x896 matrix and prefill (layers only) at 4 and 16
// tokens per call. GB/s are of the file-layout (GGUF) weight bytes.
// Run: node bench/kernels/legacy.bench.ts [--quick] [--types Q4_0,F16,...]
import { loadKernels, createSharedMemory, KernelArena, type Kernels } from "../../src/kernels/kernels.ts";
import { LEGACY_FAMILIES, ACTIVATIONS, type KernelFamily, type LegacyKernelExports } from "../../src/kernels/families-legacy.ts";
import { getWeightTraits } from "../../src/quant/traits.ts";
import { qwen2_05bMatrices, HIDDEN, INTERMEDIATE, LAYERS } from "./shapes.ts";

const quick = process.argv.includes("--quick");
const typeArg = process.argv.indexOf("--types");
const only = typeArg > 0 ? process.argv[typeArg + 1].split(",") : undefined;
const RUNS = quick ? 3 : 7;
const mats = qwen2_05bMatrices();
const TOK = 16;

const memory = createSharedMemory(64 * 2 ** 20, 4 * 2 ** 30);
const relaxed = await loadKernels({ memory, path: "relaxed-simd" });
const plain = await loadKernels({ memory, path: "simd128" });
const arena = new KernelArena(memory);
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];

// f32 inputs for both widths, TOK tokens; y large enough for the output matrix x TOK
const xf: Record<number, number> = {};
for (const k of [HIDDEN, INTERMEDIATE]) {
  xf[k] = arena.alloc(k * 4 * TOK);
  const f = arena.f32(xf[k], k * TOK);
  for (let i = 0; i < f.length; i++) f[i] = Math.sin(i * 0.37) * 2;
}
const y = arena.alloc(151936 * 4 * TOK);
const base = arena.top;

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

// Valid random weights of the type: random quants, small positive f16 scales/mins; finite floats.
function fillWeights(f: KernelFamily, p: number, bytes: number): void {
  fillRandom(p, bytes);
  const t = getWeightTraits(f.type);
  const u16 = new Uint16Array(memory.buffer, p, bytes >> 1);
  if (t.blockSize === 32) {
    const half = t.bytesPerBlock >> 1;
    const nf16 = f.name === "Q4_1" || f.name === "Q5_1" ? 2 : 1;
    for (let b = 0; b < bytes / t.bytesPerBlock; b++) {
      for (let i = 0; i < nf16; i++) u16[b * half + i] = 0x1c00 | (u16[b * half + i] & 0x3ff);
    }
    if (f.name === "Q8_0") {
      const u8 = new Uint8Array(memory.buffer, p, bytes);
      for (let i = 0; i < bytes; i++) if (u8[i] === 0x80) u8[i] = 0x81;
    }
  } else if (f.name === "F32") {
    const u32 = new Uint32Array(memory.buffer, p, bytes >> 2);
    for (let i = 0; i < u32.length; i++) u32[i] &= 0xbfffffff;
  } else {
    for (let i = 0; i < u16.length; i++) u16[i] &= 0xbfff; // no exponent 31 (inf/NaN)
  }
}

interface Placed { w: number; a: number; k: number; rows: number; units: number }

function place(f: KernelFamily) {
  arena.top = base;
  const ex = relaxed.exports as unknown as LegacyKernelExports;
  const t = getWeightTraits(f.type);
  const act = ACTIVATIONS[f.activation];
  const a: Record<number, number> = {};
  for (const k of [HIDDEN, INTERMEDIATE]) {
    a[k] = arena.alloc(act.bytes(k, TOK));
    if (act.convert) ex[act.convert](xf[k], a[k], k, TOK);
    else new Float32Array(memory.buffer, a[k], k * TOK).set(new Float32Array(memory.buffer, xf[k], k * TOK));
  }
  const list: Placed[] = [];
  let fileBytes = 0, placedBytes = 0, repackMs = 0;
  for (const m of mats) {
    const bytes = (m.rows * m.k / t.blockSize) * t.bytesPerBlock;
    let w: number;
    if (f.repack) {
      // the repacked matrix stays; the file bytes go to a scratch after it, freed again
      w = arena.alloc(f.repackedBytes(m.rows, m.k));
      const keep = arena.top;
      const src = arena.alloc(bytes);
      fillWeights(f, src, bytes);
      const t0 = performance.now();
      ex[f.repack](src, w, m.rows, m.k);
      repackMs += performance.now() - t0;
      arena.top = keep;
    } else {
      w = arena.alloc(bytes);
      fillWeights(f, w, bytes);
    }
    list.push({ w, a: a[m.k], k: m.k, rows: m.rows, units: Math.ceil(m.rows / f.rowGranularity) });
    fileBytes += bytes;
    placedBytes += f.repackedBytes(m.rows, m.k);
  }
  return { list, fileBytes, placedBytes, repackMs };
}

function step(k: Kernels, f: KernelFamily, list: Placed[], ntok: number): number {
  const fn = (k.exports as unknown as LegacyKernelExports)[f.matmul];
  const t0 = performance.now();
  for (const m of list) fn(m.w, m.a, y, m.k, 0, m.units, m.rows, ntok);
  return performance.now() - t0;
}

console.log(`node ${process.version}; ${mats.length} matvecs per decode step, 1 thread; ${RUNS} runs, median; GB/s of file-layout weight bytes`);
console.log(`${"type".padEnd(7)} ${"file MB".padStart(8)} ${"placed MB".padStart(9)}  ${"relaxed ms".padStart(10)} ${"GB/s".padStart(5)} ${"tok/s".padStart(5)}  ${"simd128 ms".padStart(10)} ${"GB/s".padStart(5)}  ${"in-cache GB/s".padStart(13)}  prefill tok/s (relaxed, layers only) 4 / 16 per pass`);
for (const f of LEGACY_FAMILIES) {
  if (only && !only.includes(f.name)) continue;
  const p = place(f);
  const res: Record<string, number> = {};
  for (const k of [relaxed, plain]) {
    const times: number[] = [];
    for (let r = 0; r < RUNS + 1; r++) {
      const ms = step(k, f, p.list, 1);
      if (r > 0) times.push(ms);
    }
    res[k.path] = median(times);
  }
  // hot cache: the first 896x896 matrix again and again
  const m0 = p.list[0];
  const fn = (relaxed.exports as unknown as LegacyKernelExports)[f.matmul];
  const reps = 300;
  const hot: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn(m0.w, m0.a, y, m0.k, 0, m0.units, m0.rows, 1);
    hot.push((performance.now() - t0) / reps);
  }
  const t = getWeightTraits(f.type);
  const hotBytes = (m0.rows * m0.k / t.blockSize) * t.bytesPerBlock;
  // prefill: the 168 layer matrices
  const layers = p.list.slice(0, LAYERS * 7);
  const pre: number[] = [];
  for (const ntok of [4, TOK]) {
    const times: number[] = [];
    for (let r = 0; r < Math.max(2, RUNS >> 1) + 1; r++) {
      const ms = step(relaxed, f, layers, ntok);
      if (r > 0) times.push(ms);
    }
    pre.push((ntok * 1000) / median(times));
  }
  const gbs = (ms: number) => (p.fileBytes / (ms / 1000) / 1e9).toFixed(1);
  console.log(`${f.name.padEnd(7)} ${(p.fileBytes / 1e6).toFixed(0).padStart(8)} ${(p.placedBytes / 1e6).toFixed(0).padStart(9)}  ${res["relaxed-simd"].toFixed(2).padStart(10)} ${gbs(res["relaxed-simd"]).padStart(5)} ${(1000 / res["relaxed-simd"]).toFixed(0).padStart(5)}  ${res.simd128.toFixed(2).padStart(10)} ${gbs(res.simd128).padStart(5)}  ${(hotBytes / (median(hot) / 1000) / 1e9).toFixed(1).padStart(13)}  ${pre.map((v) => v.toFixed(0)).join(" / ")}${f.repack ? `   (repack ${(p.fileBytes / p.repackMs / 1e6).toFixed(2)} GB/s)` : ""}`);
}
