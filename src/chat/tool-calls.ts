// Tool calls in a chat template's own format: the grammar that makes a model call a tool (from the
// tools' parameter schemas), the lazy trigger that starts it when the model may also answer in
// prose, and the parsers that turn the output back into OpenAI-shaped calls (whole, or streamed
// as deltas). One table row per family; the family is read from the template.

import { jsonSchemaToGbnf, JsonSchemaError, type GrammarTrigger } from "../grammar/index.ts";
import type { ChatMessage, ChatTool } from "./messages.ts";

/** Calls are written as the templates show them (`{"name": "f", "arguments": {...}}`: a space after `:` and `,`), the layout the models were trained on. */
const TOOL_CALL_LAYOUT = "compact";

export interface ToolCallFormat {
  readonly name: "hermes" | "llama3";
  /** Text before and after each call's JSON. */
  readonly open: string;
  readonly close: string;
  /** Between two calls of one answer; undefined: one call per answer. */
  readonly separator: string | undefined;
  /** The key of the arguments object next to "name". */
  readonly argumentsKey: "arguments" | "parameters";
  /** Where a call starts in free output (tool_choice auto). */
  readonly trigger: GrammarTrigger;
  /** How a template that has no tool section of its own is told about the tools. */
  readonly instructions: string;
}

/**
 * The families, tried in order against the template source. Hermes/Qwen/MiMo: `<tool_call>` tags
 * around `{"name": ..., "arguments": ...}`; Llama 3.1+: a bare `{"name": ..., "parameters": ...}`
 * as the whole answer. A template without either gets the Hermes format (and its instructions).
 */
export const toolCallFormats: readonly (ToolCallFormat & { readonly detect: (template: string) => boolean })[] = [
  {
    name: "hermes",
    detect: (t) => t.includes("<tool_call>"),
    open: "<tool_call>\n",
    close: "\n</tool_call>",
    separator: "\n",
    argumentsKey: "arguments",
    trigger: { word: "<tool_call>" },
    instructions:
      "You may call one or more functions to assist with the user query. The functions are described within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n" +
      'For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>',
  },
  {
    name: "llama3",
    detect: (t) => t.includes("<|start_header_id|>"),
    open: "",
    close: "",
    separator: undefined,
    argumentsKey: "parameters",
    trigger: { word: "{", atStart: true },
    instructions:
      "You have access to the following functions:\n\n{tools}\n\n" +
      'To call a function, respond only with a JSON object in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.',
  },
];

/** The tool-call format of a chat template (its source text). */
export function toolCallFormatOf(templateSource: string): ToolCallFormat {
  return toolCallFormats.find((f) => f.detect(templateSource)) ?? toolCallFormats[0]!;
}

export type ToolChoice = "none" | "auto" | "required" | { readonly type: "function"; readonly function: { readonly name: string } };

/** A tool call as OpenAI returns it (arguments: the model's JSON text). */
export interface ParsedToolCall {
  readonly name: string;
  readonly arguments: string;
}

/**
 * GBNF for tool calls in `format`: one call (or several in a row when `parallel` and the format
 * allows it) to one of `tools`, arguments valid under the tool's parameter schema. The grammar's
 * text starts with the format's trigger word, so the same grammar serves tool_choice "required"
 * (from the start) and "auto" (lazily, from the trigger). JsonSchemaError names the tool's schema.
 * With `answer` (a JSON Schema): the calls, or instead a JSON text valid under that schema (what
 * response_format asks of an answer that calls no tool); that grammar is not lazy.
 */
