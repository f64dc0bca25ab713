import type { ByteSource } from "../format/byte-source.ts";
import { readGGUF, type GGUFFile } from "../format/gguf-reader.ts";
import { checkTokenizerFits, readModelConfig, type ModelConfig } from "../model/config.ts";
import { Transformer, type ForwardProbe, type RowSelection } from "../model/transformer.ts";
import { decodeWeightBytes, loadTransformerWeights, type LoadProgress } from "../model/weights.ts";
import { ReferenceBackend } from "../backends/reference.ts";
import { WasmBackend, wasmUnsupportedShape } from "../backends/wasm/wasm-backend.ts";
import type { ThreadWork } from "../backends/wasm/thread-choice.ts";
import { calibratedPlacement } from "./thread-calibration.ts";
import { UnsupportedModelError, quote } from "../errors/model-file.ts";
import { now, yieldToEventLoop } from "../platform/yield.ts";
import { createSampler, resolveSamplingOptions, type SamplingOptions } from "../sampling/chain.ts";
import { GrammarConstraint, TokenGrammar, jsonSchemaToGbnf, type GrammarTrigger, type JsonSchemaOptions } from "../grammar/index.ts";
import { createTokenizer, type Tokenizer } from "../tokenizer/index.ts";
import type { ComputeBackend, KvCacheType, KvPool } from "../compute/backend.ts";
import type { OpProfile } from "../compute/profile.ts";
import { StopStringMatcher } from "./stop-strings.ts";
import { Driver, type DriverRequest, type EndReason, type TokenSampler } from "./driver.ts";
import { Sequence, SlotTable } from "./sequence.ts";
import { ModelFileError } from "../format/errors.ts";
import { DraftModelProposer } from "../speculative/draft-model.ts";
import { MtpProposer } from "../speculative/mtp.ts";
import { NgramProposer } from "../speculative/ngram.ts";
import type { Proposer } from "../speculative/proposer.ts";
import { resolveSpeculativeOptions, Speculation, type SpeculationStats, type SpeculativeOptions } from "../speculative/speculation.ts";
import type { ChatTemplate } from "../chat/template.ts";
import type { ChatMessageInput } from "../chat/messages.ts";
import { chatGenerateOptions, chatPromptTokens, chatTemplateOf, type ChatOptions } from "./chat.ts";

export interface LoadOptions {
  /** Positions each sequence can hold (its context); default min(model context length, 4096). */
  readonly contextSize?: number;
  /**
   * Sequences the KV cache holds at once (llama.cpp's -np): up to this many `generate` calls run
   * together, batched into the same forward passes; more wait their turn. Each has contextSize
   * positions, so the cache takes parallel x contextSize cells. Default 1.
   */
  readonly parallel?: number;
  /**
   * The kernels to run on: "wasm" (WebAssembly SIMD on worker threads, the default), "reference"
   * (plain TypeScript, slow, exact llama.cpp arithmetic) or a backend instance.
   */
  readonly backend?: ComputeBackend | "wasm" | "reference";
  readonly onProgress?: (p: LoadProgress) => void;
  /** KV cache element type: "f16" (default, as llama.cpp) or "f32" (exact, twice the memory). */
  readonly kvCacheType?: KvCacheType;
  /**
   * Compute threads of the wasm backend, including the calling one. Default: as many as pay for
   * themselves on this model. Small models (decode steps reading up to 128 MB of weights, one
   * sequence) are timed at load on 1 thread and on the rule's other candidate, and the faster is
   * kept (runtime/thread-calibration.ts; once per model shape per process); otherwise a rule
   * weighs the weight bytes per decode step against the cost of synchronising threads (at most
   * the number of cores; backends/wasm/thread-choice.ts): 1 for a tiny model, all cores for a
   * large one. The choice and why show in `backendName` ("wasm-relaxed-simd x1 (auto: x1 160 µs,
   * x2 410 µs per token measured at load)").
   */
  readonly threads?: number;
  /**
   * A draft model for speculative decoding (`generate(..., { speculative: { method: "draft" } })`):
   * a smaller GGUF with the same vocabulary, loaded onto the same backend threads.
   */
  readonly draftModel?: ByteSource;
  /** Receives one-line warnings (e.g. a built-in chat template standing in). Default console.warn. */
  readonly onWarning?: (message: string) => void;
}

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate. Default: until an end-of-generation token or the context is full. */
  readonly maxTokens?: number;
  /** Generation ends before any of these strings would be emitted. */
  readonly stop?: readonly string[];
  /** Keep generating past end-of-generation tokens. Default false. */
  readonly ignoreEos?: boolean;
  /** Add BOS/EOS per the model's tokenizer flags. Default true. */
  readonly addSpecial?: boolean;
  /** Treat special-token text in the prompt (e.g. "<|im_start|>") as those tokens. Default false. */
  readonly parseSpecial?: boolean;
  /**
   * Report each generated token's log-probability under the model (log-softmax of its logits, before
   * any sampling stage) with this many most likely alternatives (0..20). Default: not reported.
   */
  readonly logprobs?: number;
  readonly signal?: AbortSignal;
  /**
   * Speculative decoding: drafts from the model's MTP layer ("mtp"), prompt lookup ("ngram") or
   * the draft model ("draft") are verified several tokens per forward pass. The output is the
   * same as without it: identical tokens when greedy, the same distribution when sampling.
   */
  readonly speculative?: SpeculativeOptions;
  /**
   * Constrain the output to a GBNF grammar (llama.cpp's format, `root` rule first matched).
   * Generation stops when the grammar is complete and nothing can follow.
   */
  readonly grammar?: string;
  /**
   * Constrain the output to JSON valid under this JSON Schema (`{}` or `true`: any JSON value).
   * Unsupported keywords are a JsonSchemaError naming them.
   */
  readonly jsonSchema?: unknown;
  /**
   * Makes the grammar lazy (llama.cpp's grammar triggers): the output is free text until one of
   * these words appears (a string: anywhere; `{ word, atStart: true }`: only at the start, after
   * optional whitespace), then the text from the word on must match the grammar, which therefore
   * starts with the word. How tool calls are constrained when the model may also answer in prose.
   */
  readonly grammarTriggers?: readonly (string | GrammarTrigger)[];
  /** Layout of JSON Schema output (see JsonSchemaOptions.whitespace). Default "minified" (no whitespace). */
  readonly jsonWhitespace?: JsonSchemaOptions["whitespace"];
  /**
   * Tokens the grammar forces (a key name, `": "`, closing brackets) are evaluated together with
   * the next step in one forward pass instead of one pass each, and so is a guessed next token
   * (see GenerationStats.guessesKept). Same output either way. Default true.
   */
  readonly jumpForward?: boolean;
  /**
   * When the grammar allows few tokens next (enum values, digits, punctuation), only their rows of
   * the output head are computed (the vocabulary's other logits are never read under the mask).
   * Same output either way; false computes every logit. Default true (off with logprobs).
   */
  readonly sparseHead?: boolean;
}

