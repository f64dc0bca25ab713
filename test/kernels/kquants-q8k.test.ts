// Q8_K activation quantizer: byte-identical to the reference (llama.cpp's quantize_row_q8_K_ref).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { loadKernels, KernelArena, type KernelPath } from "../../src/kernels/kernels.ts";
import { q8kBytes, Q8_K_QUANTIZE, type KQuantExports } from "../../src/kernels/families-kquants.ts";
import { getQuantTraits, GGMLType } from "../../src/quant/traits.ts";
import { randomFloats, rng } from "./ref.ts";

const refQ8_K = getQuantTraits(GGMLType.Q8_K);
const paths: KernelPath[] = ["relaxed-simd", "simd128"];

function cases(): Array<{ name: string; x: Float32Array; n: number }> {
  const out: Array<{ name: string; x: Float32Array; n: number }> = [];
  out.push({ name: "random 1x256", x: randomFloats(256, 1), n: 1 });
  out.push({ name: "random 3x1024", x: randomFloats(3 * 1024, 2), n: 3 });
  out.push({ name: "random 1x4864", x: randomFloats(4864, 3), n: 1 });
  const z = randomFloats(768, 4);
  z.fill(0, 256, 512); // an all-zero block
  out.push({ name: "zero block", x: z, n: 1 });
  // ties: both +m and -m present (the first one wins), exact .5 products, -0
  const t = new Float32Array(512);
  const r = rng(5);
  for (let i = 0; i < 512; i++) t[i] = (r() - 0.5) * 2;
  t[10] = -2; t[200] = 2; // block 0: -2 first
  t[256 + 3] = 2; t[256 + 100] = -2; // block 1: +2 first
  t[11] = 1; t[12] = -1; t[13] = 0.5 * (2 / 127); t[14] = -1.5 * (2 / 127); t[15] = -0;
  out.push({ name: "ties", x: t, n: 2 });
  // constant rows (every quant -127 / +127), huge and tiny magnitudes
  out.push({ name: "all +1", x: new Float32Array(256).fill(1), n: 1 });
  out.push({ name: "all -3.5", x: new Float32Array(256).fill(-3.5), n: 1 });
  const w = randomFloats(512, 6);
  for (let i = 0; i < 256; i++) w[i] *= 1e30;
  for (let i = 256; i < 512; i++) w[i] *= 1e-30;
  out.push({ name: "extreme magnitudes", x: w, n: 2 });
  return out;
}

for (const path of paths) {
  describe(`quantizeQ8_K (${path})`, async () => {
    const K = await loadKernels({ path });
    const ex = K.exports as unknown as KQuantExports;
    const arena = new KernelArena(K.memory);
    test("is byte-identical to the reference Q8_K quantizer", () => {
      for (const c of cases()) {
        const k = c.x.length / c.n;
        const px = arena.alloc(c.x.length * 4), py = arena.alloc(q8kBytes(k, c.n) + 64);
        arena.f32(px, c.x.length).set(c.x);
        arena.u8(py, q8kBytes(k, c.n) + 64).fill(0xee);
        ex[Q8_K_QUANTIZE](px, py, k, c.n);
        const want = new Uint8Array(q8kBytes(k, c.n));
        refQ8_K.quantizeRow(c.x, 0, want, 0, c.x.length);
        assert.deepEqual(arena.u8(py, want.length), want, c.name);
        assert.ok(arena.u8(py + want.length, 64).every((b) => b === 0xee), `${c.name}: no write past the end`);
      }
    });
  });
}
