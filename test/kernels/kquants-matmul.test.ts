// K-quant matmul kernels (repacked R8 layouts) against the reference vecDot per row and token,
// with the same Q8_K activation bytes, both builds.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { loadKernels, KernelArena, type KernelPath } from "../../src/kernels/kernels.ts";
import { kquantFamilies, q8kBytes, type KQuantExports, type KQuantFamily } from "../../src/kernels/families-kquants.ts";
import { getQuantTraits, getWeightTraits, GGMLType, f32ToF16 } from "../../src/quant/traits.ts";
import type { WeightQuantTraits } from "../../src/quant/quant-traits.ts";
import { randomFloats, rng, quantizeMatrix } from "./ref.ts";

const refQ8_K = getQuantTraits(GGMLType.Q8_K);
const paths: KernelPath[] = ["relaxed-simd", "simd128"];
const only = process.env.KQ_TYPES?.split(","); // e.g. KQ_TYPES=Q4_K,Q6_K
const families = [...kquantFamilies.values()].filter((f) => !only || only.includes(f.name));

// Offsets of the f16 scales in each block layout: [d, dmin?]
const f16Fields: Record<string, number[]> = { Q4_K: [0, 2], Q5_K: [0, 2], Q6_K: [208], Q3_K: [108], Q2_K: [80, 82] };

/** nrows x k random bytes as blocks of the type (every bit pattern is a valid block), with f16 scales in a sane range. */
function randomBlocks(f: KQuantFamily, nrows: number, k: number, seed: number): Uint8Array {
  const r = rng(seed);
  const nb = (nrows * k) / 256;
  const w = new Uint8Array(nb * f.blockBytes);
  for (let i = 0; i < w.length; i++) w[i] = (r() * 256) | 0;
  const dv = new DataView(w.buffer);
  for (let b = 0; b < nb; b++) {
    for (const o of f16Fields[f.name]) dv.setUint16(b * f.blockBytes + o, f32ToF16((r() - 0.3) * 0.02), true);
  }
  return w;
}

function quantizeAct(x: Float32Array, k: number, n: number): Uint8Array {
  const a = new Uint8Array(q8kBytes(k, n));
  refQ8_K.quantizeRow(x, 0, a, 0, k * n);
  return a;
}

/** Reference y[t][r] and sum |w a| per (t, r). */
function reference(t: WeightQuantTraits, w: Uint8Array, nrows: number, k: number, a: Uint8Array, ntok: number) {
  const rowBytes = (k / 256) * t.bytesPerBlock;
  const y = new Float64Array(ntok * nrows), mag = new Float64Array(ntok * nrows);
  const wf = new Float32Array(k), af = new Float32Array(k * ntok);
  refQ8_K.dequantizeRow(a, 0, af, 0, k * ntok);
  for (let r = 0; r < nrows; r++) {
    t.dequantizeRow(w, r * rowBytes, wf, 0, k);
    for (let tok = 0; tok < ntok; tok++) {
      y[tok * nrows + r] = t.vecDot(k, w, r * rowBytes, a, tok * q8kBytes(k));
      let m = 0;
      for (let j = 0; j < k; j++) m += Math.abs(wf[j] * af[tok * k + j]);
      mag[tok * nrows + r] = m;
    }
  }
  return { y, mag };
}

function assertClose(got: Float32Array, want: Float64Array, mag: Float64Array, what: string): void {
  for (let i = 0; i < want.length; i++) {
    const tol = 1e-5 * mag[i] + 1e-30;
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      assert.fail(`${what}: element ${i} (token ${Math.floor(i / (want.length / (want.length / mag.length)))}): got ${got[i]}, want ${want[i]} (tol ${tol})`);
    }
  }
}