/** A token's log-probability and the most likely alternatives at its position. */
export interface TokenLogprob {
  readonly token: number;
  readonly logprob: number;
  /** The most likely tokens at this position, most likely first. */
  readonly top: readonly { readonly token: number; readonly logprob: number }[];
}

export interface GenerationChunk {
  /** Text for this step; "" while a multi-byte character or a possible stop string is incomplete. */
  readonly text: string;
  /** The token sampled at this step (-1 for text flushed at the end). */
  readonly token: number;
  /** With the `logprobs` option: the sampled token's log-probability and the alternatives. */
  readonly logprob?: TokenLogprob;
}

export type FinishReason = "stop" | "length" | "context";

export interface GenerationStats {
  readonly promptTokens: number;
  /** Prompt tokens actually computed (the rest came from the cache of an earlier call). */
  readonly promptTokensEvaluated: number;
  readonly generatedTokens: number;
  /** From the start of the prompt's evaluation to its end (a call waiting for a free sequence starts later). */
  readonly promptMs: number;
  readonly generationMs: number;
  /** From the call to the first generated token (waiting for a free sequence included). */
  readonly timeToFirstTokenMs: number;
  readonly promptTokensPerSecond: number;
  readonly generationTokensPerSecond: number;
  /** Speculative decoding's figures, when it was asked for. */
  readonly speculative?: SpeculationStats;
  /** Tokens the grammar forced (taken without sampling). */
  readonly forcedTokens: number;
  /** Forward passes jump-forward saved (forced tokens evaluated with another step). */
  readonly forwardPassesSaved: number;
  /**
   * Rows of the output head computed for the sampled tokens: the vocabulary size per token when
   * every logit is needed; under a grammar that allows few tokens, only theirs (see sparseHead).
   */
  readonly outputHeadRows: number;
  /**
   * Tokens evaluated before their own sampling and kept (with jumpForward): where every token the
   * grammar allows begins with one of them (` "` before an enum's value), that token rides in the
   * pass before, and when sampling picks it its own forward pass is saved.
   */
  readonly guessesKept: number;
}

export interface GenerationResult {
  readonly text: string;
  readonly tokens: number[];
  readonly finishReason: FinishReason;
  readonly stats: GenerationStats;
}

export type EmbedPooling = "mean" | "cls" | "last";

export interface EmbedOptions {
  /** How token states become one vector. Default: the GGUF's pooling type, else "mean". */
  readonly pooling?: EmbedPooling;
  /** Scale to unit length (as OpenAI's embeddings are). Default true. */
  readonly normalize?: boolean;
  readonly signal?: AbortSignal;
}

export interface Embedding {
  readonly embedding: Float32Array;
  /** Tokens the input took. */
  readonly tokens: number;
  readonly pooling: EmbedPooling;
}

/** One sequence's part of a Model.forward call. */
export interface ForwardInput {
  readonly sequence: Sequence;
  readonly tokens: readonly number[];
  /** Logits wanted: none, the last token's, or every token's. */
  readonly logits: RowSelection;
  /** Hidden states after the last main layer, before the output norm (MiMo's MTP input). Default "none". */
  readonly hidden?: RowSelection;
}

export interface ForwardOutput {
  /** One row of vocabSize per selected token. */
  readonly logits: Float32Array;
  /** One row of config.dim per selected token (empty unless asked). */
  readonly hidden: Float32Array;
}

/** How many chunks a generation may run ahead of its reader before the driver pauses it. */
const MAX_UNREAD = 16;

/**
 * A loaded model: tokenizer, weights in a backend, and a KV pool of `parallel` sequences. Text
 * generation (`generate`, `complete`) runs on a token-level driver that batches every active
 * call into one forward pass per step; `createSequence` and `forward` give direct access to
 * sequences and batched forward passes (speculative decoding, tools, tests).
 */
export class Model {
  readonly file: GGUFFile;
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  /** Positions each sequence can hold. */
  readonly contextSize: number;
  /** Sequences the KV pool holds at once. */
  readonly parallel: number;
  readonly loadMs: number;
  private readonly transformer: Transformer;
  private readonly pool: KvPool;
  private readonly slots: SlotTable;
  private readonly driver: Driver;
  private readonly draft: DraftModel | undefined;
  /** Per slot: positions whose MTP-layer keys/values are valid (a cached prefix is reused for MTP only up to there). */
  private readonly mtpValid: number[];
  private disposed = false;
  /** Compiled grammars by GBNF text (a server sees the same schema again and again). */
  private readonly grammars = new Map<string, TokenGrammar>();
  private readonly compiling = new Map<string, Promise<TokenGrammar>>();
  private template: ChatTemplate | undefined;
  private readonly warn: ((message: string) => void) | undefined;

