// The WebAssembly type table (src/kernels/types.ts): every weight type mimo loads has a row, and
// every export a row names is in both kernel builds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadKernels, type KernelPath } from "../../src/kernels/kernels.ts";
import { WASM_ACTIVATIONS, WASM_TYPES, wasmType } from "../../src/kernels/types.ts";
import { ggmlTypeName, supportedWeightTypes } from "../../src/quant/traits.ts";

test("the kernels multiply exactly the weight types of the traits table, one row each, named as ggml names them", () => {
  assert.deepEqual(WASM_TYPES.map((t) => t.type).sort((a, b) => a - b), [...supportedWeightTypes].sort((a, b) => a - b));
  for (const t of WASM_TYPES) {
    assert.equal(t.name, ggmlTypeName(t.type));
    assert.equal(wasmType(t.type), t);
    assert.ok(t.activation in WASM_ACTIVATIONS, `${t.name}: activation ${t.activation}`);
    assert.ok(t.rowGranularity >= 1 && t.repackedBytes(t.rowGranularity, 256) > 0, t.name);
  }
});

for (const path of ["relaxed-simd", "simd128"] as KernelPath[]) {
  test(`every repack, matmul and activation converter the table names is exported (${path})`, async () => {
    const ex = (await loadKernels({ path })).exports as unknown as Record<string, unknown>;
    const names = WASM_TYPES.flatMap((t) => [t.matmul, ...(t.repack ? [t.repack] : []), ...(WASM_ACTIVATIONS[t.activation].convert ? [WASM_ACTIVATIONS[t.activation].convert!] : [])]);
    for (const name of new Set(names)) assert.equal(typeof ex[name], "function", name);
  });
}
