// Perplexity and KL divergence the way llama.cpp's llama-perplexity measures them, so figures are
// comparable with the ones people quote for llama.cpp quants:
//   - the text is tokenized once with the model's special tokens (BOS if the vocabulary adds one);
//   - it is cut into chunks of `contextSize` tokens (a tail shorter than a chunk is dropped), each
//     evaluated from an empty cache, its first token replaced by BOS when the vocabulary adds BOS;
//   - only the second half of each chunk is scored (positions contextSize/2 .. contextSize-2 predict
//     the token after them), so every scored token has at least half a context before it.
// The base-logits file is llama.cpp's `--kl-divergence-base` format, so a file saved by one tool
// can be compared against by the other: "_logits_", u32 n_ctx, i32 n_vocab, i32 n_chunk, the
// i32 tokens of all chunks, then per scored token one row of 2*ceil(n_vocab/2)+4 u16: f32 scale,
// f32 min_log_prob, then each token's log-probability as min_log_prob + scale*u16 over a range of
// 16 nats below the top logit (lower ones stored as 0).

import type { ByteSink, ByteSource } from "../format/byte-source.ts";
import { ModelFileError } from "../format/errors.ts";
import { yieldToEventLoop } from "../platform/yield.ts";
import type { Model } from "../runtime/model.ts";

/** llama-perplexity's default context (-c). */
export const DEFAULT_PERPLEXITY_CONTEXT = 512;

const MAGIC = "_logits_";
/** Log-probabilities more than this many nats below the top one are not stored (nor counted in KL). */
const LOG_PROB_RANGE = 16;

export interface PerplexityOptions {
  /** Tokens per chunk (llama.cpp's -c). Default 512. The model must hold that many positions. */
  readonly contextSize?: number;
  /** Evaluate at most this many chunks. Default: as many as the text fills. */
  readonly chunks?: number;
  /** Logit rows computed per forward pass in the scored half (bounds memory for large vocabularies). Default: ~64 MB worth. */
  readonly rowsPerPass?: number;
  /** Also write the base log-probabilities (llama.cpp's --kl-divergence-base file) here. */
  readonly saveLogits?: ByteSink;
  /** Called after each chunk with the running figures. */
  readonly onChunk?: (p: ChunkProgress) => void;
  readonly signal?: AbortSignal;
}

export interface ChunkProgress {
  /** 1-based. */
  readonly chunk: number;
  readonly chunks: number;
  /** Perplexity over the chunks so far. */
  readonly perplexity: number;
}

/** Mean and its standard error. */
export interface Estimate {
  readonly value: number;
  readonly uncertainty: number;
}

export interface PerplexityResult {
  /** exp(mean negative log-likelihood), with llama.cpp's uncertainty (standard error of the mean, scaled). */
  readonly perplexity: Estimate;
  /** Mean negative log-likelihood of a scored token, in nats. */
  readonly meanNll: number;
  /** Tokens scored: chunks x (contextSize/2 - 1) for even sizes. */
  readonly scoredTokens: number;
  readonly chunks: number;
  readonly contextSize: number;
  /** Tokens of the whole text (BOS included when added). */
  readonly textTokens: number;
  /** Negative log-likelihood of every scored token, chunk after chunk. */
  readonly nll: Float64Array;
}

export interface KlDivergenceResult {
  /** Perplexity of the model under test ("Q"). */
  readonly perplexity: Estimate;
  /** Perplexity of the base model, from its saved log-probabilities. */
  readonly basePerplexity: Estimate;
  /** ln(PPL(Q) / PPL(base)) with its uncertainty (correlation of the two accounted for). */
  readonly logPerplexityRatio: Estimate;
  /** PPL(Q) / PPL(base). */
  readonly perplexityRatio: Estimate;
  /** Mean KL(base || Q) per token, in nats. */
  readonly klDivergence: Estimate;
  /** KL divergence percentiles over tokens: max, 99.9, 99, 95, 90, median, 10, 5, 1, 0.1, min. */
  readonly klPercentiles: Readonly<Record<KlPercentile, number>>;
  /** Fraction of tokens where both models' most likely next token is the same. */
  readonly sameTopToken: Estimate;
  /** Mean of p_Q(actual token) - p_base(actual token). */
  readonly meanProbabilityDelta: Estimate;
  /** Root mean square of that difference. */
  readonly rmsProbabilityDelta: Estimate;
  readonly scoredTokens: number;
  readonly chunks: number;
  readonly contextSize: number;
}