export function toolCallGrammar(format: ToolCallFormat, tools: readonly ChatTool[], parallel = true, answer?: unknown): string {
  if (tools.length === 0) throw new RangeError("a tool-call grammar needs at least one tool");
  const key = format.argumentsKey;
  // With an answer schema, both sit under $defs of one schema (one set of rule names) and are the
  // two alternatives of its root: "#/$defs/calls/anyOf/i/..." and "#/$defs/answer/...".
  const callsAt = answer === undefined ? "#" : "#/$defs/calls";
  const calls = tools.map((t, i) => ({
    type: "object",
    properties: {
      name: { const: t.function.name },
      [key]: rebaseRefs(t.function.parameters ?? { type: "object", properties: {} }, `${callsAt}/anyOf/${i}/properties/${key}`),
    },
    required: ["name", key],
  }));
  let json: string;
  let callRule = "tool-call-json";
  let answerRule = "";
  try {
    if (answer === undefined) json = jsonSchemaToGbnf({ anyOf: calls }, { rootName: callRule, whitespace: TOOL_CALL_LAYOUT });
    else {
      const both = {
        $defs: { calls: { anyOf: calls }, answer: rebaseRefs(answer, "#/$defs/answer") },
        anyOf: [{ $ref: "#/$defs/calls" }, { $ref: "#/$defs/answer" }],
      };
      json = jsonSchemaToGbnf(both, { rootName: "call-or-answer", whitespace: TOOL_CALL_LAYOUT });
      // "call-or-answer ::= calls | answer" (names made unique by the converter).
      const m = /^call-or-answer ::= ([A-Za-z0-9-]+) \| ([A-Za-z0-9-]+)$/m.exec(json);
      if (!m) throw new Error(`tool-call grammar: unexpected converter output ${JSON.stringify(json.split("\n")[0])}`);
      [callRule, answerRule] = [m[1]!, m[2]!];
    }
  } catch (e) {
    if (!(e instanceof JsonSchemaError)) throw e;
    // "JSON Schema #/anyOf/2/properties/arguments/x: ..." -> the tool and the place in its parameters.
    const m = /^JSON Schema #(?:\/\$defs\/calls)?\/anyOf\/(\d+)(?:\/properties\/(?:arguments|parameters))?(\S*): ([\s\S]*)$/.exec(e.message);
    if (m) throw new JsonSchemaError(`tools[${m[1]}].function.parameters${m[2] ? ` at ${m[2]}` : ""}: ${m[3]}`);
    const a = /^JSON Schema #\/\$defs\/answer(\S*): ([\s\S]*)$/.exec(e.message);
    if (a) throw new JsonSchemaError(`JSON Schema #${a[1]}: ${a[2]}`);
    throw e;
  }
  const one = `${gbnfLiteral(format.open)} ${callRule} ${gbnfLiteral(format.close)}`.replace(/"" /g, "").replace(/ ""$/, "");
  const calling = parallel && format.separator !== undefined ? `tool-call (${gbnfLiteral(format.separator)} tool-call)*` : "tool-call";
  const root = answer === undefined ? calling : `${calling.includes(" ") ? `(${calling})` : calling} | ${answerRule}`;
  return `root ::= ${root}\ntool-call ::= ${one}\n${json}`;
}

/**
 * The generation options that make a model call tools as `choice` says: none for "none"; the
 * calls' grammar from the start for "required" or a named function (that tool only); the same
 * grammar lazily, from the format's trigger on, for "auto". "auto" with an `answer` schema (the
 * request's response_format): from the start, either the calls or a JSON answer valid under it,
 * as OpenAI answers such a request (content that follows the schema when no tool is called).
 */
