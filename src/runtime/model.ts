import type { ByteSource } from "../format/byte-source.ts";
import { readGGUF, type GGUFFile } from "../format/gguf-reader.ts";
import { readModelConfig, type ModelConfig } from "../model/config.ts";
import { Transformer } from "../model/transformer.ts";
import { loadTransformerWeights, type LoadProgress } from "../model/weights.ts";
import { ReferenceBackend } from "../backends/reference.ts";
import { WasmBackend } from "../backends/wasm/wasm-backend.ts";
import { now, yieldToEventLoop } from "../platform/yield.ts";
import { Sampler, type SamplingOptions } from "../sampling/sampler.ts";
import { createTokenizer, type Tokenizer } from "../tokenizer/index.ts";
import type { ComputeBackend, KvCache, KvCacheType } from "../compute/backend.ts";
import { StopStringMatcher } from "./stop-strings.ts";

export interface LoadOptions {
  /** Positions of the KV cache; default min(model context length, 4096). */
  readonly contextSize?: number;
  /**
   * The kernels to run on: "wasm" (WebAssembly SIMD on worker threads, the default), "reference"
   * (plain TypeScript, slow, exact llama.cpp arithmetic) or a backend instance.
   */
  readonly backend?: ComputeBackend | "wasm" | "reference";
  readonly onProgress?: (p: LoadProgress) => void;
  /** KV cache element type: "f16" (default, as llama.cpp) or "f32" (exact, twice the memory). */
  readonly kvCacheType?: KvCacheType;
  /** Compute threads of the wasm backend, including the calling one. Default: the number of cores. */
  readonly threads?: number;
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
  readonly signal?: AbortSignal;
}

export interface GenerationChunk {
  /** Text for this step; "" while a multi-byte character or a possible stop string is incomplete. */
  readonly text: string;
  /** The token sampled at this step. */
  readonly token: number;
}

export type FinishReason = "stop" | "length" | "context";

export interface GenerationStats {
  readonly promptTokens: number;
  /** Prompt tokens actually computed (the rest came from the cache of the previous call). */
  readonly promptTokensEvaluated: number;
  readonly generatedTokens: number;
  readonly promptMs: number;
  readonly generationMs: number;
  /** From the call to the first generated token. */
  readonly timeToFirstTokenMs: number;
  readonly promptTokensPerSecond: number;
  readonly generationTokensPerSecond: number;
}

export interface GenerationResult {
  readonly text: string;
  readonly tokens: number[];
  readonly finishReason: FinishReason;
  readonly stats: GenerationStats;
}

/** A loaded model: tokenizer, weights in a backend, and a KV cache reused across calls. */
export class Model {
  readonly file: GGUFFile;
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  readonly contextSize: number;
  readonly loadMs: number;
  private readonly transformer: Transformer;
  private readonly kv: KvCache;
  /** Tokens whose keys/values are in the cache, in order. */
  private cached: number[] = [];
  private busy = false;
  private disposed = false;

  constructor(
    file: GGUFFile,
    config: ModelConfig,
    tokenizer: Tokenizer,
    transformer: Transformer,
    contextSize: number,
    kvCacheType: KvCacheType,
    loadMs: number,
  ) {
    this.file = file;
    this.config = config;
    this.tokenizer = tokenizer;
    this.transformer = transformer;
    this.contextSize = contextSize;
    this.kv = transformer.createKvCache(contextSize, kvCacheType);
    this.loadMs = loadMs;
  }

  /** Which kernels run: "reference" or "wasm-relaxed-simd x2" (build and thread count). */
  get backendName(): string {
    return this.transformer.backend.name;
  }

