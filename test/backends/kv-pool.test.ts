// The WebAssembly backend's KV pool: sharded by KV head across the threads' memories, one
// attention dispatch per layer for every segment of a batch. Its outputs must be bit for bit
// those of the single-threaded kernel over a whole-head cache (what the backend ran before the
// pool), at any thread count, whatever else is in the batch.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WasmBackend } from "../../src/backends/wasm/wasm-backend.ts";
import { ReferenceBackend } from "../../src/backends/reference.ts";
import { loadKernels, KernelArena, type KernelExports, type KernelPath } from "../../src/kernels/kernels.ts";
import type { AttentionParams, AttentionSegment, ComputeBackend, KvPool } from "../../src/compute/backend.ts";
import { rng } from "../kernels/ref.ts";

// [nHeads, nKvHeads, headDim]: Qwen2-0.5B, Llama-3.2-1B, MQA, head size 128 with GQA and MQA.
const SHAPES: Array<[number, number, number]> = [
  [14, 2, 64],
  [32, 8, 64],
  [8, 1, 64],
  [16, 4, 128],
  [8, 1, 128],
];
const THREADS = [1, 2, 3];
const SLOTS = 6;
const SLOT_SIZE = 128;
// A batch: slots in no particular order, different histories and lengths (1..40 tokens).
const BATCH: Array<{ slot: number; startPos: number; nTokens: number }> = [
  { slot: 3, startPos: 0, nTokens: 1 },
  { slot: 0, startPos: 37, nTokens: 40 },
  { slot: 5, startPos: 12, nTokens: 7 },
  { slot: 1, startPos: 86, nTokens: 1 },
  { slot: 4, startPos: 5, nTokens: 23 },
  { slot: 2, startPos: 63, nTokens: 2 },
];

const backends = new Map<number, WasmBackend>();
before(async () => {
  // The first backend picks its kernel build (by a start-up timing race that may go either way);
  // the others are held to the same build, so every comparison runs one build.
  const first = await WasmBackend.create({ threads: THREADS[0]! });
  backends.set(THREADS[0]!, first);
  for (const t of THREADS.slice(1)) backends.set(t, await WasmBackend.create({ threads: t, kernels: { path: first.kernelPath } }));
});
after(() => {
  for (const b of backends.values()) b.dispose();
});

interface Data {
  p: AttentionParams;
  /** Per slot: keys and values of positions 0..SLOT_SIZE-1, [position][kvHead][headDim]. */
  k: Float32Array[];
  v: Float32Array[];
  /** Queries of the batch's rows. */
  q: Float32Array;
  segs: AttentionSegment[];
}

function makeData([nHeads, nKvHeads, hd]: (typeof SHAPES)[number], seed: number): Data {
  const r = rng(seed);
  const gauss = () => r() + r() + r() - 1.5;
  const k: Float32Array[] = [], v: Float32Array[] = [];
  for (let s = 0; s < SLOTS; s++) {
    k.push(Float32Array.from({ length: SLOT_SIZE * nKvHeads * hd }, () => gauss() * (2 / Math.sqrt(hd / 16))));
    v.push(Float32Array.from({ length: SLOT_SIZE * nKvHeads * hd }, () => gauss() * 3));
  }
  const rows = BATCH.reduce((a, s) => a + s.nTokens, 0);
  const q = Float32Array.from({ length: rows * nHeads * hd }, () => gauss() * 2);
  let row = 0;
  const segs = BATCH.map((s) => {
    const seg = { ...s, row };
    row += s.nTokens;
    return seg;
  });
  return { p: { nHeads, nKvHeads, headDim: hd, headDimV: hd, scale: 1 / Math.sqrt(hd) }, k, v, q, segs };
}

/** A pool whose slots hold the histories of the batch's segments (positions 0..startPos-1), each stored by one prefill segment. */
function historyPool(b: ComputeBackend, d: Data, layers = 2, into?: { pool: KvPool; layer: number }): KvPool {
  const { p } = d;
  const pool = into?.pool ?? b.createKvPool({ nLayers: layers, slots: SLOTS, slotSize: SLOT_SIZE, nKvHeads: p.nKvHeads, headDim: p.headDim, headDimV: p.headDimV, type: "f16" });
  const which = into ? [into.layer] : Array.from({ length: layers }, (_, l) => l);
  for (const seg of d.segs) {
    if (seg.startPos === 0) continue;
    const n = seg.startPos;
    const q = new Float32Array(n * p.nHeads * p.headDim);
    const out = new Float32Array(n * p.nHeads * p.headDimV);
    for (const l of which) b.attention(pool, l, [{ slot: seg.slot, startPos: 0, nTokens: n, row: 0 }], q, d.k[seg.slot]!, d.v[seg.slot]!, p, out);
  }
  return pool;
}