  constructor(
    file: GGUFFile,
    config: ModelConfig,
    tokenizer: Tokenizer,
    transformer: Transformer,
    contextSize: number,
    parallel: number,
    kvCacheType: KvCacheType,
    loadMs: number,
    draft?: { file: GGUFFile; transformer: Transformer },
    warn?: (message: string) => void,
  ) {
    this.warn = warn;
    this.file = file;
    this.config = config;
    this.tokenizer = tokenizer;
    this.transformer = transformer;
    this.contextSize = contextSize;
    this.parallel = parallel;
    this.pool = transformer.createKvPool(parallel, contextSize, kvCacheType);
    this.slots = new SlotTable(this.pool, (src, dst, n) => transformer.backend.copyKv(this.pool, src, dst, n));
    this.driver = new Driver(transformer, this.pool, transformer.backend.maxBatch);
    this.mtpValid = new Array<number>(parallel).fill(0);
    if (draft) {
      this.draft = { ...draft, pool: draft.transformer.createKvPool(parallel, contextSize, kvCacheType), cells: Array.from({ length: parallel }, () => []) };
    }
    this.loadMs = loadMs;
  }

  /** The draft model's configuration, if one was loaded (LoadOptions.draftModel). */
  get draftConfig(): ModelConfig | undefined {
    return this.draft?.transformer.config;
  }

  /**
   * Lets a tool see every forward pass's activations (importance matrices, pruning scores); pass
   * undefined to stop. Not for generation: the probe runs synchronously inside each layer.
   */
  setForwardProbe(probe: ForwardProbe | undefined): void {
    this.transformer.probe = probe;
  }

  /**
   * Records where the time of generation goes (`mimo bench --profile`): the backend's ops (wasm:
   * kernels by matrix, input conversion, copies, waits for the worker threads), the forward pass,
   * sampling, token output and yields, into `profile` until called with undefined. Costs a clock
   * reading or two per op while attached.
   */
  setProfile(profile: OpProfile | undefined): void {
    this.driver.profile = profile;
    this.transformer.backend.profile = profile;
  }

  /** Sequences holding a KV slot now (generating, prefilling, or held by their caller). */
  get activeSequences(): number {
    return this.parallel - this.slots.freeSlots;
  }

  /** generate/embed calls waiting for a free sequence. */
  get waitingRequests(): number {
    return this.slots.waiting;
  }

  /** Which kernels run: "reference" or "wasm-relaxed-simd x2" (build and thread count). */
  get backendName(): string {
    return this.transformer.backend.name;
  }

  /** The chat template: the GGUF's `tokenizer.chat_template`, or a built-in one for its family (with a warning). */
  get chatTemplate(): ChatTemplate {
    this.template ??= chatTemplateOf(this.file.metadata, this.tokenizer, this.warn);
    return this.template;
  }

  /**
   * Renders messages with the chat template and tokenizes the result (special tokens parsed, BOS
   * added only if the template did not write it). ChatInputError on a wrong message shape,
   * ChatTemplateError when the template rejects the conversation.
   */
  applyChatTemplate(messages: readonly ChatMessageInput[], opts: Pick<ChatOptions, "tools" | "templateVariables"> & { addGenerationPrompt?: boolean } = {}): { text: string; tokens: number[] } {
    const text = this.chatTemplate.render(messages, { addGenerationPrompt: opts.addGenerationPrompt ?? true, tools: opts.tools, variables: opts.templateVariables });
    return { text, tokens: chatPromptTokens(this.tokenizer, text) };
  }

  /** Streams the assistant's answer to a conversation (see generate); ChatSession keeps one going. */
  chat(messages: readonly ChatMessageInput[], options: ChatOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    const { tokens } = this.applyChatTemplate(messages, options);
    return this.generate(tokens, chatGenerateOptions(this.chatTemplate, options));
  }

