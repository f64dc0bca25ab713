import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { loadKernels, KernelArena, type KernelExports, type KernelPath } from "../../src/kernels/kernels.ts";
import { ReferenceBackend } from "../../src/backends/reference.ts";
import { f16ToF32, f32ToF16, f32Bits, f32FromBits } from "../../src/quant/half.ts";
import { rng } from "./ref.ts";

// [nHeads, nKvHeads, hd, hdV, startPos, nTok]: KV groups of 1, 2, 3, 4, 7, 20 and 24 heads
// (passes of whole groups up to 16 heads, larger groups split), head sizes 4..256 with hdV != hd,
// every visible length mod 4, decode and prefill.
const SHAPES: Array<[number, number, number, number, number, number]> = [
  [14, 2, 64, 64, 116, 1], // Qwen2-0.5B decode
  [14, 2, 64, 64, 0, 1],
  [14, 2, 64, 64, 0, 37], // prefill from the start
  [14, 2, 64, 64, 61, 6], // prefill after a prefix
  [14, 2, 64, 64, 300, 13], // a command's rest after a cached system prompt: passes of 2 tokens
  [8, 8, 16, 16, 250, 20], // group 1: passes of 16 tokens, across key tiles of 256 positions
  [16, 2, 32, 32, 126, 5], // group 8: passes of 2 tokens, the last one alone
  [14, 2, 64, 64, 1499, 1],
  [4, 4, 64, 64, 10, 3],
  [20, 20, 12, 12, 7, 2], // group 1, two passes (16 + 4 heads)
  [4, 2, 128, 128, 33, 4],
  [6, 2, 12, 20, 21, 3], // group 3: a pair and a single head; hdV 20
  [7, 1, 20, 4, 9, 3],
  [32, 8, 64, 64, 70, 1], // group 4, two passes of 4 KV heads
  [24, 1, 16, 16, 5, 2], // group 24: passes of 12 heads
  [40, 2, 8, 8, 3, 2], // group 20: passes of 10 heads
  [6, 3, 4, 4, 12, 6],
  [8, 2, 256, 256, 19, 2],
  [8, 4, 128, 64, 50, 1],
  [8, 2, 64, 128, 2, 5],
];

// The documented scratch need of attentionF16 (head rows, then the f32 tile of cache rows).
const scratchFloats = (nHeads: number, hd: number, hdV: number, startPos: number, nTok: number) =>
  Math.min(nHeads * nTok, 16) * (hd + startPos + nTok + 3) + 4 * Math.max(1024, hd, hdV);

interface Case {
  nHeads: number; nKvHeads: number; hd: number; hdV: number; startPos: number; nTok: number;
  q: Float32Array; k: Float32Array; v: Float32Array; scale: number;
}

function makeCase([nHeads, nKvHeads, hd, hdV, startPos, nTok]: (typeof SHAPES)[number], seed: number): Case {
  const r = rng(seed);
  const n = startPos + nTok;
  // Keys and queries of a few units: scores spread over a few units, so that the softmax is
  // neither flat nor one-hot and every position matters.
  const gauss = () => r() + r() + r() - 1.5;
  const q = Float32Array.from({ length: nTok * nHeads * hd }, () => gauss() * 2);
  const k = Float32Array.from({ length: n * nKvHeads * hd }, () => gauss() * (2 / Math.sqrt(hd / 16)));
  const v = Float32Array.from({ length: n * nKvHeads * hdV }, () => gauss() * 3);
  return { nHeads, nKvHeads, hd, hdV, startPos, nTok, q, k, v, scale: 1 / Math.sqrt(hd) };
}

function reference(c: Case): Float32Array {
  const ref = new ReferenceBackend();
  const n = c.startPos + c.nTok;
  const pool = ref.createKvPool({ nLayers: 1, slots: 1, slotSize: n, nKvHeads: c.nKvHeads, headDim: c.hd, headDimV: c.hdV, type: "f16" });
  const p = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.hd, headDimV: c.hdV, scale: c.scale };
  const kw = c.nKvHeads * c.hd, vw = c.nKvHeads * c.hdV;
  // The prefix as one segment (its outputs unused), then the queries' segment.
  if (c.startPos > 0) {
    const q0 = new Float32Array(c.startPos * c.nHeads * c.hd);
    ref.attention(pool, 0, [{ slot: 0, startPos: 0, nTokens: c.startPos, row: 0 }], q0, c.k, c.v, p, new Float32Array(c.startPos * c.nHeads * c.hdV));
  }
  const out = new Float32Array(c.nTok * c.nHeads * c.hdV);
  ref.attention(pool, 0, [{ slot: 0, startPos: c.startPos, nTokens: c.nTok, row: 0 }], c.q, c.k.subarray(c.startPos * kw), c.v.subarray(c.startPos * vw), p, out);
  return out;
}

