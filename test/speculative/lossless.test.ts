// Greedy speculative decoding gives exactly plain decoding's tokens: every proposer, on synthetic
// llama / qwen2 / qwen3 / mimo models and on stories260K (real weights), draft lengths 1, 3 and 8,
// 1 and 2 threads, with a prompt that makes drafts agree often (a repeated passage) and one that
// makes them fail (no repetition; for the draft model, an unrelated draft; for MTP, its random
// layer's own proposals), 200 tokens each. On 2 threads: llama, mimo and stories260K, the
// high-acceptance prompt (the 2 cores are shared with the test runner's other file). Replay at acceptance 0.9 drives the MTP path through
// long accepted runs on random weights.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel, defaultModelPath, type Model, type SpeculativeOptions, type SpeculationStats } from "../../src/index.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { syntheticModel, type SyntheticArch } from "../../src/tools/synthetic-model.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-spec-");
const TOKENS = 200;

async function synthetic(arch: SyntheticArch, seed: number, nLayers = 2): Promise<string> {
  const path = join(dir, `${arch}-${seed}-${nLayers}.gguf`);
  await writeGGUFFile(
    path,
    syntheticModel({
      arch,
      dim: 64,
      ffnDim: 128,
      nLayers,
      nHeads: 4,
      nKvHeads: 2,
      headDim: arch === "qwen3" ? 32 : undefined,
      vocabSize: 320,
      contextLength: 1024,
      weightType: GGMLType.Q8_0,
      seed,
      qkNormGain: 0.3,
      // Soft output distributions keep the greedy output from settling into a short loop at once.
      outputGain: 2,
    }),
    { overwrite: true },
  );
  return path;
}

/** Token prompts: one that repeats a passage (lookups agree), one that never repeats. */
function prompts(vocab: number, bos: number): { high: number[]; low: number[] } {
  const passage = Array.from({ length: 24 }, (_, i) => 3 + ((i * 37 + 11) % (vocab - 3)));
  const low = Array.from({ length: 48 }, (_, i) => 3 + ((i * 101 + 7) % (vocab - 3)));
  return { high: [bos, ...passage, ...passage, ...passage.slice(0, 6)], low: [bos, ...low] };
}

interface Totals {
  proposed: number;
  accepted: number;
}

async function checkLossless(model: Model, label: string, prompt: number[], methods: readonly SpeculativeOptions[], totals: Totals): Promise<SpeculationStats[]> {
  const plain = await model.complete(prompt, { temperature: 0, maxTokens: TOKENS, ignoreEos: true });
  assert.equal(plain.tokens.length, TOKENS);
  const stats: SpeculationStats[] = [];
  for (const m of methods) {
    for (const draftMax of m.method === "mtp" && !m.replay ? [1, 3] : [1, 3, 8]) {
      const opts = { ...m, draftMax, adaptive: false, draftPMin: 0 };
      if (opts.replay) opts.replay = { ...opts.replay, tokens: plain.tokens };
      const r = await model.complete(prompt, { temperature: 0, maxTokens: TOKENS, ignoreEos: true, speculative: opts });
      assert.deepEqual(r.tokens, plain.tokens, `${label}: ${m.method}${m.replay ? " replay" : ""} draftMax ${draftMax} changed the output`);
      const s = r.stats.speculative!;
      assert.equal(s.method, m.method);
      totals.proposed += s.proposed;
      totals.accepted += s.accepted;
      stats.push(s);
    }
  }
  return stats;
}