  tokenize(text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, opts);
  }

  detokenize(tokens: readonly number[], opts: { renderSpecial?: boolean } = {}): string {
    return this.tokenizer.decode([...tokens], opts);
  }

  /**
   * A new, empty sequence on a free slot of the KV pool; throws KvPoolExhaustedError when all
   * `parallel` slots are taken. Release it when done.
   */
  createSequence(): Sequence {
    this.ensureUsable();
    return this.slots.acquire();
  }

  /**
   * One forward pass over several sequences (llama.cpp's llama_decode of a batch): each input's
   * tokens go at its sequence's next positions, and the sequence grows by them. Every matmul runs
   * once over all tokens; a sequence's logits are the same bits whatever it is batched with.
   */
  forward(inputs: readonly ForwardInput[]): ForwardOutput[] {
    this.ensureUsable();
    const seen = new Set<Sequence>();
    for (const inp of inputs) {
      const seq = inp.sequence;
      if (!(seq instanceof Sequence) || !seq.belongsTo(this.slots)) throw new TypeError("forward: each input needs a sequence made by this model's createSequence()");
      seq.checkLive();
      if (seen.has(seq)) throw new RangeError("forward: a sequence may appear only once per call (put all its tokens in one input)");
      seen.add(seq);
      this.checkTokens(inp.tokens, seq.length);
      for (const [name, v] of [["logits", inp.logits], ["hidden", inp.hidden ?? "none"]] as const) {
        if (v !== "none" && v !== "last" && v !== "all") throw new RangeError(`forward: ${name} must be "none", "last" or "all", got ${JSON.stringify(v)}`);
      }
    }
    const outs = this.transformer.forward(
      inputs.map((inp) => ({ slot: inp.sequence.slot, startPos: inp.sequence.length, tokens: inp.tokens, logits: inp.logits, hidden: inp.hidden })),
      this.pool,
    );
    for (const inp of inputs) {
      // Main layers only: the slot's MTP keys/values stop matching from here.
      this.mtpValid[inp.sequence.slot] = Math.min(this.mtpValid[inp.sequence.slot]!, inp.sequence.length);
      inp.sequence.cells.push(...inp.tokens);
    }
    return outs;
  }

  /**
   * Logits after running `tokens` from an empty context (the whole batch at once), on a free
   * sequence that keeps them cached for a following generate. With allLogits, one row of vocabSize per token.
   */
  evaluate(tokens: readonly number[], opts: { allLogits?: boolean } = {}): Float32Array {
    this.ensureUsable();
    this.checkTokens(tokens, 0);
    const seq = this.slots.acquire();
    try {
      return this.forward([{ sequence: seq, tokens, logits: opts.allLogits ? "all" : "last" }])[0]!.logits;
    } finally {
      seq.release();
    }
  }

  /** A clear error for tokens the model cannot run (instead of a failure deep in a kernel). */
  private checkTokens(tokens: readonly number[], startPos: number): void {
    if (!Array.isArray(tokens) && !(tokens instanceof Int32Array) && !(tokens instanceof Uint32Array)) {
      throw new TypeError(`tokens must be an array of token ids, got ${tokens === null ? "null" : typeof tokens}`);
    }
    if (tokens.length === 0) throw new RangeError("at least one token is needed");
    const vocab = this.config.vocabSize;
    for (const t of tokens) {
      if (!(Number.isInteger(t) && t >= 0 && t < vocab)) throw new RangeError(`token id ${String(t)} is outside the vocabulary (0..${vocab - 1})`);
    }
    if (startPos + tokens.length > this.contextSize) {
      throw new RangeError(`${startPos + tokens.length} positions are needed, but a sequence holds ${this.contextSize}; use a larger contextSize or fewer tokens`);
    }
  }

  /**
   * Streams generated text; the iterator's return value holds the full result and timings.
   * Calls may overlap: up to `parallel` run together in the same forward passes, later ones wait
   * their turn (first come, first served); each is cancelled by its own signal.
   */
  async *generate(prompt: string | readonly number[], options: GenerateOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    const t0 = now();
    this.ensureUsable();
    const o = options;
    o.signal?.throwIfAborted();
    const constraint = await this.constraintFor(o);
    const backend = this.transformer.backend;
    const fast = backend.argmax ? (x: Float32Array) => backend.argmax!(x) : undefined;
    const blockMax = backend.blockMax ? (x: Float32Array) => backend.blockMax!(x) : undefined;
    const sampler = createSampler(o, constraint ? { mask: constraint, argmax: fast, blockMax } : { argmax: fast, blockMax });
    const promptTokens = typeof prompt === "string" ? this.tokenizer.encode(prompt, { addSpecial: o.addSpecial ?? true, parseSpecial: o.parseSpecial ?? false }) : [...prompt];
    if (promptTokens.length === 0) {
      throw new Error("the prompt is empty and this model's tokenizer adds no BOS token, so there is nothing to start from");
    }
    if (promptTokens.length >= this.contextSize) {
      throw new RangeError(`the prompt has ${promptTokens.length} tokens, but the context holds ${this.contextSize}; use a larger contextSize or a shorter prompt`);
    }
    this.checkTokens(promptTokens, 0);
    const maxTokens = o.maxTokens ?? Infinity;
    if (!(maxTokens >= 0)) throw new RangeError(`maxTokens must be >= 0, got ${maxTokens}`);
    if (o.logprobs !== undefined && !(Number.isInteger(o.logprobs) && o.logprobs >= 0 && o.logprobs <= 20)) {
      throw new RangeError(`logprobs must be an integer from 0 to 20, got ${o.logprobs}`);
    }

    const spec = o.speculative === undefined ? undefined : resolveSpeculativeOptions(o.speculative);
    if (spec && constraint) {
      throw new Error("speculative decoding together with grammar / jsonSchema is not supported yet: constrained output uses jump-forward for the tokens the grammar forces");
    }
    if (spec?.method === "mtp" && this.config.nMtpLayers === 0) {
      throw new Error(`speculative "mtp" needs a model with multi-token-prediction layers (MiMo); this ${this.config.arch.name} model has none: use "ngram" or a draft model`);
    }
    if (spec?.method === "draft" && !this.draft) throw new Error(`speculative "draft" needs a draft model: load the model with the draftModel option`);

    // A free sequence, preferring the one whose cache shares the longest prefix with the prompt.
    const sequence = await this.slots.acquireWhenFree(promptTokens, o.signal);
    const slot = sequence.slot;
    const cachedAtStart = sequence.length;
    let req: TextRequest | undefined;
    let proposer: Proposer | undefined;
    try {
      let speculation: Speculation | undefined;
      if (spec) {
        if (spec.method === "mtp") {
          // Reuse the cached prefix only as far as the MTP layer's keys/values match it.
          if (sequence.length > this.mtpValid[slot]!) sequence.truncate(this.mtpValid[slot]!);
          proposer = new MtpProposer(this.transformer, this.pool, slot, sequence.length);
        } else if (spec.method === "ngram") proposer = new NgramProposer({ ngramMin: spec.ngramMin, ngramMax: spec.ngramMax });
        else proposer = new DraftModelProposer(this.draft!.transformer, this.draft!.pool, slot, this.draft!.cells[slot]!);
        speculation = new Speculation(proposer, spec, this.driver.costs, this.config.vocabSize, sampler);
      }
      req = new TextRequest(this, sequence, sampler, promptTokens, o, t0, speculation, constraint);
      o.signal?.throwIfAborted();
      this.driver.add(req);
      for (;;) {
        const item = await req.next();
        if (item === undefined) break;
        yield item;
      }
      return req.result();
    } finally {
      if (req) {
        this.driver.remove(req);
        req.close();
      }
      this.mtpValid[slot] = proposer instanceof MtpProposer ? Math.min(proposer.validLength, sequence.length) : Math.min(this.mtpValid[slot]!, cachedAtStart);
      proposer?.dispose();
      sequence.release();
      this.driver.kick();
    }
  }

  /**
   * The grammar (compiled for this vocabulary, cached by text) a call asks for, as a fresh
   * per-sequence constraint; undefined without `grammar` / `jsonSchema`.
   */
  private async constraintFor(o: GenerateOptions): Promise<GrammarConstraint | undefined> {
    if (o.grammar !== undefined && o.jsonSchema !== undefined) throw new TypeError("give either grammar or jsonSchema, not both");
    let gbnf: string;
    if (o.grammar !== undefined) {
      if (typeof o.grammar !== "string") throw new TypeError(`grammar must be GBNF text (a string), got ${typeof o.grammar}`);
      gbnf = o.grammar;
    } else if (o.jsonSchema !== undefined) gbnf = jsonSchemaToGbnf(o.jsonSchema, { whitespace: o.jsonWhitespace });
    else if (o.grammarTriggers !== undefined) throw new TypeError("grammarTriggers need a grammar (or jsonSchema) to start");
    else return undefined;
    const triggers = o.grammarTriggers ?? [];
    if (!Array.isArray(triggers)) throw new TypeError("grammarTriggers must be an array of words (strings or { word, atStart })");
    return new GrammarConstraint(
      await this.compileGrammarAsync(gbnf),
      undefined,
      triggers.map((t: string | GrammarTrigger) => (typeof t === "string" ? { word: t } : t)),
    );
  }

  /** GBNF text compiled for this model's vocabulary (cached: the last 16 grammars), holding the thread until done. */
  compileGrammar(gbnf: string): TokenGrammar {
    const g = this.grammars.get(gbnf) ?? TokenGrammar.fromGbnf(gbnf, this.tokenizer);
    this.cacheGrammar(gbnf, g);
    return g;
  }

  /**
   * compileGrammar in slices with event-loop turns between them (generate uses it): the other
   * sequences keep generating while a new grammar compiles, which takes seconds on a 150k
   * vocabulary. Concurrent calls for the same text share one compilation.
   */
  compileGrammarAsync(gbnf: string, o: { onProgress?: (done: number, total: number) => void } = {}): Promise<TokenGrammar> {
    const cached = this.grammars.get(gbnf);
    if (cached) {
      this.cacheGrammar(gbnf, cached);
      return Promise.resolve(cached);
    }
    let p = this.compiling.get(gbnf);
    if (!p) {
      p = TokenGrammar.compileAsync(gbnf, this.tokenizer, { pause: yieldToEventLoop, onProgress: o.onProgress }).then((g) => {
        this.cacheGrammar(gbnf, g);
        return g;
      });
      this.compiling.set(gbnf, p);
      const forget = () => this.compiling.delete(gbnf);
      p.then(forget, forget);
    }
    return p;
  }

  /** Grammars being compiled now (compileGrammarAsync). */
  get grammarsCompiling(): number {
    return this.compiling.size;
  }

  private cacheGrammar(gbnf: string, g: TokenGrammar): void {
    this.grammars.delete(gbnf);
    if (this.grammars.size >= 16) this.grammars.delete(this.grammars.keys().next().value!);
    this.grammars.set(gbnf, g);
  }

  /**
   * An embedding of `input`: the final hidden states (after the output norm) pooled over its tokens
   * (the GGUF's `<arch>.pooling_type` where it says mean, cls or last; mean otherwise) and scaled to
   * unit length (unless normalize is false). Runs on a free sequence, waiting for one like generate.
   */
  async embed(input: string | readonly number[], opts: EmbedOptions = {}): Promise<Embedding> {
    this.ensureUsable();
    opts.signal?.throwIfAborted();
    const tokens = typeof input === "string" ? this.tokenizer.encode(input, { addSpecial: true }) : [...input];
    if (tokens.length === 0) throw new RangeError("nothing to embed: the input is empty and this model's tokenizer adds no BOS token");
    this.checkTokens(tokens, 0);
    const pooling = opts.pooling ?? this.defaultPooling();
    if (pooling !== "mean" && pooling !== "cls" && pooling !== "last") throw new RangeError(`pooling must be "mean", "cls" or "last", got ${JSON.stringify(pooling)}`);
    const seq = await this.slots.acquireWhenFree(undefined, opts.signal);
    const dim = this.config.dim;
    const pooled = new Float64Array(dim);
    try {
      const norm = this.transformer.weights.outputNorm;
      const eps = this.config.normEps;
      const chunk = Math.max(1, this.transformer.backend.maxBatch);
      for (let from = 0; from < tokens.length; from += chunk) {
        if (from > 0) {
          await yieldToEventLoop();
          opts.signal?.throwIfAborted();
        }
        const part = tokens.slice(from, from + chunk);
        const { hidden } = this.forward([{ sequence: seq, tokens: part, logits: "none", hidden: "all" }])[0]!;
        for (let r = 0; r < part.length; r++) {
          const pos = from + r;
          if ((pooling === "cls" && pos !== 0) || (pooling === "last" && pos !== tokens.length - 1)) continue;
          const row = hidden.subarray(r * dim, (r + 1) * dim);
          let ss = 0;
          for (let i = 0; i < dim; i++) ss += row[i]! * row[i]!;
          const scale = 1 / Math.sqrt(ss / dim + eps);
          for (let i = 0; i < dim; i++) pooled[i]! += row[i]! * scale * norm[i]!;
        }
      }
    } finally {
      seq.release();
      this.driver.kick();
    }
    if (pooling === "mean") for (let i = 0; i < dim; i++) pooled[i]! /= tokens.length;
    let len = 1;
    if (opts.normalize ?? true) {
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += pooled[i]! * pooled[i]!;
      len = Math.sqrt(ss) || 1;
    }
    return { embedding: Float32Array.from(pooled, (v) => v / len), tokens: tokens.length, pooling };
  }

  private defaultPooling(): EmbedPooling {
    const arch = this.file.metadata.get("general.architecture");
    const type = this.file.metadata.get(`${String(arch)}.pooling_type`);
    return type === 2 ? "cls" : type === 3 ? "last" : "mean";
  }

  /** Generates to the end and returns the text with timings. */
  async complete(prompt: string | readonly number[], options: GenerateOptions = {}): Promise<GenerationResult> {
    const it = this.generate(prompt, options);
    for (;;) {
      const step = await it.next();
      if (step.done) return step.value;
    }
  }

  private ensureUsable(): void {
    if (this.disposed) throw new Error("this model has been disposed");
  }

  /** @internal */
  wake(): void {
    this.driver.kick();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.driver.dispose();
    this.slots.close(new Error("this model has been disposed"));
    try {
      await this.transformer.backend.dispose();
    } finally {
      await this.file.close();
      await this.draft?.file.close();
    }
  }
}

