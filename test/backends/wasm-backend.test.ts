// The fast backend (WebAssembly SIMD kernels on worker threads) against itself and the reference.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel, defaultModelPath } from "../../src/index.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import { WasmBackend } from "../../src/backends/wasm/wasm-backend.ts";
import { getWeightTraits, rowByteSize, supportedWeightTypes, ggmlTypeName } from "../../src/quant/traits.ts";
import { tempDir } from "../helpers/temp-dir.ts";
import { vnniUnavailable } from "../helpers/kernel-builds.ts";

const dir = tempDir("mimo-wasm-");
const prompt = [1, 300, 301, 302, 303, 304, 305, 306, 307];

async function synthetic(type: keyof typeof GGMLType): Promise<string> {
  const path = join(dir, `${type}.gguf`);
  // Rows split unevenly (vocab 517: a partial last 8-row group; 3 threads) so shards are uneven and the last 8-row group is partial.
  await writeGGUFFile(path, syntheticModel({
    arch: "qwen2", dim: 256, ffnDim: 768, nLayers: 2, nHeads: 4, nKvHeads: 2,
    vocabSize: 517, contextLength: 256, weightType: GGMLType[type], seed: 9, matrixGain: 0.5,
  }), { overwrite: true });
  return path;
}

async function logitsWith(path: string, opts: Parameters<typeof loadModel>[1]): Promise<Float32Array> {
  const model = await loadModel(path, opts);
  try {
    return model.evaluate(prompt, { allLogits: true });
  } finally {
    await model.dispose();
  }
}

for (const type of ["Q4_0", "Q8_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "F16", "BF16", "F32", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"] as const) {
  test(`${type}: 1, 2 and 3 threads give bit-identical logits`, async () => {
    const path = await synthetic(type);
    const one = await logitsWith(path, { threads: 1 });
    assert.deepEqual(await logitsWith(path, { threads: 2 }), one);
    assert.deepEqual(await logitsWith(path, { threads: 3 }), one);
  });

  test(`${type}: the fast backend agrees with the reference backend`, async () => {
    const path = await synthetic(type);
    const fast = await logitsWith(path, { threads: 2 });
    const ref = await logitsWith(path, { backend: "reference" });
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(fast[i]! - ref[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(ref[i]!));
    }
    // Same integer dot products; float sums in another order, exp by a polynomial: ~1e-5 relative,
    // with rare f16/8-bit rounding flips.
    assert.ok(maxDiff <= 2e-2 * maxAbs, `max |Δ logit| ${maxDiff} (max |logit| ${maxAbs})`);
  });

  test(`${type}: the plain SIMD128 build gives the same logits as the relaxed-SIMD build`, async () => {
    const path = await synthetic(type);
    const relaxed = await logitsWith(path, { backend: await WasmBackend.create({ threads: 1, kernels: { path: "relaxed-simd" } }) });
    const plain = await logitsWith(path, { backend: await WasmBackend.create({ threads: 1, kernels: { path: "simd128" } }) });
    if (["F32", "F16", "BF16"].includes(type)) {
      // Float types: the relaxed build may fuse multiply-adds, so only float rounding differs.
      for (let i = 0; i < plain.length; i++) assert.ok(Math.abs(plain[i]! - relaxed[i]!) <= 1e-4 * (1 + Math.abs(relaxed[i]!)), `logit ${i}: ${plain[i]} vs ${relaxed[i]}`);
    } else {
      assert.deepEqual(plain, relaxed); // integer dot products, the same float steps
    }
  });

  test(`${type}: the relaxed-SIMD VNNI build gives the same logits as the relaxed-SIMD build (1 and 3 threads)`, { skip: vnniUnavailable }, async () => {
    const path = await synthetic(type);
    const relaxed = await logitsWith(path, { backend: await WasmBackend.create({ threads: 1, kernels: { path: "relaxed-simd" } }) });
    for (const threads of [1, 3]) {
      const backend = await WasmBackend.create({ threads, kernels: { path: "relaxed-simd-vnni" } });
      assert.match(backend.name, /relaxed-simd-vnni/);
      // same sources apart from how the Q4_0/Q8_0 int8 dots are summed (exact in both): identical
      assert.deepEqual(await logitsWith(path, { backend }), relaxed);
    }
  });
}

