import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  loadKernels, KernelArena, actBytes, q4_0R8Bytes, q8_0R8Bytes, rowGroups, ACT_BLOCK_BYTES,
  type Kernels, type KernelPath,
} from "../../src/kernels/kernels.ts";
import { refQ4_0, refQ8_0, randomFloats, quantizeMatrix } from "./ref.ts";
import { runnableKernelPaths, vnniUnavailable } from "../helpers/kernel-builds.ts";
import type { WeightQuantTraits } from "../../src/quant/quant-traits.ts";
import { f16ToF32 } from "../../src/quant/half.ts";

const paths: KernelPath[] = runnableKernelPaths;
const shapes: Array<[number, number]> = [[1, 32], [7, 64], [8, 96], [13, 256], [37, 160], [64, 896]];

test("loadKernels picks relaxed SIMD on this runtime and reports it", async () => {
  const k = await loadKernels();
  assert.ok(k.path === "relaxed-simd" || k.path === "relaxed-simd-vnni", k.path);
  assert.equal(k.fallbackReason, undefined);
  if (vnniUnavailable === undefined) {
    // the VNNI build passed its self test: it is the one kept
    assert.equal(k.vnniReason, undefined);
    assert.equal(k.path, "relaxed-simd-vnni");
  } else {
    // its self test failed here (a saturating or signed dot-add): the i16-sum build, and why
    assert.equal(k.path, "relaxed-simd");
    assert.match(k.vnniReason ?? "", /relaxed-SIMD VNNI self test failed/);
  }
  const p = await loadKernels({ path: "simd128" });
  assert.equal(p.path, "simd128");
});

test("a build can be forced by option or by MIMO_KERNELS", async () => {
  for (const path of runnableKernelPaths) {
    const k = await loadKernels({ path });
    assert.equal(k.path, path);
  }
  if (vnniUnavailable !== undefined) await assert.rejects(loadKernels({ path: "relaxed-simd-vnni" }), /VNNI self test failed/);
  const old = process.env.MIMO_KERNELS;
  try {
    process.env.MIMO_KERNELS = "simd128";
    assert.equal((await loadKernels()).path, "simd128");
    assert.equal((await loadKernels({ path: "relaxed-simd" })).path, "relaxed-simd"); // the option wins
    process.env.MIMO_KERNELS = "relaxed-simd";
    assert.equal((await loadKernels()).path, "relaxed-simd");
    process.env.MIMO_KERNELS = "avx9000";
    await assert.rejects(loadKernels(), /MIMO_KERNELS must be one of/);
  } finally {
    if (old === undefined) delete process.env.MIMO_KERNELS;
    else process.env.MIMO_KERNELS = old;
  }
});

test("loadKernels keeps the plain relaxed build when the VNNI build cannot load", async () => {
  const k = await loadKernels({ binaries: { relaxedVnni: new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1]) } });
  assert.equal(k.path, "relaxed-simd");
  assert.match(k.vnniReason ?? "", /VNNI build unavailable/);
  await assert.rejects(loadKernels({ path: "relaxed-simd-vnni", binaries: { relaxedVnni: new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1]) } }), /VNNI build unavailable/);
});

