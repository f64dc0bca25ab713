// Request parsing for the OpenAI endpoints: each body becomes a typed request, every field checked
// with a 400 naming it. One place builds the generation options (sampler settings) of a choice:
// new request fields (response_format, tools, logit_bias ...) are read in parseCommon and turned
// into options in generateOptionsFor.

import type { ChatMessage, ChatTool } from "../chat/messages.ts";
import { checkMessages, checkTools, ChatInputError } from "../chat/messages.ts";
import type { GenerateOptions } from "../runtime/model.ts";
import { JsonSchemaError, jsonSchemaToGbnf, type GrammarTrigger } from "../grammar/index.ts";
import type { ToolChoice } from "../chat/tool-calls.ts";
import type { SamplingOptions } from "../sampling/options.ts";
import { ApiError, badParam } from "./errors.ts";

/** Reads typed fields of a JSON object, throwing a 400 that names the field. */
export class Fields {
  readonly body: Record<string, unknown>;
  constructor(body: unknown, what: string) {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw new ApiError(400, `the request body must be a JSON object (${what}), got ${kind(body)}`, { code: "invalid_body" });
    this.body = body as Record<string, unknown>;
  }

  private get(name: string): unknown {
    const v = this.body[name];
    return v === null ? undefined : v;
  }

  number(name: string, lo: number, hi: number): number | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) throw badParam(name, `must be a number, got ${kind(v)}`, "invalid_type");
    if (!(v >= lo && v <= hi)) throw badParam(name, `must be between ${lo} and ${hi}, got ${v}`);
    return v;
  }

  integer(name: string, lo: number, hi: number): number | undefined {
    const v = this.number(name, -Infinity, Infinity);
    if (v === undefined) return undefined;
    if (!Number.isInteger(v)) throw badParam(name, `must be an integer, got ${v}`, "invalid_type");
    if (!(v >= lo && v <= hi)) throw badParam(name, `must be an integer from ${lo} to ${hi}, got ${v}`);
    return v;
  }

  boolean(name: string): boolean | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") throw badParam(name, `must be true or false, got ${kind(v)}`, "invalid_type");
    return v;
  }

  string(name: string): string | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw badParam(name, `must be a string, got ${kind(v)}`, "invalid_type");
    return v;
  }

  object(name: string): Record<string, unknown> | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) throw badParam(name, `must be an object, got ${kind(v)}`, "invalid_type");
    return v as Record<string, unknown>;
  }

  raw(name: string): unknown {
    return this.get(name);
  }

  /** A field mimo does not implement: a 400 saying so, unless it holds the value that means "off". */
  unsupported(name: string, isOff: (v: unknown) => boolean, why: string): void {
    const v = this.get(name);
    if (v !== undefined && !isOff(v)) throw badParam(name, `is not supported by mimo (${why})`, "unsupported_parameter");
  }
}