// Decode steps take the one-token paths (thread 0 writing its rows in place, SwiGLU on each
// thread's own rows, the fused q/k/v + RoPE + attention for llama): every step's logits must be
// the same bits on 1, 2 and 3 threads. ffnDim 800 splits unevenly over 3 threads.
for (const type of ["Q4_0", "Q8_0", "Q4_K"] as const) {
  test(`${type}: decode steps give bit-identical logits on 1, 2 and 3 threads (llama and qwen2)`, async () => {
    for (const arch of ["llama", "qwen2"] as const) {
      const path = join(dir, `decode-${arch}-${type}.gguf`);
      await writeGGUFFile(path, syntheticModel({
        arch, dim: 256, ffnDim: 800, nLayers: 2, nHeads: 4, nKvHeads: 2,
        vocabSize: 517, contextLength: 256, weightType: GGMLType[type], seed: 5, matrixGain: 0.5,
      }), { overwrite: true });
      const steps = async (threads: number): Promise<Float32Array[]> => {
        const model = await loadModel(path, { threads });
        try {
          const seq = model.createSequence();
          const out = [model.forward([{ sequence: seq, tokens: prompt, logits: "last" }])[0]!.logits.slice()];
          for (const tok of [40, 41, 300, 7, 516]) out.push(model.forward([{ sequence: seq, tokens: [tok], logits: "last" }])[0]!.logits.slice());
          return out;
        } finally {
          await model.dispose();
        }
      };
      const one = await steps(1);
      for (const t of [2, 3]) {
        const got = await steps(t);
        for (let i = 0; i < one.length; i++) assert.deepEqual(new Uint32Array(got[i]!.buffer), new Uint32Array(one[i]!.buffer), `${arch}, ${t} threads, step ${i}`);
      }
    }
  });
}

test("the bundled model's golden story also comes out of the fast backend", async () => {
  const model = await loadModel(defaultModelPath(), { threads: 2 });
  try {
    const r = await model.complete("", { temperature: 0, maxTokens: 60 });
    assert.ok(r.text.startsWith("Once upon a time, there was a little girl named Lily. She loved to play outside in the park."), r.text);
  } finally {
    await model.dispose();
  }
});

test("a backend whose thread count is invalid is a clear error", async () => {
  await assert.rejects(WasmBackend.create({ threads: 0 }), /threads must be an integer from 1 to 64, got 0/);
});

// Thread 0 writes its rows straight into the caller's output when they are contiguous there (one
// token, or one thread); the other shards are gathered. Both routes must fill exactly the output:
// same numbers as the gathered route, nothing written past either end.
test("matmul outputs are the same written directly or gathered, and nothing outside them is touched", async () => {
  const rows = 203; // a partial 8-row group, uneven shards on 3 threads
  const cols = 256;
  const sentinel = 12345.5;
  for (const type of ["Q4_0", "Q8_0", "Q4_K", "F16"] as const) {
    const traits = getWeightTraits(GGMLType[type]);
    const src = new Float32Array(rows * cols).map((_, i) => Math.sin(i * 0.37) * 0.1);
    const rowBytes = rowByteSize(GGMLType[type], cols);
    const bytes = new Uint8Array(rows * rowBytes);
    for (let r = 0; r < rows; r++) traits.quantizeRow(src, r * cols, bytes, r * rowBytes, cols);
    const data = { byteSize: bytes.length, read: async (o: number, n: number) => bytes.subarray(o, o + n), readSync: undefined };
    const results: Float32Array[] = [];
    for (const threads of [1, 3]) {
      const b = await WasmBackend.create({ threads });
      try {
        const w = await b.loadMatrix({ name: "w", type: GGMLType[type], shape: [cols, rows] }, data);
        for (const nTok of [1, 5]) {
          const x = b.allocate(nTok * cols); // ops work on the backend's own buffers
          for (let i = 0; i < x.length; i++) x[i] = Math.cos(i * 0.11);
          const guarded = b.allocate(nTok * rows + 32).fill(sentinel);
          const out = guarded.subarray(16, 16 + nTok * rows);
          b.matmul(w, x, nTok, out);
          for (let i = 0; i < 16; i++) assert.equal(guarded[i], sentinel, `${type} t=${threads} n=${nTok}: wrote before the output`);
          for (let i = 16 + nTok * rows; i < guarded.length; i++) assert.equal(guarded[i], sentinel, `${type} t=${threads} n=${nTok}: wrote past the output`);
          assert.ok(out.every((v) => Number.isFinite(v) && v !== sentinel), `${type} t=${threads} n=${nTok}: output not filled`);
          results.push(out.slice());
        }
      } finally {
        b.dispose();
      }
    }
    assert.deepEqual(results[2], results[0], `${type}: 1 token, 3 threads vs 1 thread`);
    assert.deepEqual(results[3], results[1], `${type}: 5 tokens, 3 threads vs 1 thread`);
  }
});

