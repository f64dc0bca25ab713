// "No allocation per token": a decode step reuses its buffers, batch entries, job lists and memory
// views, so what a generated token leaves on the JS heap is the public API's own per-token work
// (the async iteration, the text chunk). Measured in a child process whose young generation is
// large enough that nothing is collected during the run (the heap's growth is then what was allocated).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../helpers/heap-per-token.ts", import.meta.url));

function heapPerToken(threads: number): { bytesPerToken: number; gcs: number } {
  const out = execFileSync(process.execPath, ["--expose-gc", "--min-semi-space-size=64", "--max-semi-space-size=64", script, String(threads), "300"], { encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").pop()!) as { bytesPerToken: number; gcs: number };
}

for (const threads of [1, 2]) {
  test(`a generated token allocates under 8 KB of JS heap (stories260K, ${threads} thread${threads > 1 ? "s" : ""}; it was 21-34 KB)`, () => {
    const r = heapPerToken(threads);
    assert.equal(r.gcs, 0, "a collection ran during the measurement: the heap's growth would understate the allocations");
    assert.ok(r.bytesPerToken > 0 && r.bytesPerToken < 8192, `${r.bytesPerToken.toFixed(0)} bytes per token`);
  });
}