for (const threads of [1, 2]) {
  // On 2 threads, llama and mimo stand for the others: what speculation does is the same for every
  // architecture (the per-architecture arithmetic is covered on 1 thread and by the oracle tests).
  for (const arch of threads === 1 ? (["llama", "qwen2", "qwen3", "mimo"] as const) : (["llama", "mimo"] as const)) {
    test(`${arch}, ${threads} thread${threads > 1 ? "s" : ""}: greedy speculative output equals plain decoding (n-gram, draft model${arch === "mimo" ? ", MTP" : ""}; lengths 1, 3, 8)`, async () => {
      const target = await synthetic(arch, 1);
      const unrelated = await synthetic(arch, 7, 1);
      const totals = { proposed: 0, accepted: 0 };
      // The target as its own draft model: every draft agrees.
      const same = await loadModel(target, { threads, draftModel: target, contextSize: 512 });
      try {
        const p = prompts(same.config.vocabSize, same.tokenizer.bos!);
        const methods: SpeculativeOptions[] = [{ method: "ngram" }, { method: "draft" }];
        if (arch === "mimo") methods.push({ method: "mtp" }, { method: "mtp", replay: { tokens: [], acceptance: 0.9, seed: 3 } });
        const high = await checkLossless(same, `${arch} high`, p.high, methods, totals);
        assert.ok(high[0]!.acceptanceRate > 0.3, `n-gram acceptance on a repeated passage: ${high[0]!.acceptanceRate}`);
        const draftStats = high.find((s) => s.method === "draft")!;
        assert.equal(draftStats.acceptanceRate, 1, "a model drafting for itself is always right");
        if (threads === 1) await checkLossless(same, `${arch} low`, p.low, [{ method: "ngram" }], totals);
      } finally {
        await same.dispose();
      }
      // The low-acceptance runs on 1 thread only (the machine's 2 cores are shared by the test runner).
      if (threads === 1) {
        const other = await loadModel(target, { threads, draftModel: unrelated, contextSize: 512 });
        try {
          const p = prompts(other.config.vocabSize, other.tokenizer.bos!);
          await checkLossless(other, `${arch} unrelated draft`, p.low, [{ method: "draft" }], totals);
        } finally {
          await other.dispose();
        }
      }
      assert.ok(totals.accepted > 0 && totals.accepted < totals.proposed, `both accepted and rejected drafts were exercised: ${JSON.stringify(totals)}`);
    });
  }

  test(`stories260K, ${threads} thread${threads > 1 ? "s" : ""}: greedy speculative output equals plain decoding (n-gram and draft model)`, async () => {
    const model = await loadModel(defaultModelPath(), { threads, draftModel: defaultModelPath() });
    try {
      const totals = { proposed: 0, accepted: 0 };
      const story = "Once upon a time, there was a little girl named Lily. She loved to play with her ball in the park. One day, her ball rolled away.";
      const high = model.tokenize(`${story} ${story} Once upon a time, there was`);
      const low = model.tokenize("Zebras quietly juggle purple umbrellas");
      const hs = await checkLossless(model, "stories high", high, [{ method: "ngram" }], totals);
      if (threads === 1) await checkLossless(model, "stories low", low, [{ method: "ngram" }, { method: "draft" }], totals);
      assert.ok(hs[0]!.acceptanceRate > 0.3, `n-gram acceptance after a repeated story: ${hs[0]!.acceptanceRate}`);
      assert.ok(totals.accepted > 0 && totals.accepted < totals.proposed, JSON.stringify(totals));
    } finally {
      await model.dispose();
    }
  });
}

test("speculative options: clear errors for a method the model cannot run and for bad values", async () => {
  const model = await loadModel(defaultModelPath());
  try {
    await assert.rejects(model.complete("Hi", { maxTokens: 2, speculative: { method: "mtp" } }), /multi-token-prediction layers/);
    await assert.rejects(model.complete("Hi", { maxTokens: 2, speculative: { method: "draft" } }), /needs a draft model/);
    await assert.rejects(model.complete("Hi", { maxTokens: 2, speculative: { method: "lookahead" as "ngram" } }), /method must be "mtp", "ngram" or "draft"/);
    await assert.rejects(model.complete("Hi", { maxTokens: 2, speculative: { method: "ngram", draftMax: 0 } }), /draftMax must be an integer from 1 to 64, got 0/);
    await assert.rejects(model.complete("Hi", { maxTokens: 2, speculative: { method: "ngram", draftMin: 9, draftMax: 8 } }), /draftMin must be an integer from 0 to draftMax \(8\), got 9/);
    await assert.rejects(model.complete("Hi", { maxTokens: 2, speculative: { method: "ngram", draftPMin: 2 } }), /draftPMin must be between 0 and 1, got 2/);
  } finally {
    await model.dispose();
  }
});

test("a draft model with another vocabulary is refused, naming both files", async () => {
  const a = await synthetic("qwen2", 1);
  await assert.rejects(loadModel(a, { draftModel: defaultModelPath() }), (e: Error) => /draft model's vocabulary differs/.test(e.message) && e.message.includes(a));
});
