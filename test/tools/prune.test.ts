// `mimo prune`: the importance scores equal a plain transcription of their definitions; pruning
// nothing (through the same cutting code) reproduces the input's logits bit for bit; pruned files
// have the smaller shapes and metadata, and run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../../src/index.ts";
import { openGGUFFile } from "../../src/platform/node-file.ts";
import { calibrationChunks } from "../../src/tools/imatrix.ts";
import {
  collectActivationStats,
  keptWidth,
  layerImportances,
  planPrune,
  writePrunedModel,
} from "../../src/tools/prune.ts";
import { plainLlamaTrace } from "../helpers/plain-llama.ts";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { readFileSync } from "node:fs";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-prune-");
const stories = `${STORIES_DIR}/stories260K.gguf`;
const text = readFileSync(`${STORIES_DIR}/golden.greedy.txt`, "utf8");
const CHUNK = 64;

test("block influence and the wanda / flap channel and KV-group scores equal a plain transcription of their definitions", async () => {
  // f32 KV cache on the reference backend: the closest mimo gets to the float64 transcription
  const model = await loadModel(stories, { backend: "reference", kvCacheType: "f32", contextSize: CHUNK });
  try {
    const stats = collectActivationStats(model, text, { chunkSize: CHUNK, maxChunks: 2 });
    const chunks = calibrationChunks(model, text, CHUNK, 2);
    const c = model.config;
    const traces = await Promise.all(chunks.map((ch) => plainLlamaTrace(model.file, c, ch)));
    const N = chunks.length * CHUNK;
    assert.equal(stats.tokens, N);
    const down = async (l: number, name: string) => {
      const f = model.file;
      const t = f.tensor(`blk.${l}.${name}.weight`);
      const bytes = new Float32Array((await f.readTensorBytes(t.name)).slice().buffer);
      return { cols: t.shape[0]!, rows: t.shape[1]!, w: bytes };
    };
    for (const metric of ["wanda", "flap"] as const) {
      const imp = await layerImportances(model.file, c, stats, metric);
      for (let l = 0; l < c.nLayers; l++) {
        // BI = 1 - mean over tokens of cos(x_in, x_out)
        let cos = 0;
        for (const tr of traces) {
          tr[l]!.input.forEach((x, t) => {
            const y = tr[l]!.output[t]!;
            let d = 0, a = 0, b = 0;
            for (let i = 0; i < x.length; i++) { d += x[i]! * y[i]!; a += x[i]! * x[i]!; b += y[i]! * y[i]!; }
            cos += d / Math.sqrt(a * b);
          });
        }
        const bi = 1 - cos / N;
        assert.ok(Math.abs(imp[l]!.blockInfluence - bi) < 1e-5, `layer ${l} BI ${imp[l]!.blockInfluence} vs ${bi}`);
        // channel j: wanda ||a_j||_2 * sum_i |W[i,j]|; flap var(a_j) * sum_i W[i,j]^2, over all tokens
        const W = await down(l, "ffn_down");
        const acts = traces.flatMap((tr) => tr[l]!.ffnAct);
        for (let j = 0; j < c.ffnDim; j++) {
          let s = 0, s2 = 0, wa = 0, w2 = 0;
          for (const a of acts) { s += a[j]!; s2 += a[j]! * a[j]!; }
          for (let i = 0; i < W.rows; i++) { const w = W.w[i * W.cols + j]!; wa += Math.abs(w); w2 += w * w; }
          const mean = s / N;
          const variance = acts.reduce((acc, a) => acc + (a[j]! - mean) ** 2, 0) / (N - 1);
          const want = metric === "wanda" ? Math.sqrt(s2) * wa : variance * w2;
          const got = imp[l]!.ffn[j]!;
          assert.ok(Math.abs(got - want) <= 1e-4 * Math.abs(want) + 1e-9, `${metric} layer ${l} channel ${j}: ${got} vs ${want}`);
        }
        // KV group g: the sum of the same score over the attn_output columns of its query heads
        const O = await down(l, "attn_output");
        const atts = traces.flatMap((tr) => tr[l]!.att);
        const perGroup = (c.nHeads / c.nKvHeads) * c.headDimV;
        for (let g = 0; g < c.nKvHeads; g++) {
          let want = 0;
          for (let col = g * perGroup; col < (g + 1) * perGroup; col++) {
            let s = 0, s2 = 0, wa = 0, w2 = 0;
            for (const a of atts) { s += a[col]!; s2 += a[col]! * a[col]!; }
            for (let i = 0; i < O.rows; i++) { const w = O.w[i * O.cols + col]!; wa += Math.abs(w); w2 += w * w; }
            const mean = s / N;
            const variance = atts.reduce((acc, a) => acc + (a[col]! - mean) ** 2, 0) / (N - 1);
            want += metric === "wanda" ? Math.sqrt(s2) * wa : variance * w2;
          }
          const got = imp[l]!.kvGroups[g]!;
          assert.ok(Math.abs(got - want) <= 1e-4 * Math.abs(want), `${metric} layer ${l} group ${g}: ${got} vs ${want}`);
        }
      }
    }
  } finally {
    await model.dispose();
  }
});

