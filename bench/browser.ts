// mimo against wllama (llama.cpp compiled to WebAssembly, what web pages use today) in headless
// Chromium, and mimo in Chromium against mimo in Node, on the same files, tokens and threads.
// A loopback server gives the page cross-origin isolation (COOP/COEP), so both engines run their
// multi-threaded builds; each contestant has its own page (wllama in its worker, mimo with its
// module Web Workers) or, for mimo in Node, its own process (bench/runner.ts). Definitions are
// bench:peers' (src/cli/bench.ts): pp = prefill of P tokens from an empty cache, tg = N single-token
// decode steps from an empty cache, timed inside the page with performance.now(). Repetitions are
// interleaved test by test (A, B, C, A, B, C, ...), medians reported.
//
//   npm run bench:browser                              # default files, threads 1,2, pp128 tg128, 3 reps
//   npm run bench:browser -- --files stories260K -t 1 -p 32 -n 32 -r 1 --no-save
//   npm run bench:browser -- --engines mimo,wllama     # without mimo in Node
import { createServer } from "node:http";
import { readFileSync, mkdirSync, writeFileSync, existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { basename, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium, type Browser } from "playwright-core";
import { WARMUP_MS, contextFor, stat, testsFor, weightBytesPerToken, type Stat, type TestSpec } from "../src/cli/bench.ts";
import { openGGUFFile } from "../src/platform/node-file.ts";
import { SeededRandom } from "../src/sampling/rng.ts";
import { createTokenizer, type Tokenizer } from "../src/tokenizer/index.ts";
import { measureBandwidth } from "./bandwidth.ts";
import { PREWARM_MS, describeCores, probeCores, type CoreProbe } from "./cores.ts";
import { Contestant } from "./contestant.ts";
import { benchFile, warmPageCache } from "./files.ts";
import { machineInfo } from "./machine.ts";
import type { LoadReply } from "./runner.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const DEFAULT_FILES = "stories15m:Q8_0,stories42m:Q4_0,stories42m:Q8_0,stories42m:Q4_K,stories260K";
const ENGINES = ["mimo", "wllama", "mimo-node"] as const;
type EngineName = (typeof ENGINES)[number];

const { values: a } = parseArgs({
  options: {
    files: { type: "string", default: DEFAULT_FILES },
    threads: { type: "string", short: "t", default: "1,2" },
    prompt: { type: "string", short: "p", default: "128" },
    gen: { type: "string", short: "n", default: "128" },
    reps: { type: "string", short: "r", default: "3" },
    engines: { type: "string", default: ENGINES.join(",") },
    chromium: { type: "string", default: process.env.MIMO_CHROMIUM ?? "/usr/bin/chromium" },
    "no-save": { type: "boolean", default: false },
    "no-prewarm": { type: "boolean", default: false },
    "no-bandwidth": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    verbose: { type: "boolean", short: "v", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (a.help) {
  process.stdout.write(
    "npm run bench:browser -- [--files preset:TYPE|stories260K|path,...] [-t 1,2] [-p 128] [-n 128] [-r 3]\n" +
      "                         [--engines mimo,wllama,mimo-node] [--chromium PATH] [--no-prewarm] [--no-save] [--no-bandwidth] [--json]\n" +
      `  default files: ${DEFAULT_FILES}\n` +
      "  mimo and wllama run in headless Chromium (a loopback page with COOP/COEP); mimo-node is mimo in a Node process.\n",
  );
  process.exit(0);
}
const ints = (flag: string, s: string) =>
  s.split(",").map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`${flag}: not a positive integer: "${x}"`);
    return n;
  });
const fileSpecs = a.files.split(",").map((s) => s.trim()).filter(Boolean);
const threadList = ints("-t", a.threads);
const prompt = ints("-p", a.prompt)[0]!;
const gen = ints("-n", a.gen)[0]!;
const reps = ints("-r", a.reps)[0]!;
const engines = a.engines.split(",").map((s) => s.trim()) as EngineName[];
for (const e of engines) if (!ENGINES.includes(e)) throw new RangeError(`--engines: unknown engine "${e}" (one of ${ENGINES.join(", ")})`);
if (!existsSync(a.chromium)) throw new Error(`no Chromium at ${a.chromium} (apt-get install chromium, or --chromium PATH / MIMO_CHROMIUM)`);
if (!existsSync(join(root, "dist/browser.js"))) throw new Error(`${root}dist/browser.js is missing: run npm run build`);
const log = (s: string) => process.stderr.write(`bench:browser: ${s}\n`);

// ---- the page: both engines behind the same three calls, timed in the page ----
const WLLAMA = "/node_modules/@wllama/wllama/esm/";
const PAGE = `<!doctype html><meta charset="utf-8"><title>bench:browser</title>
<script type="importmap">{ "imports": { "@huggingface/jinja": "/node_modules/@huggingface/jinja/dist/index.js" } }</script>
<script type="module">
import { loadModel } from "/dist/browser.js";
import { Wllama } from "${WLLAMA}index.js";
const VERBOSE = ${a.verbose ? "true" : "false"};
const loaders = {
  async mimo(url, threads, contextSize) {
    const model = await loadModel(url, { threads, contextSize, cache: false });
    const greedy = { temperature: 0, ignoreEos: true };
    return {
      describe: model.backendName,
      async prefill(tokens) {
        const t0 = performance.now();
        model.evaluate(tokens);
        return performance.now() - t0;
      },
      async decode(first, n) {
        const t0 = performance.now();
        const r = await model.complete([first], { ...greedy, maxTokens: n });
        const ms = performance.now() - t0;
        if (r.stats.generatedTokens !== n) throw new Error("mimo generated " + r.stats.generatedTokens + " tokens, not " + n);
        return ms;
      },
      dispose: () => model.dispose(),
    };
  },
  async wllama(url, threads, contextSize, batchSize, byteTokens) {
    // wllama 3.13 fails a completion whose text is not valid UTF-8 (its JSON writer throws), which
    // a random-weights model's byte tokens produce: they are never sampled (a 256-entry bias).
    const noBytes = byteTokens.map((id) => [id, false]);
    const quiet = { debug() {}, log() {}, info() {}, warn: console.warn, error: console.error };
    const w = new Wllama({ default: "${WLLAMA}wasm/wllama.wasm" }, VERBOSE ? {} : { logger: quiet, suppressNativeLog: true });
    const blob = await (await fetch(url)).blob();
    // wllama wants a .gguf name on the file.
    await w.loadModel([new File([blob], url.split("/").pop(), { type: "application/octet-stream" })], {
      n_threads: threads, n_ctx: contextSize, n_batch: batchSize, n_ubatch: Math.min(batchSize, 512),
      n_gpu_layers: 0, n_parallel: 1, flash_attn: false,
    });
    // llama-server's completion API. It takes a text prompt only (token ids are refused), so the
    // harness passes the text whose tokenization is the test's tokens; the count wllama reports
    // is checked. It always samples at least one token, so its prefill figure is its own
    // prompt-evaluation time (timings.prompt_ms), without the message round trip to its worker.
    const run = async (prompt, tokens, n) => {
      const r = await w.createCompletion({ prompt, n_predict: n, temperature: 0, ignore_eos: true, cache_prompt: false, stream: false, logit_bias: noBytes });
      const t = r.timings ?? {};
      if (t.prompt_n !== tokens || (t.predicted_n ?? 0) !== Math.max(1, n)) throw new Error("wllama evaluated " + t.prompt_n + " prompt tokens and predicted " + t.predicted_n + ", not " + tokens + " and " + n);
      return t;
    };
    const mt = w.isMultithread();
    return {
      describe: "@wllama/wllama (llama.cpp " + Wllama.getLibllamaVersion() + "), " + (mt ? "multi-thread x" + w.getNumThreads() : "single-thread"),
      async prefill(tokens, text) {
        return (await run(text, tokens.length, 0)).prompt_ms;
      },
      async decode(first, n, text) {
        const t0 = performance.now();
        await run(text, 1, n);
        return performance.now() - t0;
      },
      dispose: () => w.exit(),
    };
  },
};
let engine;
window.bench = {
  async load(name, url, threads, contextSize, batchSize, byteTokens) {
    engine = await loaders[name](url, threads, contextSize, batchSize, byteTokens);
    return { describe: engine.describe, isolated: crossOriginIsolated };
  },
  prefill: (tokens, text) => engine.prefill(tokens, text),
  decode: (first, n, text) => engine.decode(first, n, text),
  async dispose() { await engine?.dispose(); engine = undefined; },
};
window.ready = true;
</script>`;

const types: Record<string, string> = { ".js": "text/javascript", ".wasm": "application/wasm", ".map": "application/json" };
const served = new Map<string, string>(); // /files/NAME -> path on disk
const STATIC = /^(dist|build\/kernels|node_modules\/@huggingface\/jinja\/dist|node_modules\/@wllama\/wllama\/esm)\//;
const server = createServer(async (req, res) => {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  const h = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };
  if (path === "/") return void res.writeHead(200, { ...h, "Content-Type": "text/html" }).end(PAGE);
  if (path === "/favicon.ico") return void res.writeHead(204).end();
  const rel = normalize(decodeURIComponent(path)).replace(/^\/+/, "");
  const file = served.get(path) ?? (STATIC.test(rel) ? join(root, rel) : undefined);
  if (!file) return void res.writeHead(404).end();
  try {
    const body = await readFile(file);
    res.writeHead(200, { ...h, "Content-Type": types[extname(file)] ?? "application/octet-stream" }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

/** What the harness asks of a contestant: ms of one prefill / of n decode steps (text: the same tokens as text). */
interface Contender {
  describe: string;
  prefill(tokens: readonly number[], text: string): Promise<number>;
  decode(first: number, n: number, text: string): Promise<number>;
  close(): Promise<void>;
}

type PageBench = {
  load(...a: unknown[]): Promise<{ describe: string; isolated: boolean }>;
  prefill(t: readonly number[], text: string): Promise<number>;
  decode(f: number, n: number, text: string): Promise<number>;
  dispose(): Promise<void>;
};

/** mimo or wllama in its own Chromium page. */
async function pageContender(browser: Browser, engine: string, url: string, threads: number, contextSize: number, batchSize: number, byteTokens: number[]): Promise<Contender> {
  const page = await browser.newPage();
  page.on("pageerror", (e) => log(`${engine} page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) log(`${engine} page: ${r.status()} for ${r.url()}`);
  });
  page.on("console", (m) => {
    if (a.verbose || m.type() === "error" || m.type() === "warning") log(`${engine} page ${m.type()}: ${m.text()}`);
  });
  await page.goto(`${base}/`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  const r = await page.evaluate(([e, u, t, c, b, y]) => (window as unknown as { bench: PageBench }).bench.load(e, u, t, c, b, y), [engine, url, threads, contextSize, batchSize, byteTokens] as const);
  if (!r.isolated) throw new Error("the page is not cross-origin isolated");
  return {
    describe: r.describe,
    async prefill(tokens, text) {
      await page.bringToFront();
      return page.evaluate(([t, s]) => (window as unknown as { bench: PageBench }).bench.prefill(t, s), [tokens as number[], text] as const);
    },
    async decode(first, n, text) {
      await page.bringToFront();
      return page.evaluate(([f, k, s]) => (window as unknown as { bench: PageBench }).bench.decode(f, k, s), [first, n, text] as const);
    },
    async close() {
      await page.evaluate(() => (window as unknown as { bench: PageBench }).bench.dispose()).catch(() => {});
      await page.close();
    },
  };
}

/** mimo in its own Node process (bench/runner.ts, as bench:peers runs it). */
async function nodeContender(file: string, threads: number, contextSize: number, batchSize: number): Promise<Contender> {
  const c = new Contestant("mimo");
  try {
    await c.ready;
    const r = await c.request<LoadReply>({ cmd: "load", file, threads, contextSize, batchSize, pool: [] });
    return {
      describe: `${r.version}, Node ${process.versions.node}`,
      prefill: (tokens) => c.request<number>({ cmd: "prefill", tokens: [...tokens] }),
      decode: (first, n) => c.request<number>({ cmd: "decode", first, n }),
      close: () => c.close(),
    };
  } catch (e) {
    await c.close();
    throw e;
  }
}

/** The file's tokenizer and its byte tokens (SentencePiece's <0xNN>, token type 6). */
async function fileTokenizer(path: string): Promise<{ tok: Tokenizer; byteTokens: number[] }> {
  const f = await openGGUFFile(path);
  try {
    const types = f.metadata.get("tokenizer.ggml.token_type");
    const byteTokens: number[] = [];
    if (types && typeof (types as ArrayLike<number>).length === "number") {
      const ts = types as ArrayLike<number>;
      for (let i = 0; i < ts.length; i++) if (Number(ts[i]) === 6) byteTokens.push(i);
    }
    return { tok: createTokenizer(f.metadata), byteTokens };
  } finally {
    await f.close();
  }
}

/**
 * A prompt of exactly n tokens: the file's own tokenization (BOS included where its tokenizer adds
 * one) of a random text, so that an engine whose API takes only text (wllama) evaluates the same
 * tokens; its own count is checked in the page.
 */
function promptOf(tok: Tokenizer, rng: SeededRandom, n: number): { tokens: number[]; text: string } {
  const count = (text: string) => tok.encode(text, { addSpecial: true }).length;
  for (let attempt = 0; attempt < 20; attempt++) {
    let text = "";
    while (count(text) < n) {
      const len = 2 + (rng.nextU32() % 6);
      let w = "";
      for (let i = 0; i < len; i++) w += String.fromCharCode(97 + (rng.nextU32() % 26));
      text += (text ? " " : "") + w;
    }
    // The shortest prefix with n tokens (counts grow with the text, not always one by one).
    let lo = 0, hi = text.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (count(text.slice(0, mid)) >= n) hi = mid;
      else lo = mid + 1;
    }
    const cut = text.slice(0, lo);
    const tokens = tok.encode(cut, { addSpecial: true });
    if (tokens.length === n) return { tokens, text: cut };
  }
  throw new Error(`no text of exactly ${n} tokens found`);
}

/**
 * Which of wllama's quantized dot products contain WebAssembly SIMD instructions: function bodies
 * found through the wasm's name section; a body without a single 0xFD byte (the SIMD opcode
 * prefix) has no SIMD instruction (a body with some may, as the byte can also be an immediate).
 */
function wasmSimdUse(path: string, pattern: RegExp): Record<string, boolean> {
  const b = readFileSync(path);
  let p = 8;
  const leb = () => {
    let r = 0, s = 0, x;
    do {
      x = b[p++]!;
      r += (x & 0x7f) * 2 ** s;
      s += 7;
    } while (x & 0x80);
    return r;
  };
  const skipLimits = () => {
    const f = leb();
    leb();
    if (f & 1) leb();
  };
  let imported = 0;
  const bodies: [number, number][] = [];
  const names = new Map<number, string>();
  while (p < b.length) {
    const id = b[p++]!;
    const end = leb() + p;
    if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        for (let k = 0; k < 2; k++) {
          const len = leb(); // module name, then field name
          p += len;
        }
        const kind = b[p++];
        if (kind === 0) (leb(), imported++);
        else if (kind === 1) (p++, skipLimits());
        else if (kind === 2) skipLimits();
        else if (kind === 3) p += 2;
        else if (kind === 4) (p++, leb());
      }
    } else if (id === 10) {
      for (let n = leb(); n > 0; n--) {
        const size = leb();
        bodies.push([p, p + size]);
        p += size;
      }
    } else if (id === 0) {
      const len = leb();
      const name = b.subarray(p, p + len).toString();
      p += len;
      while (name === "name" && p < end) {
        const sub = b[p++]!;
        const subEnd = leb() + p;
        if (sub === 1) {
          for (let n = leb(); n > 0; n--) {
            const index = leb();
            const l = leb();
            names.set(index, b.subarray(p, p + l).toString());
            p += l;
          }
        }
        p = subEnd;
      }
    }
    p = end;
  }
  const out: Record<string, boolean> = {};
  for (const [index, name] of names) {
    const body = bodies[index - imported];
    if (pattern.test(name) && body) out[name] = b.subarray(body[0], body[1]).includes(0xfd);
  }
  return out;
}

interface EngineRun {
  engine: EngineName;
  describe?: string;
  error?: string;
  loadMs?: number;
  tests: Record<string, Stat>;
}
interface ConfigResult {
  file: string;
  fileBytes: number;
  weightBytesPerToken: number;
  threads: number;
  runs: EngineRun[];
}

const tests: TestSpec[] = testsFor([prompt], [gen], false);
// Room for the longest test and a few more positions (llama-server refuses a request that would
// fill its context exactly).
const contextSize = contextFor(tests).contextSize + 16;
const { batchSize } = contextFor(tests);
const loadAtStart = loadavg()[0]!;
log(`${engines.join(" vs ")}; files ${fileSpecs.join(", ")}; threads ${threadList.join(",")}; ${tests.map((t) => t.name).join(", ")}; ${reps} reps`);
const bandwidth = new Map<number, number>();
if (!a["no-bandwidth"]) {
  for (const t of threadList) {
    bandwidth.set(t, await measureBandwidth(t));
    log(`read bandwidth, ${t} thread(s): ${(bandwidth.get(t)! / 1e9).toFixed(1)} GB/s`);
  }
}
let cores: CoreProbe | undefined;
if (!a["no-bandwidth"]) {
  cores = await probeCores();
  log(describeCores(cores));
}

const browser = await chromium.launch({
  executablePath: a.chromium,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"],
});
let closing = false;
browser.on("disconnected", () => {
  if (closing) return;
  log("Chromium exited; stopping");
  process.exit(1);
});
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    closing = true;
    log(`${sig}: stopping`);
    void browser.close().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
  });
}
const chromiumVersion = browser.version();
log(`Chromium ${chromiumVersion}`);
const SETTLE_MS = 300; // as bench:peers: the previous contestant's threads stop polling first
const prewarmMs = a["no-prewarm"] ? 0 : PREWARM_MS;
const results: ConfigResult[] = [];
try {
  for (const spec of fileSpecs) {
    const file = await benchFile(spec, undefined, (s) => log(s.trim()));
    const url = `/files/${basename(file)}`;
    served.set(url, file);
    const w = await weightBytesPerToken(file);
    const { tok, byteTokens } = await fileTokenizer(file);
    // Decode starts from the empty text's tokens (BOS): one token, for every engine.
    const start = { tokens: tok.encode("", { addSpecial: true }), text: "" };
    if (start.tokens.length !== 1) throw new Error(`${basename(file)}: the empty prompt is ${start.tokens.length} tokens, not one (BOS)`);
    for (const threads of threadList) {
      await warmPageCache(file);
      const runs: EngineRun[] = engines.map((engine) => ({ engine, tests: {} }));
      const cs: (Contender | undefined)[] = [];
      const attempt = async (i: number, f: () => Promise<void>) => {
        if (runs[i]!.error !== undefined) return;
        try {
          await f();
        } catch (e) {
          runs[i]!.error = (e as Error).message.split("\n")[0];
          log(`${engines[i]} failed on ${basename(file)} t=${threads}: ${runs[i]!.error}`);
        }
      };
      // Load one at a time, each with the machine to itself, then warm up (JIT compilation).
      const warm = promptOf(tok, new SeededRandom(12345), 8);
      for (const [i, engine] of engines.entries()) {
        await attempt(i, async () => {
          const t0 = performance.now();
          const c = (cs[i] = engine === "mimo-node" ? await nodeContender(file, threads, contextSize, batchSize) : await pageContender(browser, engine, url, threads, contextSize, batchSize, byteTokens));
          runs[i]!.loadMs = performance.now() - t0;
          runs[i]!.describe = c.describe;
          await c.prefill(warm.tokens, warm.text);
          const end = performance.now() + WARMUP_MS; // as bench:peers (src/cli/bench.ts)
          do await c.decode(start.tokens[0]!, 8, start.text);
          while (performance.now() < end);
        });
      }
      const values = runs.map(() => new Map<string, number[]>());
      for (let r = 0; r < reps; r++) {
        for (const [ti, t] of tests.entries()) {
          const p = t.kind === "pp" ? promptOf(tok, new SeededRandom(1000 * (r + 1) + ti), t.tokens) : start; // the same for every contestant
          for (const [i, engine] of engines.entries()) {
            await new Promise((res) => setTimeout(res, SETTLE_MS));
            await attempt(i, async () => {
              const c = cs[i]!;
              // An untimed burst of the same engine first (see bench/cores.ts): steady-state figures.
              const warmEnd = performance.now() + prewarmMs;
              while (performance.now() < warmEnd) await c.decode(start.tokens[0]!, 8, start.text);
              const ms = t.kind === "pp" ? await c.prefill(p.tokens, p.text) : await c.decode(p.tokens[0]!, t.tokens, p.text);
              const v = t.tokens / (ms / 1000);
              if (!values[i]!.has(t.name)) values[i]!.set(t.name, []);
              values[i]!.get(t.name)!.push(v);
              log(`${basename(file)} t=${threads} rep ${r + 1}/${reps} ${t.name} ${engine}: ${v.toFixed(1)} tok/s`);
            });
          }
        }
      }
      for (const [i] of engines.entries()) {
        for (const [name, v] of values[i]!) runs[i]!.tests[name] = stat(v);
        await cs[i]?.close().catch(() => {});
      }
      results.push({ file: basename(file), fileBytes: w.fileBytes, weightBytesPerToken: w.perToken, threads, runs });
    }
  }
} finally {
  closing = true;
  await browser.close();
  server.close();
}

// ---- report ----
const med = (c: ConfigResult, e: EngineName, test: string) => c.runs.find((r) => r.engine === e)?.tests[test]?.median;
const fmt = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? "-" : v >= 100 ? v.toFixed(0) : v.toFixed(1));
const ratio = (x: number | undefined, y: number | undefined) => (x === undefined || y === undefined ? "-" : `${(x / y).toFixed(2)}x`);
const has = (e: EngineName) => engines.includes(e);
/**
 * Chromium / Node per repetition (the two runs of a repetition are seconds apart, so a slow minute of the host
 * slows both): the median ratio and its middle half (quartiles), "-" when a run is missing.
 */
const paired = (c: ConfigResult, test: string): string => {
  const a = c.runs.find((r) => r.engine === "mimo")?.tests[test]?.values;
  const b = c.runs.find((r) => r.engine === "mimo-node")?.tests[test]?.values;
  if (!a || !b || a.length !== b.length || a.length === 0) return "-";
  const r = a.map((v, i) => v / b[i]!).sort((x, y) => x - y);
  const q = (f: number) => r[Math.round(f * (r.length - 1))]!;
  return `${stat(r).median.toFixed(2)}x (${q(0.25).toFixed(2)}-${q(0.75).toFixed(2)})`;
};
const label: Record<EngineName, string> = { mimo: "mimo (Chromium)", wllama: "wllama (Chromium)", "mimo-node": "mimo (Node)" };
const head = ["file", "threads", "test", ...engines.map((e) => `${label[e]} tok/s`), ...(has("mimo") && has("wllama") ? ["mimo / wllama"] : []), ...(has("mimo") && has("mimo-node") ? ["Chromium / Node (mimo)", "per repetition: median (middle half)"] : [])];
const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
for (const c of results) {
  for (const t of tests) {
    const cells = [c.file, String(c.threads), t.name, ...engines.map((e) => fmt(med(c, e, t.name)))];
    if (has("mimo") && has("wllama")) cells.push(`**${ratio(med(c, "mimo", t.name), med(c, "wllama", t.name))}**`);
    if (has("mimo") && has("mimo-node")) cells.push(ratio(med(c, "mimo", t.name), med(c, "mimo-node", t.name)), paired(c, t.name));
    lines.push(`| ${cells.join(" | ")} |`);
  }
}
const machine = { ...machineInfo(), loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadavg()[0]!, cores };
const describes = new Map<string, string>();
for (const c of results) for (const r of c.runs) if (r.describe) describes.set(`${r.engine} t=${c.threads}`, r.describe);
const errors = new Set<string>();
for (const c of results) for (const r of c.runs) if (r.error) errors.add(`${r.engine} (${c.file}, ${c.threads} threads): ${r.error}`);
const wllamaSimd = wasmSimdUse(join(root, "node_modules/@wllama/wllama/esm/wasm/wllama.wasm"), /^ggml_vec_dot_(q4_0|q8_0|q4_K)_q8_[0K]$/);
const wllamaVersion = (JSON.parse(readFileSync(join(root, "node_modules/@wllama/wllama/package.json"), "utf8")) as { version: string }).version;
const notes = [
  "",
  `Machine: ${machine.cpu}, ${machine.cpus} CPUs, ${machine.memGiB} GiB, SIMD ${machine.simd.join(" ") || "?"}; headless Chromium ${chromiumVersion}; Node ${machine.node}; ` +
    `load average ${loadAtStart.toFixed(2)} at the start, ${machine.loadAverageAtEnd.toFixed(2)} at the end (above ~1 means other work shared the CPUs).`,
  bandwidth.size > 0 ? `Read bandwidth (streamSum, WebAssembly 128-bit loads, Node): ${[...bandwidth].map(([t, b]) => `${t} thread(s) ${(b / 1e9).toFixed(1)} GB/s`).join(", ")}.` : "Read bandwidth: not measured (--no-bandwidth).",
  cores ? describeCores(cores) : "Core sharing: not measured (--no-bandwidth).",
  `Files (weights read per token): ${results.map((c) => `${c.file} ${(c.weightBytesPerToken / 1e6).toFixed(1)} MB`).filter((v, i, s) => s.indexOf(v) === i).join(", ")}.`,
  `Medians of ${reps} interleaved repetitions (all values in the JSON); pp${prompt} = prefill of ${prompt} tokens, tg${gen} = ${gen} single-token decode steps, each from an empty cache, timed in the page (in Node for mimo (Node)). Ratios above 1 mean mimo is faster. "Per repetition" is the ratio of each repetition's Chromium and Node runs (seconds apart, in the same round): its median and the range of the middle half of the ratios.`,
  `After loading, every engine decoded untimed for ${WARMUP_MS} ms (JIT compilation).`,
  prewarmMs > 0
    ? `Each timed test ran right after ${prewarmMs} ms of untimed 8-token decodes of the same engine (after a ${SETTLE_MS} ms pause), so the figures are steady-state ones (--no-prewarm measures cold).`
    : `Cold: each timed test ran right after a ${SETTLE_MS} ms pause (--no-prewarm).`,
  `wllama's dot products (its wasm's name section): ${Object.entries(wllamaSimd).map(([n, simd]) => `${n} ${simd ? "has SIMD instructions" : "has NO SIMD instruction"}`).join(", ")}. Its Q4_0 figures mostly measure that scalar kernel.`,
  `Contestants: @wllama/wllama ${wllamaVersion}; ${[...describes].map(([k, v]) => `${k}: ${v}`).join("; ")}.`,
  ...[...errors].map((e) => `Failed: ${e}`),
];
const md = lines.join("\n") + "\n" + notes.join("\n") + "\n";
const json = { date: new Date().toISOString(), machine, chromium: chromiumVersion, wllamaSimd, params: { fileSpecs, threadList, prompt, gen, reps, engines, prewarmMs }, bandwidth: Object.fromEntries(bandwidth), results };
process.stdout.write(a.json ? JSON.stringify(json, null, 2) + "\n" : md);
if (!a["no-save"]) {
  const dir = join(root, "bench/results");
  mkdirSync(dir, { recursive: true });
  const d = new Date();
  const stamp = `${d.toISOString().slice(0, 10)}-${d.toISOString().slice(11, 16).replace(":", "")}-browser`;
  writeFileSync(join(dir, `${stamp}.md`), `# bench:browser ${d.toISOString()}\n\n${md}`);
  writeFileSync(join(dir, `${stamp}.json`), JSON.stringify(json, null, 2) + "\n");
  log(`saved bench/results/${stamp}.md and .json`);
}
process.exit(errors.size > 0 ? 1 : 0);
