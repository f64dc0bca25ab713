// F32, F16 and BF16 matmuls (through the families-legacy table) against the scalar reference
// vecDot per row, with the activations rounded to the weight type as llama.cpp does; every f16 and
// bf16 bit pattern through the kernels' conversions.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { loadKernels, KernelArena, type KernelPath } from "../../src/kernels/kernels.ts";
import { LEGACY_FAMILIES, ACTIVATIONS, legacyFamily, type KernelFamily, type LegacyKernelExports } from "../../src/kernels/families-legacy.ts";
import { getWeightTraits } from "../../src/quant/traits.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, f32Bits, f32FromBits } from "../../src/quant/half.ts";
import { closeTo, expectedRows, randomFloats, rng } from "./ref.ts";

const paths: KernelPath[] = ["relaxed-simd", "simd128"];
const families = LEGACY_FAMILIES.filter((f) => f.activation === "f16" || f.activation === "bf16" || f.activation === "f32");
const shapes: Array<[number, number]> = [[1, 32], [7, 64], [13, 256], [37, 160], [64, 896], [5, 172], [3, 9], [4, 3]];
const ntoks = [1, 3, 4, 5, 9];

/** Weight rows in the file layout of the family's type. */
function weightsFrom(f: KernelFamily, x: Float32Array, nrows: number, k: number): Uint8Array {
  const t = getWeightTraits(f.type);
  const out = new Uint8Array(nrows * k * t.bytesPerBlock);
  for (let r = 0; r < nrows; r++) t.quantizeRow(x, r * k, out, r * k * t.bytesPerBlock, k);
  return out;
}

