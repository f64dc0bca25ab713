import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { loadKernels, KernelArena, ropeTable, type KernelPath } from "../../src/kernels/kernels.ts";
import { randomFloats } from "./ref.ts";

function assertNear(got: Float32Array, want: ArrayLike<number>, rel: number, what: string): void {
  for (let i = 0; i < want.length; i++) {
    const tol = rel * Math.max(1, Math.abs(want[i]));
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

for (const path of ["relaxed-simd", "simd128"] as KernelPath[]) {
  describe(`element-wise kernels (${path})`, async () => {
    const K = await loadKernels({ path });
    const ex = K.exports;
    const arena = new KernelArena(K.memory);
    const put = (x: Float32Array) => { const p = arena.alloc(x.length * 4 + 16); arena.f32(p, x.length).set(x); return p; };

    test("rmsNorm matches x / sqrt(mean(x^2) + eps) * w on several rows", () => {
      for (const n of [1, 7, 64, 897]) {
        const rows = 3, eps = 1e-6;
        const x = randomFloats(n * rows, n), w = randomFloats(n, n + 1);
        const px = put(x), pw = put(w), py = arena.alloc(n * rows * 4);
        ex.rmsNorm(px, pw, py, n, rows, eps);
        const want = new Float64Array(n * rows);
        for (let r = 0; r < rows; r++) {
          let ss = 0;
          for (let i = 0; i < n; i++) ss += x[r * n + i] ** 2;
          const s = 1 / Math.sqrt(ss / n + eps);
          for (let i = 0; i < n; i++) want[r * n + i] = x[r * n + i] * s * w[i];
        }
        assertNear(arena.f32(py, n * rows), want, 2e-6, `rmsNorm n=${n}`);
      }
    });

    test("argmaxF32 gives the scalar scan's answer: first maximum, NaN never, 0 when nothing is above -inf", () => {
      const scalar = (x: Float32Array) => {
        let best = 0, bv = -Infinity;
        for (let i = 0; i < x.length; i++) if (x[i]! > bv) { bv = x[i]!; best = i; }
        return best;
      };
      let seed = 7;
      const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
      for (const n of [0, 1, 3, 7, 8, 9, 15, 16, 17, 33, 1000, 32000]) {
        for (let trial = 0; trial < 6; trial++) {
          // Few distinct values (ties everywhere), some NaN and infinities.
          const x = Float32Array.from({ length: n }, () => {
            const r = next();
            if (trial >= 2 && r < 0.05) return NaN;
            if (trial >= 3 && r < 0.1) return -Infinity;
            if (trial === 5 && r > 0.999) return Infinity;
            return Math.floor(next() * (trial === 0 ? 1e6 : 5)) - 2;
          });
          if (trial === 4) x.fill(NaN); // nothing comparable: 0
          const px = put(x);
          assert.equal(ex.argmaxF32(px, n), scalar(x), `n=${n} trial ${trial}`);
        }
      }
      const minus = put(new Float32Array(20).fill(-Infinity));
      assert.equal(ex.argmaxF32(minus, 20), 0);
    });

    test("blockMaxF32 gives each whole block of 16 its largest non-NaN value (-inf if none)", () => {
      let seed = 11;
      const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
      for (const n of [0, 15, 16, 17, 48, 1000, 32000]) {
        for (let trial = 0; trial < 4; trial++) {
          const x = Float32Array.from({ length: n }, () => {
            const r = next();
            if (trial >= 1 && r < 0.1) return NaN;
            if (trial >= 2 && r < 0.2) return -Infinity;
            return (next() - 0.5) * 20;
          });
          if (trial === 3) x.fill(NaN, 0, Math.min(n, 32)); // whole blocks of NaN: -inf
          const nb = n >> 4;
          const px = put(x), po = arena.alloc(nb * 4 + 16);
          arena.f32(po, nb + 4).fill(7);
          ex.blockMaxF32(px, n, po);
          const got = arena.f32(po, nb + 4);
          for (let b = 0; b < nb; b++) {
            let m = -Infinity;
            for (let i = b * 16; i < b * 16 + 16; i++) if (x[i]! > m) m = x[i]!;
            assert.equal(got[b], m, `n=${n} trial ${trial} block ${b}`);
          }
          for (let b = nb; b < nb + 4; b++) assert.equal(got[b], 7, "wrote past the last whole block");
        }
      }
    });

    test("add, mul and swiglu match their definitions, including tails", () => {
      for (const n of [1, 5, 4864]) {
        const a = randomFloats(n, 3 * n), b = randomFloats(n, 3 * n + 1);
        a[0] = -100; // silu of a large negative value is a tiny negative number, not NaN
        const pa = put(a), pb = put(b), py = arena.alloc(n * 4);
        ex.add(pa, pb, py, n);
        assertNear(arena.f32(py, n), Array.from(a, (v, i) => Math.fround(v + b[i])), 0, "add");
        ex.mul(pa, pb, py, n);
        assertNear(arena.f32(py, n), Array.from(a, (v, i) => Math.fround(v * b[i])), 0, "mul");
        ex.swiglu(pa, pb, py, n);
        assertNear(arena.f32(py, n), Array.from(a, (v, i) => (v / (1 + Math.exp(-v))) * b[i]), 2e-6, "swiglu");
      }
    });

    test("softmax of scaled rows matches the exact softmax and sums to 1", () => {
      for (const n of [1, 3, 17, 1000]) {
        const rows = 2, scale = 0.125;
        const x = randomFloats(n * rows, 5 * n).map((v) => v * 20);
        const px = put(x);
        ex.softmax(px, n, rows, scale);
        const got = arena.f32(px, n * rows);
        for (let r = 0; r < rows; r++) {
          const row = Array.from(x.subarray(r * n, (r + 1) * n), (v) => v * scale);
          const m = Math.max(...row);
          const e = row.map((v) => Math.exp(v - m));
          const s = e.reduce((p, q) => p + q, 0);
          assertNear(got.subarray(r * n, (r + 1) * n), e.map((v) => v / s), 2e-6, `softmax n=${n}`);
        }
      }
    });

    test("rope rotates pairs (2i, 2i+1) in normal mode and (i, i+d/2) in NeoX mode", () => {
      const d = 64, nheads = 3, base = 1e6;
      for (const pos of [0, 1, 17, 4000]) {
        for (const neox of [0, 1]) {
          const x = randomFloats(d * nheads, pos + neox);
          const px = put(x), pcs = arena.alloc(d * 4);
          ropeTable(K.memory, pcs, d, pos, base);
          ex.rope(px, nheads, d, pcs, neox);
          const want = new Float64Array(d * nheads);
          for (let h = 0; h < nheads; h++) {
            for (let i = 0; i < d / 2; i++) {
              const th = pos * Math.pow(base, (-2 * i) / d);
              const [ia, ib] = neox ? [h * d + i, h * d + i + d / 2] : [h * d + 2 * i, h * d + 2 * i + 1];
              want[ia] = x[ia] * Math.cos(th) - x[ib] * Math.sin(th);
              want[ib] = x[ia] * Math.sin(th) + x[ib] * Math.cos(th);
            }
          }
          assertNear(arena.f32(px, d * nheads), want, 1e-5, `rope pos=${pos} neox=${neox}`);
        }
      }
    });
  });
}