export function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v)}`;
  if (typeof v === "number") return `the number ${v}`;
  return typeof v;
}

/** What the chat and text completion endpoints share. */
export interface CommonRequest {
  readonly model: string | undefined;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly n: number;
  /** undefined: until end of generation or the context is full. */
  readonly maxTokens: number | undefined;
  readonly stop: readonly string[];
  readonly seed: number | undefined;
  readonly sampling: SamplingOptions;
  /** Alternatives per token when log-probabilities are asked for, else undefined. */
  readonly logprobs: number | undefined;
  readonly ignoreEos: boolean;
  /** The output's grammar (GBNF): from response_format, llama.cpp's grammar / json_schema, or the tools. */
  readonly grammar: string | undefined;
  /** With these, the grammar is lazy (tool_choice auto: free text until a call starts). */
  readonly grammarTriggers?: readonly GrammarTrigger[];
  /** Which request field the grammar came from (for errors while compiling it). */
  readonly grammarParam?: string;
  /** The JSON Schema the grammar was made from (response_format, json_schema); with tools, the answer's alternative to a call. */
  readonly grammarSchema?: unknown;
}

export interface ChatRequest extends CommonRequest {
  readonly messages: ChatMessage[];
  readonly tools: ChatTool[] | undefined;
  /** "none" without tools. */
  readonly toolChoice: ToolChoice;
  /** Several calls in one answer (OpenAI's parallel_tool_calls). Default true. */
  readonly parallelToolCalls: boolean;
  readonly templateVariables: Record<string, unknown> | undefined;
}

export interface CompletionRequest extends CommonRequest {
  /** One prompt per entry: text, or token ids. */
  readonly prompts: (string | number[])[];
}

/** Most choices (`n`) one request may ask for. */
export const MAX_CHOICES = 16;

function parseCommon(f: Fields, maxTokensField: "max_tokens" | "max_completion_tokens" | "both"): CommonRequest {
  const stop = f.raw("stop");
  let stops: string[] = [];
  if (typeof stop === "string") stops = [stop];
  else if (Array.isArray(stop)) {
    if (stop.length > 4) throw badParam("stop", `holds at most 4 strings, got ${stop.length}`);
    stops = stop.map((s: unknown, i) => {
      if (typeof s !== "string") throw badParam(`stop[${i}]`, `must be a string, got ${kind(s)}`, "invalid_type");
      return s;
    });
  } else if (stop !== undefined) throw badParam("stop", `must be a string or an array of strings, got ${kind(stop)}`, "invalid_type");
  stops = stops.filter((s) => s.length > 0);

  const streamOptions = f.object("stream_options");
  const stream = f.boolean("stream") ?? false;
  let includeUsage = false;
  if (streamOptions) {
    if (!stream) throw badParam("stream_options", "is only allowed when stream is true");
    const u = streamOptions.include_usage;
    if (u !== undefined && u !== null && typeof u !== "boolean") throw badParam("stream_options.include_usage", `must be true or false, got ${kind(u)}`, "invalid_type");
    includeUsage = u === true;
  }

  let maxTokens: number | undefined;
  const limit = 1 << 30;
  if (maxTokensField !== "max_tokens") maxTokens = f.integer("max_completion_tokens", 1, limit);
  if (maxTokensField !== "max_completion_tokens") maxTokens ??= f.integer("max_tokens", 1, limit);
  const n = f.integer("n", 1, MAX_CHOICES) ?? 1;
  const seed = f.integer("seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);

  f.unsupported("logit_bias", (v) => typeof v === "object" && v !== null && Object.keys(v).length === 0, "no per-token logit bias yet");
  f.unsupported("best_of", (v) => v === 1, "only best_of 1");

  const sampling: SamplingOptions = {
    temperature: f.number("temperature", 0, 2),
    topP: f.number("top_p", 0, 1),
    topK: f.integer("top_k", 0, 1 << 20),
    minP: f.number("min_p", 0, 1),
    repeatPenalty: f.number("repeat_penalty", 0, 10),
    penaltyLastN: f.integer("repeat_last_n", -1, 1 << 20),
    presencePenalty: f.number("presence_penalty", -2, 2),
    frequencyPenalty: f.number("frequency_penalty", -2, 2),
  };
  const { grammar, grammarParam, grammarSchema } = parseGrammar(f);
  return {
    grammar,
    grammarParam,
    grammarSchema,
    model: f.string("model"),
    stream,
    includeUsage,
    n,
    maxTokens,
    stop: stops,
    seed: seed === undefined ? undefined : ((seed % 2 ** 32) + 2 ** 32) % 2 ** 32,
    sampling,
    logprobs: undefined,
    ignoreEos: f.boolean("ignore_eos") ?? false,
  };
}

/**
 * The output grammar a request asks for: OpenAI's response_format (text, json_object = any JSON
 * object, json_schema), or llama.cpp's own fields `json_schema` (a schema) and `grammar` (GBNF).
 */
function parseGrammar(f: Fields): { grammar: string | undefined; grammarParam: string | undefined; grammarSchema?: unknown } {
  const asked: [string, string, unknown?][] = [];
  const rf = f.raw("response_format");
  if (rf !== undefined) {
    if (typeof rf !== "object" || Array.isArray(rf)) throw badParam("response_format", `must be an object { type: "text" | "json_object" | "json_schema" }, got ${kind(rf)}`, "invalid_type");
    const r = rf as Record<string, unknown>;
    const anyObject = { type: "object", additionalProperties: true };
    if (r.type === "json_object") asked.push(["response_format", schemaGbnf(anyObject, "response_format"), anyObject]);
    else if (r.type === "json_schema") {
      const js = r.json_schema;
      const p = "response_format.json_schema";
      if (typeof js !== "object" || js === null || Array.isArray(js)) throw badParam(p, `must be an object { name, schema, strict? }, got ${kind(js)}`, js === undefined ? "missing_required_parameter" : "invalid_type");
      const j = js as Record<string, unknown>;
      if (typeof j.name !== "string") throw badParam(`${p}.name`, `must be a string, got ${kind(j.name)}`, j.name === undefined ? "missing_required_parameter" : "invalid_type");
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(j.name)) throw badParam(`${p}.name`, `must be 1 to 64 letters, digits, underscores or dashes, got ${kind(j.name)}`);
      if (j.strict !== undefined && j.strict !== null && typeof j.strict !== "boolean") throw badParam(`${p}.strict`, `must be true or false, got ${kind(j.strict)}`, "invalid_type");
      if (j.description !== undefined && j.description !== null && typeof j.description !== "string") throw badParam(`${p}.description`, `must be a string, got ${kind(j.description)}`, "invalid_type");
      // No schema: any JSON object (as OpenAI's JSON mode). Output always follows the schema, strict or not.
      const schema = j.schema ?? { type: "object", additionalProperties: true };
      if (typeof schema !== "object" || Array.isArray(schema)) throw badParam(`${p}.schema`, `must be a JSON Schema object, got ${kind(schema)}`, "invalid_type");
      asked.push([`${p}.schema`, schemaGbnf(schema, `${p}.schema`), schema]);
    } else if (r.type !== "text") {
      throw badParam("response_format.type", `must be "text", "json_object" or "json_schema", got ${kind(r.type)}`, r.type === undefined ? "missing_required_parameter" : "invalid_value");
    }
  }
  const js = f.raw("json_schema");
  if (js !== undefined) {
    if (typeof js !== "object" && typeof js !== "boolean") throw badParam("json_schema", `must be a JSON Schema object, got ${kind(js)}`, "invalid_type");
    asked.push(["json_schema", schemaGbnf(js, "json_schema"), js]);
  }
  const g = f.string("grammar");
  if (g !== undefined && g.trim() !== "") asked.push(["grammar", g]);
  if (asked.length > 1) throw badParam(asked[1]![0], `cannot be combined with ${asked[0]![0]}: give one output format`);
  return { grammar: asked[0]?.[1], grammarParam: asked[0]?.[0], grammarSchema: asked[0]?.[2] };
}

/** GBNF of a JSON Schema; an unsupported or bad schema is a 400 naming the keyword and where it is. */
function schemaGbnf(schema: unknown, param: string): string {
  try {
    return jsonSchemaToGbnf(schema);
  } catch (e) {
    if (e instanceof JsonSchemaError) throw badParam(param, e.message, "invalid_schema");
    throw e;
  }
}

function parseToolChoice(f: Fields, tools: ChatTool[] | undefined): ToolChoice {
  const v = f.raw("tool_choice");
  const has = tools !== undefined && tools.length > 0;
  if (v === undefined) return has ? "auto" : "none";
  if (v === "none") return v;
  if (v === "auto" || v === "required") {
    if (!has) throw badParam("tool_choice", `is ${JSON.stringify(v)} but the request has no tools`);
    return v;
  }
  if (typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const fn = o.function as Record<string, unknown> | undefined;
    if (o.type !== "function" || typeof fn !== "object" || fn === null || typeof fn.name !== "string") {
      throw badParam("tool_choice", `must be "none", "auto", "required" or { type: "function", function: { name } }, got ${kind(v)}`, "invalid_type");
    }
    const name = fn.name;
    if (!has || !tools.some((t) => t.function.name === name)) {
      throw badParam("tool_choice.function.name", `${JSON.stringify(name)} is not one of the request's tools (${(tools ?? []).map((t) => JSON.stringify(t.function.name)).join(", ") || "none given"})`);
    }
    return { type: "function", function: { name } };
  }
  throw badParam("tool_choice", `must be "none", "auto", "required" or { type: "function", function: { name } }, got ${kind(v)}`, typeof v === "string" ? "invalid_value" : "invalid_type");
}