const GUARD = 256; // bytes checked around every buffer the kernel gets

/** Runs the kernel on fresh buffers (scratch of exactly the documented size) and checks it writes nothing else. */
function run(ex: KernelExports, arena: KernelArena, c: Case, fillScratch = 0): Float32Array {
  const start = arena.top;
  const put = (x: Float32Array) => {
    const p = arena.alloc(x.length * 4 + 2 * GUARD) + GUARD;
    arena.f32(p, x.length).set(x);
    return p;
  };
  // The cache as the backend keeps it: f16 bits, 2 bytes per value, written by f32ToF16Row.
  const cache = (x: Float32Array) => {
    const src = put(x);
    const p = arena.alloc(x.length * 2 + 2 * GUARD) + GUARD;
    ex.f32ToF16Row(src, p, x.length);
    return p;
  };
  const pq = put(c.q), pk = cache(c.k), pv = cache(c.v);
  const outLen = c.nTok * c.nHeads * c.hdV;
  const pOut = put(new Float32Array(outLen).fill(Number.NaN));
  const sLen = scratchFloats(c.nHeads, c.hd, c.hdV, c.startPos, c.nTok);
  const pS = put(new Float32Array(sLen).fill(fillScratch));
  const before = arena.u8(start, arena.top - start).slice();
  ex.attentionF16(pq, pk, pv, pOut, pS, c.startPos, c.nTok, c.nHeads, c.nKvHeads, c.hd, c.hdV, c.scale);
  const after = arena.u8(start, arena.top - start);
  // Only out and scratch may change (q and the cache are inputs; guards untouched).
  const writable = [[pOut, outLen * 4], [pS, sLen * 4]].map(([p, b]) => [p - start, p - start + b]);
  for (let i = 0; i < after.length; i++) {
    if (after[i] !== before[i] && !writable.some(([a, b]) => i >= a && i < b)) {
      assert.fail(`byte ${i} of the test area changed (out at ${pOut - start}, scratch at ${pS - start}, ${sLen * 4} bytes)`);
    }
  }
  const out = arena.f32(pOut, outLen).slice();
  arena.top = start;
  return out;
}