for (const path of paths) {
  describe(`float kernels (${path})`, async () => {
    const K = await loadKernels({ path });
    const ex = K.exports as unknown as LegacyKernelExports;
    const arena = new KernelArena(K.memory);
    const base = arena.top;

    function run(f: KernelFamily, w: Uint8Array, nrows: number, k: number, x: Float32Array, ntok: number, splits: Array<[number, number]>): Float32Array {
      arena.top = base;
      const pw = arena.alloc(w.length + 16), pr = f.repack ? arena.alloc(f.repackedBytes(nrows, k)) : pw;
      if (!f.repack) assert.equal(f.repackedBytes(nrows, k), w.length);
      const px = arena.alloc(x.length * 4), pa = arena.alloc(ACTIVATIONS[f.activation].bytes(k, ntok));
      const py = arena.alloc(nrows * ntok * 4 + 64);
      arena.u8(pw, w.length).set(w);
      if (f.repack) ex[f.repack](pw, pr, nrows, k);
      arena.f32(px, x.length).set(x);
      const conv = ACTIVATIONS[f.activation].convert;
      if (conv) ex[conv](px, pa, k, ntok);
      else arena.f32(pa, k * ntok).set(x);
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

    test("actF16 / actBF16 round like f32ToF16 / f32ToBf16 (ties, overflow, subnormals, NaN)", () => {
      const vals: number[] = [];
      for (let h = 0; h < 0x7c00; h++) { // every finite half, its neighbours and the midpoints above it
        const v = f16ToF32(h), next = f16ToF32(h + 1);
        vals.push(v, -v, (v + next) / 2, -(v + next) / 2, f32FromBits(f32Bits((v + next) / 2) + 1), f32FromBits(f32Bits((v + next) / 2) - 1));
      }
      vals.push(65504, 65519.99, 65520, 70000, 1e38, 3.4e38, Infinity, -Infinity, NaN, f32FromBits(0x7f800001), f32FromBits(0xffc00001), 2 ** -25, 2 ** -26, 1.5 * 2 ** -25, 2 ** -149, 0, -0);
      const r = rng(5);
      for (let i = 0; i < 20000; i++) vals.push(f32FromBits((r() * 2 ** 32) >>> 0));
      const k = vals.length - (vals.length % 8) + 5; // full groups of 8 and a tail of 5
      const x = new Float32Array(k);
      for (let j = 0; j < k; j++) x[j] = vals[j % vals.length];
      arena.top = base;
      const px = arena.alloc(k * 4), pa = arena.alloc(k * 4);
      arena.f32(px, k).set(x);
      const k8 = k & ~7;
      const at = (j: number) => (j < k8 ? (j & ~7) + ((j & 1) << 2) + ((j & 7) >> 1) : j);
      ex.actF16(px, pa, k, 1);
      let got = arena.f32(pa, k);
      for (let j = 0; j < k; j++) {
        const want = f16ToF32(f32ToF16(x[j]));
        const g = got[at(j)] * 2 ** -112;
        assert.ok(Object.is(g, want) || (Number.isNaN(g) && Number.isNaN(want)), `f16 of ${x[j]} (bits ${f32Bits(x[j]).toString(16)}): got ${g}, want ${want}`);
      }
      ex.actBF16(px, pa, k, 1);
      got = arena.f32(pa, k);
      for (let j = 0; j < k; j++) {
        const want = bf16ToF32(f32ToBf16(x[j]));
        const g = got[at(j)];
        if (Number.isNaN(want)) assert.equal(f32Bits(g), f32Bits(want), `bf16 NaN payload of ${f32Bits(x[j]).toString(16)}`);
        else assert.ok(Object.is(g, want), `bf16 of ${x[j]}: got ${g}, want ${want}`);
      }
    });

    for (const type of [GGMLType.F16, GGMLType.BF16]) {
      const f = legacyFamily(type)!;
      test(`${f.name}: every 16-bit weight pattern (incl. subnormals, inf, NaN) gives the exact product`, () => {
        // 8192 rows x 8 columns hold all 65536 patterns; token t is one-hot (1.0) at column t
        const nrows = 8192, k = 8, ntok = 8;
        const w = new Uint8Array(nrows * k * 2);
        for (let h = 0; h < 65536; h++) { w[2 * h] = h & 0xff; w[2 * h + 1] = h >> 8; }
        const x = new Float32Array(k * ntok);
        for (let t = 0; t < ntok; t++) x[t * k + t] = 1;
        const ref = expectedRows(getWeightTraits(f.type), w, nrows, k, x, ntok);
        for (const [n, what] of [[ntok, "4-token tiles"], [1, "decode"]] as Array<[number, string]>) {
          for (let t0 = 0; t0 < ntok; t0 += n) {
            const y = run(f, w, nrows, k, x.subarray(t0 * k, (t0 + n) * k), n, [[0, nrows]]);
            for (let t = 0; t < n; t++) {
              for (let r = 0; r < nrows; r++) {
                const g = y[t * nrows + r], want = ref.want[t0 + t][r];
                assert.ok(Object.is(g, want) || (Number.isNaN(g) && Number.isNaN(want)) || (g === 0 && want === 0), `${what}: row ${r} token ${t0 + t}: got ${g}, want ${want}`);
              }
            }
          }
        }
      });
    }

    for (const f of families) {
      test(`${f.name}: matmul equals the reference dot for every shape and ntok, with row splits`, () => {
        for (const [nrows, k] of shapes) {
          const w = weightsFrom(f, randomFloats(nrows * k, nrows * 1000 + k), nrows, k);
          for (const ntok of ntoks) {
            const x = randomFloats(k * ntok, k + 7 * ntok);
            const ref = expectedRows(getWeightTraits(f.type), w, nrows, k, x, ntok);
            check(f, run(f, w, nrows, k, x, ntok, [[0, nrows]]), nrows, ref, `${nrows}x${k} ntok ${ntok}`);
            const s3: Array<[number, number]> = [0, 1, 2].map((i) => [Math.floor((nrows * i) / 3), Math.floor((nrows * (i + 1)) / 3)]);
            check(f, run(f, w, nrows, k, x, ntok, s3.reverse()), nrows, ref, `${nrows}x${k} ntok ${ntok} 3-way split`);
          }
        }
      });
    }

    for (const f of families) {
      test(`${f.name}: a decode step's rows give the same bits four at a time, one at a time and inside a 4-token tile`, () => {
        for (const [nrows, k] of [...shapes, [9, 16], [12, 24], [8, 7]] as Array<[number, number]>) {
          const wf = randomFloats(nrows * k, nrows * 31 + k);
          if (f.type === GGMLType.F16 && nrows >= 6) wf[5 * k] = Infinity; // one flagged row inside a group of four
          const w = weightsFrom(f, wf, nrows, k);
          const x4 = randomFloats(k * 4, k * 3 + nrows);
          const grouped = run(f, w, nrows, k, x4.subarray(0, k), 1, [[0, nrows]]);
          const alone = run(f, w, nrows, k, x4.subarray(0, k), 1, Array.from({ length: nrows }, (_, r) => [r, r + 1] as [number, number]));
          const shifted = run(f, w, nrows, k, x4.subarray(0, k), 1, [[0, 1], [1, nrows]]); // groups of four from row 1
          const tile = run(f, w, nrows, k, x4, 4, [[0, nrows]]);
          for (let r = 0; r < nrows; r++) {
            const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
            assert.ok(same(grouped[r]!, alone[r]!), `${nrows}x${k} row ${r}: ${grouped[r]} four at a time, ${alone[r]} alone`);
            assert.ok(same(shifted[r]!, alone[r]!), `${nrows}x${k} row ${r}: ${shifted[r]} in groups from row 1, ${alone[r]} alone`);
            assert.ok(same(tile[r]!, alone[r]!), `${nrows}x${k} row ${r}: ${tile[r]} in a 4-token tile, ${alone[r]} alone`);
          }
        }
      });
    }

    test("F16: inf / NaN weights and activations beyond the f16 range give llama.cpp's inf / NaN", () => {
      const f = legacyFamily(GGMLType.F16)!;
      const nrows = 6, k = 43, ntok = 5; // k % 8 = 3: a scalar tail
      const wf = randomFloats(nrows * k, 3);
      wf[0 * k + 5] = Infinity; // row 0: +inf
      wf[1 * k + 39] = -Infinity; // row 1: -inf in the last vector
      wf[2 * k + 3] = NaN;
      wf[3 * k + 1] = Infinity; wf[3 * k + 2] = -Infinity; // inf - inf
      wf[4 * k + 7] = 1e-7; wf[4 * k + 8] = -3e-6; // subnormal halves
      wf[5 * k + 41] = NaN; // row 5: NaN in the scalar tail
      const w = weightsFrom(f, wf, nrows, k);
      const x = randomFloats(k * ntok, 4);
      x[1 * k + 10] = 1e6; // token 1: an activation that becomes +inf in f16
      x[2 * k + 5] = 0; // token 2: 0 * inf in row 0 -> NaN
      const ref = expectedRows(getWeightTraits(f.type), w, nrows, k, x, ntok);
      for (const n of [1, 4, 5]) {
        const y = run(f, w, nrows, k, x.subarray(0, n * k), n, [[0, nrows]]);
        check(f, y, nrows, { want: ref.want.slice(0, n), mag: ref.mag.slice(0, n) }, `ntok ${n}`);
      }
      assert.ok(Number.isNaN(ref.want[2][0]) && ref.want[0][0] !== 0 && !Number.isFinite(ref.want[0][0]));
    });
  });
}