export function toolCallConstraint(
  format: ToolCallFormat,
  tools: readonly ChatTool[],
  choice: ToolChoice,
  parallel = true,
  answer?: unknown,
): { grammar: string; grammarTriggers: readonly GrammarTrigger[] | undefined } | undefined {
  if (choice === "none") return undefined;
  let chosen = tools;
  if (typeof choice === "object") {
    chosen = tools.filter((t) => t.function.name === choice.function.name);
    if (chosen.length === 0) throw new RangeError(`tool_choice names ${JSON.stringify(choice.function.name)}, which is not one of the tools`);
  } else if (choice !== "auto" && choice !== "required") throw new RangeError(`tool_choice must be "none", "auto", "required" or { type: "function", function: { name } }, got ${JSON.stringify(choice)}`);
  // "auto" with an answer schema (response_format): calls or a JSON answer, from the first token.
  const withAnswer = choice === "auto" && answer !== undefined;
  let grammar: string;
  try {
    grammar = toolCallGrammar(format, chosen, parallel, withAnswer ? answer : undefined);
  } catch (e) {
    // Name the tool by its place in the whole list.
    if (e instanceof JsonSchemaError && chosen !== tools) throw new JsonSchemaError(e.message.replace(/^tools\[0\]/, `tools[${tools.indexOf(chosen[0]!)}]`));
    throw e;
  }
  return { grammar, grammarTriggers: choice === "auto" && !withAnswer ? [format.trigger] : undefined };
}

/** A schema placed at `base` inside a larger one: its local $refs ("#/...") re-pointed there. */
function rebaseRefs(schema: unknown, base: string): unknown {
  if (Array.isArray(schema)) return schema.map((s) => rebaseRefs(s, base));
  if (typeof schema !== "object" || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] = k === "$ref" && typeof v === "string" && v.startsWith("#") ? base + v.slice(1) : rebaseRefs(v, base);
  }
  return out;
}

function gbnfLiteral(text: string): string {
  return JSON.stringify(text);
}

/** The end of the JSON value starting at `i` (after whitespace), or -1 if it does not end within `text`. */
function valueEnd(text: string, i: number): number {
  let depth = 0;
  let inString = false;
  for (let k = i; k < text.length; k++) {
    const c = text[k]!;
    if (inString) {
      if (c === "\\") k++;
      else if (c === '"') {
        inString = false;
        if (depth === 0) return k + 1;
      }
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return k + 1;
      if (depth < 0) return -1;
    } else if (depth === 0 && /[\s,]/.test(c) && k > i) return k;
  }
  return -1;
}