test("Q4_0 and Q8_0 kernels give bit-identical results in all three builds (odd shapes, uneven splits)", async () => {
  const builds = await Promise.all(paths.map((path) => loadKernels({ path })));
  const run = (K: Kernels, c: "Q4_0" | "Q8_0", w: Uint8Array, nrows: number, k: number, x: Float32Array, ntok: number, splits: number[]): Float32Array => {
    const ex = K.exports, arena = new KernelArena(K.memory);
    const rb = c === "Q4_0" ? q4_0R8Bytes(nrows, k) : q8_0R8Bytes(nrows, k);
    const pw = arena.alloc(w.length), pr = arena.alloc(rb), px = arena.alloc(k * ntok * 4), pa = arena.alloc(actBytes(k, ntok));
    const py = arena.alloc(nrows * ntok * 4 * 3);
    arena.u8(pw, w.length).set(w);
    arena.f32(px, k * ntok).set(x);
    ex.quantizeAct(px, pa, k, ntok);
    if (c === "Q4_0") ex.repackQ4_0(pw, pr, nrows, k);
    else ex.repackQ8_0(pw, pr, nrows, k);
    const y = arena.f32(py, nrows * ntok * 3).fill(NaN);
    const out = new Float32Array(nrows * ntok * 3);
    // matmul split over row groups at the given boundaries (uneven thread shards)
    for (let i = 0; i + 1 < splits.length; i++) {
      if (c === "Q4_0") ex.matmulQ4_0R8(pr, pa, py, k, splits[i], splits[i + 1], nrows, ntok);
      else ex.matmulQ8_0R8(pr, pa, py, k, splits[i], splits[i + 1], nrows, ntok);
    }
    // every token through the matvec too, and through the original layout
    for (let t = 0; t < ntok; t++) {
      const yt = py + (nrows * ntok + t * nrows) * 4, ap = pa + t * actBytes(k);
      for (let i = 0; i + 1 < splits.length; i++) {
        if (c === "Q4_0") ex.matvecQ4_0R8(pr, ap, yt, k, splits[i], splits[i + 1], nrows);
        else ex.matvecQ8_0R8(pr, ap, yt, k, splits[i], splits[i + 1], nrows);
      }
      const yo = py + (2 * nrows * ntok + t * nrows) * 4;
      if (c === "Q4_0") ex.matvecQ4_0(pw, ap, yo, k, 0, nrows);
      else ex.matvecQ8_0(pw, ap, yo, k, 0, nrows);
    }
    out.set(y);
    assert.ok(out.every((v) => !Number.isNaN(v)), "every output written");
    return out;
  };
  const t = { Q4_0: refQ4_0, Q8_0: refQ8_0 };
  for (const c of ["Q4_0", "Q8_0"] as const) {
    for (const [nrows, k, ntok] of [[13, 96, 5], [37, 160, 7], [61, 896, 9], [203, 256, 4], [8, 4864, 3]] as Array<[number, number, number]>) {
      const w = quantizeMatrix(t[c], randomFloats(nrows * k, nrows * 7 + k), nrows, k);
      const x = randomFloats(k * ntok, ntok * 13 + k);
      const g = rowGroups(nrows);
      const splits = g >= 3 ? [0, 1, Math.max(2, g - 2), g] : [0, g];
      const outs = builds.map((K) => run(K, c, w, nrows, k, x, ntok, splits));
      for (let b = 1; b < builds.length; b++) {
        assert.deepEqual(new Uint32Array(outs[b].buffer), new Uint32Array(outs[0].buffer), `${c} ${nrows}x${k} ntok ${ntok}: ${builds[b].path} vs ${builds[0].path}`);
      }
    }
  }
});

test("loadKernels falls back to SIMD128 when the relaxed build cannot load", async () => {
  const k = await loadKernels({ binaries: { relaxed: new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1]) } });
  assert.equal(k.path, "simd128");
  assert.match(k.fallbackReason ?? "", /unavailable/);
});

/** Reference: activation row quantized to Q8_0 by the quant module, dotted with each weight row. */
function refMatvec(t: WeightQuantTraits, w: Uint8Array, nrows: number, k: number, x: Float32Array, xOff = 0): { y: Float64Array; mag: Float64Array } {
  const a = new Uint8Array((k / 32) * 34);
  refQ8_0.quantizeActivationRow!(x, xOff, a, 0, k); // llama.cpp's x86 runtime rounding, as quantizeAct
  const rowBytes = (k / 32) * t.bytesPerBlock;
  const y = new Float64Array(nrows);
  const mag = new Float64Array(nrows);
  // magnitude bound for the tolerance: sum over blocks |d_w d_a| * sum |q_w q_a|
  const wf = new Float32Array(k), af = new Float32Array(k);
  refQ8_0.dequantizeRow(a, 0, af, 0, k);
  for (let r = 0; r < nrows; r++) {
    y[r] = t.vecDot(k, w, r * rowBytes, a, 0);
    t.dequantizeRow(w, r * rowBytes, wf, 0, k);
    let m = 0;
    for (let j = 0; j < k; j++) m += Math.abs(wf[j] * af[j]);
    mag[r] = m;
  }
  return { y, mag };
}

function assertClose(got: Float32Array, want: Float64Array, mag: Float64Array, what: string): void {
  assert.equal(got.length, want.length);
  for (let r = 0; r < want.length; r++) {
    const tol = 1e-5 * mag[r] + 1e-30;
    assert.ok(Math.abs(got[r] - want[r]) <= tol, `${what}: row ${r}: got ${got[r]}, want ${want[r]} (tol ${tol})`);
  }
}

