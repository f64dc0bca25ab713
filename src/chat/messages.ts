// Chat messages as the OpenAI API and Hugging Face chat templates shape them, and the checks that
// turn a wrong shape into an error naming the field (instead of "[object Object]" deep in a tokenizer).

export type ChatRole = "system" | "developer" | "user" | "assistant" | "tool";

export const chatRoles: readonly ChatRole[] = ["system", "developer", "user", "assistant", "tool"];

/** A tool call an assistant message made (OpenAI's shape; templates read `function.name/arguments`). */
export interface ChatToolCall {
  readonly id?: string;
  readonly type?: "function";
  readonly function: { readonly name: string; readonly arguments: string | Record<string, unknown> };
}

export interface ChatMessage {
  readonly role: ChatRole;
  /** The text; OpenAI's list of `{ type: "text", text }` parts is joined into one string. */
  readonly content: string;
  readonly name?: string;
  /** An assistant's tool calls. */
  readonly tool_calls?: readonly ChatToolCall[];
  /** Which call a tool message answers. */
  readonly tool_call_id?: string;
  /** An assistant's reasoning, where the template renders it separately (Qwen3). */
  readonly reasoning_content?: string;
}

/** What callers may pass: content may also be a list of text parts or null (assistant with tool calls). */
export interface ChatMessageInput {
  readonly role: ChatRole;
  readonly content?: string | readonly { readonly type: string; readonly text?: string }[] | null;
  readonly name?: string;
  readonly tool_calls?: readonly ChatToolCall[];
  readonly tool_call_id?: string;
  readonly reasoning_content?: string;
}

/** A function the model may call (OpenAI's `tools` entry), given to the template as is. */
export interface ChatTool {
  readonly type: "function";
  readonly function: { readonly name: string; readonly description?: string; readonly parameters?: Record<string, unknown> };
}

/** A message list or tool list of the wrong shape; `path` names the field (e.g. "messages[1].content"). */
export class ChatInputError extends TypeError {
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = "ChatInputError";
    this.path = path;
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "string" ? `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v)}` : typeof v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optionalString(m: Record<string, unknown>, key: string, path: string): string | undefined {
  const v = m[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new ChatInputError(`${path}.${key}`, `must be a string, got ${describe(v)}`);
  return v;
}

/** Checks and normalises a message list: every content becomes a string. Throws ChatInputError. */
export function checkMessages(messages: unknown, path = "messages"): ChatMessage[] {
  if (!Array.isArray(messages)) throw new ChatInputError(path, `must be an array of { role, content } messages, got ${describe(messages)}`);
  if (messages.length === 0) throw new ChatInputError(path, "must hold at least one message");
  return messages.map((m: unknown, i) => {
    const p = `${path}[${i}]`;
    if (!isRecord(m)) throw new ChatInputError(p, `must be an object { role, content }, got ${describe(m)}`);
    const role = m.role;
    if (typeof role !== "string" || !chatRoles.includes(role as ChatRole)) {
      throw new ChatInputError(`${p}.role`, `must be one of ${chatRoles.map((r) => `"${r}"`).join(", ")}, got ${describe(role)}`);
    }
    const content = contentText(m.content, `${p}.content`, role === "assistant" && Array.isArray(m.tool_calls));
    const out: { -readonly [K in keyof ChatMessage]: ChatMessage[K] } = { role: role as ChatRole, content };
    const name = optionalString(m, "name", p);
    if (name !== undefined) out.name = name;
    const toolCallId = optionalString(m, "tool_call_id", p);
    if (toolCallId !== undefined) out.tool_call_id = toolCallId;
    const reasoning = optionalString(m, "reasoning_content", p);
    if (reasoning !== undefined) out.reasoning_content = reasoning;
    if (m.tool_calls !== undefined && m.tool_calls !== null) out.tool_calls = checkToolCalls(m.tool_calls, `${p}.tool_calls`);
    return out;
  });
}

function contentText(c: unknown, path: string, mayBeEmpty: boolean): string {
  if (typeof c === "string") return c;
  if ((c === null || c === undefined) && mayBeEmpty) return "";
  if (Array.isArray(c)) {
    return c
      .map((part: unknown, j) => {
        if (!isRecord(part) || part.type !== "text" || typeof part.text !== "string") {
          const type = isRecord(part) ? part.type : undefined;
          throw new ChatInputError(
            `${path}[${j}]`,
            typeof type === "string" && type !== "text" ? `content parts of type "${type}" are not supported (text only)` : `must be { type: "text", text: string }, got ${describe(part)}`,
          );
        }
        return part.text;
      })
      .join("");
  }
  throw new ChatInputError(path, `must be a string or a list of text parts, got ${describe(c)}`);
}

function checkToolCalls(v: unknown, path: string): ChatToolCall[] {
  if (!Array.isArray(v)) throw new ChatInputError(path, `must be an array, got ${describe(v)}`);
  return v.map((c: unknown, i) => {
    const p = `${path}[${i}]`;
    if (!isRecord(c) || !isRecord(c.function)) throw new ChatInputError(p, `must be { type: "function", function: { name, arguments } }, got ${describe(c)}`);
    const f = c.function;
    if (typeof f.name !== "string") throw new ChatInputError(`${p}.function.name`, `must be a string, got ${describe(f.name)}`);
    if (typeof f.arguments !== "string" && !isRecord(f.arguments)) throw new ChatInputError(`${p}.function.arguments`, `must be a JSON string or an object, got ${describe(f.arguments)}`);
    return { ...(typeof c.id === "string" ? { id: c.id } : {}), type: "function", function: { name: f.name, arguments: f.arguments } };
  });
}

/** Checks a tool list (OpenAI's `tools`). Throws ChatInputError. */
export function checkTools(tools: unknown, path = "tools"): ChatTool[] {
  if (!Array.isArray(tools)) throw new ChatInputError(path, `must be an array of { type: "function", function } tools, got ${describe(tools)}`);
  return tools.map((t: unknown, i) => {
    const p = `${path}[${i}]`;
    if (!isRecord(t) || t.type !== "function" || !isRecord(t.function)) throw new ChatInputError(p, `must be { type: "function", function: { name, description?, parameters? } }, got ${describe(t)}`);
    const f = t.function;
    if (typeof f.name !== "string" || f.name.length === 0) throw new ChatInputError(`${p}.function.name`, `must be a non-empty string, got ${describe(f.name)}`);
    if (f.description !== undefined && typeof f.description !== "string") throw new ChatInputError(`${p}.function.description`, `must be a string, got ${describe(f.description)}`);
    if (f.parameters !== undefined && !isRecord(f.parameters)) throw new ChatInputError(`${p}.function.parameters`, `must be a JSON schema object, got ${describe(f.parameters)}`);
    return t as unknown as ChatTool;
  });
}
