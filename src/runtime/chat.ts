// Chat on a model: messages through the chat template into prompt tokens, and a ChatSession that
// keeps a conversation and its tokens so each turn prefills only what is new (the slot prompt
// cache picks the sequence that already holds the earlier turns).

import { ChatTemplate, type RenderOptions } from "../chat/template.ts";
import { checkMessages, type ChatMessage, type ChatMessageInput, type ChatTool } from "../chat/messages.ts";
import type { Tokenizer } from "../tokenizer/index.ts";
import { toolCallConstraint, type ToolChoice } from "../chat/tool-calls.ts";
import type { GenerateOptions, GenerationChunk, GenerationResult, Model } from "./model.ts";

export interface ChatOptions extends GenerateOptions {
  /** Functions the model may call, given to the template (OpenAI's `tools`). */
  readonly tools?: readonly ChatTool[];
  /** More template variables (e.g. { enable_thinking: false } for Qwen3). */
  readonly templateVariables?: Readonly<Record<string, unknown>>;
  /**
   * With tools: "auto" (the default) lets the model answer in prose or call tools, each call held
   * to its tool's parameter schema from the moment it starts (a lazy grammar); "required" or
   * { type: "function", function: { name } } makes it call (that) tool at once; "none" leaves the
   * output free. Read the calls with parseToolCalls(model.chatTemplate.toolFormat, result.text).
   * A grammar of your own replaces this; a jsonSchema with "auto" becomes the format of an answer
   * that calls no tool (the output is the calls or that JSON, from the first token).
   */
  readonly toolChoice?: ToolChoice;
  /** Several calls in one answer where the format allows it. Default true. */
  readonly parallelToolCalls?: boolean;
}

/** The generate options of a chat call: the caller's, plus the tool-call grammar its tools and toolChoice ask for. */
export function chatGenerateOptions(template: ChatTemplate, o: ChatOptions, tools: readonly ChatTool[] | undefined = o.tools): GenerateOptions {
  if (!tools || tools.length === 0) {
    if (o.toolChoice !== undefined && o.toolChoice !== "none") throw new TypeError(`toolChoice ${JSON.stringify(o.toolChoice)} needs tools`);
    return o;
  }
  const choice = o.toolChoice ?? "auto";
  if (o.grammar !== undefined) {
    if (o.toolChoice !== undefined && o.toolChoice !== "none") throw new TypeError("a GBNF grammar cannot be combined with a toolChoice (a jsonSchema can: the answer follows it when no tool is called)");
    return o;
  }
  if (o.jsonSchema !== undefined) {
    if (choice === "none") return o;
    if (choice !== "auto") throw new TypeError(`toolChoice ${JSON.stringify(choice)} makes the answer tool calls only, so a jsonSchema for it has nothing to constrain: give one or the other`);
    // The calls, or a JSON answer valid under the schema, from the first token (as OpenAI's response_format with tools).
    const c = toolCallConstraint(template.toolFormat, tools, "auto", o.parallelToolCalls ?? true, o.jsonSchema)!;
    return { ...o, jsonSchema: undefined, grammar: c.grammar, grammarTriggers: c.grammarTriggers };
  }
  const c = toolCallConstraint(template.toolFormat, tools, choice, o.parallelToolCalls ?? true);
  return c ? { ...o, grammar: c.grammar, grammarTriggers: c.grammarTriggers } : o;
}

/** The chat template of a GGUF: its `tokenizer.chat_template`, or a built-in one for its family. */
export function chatTemplateOf(metadata: ReadonlyMap<string, unknown>, tokenizer: Tokenizer, warn?: (m: string) => void): ChatTemplate {
  const source = metadata.get("tokenizer.chat_template");
  const text = (id: number | undefined) => (id === undefined ? "" : tokenizer.tokenText(id));
  let vocab: Set<string> | undefined;
  return new ChatTemplate({
    source: typeof source === "string" ? source : undefined,
    bosToken: text(tokenizer.bos),
    eosToken: text(tokenizer.eos),
    hasToken: (t) => {
      vocab ??= new Set(Array.from({ length: tokenizer.vocabSize }, (_, i) => tokenizer.tokenText(i)));
      return vocab.has(t);
    },
    warn,
  });
}

/**
 * Prompt tokens of rendered chat text: special-token text is parsed as those tokens, and BOS is
 * added by the tokenizer's rule only when the template did not already write it.
 */
