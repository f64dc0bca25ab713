// `mimo serve`: an OpenAI-compatible HTTP server on node:http. Every generation is a `generate`
// call on the model, so all active requests share the driver's batched forward passes (continuous
// batching: requests join and leave between steps) and a new request starts from the longest cached
// prefix of any slot (the prefix cache). Requests beyond the model's `parallel` sequences wait in a
// bounded queue; a full queue answers 503 with Retry-After.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import { ChatInputError } from "../chat/messages.ts";
import { ChatTemplateError } from "../chat/template.ts";
import { parseToolCalls, ToolCallStream, toolCallConstraint, type ToolCallFormat, type ToolStreamEvent } from "../chat/tool-calls.ts";
import { GrammarError, JsonSchemaError } from "../grammar/index.ts";
import type { GenerationChunk, GenerationResult, Model, TokenLogprob } from "../runtime/model.ts";
import { ApiError, badParam } from "./errors.ts";
import { Metrics } from "./metrics.ts";
import { Fields, generateOptionsFor, kind, parseChatRequest, parseCompletionRequest, type ChatRequest, type CommonRequest } from "./params.ts";

export interface ServerOptions {
  /** Interface to bind. Default 127.0.0.1 (loopback only). */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 8080. */
  readonly port?: number;
  /** Required as `Authorization: Bearer <key>` on every endpoint but /health. */
  readonly apiKey?: string;
  /** Requests that may wait for a free sequence beyond those running; more get 503. Default 64. */
  readonly maxQueue?: number;
  /** Largest request body in bytes. Default 4 MiB. */
  readonly maxBodyBytes?: number;
  /** One line per request (method, path, status, time); default none. */
  readonly log?: (line: string) => void;
}

/** A request that lost its client, or was cancelled by shutdown. */
class Cancelled extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Cancelled";
  }
}

const ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health", "/metrics", "/tokenize", "/detokenize"];

export class MimoServer {
  private readonly opts: ServerOptions;
  private readonly server: Server;
  private model: Model | undefined;
  private modelId = "";
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly metrics = new Metrics();
  /** Sequences requested by requests in flight (running or queued). */
  private inflight = 0;
  private readonly live = new Set<AbortController>();
  private readonly handlers = new Set<Promise<void>>();
  private draining = false;
  private readonly keyDigest: Buffer | undefined;

  constructor(opts: ServerOptions = {}) {
    this.opts = opts;
    const maxQueue = opts.maxQueue ?? 64;
    if (!(Number.isInteger(maxQueue) && maxQueue >= 0)) throw new RangeError(`maxQueue must be an integer >= 0, got ${maxQueue}`);
    this.keyDigest = opts.apiKey !== undefined ? digest(opts.apiKey) : undefined;
    if (opts.apiKey !== undefined && opts.apiKey.length === 0) throw new RangeError("the API key must not be empty");
    this.server = createServer((req, res) => {
      const p = this.handle(req, res);
      this.handlers.add(p);
      void p.finally(() => this.handlers.delete(p));
    });
  }

  /** Starts listening (before the model is loaded: /health answers 503 until setModel). */
  async listen(): Promise<{ host: string; port: number; url: string }> {
    const host = this.opts.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.opts.port ?? 8080, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    const h = a.family === "IPv6" ? `[${a.address}]` : a.address;
    return { host: a.address, port: a.port, url: `http://${h}:${a.port}` };
  }

  /** The model to serve, under this id (what /v1/models lists and requests name). */
  setModel(model: Model, id: string): void {
    this.model = model;
    this.modelId = id;
  }

  get ready(): boolean {
    return this.model !== undefined && !this.draining;
  }

