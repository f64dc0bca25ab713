// mimo perplexity against llama.cpp: the same chunks (llama-perplexity's recipe: chunks of c
// tokens, BOS replacing each chunk's first token, the second half scored) scored from
// node-llama-cpp's per-token probabilities give the same perplexity.
//
// Tolerance: |ln PPL(mimo) - ln PPL(llama.cpp)| <= 5e-4, i.e. perplexities within 0.05 %. Measured:
// 5e-6 on stories260K, 5e-5 on the synthetic model (per-token log-probabilities agree to ~1e-6
// except for rare f16 rounding flips of up to ~1e-2, see test/helpers/oracle-suite.ts). Shifting
// the chunks by a single token moves stories260K's ln PPL by 3e-3; scoring the wrong half or
// dropping the BOS by far more.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadModel } from "../../src/index.ts";
import { MemoryByteSource } from "../../src/format/byte-source.ts";
import { NodeFileSink, NodeFileSource, writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import { firstScored, klDivergence, perplexity, perplexityChunks, perplexityTokens, readBaseLogitsHeader } from "../../src/tools/perplexity.ts";
import { STORIES_DIR, TESTDATA } from "../helpers/testdata.ts";
import { llamaCppChunkLogProbs } from "../helpers/llama-cpp-oracle.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const TEXT = readFileSync(join(TESTDATA, "eval", "stories.txt"), "utf8");
const dir = tempDir("mimo-ppl-");
const STORIES = join(STORIES_DIR, "stories260K.gguf");
const TOLERANCE = 5e-4;

async function compareWithLlamaCpp(path: string, contextSize: number, chunks: number | undefined, t: { diagnostic(m: string): void }): Promise<void> {
  const model = await loadModel(path, { contextSize });
  try {
    const ours = await perplexity(model, TEXT, { contextSize, chunks });
    const tokens = perplexityTokens(model, TEXT);
    const list = perplexityChunks(tokens, contextSize, model.tokenizer.bos, chunks);
    const logps = await llamaCppChunkLogProbs(path, list, firstScored(contextSize));
    assert.equal(ours.scoredTokens, logps.length);
    assert.equal(ours.scoredTokens, list.length * (contextSize - 1 - firstScored(contextSize)));
    const theirs = -logps.reduce((a, b) => a + b, 0) / logps.length;
    let maxTok = 0;
    logps.forEach((lp, i) => (maxTok = Math.max(maxTok, Math.abs(-lp - ours.nll[i]!))));
    t.diagnostic(`${list.length} chunks of ${contextSize}: PPL mimo ${ours.perplexity.value.toFixed(6)}, llama.cpp ${Math.exp(theirs).toFixed(6)}; |Δ ln PPL| ${Math.abs(ours.meanNll - theirs).toExponential(2)}, max per-token |Δ log p| ${maxTok.toExponential(2)}`);
    assert.ok(Math.abs(ours.meanNll - theirs) <= TOLERANCE, `ln PPL mimo ${ours.meanNll}, llama.cpp ${theirs}`);
  } finally {
    await model.dispose();
  }
}

test("stories260K: perplexity over the evaluation text equals llama.cpp's over the same chunks", async (t) => {
  await compareWithLlamaCpp(STORIES, 256, 4, t);
});

test("a synthetic Qwen2 model (Q8_0): perplexity equals llama.cpp's over the same chunks", async (t) => {
  const path = join(dir, "synthetic-qwen2.gguf");
  await writeGGUFFile(path, syntheticModel({ arch: "qwen2", dim: 256, ffnDim: 512, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 512, contextLength: 512, weightType: GGMLType.Q8_0, seed: 3, matrixGain: 0.5, outputGain: 4 }));
  await compareWithLlamaCpp(path, 128, 6, t);
});

test("the chunk recipe: BOS replaces each chunk's first token, a short tail is dropped, too little text is refused", async () => {
  const tokens = Array.from({ length: 25 }, (_, i) => 100 + i);
  assert.deepEqual(perplexityChunks(tokens, 8, 1), [
    [1, 101, 102, 103, 104, 105, 106, 107],
    [1, 109, 110, 111, 112, 113, 114, 115],
    [1, 117, 118, 119, 120, 121, 122, 123],
  ]);
  assert.deepEqual(perplexityChunks(tokens, 8, undefined, 1), [[100, 101, 102, 103, 104, 105, 106, 107]]);
  const model = await loadModel(STORIES, { contextSize: 512 });
  try {
    await assert.rejects(perplexity(model, "Once upon a time.", { contextSize: 64 }), /needs at least 128 tokens of text, but it has \d+/);
    await assert.rejects(perplexity(model, TEXT, { contextSize: 1024 }), /loaded with a context of 512 positions, but perplexity chunks of 1024/);
  } finally {
    await model.dispose();
  }
});

/** KL(P || Q), top-token agreement and both perplexities straight from full logits (a plain transcription of the definitions). */
function directKl(base: Float32Array, q: Float32Array, V: number, next: readonly number[]) {
  const logSoftmax = (row: Float32Array) => {
    const m = Math.max(...row);
    const lse = Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) + m;
    return Array.from(row, (v) => v - lse);
  };
  let kl = 0, same = 0, nllP = 0, nllQ = 0;
  const n = next.length;
  for (let i = 0; i < n; i++) {
    const lp = logSoftmax(base.subarray(i * V, (i + 1) * V));
    const lq = logSoftmax(q.subarray(i * V, (i + 1) * V));
    for (let t = 0; t < V; t++) kl += Math.exp(lp[t]!) * (lp[t]! - lq[t]!);
    const argmax = (a: number[]) => a.indexOf(Math.max(...a));
    if (argmax(lp) === argmax(lq)) same++;
    nllP -= lp[next[i]!]!;
    nllQ -= lq[next[i]!]!;
  }
  return { kl: kl / n, same: same / n, pplBase: Math.exp(nllP / n), ppl: Math.exp(nllQ / n) };
}

