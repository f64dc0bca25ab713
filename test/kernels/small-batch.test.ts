// Small batches (n = 1..9 tokens: a speculative verification pass of 1 + k tokens, a few decoding
// sequences) through every weight type's matmul, in all three builds: each token's row must be
// bit-identical to the same token alone (ntok = 1, the decode kernel), so that a verified token
// gets exactly the logits plain decoding would give it; and close to the reference dot product
// (llama.cpp's vec_dot on the same quantized activations) for the block types.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadKernels, KernelArena, type KernelExports } from "../../src/kernels/kernels.ts";
import { WASM_ACTIVATIONS, WASM_TYPES, type WasmType } from "../../src/kernels/types.ts";
import { getWeightTraits, rowByteSize } from "../../src/quant/traits.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { randomFloats, quantizeMatrix, expectedRows, closeTo } from "./ref.ts";
import { runnableKernelPaths } from "../helpers/kernel-builds.ts";

type Kernel = (...a: number[]) => void;
const NMAX = 9;

/** y (ntok x nrows) of the type's matmul over all ntok tokens at once, split over uneven unit ranges. */
function run(ex: KernelExports, arena: KernelArena, f: WasmType, w: Uint8Array, nrows: number, k: number, x: Float32Array, ntok: number): Float32Array {
  const e = ex as unknown as Record<string, Kernel>;
  const act = WASM_ACTIVATIONS[f.activation];
  const pw = arena.alloc(w.length), pr = arena.alloc(f.repackedBytes(nrows, k));
  const px = arena.alloc(k * ntok * 4), pa = arena.alloc(act.bytes(k, ntok)), py = arena.alloc(ntok * nrows * 4 + 64);
  arena.u8(pw, w.length).set(w);
  if (f.repack) e[f.repack]!(pw, pr, nrows, k);
  else arena.u8(pr, w.length).set(w);
  arena.f32(px, k * ntok).set(x.subarray(0, k * ntok));
  if (act.convert) e[act.convert]!(px, pa, k, ntok);
  else arena.f32(pa, k * ntok).set(x.subarray(0, k * ntok));
  arena.f32(py, ntok * nrows + 16).fill(NaN);
  const units = Math.ceil(nrows / f.rowGranularity);
  const cuts = units >= 3 ? [0, 1, units - 1, units] : [0, units];
  for (let i = 0; i + 1 < cuts.length; i++) e[f.matmul]!(pr, pa, py, k, cuts[i]!, cuts[i + 1]!, nrows, ntok);
  assert.ok(arena.f32(py + ntok * nrows * 4, 16).every(Number.isNaN), `${f.name}: no write past the output`);
  return arena.f32(py, ntok * nrows).slice();
}

const builds = await Promise.all(runnableKernelPaths.map((path) => loadKernels({ path })));

for (const f of WASM_TYPES) {
  test(`${f.name}: matmul over n = 1..${NMAX} tokens, every token bit-identical to the decode kernel alone and across builds`, () => {
    const t = getWeightTraits(f.type);
    const k = t.blockSize > 32 ? 512 : 96, nrows = 21; // an odd, padded last row group
    const w = quantizeMatrix(t, randomFloats(nrows * k, f.type * 101 + 7), nrows, k);
    const x = randomFloats(k * NMAX, f.type * 31 + 3);
    let first: Float32Array | undefined;
    for (const K of builds) {
      const arena = new KernelArena(K.memory);
      // each token alone (ntok = 1), then every n from 2 to NMAX
      const alone = new Float32Array(NMAX * nrows);
      for (let tok = 0; tok < NMAX; tok++) {
        alone.set(run(K.exports, arena, f, w, nrows, k, x.subarray(tok * k), 1), tok * nrows);
      }
      for (let n = 2; n <= NMAX; n++) {
        const y = run(K.exports, arena, f, w, nrows, k, x, n);
        assert.deepEqual(new Uint32Array(y.buffer), new Uint32Array(alone.buffer, 0, n * nrows), `${f.name} ${K.path} n=${n}`);
      }
      // the float types' dots use relaxed_madd (fused on x64 with FMA) in the relaxed builds
      const sameAcrossBuilds = f.activation !== "f32" && f.activation !== "f16" && f.activation !== "bf16";
      if (first && sameAcrossBuilds) assert.deepEqual(new Uint32Array(alone.buffer), new Uint32Array(first.buffer), `${f.name} ${K.path} vs ${builds[0]!.path}`);
      else if (!first) first = alone;
    }
    // the block types against the reference dot product on the same quantized activations
    if (f.activation === "q8_0" || f.activation === "q8_1") {
      const { want, mag } = expectedRows(t, w, nrows, k, x, NMAX);
      for (let tok = 0; tok < NMAX; tok++) {
        for (let r = 0; r < nrows; r++) {
          const got = first![tok * nrows + r]!;
          assert.ok(closeTo(got, want[tok]![r]!, mag[tok]![r]!), `${f.name} token ${tok} row ${r}: ${got} vs ${want[tok]![r]}`);
        }
      }
    }
  });
}

