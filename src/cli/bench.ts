// `mimo bench`: llama-bench's measurements through mimo's public API.
//   pp<P>: prefill of P random tokens from an empty cache (tokens/s);
//   tg<N>: N decode steps of one token each, from an empty cache (tokens/s);
//   ttft<P>: a P-token prompt to the first sampled token (ms);
//   load: loadModel to a usable model (ms); peak RSS: the process's high-water mark.
// Two more on request (llama-batched-bench and speculative decoding's cost model):
//   batched (--parallel S,...): S sequences, each prefilled with a short random prompt (untimed),
//     then N steps, each ONE forward pass with every sequence's next token (its greedy choice) and
//     last logits: aggregate tokens/s = S*N / time. S=1 always runs too, as the baseline. These run
//     on a second load of the model with S sequences, so the other tests' figures are unchanged.
//   verify (--verify k,...): on a sequence with P cached positions, the time of one forward pass of
//     1+k tokens with every token's logits (then rolled back) against a 1-token step (k=0) at the
//     same position: ms and the ratio to the 1-token step.
// Each is reported as min / median / max over the repetitions. bench/peers.ts measures llama.cpp and
// wllama with the same definitions (the Engine interface below).
import { readFileSync, statSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
import { loadModel } from "../index.ts";
import { nonNegative } from "./options.ts";
import { openGGUFFile } from "../platform/node-file.ts";
import { tensorName } from "../model/tensors.ts";
import { decodeWeightBytes } from "../model/weights.ts";
import { SeededRandom } from "../sampling/rng.ts";
import { createTokenizer, type Tokenizer } from "../tokenizer/index.ts";
import { benchSpeculative, GROUNDED_PROMPT, SPEC_MODE_NOTE, specModes, specTable, type SpecModeResult } from "./bench-spec.ts";
import { parseSpec } from "./run.ts";

/** One contestant, loaded on one file with a thread count. Every method starts from an empty cache. */
export interface LoadedEngine {
  readonly vocabSize: number;
  /** Threads it runs on, and (mimo) its backend's name, where it says how the count was chosen. */
  readonly threads?: number;
  readonly backend?: string;
  /**
   * wordTokenPool from the engine's own tokenizer, where it has one in this process: measuring
   * should not load a second tokenizer, whose memory would count in the engine's peak RSS.
   */
  wordPool?(): number[];
  /** ms to evaluate `tokens` as one prompt. */
  prefill(tokens: readonly number[]): Promise<number>;
  /** ms for n single-token decode steps, the first on `first`, each next on the greedy choice. */
  decode(first: number, n: number): Promise<number>;
  /** ms from a prompt of `tokens` to its first sampled token. */
  ttft(tokens: readonly number[]): Promise<number>;
  /**
   * Batched decode: a fresh sequence per prompt, each prompt evaluated (untimed), then n steps,
   * each ONE forward pass (one llama_decode) with every sequence's next token, its greedy choice of
   * the previous step, and that token's logits. ms for the n steps. The engine must have been loaded
   * with at least prompts.length sequences.
   */
  batchedDecode?(prompts: readonly (readonly number[])[], n: number): Promise<number>;
  /**
   * Verification cost: a fresh sequence holding `prefix` (untimed), then for each step one forward
   * pass of its tokens after the prefix with every token's logits and greedy choice (timed), each
   * rolled back to the prefix afterwards (untimed). ms per step.
   */
  verify?(prefix: readonly number[], steps: readonly (readonly number[])[]): Promise<number[]>;
  dispose(): Promise<void>;
}

export interface Engine {
  readonly name: string;
  /** Version or build details, for the report. */
  describe(): Promise<string>;
  /** `sequences`: how many sequences can be live at once (mimo's parallel); default 1. threads 0: the engine's default. */
  load(path: string, threads: number, contextSize: number, batchSize: number, sequences?: number): Promise<LoadedEngine>;
}

/** Index of the largest value (the greedy choice). */
export function argmax(v: Float32Array, from = 0, to = v.length): number {
  let best = from;
  let bv = -Infinity;
  for (let i = from; i < to; i++) {
    if (v[i]! > bv) {
      bv = v[i]!;
      best = i;
    }
  }
  return best - from;
}

export const mimoEngine: Engine = {
  name: "mimo",
  async describe() {
    try {
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
      return `mimo ${pkg.version}`;
    } catch {
      return "mimo";
    }
  },
  async load(path, threads, contextSize, _batchSize, sequences = 1) {
    const model = await loadModel(path, { threads: threads || undefined, contextSize, parallel: sequences });
    const vocab = model.config.vocabSize;
    const greedy = { temperature: 0, ignoreEos: true } as const;
    return {
      vocabSize: model.config.vocabSize,
      threads: Number(/ x(\d+)/.exec(model.backendName)?.[1] ?? 1),
      backend: model.backendName,
      wordPool: () => wordTokenPoolOf(model.tokenizer),
      async prefill(tokens) {
        const t0 = performance.now();
        model.evaluate(tokens); // always from an empty cache
        return performance.now() - t0;
      },
      async decode(first, n) {
        const t0 = performance.now();
        // A 1-token prompt (nothing of the cache is reused) is one decode step; each further token is another: n forward passes.
        await model.complete([first], { ...greedy, maxTokens: n });
        return performance.now() - t0;
      },
      async ttft(tokens) {
        // Fresh random tokens: no prefix of the previous call's cache is reused.
        const r = await model.complete(tokens, { ...greedy, maxTokens: 1 });
        return r.stats.timeToFirstTokenMs;
      },
      async batchedDecode(prompts, n) {
        const seqs = prompts.map(() => model.createSequence());
        try {
          // The prompts in one forward pass (untimed); each sequence's first token is its greedy choice.
          let outs = model.forward(seqs.map((sequence, i) => ({ sequence, tokens: prompts[i]!, logits: "last" as const })));
          const next = outs.map((o) => argmax(o.logits));
          const t0 = performance.now();
          for (let step = 0; step < n; step++) {
            outs = model.forward(seqs.map((sequence, i) => ({ sequence, tokens: [next[i]!], logits: "last" as const })));
            for (let i = 0; i < seqs.length; i++) next[i] = argmax(outs[i]!.logits);
          }
          return performance.now() - t0;
        } finally {
          for (const s of seqs) s.release();
        }
      },
      async verify(prefix, steps) {
        const seq = model.createSequence();
        try {
          model.forward([{ sequence: seq, tokens: prefix, logits: "none" }]);
          const p = seq.length;
          const ms: number[] = [];
          for (const tokens of steps) {
            const t0 = performance.now();
            const { logits } = model.forward([{ sequence: seq, tokens, logits: "all" }])[0]!;
            // A verifier compares each position's choice with the next draft token.
            for (let r = 0; r < tokens.length; r++) argmax(logits, r * vocab, (r + 1) * vocab);
            ms.push(performance.now() - t0);
            seq.truncate(p);
          }
          return ms;
        } finally {
          seq.release();
        }
      },
      dispose: () => model.dispose(),
    };
  },
};

export interface Stat {
  readonly min: number;
  readonly median: number;
  readonly max: number;
  readonly values: number[];
}

export function stat(values: readonly number[]): Stat {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { min: s[0] ?? NaN, median, max: s[n - 1] ?? NaN, values: [...values] };
}

/** Peak resident set of this process in bytes (VmHWM; maxRSS where /proc is absent). */
export function peakRssBytes(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** Bytes of weights one decode step reads: every tensor except the embedding rows not used as output and MTP layers. */
export async function weightBytesPerToken(path: string): Promise<{ fileBytes: number; perToken: number; arch: string }> {
  const f = await openGGUFFile(path);
  try {
    const arch = String(f.metadata.get("general.architecture"));
    return { fileBytes: statSync(path).size, perToken: decodeWeightBytes(f), arch };
  } finally {
    await f.close();
  }
}

/** Rows of the file's token embedding: its vocabulary size. */
export async function ggufVocabSize(path: string): Promise<number> {
  const f = await openGGUFFile(path);
  try {
    return f.tensor(tensorName("tokenEmbd")).shape[1] ?? 0;
  } finally {
    await f.close();
  }
}

/**
 * Deterministic random tokens. With a pool, drawn from it (see wordTokenPool), else any id but a
 * few low ones some vocabularies reserve.
 */
export function randomTokens(rng: SeededRandom, n: number, vocab: number, pool?: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(pool && pool.length > 0 ? pool[rng.nextU32() % pool.length]! : 3 + (rng.nextU32() % (vocab - 3)));
  return out;
}

const pools = new Map<string, Promise<number[]>>();

/**
 * Tokens that are a space and lowercase letters (" hello"), kept only if the text re-tokenizes to
 * exactly that token. Any sequence of them round-trips through text, so a contestant whose API
 * takes only text (wllama) evaluates the same tokens as the others. Empty for vocabularies
 * without such tokens (then random ids are used).
 */
export function wordTokenPool(path: string): Promise<number[]> {
  let p = pools.get(path);
  if (!p) {
    p = (async () => {
      const f = await openGGUFFile(path);
      try {
        return wordTokenPoolOf(createTokenizer(f.metadata));
      } finally {
        await f.close();
      }
    })();
    pools.set(path, p);
  }
  return p;
}

/** The pool of wordTokenPool from a tokenizer already in memory. */
export function wordTokenPoolOf(tok: Tokenizer): number[] {
  const pool: number[] = [];
  for (let id = 0; id < tok.vocabSize && pool.length < 4096; id++) {
    const text = tok.decode([id]);
    if (!/^ [a-z]{3,}$/.test(text)) continue;
    const back = tok.encode(text, { addSpecial: false });
    if (back.length === 1 && back[0] === id) pool.push(id);
  }
  return pool;
}

export interface TestSpec {
  /** "pp512", "tg128", "ttft512", "batched S=4 pp32+tg128" or "verify P=128". */
  readonly name: string;
  readonly kind: "pp" | "tg" | "ttft" | "batch" | "verify";
  /** pp, ttft: prompt tokens; tg, batch: decode steps; verify: cached positions P. */
  readonly tokens: number;
  /** batch: sequences S. */
  readonly sequences?: number;
  /** batch: prompt tokens of each sequence. */
  readonly prompt?: number;
  /** verify: the draft lengths k (k=0, the 1-token step, is always measured too). */
  readonly drafts?: readonly number[];
}

/** One figure of a test's repetition (a verify test gives two per k: ms and ratio). */
export interface Measurement {
  readonly name: string;
  readonly unit: "tok/s" | "ms" | "x";
  readonly value: number;
}

export function testsFor(prompts: readonly number[], gens: readonly number[], ttft = true): TestSpec[] {
  const t: TestSpec[] = [];
  for (const p of prompts) if (p > 0) t.push({ name: `pp${p}`, kind: "pp", tokens: p });
  for (const n of gens) if (n > 0) t.push({ name: `tg${n}`, kind: "tg", tokens: n });
  if (ttft) for (const p of prompts) if (p > 0) t.push({ name: `ttft${p}`, kind: "ttft", tokens: p });
  return t;
}

/** Batched-decode tests (S=1 first, as the baseline), N decode steps after a `prompt`-token prompt each. */
export function batchTestsFor(sequences: readonly number[], n: number, prompt: number): TestSpec[] {
  const s = [...new Set([1, ...sequences.filter((x) => x > 0)])].sort((a, b) => a - b);
  if (sequences.every((x) => x <= 0) || !(n > 0)) return [];
  return s.map((S) => ({ name: `batched S=${S} pp${prompt}+tg${n}`, kind: "batch", tokens: n, sequences: S, prompt: Math.max(1, prompt) }));
}

/** The verification-cost test: P cached positions, drafts of k tokens (1+k evaluated). */
export function verifyTestFor(drafts: readonly number[], depth: number): TestSpec[] {
  const ks = [...new Set(drafts.filter((k) => k > 0))].sort((a, b) => a - b);
  return ks.length === 0 ? [] : [{ name: `verify P=${depth}`, kind: "verify", tokens: Math.max(1, depth), drafts: ks }];
}

/** Names of a verify test's figures: "<name> k=<k>" (ms), with " ratio" (x) for the ratio to k=0. */
export const verifyName = (t: TestSpec, k: number, ratio = false): string => `${t.name} k=${k}${ratio ? " ratio" : ""}`;

/** Timed steps per k in one repetition of a verify test (their mean is the repetition's figure). */
export const VERIFY_ITERS = 5;

/** Runs one test once; returns its figures (one for pp/tg/ttft/batch; ms and ratio per k for verify). */
export async function measure(e: LoadedEngine, t: TestSpec, rng: SeededRandom, pool?: readonly number[]): Promise<Measurement[]> {
  if (t.kind === "batch") {
    if (!e.batchedDecode) throw new Error("this engine has no batched decode");
    const S = t.sequences ?? 1;
    const prompts = Array.from({ length: S }, () => randomTokens(rng, t.prompt ?? 32, e.vocabSize, pool));
    const ms = await e.batchedDecode(prompts, t.tokens);
    return [{ name: t.name, unit: "tok/s", value: (S * t.tokens) / (ms / 1000) }];
  }
  if (t.kind === "verify") {
    if (!e.verify) throw new Error("this engine has no verification step");
    const ks = [0, ...(t.drafts ?? [])];
    const prefix = randomTokens(rng, t.tokens, e.vocabSize, pool);
    // One untimed step first (the largest), then VERIFY_ITERS rounds over every k, in alternating
    // order so that a drift over the round hits all k alike.
    const steps: { k: number; tokens: number[] }[] = [{ k: -1, tokens: randomTokens(rng, 1 + ks[ks.length - 1]!, e.vocabSize, pool) }];
    for (let i = 0; i < VERIFY_ITERS; i++) for (const k of i % 2 ? [...ks].reverse() : ks) steps.push({ k, tokens: randomTokens(rng, 1 + k, e.vocabSize, pool) });
    const ms = await e.verify(prefix, steps.map((s) => s.tokens));
    const mean = (k: number) => {
      const v = ms.filter((_, i) => steps[i]!.k === k);
      return v.reduce((a, b) => a + b, 0) / v.length;
    };
    const base = mean(0);
    const out: Measurement[] = [];
    for (const k of ks) {
      const m = mean(k);
      out.push({ name: verifyName(t, k), unit: "ms", value: m });
      if (k > 0) out.push({ name: verifyName(t, k, true), unit: "x", value: m / base });
    }
    return out;
  }
  return [{ name: t.name, unit: t.kind === "ttft" ? "ms" : "tok/s", value: await runTest(e, t, rng, pool) }];
}

/** Runs one test once; returns tokens/s for pp/tg, ms for ttft. */
export async function runTest(e: LoadedEngine, t: TestSpec, rng: SeededRandom, pool?: readonly number[]): Promise<number> {
  if (t.kind === "batch" || t.kind === "verify") return (await measure(e, t, rng, pool))[0]!.value;
  const toks = randomTokens(rng, t.tokens, e.vocabSize, pool);
  if (t.kind === "pp") return t.tokens / ((await e.prefill(toks)) / 1000);
  if (t.kind === "tg") return t.tokens / ((await e.decode(toks[0]!, t.tokens)) / 1000);
  return e.ttft(toks);
}

/**
 * How long every engine decodes, untimed, after loading and before its first measurement. A
 * JavaScript engine reaches its optimized code only after some running: stories15M on 2 threads
 * decoded its first few 128-token runs at 1,200-2,400 tok/s and the later ones at 3,000-3,400
 * (same process, back to back); after 1-1.5 s of decoding the first runs were close to the later.
 */
export const WARMUP_MS = 1000;

/** Untimed runs so that JIT compilation and first-touch costs stay out of the measurements: a prefill, then decode steps for at least `ms`. */
export async function warmup(e: LoadedEngine, rng: SeededRandom, pool?: readonly number[], ms = WARMUP_MS): Promise<void> {
  await e.prefill(randomTokens(rng, 8, e.vocabSize, pool));
  await decodeFor(e, ms, rng, pool);
}

/** Untimed 8-token decodes from random tokens until at least `ms` have passed (at least one). */
export async function decodeFor(e: LoadedEngine, ms: number, rng: SeededRandom, pool?: readonly number[]): Promise<void> {
  const end = performance.now() + ms;
  do await e.decode(randomTokens(rng, 1, e.vocabSize, pool)[0]!, 8);
  while (performance.now() < end);
}

/** Warm-up of the batched path: a few steps with `sequences` sequences. */
export async function warmupBatched(e: LoadedEngine, sequences: number, rng: SeededRandom, pool?: readonly number[]): Promise<void> {
  await e.batchedDecode!(Array.from({ length: sequences }, () => randomTokens(rng, 8, e.vocabSize, pool)), 3);
}

/** Positions a test needs in one sequence. */
function positionsOf(t: TestSpec): number {
  if (t.kind === "batch") return (t.prompt ?? 32) + t.tokens + 1;
  if (t.kind === "verify") return t.tokens + 2 + Math.max(0, ...(t.drafts ?? []));
  return t.tokens;
}

/** Context per sequence and batch size for these tests; sequences: most of any batch test (1 without). */
export function contextFor(tests: readonly TestSpec[]): { contextSize: number; batchSize: number; sequences: number } {
  const most = Math.max(16, ...tests.map(positionsOf));
  const sequences = Math.max(1, ...tests.map((t) => t.sequences ?? 1));
  return { contextSize: Math.ceil((most + 8) / 256) * 256, batchSize: Math.max(512, most), sequences };
}

export interface BenchResult {
  readonly engine: string;
  readonly engineVersion: string;
  readonly file: string;
  readonly fileBytes: number;
  readonly weightBytesPerToken: number;
  readonly threads: number;
  /** The backend's name ("wasm-relaxed-simd x1 (auto: ...)": "(auto...)" when the thread count was the default's choice, and how it was made). */
  readonly backend?: string;
  readonly loadMs: number;
  readonly peakRssBytes: number;
  /** Per test: tokens/s (pp, tg, batched), ms (ttft, verify) or x (verify ratios). */
  readonly tests: { readonly name: string; readonly unit: "tok/s" | "ms" | "x"; readonly stat: Stat }[];
}

export interface BenchParams {
  model: string;
  /** Thread counts; 0: the default (chosen for the model). */
  threads: number[];
  prompt: number[];
  gen: number[];
  reps: number;
  output: "md" | "json";
  seed: number;
  /** Batched decode: sequence counts (empty: no batched test). */
  parallel?: number[];
  /** Batched decode: prompt tokens per sequence (default 32). */
  parallelPrompt?: number;
  /** Batched decode: decode steps (default: the first positive -n, else 128). */
  parallelGen?: number;
  /** Verification cost: draft lengths k (empty: no verify test). */
  verify?: number[];
  /** Verification cost: cached positions P (default 128). */
  verifyDepth?: number;
  /** Untimed decoding after each load, before the first measurement (default WARMUP_MS). */
  warmupMs?: number;
}

/** -t: thread counts; "auto" is 0 (the default count chosen for the model). */
const threadList = (v: string): number[] => list("-t")(v.replace(/\bauto\b/g, "0"));

const list = (name: string) => (v: string): number[] => {
  const parts = v.split(",").map((s) => Number(s.trim()));
  if (parts.length === 0 || parts.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new InvalidArgumentError(`${name} takes non-negative integers separated by commas, got "${v}"`);
  }
  return parts;
};

function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return "-";
  if (unit === "x") return v.toFixed(2);
  return unit === "ms" ? (v < 10 ? v.toFixed(2) : v.toFixed(1)) : v < 10 ? v.toFixed(2) : v.toFixed(1);
}

/** The thread count, marked "(auto)" when the backend chose it for the model. */
export function threadsCell(r: { threads: number; backend?: string }): string {
  return `${r.threads}${r.backend?.includes(" (auto") ? " (auto)" : ""}`;
}

export function markdownTable(results: readonly BenchResult[]): string {
  const lines = [
    "| engine | file | size | threads | test | min | median | max | unit |",
    "|---|---|---:|---:|---|---:|---:|---:|---|",
  ];
  for (const r of results) {
    const size = `${(r.fileBytes / 1e6).toFixed(0)} MB`;
    const row = (test: string, s: Stat, unit: string) =>
      lines.push(`| ${r.engine} | ${r.file} | ${size} | ${threadsCell(r)} | ${test} | ${fmt(s.min, unit)} | ${fmt(s.median, unit)} | ${fmt(s.max, unit)} | ${unit} |`);
    for (const t of r.tests) row(t.name, t.stat, t.unit);
    row("load", stat([r.loadMs]), "ms");
    lines.push(`| ${r.engine} | ${r.file} | ${size} | ${threadsCell(r)} | peak RSS | | ${(r.peakRssBytes / 1e6).toFixed(0)} | | MB |`);
  }
  return lines.join("\n");
}

/** Batched-decode rows: aggregate tok/s and its ratio to 1 sequence (and to tg, where measured). */
export function batchedTable(results: readonly BenchResult[]): string {
  const lines = [
    "| engine | threads | test | sequences | aggregate tok/s (min / median / max) | per sequence tok/s | vs 1 sequence | vs tg |",
    "|---|---:|---|---:|---|---:|---:|---:|",
  ];
  for (const r of results) {
    const batch = r.tests.filter((t) => t.name.startsWith("batched S="));
    const one = batch.find((t) => t.name.startsWith("batched S=1 "))?.stat.median;
    const tg = r.tests.find((t) => /^tg\d+$/.test(t.name))?.stat.median;
    for (const t of batch) {
      const S = Number(/^batched S=(\d+)/.exec(t.name)![1]);
      const m = t.stat.median;
      const x = (d: number | undefined) => (d === undefined ? "-" : `${(m / d).toFixed(2)}x`);
      lines.push(
        `| ${r.engine} | ${r.threads} | ${t.name.replace(/^batched S=\d+ /, "")} | ${S} | ${fmt(t.stat.min, "tok/s")} / **${fmt(m, "tok/s")}** / ${fmt(t.stat.max, "tok/s")} | ${fmt(m / S, "tok/s")} | ${x(one)} | ${x(tg)} |`,
      );
    }
  }
  return lines.length > 2 ? lines.join("\n") : "";
}

/** Verification-cost rows: per k, ms of the 1+k forward pass and its ratio to the 1-token step. */
export function verifyTable(results: readonly BenchResult[]): string {
  const lines = ["| engine | threads | cached positions | k | tokens evaluated | ms (min / median / max) | ratio to 1 token (median) |", "|---|---:|---:|---:|---:|---|---:|"];
  for (const r of results) {
    for (const t of r.tests) {
      const m = /^verify P=(\d+) k=(\d+)$/.exec(t.name);
      if (!m) continue;
      const ratio = r.tests.find((u) => u.name === `${t.name} ratio`)?.stat.median;
      lines.push(
        `| ${r.engine} | ${r.threads} | ${m[1]} | ${m[2]} | ${1 + Number(m[2])} | ${fmt(t.stat.min, "ms")} / **${fmt(t.stat.median, "ms")}** / ${fmt(t.stat.max, "ms")} | ${ratio === undefined ? "1" : ratio.toFixed(2)} |`,
      );
    }
  }
  return lines.length > 2 ? lines.join("\n") : "";
}

/** The tests a BenchParams asks for: the ones on the first load, and the batched ones (their own load). */
export function benchTests(p: BenchParams): { main: TestSpec[]; batched: TestSpec[] } {
  const main = [...testsFor(p.prompt, p.gen), ...verifyTestFor(p.verify ?? [], p.verifyDepth ?? 128)];
  const n = p.parallelGen ?? (p.gen.find((g) => g > 0) || 128);
  const batched = batchTestsFor(p.parallel ?? [], n, p.parallelPrompt ?? 32);
  return { main, batched };
}

/** Repetitions of `tests` on one loaded engine, interleaved test by test; figures by name, in order. */
async function repeat(
  e: LoadedEngine,
  tests: readonly TestSpec[],
  reps: number,
  rng: SeededRandom,
  pool: number[],
  into: Map<string, { unit: Measurement["unit"]; values: number[] }>,
  log: (m: Measurement, rep: number) => void,
): Promise<void> {
  for (let r = 0; r < reps; r++) {
    for (const t of tests) {
      for (const m of await measure(e, t, rng, pool)) {
        if (!into.has(m.name)) into.set(m.name, { unit: m.unit, values: [] });
        into.get(m.name)!.values.push(m.value);
        log(m, r);
      }
    }
  }
}

/** The whole `mimo bench` run in this process (each thread count: load, warm up, reps). */
export async function runBench(p: BenchParams, log: (s: string) => void = () => {}): Promise<BenchResult[]> {
  const { main, batched } = benchTests(p);
  if (main.length === 0 && batched.length === 0) throw new RangeError("nothing to measure: -p and -n are both 0");
  if (!(p.reps >= 1)) throw new RangeError(`-r must be at least 1, got ${p.reps}`);
  const warmupMs = p.warmupMs ?? WARMUP_MS;
  if (!(Number.isInteger(warmupMs) && warmupMs >= 0)) throw new RangeError(`--warmup must be a whole number of milliseconds >= 0, got ${warmupMs}`);
  const w = await weightBytesPerToken(p.model);
  const version = await mimoEngine.describe();
  const results: BenchResult[] = [];
  for (const threads of p.threads) {
    if (!(threads >= 0)) throw new RangeError(`-t must be auto or at least 1, got ${threads}`);
    const rng = new SeededRandom(p.seed);
    let loadMs = NaN;
    let rss = 0;
    const figures = new Map<string, { unit: Measurement["unit"]; values: number[] }>();
    let used = threads;
    let backend: string | undefined;
    const note = (m: Measurement, r: number) => log(`mimo bench: t=${used || "auto"} rep ${r + 1}/${p.reps} ${m.name}: ${fmt(m.value, m.unit)} ${m.unit}`);
    // pp, tg, ttft and verify on a model with one sequence (the figures of a plain run).
    if (main.length > 0) {
      const { contextSize, batchSize } = contextFor(main);
      const t0 = performance.now();
      const e = await mimoEngine.load(p.model, threads, contextSize, batchSize);
      loadMs = performance.now() - t0;
      used = e.threads ?? threads;
      backend = e.backend;
      const pool = e.wordPool!();
      try {
        await warmup(e, rng, pool, warmupMs);
        await repeat(e, main, p.reps, rng, pool, figures, note);
      } finally {
        rss = peakRssBytes();
        await e.dispose();
      }
    }
    // Batched decode on a second load with as many sequences as the largest S.
    if (batched.length > 0) {
      const { contextSize, batchSize, sequences } = contextFor(batched);
      const t0 = performance.now();
      const e = await mimoEngine.load(p.model, threads, contextSize, batchSize, sequences);
      if (!Number.isFinite(loadMs)) loadMs = performance.now() - t0;
      if (!backend) {
        used = e.threads ?? threads;
        backend = e.backend;
      }
      const pool = e.wordPool!();
      try {
        await warmupBatched(e, sequences, rng, pool);
        await repeat(e, batched, p.reps, rng, pool, figures, note);
      } finally {
        if (rss === 0) rss = peakRssBytes();
        await e.dispose();
      }
    }
    results.push({
      engine: "mimo",
      engineVersion: version,
      file: p.model,
      fileBytes: w.fileBytes,
      weightBytesPerToken: w.perToken,
      threads: used,
      backend,
      loadMs,
      peakRssBytes: rss,
      tests: [...figures].map(([name, f]) => ({ name, unit: f.unit, stat: stat(f.values) })),
    });
  }
  return results;
}

export async function benchCommand(o: {
  model: string;
  threads: number[];
  nPrompt: number[];
  nGen: number[];
  repetitions: number;
  output: string;
  seed: number;
  quiet?: boolean;
  parallel?: number[];
  parallelPrompt?: number;
  parallelGen?: number;
  verify?: number[];
  verifyDepth?: number;
  scenario?: string;
  peer?: boolean;
  commands?: number;
  pause?: number;
  warmup?: number;
  spec?: string;
  replay?: number[];
  real?: boolean;
  draftMax?: number;
  draftMin?: number;
  draftPMin?: number;
  fixed?: boolean;
  prompt?: string;
  profile?: boolean;
}): Promise<void> {
  if (o.output !== "md" && o.output !== "json") throw new InvalidArgumentError(`-o must be md or json, got "${o.output}"`);
  if (o.profile) {
    const { runProfile, profileTable } = await import("./bench-profile.ts");
    const results = await runProfile({
      model: o.model,
      threads: o.threads,
      tokens: o.nGen.find((g) => g > 0) ?? 128,
      reps: o.repetitions,
      seed: o.seed,
      log: o.quiet ? undefined : (s) => process.stderr.write(s + "\n"),
    });
    if (o.output === "json") process.stdout.write(JSON.stringify(results, null, 2) + "\n");
    else {
      process.stdout.write(profileTable(results) + "\n\n");
      process.stdout.write(
        "Wall-clock time on the calling thread (thread 0 also runs its share of every matmul and attention): a matmul row is that kernel's time on thread 0, " +
          "sync rows are waking the workers and waiting for them to finish; italic rows are what remains between the measured ones. " +
          "Profiling costs a clock reading or two per op (compare the plain and profiled tok/s).\n",
      );
    }
    return;
  }
  if (o.spec !== undefined) return specBenchCommand({ ...o, spec: o.spec });
  if (o.scenario !== undefined) {
    if (o.scenario !== "command") throw new InvalidArgumentError(`--scenario must be "command", got "${o.scenario}"`);
    const { runCommandScenario } = await import("./bench-command.ts");
    const table = await runCommandScenario({ model: [o.model], threads: o.threads[0] || 1, peer: o.peer ?? true, commands: o.commands, pauseMs: o.pause, log: o.quiet ? undefined : (s) => process.stderr.write(s + "\n") });
    process.stdout.write(table + "\n");
    return;
  }
  const results = await runBench(
    {
      model: o.model,
      threads: o.threads,
      prompt: o.nPrompt,
      gen: o.nGen,
      reps: o.repetitions,
      output: o.output,
      seed: o.seed,
      parallel: o.parallel,
      parallelPrompt: o.parallelPrompt,
      parallelGen: o.parallelGen,
      verify: o.verify,
      verifyDepth: o.verifyDepth,
      warmupMs: o.warmup,
    },
    o.quiet ? undefined : (s) => process.stderr.write(s + "\n"),
  );
  if (o.output === "json") process.stdout.write(JSON.stringify(results, null, 2) + "\n");
  else {
    process.stdout.write(markdownTable(results) + "\n");
    process.stdout.write(
      `\n${results[0]?.engineVersion}; weights read per token ${(results[0]!.weightBytesPerToken / 1e6).toFixed(0)} MB; ` +
        `each thread count's figures follow ${(o.warmup ?? WARMUP_MS) / 1000} s of untimed decoding; peak RSS is this process's high-water mark after each thread count.\n`,
    );
    for (const r of results) {
      if (r.backend?.includes(" (auto")) process.stdout.write(`Thread count chosen by mimo (-t auto): ${r.backend}.\n`);
    }
    const b = batchedTable(results);
    if (b) process.stdout.write(`\nBatched decode (one forward pass per step for all sequences; aggregate = sequences x steps / time):\n\n${b}\n`);
    const v = verifyTable(results);
    if (v) process.stdout.write(`\nVerification cost (one forward pass of 1+k tokens with every token's logits, at the same position as the 1-token step):\n\n${v}\n`);
  }
}

/**
 * `mimo bench --spec ...`: plain greedy decoding against speculative decoding on the same prompt,
 * repetitions interleaved; modes "real" and "replay p" (see bench-spec.ts).
 */
async function specBenchCommand(o: Parameters<typeof benchCommand>[0] & { spec: string }): Promise<void> {
  const { speculative, draftModel } = parseSpec(o);
  if (!speculative) throw new Error("--spec needs a method");
  const spec = { ...speculative, adaptive: !o.fixed };
  const modes = specModes(o.real ?? true, o.replay ?? []);
  if (modes.length === 0) throw new InvalidArgumentError("nothing to measure: --no-real without --replay");
  const n = o.nGen[0] ?? 128;
  if (!(n > 1)) throw new InvalidArgumentError(`-n must be more than 1 for --spec, got ${n}`);
  const log = o.quiet ? () => {} : (s: string) => process.stderr.write(s + "\n");
  const rows: { engine: string; threads: number; method: string; result: SpecModeResult }[] = [];
  for (const threads of o.threads) {
    const model = await loadModel(o.model, { threads: threads || undefined, draftModel, contextSize: 4096 });
    try {
      const prompt = model.tokenize(o.prompt ?? GROUNDED_PROMPT);
      if (prompt.length + n + 16 > model.contextSize) throw new RangeError(`prompt (${prompt.length} tokens) + -n ${n} do not fit the context (${model.contextSize})`);
      const results = await benchSpeculative(model, prompt, n, spec, modes, o.repetitions, log, o.seed);
      for (const result of results) rows.push({ engine: "mimo", threads, method: o.spec, result });
    } finally {
      await model.dispose();
    }
  }
  if (o.output === "json") {
    process.stdout.write(JSON.stringify({ model: o.model, spec, n, reps: o.repetitions, note: SPEC_MODE_NOTE, rows }, null, 2) + "\n");
    return;
  }
  process.stdout.write(specTable(rows) + "\n\n");
  process.stdout.write(
    `${o.model}; ${n} greedy tokens after the prompt, ${o.repetitions} interleaved repetitions (tok/s: medians; speedup: median of each repetition's ratio). ` +
      `Draft length ${spec.adaptive ? "adaptive" : "fixed"}, draftMax ${spec.draftMax ?? "default"}.\n${SPEC_MODE_NOTE}\n`,
  );
}

/** Adds `mimo bench` to the CLI. */
export function registerBenchCommand(program: Command): void {
  const int = nonNegative;
  program
    .command("bench")
    .description("measure prefill and decode speed, time to first token, load time and peak memory (like llama-bench)")
    .requiredOption("-m, --model <file>", "GGUF model file")
    .option("-t, --threads <list>", "thread counts, comma-separated, \"auto\": the default chosen for the model (auto,1,2)", threadList, [0])
    .option("-p, --n-prompt <list>", "prompt tokens for pp and ttft, comma-separated; 0 = skip", list("-p"), [512])
    .option("-n, --n-gen <list>", "decode steps for tg, comma-separated; 0 = skip", list("-n"), [128])
    .option("-r, --repetitions <n>", "repetitions of each test", int("-r"), 5)
    .option("-o, --output <format>", "md or json", "md")
    .option("--seed <n>", "seed of the random tokens", int("--seed"), 1)
    .option("-q, --quiet", "no per-repetition lines on stderr")
    .option("--warmup <ms>", `untimed decoding after loading, before the first measurement (JIT compilation; 0: one short prefill and decode only)`, int("--warmup"), WARMUP_MS)
    .option("--parallel <list>", "batched decode: sequence counts, comma-separated (1 is always added as the baseline)", list("--parallel"))
    .option("--parallel-prompt <n>", "batched decode: prompt tokens of each sequence", int("--parallel-prompt"), 32)
    .option("--parallel-gen <n>", "batched decode: decode steps (default: the first -n, else 128)", int("--parallel-gen"))
    .option("--verify <list>", "verification cost: draft lengths k, comma-separated (a 1+k token forward pass against a 1-token one)", list("--verify"))
    .option("--verify-depth <n>", "verification cost: cached positions before the drafts", int("--verify-depth"), 128)
    .option("--scenario <name>", 'instead of the speed tests, an application scenario: "command" (voice command to validated JSON action, vs llama.cpp)')
    .option("--no-peer", "scenario: skip the llama.cpp (node-llama-cpp) comparison")
    .option("--commands <n>", "scenario: how many of the 50 commands to run", int("--commands"))
    .option("--pause <ms>", "scenario: idle time before each command (a command after a pause, as on a device; default 0: back to back)", int("--pause"))
    .option("--spec <method>", "speculative decoding against plain decoding instead: mtp, ngram or draft:FILE (uses -n, -t, -r)")
    .option("--replay <list>", "--spec: also replay recorded tokens at these acceptance rates (a simulation of acceptance), comma-separated", (v: string) => v.split(",").map(Number))
    .option("--no-real", "--spec: skip the real mode (the proposer's own drafts)")
    .option("--draft-max <n>", "--spec: most draft tokens per step", int("--draft-max"))
    .option("--draft-min <n>", "--spec: fewest draft tokens worth verifying", int("--draft-min"))
    .option("--draft-p-min <p>", "--spec: proposer confidence to keep drafting (mtp, draft)", Number)
    .option("--fixed", "--spec: always draft --draft-max tokens (no adaptive length)")
    .option("--prompt <text>", "--spec: the prompt (default: an input-grounded story prompt)")
    .option("--profile", "instead of the speed tests, where the time of a decode step goes: µs per token by op (uses -n, -t, -r)")
    .action(benchCommand);
}