for (const path of paths) {
  describe(`kernels (${path})`, async () => {
    const K: Kernels = await loadKernels({ path });
    const ex = K.exports;
    const arena = new KernelArena(K.memory);

    test("quantizeRowQ8_0 is byte-identical to the reference quantizer", () => {
      for (const k of [32, 96, 896]) {
        const x = randomFloats(k, k);
        x.fill(0, 32, 64 <= k ? 64 : 32); // an all-zero block
        if (k >= 96) { // exact ties after scaling: amax 127 gives d = 1
          x[64] = 127; x[65] = 2.5; x[66] = -3.5; x[67] = 0.5; x[68] = -0.5; x[69] = 126.5;
        }
        const px = arena.alloc(k * 4), py = arena.alloc((k / 32) * 34);
        arena.f32(px, k).set(x);
        ex.quantizeRowQ8_0(px, py, k);
        const want = new Uint8Array((k / 32) * 34);
        refQ8_0.quantizeRow(x, 0, want, 0, k);
        assert.deepEqual(arena.u8(py, want.length), want);
      }
    });

    test("quantizeAct gives llama.cpp's runtime (AVX2) quants, the f16-rounded scale and the quant sum", () => {
      const k = 160, n = 3;
      const x = randomFloats(k * n, 7);
      const px = arena.alloc(k * n * 4), py = arena.alloc(actBytes(k, n));
      arena.f32(px, k * n).set(x);
      ex.quantizeAct(px, py, k, n);
      const want = new Uint8Array((k / 32) * 34);
      const got = new DataView(K.memory.buffer, py, actBytes(k, n));
      for (let t = 0; t < n; t++) {
        refQ8_0.quantizeActivationRow!(x, t * k, want, 0, k);
        for (let b = 0; b < k / 32; b++) {
          const o = (t * (k / 32) + b) * ACT_BLOCK_BYTES;
          let s = 0;
          for (let j = 0; j < 32; j++) {
            const q = (want[b * 34 + 2 + j] << 24) >> 24;
            assert.equal(got.getInt8(o + j), q);
            s += q;
          }
          assert.equal(got.getFloat32(o + 32, true), f16ToF32(want[b * 34] | (want[b * 34 + 1] << 8)));
          assert.equal(got.getInt32(o + 36, true), s);
          assert.equal(got.getInt32(o + 48, true), -128 * s); // the VNNI sums' starts (common.ts)
          assert.equal(got.getInt32(o + 52, true), -136 * s);
        }
      }
    });

    test("extreme quants (nibbles 15 and 0, weights and activations +-127) do not overflow", () => {
      const nrows = 8, k = 64;
      for (const [wq, aq] of [[15, 127], [15, -127], [0, 127], [0, -127]]) {
        // Q4_0 with every nibble wq, unit scale; activations all aq with d = 1
        const w4 = new Uint8Array(nrows * 2 * 18), w8 = new Uint8Array(nrows * 2 * 34);
        for (let b = 0; b < nrows * 2; b++) {
          w4[b * 18 + 1] = 0x3c; w4.fill(wq | (wq << 4), b * 18 + 2, b * 18 + 18);
          w8[b * 34 + 1] = 0x3c; w8.fill(wq === 15 ? 127 : 0x81, b * 34 + 2, b * 34 + 34);
        }
        const x = new Float32Array(k).fill(aq);
        const pw4 = arena.alloc(w4.length), pw8 = arena.alloc(w8.length);
        const pr4 = arena.alloc(q4_0R8Bytes(nrows, k)), pr8 = arena.alloc(q8_0R8Bytes(nrows, k));
        const px = arena.alloc(k * 4), pa = arena.alloc(actBytes(k)), py = arena.alloc(nrows * 4);
        arena.u8(pw4, w4.length).set(w4);
        arena.u8(pw8, w8.length).set(w8);
        arena.f32(px, k).set(x);
        ex.quantizeAct(px, pa, k, 1);
        ex.repackQ4_0(pw4, pr4, nrows, k);
        ex.repackQ8_0(pw8, pr8, nrows, k);
        const want4 = (wq - 8) * aq * k, want8 = (wq === 15 ? 127 : -127) * aq * k;
        ex.matvecQ4_0R8(pr4, pa, py, k, 0, 1, nrows);
        assert.deepEqual([...arena.f32(py, nrows)], new Array(nrows).fill(want4), `Q4_0R8 ${wq} ${aq}`);
        ex.matmulQ4_0R8(pr4, pa, py, k, 0, 1, nrows, 1);
        assert.deepEqual([...arena.f32(py, nrows)], new Array(nrows).fill(want4), `Q4_0R8 matmul ${wq} ${aq}`);
        ex.matvecQ4_0(pw4, pa, py, k, 0, nrows);
        assert.deepEqual([...arena.f32(py, nrows)], new Array(nrows).fill(want4), `Q4_0 ${wq} ${aq}`);
        ex.matvecQ8_0R8(pr8, pa, py, k, 0, 1, nrows);
        assert.deepEqual([...arena.f32(py, nrows)], new Array(nrows).fill(want8), `Q8_0R8 ${wq} ${aq}`);
        ex.matvecQ8_0(pw8, pa, py, k, 0, nrows);
        assert.deepEqual([...arena.f32(py, nrows)], new Array(nrows).fill(want8), `Q8_0 ${wq} ${aq}`);
      }
    });

    const cases: Array<{ name: string; t: WeightQuantTraits; repack: "repackQ4_0" | "repackQ8_0"; r8: "matvecQ4_0R8" | "matvecQ8_0R8"; mm: "matmulQ4_0R8" | "matmulQ8_0R8"; orig: "matvecQ4_0" | "matvecQ8_0"; bytes: (n: number, k: number) => number }> = [
      { name: "Q4_0", t: refQ4_0, repack: "repackQ4_0", r8: "matvecQ4_0R8", mm: "matmulQ4_0R8", orig: "matvecQ4_0", bytes: q4_0R8Bytes },
      { name: "Q8_0", t: refQ8_0, repack: "repackQ8_0", r8: "matvecQ8_0R8", mm: "matmulQ8_0R8", orig: "matvecQ8_0", bytes: q8_0R8Bytes },
    ];

    for (const c of cases) {
      test(`${c.name} x Q8_0 matvec equals the reference dot, original and repacked layouts`, () => {
        for (const [nrows, k] of shapes) {
          const w = quantizeMatrix(c.t, randomFloats(nrows * k, nrows * 1000 + k), nrows, k);
          const x = randomFloats(k, k + 1);
          const { y: want, mag } = refMatvec(c.t, w, nrows, k, x);
          const pw = arena.alloc(w.length), pr = arena.alloc(c.bytes(nrows, k));
          const px = arena.alloc(k * 4), pa = arena.alloc(actBytes(k)), py = arena.alloc(nrows * 4 + 64);
          arena.u8(pw, w.length).set(w);
          arena.f32(px, k).set(x);
          ex.quantizeAct(px, pa, k, 1);
          ex[c.orig](pw, pa, py, k, 0, nrows);
          assertClose(arena.f32(py, nrows), want, mag, `${c.orig} ${nrows}x${k}`);
          ex[c.repack](pw, pr, nrows, k);
          arena.f32(py, nrows + 16).fill(NaN);
          ex[c.r8](pr, pa, py, k, 0, rowGroups(nrows), nrows);
          assertClose(arena.f32(py, nrows), want, mag, `${c.r8} ${nrows}x${k}`);
          assert.ok(arena.f32(py + nrows * 4, 16).every(Number.isNaN), "no write past the last row");
        }
      });

      test(`${c.name} matvec over a range of row groups writes exactly those rows (thread split)`, () => {
        const nrows = 37, k = 128;
        const w = quantizeMatrix(c.t, randomFloats(nrows * k, 99), nrows, k);
        const x = randomFloats(k, 98);
        const { y: want, mag } = refMatvec(c.t, w, nrows, k, x);
        const pw = arena.alloc(w.length), pr = arena.alloc(c.bytes(nrows, k));
        const px = arena.alloc(k * 4), pa = arena.alloc(actBytes(k)), py = arena.alloc(nrows * 4);
        arena.u8(pw, w.length).set(w);
        arena.f32(px, k).set(x);
        ex.quantizeAct(px, pa, k, 1);
        ex[c.repack](pw, pr, nrows, k);
        const y = arena.f32(py, nrows);
        y.fill(NaN);
        ex[c.r8](pr, pa, py, k, 1, 3, nrows);
        for (let r = 0; r < nrows; r++) assert.equal(Number.isNaN(y[r]), r < 8 || r >= 24, `row ${r}`);
        ex[c.r8](pr, pa, py, k, 0, 1, nrows);
        ex[c.r8](pr, pa, py, k, 3, 5, nrows);
        assertClose(y, want, mag, "split");
      });

      test(`${c.name} matmul over several tokens equals per-token reference dots`, () => {
        for (const [nrows, k] of [[13, 96], [40, 256], [1, 32]] as Array<[number, number]>) {
          for (const ntok of [1, 3, 4, 5, 9]) {
            const w = quantizeMatrix(c.t, randomFloats(nrows * k, ntok * 31 + k), nrows, k);
            const x = randomFloats(k * ntok, ntok + 5);
            const pw = arena.alloc(w.length), pr = arena.alloc(c.bytes(nrows, k));
            const px = arena.alloc(k * ntok * 4), pa = arena.alloc(actBytes(k, ntok)), py = arena.alloc(nrows * ntok * 4);
            arena.u8(pw, w.length).set(w);
            arena.f32(px, k * ntok).set(x);
            ex.quantizeAct(px, pa, k, ntok);
            ex[c.repack](pw, pr, nrows, k);
            ex[c.mm](pr, pa, py, k, 0, rowGroups(nrows), nrows, ntok);
            for (let t = 0; t < ntok; t++) {
              const { y: want, mag } = refMatvec(c.t, w, nrows, k, x, t * k);
              assertClose(arena.f32(py + t * nrows * 4, nrows), want, mag, `${c.mm} ${nrows}x${k} ntok ${ntok} token ${t}`);
            }
          }
        }
      });
    }
  });
}
