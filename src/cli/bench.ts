// `mimo bench`: llama-bench's measurements through mimo's public API.
//   pp<P>: prefill of P random tokens from an empty cache (tokens/s);
//   tg<N>: N decode steps of one token each, from an empty cache (tokens/s);
//   ttft<P>: a P-token prompt to the first sampled token (ms);
//   load: loadModel to a usable model (ms); peak RSS: the process's high-water mark.
// Each is reported as min / median / max over the repetitions. bench/peers.ts measures llama.cpp and
// wllama with the same definitions (the Engine interface below).
import { readFileSync, statSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
import { loadModel } from "../index.ts";
import { openGGUFFile } from "../platform/node-file.ts";
import { SeededRandom } from "../sampling/rng.ts";
import { createTokenizer, type Tokenizer } from "../tokenizer/index.ts";

/** One contestant, loaded on one file with a thread count. Every method starts from an empty cache. */
export interface LoadedEngine {
  readonly vocabSize: number;
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
  dispose(): Promise<void>;
}

export interface Engine {
  readonly name: string;
  /** Version or build details, for the report. */
  describe(): Promise<string>;
  load(path: string, threads: number, contextSize: number, batchSize: number): Promise<LoadedEngine>;
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
  async load(path, threads, contextSize) {
    const model = await loadModel(path, { threads, contextSize });
    const greedy = { temperature: 0, ignoreEos: true } as const;
    return {
      vocabSize: model.config.vocabSize,
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
    const blocks = Number(f.metadata.get(`${arch}.block_count`) ?? 0);
    const mtp = Number(f.metadata.get(`${arch}.nextn_predict_layers`) ?? 0);
    const tied = !f.tensors.some((t) => t.name === "output.weight");
    let perToken = 0;
    for (const t of f.tensors) {
      const layer = /^blk\.(\d+)\./.exec(t.name);
      if (layer && Number(layer[1]) >= blocks - mtp) continue;
      if (t.name === "token_embd.weight" && !tied) continue;
      perToken += t.byteSize;
    }
    return { fileBytes: statSync(path).size, perToken, arch };
  } finally {
    await f.close();
  }
}

/** Rows of the file's token embedding: its vocabulary size. */
export async function ggufVocabSize(path: string): Promise<number> {
  const f = await openGGUFFile(path);
  try {
    return f.tensor("token_embd.weight").shape[1] ?? 0;
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
  /** "pp512", "tg128" or "ttft512". */
  readonly name: string;
  readonly kind: "pp" | "tg" | "ttft";
  readonly tokens: number;
}

export function testsFor(prompts: readonly number[], gens: readonly number[], ttft = true): TestSpec[] {
  const t: TestSpec[] = [];
  for (const p of prompts) if (p > 0) t.push({ name: `pp${p}`, kind: "pp", tokens: p });
  for (const n of gens) if (n > 0) t.push({ name: `tg${n}`, kind: "tg", tokens: n });
  if (ttft) for (const p of prompts) if (p > 0) t.push({ name: `ttft${p}`, kind: "ttft", tokens: p });
  return t;
}

/** Runs one test once; returns tokens/s for pp/tg, ms for ttft. */
export async function runTest(e: LoadedEngine, t: TestSpec, rng: SeededRandom, pool?: readonly number[]): Promise<number> {
  const toks = randomTokens(rng, t.tokens, e.vocabSize, pool);
  if (t.kind === "pp") return t.tokens / ((await e.prefill(toks)) / 1000);
  if (t.kind === "tg") return t.tokens / ((await e.decode(toks[0]!, t.tokens)) / 1000);
  return e.ttft(toks);
}

/** A few small runs so that JIT compilation and first-touch costs stay out of the measurements. */
export async function warmup(e: LoadedEngine, rng: SeededRandom, pool?: readonly number[]): Promise<void> {
  await e.prefill(randomTokens(rng, 8, e.vocabSize, pool));
  await e.decode(randomTokens(rng, 1, e.vocabSize, pool)[0]!, 2);
}

export function contextFor(tests: readonly TestSpec[]): { contextSize: number; batchSize: number } {
  const most = Math.max(16, ...tests.map((t) => t.tokens));
  return { contextSize: Math.ceil((most + 8) / 256) * 256, batchSize: Math.max(512, most) };
}

export interface BenchResult {
  readonly engine: string;
  readonly engineVersion: string;
  readonly file: string;
  readonly fileBytes: number;
  readonly weightBytesPerToken: number;
  readonly threads: number;
  readonly loadMs: number;
  readonly peakRssBytes: number;
  /** Per test: tokens/s (pp, tg) or ms (ttft). */
  readonly tests: { readonly name: string; readonly unit: "tok/s" | "ms"; readonly stat: Stat }[];
}

export interface BenchParams {
  model: string;
  threads: number[];
  prompt: number[];
  gen: number[];
  reps: number;
  output: "md" | "json";
  seed: number;
}

const list = (name: string) => (v: string): number[] => {
  const parts = v.split(",").map((s) => Number(s.trim()));
  if (parts.length === 0 || parts.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new InvalidArgumentError(`${name} takes non-negative integers separated by commas, got "${v}"`);
  }
  return parts;
};

function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return "-";
  return unit === "ms" ? (v < 10 ? v.toFixed(2) : v.toFixed(1)) : v < 10 ? v.toFixed(2) : v.toFixed(1);
}

export function markdownTable(results: readonly BenchResult[]): string {
  const lines = [
    "| engine | file | size | threads | test | min | median | max | unit |",
    "|---|---|---:|---:|---|---:|---:|---:|---|",
  ];
  for (const r of results) {
    const size = `${(r.fileBytes / 1e6).toFixed(0)} MB`;
    const row = (test: string, s: Stat, unit: string) =>
      lines.push(`| ${r.engine} | ${r.file} | ${size} | ${r.threads} | ${test} | ${fmt(s.min, unit)} | ${fmt(s.median, unit)} | ${fmt(s.max, unit)} | ${unit} |`);
    for (const t of r.tests) row(t.name, t.stat, t.unit);
    row("load", stat([r.loadMs]), "ms");
    lines.push(`| ${r.engine} | ${r.file} | ${size} | ${r.threads} | peak RSS | | ${(r.peakRssBytes / 1e6).toFixed(0)} | | MB |`);
  }
  return lines.join("\n");
}

/** The whole `mimo bench` run in this process (each thread count: load, warm up, reps). */
export async function runBench(p: BenchParams, log: (s: string) => void = () => {}): Promise<BenchResult[]> {
  const tests = testsFor(p.prompt, p.gen);
  if (tests.length === 0) throw new RangeError("nothing to measure: -p and -n are both 0");
  if (!(p.reps >= 1)) throw new RangeError(`-r must be at least 1, got ${p.reps}`);
  const { contextSize, batchSize } = contextFor(tests);
  const w = await weightBytesPerToken(p.model);
  const version = await mimoEngine.describe();
  const results: BenchResult[] = [];
  for (const threads of p.threads) {
    if (!(threads >= 1)) throw new RangeError(`-t must be at least 1, got ${threads}`);
    const rng = new SeededRandom(p.seed);
    const t0 = performance.now();
    const e = await mimoEngine.load(p.model, threads, contextSize, batchSize);
    const loadMs = performance.now() - t0;
    const pool = e.wordPool!();
    try {
      await warmup(e, rng, pool);
      const values = new Map<string, number[]>(tests.map((t) => [t.name, []]));
      for (let r = 0; r < p.reps; r++) {
        for (const t of tests) {
          const v = await runTest(e, t, rng, pool);
          values.get(t.name)!.push(v);
          log(`mimo bench: t=${threads} rep ${r + 1}/${p.reps} ${t.name}: ${fmt(v, t.kind === "ttft" ? "ms" : "tok/s")} ${t.kind === "ttft" ? "ms" : "tok/s"}`);
        }
      }
      results.push({
        engine: "mimo",
        engineVersion: version,
        file: p.model,
        fileBytes: w.fileBytes,
        weightBytesPerToken: w.perToken,
        threads,
        loadMs,
        peakRssBytes: peakRssBytes(),
        tests: tests.map((t) => ({ name: t.name, unit: t.kind === "ttft" ? "ms" : "tok/s", stat: stat(values.get(t.name)!) })),
      });
    } finally {
      await e.dispose();
    }
  }
  return results;
}

export async function benchCommand(o: { model: string; threads: number[]; nPrompt: number[]; nGen: number[]; repetitions: number; output: string; seed: number; quiet?: boolean }): Promise<void> {
  if (o.output !== "md" && o.output !== "json") throw new InvalidArgumentError(`-o must be md or json, got "${o.output}"`);
  const results = await runBench(
    { model: o.model, threads: o.threads, prompt: o.nPrompt, gen: o.nGen, reps: o.repetitions, output: o.output, seed: o.seed },
    o.quiet ? undefined : (s) => process.stderr.write(s + "\n"),
  );
  if (o.output === "json") process.stdout.write(JSON.stringify(results, null, 2) + "\n");
  else {
    process.stdout.write(markdownTable(results) + "\n");
    process.stdout.write(
      `\n${results[0]?.engineVersion}; weights read per token ${(results[0]!.weightBytesPerToken / 1e6).toFixed(0)} MB; ` +
        `peak RSS is this process's high-water mark after each thread count.\n`,
    );
  }
}

/** Adds `mimo bench` to the CLI. */
export function registerBenchCommand(program: Command): void {
  const int = (name: string) => (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
  program
    .command("bench")
    .description("measure prefill and decode speed, time to first token, load time and peak memory (like llama-bench)")
    .requiredOption("-m, --model <file>", "GGUF model file")
    .option("-t, --threads <list>", "thread counts, comma-separated (1,2)", list("-t"), [1])
    .option("-p, --n-prompt <list>", "prompt tokens for pp and ttft, comma-separated; 0 = skip", list("-p"), [512])
    .option("-n, --n-gen <list>", "decode steps for tg, comma-separated; 0 = skip", list("-n"), [128])
    .option("-r, --repetitions <n>", "repetitions of each test", int("-r"), 5)
    .option("-o, --output <format>", "md or json", "md")
    .option("--seed <n>", "seed of the random tokens", int("--seed"), 1)
    .option("-q, --quiet", "no per-repetition lines on stderr")
    .action(benchCommand);
}