/** A draft model on the target's backend: its weights, its own KV pool, and what each of its slots holds. */
interface DraftModel {
  readonly file: GGUFFile;
  readonly transformer: Transformer;
  readonly pool: KvPool;
  readonly cells: number[][];
}

/**
 * The text layer of one generate call: feeds the driver its prompt, turns sampled tokens into
 * text (UTF-8-safe stream decoder, stop strings, end-of-generation tokens, maxTokens), queues the
 * chunks for the reader, and keeps the timings.
 */
class TextRequest implements DriverRequest {
  readonly sequence: Sequence;
  readonly sampler: TokenSampler;
  readonly speculation: Speculation | undefined;
  pending: number[];
  readonly wantsTokens: boolean;
  readonly jumpForward: boolean;
  forwardsSaved = 0;
  headRows = 0;
  guessesKept = 0;
  private readonly constraint: GrammarConstraint | undefined;
  private readonly model: Model;
  private readonly opts: GenerateOptions;
  private readonly promptTokens: number;
  private readonly evaluated: number;
  private readonly maxTokens: number;
  private readonly decoder;
  private readonly stops: StopStringMatcher;
  private readonly generated: number[] = [];
  private text = "";
  private finishReason: FinishReason = "length";
  private readonly queue: GenerationChunk[] = [];
  private ended = false;
  private error: unknown;
  private waiting: { resolve: () => void } | undefined;
  private readonly t0: number;
  private tStart: number;
  private tPrompt = 0;
  private tFirst = 0;
  private tEnd = 0;
  private readonly onAbort: () => void;
  private lastLogits: Float32Array | undefined;

