// Constrained generation end to end on real models: every output validates with ajv; jump-forward
// gives the same tokens as step-by-step decoding with the same seed and saves forward passes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadModel, defaultModelPath } from "../../src/index.ts";
import { JsonSchemaError } from "../../src/grammar/index.ts";
import { schemaCorpus, tinyQwenVocabModel, validateCorpus } from "./helpers.ts";
import { commandSchema } from "../../src/cli/bench-command.ts";

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

test("Qwen vocabulary: one forward pass per sampled token (the forced opening joins the prompt's pass; a token the mask alone allows is forced)", async () => {
  const model = await loadModel(await tinyQwenVocabModel(), { threads: 1 });
  try {
    // No Qwen token joins a space and a digit: the mask after `"v":` allows ` ` only, so the space
    // (which the forced text alone leaves to sampling, as it could merge with what follows) is forced.
    const g = model.compileGrammar('root ::= "{\\"v\\": " [0-9] [0-9]? "}"\n');
    const forced = g.forced(g.initial);
    assert.equal(model.tokenizer.decode([...forced]), '{"v": ');
    let passes = 0;
    const tr = (model as unknown as { transformer: { forward: (...a: unknown[]) => unknown } }).transformer;
    const forward = tr.forward.bind(tr);
    tr.forward = (...a: unknown[]) => (passes++, forward(...a));
    for (const prompt of ["Command: lights on\nAction: ", "Command: music off\nAction: "]) {
      for (const schema of [commandSchema, { type: "object", properties: { v: { type: "integer", minimum: 0, maximum: 99 } }, required: ["v"], additionalProperties: false }]) {
        passes = 0;
        const jump = await model.complete(prompt, { jsonSchema: schema, temperature: 0, maxTokens: 64 });
        const jumpPasses = passes;
        passes = 0;
        const step = await model.complete(prompt, { jsonSchema: schema, temperature: 0, maxTokens: 64, jumpForward: false });
        assert.deepEqual(jump.tokens, step.tokens);
        assert.equal(jump.finishReason, "stop");
        JSON.parse(jump.text);
        const sampled = jump.stats.generatedTokens - jump.stats.forcedTokens;
        // The last token is forced (`}`) and ends the text: no pass for it. A guessed token that
        // sampling picks (` "` before an enum value) rode in the pass before: no pass of its own.
        assert.equal(jumpPasses, sampled - jump.stats.guessesKept, `${jump.text}: ${jumpPasses} passes for ${sampled} sampled tokens, ${jump.stats.guessesKept} guessed`);
        if (schema === commandSchema) assert.ok(jump.stats.guessesKept >= 1, `${jump.text}: no guess kept`);
        assert.equal(step.stats.guessesKept, 0);
        assert.equal(passes, jump.stats.generatedTokens, "step by step: one pass per token");
      }
    }
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

test("Qwen vocabulary: a guessed token rides in the pass before; kept or dropped, the output equals step-by-step with the same seed", async () => {
  const model = await loadModel(await tinyQwenVocabModel(), { threads: 2 });
  try {
    // The forced text `": "` ends in ` "`, which could merge with the value's letters (` "ab`): it is
    // held back and guessed. A random model samples ` "` or a merged token: both cases occur.
    const grammar = 'root ::= "{\\"v\\": \\"" [a-z]{1,6} "\\", \\"w\\": \\"" [a-z]{1,6} "\\"}"\n';
    let kept = 0;
    let runs = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const o = { grammar, temperature: 1.2, seed, maxTokens: 40 };
      const jump = await model.complete("JSON:", o);
      const step = await model.complete("JSON:", { ...o, jumpForward: false });
      assert.deepEqual(jump.tokens, step.tokens, `seed ${seed}: ${jump.text} vs ${step.text}`);
      assert.match(jump.text, /^\{"v": "[a-z]{1,6}", "w": "[a-z]{1,6}"\}$/);
      kept += jump.stats.guessesKept;
      runs += 2;
    }
    assert.ok(kept > 0 && kept < runs, `${kept} of ${runs} guesses kept`);
  } finally {
    await model.dispose();
  }
});