export type KlPercentile = "max" | "99.9" | "99" | "95" | "90" | "median" | "10" | "5" | "1" | "0.1" | "min";

/** The chunks llama-perplexity evaluates: each `contextSize` tokens, the first one BOS when the vocabulary adds BOS. */
export function perplexityChunks(tokens: readonly number[], contextSize: number, bos: number | undefined, maxChunks = Infinity): number[][] {
  const n = Math.min(Math.floor(tokens.length / contextSize), maxChunks);
  return Array.from({ length: n }, (_, i) => {
    const chunk = tokens.slice(i * contextSize, (i + 1) * contextSize);
    if (bos !== undefined) chunk[0] = bos;
    return chunk;
  });
}

/** Index of the first scored position of a chunk (llama.cpp: n_ctx/2); positions first..n_ctx-2 are scored. */
export function firstScored(contextSize: number): number {
  return Math.floor(contextSize / 2);
}

function checkContext(model: Model, contextSize: number): void {
  if (!Number.isInteger(contextSize) || contextSize < 4) throw new RangeError(`the perplexity context must be an integer of at least 4 tokens, got ${contextSize}`);
  if (model.contextSize < contextSize) {
    throw new RangeError(`the model was loaded with a context of ${model.contextSize} positions, but perplexity chunks of ${contextSize} tokens need that many; load it with contextSize >= ${contextSize}`);
  }
}

/** Tokens as llama-perplexity tokenizes its input: special tokens added (BOS), special-token text not parsed. */
export function perplexityTokens(model: Model, text: string): number[] {
  if (model.tokenizer.addEos) {
    throw new RangeError("this model's tokenizer adds EOS after every text; perplexity over running text needs a model that does not (as llama-perplexity requires)");
  }
  return model.tokenize(text, { addSpecial: true, parseSpecial: false });
}

/**
 * Runs `chunk` from an empty sequence and hands the logits of each scored position (first ..
 * length-2), a pass of rows at a time, to `visit(rows, firstRowIndex)`.
 */
function evaluateChunk(model: Model, chunk: readonly number[], rowsPerPass: number, visit: (logits: Float32Array, row0: number, rows: number) => void): void {
  const first = firstScored(chunk.length);
  const seq = model.createSequence();
  try {
    // The last token's own logits are never used: it is only ever predicted.
    const input = chunk.slice(0, chunk.length - 1);
    if (first > 0) model.forward([{ sequence: seq, tokens: input.slice(0, first), logits: "none" }]);
    for (let p = first; p < input.length; p += rowsPerPass) {
      const part = input.slice(p, Math.min(p + rowsPerPass, input.length));
      const out = model.forward([{ sequence: seq, tokens: part, logits: "all" }])[0]!.logits;
      visit(out, p - first, part.length);
    }
  } finally {
    seq.release();
  }
}

function defaultRows(vocab: number, contextSize: number): number {
  return Math.max(1, Math.min(contextSize, Math.floor((16 << 20) / vocab)));
}

