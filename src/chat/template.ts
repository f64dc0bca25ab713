// Chat templates: the GGUF's `tokenizer.chat_template` (Jinja, rendered by @huggingface/jinja as
// transformers.js does), with built-in templates for known families when a model has none or its
// template fails to parse or render. Browser-safe: no Node imports.

import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { checkMessages, checkTools, ChatInputError, type ChatMessage, type ChatMessageInput, type ChatTool } from "./messages.ts";
import { toolCallFormatOf, toolPolyfill, type ToolCallFormat } from "./tool-calls.ts";

/** Built-in templates, our own Jinja sources for each family's documented prompt format. */
export const builtinTemplates = {
  /** ChatML (Qwen, MiMo, many fine-tunes): <|im_start|>role\ncontent<|im_end|>\n. */
  chatml:
    "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}" +
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}",
  /** Llama 3: BOS, then <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> per message. */
  llama3:
    "{{ bos_token }}{%- for m in messages %}{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + (m.content | trim) + '<|eot_id|>' }}{%- endfor %}" +
    "{%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}",
  /** Gemma: BOS, turns <start_of_turn>user|model\n...<end_of_turn>\n; a system prompt opens the first user turn. */
  gemma:
    "{{ bos_token }}{%- set ns = namespace(system='') %}{%- for m in messages %}" +
    "{%- if m.role == 'system' %}{%- set ns.system = ns.system + (m.content | trim) + '\\n\\n' %}" +
    "{%- else %}{{ '<start_of_turn>' + ('model' if m.role == 'assistant' else 'user') + '\\n' + ns.system + (m.content | trim) + '<end_of_turn>\\n' }}{%- set ns.system = '' %}{%- endif %}" +
    "{%- endfor %}{%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{%- endif %}",
} as const;

export type BuiltinTemplateName = keyof typeof builtinTemplates;

/** The template itself rejected the conversation (its raise_exception), e.g. roles that do not alternate. */
export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChatTemplateError";
  }
}

export interface ChatTemplateOptions {
  /** Template source; undefined when the model has none (a built-in one is picked). */
  readonly source?: string;
  /** Text of the model's BOS / EOS tokens, given to the template as bos_token / eos_token. */
  readonly bosToken?: string;
  readonly eosToken?: string;
  /** Whether a special token with this text exists (picks the built-in family when there is no template). */
  readonly hasToken?: (text: string) => boolean;
  /** Receives the one-line warning when a built-in template stands in. Default console.warn. */
  readonly warn?: (message: string) => void;
}

export interface RenderOptions {
  /** End with the opening of an assistant turn. Default true. */
  readonly addGenerationPrompt?: boolean;
  readonly tools?: readonly ChatTool[];
  /** More variables for the template (e.g. { enable_thinking: false } for Qwen3). */
  readonly variables?: Readonly<Record<string, unknown>>;
}

/** Which built-in family a template source or a vocabulary looks like (llama.cpp detects by such markers too). */
export function detectFamily(probe: (marker: string) => boolean): BuiltinTemplateName | undefined {
  if (probe("<|start_header_id|>")) return "llama3";
  if (probe("<start_of_turn>")) return "gemma";
  if (probe("<|im_start|>")) return "chatml";
  return undefined;
}

/**
 * A compiled chat template. `render` turns messages into the prompt text; when the model's own
 * template cannot be parsed, or fails while rendering (not by its own raise_exception), a built-in
 * template of the same family takes over with a one-line warning.
 */
export class ChatTemplate {
  /** "model" (the GGUF's own template) or the built-in family in use. */
  name: "model" | BuiltinTemplateName;
  source: string;
  private template: Template;
  private readonly opts: ChatTemplateOptions;
  private readonly fallback: BuiltinTemplateName;