/** The batch's keys/values rows (each segment's new positions), as the forward pass hands them over. */
function batchKv(d: Data): { k: Float32Array; v: Float32Array } {
  const kw = d.p.nKvHeads * d.p.headDim, vw = d.p.nKvHeads * d.p.headDimV;
  const rows = d.segs.reduce((a, s) => a + s.nTokens, 0);
  const k = new Float32Array(rows * kw), v = new Float32Array(rows * vw);
  for (const s of d.segs) {
    k.set(d.k[s.slot]!.subarray(s.startPos * kw, (s.startPos + s.nTokens) * kw), s.row * kw);
    v.set(d.v[s.slot]!.subarray(s.startPos * vw, (s.startPos + s.nTokens) * vw), s.row * vw);
  }
  return { k, v };
}

/** Copies of a batch's arrays in the backend's own memory (the forward pass's buffers: thread 0 works on them in place). */
function inBackend(b: ComputeBackend, xs: Float32Array[]): Float32Array[] {
  return xs.map((x) => {
    const y = b.allocate(x.length);
    y.set(x);
    return y;
  });
}

/** The whole batch in one attention call, on layer `layer`. */
function runBatch(b: ComputeBackend, pool: KvPool, d: Data, own: boolean, layer = 1): Float32Array {
  const { k, v } = batchKv(d);
  const rows = d.segs.reduce((a, s) => a + s.nTokens, 0);
  const arrays: Float32Array[] = [d.q, k, v, new Float32Array(rows * d.p.nHeads * d.p.headDimV).fill(Number.NaN)];
  const [q, kk, vv, out] = own ? inBackend(b, arrays) : arrays;
  b.attention(pool, layer, d.segs, q!, kk!, vv!, d.p, out!);
  return out!.slice();
}

/** Each segment alone (rows from 0), its outputs placed at its rows. */
function runAlone(b: ComputeBackend, pool: KvPool, d: Data, layer = 1): Float32Array {
  const { p } = d;
  const qw = p.nHeads * p.headDim, kw = p.nKvHeads * p.headDim, vw = p.nKvHeads * p.headDimV, ow = p.nHeads * p.headDimV;
  const rows = d.segs.reduce((a, s) => a + s.nTokens, 0);
  const all = new Float32Array(rows * ow);
  for (const s of d.segs) {
    const out = new Float32Array(s.nTokens * ow);
    b.attention(pool, layer, [{ ...s, row: 0 }], d.q.subarray(s.row * qw, (s.row + s.nTokens) * qw),
      d.k[s.slot]!.subarray(s.startPos * kw), d.v[s.slot]!.subarray(s.startPos * vw), p, out);
    all.set(out, s.row * ow);
  }
  return all;
}

const kernelsByPath = new Map<KernelPath, { ex: KernelExports; arena: KernelArena }>();
async function kernels(path: KernelPath) {
  let k = kernelsByPath.get(path);
  if (!k) {
    const K = await loadKernels({ path });
    k = { ex: K.exports, arena: new KernelArena(K.memory) };
    kernelsByPath.set(path, k);
  }
  return k;
}

