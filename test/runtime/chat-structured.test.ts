// Structured output in the chat API: model.chat and ChatSession take jsonSchema / grammar and tool
// choices; `mimo chat --json-schema` constrains every answer; a lazy grammar starts at its trigger.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { loadModel, defaultModelPath, ChatSession, parseToolCalls } from "../../src/index.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const ajv = new Ajv({ strict: false });
const schema = { type: "object", properties: { mood: { enum: ["happy", "sad"] }, score: { type: "integer", minimum: 1, maximum: 5 } }, required: ["mood", "score"] };

async function drain<T, R>(it: AsyncGenerator<T, R>): Promise<R> {
  for (;;) {
    const s = await it.next();
    if (s.done) return s.value;
  }
}

test("model.chat and ChatSession.send take jsonSchema and grammar; a tool choice gives a parsable call", async () => {
  const model = await loadModel(defaultModelPath(), { threads: 1, contextSize: 1024, onWarning: () => {} });
  try {
    const messages = [{ role: "user" as const, content: "How are you?" }];
    const r = await drain(model.chat(messages, { jsonSchema: schema, maxTokens: 40, seed: 1 }));
    assert.ok(ajv.validate(schema, JSON.parse(r.text)), r.text);

    const session = new ChatSession(model, { system: "Answer yes or no." });
    const a = await drain(session.send("Is it sunny?", { grammar: 'root ::= "yes" | "no"', maxTokens: 8, seed: 2 }));
    assert.match(a.text, /^(yes|no)$/);
    const b = await drain(session.send("And tomorrow?", { jsonSchema: schema, maxTokens: 40, seed: 3 }));
    assert.ok(ajv.validate(schema, JSON.parse(b.text)), b.text);
    assert.equal(session.messages.length, 5);

    const tools = [{ type: "function" as const, function: { name: "rate", parameters: schema } }];
    const c = await drain(model.chat(messages, { tools, toolChoice: "required", maxTokens: 80, seed: 4 }));
    const parsed = parseToolCalls(model.chatTemplate.toolFormat, c.text);
    assert.equal(parsed.calls.length >= 1, true, c.text);
    assert.equal(parsed.calls[0]!.name, "rate");
    assert.ok(ajv.validate(schema, JSON.parse(parsed.calls[0]!.arguments)));
    // tools + jsonSchema (toolChoice auto): the answer is calls, or JSON under the schema.
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 12 && kinds.size < 2; seed++) {
      const r = await drain(model.chat(messages, { tools, jsonSchema: schema, maxTokens: 80, seed, temperature: 1.5 }));
      const p = parseToolCalls(model.chatTemplate.toolFormat, r.text);
      if (p.calls.length > 0) {
        kinds.add("calls");
        for (const call of p.calls) assert.ok(ajv.validate(schema, JSON.parse(call.arguments)), call.arguments);
      } else {
        kinds.add("answer");
        assert.ok(ajv.validate(schema, JSON.parse(r.text)), r.text);
      }
    }
    assert.equal(kinds.size, 2, `seen: ${[...kinds]}`);
    assert.throws(() => model.chat(messages, { tools, toolChoice: "required", jsonSchema: schema }), /makes the answer tool calls only/);
    assert.throws(() => model.chat(messages, { tools, toolChoice: "auto", grammar: "root ::= \"x\"" }), /GBNF grammar cannot be combined with a toolChoice/);
    assert.throws(() => model.chat(messages, { toolChoice: "required" }), /needs tools/);
  } finally {
    await model.dispose();
  }
});

test("a lazy grammar leaves the output alone until its trigger word, then constrains what follows", async () => {
  const model = await loadModel(defaultModelPath(), { threads: 1, onWarning: () => {} });
  try {
    const free = await model.complete("Once upon a time", { maxTokens: 60, temperature: 0 });
    // A word the model writes on its own (greedy), a few words in.
    const word = free.text.split(" ").slice(3).find((w) => /^[a-z]{3,}$/.test(w))!;
    const at = free.text.indexOf(" " + word) + 1;
    assert.ok(at > 0);
    const lazy = await model.complete("Once upon a time", { grammar: `root ::= "${word}" " [" [0-9]{3} "]"`, grammarTriggers: [word], maxTokens: 60, temperature: 0 });
    assert.equal(lazy.text.slice(0, at), free.text.slice(0, at), "free text before the trigger");
    assert.match(lazy.text.slice(at), new RegExp(`^${word} \\[[0-9]{3}\\]$`));
    assert.equal(lazy.finishReason, "stop");
    // At the start only: the same word later in the text does not trigger.
    const atStart = await model.complete("Once upon a time", { grammar: `root ::= "${word}" [0-9]`, grammarTriggers: [{ word, atStart: true }], maxTokens: 60, temperature: 0 });
    assert.equal(atStart.text, free.text);
    await assert.rejects(model.complete("x", { grammarTriggers: ["a"] }), /grammarTriggers need a grammar/);
  } finally {
    await model.dispose();
  }
});

test("mimo chat --json-schema: every answer is valid JSON; a bad schema is one clear line before the chat starts", async () => {
  const dir = tempDir("mimo-chat-schema-");
  const file = join(dir, "schema.json");
  writeFileSync(file, JSON.stringify(schema));
  const bad = join(dir, "bad.json");
  writeFileSync(bad, JSON.stringify({ type: "object", properties: { a: { type: "string", not: {} } } }));
  const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
  const run = (args: string[], input: string) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, [entry, "chat", "-t", "1", "--no-stats", "-n", "40", ...args], { stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      child.on("exit", (code) => resolve({ code, out, err }));
      child.stdin.end(input);
    });
  const ok = await run(["--json-schema", file, "-s", "5"], "How are you?\nAnd now?\n");
  assert.equal(ok.code, 0, ok.err);
  const answers = ok.out.trim().split("\n");
  assert.equal(answers.length, 2);
  for (const a of answers) assert.ok(ajv.validate(schema, JSON.parse(a)), a);
  const no = await run(["--json-schema", bad], "Hi\n");
  assert.equal(no.code, 1);
  assert.match(no.err, /--json-schema .*bad\.json: JSON Schema #\/properties\/a: unsupported keyword "not"/);
  assert.equal(no.err.trim().split("\n").filter((l) => !l.startsWith("mimo: warning:")).length, 1, no.err);
});