/** `{"name": "...", "<key>": <value>}` -> the call with the arguments' own text, or undefined. */
function parseCall(json: string, key: string): ParsedToolCall | undefined {
  let obj: unknown;
  try {
    obj = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return undefined;
  const o = obj as Record<string, unknown>;
  if (typeof o.name !== "string" || typeof o[key] !== "object" || o[key] === null || Array.isArray(o[key])) return undefined;
  const m = new RegExp(`"${key}"\\s*:\\s*`).exec(json);
  let args = JSON.stringify(o[key]);
  if (m) {
    const start = m.index + m[0].length;
    const end = valueEnd(json, start);
    if (end > start) args = json.slice(start, end);
  }
  return { name: o.name, arguments: args };
}

/**
 * Splits a whole answer into its text and its tool calls. Text outside the calls stays content
 * (trimmed; null when there is none and there are calls). A call that does not parse stays text.
 */
export function parseToolCalls(format: ToolCallFormat, text: string): { content: string | null; calls: ParsedToolCall[] } {
  const calls: ParsedToolCall[] = [];
  if (format.open === "") {
    const t = text.trim();
    const call = t.startsWith("{") ? parseCall(t, format.argumentsKey) : undefined;
    return call ? { content: null, calls: [call] } : { content: text, calls };
  }
  const word = format.trigger.word;
  let content = "";
  let at = 0;
  for (;;) {
    const i = text.indexOf(word, at);
    if (i < 0) break;
    const body = i + word.length;
    const closeTag = format.close.trim();
    const j = text.indexOf(closeTag, body);
    const call = parseCall(text.slice(body, j < 0 ? text.length : j).trim(), format.argumentsKey);
    if (!call) {
      content += text.slice(at, body);
      at = body;
      continue;
    }
    calls.push(call);
    content += text.slice(at, i);
    at = j < 0 ? text.length : j + closeTag.length;
  }
  content += text.slice(at);
  if (calls.length === 0) return { content: text, calls };
  const trimmed = content.trim();
  return { content: trimmed === "" ? null : trimmed, calls };
}

/** What a streamed answer adds: content text, the start of a call, or a piece of a call's arguments. */
export type ToolStreamEvent =
  | { readonly kind: "content"; readonly text: string }
  | { readonly kind: "call"; readonly index: number; readonly name: string }
  | { readonly kind: "arguments"; readonly index: number; readonly text: string };

/**
 * The streaming side of parseToolCalls: text comes in pieces, events go out as soon as they are
 * certain. Text that may be the start of a call is held back until it is known; a call's name is
 * sent once complete, its arguments as they arrive. Concatenated, the argument pieces of a call
 * are its arguments' text.
 */
export class ToolCallStream {
  private readonly format: ToolCallFormat;
  /** Text received and not yet turned into events. */
  private buf = "";
  private mode: "content" | "head" | "arguments" | "tail" | "text" = "content";
  /** Content events sent so far (the llama3 format calls only at the start). */
  private sentContent = false;
  private calls = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  readonly parsed: ParsedToolCall[] = [];
  private name = "";
  private args = "";

  constructor(format: ToolCallFormat) {
    this.format = format;
  }

  /** Calls seen so far. */
  get count(): number {
    return this.calls;
  }

  push(text: string): ToolStreamEvent[] {
    this.buf += text;
    const out: ToolStreamEvent[] = [];
    for (let progress = true; progress; ) progress = this.step(out, false);
    return out;
  }

  /** The end of the answer: whatever is held back. */
  end(): ToolStreamEvent[] {
    const out: ToolStreamEvent[] = [];
    for (let progress = true; progress; ) progress = this.step(out, true);
    if (this.mode === "arguments" && this.buf !== "") {
      out.push({ kind: "arguments", index: this.calls - 1, text: this.buf });
      this.args += this.buf;
    }
    if (this.mode === "arguments" || this.mode === "tail") this.parsed.push({ name: this.name, arguments: this.args });
    if ((this.mode === "content" || this.mode === "head" || this.mode === "text") && this.buf !== "") this.content(out, this.buf);
    this.buf = "";
    return out;
  }

  private content(out: ToolStreamEvent[], text: string): void {
    if (text === "") return;
    out.push({ kind: "content", text });
    if (text.trim() !== "") this.sentContent = true;
  }

  private step(out: ToolStreamEvent[], final: boolean): boolean {
    const f = this.format;
    const word = f.trigger.word;
    switch (this.mode) {
      case "text":
        this.content(out, this.buf);
        this.buf = "";
        return false;
      case "content": {
        if (f.trigger.atStart) {
          if (this.sentContent || this.calls > 0) {
            this.mode = "text";
            return true;
          }
          const lead = this.buf.length - this.buf.trimStart().length;
          if (this.buf.startsWith(word, lead)) {
            this.buf = this.buf.slice(lead);
            this.mode = "head";
            return true;
          }
          if (lead === this.buf.length && !final) return false;
          this.mode = "text";
          return true;
        }
        const i = this.buf.indexOf(word);
        if (i >= 0) {
          this.content(out, this.buf.slice(0, i));
          this.buf = this.buf.slice(i + word.length);
          this.mode = "head";
          return true;
        }
        // Hold back a tail that could be the beginning of the word.
        let hold = 0;
        for (let k = Math.min(word.length - 1, this.buf.length); k > 0; k--) {
          if (word.startsWith(this.buf.slice(this.buf.length - k))) {
            hold = k;
            break;
          }
        }
        if (final) hold = 0;
        const send = this.buf.slice(0, this.buf.length - hold);
        this.content(out, send);
        this.buf = this.buf.slice(send.length);
        return false;
      }
      case "head": {
        const key = f.argumentsKey;
        const m = new RegExp(`^\\s*\\{\\s*"name"\\s*:\\s*"((?:[^"\\\\]|\\\\.)*)"\\s*,\\s*"${key}"\\s*:\\s*(?=\\S)`).exec(this.buf);
        if (!m) {
          // Not (yet) a call's head. Past any plausible head length it never will be: text.
          if (final || this.buf.length > 4096) {
            this.content(out, (f.open === "" ? "" : word) + this.buf);
            this.buf = "";
            this.mode = f.trigger.atStart ? "text" : "content";
            return !final;
          }
          return false;
        }
        let name: string;
        try {
          name = JSON.parse(`"${m[1]}"`) as string;
        } catch {
          name = m[1]!;
        }
        this.name = name;
        this.args = "";
        out.push({ kind: "call", index: this.calls, name });
        this.calls++;
        this.buf = this.buf.slice(m[0].length);
        this.depth = 0;
        this.inString = false;
        this.escaped = false;
        this.mode = "arguments";
        return true;
      }
      case "arguments": {
        // The arguments object's own text, through to its closing brace (scanned across pieces).
        let end = -1;
        for (let k = 0; k < this.buf.length && end < 0; k++) {
          const c = this.buf[k]!;
          if (this.inString) {
            if (this.escaped) this.escaped = false;
            else if (c === "\\") this.escaped = true;
            else if (c === '"') this.inString = false;
          } else if (c === '"') this.inString = true;
          else if (c === "{" || c === "[") this.depth++;
          else if (c === "}" || c === "]") {
            this.depth--;
            if (this.depth <= 0) end = k + 1;
          }
        }
        const piece = end < 0 ? this.buf : this.buf.slice(0, end);
        if (piece !== "") {
          out.push({ kind: "arguments", index: this.calls - 1, text: piece });
          this.args += piece;
        }
        this.buf = this.buf.slice(piece.length);
        if (end < 0) return false;
        this.parsed.push({ name: this.name, arguments: this.args });
        this.mode = "tail";
        return true;
      }
      case "tail": {
        // The rest of the call: "}" and the closing tag, then maybe the next call.
        const closeTag = f.close.trim();
        const closeBrace = this.buf.indexOf("}");
        if (closeBrace < 0) return false;
        if (closeTag === "") {
          this.buf = this.buf.slice(closeBrace + 1);
          this.mode = "text";
          return true;
        }
        const j = this.buf.indexOf(closeTag, closeBrace);
        if (j < 0) return false;
        this.buf = this.buf.slice(j + closeTag.length);
        this.mode = "content";
        return true;
      }
    }
  }
}

/**
 * Messages for a template that does not render tools itself: the tools and the call format go
 * into the system prompt, an assistant's calls into its text, and tool results into user turns
 * (`<tool_response>` tags), so that a conversation with tools renders through any template.
 */
export function toolPolyfill(
  messages: readonly ChatMessage[],
  tools: readonly ChatTool[] | undefined,
  format: ToolCallFormat,
  template: string,
): ChatMessage[] {
  const rendersTools = /\btools\b/.test(template);
  const rendersCalls = template.includes("tool_calls");
  const rendersToolRole = /["']tool["']/.test(template);
  let out = messages.map((m): ChatMessage => {
    if (m.role === "assistant" && m.tool_calls?.length && !rendersCalls) {
      const calls = m.tool_calls.map((c) => {
        const args = typeof c.function.arguments === "string" ? c.function.arguments : JSON.stringify(c.function.arguments);
        return `${format.open}{"name": ${JSON.stringify(c.function.name)}, "${format.argumentsKey}": ${args}}${format.close}`;
      });
      return { role: "assistant", content: [m.content, ...calls].filter((s) => s !== "").join("\n") };
    }
    if (m.role === "tool" && !rendersToolRole) return { role: "user", content: `<tool_response>\n${m.content}\n</tool_response>` };
    return m;
  });
  if (tools && tools.length > 0 && !rendersTools) {
    const text = format.instructions.replace("{tools}", tools.map((t) => JSON.stringify(t)).join("\n"));
    out = out[0]?.role === "system" ? [{ ...out[0], content: `${out[0].content}\n\n${text}` }, ...out.slice(1)] : [{ role: "system", content: text }, ...out];
  }
  return out;
}
