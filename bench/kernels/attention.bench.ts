// attentionF16 alone at Qwen2-0.5B shapes (14 heads, 2 KV heads, head dim 64), 24 layers each with
// its own cache, called layer after layer as in a forward pass. Decode: nTok 1 after L cached
// positions (startPos L); prefill: nTok 128 at startPos 0. Reports medians over runs: µs per call
// and ms per token for the 24 layers (prefill: the 128-token call / 128).
// --cold streams 48 MiB before every call (untimed), as the weights of a real forward pass do
// between two attentions of a layer: the cache then comes from DRAM.
// Run: node bench/kernels/attention.bench.ts [--compare DIR] [--wasm DIR] [--cold] [--simd128] [--runs N]
//   --wasm DIR     kernels-{relaxed,simd128}.wasm to time (default build/kernels)
//   --compare DIR  a second build timed interleaved with the first (e.g. a copy of an older one),
//                  with the largest output difference between the two
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { loadKernels, createSharedMemory, KernelArena, type KernelExports } from "../../src/kernels/kernels.ts";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const path = process.argv.includes("--simd128") ? "simd128" : "relaxed-simd";
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
const builds: Array<{ name: string; ex: KernelExports }> = [];
for (const dir of [arg("--wasm") ?? "build/kernels", arg("--compare")]) {
  if (dir) builds.push({ name: dir, ex: (await loadKernels({ memory, path, binaries: binaries(dir) })).exports });
}
const ex0 = builds[0]!.ex;

const arena = new KernelArena(memory);
const kw = N_KV * HD;
const kc: number[] = [], vc: number[] = [];
for (let l = 0; l < LAYERS; l++) {
  kc.push(arena.alloc(MAX_POS * kw * 4));
  vc.push(arena.alloc(MAX_POS * kw * 4));
}
const q = arena.alloc(128 * N_HEADS * HD * 4);
const outs = builds.map(() => arena.alloc(128 * N_HEADS * HD * 4));
// The documented scratch need: min(nHeads, 16) * (hd + startPos + nTok + 3) f32.
const scratch = arena.alloc(Math.min(N_HEADS, 16) * (HD + MAX_POS + 3) * 4);
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
  // Keys scaled so that the softmax is neither flat nor one-hot.
  fill(tmp, MAX_POS * kw, 4); ex0.roundToF16Row(tmp, kc[l]!, MAX_POS * kw);
  fill(tmp, MAX_POS * kw, 2); ex0.roundToF16Row(tmp, vc[l]!, MAX_POS * kw);
}
fill(q, 128 * N_HEADS * HD, 4);
if (cold) arena.u8(flush, FLUSH_BYTES).fill(1); // written: untouched pages would all map to one zero page
const scale = 1 / Math.sqrt(HD);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;

// Every layer once, reps times; µs per call.
function step(ex: KernelExports, out: number, startPos: number, nTok: number, reps: number): number {
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
for (const c of cases) {
  for (const [i, b] of builds.entries()) step(b.ex, outs[i]!, c.startPos, c.nTok, 1); // warm-up
  const probe = step(ex0, outs[0]!, c.startPos, c.nTok, 1) * LAYERS; // µs per pass over the layers
  const reps = Math.max(1, Math.round((cold ? 3000 : 20000) / Math.max(probe, 1)));
  const times = builds.map(() => [] as number[]);
  for (let r = 0; r < RUNS; r++) builds.forEach((b, i) => times[i]!.push(step(b.ex, outs[i]!, c.startPos, c.nTok, reps)));
  const cols = builds.map((_, i) => {
    const perCall = median(times[i]!);
    const perTok = (perCall * LAYERS) / c.nTok / 1000;
    return `${perCall.toFixed(1).padStart(8)} µs/call ${perTok.toFixed(3).padStart(7)} ms/tok/24L`;
  });
  let extra = "";
  if (builds.length > 1) {
    const n = c.nTok * N_HEADS * HD;
    const a = arena.f32(outs[0]!, n), b = arena.f32(outs[1]!, n);
    let d = 0, m = 0;
    for (let i = 0; i < n; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); m = Math.max(m, Math.abs(b[i]!)); }
    extra = `  x${(median(times[1]!) / median(times[0]!)).toFixed(2)}  max|Δ| ${d.toExponential(1)} (max |out| ${m.toFixed(2)})`;
  }
  console.log(`${c.label.padEnd(16)}${cols.join("  |")}${extra}`);
}
if (builds.length > 1) console.log(`columns: ${builds.map((b) => b.name).join(" | ")}; xN = second / first`);