/** log(sum(exp(x - max))) and max over one row. */
function logSumExp(row: Float32Array): { max: number; lse: number; argmax: number } {
  let max = -Infinity;
  let argmax = 0;
  for (let i = 0; i < row.length; i++) {
    if (row[i]! > max) {
      max = row[i]!;
      argmax = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return { max, lse: Math.log(sum), argmax };
}

function meanAndUncertainty(sum: number, sum2: number, count: number): Estimate {
  if (count < 1) return { value: 0, uncertainty: 0 };
  const f = sum / count;
  const v = sum2 / count - f * f;
  return { value: f, uncertainty: v > 0 && count > 10 ? Math.sqrt(v / (count - 1)) : 0 };
}

/** Round half to even, as the float trick llama.cpp uses to quantize log-probabilities. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Row width (u16 units) of the base file: 4 for the two f32 parameters plus the vocabulary rounded up to even. */
function rowUnits(vocab: number): number {
  return 2 * Math.floor((vocab + 1) / 2) + 4;
}

/** One row of the base file from one row of logits. */
function encodeLogProbs(row: Float32Array, out: Uint16Array): void {
  const f = Math.fround;
  let max = row[0]!;
  let min = row[0]!;
  for (let i = 1; i < row.length; i++) {
    if (row[i]! > max) max = row[i]!;
    if (row[i]! < min) min = row[i]!;
  }
  min = Math.max(min, max - LOG_PROB_RANGE);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = f(Math.log(sum));
  const minLogProb = f(f(min - max) - lse);
  const scale = f(f(max - min) / 65535);
  const params = new Float32Array(out.buffer, out.byteOffset, 2);
  params[0] = scale;
  params[1] = minLogProb;
  const q = out.subarray(4, 4 + row.length);
  if (scale === 0) {
    q.fill(0);
    return;
  }
  const inv = f(1 / scale);
  for (let i = 0; i < row.length; i++) q[i] = row[i]! > min ? roundEven(f(inv * f(row[i]! - min))) : 0;
}

/**
 * Perplexity of `model` over `text` (or already tokenized text) by llama-perplexity's method.
 * With `saveLogits`, also writes the base log-probabilities for a later klDivergence run.
 */
export async function perplexity(model: Model, text: string | readonly number[], opts: PerplexityOptions = {}): Promise<PerplexityResult> {
  const contextSize = opts.contextSize ?? DEFAULT_PERPLEXITY_CONTEXT;
  checkContext(model, contextSize);
  const tokens = typeof text === "string" ? perplexityTokens(model, text) : [...text];
  if (tokens.length < 2 * contextSize) {
    throw new RangeError(`perplexity with a context of ${contextSize} needs at least ${2 * contextSize} tokens of text, but it has ${tokens.length}; use a longer text or a smaller context (-c)`);
  }
  const chunks = perplexityChunks(tokens, contextSize, model.tokenizer.addBos ? model.tokenizer.bos : undefined, opts.chunks ?? Infinity);
  if (chunks.length === 0) throw new RangeError("no chunk to evaluate (chunks must be at least 1)");
  const V = model.config.vocabSize;
  const first = firstScored(contextSize);
  const perChunk = contextSize - 1 - first;
  const rowsPerPass = opts.rowsPerPass ?? defaultRows(V, contextSize);
  const sink = opts.saveLogits;
  const units = rowUnits(V);
  if (sink) {
    const head = new DataView(new ArrayBuffer(8 + 12));
    for (let i = 0; i < 8; i++) head.setUint8(i, MAGIC.charCodeAt(i));
    head.setUint32(8, contextSize, true);
    head.setInt32(12, V, true);
    head.setInt32(16, chunks.length, true);
    await sink.write(new Uint8Array(head.buffer));
    // The original tokens (BOS substitution is redone by the reader).
    await sink.write(new Uint8Array(Int32Array.from(tokens.slice(0, chunks.length * contextSize)).buffer));
  }

  const nll = new Float64Array(chunks.length * perChunk);
  let sum = 0;
  let sum2 = 0;
  let count = 0;
  for (let c = 0; c < chunks.length; c++) {
    opts.signal?.throwIfAborted();
    const chunk = chunks[c]!;
    const encoded = sink ? new Uint16Array(perChunk * units) : undefined;
    evaluateChunk(model, chunk, rowsPerPass, (logits, row0, rows) => {
      for (let r = 0; r < rows; r++) {
        const row = logits.subarray(r * V, (r + 1) * V);
        const { max, lse } = logSumExp(row);
        const next = chunk[first + row0 + r + 1]!;
        const v = max + lse - row[next]!;
        nll[c * perChunk + row0 + r] = v;
        sum += v;
        sum2 += v * v;
        count++;
        if (encoded) encodeLogProbs(row, encoded.subarray((row0 + r) * units, (row0 + r + 1) * units));
      }
    });
    if (sink) await sink.write(new Uint8Array(encoded!.buffer));
    opts.onChunk?.({ chunk: c + 1, chunks: chunks.length, perplexity: Math.exp(sum / count) });
    // Let timers, progress output and abort signals through between chunks.
    await yieldToEventLoop();
  }
  if (sink) await sink.close();
  const mean = sum / count;
  const variance = sum2 / count - mean * mean;
  const ppl = Math.exp(mean);
  return {
    perplexity: { value: ppl, uncertainty: variance > 0 ? Math.sqrt(variance / (count - 1)) * ppl : 0 },
    meanNll: mean,
    scoredTokens: count,
    chunks: chunks.length,
    contextSize,
    textTokens: tokens.length,
    nll,
  };
}

/** The header of a base-logits file. */
export interface BaseLogitsHeader {
  readonly contextSize: number;
  readonly vocabSize: number;
  readonly chunks: number;
  readonly tokens: Int32Array;
  /** Byte offset of the first chunk's rows. */
  readonly dataOffset: number;
}

export async function readBaseLogitsHeader(base: ByteSource): Promise<BaseLogitsHeader> {
  const bad = (why: string): never => {
    throw new ModelFileError(base.name, why);
  };
  if (base.size < 20) bad(`is ${base.size} bytes, too short for a base-logits file (saved by mimo perplexity --kl-divergence-base or llama-perplexity)`);
  const head = await base.read(0, 20);
  const magic = String.fromCharCode(...head.subarray(0, 8));
  if (magic !== MAGIC) bad(`does not start with "${MAGIC}": not a base-logits file (saved by mimo perplexity --kl-divergence-base or llama-perplexity)`);
  const view = new DataView(head.buffer, head.byteOffset, 20);
  const contextSize = view.getUint32(8, true);
  const vocabSize = view.getInt32(12, true);
  const chunks = view.getInt32(16, true);
  if (contextSize < 4 || vocabSize < 1 || chunks < 1) bad(`header says context ${contextSize}, vocabulary ${vocabSize}, ${chunks} chunks: not a usable base-logits file`);
  const dataOffset = 20 + 4 * contextSize * chunks;
  const expected = dataOffset + chunks * (contextSize - 1 - firstScored(contextSize)) * rowUnits(vocabSize) * 2;
  if (base.size !== expected) bad(`is ${base.size} bytes, but its header (context ${contextSize}, vocabulary ${vocabSize}, ${chunks} chunks) means ${expected}: truncated or not a base-logits file`);
  const tb = await base.read(20, 4 * contextSize * chunks);
  const tokens = new Int32Array(contextSize * chunks);
  new Uint8Array(tokens.buffer).set(tb);
  return { contextSize, vocabSize, chunks, tokens, dataOffset };
}

const PERCENTILES: readonly [KlPercentile, number][] = [
  ["max", 1], ["99.9", 0.999], ["99", 0.99], ["95", 0.95], ["90", 0.9], ["median", 0.5], ["10", 0.1], ["5", 0.05], ["1", 0.01], ["0.1", 0.001], ["min", 0],
];

function percentile(sorted: Float64Array, fraction: number): number {
  if (fraction <= 0) return sorted[0]!;
  if (fraction >= 1) return sorted[sorted.length - 1]!;
  let p = fraction * (sorted.length - 1);
  const i = Math.floor(p);
  p -= i;
  return (1 - p) * sorted[i]! + p * sorted[Math.min(i + 1, sorted.length - 1)]!;
}

/**
 * KL divergence, top-token agreement and perplexity ratio of `model` against a base model's saved
 * log-probabilities (the same tokens and chunks the base was run on), as llama-perplexity
 * --kl-divergence reports them.
 */
export async function klDivergence(model: Model, base: ByteSource, opts: Omit<PerplexityOptions, "contextSize" | "saveLogits"> = {}): Promise<KlDivergenceResult> {
  const h = await readBaseLogitsHeader(base);
  const V = model.config.vocabSize;
  if (h.vocabSize !== V) throw new ModelFileError(base.name, `was saved from a model with a vocabulary of ${h.vocabSize} tokens, but this model has ${V}: the two cannot be compared`);
  checkContext(model, h.contextSize);
  for (const t of h.tokens) if (t < 0 || t >= V) throw new ModelFileError(base.name, `holds token id ${t}, outside the vocabulary (0..${V - 1})`);
  const n = h.contextSize;
  const first = firstScored(n);
  const perChunk = n - 1 - first;
  const units = rowUnits(V);
  const nChunks = Math.min(h.chunks, opts.chunks ?? Infinity);
  const chunks = perplexityChunks(Array.from(h.tokens), n, model.tokenizer.addBos ? model.tokenizer.bos : undefined, nChunks);
  const rowsPerPass = opts.rowsPerPass ?? defaultRows(V, n);

  let sNll = 0, sNll2 = 0, sBase = 0, sBase2 = 0, sCross = 0, sKl = 0, sKl2 = 0, sDp = 0, sDp2 = 0, sDp4 = 0, same = 0, count = 0;
  const kls = new Float64Array(nChunks * perChunk);
  for (let c = 0; c < nChunks; c++) {
    opts.signal?.throwIfAborted();
    const chunk = chunks[c]!;
    const bytes = await base.read(h.dataOffset + c * perChunk * units * 2, perChunk * units * 2);
    const aligned = new Uint8Array(bytes.byteLength);
    aligned.set(bytes);
    const rowsU16 = new Uint16Array(aligned.buffer);
    const rowsF32 = new Float32Array(aligned.buffer);
    evaluateChunk(model, chunk, rowsPerPass, (logits, row0, rows) => {
      for (let r = 0; r < rows; r++) {
        const i = row0 + r;
        const row = logits.subarray(r * V, (r + 1) * V);
        const { max, lse, argmax } = logSumExp(row);
        const tok = chunk[first + i + 1]!;
        const scale = rowsF32[(i * units) / 2]!;
        const minLogProb = rowsF32[(i * units) / 2 + 1]!;
        const q = rowsU16.subarray(i * units + 4, i * units + 4 + V);
        const nll = max + lse - row[tok]!;
        const nllBase = -(scale * q[tok]! + minLogProb);
        sNll += nll; sNll2 += nll * nll;
        sBase += nllBase; sBase2 += nllBase * nllBase;
        sCross += nll * nllBase;
        // KL(base || Q) over the tokens the base file resolves (within 16 nats of its top token).
        const logZ = max + lse;
        let kl = 0;
        let baseTop = 0;
        let baseTopLog = -Infinity;
        for (let t = 0; t < V; t++) {
          const lpBase = scale * q[t]! + minLogProb;
          if (lpBase > baseTopLog) {
            baseTopLog = lpBase;
            baseTop = t;
          }
          if (lpBase > -LOG_PROB_RANGE) kl += Math.exp(lpBase) * (lpBase - (row[t]! - logZ));
        }
        kls[count] = kl;
        sKl += kl; sKl2 += kl * kl;
        if (argmax === baseTop) same++;
        const dp = Math.exp(-nll) - Math.exp(-nllBase);
        sDp += dp; sDp2 += dp * dp; sDp4 += dp * dp * dp * dp;
        count++;
      }
    });
    opts.onChunk?.({ chunk: c + 1, chunks: nChunks, perplexity: Math.exp(sNll / count) });
    await yieldToEventLoop();
  }
  const logPpl = meanAndUncertainty(sNll, sNll2, count);
  const logPplBase = meanAndUncertainty(sBase, sBase2, count);
  const cov = count < 10 ? 0 : (sCross / count - (sNll / count) * (sBase / count)) / (count - 1);
  const ratio = logPpl.value - logPplBase.value;
  const ratioUnc = Math.sqrt(Math.max(0, logPpl.uncertainty ** 2 + logPplBase.uncertainty ** 2 - 2 * cov));
  const kl = meanAndUncertainty(sKl, sKl2, count);
  const sorted = kls.subarray(0, count).sort();
  const klPercentiles = Object.fromEntries(PERCENTILES.map(([name, f]) => [name, name === "median" ? median(sorted) : percentile(sorted, f)])) as Record<KlPercentile, number>;
  const top = same / count;
  const mse = meanAndUncertainty(sDp2, sDp4, count);
  const rms = Math.sqrt(mse.value);
  return {
    perplexity: { value: Math.exp(logPpl.value), uncertainty: Math.exp(logPpl.value) * logPpl.uncertainty },
    basePerplexity: { value: Math.exp(logPplBase.value), uncertainty: Math.exp(logPplBase.value) * logPplBase.uncertainty },
    logPerplexityRatio: { value: ratio, uncertainty: ratioUnc },
    perplexityRatio: { value: Math.exp(ratio), uncertainty: Math.exp(ratio) * ratioUnc },
    klDivergence: kl,
    klPercentiles,
    sameTopToken: { value: top, uncertainty: count > 1 ? Math.sqrt((top * (1 - top)) / (count - 1)) : 0 },
    meanProbabilityDelta: meanAndUncertainty(sDp, sDp2, count),
    rmsProbabilityDelta: { value: rms, uncertainty: rms > 0 ? (0.5 / rms) * mse.uncertainty : 0 },
    scoredTokens: count,
    chunks: nChunks,
    contextSize: n,
  };
}

function median(sorted: Float64Array): number {
  const n = sorted.length;
  return n % 2 === 0 ? 0.5 * (sorted[n / 2]! + sorted[n / 2 - 1]!) : sorted[(n - 1) / 2]!;
}