test("Q4_0 pairs of tokens at the extremes (nibbles 0 and 15, activations +-127) do not overflow", () => {
  const f = WASM_TYPES.find((w) => w.type === GGMLType.Q4_0)!;
  const nrows = 8, k = 256;
  for (const K of builds) {
    const arena = new KernelArena(K.memory);
    for (const wq of [0, 15]) {
      const w = new Uint8Array(rowByteSize(GGMLType.Q4_0, k) * nrows);
      for (let b = 0; b < w.length / 18; b++) {
        w[b * 18 + 1] = 0x3c; // f16 1.0
        w.fill(wq | (wq << 4), b * 18 + 2, b * 18 + 18);
      }
      const x = new Float32Array(k * 3);
      x.fill(127, 0, k); x.fill(-127, k, 2 * k); x.fill(127, 2 * k);
      const y = run(K.exports, arena, f, w, nrows, k, x, 3);
      for (let tok = 0; tok < 3; tok++) {
        const want = (wq - 8) * (tok === 1 ? -127 : 127) * k;
        assert.deepEqual([...y.subarray(tok * nrows, (tok + 1) * nrows)], new Array(nrows).fill(want), `${K.path} nibble ${wq} token ${tok}`);
      }
    }
  }
});

// Q4_0 and Q8_0 run each tile over a chunk of row groups (about 192 KB of weights) before the next
// tile: a matrix of several chunks (k = 4096: 10 Q4_0 groups, 5 Q8_0 groups per chunk; a range
// starting at group 1; a padded last group) gives every token's row bit-identical to the token alone.
for (const type of [GGMLType.Q4_0, GGMLType.Q8_0]) {
  const f = WASM_TYPES.find((w) => w.type === type)!;
  test(`${f.name}: matmul over several chunks of row groups, n up to 13, bit-identical to each token alone and across builds`, () => {
    const t = getWeightTraits(type);
    const k = 4096, nrows = 8 * 29 + 3, NT = 13;
    const w = quantizeMatrix(t, randomFloats(nrows * k, type * 13 + 5), nrows, k);
    const x = randomFloats(k * NT, type * 17 + 9);
    let first: Float32Array | undefined;
    for (const K of builds) {
      const arena = new KernelArena(K.memory);
      const alone = new Float32Array(NT * nrows);
      for (let tok = 0; tok < NT; tok++) alone.set(run(K.exports, arena, f, w, nrows, k, x.subarray(tok * k), 1), tok * nrows);
      for (const n of [2, 3, 4, 5, 8, 13]) {
        const y = run(K.exports, arena, f, w, nrows, k, x, n);
        assert.deepEqual(new Uint32Array(y.buffer), new Uint32Array(alone.buffer, 0, n * nrows), `${f.name} ${K.path} n=${n}`);
      }
      if (first) assert.deepEqual(new Uint32Array(alone.buffer), new Uint32Array(first.buffer), `${f.name} ${K.path} vs ${builds[0]!.path}`);
      else first = alone;
    }
  });
}