test("KL divergence of a quantized stories260K against the F32 base equals the definition over full logits", async () => {
  const c = 128;
  const basePath = join(dir, "stories-f32.kld");
  const f32 = await loadModel(STORIES, { contextSize: c });
  const q = await loadModel(join(STORIES_DIR, "derived", "stories260K-Q4_K_M.gguf"), { contextSize: c });
  try {
    const saved = await perplexity(f32, TEXT, { contextSize: c, chunks: 4, saveLogits: await NodeFileSink.create(basePath) });
    const src = await NodeFileSource.open(basePath);
    try {
      const h = await readBaseLogitsHeader(src);
      assert.deepEqual([h.contextSize, h.vocabSize, h.chunks], [c, 512, 4]);
      const r = await klDivergence(q, src);
      // The base perplexity read back from the file is the saved run's, to the file's 16-bit resolution.
      assert.ok(Math.abs(Math.log(r.basePerplexity.value) - saved.meanNll) < 1e-4, `${r.basePerplexity.value} vs ${saved.perplexity.value}`);
      // The same numbers from both models' full logits, chunk by chunk.
      const chunks = perplexityChunks(perplexityTokens(f32, TEXT), c, f32.tokenizer.bos, 4);
      const first = firstScored(c);
      const V = 512;
      const rows = (m: typeof f32, ch: number[]) => m.evaluate(ch.slice(0, -1), { allLogits: true }).slice(first * V);
      let kl = 0, same = 0, lnP = 0, lnQ = 0, n = 0;
      for (const ch of chunks) {
        const d = directKl(rows(f32, ch), rows(q, ch), V, ch.slice(first + 1));
        const k = ch.length - 1 - first;
        kl += d.kl * k; same += d.same * k; lnP += Math.log(d.pplBase) * k; lnQ += Math.log(d.ppl) * k; n += k;
      }
      assert.equal(r.scoredTokens, n);
      // The file keeps log-probabilities to 16/65535 nats and drops those 16 nats below the top.
      assert.ok(Math.abs(r.klDivergence.value - kl / n) < 2e-3 * Math.max(1, kl / n), `KL ${r.klDivergence.value} vs ${kl / n}`);
      assert.ok(r.klDivergence.value > 1e-3, "Q4_K_M differs from F32");
      assert.ok(Math.abs(r.sameTopToken.value - same / n) <= 2 / n, `same top ${r.sameTopToken.value} vs ${same / n}`);
      assert.ok(Math.abs(Math.log(r.perplexity.value) - lnQ / n) < 1e-9);
      assert.ok(Math.abs(r.logPerplexityRatio.value - (lnQ - lnP) / n) < 1e-4);
      assert.ok(r.klPercentiles.min <= r.klPercentiles.median && r.klPercentiles.median <= r.klPercentiles.max);

      // The base model against itself: no divergence beyond the file's rounding.
      const self = await klDivergence(f32, src);
      assert.equal(self.sameTopToken.value, 1);
      assert.ok(self.klDivergence.value < 1e-6, `self KL ${self.klDivergence.value}`);
      assert.ok(Math.abs(self.logPerplexityRatio.value) < 1e-4);
    } finally {
      await src.close();
    }
  } finally {
    await f32.dispose();
    await q.dispose();
  }
});

test("a base-logits file that is truncated, foreign or from another vocabulary is refused by name", async () => {
  const model = await loadModel(STORIES, { contextSize: 128 });
  try {
    await assert.rejects(klDivergence(model, new MemoryByteSource(new TextEncoder().encode("GGUF and other things"), "x.kld")), /x\.kld: does not start with "_logits_"/);
    const basePath = join(dir, "trunc.kld");
    await perplexity(model, TEXT, { contextSize: 128, chunks: 2, saveLogits: await NodeFileSink.create(basePath) });
    const bytes = readFileSync(basePath);
    await assert.rejects(klDivergence(model, new MemoryByteSource(bytes.subarray(0, bytes.length - 10), "t.kld")), /t\.kld: is \d+ bytes, but its header .* means \d+: truncated/);
    const other = new Uint8Array(bytes);
    new DataView(other.buffer).setInt32(12, 32000, true);
    const fixedSize = 20 + 4 * 128 * 2 + 2 * 63 * (32000 + 4) * 2;
    const padded = new Uint8Array(fixedSize);
    padded.set(other.subarray(0, 20 + 4 * 128 * 2));
    await assert.rejects(klDivergence(model, new MemoryByteSource(padded, "v.kld")), /v\.kld: was saved from a model with a vocabulary of 32000 tokens, but this model has 512/);
    writeFileSync(join(dir, "keep.kld"), "precious");
    await assert.rejects(NodeFileSink.create(join(dir, "keep.kld")), /already exists; refusing to overwrite/);
    assert.equal(readFileSync(join(dir, "keep.kld"), "utf8"), "precious");
  } finally {
    await model.dispose();
  }
});
