// The sparse output head under a grammar: when the mask allows few tokens, only their rows of the
// output matrix are computed. The whole constrained generation must be unchanged: the same tokens
// and text as computing every logit (sparseHead: false), greedy and sampled with the same seed,
// with penalties, on 1 and 2 threads, alone and beside another sequence in the same passes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadModel, defaultModelPath, type GenerateOptions, type Model } from "../../src/index.ts";
import { commandSchema } from "../../src/cli/bench-command.ts";
import { schemaCorpus, tinyQwenVocabModel } from "./helpers.ts";

async function same(model: Model, prompt: string, o: GenerateOptions, label: string): Promise<{ sparseRows: number; fullRows: number }> {
  const sparse = await model.complete(prompt, o);
  const full = await model.complete(prompt, { ...o, sparseHead: false });
  assert.deepEqual(sparse.tokens, full.tokens, `${label}: ${sparse.text} vs ${full.text}`);
  assert.equal(sparse.text, full.text);
  assert.equal(sparse.finishReason, full.finishReason);
  assert.ok(sparse.stats.outputHeadRows <= full.stats.outputHeadRows, label);
  return { sparseRows: sparse.stats.outputHeadRows, fullRows: full.stats.outputHeadRows };
}

test("Qwen vocabulary (Q8_0 head): the sparse head gives the same generations as the full head, 1 and 2 threads", async () => {
  const path = await tinyQwenVocabModel();
  const schemas = [commandSchema, ...schemaCorpus.filter((_, i) => i % 6 === 1).map((s) => s.schema)];
  for (const threads of [1, 2]) {
    const model = await loadModel(path, { threads });
    try {
      let sparseRows = 0;
      let fullRows = 0;
      for (const [k, schema] of schemas.entries()) {
        for (const o of [
          { temperature: 0 },
          { temperature: 0.9, seed: 11 + k },
          { temperature: 0.8, seed: 3, repeatPenalty: 1.3, presencePenalty: 0.5, topK: 0, minP: 0.02 },
        ] as GenerateOptions[]) {
          const r = await same(model, "Command: lights on\nAction: ", { jsonSchema: schema, maxTokens: 60, ...o }, `x${threads} schema ${k} ${JSON.stringify(o)}`);
          if (schema === commandSchema) {
            sparseRows += r.sparseRows;
            fullRows += r.fullRows;
          }
        }
      }
      // The edge scenario's schema: most sampled positions allow few tokens (enum values, digits, punctuation).
      assert.ok(sparseRows * 4 < fullRows, `head rows: ${sparseRows} sparse vs ${fullRows} full`);
    } finally {
      await model.dispose();
    }
  }
});

test("sparse head beside another sequence in the same passes: each output equals its run alone", async () => {
  const model = await loadModel(await tinyQwenVocabModel(), { threads: 2, parallel: 2 });
  try {
    const constrained: GenerateOptions = { jsonSchema: commandSchema, temperature: 0.7, seed: 9, maxTokens: 40 };
    const free: GenerateOptions = { temperature: 0.7, seed: 4, maxTokens: 24 };
    const aloneC = await model.complete("Command: music off\nAction: ", { ...constrained, sparseHead: false });
    const aloneF = await model.complete("Once upon a time", free);
    const [c, f] = await Promise.all([model.complete("Command: music off\nAction: ", constrained), model.complete("Once upon a time", free)]);
    assert.deepEqual(c.tokens, aloneC.tokens);
    assert.deepEqual(f.tokens, aloneF.tokens);
    assert.ok(c.stats.outputHeadRows < aloneC.stats.outputHeadRows);
    // Two constrained sequences side by side.
    const [c1, c2] = await Promise.all([model.complete("Command: music off\nAction: ", constrained), model.complete("Command: heat up\nAction: ", { ...constrained, seed: 10 })]);
    assert.deepEqual(c1.tokens, aloneC.tokens);
    assert.deepEqual(c2.tokens, (await model.complete("Command: heat up\nAction: ", { ...constrained, seed: 10, sparseHead: false })).tokens);
  } finally {
    await model.dispose();
  }
});

test("stories260K: sparse and full head give the same constrained stories (GBNF, sampled and greedy)", async () => {
  const model = await loadModel(defaultModelPath(), { threads: 1 });
  try {
    const grammar = 'root ::= " The " ("cat" | "dog" | "bird") " is " ("big" | "small" | "happy") "." (" It " ("ran" | "sat") ".")?\n';
    let sparseRows = 0;
    let fullRows = 0;
    for (let seed = 1; seed <= 6; seed++) {
      const r = await same(model, "Once upon a time", { grammar, temperature: seed === 1 ? 0 : 1, seed, maxTokens: 40, repeatPenalty: seed % 2 ? 1 : 1.2 }, `seed ${seed}`);
      sparseRows += r.sparseRows;
      fullRows += r.fullRows;
    }
    assert.ok(sparseRows < fullRows, `head rows: ${sparseRows} sparse vs ${fullRows} full`);
  } finally {
    await model.dispose();
  }
});