for (const path of ["relaxed-simd", "simd128"] as KernelPath[]) {
  describe(`attention kernels (${path})`, async () => {
    const K = await loadKernels({ path });
    const ex = K.exports;
    const arena = new KernelArena(K.memory);

    test("f32ToF16Row gives ggml's f32 -> f16 bits, bit for bit, at every f16 and rounding boundary", () => {
      const xs: number[] = [];
      for (let h = 0; h < 0x7c00; h++) {
        const lo = f32Bits(f16ToF32(h));
        const hi = f32Bits(f16ToF32(h + 1)); // 0x7c00: infinity, the overflow boundary
        const mid = f32Bits((f16ToF32(h) + f16ToF32(h + 1)) / 2); // a tie (exact in f32)
        xs.push(lo, mid, mid - 1, mid + 1, (lo + hi) >>> 1);
      }
      const r = rng(7);
      for (let i = 0; i < 50000; i++) xs.push((r() * 2 ** 32) >>> 0);
      xs.push(0x7f800000, 0x7f800001, 0x7fc00000, 0x7fffffff, 0x00000001, 0x007fffff, 0x477fefff, 0x477ff000, 0x477fffff, 0x47800000);
      // n % 8 == 4: the 4-value tail runs too.
      const n = ((xs.length * 2 + 7) & ~7) + 4;
      const bits = new Uint32Array(n);
      xs.forEach((b, i) => { bits[2 * i] = b; bits[2 * i + 1] = (b | 0x80000000) >>> 0; });
      const x = arena.alloc(n * 4);
      new Uint32Array(K.memory.buffer, x, n).set(bits);
      const y = arena.alloc(n * 2 + GUARD);
      arena.u8(y, n * 2 + GUARD).fill(0xa5);
      ex.f32ToF16Row(x, y, n);
      const got = new Uint16Array(K.memory.buffer, y, n).slice();
      assert.ok(arena.u8(y + n * 2, GUARD).every((b) => b === 0xa5), "wrote past n halves");
      // In place (y == x) gives the same halves.
      ex.f32ToF16Row(x, x, n);
      assert.deepEqual(new Uint16Array(K.memory.buffer, x, n).slice(), got, "in place");
      arena.top = x;
      for (let i = 0; i < n; i++) {
        const b = bits[i]!;
        // ggml's conversion; NaN: the quiet NaN 0x7E00 with the sign
        const want = f32ToF16(f32FromBits(b));
        assert.equal(got[i], want, `${f32FromBits(b)} (bits ${b.toString(16)}): got ${got[i]!.toString(16)}, want ${want.toString(16)}`);
      }
    });

    test("attentionF16 matches the reference backend over head counts, head sizes and lengths", () => {
      let seed = 1;
      for (const shape of SHAPES) {
        const c = makeCase(shape, seed++);
        const got = run(ex, arena, c);
        const want = reference(c);
        let vmax = 0;
        for (const x of c.v) vmax = Math.max(vmax, Math.abs(x));
        // exp by a polynomial and other orders of float sums: a weight's f16 rounding may flip by
        // one f16 unit (2^-11 relative), rarely; the rest agrees to ~1e-7 (mean about 2e-8). Weights
        // or queries left unrounded would be off by ~1e-5 on average.
        let sumErr = 0;
        for (let i = 0; i < want.length; i++) {
          const err = Math.abs(got[i]! - want[i]!);
          assert.ok(err <= 5e-4 * vmax, `${shape}: out[${i}] = ${got[i]}, want ${want[i]}`);
          sumErr += err;
        }
        assert.ok(sumErr / want.length <= 1e-6 * vmax, `${shape}: mean |error| ${sumErr / want.length}`);
      }
    });

    test("attentionF16 reads f16 subnormals, infinities and NaNs of the cache as their values", () => {
      const c = makeCase([14, 2, 64, 64, 70, 2], 77);
      // Keys and values of about 1e-5 (mostly f16 subnormals, below 2^-14), queries of about 1e4:
      // scores and outputs as spread as usual, all made of subnormal cache values.
      const t = { ...c, q: c.q.map((x) => x * 1e4), k: c.k.map((x) => x * 1e-5), v: c.v.map((x) => x * 1e-5) };
      const tiny = run(ex, arena, t), tinyWant = reference(t);
      let vmax = 0;
      for (const x of t.v) vmax = Math.max(vmax, Math.abs(x));
      for (let i = 0; i < tinyWant.length; i++) assert.ok(Math.abs(tiny[i]! - tinyWant[i]!) <= 5e-4 * vmax, `subnormals: out[${i}] = ${tiny[i]}, want ${tinyWant[i]}`);
      // Dim 5 of KV head 1 at position 40: 1e5 (beyond f16: inf), dim 9: -inf, dim 11: NaN.
      const row = 40 * 2 * 64 + 64;
      c.v[row + 5] = 1e5; c.v[row + 9] = -Infinity; c.v[row + 11] = Number.NaN;
      const got = run(ex, arena, c), want = reference(c);
      for (let i = 0; i < want.length; i++) {
        const d = i % 64, head = Math.floor(i / 64) % 14;
        if (head >= 7 && (d === 5 || d === 9 || d === 11)) {
          assert.ok(Object.is(got[i], want[i]), `out[${i}] = ${got[i]}, want ${want[i]}`);
          assert.ok(!Number.isFinite(got[i]!), `out[${i}] = ${got[i]}`);
        } else {
          assert.ok(Math.abs(got[i]! - want[i]!) <= 5e-4 * 6, `out[${i}] = ${got[i]}, want ${want[i]}`);
        }
      }
    });

    test("attentionF16 over a run of KV heads (rowKvHeads, kIn/vIn) gives the whole call's bits for those heads", () => {
      // What each thread of the WebAssembly backend runs on its shard of the KV pool: the cache
      // holds only the run's heads, q/k/v/out are rows of all heads, and the call first stores
      // the new keys/values. Every split of the KV heads into runs must give the same bits.
      let seed = 300;
      for (const shape of SHAPES) {
        const c = makeCase(shape, seed++);
        const whole = run(ex, arena, c);
        const { nHeads, nKvHeads, hd, hdV, startPos, nTok } = c;
        const group = nHeads / nKvHeads;
        const start = arena.top;
        const put = (x: Float32Array) => {
          const p = arena.alloc(x.length * 4);
          arena.f32(p, x.length).set(x);
          return p;
        };
        const pq = put(c.q);
        // The new rows' keys and values, rows of all KV heads.
        const pk = put(c.k.subarray(startPos * nKvHeads * hd)), pv = put(c.v.subarray(startPos * nKvHeads * hdV));
        const pOut = put(new Float32Array(nTok * nHeads * hdV).fill(Number.NaN));
        const pS = arena.alloc(scratchFloats(nHeads, hd, hdV, startPos, nTok) * 4);
        const splits = [1, 2, 3].filter((n) => n <= nKvHeads);
        for (const nRuns of splits) {
          arena.f32(pOut, nTok * nHeads * hdV).fill(Number.NaN);
          for (let g = 0; g < nRuns; g++) {
            const kv0 = Math.floor((nKvHeads * g) / nRuns), nkv = Math.floor((nKvHeads * (g + 1)) / nRuns) - kv0;
            // The run's cache: its heads of the prefix as f16, room for the new positions.
            const kc = arena.alloc((startPos + nTok) * nkv * hd * 2), vc = arena.alloc((startPos + nTok) * nkv * hdV * 2);
            for (let pos = 0; pos < startPos; pos++) {
              ex.f32ToF16Row(put(c.k.subarray((pos * nKvHeads + kv0) * hd, (pos * nKvHeads + kv0 + nkv) * hd)), kc + pos * nkv * hd * 2, nkv * hd);
              ex.f32ToF16Row(put(c.v.subarray((pos * nKvHeads + kv0) * hdV, (pos * nKvHeads + kv0 + nkv) * hdV)), vc + pos * nkv * hdV * 2, nkv * hdV);
            }
            ex.attentionF16(pq + kv0 * group * hd * 4, kc, vc, pOut + kv0 * group * hdV * 4, pS, startPos, nTok, nkv * group, nkv, hd, hdV, c.scale,
              nKvHeads, pk + kv0 * hd * 4, pv + kv0 * hdV * 4);
          }
          const got = arena.f32(pOut, nTok * nHeads * hdV);
          const gb = new Uint32Array(got.buffer, got.byteOffset, got.length), wb = new Uint32Array(whole.buffer);
          for (let i = 0; i < gb.length; i++) if (gb[i] !== wb[i]) assert.fail(`${shape}, ${nRuns} runs: out[${i}] = ${got[i]}, want ${whole[i]}`);
        }
        arena.top = start;
      }
    });

    test("attentionF32 (the cache's values kept as f32) gives attentionF16's bits, subnormals, infinities and NaNs included", () => {
      // Both kernels store the keys and values themselves (kIn/vIn): first the prefix (its outputs
      // unused), then the queries' rows; each cache in its own form (2 or 4 bytes per value).
      const attendBoth = (c: Case): [Float32Array, Float32Array] => {
        const { nHeads, nKvHeads, hd, hdV, startPos, nTok } = c;
        const n = startPos + nTok;
        const results: Float32Array[] = [];
        for (const bytes of [2, 4]) {
          const start = arena.top;
          const put = (x: Float32Array) => {
            const p = arena.alloc(Math.max(1, x.length) * 4);
            arena.f32(p, x.length).set(x);
            return p;
          };
          const kc = arena.alloc(n * nKvHeads * hd * bytes), vc = arena.alloc(n * nKvHeads * hdV * bytes);
          const pS = arena.alloc(scratchFloats(nHeads, hd, hdV, n, 0) * 4);
          const f = bytes === 2 ? ex.attentionF16 : ex.attentionF32;
          if (startPos > 0) {
            const pre = put(new Float32Array(startPos * nHeads * hd));
            f(pre, kc, vc, put(new Float32Array(startPos * nHeads * hdV)), pS, 0, startPos, nHeads, nKvHeads, hd, hdV, c.scale, nKvHeads, put(c.k), put(c.v));
          }
          const pOut = put(new Float32Array(nTok * nHeads * hdV));
          f(put(c.q), kc, vc, pOut, pS, startPos, nTok, nHeads, nKvHeads, hd, hdV, c.scale, nKvHeads,
            put(c.k.subarray(startPos * nKvHeads * hd)), put(c.v.subarray(startPos * nKvHeads * hdV)));
          results.push(arena.f32(pOut, nTok * nHeads * hdV).slice());
          arena.top = start;
        }
        return [results[0]!, results[1]!];
      };
      const same = (a: Float32Array, b: Float32Array, what: string) => {
        const x = new Uint32Array(a.buffer), y = new Uint32Array(b.buffer);
        for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: out[${i}] = ${b[i]}, attentionF16 gives ${a[i]}`);
      };
      let seed = 700;
      for (const shape of SHAPES) {
        const [a, b] = attendBoth(makeCase(shape, seed++));
        same(a, b, `${shape}`);
      }
      const c = makeCase([4, 4, 64, 64, 70, 2], 78);
      const tiny = { ...c, q: c.q.map((x) => x * 1e4), k: c.k.map((x) => x * 1e-5), v: c.v.map((x) => x * 1e-5) };
      same(...attendBoth(tiny), "subnormal keys and values");
      const row = 40 * 4 * 64 + 64;
      c.v[row + 5] = 1e5; c.v[row + 9] = -Infinity; c.v[row + 11] = Number.NaN;
      c.k[row + 3] = 1e5; c.k[row + 7] = Number.NaN;
      same(...attendBoth(c), "infinite and NaN keys and values");
    });

    test("attentionF16 ignores what the scratch held, and repeats itself exactly", () => {
      const c = makeCase([14, 2, 64, 64, 29, 3], 99);
      const a = run(ex, arena, c, 0);
      const b = run(ex, arena, c, Number.NaN);
      assert.deepEqual(b, a);
    });

    test("each query sees exactly the positions up to its own", () => {
      // A key far more aligned with the queries than the others takes nearly all the weight; its
      // value tells whether it was visible. Position p carries value p in every dim.
      const nHeads = 4, nKvHeads = 2, hd = 8, hdV = 4, startPos = 5, nTok = 6;
      const n = startPos + nTok;
      const q = new Float32Array(nTok * nHeads * hd).fill(1);
      const k = new Float32Array(n * nKvHeads * hd);
      const v = new Float32Array(n * nKvHeads * hdV);
      for (let p = 0; p < n; p++) {
        for (let i = 0; i < nKvHeads * hd; i++) k[p * nKvHeads * hd + i] = p === 2 || p === startPos + 3 ? 4 : 0;
        for (let i = 0; i < nKvHeads * hdV; i++) v[p * nKvHeads * hdV + i] = p;
      }
      // Score 4 * 8 * scale = 32 / sqrt(8) ~ 11.3 for positions 2 and 8, 0 elsewhere.
      const out = run(ex, arena, { nHeads, nKvHeads, hd, hdV, startPos, nTok, q, k, v, scale: 1 / Math.sqrt(hd) });
      for (let t = 0; t < nTok; t++) {
        const want = t >= 3 ? 5 : 2; // the mean of positions 2 and 8, or 2 alone
        for (let i = 0; i < nHeads * hdV; i++) {
          const got = out[t * nHeads * hdV + i]!;
          assert.ok(Math.abs(got - want) < 0.01, `token ${t}: ${got}, want about ${want}`);
        }
      }
    });
  });
}

test("both builds give the same attention, bit for bit (products of f16 values are exact)", async () => {
  const a = await loadKernels({ path: "relaxed-simd" });
  const b = await loadKernels({ path: "simd128" });
  let seed = 500;
  for (const shape of SHAPES) {
    const c = makeCase(shape, seed++);
    assert.deepEqual(run(a.exports, new KernelArena(a.memory), c), run(b.exports, new KernelArena(b.memory), c), `${shape}`);
  }
});