for (const path of paths) {
  describe(`K-quant matmul (${path})`, async () => {
    const K = await loadKernels({ path });
    const ex = K.exports as unknown as KQuantExports;
    const arena = new KernelArena(K.memory);

    /** Places weights and activations, runs the kernel over groups [g0, g1), returns y (ntok x nrows, NaN where not written). */
    function run(f: KQuantFamily, w: Uint8Array, nrows: number, k: number, a: Uint8Array, ntok: number, ranges: Array<[number, number]>): Float32Array {
      const pw = arena.alloc(w.length), pr = arena.alloc(f.repackedBytes(nrows, k));
      const pa = arena.alloc(a.length), py = arena.alloc(ntok * nrows * 4 + 64);
      arena.u8(pw, w.length).set(w);
      arena.u8(pa, a.length).set(a);
      ex[f.repack](pw, pr, nrows, k);
      arena.f32(py, ntok * nrows + 16).fill(NaN);
      for (const [g0, g1] of ranges) ex[f.matmul](pr, pa, py, k, g0, g1, nrows, ntok);
      assert.ok(arena.f32(py + ntok * nrows * 4, 16).every(Number.isNaN), "no write past the output");
      const y = new Float32Array(ntok * nrows);
      y.set(arena.f32(py, ntok * nrows));
      arena.top = pw; // reuse the space
      return y;
    }

    for (const f of families) {
      const t = getWeightTraits(f.type);
      test(`${f.name}: repackedBytes within 10% of the original`, () => {
        for (const [n, k] of [[8, 256], [64, 1024], [896, 4864]]) {
          assert.ok(f.repackedBytes(n, k) <= 1.1 * (n * k / 256) * f.blockBytes, `${n}x${k}`);
        }
      });

      test(`${f.name}: decode (ntok 1) matches vecDot, shapes and thread splits`, () => {
        const shapes: Array<[number, number]> = [[1, 256], [7, 512], [13, 256], [37, 768], [64, 1024]];
        for (const [nrows, k] of shapes) {
          const w = randomBlocks(f, nrows, k, nrows * 7 + k);
          const a = quantizeAct(randomFloats(k, k + nrows), k, 1);
          const { y: want, mag } = reference(t, w, nrows, k, a, 1);
          const ng = Math.ceil(nrows / 8);
          assertClose(run(f, w, nrows, k, a, 1, [[0, ng]]), want, mag, `${f.name} ${nrows}x${k}`);
          // three "threads" with uneven group ranges
          const c1 = Math.floor(ng / 3), c2 = Math.floor((2 * ng) / 3) + (ng > 2 ? 1 : 0);
          const ranges: Array<[number, number]> = [[0, c1], [c1, Math.min(c2, ng)], [Math.min(c2, ng), ng]];
          assertClose(run(f, w, nrows, k, a, 1, ranges), want, mag, `${f.name} ${nrows}x${k} split ${JSON.stringify(ranges)}`);
          if (ng >= 3) { // a partial range writes exactly its rows
            const y = run(f, w, nrows, k, a, 1, [[1, 2]]);
            for (let r = 0; r < nrows; r++) assert.equal(Number.isNaN(y[r]), r < 8 || r >= 16, `${f.name} row ${r}`);
          }
        }
      });

      test(`${f.name}: reference-quantized weights (real scale/min patterns)`, () => {
        const nrows = 13, k = 512;
        const w = quantizeMatrix(t, randomFloats(nrows * k, 77), nrows, k);
        const a = quantizeAct(randomFloats(k * 3, 78), k, 3);
        const { y: want, mag } = reference(t, w, nrows, k, a, 3);
        assertClose(run(f, w, nrows, k, a, 3, [[0, 2]]), want, mag, `${f.name} quantized`);
        const { y: want1, mag: mag1 } = reference(t, w, nrows, k, a, 1);
        assertClose(run(f, w, nrows, k, a, 1, [[0, 2]]), want1, mag1, `${f.name} quantized decode`);
      });

      test(`${f.name}: prefill (ntok 3, 4, 5, 9) matches vecDot per token`, () => {
        for (const [nrows, k] of [[13, 256], [37, 768], [64, 1024]] as Array<[number, number]>) {
          for (const ntok of [3, 4, 5, 9]) {
            const w = randomBlocks(f, nrows, k, ntok * 31 + k + nrows);
            const a = quantizeAct(randomFloats(k * ntok, ntok + 5 + k), k, ntok);
            const { y: want, mag } = reference(t, w, nrows, k, a, ntok);
            const ng = Math.ceil(nrows / 8);
            assertClose(run(f, w, nrows, k, a, ntok, [[0, 1], [1, ng]]), want, mag, `${f.name} ${nrows}x${k} ntok ${ntok}`);
          }
        }
      });

      test(`${f.name}: extreme quants, scales and activations do not overflow`, () => {
        const nrows = 9, k = 512;
        const fills: Array<[number, number]> = [[0xff, 0x3c00], [0x00, 0x3c00], [0xff, 0xbc00], [0x80, 0x3c00], [0x7f, 0x3c00], [0x55, 0x0000], [0xaa, 0xfbff]];
        const acts = [new Float32Array(k).fill(1), new Float32Array(k).fill(-1), Float32Array.from({ length: k }, (_, i) => (i & 1 ? 1 : -1)), randomFloats(k, 3)];
        for (const [byte, h] of fills) {
          const w = new Uint8Array((nrows * k / 256) * f.blockBytes).fill(byte);
          const dv = new DataView(w.buffer);
          for (let b = 0; b < (nrows * k) / 256; b++) for (const o of f16Fields[f.name]) dv.setUint16(b * f.blockBytes + o, h, true);
          for (const x of acts) {
            const a = quantizeAct(x, k, 1);
            for (const ntok of [1, 4]) {
              const aa = new Uint8Array(a.length * ntok);
              for (let i = 0; i < ntok; i++) aa.set(a, i * a.length);
              const { y: want, mag } = reference(t, w, nrows, k, aa, ntok);
              assertClose(run(f, w, nrows, k, aa, ntok, [[0, 2]]), want, mag, `${f.name} fill ${byte.toString(16)} d ${h.toString(16)} ntok ${ntok}`);
            }
          }
        }
      });
    }
  });
}