  constructor(
    model: Model,
    sequence: Sequence,
    sampler: TokenSampler,
    prompt: number[],
    o: GenerateOptions,
    t0: number,
    speculation: Speculation | undefined,
    constraint: GrammarConstraint | undefined,
  ) {
    this.model = model;
    this.sequence = sequence;
    this.speculation = speculation;
    this.opts = o;
    // With logprobs, keep the logits the sampler sees: onToken (same step, before the next forward) reads them.
    const chain = sampler;
    const inner: TokenSampler =
      o.logprobs === undefined ? chain : { sample: (logits) => ((this.lastLogits = logits), chain.sample(logits)), accept: (t) => chain.accept(t) };
    this.constraint = constraint;
    // Greedy without penalties: the argmax over the grammar's allowed tokens alone is the chain's
    // choice (mask stage, then greedy) without copying the whole vocabulary's candidates.
    const so = resolveSamplingOptions(o);
    const maskedGreedy = o.logprobs === undefined && so.temperature <= 0 && so.repeatPenalty === 1 && so.frequencyPenalty === 0 && so.presencePenalty === 0;
    this.sampler = constraint
      ? {
          sample: (l) => {
            const g = maskedGreedy ? constraint.argmax(l) : -1;
            return constraint.fit(g >= 0 ? g : inner.sample(l));
          },
          accept: (t) => inner.accept(t),
          forced: () => constraint.forced(),
          // The mask stage (or the masked argmax) reads only the allowed tokens' logits; with
          // logprobs every logit is read.
          ...(o.logprobs === undefined && (o.sparseHead ?? true) ? { allowed: () => constraint.allowed() ?? undefined } : {}),
          guess: () => constraint.guess(),
        }
      : inner;
    this.jumpForward = constraint !== undefined && (o.jumpForward ?? true);
    this.t0 = t0;
    this.tStart = now();
    // The penalties look at the whole prompt, cached or not; the grammar starts after it.
    for (const t of prompt) sampler.accept(t);
    if (constraint) {
      constraint.budget = o.maxTokens ?? Infinity;
      constraint.begin();
    }
    this.promptTokens = prompt.length;
    this.pending = prompt.slice(sequence.length);
    this.evaluated = this.pending.length;
    this.maxTokens = o.maxTokens ?? Infinity;
    this.wantsTokens = this.maxTokens > 0;
    // After a real prompt the first piece keeps its leading space ("Zoo" + " was"); right after
    // BOS it is the start of the text and loses the dummy-prefix space, as in llama2.c.
    const tok = model.tokenizer;
    this.decoder = tok.createStreamDecoder({ atTextStart: prompt[prompt.length - 1] === tok.bos });
    this.stops = new StopStringMatcher(o.stop ?? []);
    this.onAbort = () => this.fail(o.signal!.reason);
    o.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  paused(): boolean {
    return this.ended || this.queue.length >= MAX_UNREAD;
  }

  onPromptDone(): void {
    this.tPrompt = now();
  }

  remaining(): number {
    return this.maxTokens - this.generated.length;
  }

  onToken(token: number): boolean {
    if (this.generated.length === 0) this.tFirst = now();
    const tok = this.model.tokenizer;
    if (!this.opts.ignoreEos && tok.isEndOfGeneration(token)) return this.finish("stop");
    this.generated.push(token);
    const piece = this.stops.push(this.decoder.push(token));
    this.text += piece.text;
    const logits = this.lastLogits;
    this.lastLogits = undefined;
    this.push(logits ? { text: piece.text, token, logprob: tokenLogprob(logits, token, this.opts.logprobs!) } : { text: piece.text, token });
    if (piece.stopped) return this.finish("stop");
    // A complete grammar with nothing that may follow: the end, without sampling an end token.
    // Closed early because maxTokens ran low: complete, but cut short ("length").
    const c = this.constraint;
    if (c && (c.finished || (c.closingMode && c.complete))) return this.finish(c.closingMode ? "length" : "stop");
    if (this.generated.length >= this.maxTokens) return this.finish("length");
    return true;
  }

  onEnd(reason: EndReason, error?: unknown): void {
    if (error !== undefined) this.fail(error);
    else this.finish(reason === "context" ? "context" : "length");
  }

  private finish(reason: FinishReason): false {
    if (this.ended) return false;
    this.finishReason = reason;
    if (!this.stops.stopped) {
      const tail = this.stops.flush(this.decoder.flush());
      if (tail) {
        this.text += tail;
        this.push({ text: tail, token: -1 });
      }
    }
    this.tEnd = now();
    this.ended = true;
    this.notify();
    return false;
  }

  private fail(error: unknown): void {
    if (this.ended) return;
    this.error = error;
    this.ended = true;
    this.notify();
  }

  private push(chunk: GenerationChunk): void {
    this.queue.push(chunk);
    this.notify();
  }

  private notify(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve();
  }

  /** The next chunk, or undefined at the end; throws the cancellation or failure. */
  async next(): Promise<GenerationChunk | undefined> {
    for (;;) {
      if (this.error !== undefined) throw this.error;
      const chunk = this.queue.shift();
      if (chunk) {
        if (this.queue.length === MAX_UNREAD - 1) this.model.wake();
        return chunk;
      }
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.waiting = { resolve }));
    }
  }

  close(): void {
    this.opts.signal?.removeEventListener("abort", this.onAbort);
    this.ended = true;
  }

  result(): GenerationResult {
    const tEnd = this.tEnd || now();
    const tPrompt = this.tPrompt || tEnd;
    const tFirst = this.tFirst || tEnd;
    const promptMs = tPrompt - this.tStart;
    const generationMs = tEnd - tPrompt;
    const stats: GenerationStats = {
      promptTokens: this.promptTokens,
      promptTokensEvaluated: this.evaluated,
      generatedTokens: this.generated.length,
      promptMs,
      generationMs,
      timeToFirstTokenMs: tFirst - this.t0,
      promptTokensPerSecond: this.evaluated / (promptMs / 1000),
      generationTokensPerSecond: this.generated.length / (generationMs / 1000),
      ...(this.speculation ? { speculative: this.speculation.stats() } : {}),
      forcedTokens: this.constraint?.forcedCount ?? 0,
      forwardPassesSaved: this.forwardsSaved,
      outputHeadRows: this.headRows,
      guessesKept: this.guessesKept,
    };
    return { text: this.text, tokens: [...this.generated], finishReason: this.finishReason, stats };
  }
}