export function parseChatRequest(body: unknown): ChatRequest {
  const f = new Fields(body, "a chat completion request");
  if (f.raw("messages") === undefined) throw badParam("messages", "is required", "missing_required_parameter");
  let messages: ChatMessage[];
  let tools: ChatTool[] | undefined;
  try {
    messages = checkMessages(f.raw("messages"));
    const t = f.raw("tools");
    tools = t === undefined ? undefined : checkTools(t);
  } catch (e) {
    if (e instanceof ChatInputError) throw badParam(e.path, e.message.slice(e.path.length + 2), "invalid_type");
    throw e;
  }
  const common = parseCommon(f, "both");
  const wantLogprobs = f.boolean("logprobs") ?? false;
  const top = f.integer("top_logprobs", 0, 20);
  if (top !== undefined && !wantLogprobs) throw badParam("top_logprobs", "needs logprobs: true");
  const toolChoice = parseToolChoice(f, tools);
  const parallelToolCalls = f.boolean("parallel_tool_calls") ?? true;
  if (toolChoice !== "none" && common.grammar !== undefined && common.grammarSchema === undefined) {
    throw badParam(common.grammarParam!, 'a GBNF grammar cannot be combined with tool calls: send tool_choice "none", no tools, or the answer\'s format as response_format json_schema');
  }
  f.unsupported("audio", () => false, "text only");
  f.unsupported("modalities", (v) => Array.isArray(v) && v.every((m) => m === "text"), "text only");
  const kwargs = f.object("chat_template_kwargs");
  return { ...common, logprobs: wantLogprobs ? (top ?? 0) : undefined, messages, tools, toolChoice, parallelToolCalls, templateVariables: kwargs };
}

