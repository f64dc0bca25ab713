// A short fuzz run in-process (the long runs use `npm run fuzz`, one child process per case stream):
// deterministic mutations of stories260K and its quantized variants either fail to load with a
// typed, one-line ModelFileError naming the file, or load and generate; nothing leaks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { goodOutcomes, runCase, seedFiles } from "../../fuzz/case.ts";
import { loadModel } from "../../src/index.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const CASES = 200;

test(`${CASES} mutated model files: each a typed rejection or a working model`, async () => {
  const dir = tempDir("mimo-fuzz-test-");
  // Thread pools that start lazily (libuv, V8) must not count as leaks of the first case.
  const warm = await loadModel(new URL(`../../${seedFiles[0]}`, import.meta.url).pathname, { backend: "reference" });
  await warm.complete("Once", { temperature: 0, maxTokens: 2 });
  await warm.dispose();
  const counts: Record<string, number> = {};
  const bad: string[] = [];
  for (let i = 0; i < CASES; i++) {
    const r = await runCase({ seed: 1, index: i, backend: "reference", tokens: 2, dir });
    counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
    if (!goodOutcomes.includes(r.outcome)) bad.push(`case ${i} (${r.kinds.join("+")}: ${r.details.join(" | ").slice(0, 120)}): ${r.outcome} ${r.reason ?? ""} ${r.error ?? ""}`);
  }
  assert.deepEqual(bad, []);
  // Both good outcomes occur: the mutations reach past the header into files that still load.
  assert.ok((counts.rejected ?? 0) > CASES / 2 && (counts.generated ?? 0) > CASES / 20, JSON.stringify(counts));
});