/** log-softmax of `logits` at `token`, with the `top` most likely tokens (ties: lower id first). */
export function tokenLogprob(logits: Float32Array, token: number, top: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const logZ = max + Math.log(sum);
  const best: number[] = [];
  for (let i = 0; i < logits.length && top > 0; i++) {
    const v = logits[i]!;
    if (best.length === top && v <= logits[best[top - 1]!]!) continue;
    let j = best.length < top ? best.length : top - 1;
    best[j] = i;
    while (j > 0 && logits[best[j - 1]!]! < v) {
      best[j] = best[j - 1]!;
      best[j - 1] = i;
      j--;
    }
  }
  return { token, logprob: logits[token]! - logZ, top: best.map((t) => ({ token: t, logprob: logits[t]! - logZ })) };
}

async function createBackend(choice: ComputeBackend | "wasm" | "reference", opts: LoadOptions, work: ThreadWork): Promise<ComputeBackend> {
  if (typeof choice !== "string") return choice;
  if (choice === "reference") return new ReferenceBackend();
  if ((opts.kvCacheType ?? "f16") !== "f16") return new ReferenceBackend();
  return WasmBackend.create({ threads: opts.threads, work });
}

/**
 * The backend to load on. The wasm backend cannot run every model (head sizes): when it was only
 * the default, the model runs on the reference backend; when the caller asked for it, the error
 * says which backend can.
 */
