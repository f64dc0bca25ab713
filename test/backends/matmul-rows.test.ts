// matmulRows (constrained decoding's sparse output head): the rows asked for equal the full
// matmul's bit for bit, on the fast backend (1-3 threads, every weight type an output head may
// have) and on the reference backend; rows outside the computed groups are left alone; a dense
// mask is declined without touching anything.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { getWeightTraits, rowByteSize } from "../../src/quant/traits.ts";
import { WasmBackend } from "../../src/backends/wasm/wasm-backend.ts";
import { ReferenceBackend } from "../../src/backends/reference.ts";
import { tokenMaskOf } from "../../src/sampling/chain.ts";
import type { ComputeBackend } from "../../src/compute/backend.ts";

const ROWS = 4003; // a partial last 8-row group; uneven shards on 2 and 3 threads
const COLS = 256;
const SENTINEL = 12345.5;

function quantized(type: number): { byteSize: number; read: (o: number, n: number) => Promise<Uint8Array>; readSync: undefined } {
  const traits = getWeightTraits(type);
  const src = new Float32Array(ROWS * COLS).map((_, i) => Math.sin(i * 0.37) * 0.1 + Math.cos(i * 0.013) * 0.05);
  const rowBytes = rowByteSize(type, COLS);
  const bytes = new Uint8Array(ROWS * rowBytes);
  for (let r = 0; r < ROWS; r++) traits.quantizeRow(src, r * COLS, bytes, r * rowBytes, COLS);
  return { byteSize: bytes.length, read: async (o, n) => bytes.subarray(o, o + n), readSync: undefined };
}

/** Masks of the shapes a grammar gives: single tokens, a run (digits), scattered ids, the last row, shard edges, more runs than a thread's job table. */
function masks(): { name: string; ids: number[] }[] {
  const scattered = Array.from({ length: 40 }, (_, i) => (i * 97 + 13) % ROWS);
  const manyRuns = Array.from({ length: 100 }, (_, i) => i * 16); // more separate groups on one thread than its job table holds
  return [
    { name: "one token", ids: [5] },
    { name: "a run", ids: [15, 16, 17, 18, 19, 20, 21, 22, 23, 24] },
    { name: "scattered", ids: scattered },
    { name: "last rows", ids: [ROWS - 1, ROWS - 3] },
    { name: "shard edges", ids: [1334, 1335, 1336, 1337, 1998, 1999, 2000, 2001, 2670, 2671, 2672, 2673] },
    { name: "many runs", ids: manyRuns },
    { name: "none", ids: [] },
  ];
}

async function check(b: ComputeBackend, type: number, label: string): Promise<void> {
  const w = await b.loadMatrix({ name: "output.weight", type, shape: [COLS, ROWS] }, quantized(type));
  const x = b.allocate(COLS);
  for (let i = 0; i < COLS; i++) x[i] = Math.cos(i * 0.11) * 2;
  const full = b.allocate(ROWS);
  b.matmul(w, x, 1, full);
  const fullCopy = full.slice();
  for (const { name, ids } of masks()) {
    // In the backend's memory (thread 0 writes in place) and a plain array (every shard gathered).
    for (const owned of [true, false]) {
      const out = owned ? b.allocate(ROWS) : new Float32Array(ROWS);
      out.fill(SENTINEL);
      const n = b.matmulRows!(w, x, tokenMaskOf(ids, ROWS), out);
      assert.ok(n !== undefined, `${label} ${name}: declined`);
      assert.ok(n >= new Set(ids).size && n <= Math.max(1, ids.length) * 16 * 8, `${label} ${name}: ${n} rows computed`);
      let written = 0;
      for (let r = 0; r < ROWS; r++) {
        if (out[r] !== SENTINEL) {
          written++;
          // Every value written is the full matmul's (a neighbour in the same group included).
          assert.ok(Object.is(out[r], fullCopy[r]), `${label} ${name} row ${r}: ${out[r]} vs ${fullCopy[r]}`);
        }
      }
      for (const id of ids) assert.ok(Object.is(out[id], fullCopy[id]), `${label} ${name}: row ${id} not computed`);
      assert.equal(written, n, `${label} ${name}: rows written vs reported`);
      // Rows far from every id (not in a computed group, nor a job table's merged gap) stay untouched.
      if (name !== "many runs") for (let r = 0; r < ROWS; r++) if (ids.every((id) => Math.abs(id - r) >= 8)) assert.equal(out[r], SENTINEL, `${label} ${name}: row ${r} was written`);
    }
  }
  // A dense mask (every row): declined, nothing written.
  const out = new Float32Array(ROWS).fill(SENTINEL);
  const dense = tokenMaskOf(Array.from({ length: ROWS }, (_, i) => i), ROWS);
  if (b instanceof WasmBackend) {
    assert.equal(b.matmulRows(w, x, dense, out), undefined, `${label}: a dense mask is declined`);
    assert.ok(out.every((v) => v === SENTINEL));
  }
  // The full matmul after the sparse ones still gives the same values (no state left behind).
  b.matmul(w, x, 1, full);
  assert.deepEqual(full, fullCopy);
}

const TYPES = ["Q4_0", "Q8_0", "Q6_K", "Q4_K", "F16", "F32"] as const;

for (const threads of [1, 2, 3]) {
  test(`matmulRows on ${threads} thread(s): the rows asked for are the full matmul's, bit for bit (${TYPES.join(", ")})`, async () => {
    const b = await WasmBackend.create({ threads });
    try {
      for (const type of TYPES) await check(b, GGMLType[type], `${type} x${threads}`);
    } finally {
      await b.dispose();
    }
  });
}

test("matmulRows on the reference backend: the rows asked for are its matmul's", async () => {
  for (const type of TYPES) await check(new ReferenceBackend(), GGMLType[type], `${type} reference`);
});