export function parseCompletionRequest(body: unknown): CompletionRequest {
  const f = new Fields(body, "a completion request");
  const p = f.raw("prompt");
  let prompts: (string | number[])[];
  const isTokens = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((t) => Number.isInteger(t));
  if (typeof p === "string") prompts = [p];
  else if (isTokens(p)) prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === "string" || isTokens(x))) prompts = p as (string | number[])[];
  else if (p === undefined) throw badParam("prompt", "is required", "missing_required_parameter");
  else throw badParam("prompt", `must be a string, an array of strings, an array of token ids or an array of such arrays, got ${kind(p)}`, "invalid_type");
  if (prompts.length > MAX_CHOICES) throw badParam("prompt", `holds at most ${MAX_CHOICES} prompts, got ${prompts.length}`);
  const common = parseCommon(f, "max_tokens");
  const logprobs = f.integer("logprobs", 0, 5);
  f.unsupported("echo", (v) => v === false, "the prompt is not echoed");
  f.unsupported("suffix", (v) => v === "", "no fill-in-the-middle");
  if (prompts.length * common.n > MAX_CHOICES) throw badParam("n", `${prompts.length} prompts x n=${common.n} choices is more than ${MAX_CHOICES}`);
  return { ...common, logprobs, prompts };
}

/**
 * The generation options of choice `index` of a request: sampling settings, stop strings, limits.
 * With a seed, choice i draws from seed + i, so n seeded choices differ and each is reproducible.
 */
export function generateOptionsFor(req: CommonRequest, index: number, signal: AbortSignal, maxTokens: number | undefined): GenerateOptions {
  return {
    ...req.sampling,
    seed: req.seed === undefined ? undefined : (req.seed + index) % 2 ** 32,
    maxTokens,
    stop: req.stop,
    logprobs: req.logprobs,
    ignoreEos: req.ignoreEos,
    signal,
    grammar: req.grammar,
    grammarTriggers: req.grammarTriggers,
  };
}