// The matmul has no scalar fallback: every type a model tensor may have runs on a SIMD kernel.
test("every supported weight type loads and multiplies on the SIMD kernels; rows-only matrices refuse matmul", async () => {
  const b = await WasmBackend.create({ threads: 2 });
  try {
    const rows = 16, cols = 256;
    const src = new Float32Array(rows * cols).map((_, i) => Math.sin(i * 0.37) * 0.1);
    const x = b.allocate(cols).map((_, i) => Math.cos(i * 0.11));
    for (const type of supportedWeightTypes) {
      const traits = getWeightTraits(type);
      const rowBytes = rowByteSize(type, cols);
      const bytes = new Uint8Array(rows * rowBytes);
      for (let r = 0; r < rows; r++) traits.quantizeRow(src, r * cols, bytes, r * rowBytes, cols);
      const data = { byteSize: bytes.length, read: async (o: number, n: number) => bytes.subarray(o, o + n), readSync: undefined };
      const w = await b.loadMatrix({ name: "w", type, shape: [cols, rows] }, data);
      const out = b.allocate(rows).fill(Number.NaN);
      b.matmul(w, x, 1, out);
      assert.ok(out.every(Number.isFinite), `${ggmlTypeName(type)}: ${out}`);
      const embedding = await b.loadMatrix({ name: "tok_embd", type, shape: [cols, rows] }, data, "rows");
      assert.throws(() => b.matmul(embedding, x, 1, out), /"tok_embd" was loaded for embedding rows only/);
    }
  } finally {
    b.dispose();
  }
});

test("RoPE equals the reference bit for bit at any positions: consecutive runs past the table's growth, repeated, and scattered", async () => {
  const { ReferenceBackend } = await import("../../src/backends/reference.ts");
  const ref = new ReferenceBackend();
  const b = await WasmBackend.create({ threads: 1 });
  try {
    for (const style of ["normal", "neox"] as const) {
      const p = { style, headDim: 16, ropeDim: 16, base: 10000, freqScale: 1 };
      const nHeads = 3;
      // Decode-like single positions through two growths of the table (64 -> 128 -> 256 rows),
      // back to the start (a new generation), a prompt chunk across a boundary, scattered positions.
      const batches: number[][] = [[0], [1], [63], [64], [65], [130], [0], [2], Array.from({ length: 40 }, (_, i) => 100 + i), [5, 3, 200, 7], [255], [64]];
      for (const positions of batches) {
        const n = positions.length;
        const x = b.allocate(n * nHeads * p.headDim);
        for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37 + positions[0]!) * 3;
        const want = Float32Array.from(x);
        ref.rope(want, n, nHeads, positions, p);
        b.rope(x, n, nHeads, positions, p);
        assert.deepEqual(Float32Array.from(x), want, `${style} positions ${positions.slice(0, 4).join(",")}${n > 4 ? ",..." : ""}`);
      }
    }
  } finally {
    await b.dispose();
  }
});

test("RoPE tables are found by value: equal parameter objects share one table (no memory per call), other factors get their own", async () => {
  const { ReferenceBackend } = await import("../../src/backends/reference.ts");
  const ref = new ReferenceBackend();
  const b = await WasmBackend.create({ threads: 1 });
  try {
    const factors = Float32Array.from({ length: 8 }, (_, i) => 1 + i / 4);
    const x = b.allocate(2 * 16);
    const run = (p: { style: "normal"; headDim: number; ropeDim: number; base: number; freqScale: number; freqFactors?: Float32Array }, pos: number) => {
      for (let i = 0; i < x.length; i++) x[i] = Math.cos(i + pos);
      const want = Float32Array.from(x);
      ref.rope(want, 1, 2, [pos], p);
      b.rope(x, 1, 2, [pos], p);
      assert.deepEqual(Float32Array.from(x), want, `pos ${pos} factors ${p.freqFactors ? "yes" : "no"}`);
    };
    run({ style: "normal", headDim: 16, ropeDim: 16, base: 10000, freqScale: 1 }, 10);
    // thread 0's arena top (white box: the backend's bump allocator) must not move for equal parameters
    const top = () => (b as unknown as { mem: { top: number }[] }).mem[0]!.top;
    const used = top();
    for (let i = 0; i < 200; i++) run({ style: "normal", headDim: 16, ropeDim: 16, base: 10000, freqScale: 1 }, i % 60);
    assert.equal(top(), used, "a fresh equal parameter object allocated another table");
    run({ style: "normal", headDim: 16, ropeDim: 16, base: 10000, freqScale: 1, freqFactors: factors }, 10);
    const withFactors = top();
    // alternating between the two parameter sets keeps both tables
    for (let i = 0; i < 20; i++) {
      run({ style: "normal", headDim: 16, ropeDim: 16, base: 10000, freqScale: 1, freqFactors: factors }, 12 + i);
      run({ style: "normal", headDim: 16, ropeDim: 16, base: 10000, freqScale: 1 }, 11 + i);
    }
    assert.equal(top(), withFactors, "switching parameter sets allocated new tables");
  } finally {
    await b.dispose();
  }
});