  tokenize(text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, opts);
  }

  detokenize(tokens: readonly number[], opts: { renderSpecial?: boolean } = {}): string {
    return this.tokenizer.decode([...tokens], opts);
  }

  /**
   * Logits after running `tokens` from an empty context (the whole batch at once).
   * With allLogits, one row of vocabSize per token.
   */
  evaluate(tokens: readonly number[], opts: { allLogits?: boolean } = {}): Float32Array {
    this.ensureUsable();
    this.cached = [];
    const r = this.transformer.forward(tokens, 0, this.kv, opts);
    this.cached = [...tokens];
    return r.logits;
  }

  /** Streams generated text; the iterator's return value holds the full result and timings. */
  async *generate(prompt: string | readonly number[], options: GenerateOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    this.ensureUsable();
    if (this.busy) throw new Error("this model is already generating; wait for the other generation to finish (or load a second model)");
    this.busy = true;
    try {
      return yield* this.run(prompt, options);
    } finally {
      this.busy = false;
    }
  }

  /** Generates to the end and returns the text with timings. */
  async complete(prompt: string | readonly number[], options: GenerateOptions = {}): Promise<GenerationResult> {
    const it = this.generate(prompt, options);
    for (;;) {
      const step = await it.next();
      if (step.done) return step.value;
    }
  }

  private async *run(prompt: string | readonly number[], o: GenerateOptions): AsyncGenerator<GenerationChunk, GenerationResult> {
    const t0 = now();
    o.signal?.throwIfAborted();
    const sampler = new Sampler(o);
    const promptTokens =
      typeof prompt === "string"
        ? this.tokenizer.encode(prompt, { addSpecial: o.addSpecial ?? true, parseSpecial: o.parseSpecial ?? false })
        : [...prompt];
    if (promptTokens.length === 0) {
      throw new Error("the prompt is empty and this model's tokenizer adds no BOS token, so there is nothing to start from");
    }
    if (promptTokens.length >= this.contextSize) {
      throw new RangeError(`the prompt has ${promptTokens.length} tokens, but the context holds ${this.contextSize}; use a larger contextSize or a shorter prompt`);
    }
    const maxTokens = o.maxTokens ?? Infinity;
    if (!(maxTokens >= 0)) throw new RangeError(`maxTokens must be >= 0, got ${maxTokens}`);

    // Reuse the cached prefix from the previous call; at least the last prompt token is recomputed for its logits.
    let reuse = 0;
    while (reuse < this.cached.length && reuse < promptTokens.length - 1 && this.cached[reuse] === promptTokens[reuse]) reuse++;
    this.cached = this.cached.slice(0, reuse);
    const toEval = promptTokens.slice(reuse);
    let logits = this.transformer.forward(toEval, reuse, this.kv, { borrowLogits: true }).logits;
    this.cached.push(...toEval);
    const tPrompt = now();

    const history = [...promptTokens];
    const generated: number[] = [];
    // After a real prompt the first piece keeps its leading space ("Zoo" + " was"); right after
    // BOS it is the start of the text and loses the dummy-prefix space, as in llama2.c.
    const lastPrompt = promptTokens[promptTokens.length - 1];
    const decoder = this.tokenizer.createStreamDecoder({ atTextStart: lastPrompt === this.tokenizer.bos });
    const stops = new StopStringMatcher(o.stop ?? []);
    let text = "";
    let finishReason: FinishReason = "length";
    let tFirst = 0;

    while (generated.length < maxTokens) {
      o.signal?.throwIfAborted();
      const token = sampler.sample(logits, history);
      if (generated.length === 0) tFirst = now();
      if (!o.ignoreEos && this.tokenizer.isEndOfGeneration(token)) {
        finishReason = "stop";
        break;
      }
      generated.push(token);
      history.push(token);
      const piece = stops.push(decoder.push(token));
      text += piece.text;
      yield { text: piece.text, token };
      if (piece.stopped) {
        finishReason = "stop";
        break;
      }
      if (generated.length >= maxTokens) break;
      if (this.cached.length >= this.contextSize) {
        finishReason = "context";
        break;
      }
      logits = this.transformer.forward([token], this.cached.length, this.kv, { borrowLogits: true }).logits;
      this.cached.push(token);
      await yieldToEventLoop();
    }
    if (!stops.stopped) {
      const tail = stops.flush(decoder.flush());
      if (tail) {
        text += tail;
        yield { text: tail, token: -1 };
      }
    }
    const tEnd = now();
    if (tFirst === 0) tFirst = tEnd;
    const promptMs = tPrompt - t0;
    const generationMs = tEnd - tPrompt;
    const stats: GenerationStats = {
      promptTokens: promptTokens.length,
      promptTokensEvaluated: toEval.length,
      generatedTokens: generated.length,
      promptMs,
      generationMs,
      timeToFirstTokenMs: tFirst - t0,
      promptTokensPerSecond: toEval.length / (promptMs / 1000),
      generationTokensPerSecond: generated.length / (generationMs / 1000),
    };
    return { text, tokens: generated, finishReason, stats };
  }

  private ensureUsable(): void {
    if (this.disposed) throw new Error("this model has been disposed");
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.transformer.backend.dispose();
    await this.file.close();
  }
}

async function createBackend(opts: LoadOptions): Promise<ComputeBackend> {
  const choice = opts.backend ?? "wasm";
  if (typeof choice !== "string") return choice;
  if (choice === "reference") return new ReferenceBackend();
  if (choice === "wasm") {
    if ((opts.kvCacheType ?? "f16") !== "f16") return new ReferenceBackend();
    return WasmBackend.create({ threads: opts.threads });
  }
  throw new RangeError(`backend must be "wasm", "reference" or a ComputeBackend, got ${JSON.stringify(choice)}`);
}

/** Loads a GGUF model from a byte source (Node: see loadModel in index.ts for paths). */
export async function loadModelFromSource(source: ByteSource, opts: LoadOptions = {}): Promise<Model> {
  const t0 = now();
  const file = await readGGUF(source);
  let backend: ComputeBackend | undefined;
  try {
    const config = readModelConfig(file);
    const tokenizer = createTokenizer(file.metadata);
    const contextSizeOpt = opts.contextSize;
    if (contextSizeOpt !== undefined && !(Number.isInteger(contextSizeOpt) && contextSizeOpt > 0)) {
      throw new RangeError(`contextSize must be a positive integer, got ${contextSizeOpt}`);
    }
    backend = await createBackend(opts);
    const weights = await loadTransformerWeights(file, config, backend, opts.onProgress);
    const contextSize = contextSizeOpt ?? Math.min(config.contextLength, 4096);
    const transformer = new Transformer(config, weights, backend);
    const kvCacheType = opts.kvCacheType ?? "f16";
    if (kvCacheType !== "f16" && kvCacheType !== "f32") throw new RangeError(`kvCacheType must be "f16" or "f32", got ${String(kvCacheType)}`);
    return new Model(file, config, tokenizer, transformer, contextSize, kvCacheType, now() - t0);
  } catch (e) {
    backend?.dispose();
    await file.close();
    throw e;
  }
}
