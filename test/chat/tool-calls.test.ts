// Tool-call formats: the whole-answer parser and the streaming parser agree however the text is
// cut into pieces; text that is not a call stays content; the grammar's calls parse back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseToolCalls, ToolCallStream, toolCallFormats, toolCallFormatOf, toolCallGrammar, type ToolCallFormat } from "../../src/chat/tool-calls.ts";
import { compileGrammar, GrammarEngine, randomText } from "../../src/grammar/index.ts";

const hermes = toolCallFormats.find((f) => f.name === "hermes")!;
const llama3 = toolCallFormats.find((f) => f.name === "llama3")!;

/** Streams `text` in pieces of `size` characters; returns content and calls as the events give them. */
function streamed(format: ToolCallFormat, text: string, size: number) {
  const s = new ToolCallStream(format);
  const events = [];
  for (let i = 0; i < text.length; i += size) events.push(...s.push(text.slice(i, i + size)));
  events.push(...s.end());
  let content = "";
  const calls: { name: string; arguments: string }[] = [];
  for (const e of events) {
    if (e.kind === "content") content += e.text;
    else if (e.kind === "call") {
      assert.equal(e.index, calls.length, "calls are numbered in order");
      calls.push({ name: e.name, arguments: "" });
    } else calls[e.index]!.arguments += e.text;
  }
  return { content, calls, parsed: s.parsed };
}

function agree(format: ToolCallFormat, text: string): void {
  const whole = parseToolCalls(format, text);
  for (let size = 1; size <= 9; size++) {
    const s = streamed(format, text, size);
    assert.deepEqual(s.calls, whole.calls, `pieces of ${size}`);
    assert.deepEqual(s.parsed, whole.calls);
    assert.equal(s.content.trim() || null, whole.calls.length ? whole.content : (whole.content?.trim() || null), `pieces of ${size}`);
  }
}

test("the family comes from the template: <tool_call> is Hermes/Qwen, Llama 3 headers are Llama 3, else Hermes", () => {
  assert.equal(toolCallFormatOf("... <tool_call>\\n{{ tool_call.name }} ...").name, "hermes");
  assert.equal(toolCallFormatOf("{{ '<|start_header_id|>' + role }}").name, "llama3");
  assert.equal(toolCallFormatOf("{{ messages }}").name, "hermes");
});

test("Hermes: calls between tags become calls with their arguments' own text; the rest is content", () => {
  const text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris \\"}\\" <tool_call>", "days": 2}}\n</tool_call>\n<tool_call>\n{"name": "lamp", "arguments": {}}\n</tool_call>';
  const r = parseToolCalls(hermes, text);
  assert.equal(r.content, "Let me check.");
  assert.deepEqual(r.calls, [
    { name: "get_weather", arguments: '{"city": "Paris \\"}\\" <tool_call>", "days": 2}' },
    { name: "lamp", arguments: "{}" },
  ]);
  agree(hermes, text);
  agree(hermes, "no call here < tool_call > <tool_ca");
  // A tag with no call after it stays text.
  const broken = "before <tool_call> not json </tool_call> after";
  assert.deepEqual(parseToolCalls(hermes, broken), { content: broken, calls: [] });
  assert.equal(streamed(hermes, broken, 3).content, broken);
});

test("Llama 3: the whole answer is one {name, parameters} object, or it is content", () => {
  const text = '  {"name": "get_weather", "parameters": {"city": "Rome}", "days": [1, {"a": 2}]}}';
  assert.deepEqual(parseToolCalls(llama3, text), { content: null, calls: [{ name: "get_weather", arguments: '{"city": "Rome}", "days": [1, {"a": 2}]}' }] });
  agree(llama3, text);
  const prose = 'Sure: {"name": "x", "parameters": {}}';
  assert.deepEqual(parseToolCalls(llama3, prose), { content: prose, calls: [] });
  assert.equal(streamed(llama3, prose, 2).content, prose);
});

test("every text of a tool-call grammar parses back into its calls, whole and streamed", () => {
  const tools = [
    { type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string", maxLength: 12 }, when: { $ref: "#/$defs/day" } }, required: ["city"], $defs: { day: { enum: ["today", "tomorrow"] } } } } },
    { type: "function" as const, function: { name: "ping" } },
  ];
  for (const format of [hermes, llama3]) {
    const gbnf = toolCallGrammar(format, tools);
    const engine = new GrammarEngine(compileGrammar(gbnf));
    for (let seed = 1; seed <= 25; seed++) {
      let x = seed * 2654435761;
      const random = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x / 2 ** 32);
      const text = new TextDecoder().decode(randomText(engine, { random, softLimit: 120, stopChance: 0.3 }));
      assert.ok(text.startsWith(format.trigger.word));
      const r = parseToolCalls(format, text);
      assert.ok(r.calls.length >= 1, text);
      assert.equal(r.content, null, text);
      for (const c of r.calls) {
        assert.ok(["get_weather", "ping"].includes(c.name));
        JSON.parse(c.arguments);
      }
      agree(format, text);
    }
  }
});