test("pruning nothing, through the same row and column cutting code, reproduces the input's logits bit for bit", async () => {
  const src = await loadModel(stories, { backend: "reference" });
  const c = src.config;
  const tokens = src.tokenize("Once upon a time, there was a little dog");
  const want = src.evaluate(tokens, { allLogits: true });
  await src.dispose();
  const all = (n: number) => Array.from({ length: n }, (_, i) => i);
  const plan = {
    removedLayers: [],
    ffnKeep: Array.from({ length: c.nLayers }, () => all(c.ffnDim)),
    kvKeep: Array.from({ length: c.nLayers }, () => all(c.nKvHeads)),
  };
  const out = join(dir, "identity.gguf");
  await writePrunedModel(stories, out, c, plan);
  const m = await loadModel(out, { backend: "reference" });
  try {
    assert.deepEqual(m.evaluate(tokens, { allLogits: true }), want);
  } finally {
    await m.dispose();
  }
  // and a plan with nothing to remove is nothing: zero layers, ratio 0
  assert.deepEqual(planPrune(c, { removeLayers: 0, ffnRatio: 0 }, undefined), { removedLayers: [] });
});

test("depth, width and KV-group pruning write the smaller shapes and metadata, and the files run", async () => {
  const model = await loadModel(stories, { contextSize: CHUNK });
  const c = model.config;
  const stats = collectActivationStats(model, text, { chunkSize: CHUNK });
  const imp = await layerImportances(model.file, c, stats, "wanda");
  await model.dispose();
  const lowest = [...imp].sort((a, b) => a.blockInfluence - b.blockInfluence)[0]!.layer;
  const plan = planPrune(c, { removeLayers: 1, ffnRatio: 0.25, kvGroups: 1 }, imp);
  assert.deepEqual(plan.removedLayers, [lowest]);
  assert.equal(keptWidth(172, 0.25, 32), 128);
  assert.equal(keptWidth(4864, 0.25, 256), 3584);
  const out = join(dir, "pruned.gguf");
  const r = await writePrunedModel(stories, out, c, plan);
  assert.deepEqual([r.layers, r.ffnDim, r.nHeads, r.nKvHeads], [4, 128, 6, 3]);
  const f = await openGGUFFile(out);
  try {
    assert.equal(f.metadata.get("llama.block_count"), 4);
    assert.equal(f.metadata.get("llama.feed_forward_length"), 128);
    assert.equal(f.metadata.get("llama.attention.head_count"), 6);
    assert.equal(f.metadata.get("llama.attention.head_count_kv"), 3);
    assert.equal(f.metadata.get("llama.attention.key_length"), 8);
    assert.deepEqual(f.tensor("blk.3.ffn_down.weight").shape, [128, 64]);
    assert.deepEqual(f.tensor("blk.3.attn_q.weight").shape, [64, 48]);
    assert.deepEqual(f.tensor("blk.3.attn_output.weight").shape, [48, 64]);
    assert.ok(!f.hasTensor("blk.4.attn_q.weight"));
  } finally {
    await f.close();
  }
  const m = await loadModel(out);
  try {
    const g = await m.complete("Once upon a time", { temperature: 0, maxTokens: 16 });
    assert.equal(g.tokens.length, 16);
  } finally {
    await m.dispose();
  }
  assert.throws(() => planPrune(c, { kvGroups: 4 }, imp), /cannot remove 4 KV group\(s\): the model has 4/);
  assert.throws(() => planPrune(c, { layers: [5] }, imp), /--layers: 5 is not a main layer of this model \(0\.\.4\)/);
  assert.throws(() => planPrune(c, { ffnRatio: 0.3 }), /needs calibration statistics/);
});