/** What the backend computed before the pool: attentionF16 on one thread over a whole-head cache, per segment. */
async function oldKernel(path: KernelPath, d: Data): Promise<Float32Array> {
  const { ex, arena } = await kernels(path);
  const { p } = d;
  const start = arena.top;
  const put = (x: Float32Array) => {
    const ptr = arena.alloc(x.length * 4);
    arena.f32(ptr, x.length).set(x);
    return ptr;
  };
  const ow = p.nHeads * p.headDimV, qw = p.nHeads * p.headDim;
  const rows = d.segs.reduce((a, s) => a + s.nTokens, 0);
  const all = new Float32Array(rows * ow);
  const scratch = arena.alloc((16 * (p.headDim + SLOT_SIZE + 8) + 4 * 1024) * 4);
  for (const s of d.segs) {
    const n = s.startPos + s.nTokens;
    const kc = arena.alloc(SLOT_SIZE * p.nKvHeads * p.headDim * 2), vc = arena.alloc(SLOT_SIZE * p.nKvHeads * p.headDimV * 2);
    ex.f32ToF16Row(put(d.k[s.slot]!.subarray(0, n * p.nKvHeads * p.headDim)), kc, n * p.nKvHeads * p.headDim);
    ex.f32ToF16Row(put(d.v[s.slot]!.subarray(0, n * p.nKvHeads * p.headDimV)), vc, n * p.nKvHeads * p.headDimV);
    const q = put(d.q.subarray(s.row * qw, (s.row + s.nTokens) * qw));
    const out = arena.alloc(s.nTokens * ow * 4);
    ex.attentionF16(q, kc, vc, out, scratch, s.startPos, s.nTokens, p.nHeads, p.nKvHeads, p.headDim, p.headDimV, p.scale);
    all.set(arena.f32(out, s.nTokens * ow), s.row * ow);
  }
  arena.top = start;
  return all;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: out[${i}] = ${a[i]}, want ${b[i]} (bits differ)`);
}

let seed = 1000;
for (const shape of SHAPES) {
  test(`${shape.join("/")}: a batch of segments at 1, 2 and 3 threads gives the old kernel's bits, each segment as alone`, async () => {
    const d = makeData(shape, seed++);
    const path = backends.get(1)!.kernelPath;
    const want = await oldKernel(path, d);
    assert.ok(want.every(Number.isFinite));
    for (const t of THREADS) {
      const b = backends.get(t)!;
      assert.equal(b.kernelPath, path);
      const batched = runBatch(b, historyPool(b, d), d, false);
      sameBits(batched, want, `${t} threads, one batch`);
      sameBits(runBatch(b, historyPool(b, d), d, true), want, `${t} threads, one batch in backend buffers`);
      sameBits(runAlone(b, historyPool(b, d), d), want, `${t} threads, segments alone`);
    }
  });
}

test("the pool's attention agrees with the reference backend as the kernel did", async () => {
  const ref = new ReferenceBackend();
  for (const shape of SHAPES) {
    const d = makeData(shape, seed++);
    const want = runBatch(ref, historyPool(ref, d), d, false);
    const got = runBatch(backends.get(3)!, historyPool(backends.get(3)!, d), d, false);
    let vmax = 0;
    for (const v of d.v) for (const x of v) vmax = Math.max(vmax, Math.abs(x));
    let sumErr = 0;
    for (let i = 0; i < want.length; i++) {
      const err = Math.abs(got[i]! - want[i]!);
      assert.ok(err <= 5e-4 * vmax, `${shape}: out[${i}] = ${got[i]}, want ${want[i]}`);
      sumErr += err;
    }
    assert.ok(sumErr / want.length <= 1e-6 * vmax, `${shape}: mean |error| ${sumErr / want.length}`);
  }
});

test("layers are separate: what layer 0 stores leaves layer 1 as it was", async () => {
  for (const shape of [[14, 2, 64], [8, 1, 64]] as Array<[number, number, number]>) {
    const d = makeData(shape, seed++);
    for (const t of THREADS) {
      const b = backends.get(t)!;
      const pool = historyPool(b, d);
      const other = makeData(shape, seed + 100);
      historyPool(b, other, 2, { pool, layer: 0 }); // other keys/values into layer 0 at the same positions
      runBatch(b, pool, other, false, 0);
      sameBits(runBatch(b, pool, d, false, 1), await oldKernel(b.kernelPath, d), `${shape} ${t} threads`);
    }
  }
});

test("copyKv then attention on the copy equals attention on the source, within and across threads", async () => {
  for (const shape of [[14, 2, 64], [8, 1, 64], [32, 8, 128]] as Array<[number, number, number]>) {
    const d = makeData(shape, seed++);
    const { p } = d;
    const qw = p.nHeads * p.headDim, kw = p.nKvHeads * p.headDim, ow = p.nHeads * p.headDimV;
    const results: Float32Array[] = [];
    for (const t of THREADS) {
      const b = backends.get(t)!;
      const pool = historyPool(b, d, 3);
      // Slot 0 holds 37 positions. A chain of copies 0 -> 1 -> 5 -> 2 -> 3: with MQA on 2 or 3
      // threads slots are spread over threads (slot s on thread s % threads), so some copies
      // cross threads both ways and some stay on one; then the same 5 tokens on every copy.
      const n = 37;
      b.copyKv(pool, 0, 1, n);
      b.copyKv(pool, 1, 5, n);
      b.copyKv(pool, 5, 2, n);
      b.copyKv(pool, 2, 3, n);
      const run = (slot: number) => {
        const out = new Float32Array(5 * ow);
        for (let l = 0; l < 3; l++) b.attention(pool, l, [{ slot, startPos: n, nTokens: 5, row: 0 }], d.q.subarray(0, 5 * qw), d.k[0]!.subarray(n * kw), d.v[0]!.subarray(n * kw), p, out);
        return out;
      };
      const a = run(0);
      for (const slot of [1, 5, 2, 3]) sameBits(run(slot), a, `${shape} ${t} threads, copy in slot ${slot}`);
      results.push(a);
    }
    sameBits(results[1]!, results[0]!, `${shape}: 2 threads vs 1`);
    sameBits(results[2]!, results[0]!, `${shape}: 3 threads vs 1`);
  }
});

