// A new grammar compiles in slices (Model.compileGrammarAsync, which generate and the server use):
// on the 151,936-token Qwen vocabulary that takes seconds, and another sequence must keep
// generating meanwhile. Observed through state (tokens streamed between the compile's progress
// reports), never through timing. The sliced compile gives the same masks as the one-piece compile.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadModel } from "../../src/index.ts";
import { TokenGrammar, GrammarConstraint, VocabTrie, jsonSchemaToGbnf } from "../../src/grammar/index.ts";
import { tinyQwenVocabModel } from "./helpers.ts";

test("compiling a new schema does not stall another stream; the sliced compile equals the one-piece compile", async () => {
  const model = await loadModel(await tinyQwenVocabModel(), { threads: 1 });
  const stop = new AbortController();
  try {
    let streamed = 0;
    const other = (async () => {
      try {
        for await (const _ of model.generate("Once upon a time", { temperature: 0, maxTokens: 900, ignoreEos: true, signal: stop.signal })) streamed++;
      } catch (e) {
        if (!stop.signal.aborted) throw e;
      }
    })();
    while (streamed === 0) await new Promise((r) => setImmediate(r));

    const schema = {
      type: "object",
      properties: { name: { type: "string", maxLength: 30 }, age: { type: "integer", minimum: 0, maximum: 150 }, tags: { type: "array", items: { type: "string" }, maxItems: 4 } },
      required: ["name", "age"],
    };
    const gbnf = jsonSchemaToGbnf(schema);
    const progress: { done: number; total: number; streamed: number }[] = [];
    const atStart = streamed;
    const compiling = model.compileGrammarAsync(gbnf, { onProgress: (done, total) => progress.push({ done, total, streamed }) });
    assert.equal(model.grammarsCompiling, 1);
    assert.equal(model.compileGrammarAsync(gbnf), compiling, "a second request for the same grammar shares the compilation");
    const g = await compiling;
    assert.equal(model.grammarsCompiling, 0);
    stop.abort();
    await other;

    assert.ok(progress.length >= 2, `the compile ran in ${progress.length} slice(s)`);
    assert.equal(progress.at(-1)!.done, progress.at(-1)!.total);
    const during = progress.at(-1)!.streamed - atStart;
    assert.ok(during > 0, `the other stream produced ${during} tokens while the grammar compiled (${progress.length} slices)`);
    assert.equal(model.compileGrammar(gbnf), g, "cached once compiled");

    // The trie built in slices (first byte buckets sorted one by one) equals the one-piece build.
    const whole = new VocabTrie(g.trie.pieces, g.trie.endTokens);
    for (const k of ["size", "maxDepth", "byte", "depth", "end", "parent", "token", "sameBytes"] as const) assert.deepEqual(g.trie[k], whole[k], k);

    // The same masks as the one-piece compile along constrained outputs.
    const plain = TokenGrammar.fromGbnf(gbnf, model.tokenizer);
    for (const seed of [1, 2, 3]) {
      const r = await model.complete("Person:", { jsonSchema: schema, temperature: 1, seed, maxTokens: 60 });
      const a = new GrammarConstraint(g);
      const b = new GrammarConstraint(plain);
      a.begin();
      b.begin();
      for (const t of r.tokens) {
        assert.deepEqual(a.allowed(), b.allowed());
        assert.equal(a.forced(), b.forced());
        a.accept(t);
        b.accept(t);
      }
    }
  } finally {
    stop.abort();
    await model.dispose();
  }
});