function chooseBackend(file: GGUFFile, config: ModelConfig, opts: LoadOptions): ComputeBackend | "wasm" | "reference" {
  const choice = opts.backend ?? "wasm";
  if (typeof choice !== "string") return choice;
  if (choice !== "wasm" && choice !== "reference") {
    throw new RangeError(`backend must be "wasm", "reference" or a ComputeBackend, got ${JSON.stringify(choice)}`);
  }
  if (choice === "reference") return choice;
  const why = wasmUnsupportedShape(config);
  if (why === undefined) return choice;
  if (opts.backend === undefined) return "reference";
  throw new UnsupportedModelError(file.fileName, `${why}; load it with backend: "reference" (CLI: --backend reference)`);
}

/** Checks the options that do not depend on the file, before anything is read. */
function checkLoadOptions(opts: LoadOptions): void {
  const c = opts.contextSize;
  if (c !== undefined && !(Number.isInteger(c) && c > 0)) throw new RangeError(`contextSize must be a positive integer, got ${c}`);
  const parallel = opts.parallel ?? 1;
  if (!(Number.isInteger(parallel) && parallel >= 1 && parallel <= 256)) throw new RangeError(`parallel must be an integer from 1 to 256, got ${parallel}`);
  const kv = opts.kvCacheType ?? "f16";
  if (kv !== "f16" && kv !== "f32") throw new RangeError(`kvCacheType must be "f16" or "f32", got ${String(kv)}`);
}

/**
 * Loads a GGUF model from a byte source (Node: see loadModel in index.ts for paths). The model
 * owns the source from here on: a failed load closes it and stops any thread it started, and
 * every problem of the file is found here (a ModelFileError), not later while generating.
 */
export async function loadModelFromSource(source: ByteSource, opts: LoadOptions = {}): Promise<Model> {
  const t0 = now();
  let file: GGUFFile | undefined;
  let backend: ComputeBackend | undefined;
  let draftFile: GGUFFile | undefined;
  try {
    checkLoadOptions(opts);
    file = await readGGUF(source);
    const config = readModelConfig(file);
    const tokenizer = createTokenizer(file.metadata, { file: file.fileName });
    checkTokenizerFits(file, config, tokenizer.vocabSize);
    const choice = chooseBackend(file, config, opts);
    const contextSize = opts.contextSize ?? Math.min(config.contextLength, 4096);
    const parallel = opts.parallel ?? 1;
    const kvCacheType = opts.kvCacheType ?? "f16";
    // The default thread count follows the work of a decode step (the draft model's included).
    let weightBytes = decodeWeightBytes(file);
    if (opts.draftModel) weightBytes += opts.draftModel.size;
    const work = { weightBytes, layers: config.nLayers, batch: parallel };
    // A small model's default thread count is measured (runtime/thread-calibration.ts); else the rule's.
    const calibrated = choice === "wasm" && opts.threads === undefined && kvCacheType === "f16" && !opts.draftModel
      ? await calibratedPlacement(file, config, work, opts.onProgress)
      : undefined;
    backend = calibrated?.backend ?? (await createBackend(choice, opts, work));
    const weights = calibrated?.weights ?? (await loadTransformerWeights(file, config, backend, opts.onProgress));
    const transformer = new Transformer(config, weights, backend);
    let draft: { file: GGUFFile; transformer: Transformer } | undefined;
    if (opts.draftModel) {
      draftFile = await readGGUF(opts.draftModel);
      const draftConfig = readModelConfig(draftFile);
      checkSameVocabulary(file.fileName, tokenizer, draftFile.fileName, createTokenizer(draftFile.metadata, { file: draftFile.fileName }));
      if (!(typeof choice !== "string" || choice === "reference")) {
        const why = wasmUnsupportedShape(draftConfig);
        if (why) throw new UnsupportedModelError(draftFile.fileName, `${why}; load the models with backend: "reference" (CLI: --backend reference)`);
      }
      const draftWeights = await loadTransformerWeights(draftFile, draftConfig, backend);
      draft = { file: draftFile, transformer: new Transformer(draftConfig, draftWeights, backend) };
    }
    return new Model(file, config, tokenizer, transformer, contextSize, parallel, kvCacheType, now() - t0, draft, opts.onWarning);
  } catch (e) {
    try {
      await backend?.dispose();
    } finally {
      await (file ?? source).close();
      await (draftFile ?? opts.draftModel)?.close();
    }
    throw e;
  }
}

/** Draft tokens are target tokens: the two vocabularies must agree id for id (llama.cpp allows 128 extra ids at the end). */
function checkSameVocabulary(targetName: string, target: Tokenizer, draftName: string, draft: Tokenizer): void {
  const problem = (what: string) =>
    new ModelFileError(draftName, `the draft model's vocabulary differs from the target's (${targetName}): ${what}; a draft model must share the target's tokenizer`);
  if (target.model !== draft.model) throw problem(`tokenizer ${quote(draft.model)} vs ${quote(target.model)}`);
  if (Math.abs(target.vocabSize - draft.vocabSize) > 128) throw problem(`${draft.vocabSize} tokens vs ${target.vocabSize}`);
  if (target.bos !== draft.bos || target.eos !== draft.eos) throw problem(`BOS/EOS ids ${draft.bos}/${draft.eos} vs ${target.bos}/${target.eos}`);
  const n = Math.min(target.vocabSize, draft.vocabSize);
  for (let id = 0; id < n; id++) {
    if (target.tokenText(id) !== draft.tokenText(id)) throw problem(`token ${id} is ${JSON.stringify(draft.tokenText(id))} vs ${JSON.stringify(target.tokenText(id))}`);
  }
}