test("slots out of range and full slots are clear errors", () => {
  const p: AttentionParams = { nHeads: 8, nKvHeads: 1, headDim: 64, headDimV: 64, scale: 0.125 };
  for (const t of THREADS) {
    const b = backends.get(t)!;
    const pool = b.createKvPool({ nLayers: 1, slots: 3, slotSize: 16, nKvHeads: 1, headDim: 64, headDimV: 64, type: "f16" });
    const q = new Float32Array(17 * 8 * 64), k = new Float32Array(17 * 64), v = new Float32Array(17 * 64), out = new Float32Array(17 * 8 * 64);
    assert.throws(() => b.attention(pool, 0, [{ slot: 3, startPos: 0, nTokens: 1, row: 0 }], q, k, v, p, out), /KV slot 3 is outside the pool \(slots 0\.\.2\)/);
    assert.throws(() => b.attention(pool, 0, [{ slot: -1, startPos: 0, nTokens: 1, row: 0 }], q, k, v, p, out), RangeError);
    assert.throws(() => b.attention(pool, 0, [{ slot: 2, startPos: 10, nTokens: 7, row: 0 }], q, k, v, p, out), /context is full: 17 positions needed, a sequence holds 16/);
    assert.throws(() => b.attention(pool, 0, [{ slot: 0, startPos: 0, nTokens: 1, row: 0 }, { slot: 1, startPos: 16, nTokens: 1, row: 1 }], q, k, v, p, out), /context is full: 17 positions needed, a sequence holds 16/);
    assert.throws(() => b.attention(pool, 1, [{ slot: 0, startPos: 0, nTokens: 1, row: 0 }], q, k, v, p, out), /layer 1 is outside/);
    assert.throws(() => b.copyKv(pool, 0, 3, 1), /KV slot 3 is outside the pool/);
    assert.throws(() => b.copyKv(pool, 1.5, 0, 1), /KV slot 1.5 is outside the pool/);
    assert.throws(() => b.copyKv(pool, 0, 1, 17), /a sequence holds 16/);
    // At the limit it works.
    b.attention(pool, 0, [{ slot: 2, startPos: 0, nTokens: 16, row: 0 }], q, k, v, p, out);
    b.copyKv(pool, 2, 0, 16);
  }
  assert.throws(() => backends.get(1)!.createKvPool({ nLayers: 1, slots: 1, slotSize: 4, nKvHeads: 1, headDim: 64, headDimV: 64, type: "f32" }), /f16 KV cache/);
});

test("more segments than one dispatch takes: the same outputs", async () => {
  // 70 one-token segments over 70 slots (a dispatch takes at most 64 jobs per thread).
  const nHeads = 8, nKvHeads = 2, hd = 64, n = 70;
  const p: AttentionParams = { nHeads, nKvHeads, headDim: hd, headDimV: hd, scale: 0.125 };
  const r = rng(5);
  const q = Float32Array.from({ length: n * nHeads * hd }, () => r() - 0.5);
  const k = Float32Array.from({ length: n * nKvHeads * hd }, () => r() - 0.5);
  const v = Float32Array.from({ length: n * nKvHeads * hd }, () => r() - 0.5);
  const segs = Array.from({ length: n }, (_, i) => ({ slot: i, startPos: 0, nTokens: 1, row: i }));
  const outs: Float32Array[] = [];
  for (const t of THREADS) {
    const b = backends.get(t)!;
    const pool = b.createKvPool({ nLayers: 1, slots: n, slotSize: 4, nKvHeads, headDim: hd, headDimV: hd, type: "f16" });
    const out = new Float32Array(n * nHeads * hd);
    b.attention(pool, 0, segs, q, k, v, p, out);
    outs.push(out);
  }
  // One visible position: each output is its value row, rounded to f16.
  const ref = new ReferenceBackend();
  const pool = ref.createKvPool({ nLayers: 1, slots: n, slotSize: 4, nKvHeads, headDim: hd, headDimV: hd, type: "f16" });
  const want = new Float32Array(n * nHeads * hd);
  ref.attention(pool, 0, segs, q, k, v, p, want);
  for (const out of outs) sameBits(out, want, "70 segments");
});