  /**
   * Graceful shutdown: stop accepting connections, answer new requests 503, let running requests
   * finish for up to `graceMs`, then cancel the rest (streams get an error event) and close.
   */
  async close(graceMs = 5000): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (this.handlers.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const c of this.live) c.abort(new Cancelled("the server is shutting down"));
    await Promise.race([Promise.allSettled([...this.handlers]), new Promise((r) => setTimeout(r, 2000))]);
    this.server.closeAllConnections();
    await closed;
  }

  private gauges() {
    const m = this.model;
    return {
      activeSequences: m?.activeSequences ?? 0,
      queueDepth: m?.waitingRequests ?? 0,
      parallel: m?.parallel ?? 0,
      ready: this.ready,
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const path = (req.url ?? "/").split("?")[0]!;
    const endpoint = ROUTES.includes(path) || path.startsWith("/v1/models/") ? (path.startsWith("/v1/models/") ? "/v1/models/{id}" : path) : "other";
    try {
      await this.route(req, res, path, t0);
    } catch (e) {
      this.fail(res, e);
    } finally {
      this.metrics.request(endpoint, res.statusCode);
      this.opts.log?.(`${req.method} ${path} ${res.statusCode} ${(performance.now() - t0).toFixed(0)} ms`);
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, path: string, t0: number): Promise<void> {
    const method = req.method ?? "GET";
    if (path === "/health") {
      allow(method, ["GET"]);
      if (!this.ready) throw new ApiError(503, this.draining ? "the server is shutting down" : "the model is loading", { type: "unavailable_error", retryAfter: 1 });
      return sendJson(res, 200, { status: "ok" });
    }
    this.authorize(req);
    if (path === "/metrics") {
      allow(method, ["GET"]);
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
      res.end(this.metrics.render(this.gauges()));
      return;
    }
    if (!ROUTES.includes(path) && !path.startsWith("/v1/models/")) throw new ApiError(404, `there is no ${method} ${path} here (endpoints: ${ROUTES.join(", ")})`, { code: "unknown_url" });
    if (this.draining) throw new ApiError(503, "the server is shutting down", { type: "unavailable_error", retryAfter: 1 });
    const model = this.model;
    if (!model) throw new ApiError(503, "the model is loading", { type: "unavailable_error", retryAfter: 1 });
    if (path === "/v1/models") {
      allow(method, ["GET"]);
      return sendJson(res, 200, { object: "list", data: [this.modelCard()] });
    }
    if (path.startsWith("/v1/models/")) {
      allow(method, ["GET"]);
      this.checkModel(decodeURIComponent(path.slice("/v1/models/".length)));
      return sendJson(res, 200, this.modelCard());
    }
    allow(method, ["POST"]);
    const body = await readJson(req, this.opts.maxBodyBytes ?? 4 << 20);
    switch (path) {
      case "/v1/chat/completions":
        return this.chatCompletions(model, body, res, t0);
      case "/v1/completions":
        return this.completions(model, body, res, t0);
      case "/v1/embeddings":
        return this.embeddings(model, body, res);
      case "/tokenize": {
        const f = new Fields(body, "a tokenize request");
        const content = f.string("content");
        if (content === undefined) throw badParam("content", "is required", "missing_required_parameter");
        const tokens = model.tokenize(content, { addSpecial: f.boolean("add_special") ?? false, parseSpecial: f.boolean("parse_special") ?? true });
        if (f.boolean("with_pieces")) {
          return sendJson(res, 200, { tokens: tokens.map((id) => ({ id, piece: tokenString(model.tokenizer, id).token })) });
        }
        return sendJson(res, 200, { tokens });
      }
      case "/detokenize": {
        const f = new Fields(body, "a detokenize request");
        const tokens = this.tokenIds(model, f.raw("tokens"), "tokens");
        return sendJson(res, 200, { content: model.detokenize(tokens) });
      }
    }
  }

  private authorize(req: IncomingMessage): void {
    if (!this.keyDigest) return;
    const h = req.headers.authorization ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    // Compare digests, not the keys: equal lengths for timingSafeEqual, and no early exit.
    if (!m || !timingSafeEqual(digest(m[1]!), this.keyDigest)) {
      throw new ApiError(401, m ? "invalid API key" : "missing API key: send it as the header Authorization: Bearer <key>", { code: "invalid_api_key" });
    }
  }

  private modelCard() {
    return { id: this.modelId, object: "model", created: this.created, owned_by: "mimo" };
  }

  private checkModel(id: string | undefined): void {
    if (id !== undefined && id !== this.modelId) {
      throw new ApiError(404, `the model "${id}" does not exist here; this server serves "${this.modelId}"`, { param: "model", code: "model_not_found" });
    }
  }

  private tokenIds(model: Model, v: unknown, param: string): number[] {
    if (!Array.isArray(v)) throw badParam(param, `must be an array of token ids, got ${kind(v)}`, "invalid_type");
    const vocab = model.config.vocabSize;
    return v.map((t: unknown, i) => {
      if (!(typeof t === "number" && Number.isInteger(t) && t >= 0 && t < vocab)) throw badParam(`${param}[${i}]`, `must be a token id from 0 to ${vocab - 1}, got ${kind(t)}`);
      return t;
    });
  }

  /** Sequences for `needed` generations: a place among the running or queued ones, or 503. */
  private admit(model: Model, needed: number): () => void {
    const capacity = model.parallel + (this.opts.maxQueue ?? 64);
    if (this.inflight + needed > capacity) {
      throw new ApiError(503, `the server is busy: ${model.parallel} sequences are running and the queue is full; retry shortly`, { type: "unavailable_error", code: "queue_full", retryAfter: 1 });
    }
    this.inflight += needed;
    let done = false;
    return () => {
      if (!done) this.inflight -= needed;
      done = true;
    };
  }

  private checkContext(model: Model, promptTokens: number, maxTokens: number | undefined): void {
    const ctx = model.contextSize;
    if (promptTokens >= ctx || (maxTokens !== undefined && promptTokens + maxTokens > ctx)) {
      const asked = maxTokens !== undefined ? `${promptTokens + maxTokens} tokens (${promptTokens} in the prompt, ${maxTokens} to generate)` : `${promptTokens} tokens in the prompt`;
      throw new ApiError(400, `this model's context holds ${ctx} tokens, but the request needs ${asked}; shorten the prompt or lower max_tokens`, {
        param: maxTokens !== undefined && promptTokens < ctx ? "max_tokens" : "messages",
        code: "context_length_exceeded",
      });
    }
  }

  /**
   * Tool calls asked for (tool_choice other than "none"): the grammar of calls in the template's
   * format, from the start (required, a named function) or from the format's trigger on (auto).
   */
  private withTools(model: Model, r: ChatRequest): { req: ChatRequest; format: ToolCallFormat | undefined } {
    if (r.toolChoice === "none" || !r.tools) return { req: r, format: undefined };
    const format = model.chatTemplate.toolFormat;
    try {
      const c = toolCallConstraint(format, r.tools, r.toolChoice, r.parallelToolCalls, r.grammarSchema)!;
      return { req: { ...r, grammar: c.grammar, grammarParam: "tools", grammarTriggers: c.grammarTriggers }, format };
    } catch (e) {
      if (!(e instanceof JsonSchemaError)) throw e;
      // "tools[1].function.parameters at /properties/x: unsupported keyword ..."
      const m = /^(tools\[\d+\]\.function\.parameters)(?: at)? ?([\s\S]*)$/.exec(e.message);
      throw badParam(m ? m[1]! : "tools", m ? m[2]!.replace(/^: /, "") : e.message, "invalid_schema");
    }
  }

  /**
   * Compiles a request's grammar for the model's vocabulary now (cached), so a bad one is a 400
   * before anything runs; in slices, so the other streams keep flowing meanwhile.
   */
  private async compileGrammar(model: Model, r: CommonRequest): Promise<void> {
    if (r.grammar === undefined) return;
    try {
      await model.compileGrammarAsync(r.grammar);
    } catch (e) {
      if (e instanceof GrammarError || e instanceof JsonSchemaError || e instanceof RangeError) throw badParam(r.grammarParam ?? "grammar", (e as Error).message, "invalid_grammar");
      throw e;
    }
  }

  private async chatCompletions(model: Model, body: unknown, res: ServerResponse, t0: number): Promise<void> {
    const parsed = parseChatRequest(body);
    this.checkModel(parsed.model);
    const { req: r, format } = this.withTools(model, parsed);
    await this.compileGrammar(model, r);
    let tokens: number[];
    try {
      ({ tokens } = model.applyChatTemplate(r.messages, { tools: r.tools, templateVariables: r.templateVariables }));
    } catch (e) {
      if (e instanceof ChatTemplateError) throw new ApiError(400, e.message, { param: "messages", code: "invalid_messages" });
      if (e instanceof ChatInputError) throw badParam(e.path, e.message, "invalid_type");
      throw e;
    }
    this.checkContext(model, tokens.length, r.maxTokens);
    await this.generate(model, r, [tokens], "chat", res, t0, format);
  }

  private async completions(model: Model, body: unknown, res: ServerResponse, t0: number): Promise<void> {
    const r = parseCompletionRequest(body);
    this.checkModel(r.model);
    await this.compileGrammar(model, r);
    const prompts = r.prompts.map((p, i) => {
      const toks = typeof p === "string" ? model.tokenize(p, { addSpecial: true }) : this.tokenIds(model, p, r.prompts.length > 1 ? `prompt[${i}]` : "prompt");
      if (toks.length === 0) throw badParam("prompt", "is empty and this model's tokenizer adds no BOS token: nothing to start from");
      this.checkContext(model, toks.length, r.maxTokens);
      return toks;
    });
    await this.generate(model, r, prompts, "text", res, t0);
  }

  /** Runs n choices per prompt concurrently on the model and answers as one response or one SSE stream. */
  private async generate(model: Model, r: CommonRequest, prompts: number[][], shape: "chat" | "text", res: ServerResponse, t0: number, toolFormat?: ToolCallFormat): Promise<void> {
    const release = this.admit(model, prompts.length * r.n);
    const controller = new AbortController();
    this.live.add(controller);
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new Cancelled("the client disconnected"));
    };
    res.on("close", onClose);
    const id = `${shape === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
    const created = Math.floor(Date.now() / 1000);
    const head = { id, object: shape === "chat" ? "chat.completion.chunk" : "text_completion", created, model: this.modelId, system_fingerprint: `mimo-${model.backendName}` };
    const stream = r.stream ? new SseStream(res) : undefined;
    const tok = model.tokenizer;
    let firstToken = true;
    const choices = prompts.flatMap((tokens, p) => Array.from({ length: r.n }, (_, k) => ({ index: p * r.n + k, tokens, seedIndex: k })));
    const texts = choices.map(() => "");
    const logprobs: TokenLogprob[][] = choices.map(() => []);
    // Streamed tool calls: each choice's text goes through its own parser; one random id per call.
    const toolStreams = stream && toolFormat ? choices.map(() => new ToolCallStream(toolFormat)) : undefined;
    const callIds = choices.map(() => [] as string[]);
    const callId = (choice: number, index: number) => (callIds[choice]![index] ??= `call_${randomBytes(12).toString("hex")}`);
    const sendEvents = async (index: number, events: readonly ToolStreamEvent[], lp: unknown) => {
      for (const ev of events) {
        const delta =
          ev.kind === "content"
            ? { content: ev.text }
            : ev.kind === "call"
              ? { tool_calls: [{ index: ev.index, id: callId(index, ev.index), type: "function", function: { name: ev.name, arguments: "" } }] }
              : { tool_calls: [{ index: ev.index, function: { arguments: ev.text } }] };
        await stream!.send({ ...head, choices: [{ index, delta, logprobs: lp, finish_reason: null }], ...(r.includeUsage ? { usage: null } : {}) });
        lp = null;
      }
      if (lp) await stream!.send({ ...head, choices: [{ index, delta: {}, logprobs: lp, finish_reason: null }], ...(r.includeUsage ? { usage: null } : {}) });
    };
    try {
      if (stream && shape === "chat") {
        for (const c of choices) await stream.send({ ...head, choices: [{ index: c.index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }], ...(r.includeUsage ? { usage: null } : {}) });
      }
      const results = await Promise.all(
        choices.map(async (c) => {
          const opts = generateOptionsFor(r, c.seedIndex, controller.signal, r.maxTokens);
          const it = model.generate(c.tokens, opts);
          try {
            for (;;) {
              const step = await it.next();
              if (step.done) return step.value;
              const chunk: GenerationChunk = step.value;
              if (chunk.token >= 0) {
                if (firstToken) this.metrics.timeToFirstToken((performance.now() - t0) / 1000);
                firstToken = false;
                this.metrics.tokens(1);
              }
              if (chunk.logprob) logprobs[c.index]!.push(chunk.logprob);
              texts[c.index] += chunk.text;
              if (stream && (chunk.text !== "" || chunk.logprob)) {
                const lp = chunk.logprob ? (shape === "chat" ? chatLogprobs(tok, [chunk.logprob]) : textLogprobs(tok, [chunk.logprob], texts[c.index]!.length - chunk.text.length)) : null;
                if (toolStreams) {
                  await sendEvents(c.index, toolStreams[c.index]!.push(chunk.text), lp);
                  continue;
                }
                const choice = shape === "chat" ? { index: c.index, delta: { content: chunk.text }, logprobs: lp, finish_reason: null } : { index: c.index, text: chunk.text, logprobs: lp, finish_reason: null };
                await stream.send({ ...head, choices: [choice], ...(r.includeUsage ? { usage: null } : {}) });
              }
            }
          } catch (e) {
            // One failed choice ends the request: stop its siblings too.
            controller.abort(e);
            throw e;
          } finally {
            await it.return(undefined as never).catch(() => {});
          }
        }),
      );
      const usage = this.usage(results, prompts, r.n);
      const finish = (x: GenerationResult) => (x.finishReason === "stop" ? "stop" : "length");
      if (stream) {
        if (toolStreams) for (const c of choices) await sendEvents(c.index, toolStreams[c.index]!.end(), null);
        for (const c of choices) {
          const fr = toolStreams && toolStreams[c.index]!.count > 0 ? "tool_calls" : finish(results[c.index]!);
          const choice = shape === "chat" ? { index: c.index, delta: {}, logprobs: null, finish_reason: fr } : { index: c.index, text: "", logprobs: null, finish_reason: fr };
          await stream.send({ ...head, choices: [choice], ...(r.includeUsage ? { usage: null } : {}) });
        }
        if (r.includeUsage) await stream.send({ ...head, choices: [], usage });
        stream.done();
        return;
      }
      const object = shape === "chat" ? "chat.completion" : "text_completion";
      const out = choices.map((c) => {
        const x = results[c.index]!;
        const lps = r.logprobs === undefined ? null : shape === "chat" ? chatLogprobs(tok, logprobs[c.index]!) : textLogprobs(tok, logprobs[c.index]!, 0);
        if (shape === "chat" && toolFormat) {
          const { content, calls } = parseToolCalls(toolFormat, x.text);
          if (calls.length > 0) {
            const toolCalls = calls.map((call, k) => ({ id: callId(c.index, k), type: "function", function: { name: call.name, arguments: call.arguments } }));
            return { index: c.index, message: { role: "assistant", content, tool_calls: toolCalls, refusal: null }, logprobs: lps, finish_reason: "tool_calls" };
          }
        }
        return shape === "chat"
          ? { index: c.index, message: { role: "assistant", content: x.text, refusal: null }, logprobs: lps, finish_reason: finish(x) }
          : { index: c.index, text: x.text, logprobs: lps, finish_reason: finish(x) };
      });
      sendJson(res, 200, { ...head, object, choices: out, usage });
    } catch (e) {
      if (controller.signal.aborted && controller.signal.reason instanceof Cancelled && controller.signal.reason.message.includes("disconnected")) return;
      if (stream?.started) {
        stream.error(e instanceof Cancelled ? new ApiError(503, e.message, { type: "unavailable_error" }) : e);
        return;
      }
      throw e instanceof Cancelled ? new ApiError(503, e.message, { type: "unavailable_error" }) : e;
    } finally {
      res.off("close", onClose);
      this.live.delete(controller);
      release();
    }
  }

  private usage(results: GenerationResult[], prompts: number[][], n: number) {
    let completion = 0;
    let cached = 0;
    for (const x of results) {
      completion += x.stats.generatedTokens;
      this.metrics.promptTokens += x.stats.promptTokens;
      this.metrics.cachedPromptTokens += x.stats.promptTokens - x.stats.promptTokensEvaluated;
    }
    // A prompt counts once however many choices it has; its cache hit is its first choice's.
    for (let p = 0; p < prompts.length; p++) {
      const s = results[p * n]!.stats;
      cached += s.promptTokens - s.promptTokensEvaluated;
    }
    const prompt = prompts.reduce((s, t) => s + t.length, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
  }

  private async embeddings(model: Model, body: unknown, res: ServerResponse): Promise<void> {
    const f = new Fields(body, "an embeddings request");
    this.checkModel(f.string("model"));
    const input = f.raw("input");
    let inputs: (string | number[])[];
    const isTokens = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === "number");
    if (typeof input === "string") inputs = [input];
    else if (isTokens(input)) inputs = [input];
    else if (Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === "string" || isTokens(x))) inputs = input as (string | number[])[];
    else if (input === undefined) throw badParam("input", "is required", "missing_required_parameter");
    else throw badParam("input", `must be a string, an array of strings, an array of token ids or an array of such arrays, got ${kind(input)}`, "invalid_type");
    if (inputs.length > 2048) throw badParam("input", `holds at most 2048 inputs, got ${inputs.length}`);
    const format = f.string("encoding_format") ?? "float";
    if (format !== "float" && format !== "base64") throw badParam("encoding_format", `must be "float" or "base64", got ${JSON.stringify(format)}`);
    const dims = f.integer("dimensions", 1, 1 << 20);
    if (dims !== undefined && dims !== model.config.dim) throw badParam("dimensions", `this model's embeddings have ${model.config.dim} dimensions; other sizes are not supported`, "unsupported_parameter");
    const tokenLists = inputs.map((x, i) => {
      const p = inputs.length > 1 ? `input[${i}]` : "input";
      const t = typeof x === "string" ? model.tokenize(x, { addSpecial: true }) : this.tokenIds(model, x, p);
      if (t.length === 0) throw badParam(p, "is empty: there is nothing to embed");
      if (t.length > model.contextSize) throw new ApiError(400, `${p} has ${t.length} tokens, but this model's context holds ${model.contextSize}`, { param: p, code: "context_length_exceeded" });
      return t;
    });
    const release = this.admit(model, 1);
    const controller = new AbortController();
    this.live.add(controller);
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new Cancelled("the client disconnected"));
    };
    res.on("close", onClose);
    try {
      const data = [];
      let total = 0;
      for (let i = 0; i < tokenLists.length; i++) {
        const e = await model.embed(tokenLists[i]!, { signal: controller.signal });
        total += e.tokens;
        const embedding = format === "base64" ? Buffer.from(e.embedding.buffer, e.embedding.byteOffset, e.embedding.byteLength).toString("base64") : Array.from(e.embedding);
        data.push({ object: "embedding", index: i, embedding });
      }
      this.metrics.promptTokens += total;
      sendJson(res, 200, { object: "list", data, model: this.modelId, usage: { prompt_tokens: total, total_tokens: total } });
    } catch (e) {
      if (controller.signal.aborted && controller.signal.reason instanceof Cancelled) {
        if (res.writableEnded || res.destroyed) return;
        throw new ApiError(503, controller.signal.reason.message, { type: "unavailable_error" });
      }
      throw e;
    } finally {
      res.off("close", onClose);
      this.live.delete(controller);
      release();
    }
  }

  private fail(res: ServerResponse, e: unknown): void {
    const err =
      e instanceof ApiError
        ? e
        : e instanceof RangeError || e instanceof TypeError
          ? new ApiError(400, e.message, { code: "invalid_value" })
          : new ApiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`);
    if (err.status >= 500 && err.status !== 503) this.opts.log?.(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string> = {};
    if (err.retryAfter !== undefined) headers["retry-after"] = String(err.retryAfter);
    if (err.status === 413) headers.connection = "close";
    sendJson(res, err.status, err.toJSON(), headers);
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new ApiError(405, `method ${method} is not allowed here (use ${methods.join(" or ")})`, { code: "method_not_allowed" });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The body as JSON: 413 past `limit` bytes, 400 when it does not parse. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"]);
  const tooLarge = () => new ApiError(413, `the request body is larger than the limit of ${limit} bytes`, { code: "request_too_large" });
  if (declared > limit) {
    req.resume();
    throw tooLarge();
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw tooLarge();
    }
    parts.push(chunk);
  }
  const text = Buffer.concat(parts).toString("utf8");
  if (text.trim() === "") throw new ApiError(400, "the request body is empty; send a JSON object", { code: "invalid_body" });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`, { code: "invalid_json" });
  }
}

