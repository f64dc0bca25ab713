// Rollback stress: thousands of random verification patterns (1 + k tokens evaluated, the first
// 1 + j of them kept, the rest truncated away) leave a sequence's KV cache exactly as a plain
// token-by-token run leaves it: every kept row's logits, and the logits after each round, are
// bit-identical to the plain run's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../../src/index.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { SeededRandom } from "../../src/sampling/rng.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import { tempDir } from "../helpers/temp-dir.ts";

test("rollback stress: 2000 random accept/reject patterns, logits bit-identical to a plain run", async () => {
  const dir = tempDir("mimo-rollback-");
  const path = join(dir, "qwen2.gguf");
  await writeGGUFFile(path, syntheticModel({ arch: "qwen2", dim: 64, ffnDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 320, contextLength: 512, weightType: GGMLType.Q4_0, seed: 9 }));
  const model = await loadModel(path, { parallel: 2, contextSize: 256, threads: 1 });
  const V = model.config.vocabSize;
  const rng = new SeededRandom(5);
  const rand = (n: number) => Math.floor(rng.next() * n);
  const plain = model.createSequence();
  const spec = model.createSequence();
  try {
    let patterns = 0;
    let rounds = 0;
    while (patterns < 2000) {
      // A round: a random true continuation, evaluated one token at a time (plain) and by random drafts (spec).
      const start = plain.length;
      const truth = Array.from({ length: 200 - start }, () => 3 + rand(V - 3));
      const want: Float32Array[] = truth.map((t) => model.forward([{ sequence: plain, tokens: [t], logits: "last" }])[0]!.logits);
      let i = 0;
      while (i < truth.length) {
        const k = Math.min(rand(9), truth.length - i - 1);
        const j = rand(k + 1);
        const junk = Array.from({ length: k - j }, () => 3 + rand(V - 3));
        const tokens = [...truth.slice(i, i + 1 + j), ...junk];
        const rows = model.forward([{ sequence: spec, tokens, logits: "all" }])[0]!.logits;
        for (let r = 0; r <= j; r++) {
          const got = rows.subarray(r * V, (r + 1) * V);
          if (!bitsEqual(got, want[i + r]!)) assert.fail(`pattern ${patterns}: row ${r} of ${tokens.length} (position ${spec.length - tokens.length + r}) differs from the plain run`);
        }
        spec.truncate(spec.length - (k - j));
        i += 1 + j;
        patterns++;
      }
      assert.deepEqual(spec.tokens, plain.tokens);
      // Roll both back to a random earlier point and go again.
      const back = rand(plain.length);
      plain.truncate(back);
      spec.truncate(back);
      rounds++;
    }
    assert.ok(rounds >= 3);
  } finally {
    plain.release();
    spec.release();
    await model.dispose();
  }
});

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