  constructor(opts: ChatTemplateOptions) {
    this.opts = opts;
    const src = opts.source;
    this.fallback = (src !== undefined ? detectFamily((m) => src.includes(m)) : undefined) ?? (opts.hasToken ? detectFamily(opts.hasToken) : undefined) ?? "chatml";
    if (src === undefined || src.trim() === "") {
      this.warn(`the model has no chat template; using the built-in ${this.fallback} template`);
      this.name = this.fallback;
      this.source = builtinTemplates[this.fallback];
      this.template = new Template(this.source);
      return;
    }
    this.name = "model";
    this.source = src;
    try {
      this.template = new Template(src);
    } catch (e) {
      this.warn(`the model's chat template does not parse (${errorText(e)}); using the built-in ${this.fallback} template`);
      this.useFallback();
      this.template = new Template(this.source);
    }
  }

  private warn(message: string): void {
    (this.opts.warn ?? ((m: string) => console.warn(`mimo: warning: ${m}`)))(message);
  }

  private useFallback(): void {
    this.name = this.fallback;
    this.source = builtinTemplates[this.fallback];
    this.template = new Template(this.source);
  }

  /** How this template's model writes tool calls (see tool-calls.ts). */
  get toolFormat(): ToolCallFormat {
    return toolCallFormatOf(this.source);
  }

  /** The prompt text for `messages` (checked first: ChatInputError on a wrong shape, ChatTemplateError when the template refuses them). */
  render(messages: readonly ChatMessageInput[] | readonly ChatMessage[], options: RenderOptions = {}): string {
    const tools = options.tools !== undefined ? checkTools(options.tools) : undefined;
    // Tools, calls and results the template has no place for go into the messages themselves.
    const msgs = toolPolyfill(checkMessages(messages), tools, this.toolFormat, this.source);
    const context: Record<string, unknown> = {
      ...options.variables,
      messages: msgs,
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: this.opts.bosToken ?? "",
      eos_token: this.opts.eosToken ?? "",
    };
    if (tools && tools.length > 0) context.tools = tools;
    try {
      return renderTemplate(this.template, context);
    } catch (e) {
      if (e instanceof ChatTemplateError || e instanceof ChatInputError || this.name !== "model") throw e;
      this.warn(`the model's chat template failed to render (${errorText(e)}); using the built-in ${this.fallback} template`);
      this.useFallback();
      return renderTemplate(this.template, context);
    }
  }
}

/**
 * Template.render with our own globals (those Hugging Face templates use), so that a template's
 * raise_exception becomes a ChatTemplateError: the caller's messages are wrong, the template is fine.
 */
function renderTemplate(template: Template, context: Record<string, unknown>): string {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    true: true,
    false: false,
    none: null,
    True: true,
    False: false,
    None: null,
    // Functions get their arguments as plain values.
    raise_exception: (message?: unknown) => {
      throw new ChatTemplateError(`the chat template rejected the messages: ${String(message ?? "no reason given")}`);
    },
    range: (...args: unknown[]) => {
      const n = args.map(Number);
      const [start, stop, step] = n.length === 1 ? [0, n[0]!, 1] : [n[0]!, n[1]!, n[2] ?? 1];
      if (step === 0) throw new Error("range() step must not be zero");
      const out: number[] = [];
      for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
      return out;
    },
    strftime_now: (format?: unknown) => strftime(new Date(), String(format ?? "")),
  };
  for (const [k, v] of Object.entries({ ...globals, ...context })) env.set(k, v);
  const result = new Interpreter(env).run(template.parsed);
  return String(result.value);
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/** The strftime subset chat templates use for "today's date" (Llama 3.1: "%d %b %Y"). */
function strftime(d: Date, format: string): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return format.replace(/%[YmdbBHMS%]/g, (t) => {
    switch (t) {
      case "%Y": return String(d.getFullYear());
      case "%m": return pad(d.getMonth() + 1);
      case "%d": return pad(d.getDate());
      case "%b": return MONTHS[d.getMonth()]!.slice(0, 3);
      case "%B": return MONTHS[d.getMonth()]!;
      case "%H": return pad(d.getHours());
      case "%M": return pad(d.getMinutes());
      case "%S": return pad(d.getSeconds());
      default: return "%";
    }
  });
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}