/** Server-sent events as OpenAI's clients read them: `data: <json>\n\n` ..., then `data: [DONE]\n\n`. */
class SseStream {
  private readonly res: ServerResponse;
  started = false;

  constructor(res: ServerResponse) {
    this.res = res;
  }

  async send(obj: unknown): Promise<void> {
    const res = this.res;
    if (res.destroyed) throw new Cancelled("the client disconnected");
    if (!this.started) {
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
      this.started = true;
    }
    // A slow reader pauses its own sequence (the driver skips requests whose chunks pile up).
    if (!res.write(`data: ${JSON.stringify(obj)}\n\n`)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          resolve();
        };
        res.on("drain", done);
        res.on("close", done);
      });
    }
  }

  done(): void {
    this.res.end("data: [DONE]\n\n");
  }

  error(e: unknown): void {
    const err = e instanceof ApiError ? e : new ApiError(500, `generation failed: ${e instanceof Error ? e.message : String(e)}`);
    if (!this.res.destroyed) this.res.end(`data: ${JSON.stringify(err.toJSON())}\n\n`);
  }
}

function tokenString(tok: Model["tokenizer"], id: number): { token: string; bytes: number[] } {
  const bytes = tok.tokenToPiece(id, { renderSpecial: true });
  return { token: new TextDecoder().decode(bytes), bytes: Array.from(bytes) };
}

function chatLogprobs(tok: Model["tokenizer"], lps: readonly TokenLogprob[]) {
  return {
    content: lps.map((lp) => ({
      ...tokenString(tok, lp.token),
      logprob: lp.logprob,
      top_logprobs: lp.top.map((t) => ({ ...tokenString(tok, t.token), logprob: t.logprob })),
    })),
    refusal: null,
  };
}

function textLogprobs(tok: Model["tokenizer"], lps: readonly TokenLogprob[], offset: number) {
  const tokens: string[] = [];
  const textOffset: number[] = [];
  let at = offset;
  for (const lp of lps) {
    const s = tokenString(tok, lp.token).token;
    tokens.push(s);
    textOffset.push(at);
    at += s.length;
  }
  return {
    tokens,
    token_logprobs: lps.map((lp) => lp.logprob),
    top_logprobs: lps.map((lp) => Object.fromEntries(lp.top.map((t) => [tokenString(tok, t.token).token, t.logprob]))),
    text_offset: textOffset,
  };
}