export function chatPromptTokens(tokenizer: Tokenizer, text: string, continuation = false): number[] {
  const bos = tokenizer.bos === undefined ? undefined : tokenizer.tokenText(tokenizer.bos);
  const addSpecial = !continuation && !(bos && text.startsWith(bos));
  return tokenizer.encode(text, { addSpecial, parseSpecial: true });
}

export interface ChatSessionOptions {
  /** The system prompt opening the conversation. */
  readonly system?: string;
  readonly tools?: readonly ChatTool[];
  readonly templateVariables?: Readonly<Record<string, unknown>>;
}

/**
 * A conversation with a model. `send` streams the answer to a user message and keeps both in the
 * history; the prompt of the next turn is the previous prompt's tokens plus the generated tokens
 * plus only the new text, so the KV cache of the earlier turns is reused (only the new turn is
 * prefilled) as long as no other call has taken over that sequence meanwhile. When the
 * conversation outgrows the context, its oldest turns are dropped (`droppedTurns` counts them).
 */
export class ChatSession {
  readonly model: Model;
  private system: string | undefined;
  private readonly tools: readonly ChatTool[] | undefined;
  private readonly variables: Readonly<Record<string, unknown>> | undefined;
  private history: ChatMessage[] = [];
  /** The rendered conversation so far (ending after the last answer) and the tokens that hold it. */
  private cached: { text: string; tokens: number[] } | undefined;
  private busy = false;
  /** Earlier turns dropped so far to keep the conversation within the context. */
  droppedTurns = 0;

  constructor(model: Model, opts: ChatSessionOptions = {}) {
    this.model = model;
    if (opts.system !== undefined && typeof opts.system !== "string") throw new TypeError(`system must be a string, got ${typeof opts.system}`);
    this.system = opts.system;
    this.tools = opts.tools;
    this.variables = opts.templateVariables;
  }

  /** The conversation: the system prompt (if any), then user and assistant turns. */
  get messages(): readonly ChatMessage[] {
    return [...(this.system !== undefined ? [{ role: "system", content: this.system } as const] : []), ...this.history];
  }

  /** Forgets the conversation (the system prompt stays unless a new one is given; null removes it). */
  reset(system?: string | null): void {
    if (system !== undefined) this.system = system ?? undefined;
    this.history = [];
    this.cached = undefined;
    this.droppedTurns = 0;
  }

  /** Streams the answer to `content`; the iterator's return value is the full result with timings. */
  async *send(content: string | ChatMessageInput, options: ChatOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    if (this.busy) throw new Error("this chat session is already answering; wait for the answer (or cancel it) before sending the next message");
    const user = checkMessages([typeof content === "string" ? { role: "user", content } : content], "message")[0]!;
    this.busy = true;
    try {
      const render: RenderOptions = { addGenerationPrompt: true, tools: options.tools ?? this.tools, variables: options.templateVariables ?? this.variables };
      const template = this.model.chatTemplate;
      const tok = this.model.tokenizer;
      // Leave room for an answer: when the conversation outgrows the context, the oldest turns go
      // (the system prompt stays).
      const room = Math.min(options.maxTokens ?? Infinity, Math.max(16, Math.floor(this.model.contextSize / 4)));
      let text: string;
      let prompt: number[];
      for (;;) {
        text = template.render([...this.messages, user], render);
        prompt =
          this.cached && text.startsWith(this.cached.text)
            ? [...this.cached.tokens, ...chatPromptTokens(tok, text.slice(this.cached.text.length), true)]
            : chatPromptTokens(tok, text);
        if (prompt.length + room <= this.model.contextSize || this.history.length < 2) break;
        this.history.splice(0, 2);
        this.cached = undefined;
        this.droppedTurns++;
      }
      const it = this.model.generate(prompt, chatGenerateOptions(template, options, render.tools));
      let step;
      while (!(step = await it.next()).done) yield step.value;
      const result = step.value;
      this.history.push(user, { role: "assistant", content: result.text });
      // The generated tokens stand for the answer's text unless a stop string cut it short.
      const decoder = tok.createStreamDecoder({ atTextStart: prompt[prompt.length - 1] === tok.bos });
      const generatedText = result.tokens.map((t) => decoder.push(t)).join("") + decoder.flush();
      this.cached = generatedText === result.text ? { text: text + result.text, tokens: [...prompt, ...result.tokens] } : undefined;
      return result;
    } finally {
      this.busy = false;
    }
  }
}
