// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL matmuls (through the families-legacy table) against the
// scalar reference vecDot per row, with the activations quantized as llama.cpp's x86 runtime does.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { loadKernels, KernelArena, type KernelPath } from "../../src/kernels/kernels.ts";
import { LEGACY_FAMILIES, ACTIVATIONS, type KernelFamily, type LegacyKernelExports } from "../../src/kernels/families-legacy.ts";
import { getWeightTraits, getQuantTraits } from "../../src/quant/traits.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { f16ToF32 } from "../../src/quant/half.ts";
import type { WeightQuantTraits } from "../../src/quant/quant-traits.ts";
import { closeTo, expectedRows, randomFloats, quantizeMatrix } from "./ref.ts";

const paths: KernelPath[] = ["relaxed-simd", "simd128"];
const families = LEGACY_FAMILIES.filter((f) => f.activation === "q8_0" || f.activation === "q8_1");
const shapes: Array<[number, number]> = [[1, 32], [7, 64], [13, 256], [37, 160], [64, 896]];
const ntoks = [1, 3, 4, 5, 9];

for (const path of paths) {
  describe(`legacy quant kernels (${path})`, async () => {
    const K = await loadKernels({ path });
    const ex = K.exports as unknown as LegacyKernelExports;
    const arena = new KernelArena(K.memory);
    const base = arena.top;

    /** Places w (file layout), repacks, quantizes x (ntok rows) and runs matmul over units u0..u1. */
    function run(f: KernelFamily, w: Uint8Array, nrows: number, k: number, x: Float32Array, ntok: number, splits: Array<[number, number]>): Float32Array {
      arena.top = base;
      const pw = arena.alloc(w.length + 16), pr = arena.alloc(f.repackedBytes(nrows, k));
      const px = arena.alloc(x.length * 4), pa = arena.alloc(ACTIVATIONS[f.activation].bytes(k, ntok));
      const py = arena.alloc(nrows * ntok * 4 + 64);
      arena.u8(pw, w.length).set(w);
      arena.f32(px, x.length).set(x);
      ex[f.repack!](pw, pr, nrows, k);
      ex[ACTIVATIONS[f.activation].convert!](px, pa, k, ntok);
      arena.f32(py, nrows * ntok + 16).fill(NaN);
      for (const [u0, u1] of splits) ex[f.matmul](pr, pa, py, k, u0, u1, nrows, ntok);
      assert.ok(arena.f32(py + nrows * ntok * 4, 16).every(Number.isNaN), "no write past the outputs");
      return arena.f32(py, nrows * ntok).slice();
    }

    function check(f: KernelFamily, got: Float32Array, nrows: number, ref: ReturnType<typeof expectedRows>, what: string): void {
      for (let t = 0; t < ref.want.length; t++) {
        for (let r = 0; r < nrows; r++) {
          const g = got[t * nrows + r], w = ref.want[t][r];
          assert.ok(closeTo(g, w, ref.mag[t][r]), `${f.name} ${what}: token ${t} row ${r}: got ${g}, want ${w} (mag ${ref.mag[t][r]})`);
        }
      }
    }

    test("quantizeAct writes llama.cpp's runtime Q8_0 and Q8_1 fields (quants, d, sum, s)", () => {
      const q80 = getQuantTraits(GGMLType.Q8_0), q81 = getQuantTraits(GGMLType.Q8_1);
      const k = 256, n = 2;
      const x = randomFloats(k * n, 17);
      x.fill(0, 32, 64); // an all-zero block
      for (let j = 0; j < 32; j++) x[64 + j] = (j - 16) * 0.5; // amax 8: x * 127/8 hits exact .5 ties
      x[96] = 127; x[97] = 2.5; x[98] = -3.5; x[99] = 0.5; x[100] = -0.5; x[101] = 126.5; // ties, id = 1
      x[128] = 1e-30; x[129] = -3e-31; // tiny block
      x[160] = 3e38; x[161] = -1e38; // huge block
      arena.top = base;
      const px = arena.alloc(k * n * 4), pa = arena.alloc(ACTIVATIONS.q8_0.bytes(k, n));
      arena.f32(px, k * n).set(x);
      ex.quantizeAct(px, pa, k, n);
      const got = new DataView(K.memory.buffer, pa, ACTIVATIONS.q8_0.bytes(k, n));
      const a0 = new Uint8Array((k / 32) * 34), a1 = new Uint8Array((k / 32) * 36);
      for (let t = 0; t < n; t++) {
        q80.quantizeActivationRow!(x, t * k, a0, 0, k);
        q81.quantizeActivationRow!(x, t * k, a1, 0, k);
        for (let b = 0; b < k / 32; b++) {
          const o = (t * (k / 32) + b) * ACTIVATIONS.q8_0.bytes(32, 1);
          let s = 0;
          for (let j = 0; j < 32; j++) {
            const q = (a0[b * 34 + 2 + j] << 24) >> 24;
            assert.equal(got.getInt8(o + j), q, `token ${t} block ${b} quant ${j}`);
            assert.equal((a1[b * 36 + 4 + j] << 24) >> 24, q);
            s += q;
          }
          assert.equal(got.getFloat32(o + 32, true), f16ToF32(a0[b * 34] | (a0[b * 34 + 1] << 8)), `d of block ${b}`);
          assert.equal(got.getInt32(o + 36, true), s);
          assert.equal(got.getFloat32(o + 40, true), f16ToF32(a1[b * 36 + 2] | (a1[b * 36 + 3] << 8)), `s of block ${b}`);
        }
      }
    });

    for (const f of families) {
      const t = getWeightTraits(f.type);
      test(`${f.name}: matmul equals the reference dot for every shape and ntok, with thread splits`, () => {
        for (const [nrows, k] of shapes) {
          const w = quantizeMatrix(t, randomFloats(nrows * k, nrows * 1000 + k + f.type), nrows, k);
          const units = Math.ceil(nrows / f.rowGranularity);
          for (const ntok of ntoks) {
            const x = randomFloats(k * ntok, k + 7 * ntok);
            const ref = expectedRows(t, w, nrows, k, x, ntok);
            check(f, run(f, w, nrows, k, x, ntok, [[0, units]]), nrows, ref, `${nrows}x${k} ntok ${ntok}`);
            // split over 3 threads (units not a multiple of 3), in reverse order
            const s3: Array<[number, number]> = [0, 1, 2].map((i) => [Math.floor((units * i) / 3), Math.floor((units * (i + 1)) / 3)]);
            check(f, run(f, w, nrows, k, x, ntok, s3.reverse()), nrows, ref, `${nrows}x${k} ntok ${ntok} 3-way split`);
          }
        }
      });

      test(`${f.name}: a range of units writes exactly its rows`, () => {
        const nrows = 37, k = 128, ntok = 5;
        const w = quantizeMatrix(t, randomFloats(nrows * k, 99), nrows, k);
        const x = randomFloats(k * ntok, 98);
        const y = run(f, w, nrows, k, x, ntok, [[1, 3]]);
        for (let tok = 0; tok < ntok; tok++) {
          for (let r = 0; r < nrows; r++) assert.equal(Number.isNaN(y[tok * nrows + r]), r < 8 || r >= 24, `token ${tok} row ${r}`);
        }
      });
    }

    test("extreme quants (largest weight values, activations +-127) do not overflow", () => {
      const nrows = 9, k = 96;
      // one block per pattern: every value at its largest (or smallest) quant, unit scale
      const patterns: Record<string, (blk: Uint8Array, o: number, hi: boolean) => void> = {
        Q4_0: (b, o, hi) => { b[o + 1] = 0x3c; b.fill(hi ? 0xff : 0x00, o + 2, o + 18); },
        Q4_1: (b, o, hi) => { b[o + 1] = 0x3c; b[o + 3] = 0xbc; b.fill(hi ? 0xff : 0x00, o + 4, o + 20); },
        Q5_0: (b, o, hi) => { b[o + 1] = 0x3c; b.fill(hi ? 0xff : 0x00, o + 2, o + 22); },
        Q5_1: (b, o, hi) => { b[o + 1] = 0x3c; b[o + 3] = 0x3c; b.fill(hi ? 0xff : 0x00, o + 4, o + 24); },
        Q8_0: (b, o, hi) => { b[o + 1] = 0x3c; b.fill(hi ? 0x7f : 0x81, o + 2, o + 34); },
        IQ4_NL: (b, o, hi) => { b[o + 1] = 0x3c; b.fill(hi ? 0xff : 0x00, o + 2, o + 18); },
      };
      for (const f of families) {
        const t = getWeightTraits(f.type);
        for (const hi of [true, false]) {
          for (const av of [127, -127, 1e-3]) {
            const w = new Uint8Array(nrows * (k / 32) * t.bytesPerBlock);
            for (let b = 0; b < w.length / t.bytesPerBlock; b++) patterns[f.name](w, b * t.bytesPerBlock, hi);
            const x = new Float32Array(k * 5).fill(av);
            for (let j = 0; j < 32; j++) x[k + j] = j % 2 ? av : -av; // mixed signs in token 1
            const ref = expectedRows(t, w, nrows, k, x, 5);
            for (const ntok of [1, 5]) {
              const y = run(f, w, nrows, k, x, ntok, [[0, Math.ceil(nrows / 8)]]);
              check(f, y, nrows, { want: ref.want.slice(0, ntok), mag: ref.mag.slice(0, ntok) }, `extreme hi=${hi} a=${av} ntok ${ntok}`);
            }
          }
        }
      }
    });
  });
}
