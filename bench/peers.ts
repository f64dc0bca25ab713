// mimo against its peers in one run, on the same files and thread counts:
//   llama.cpp (native, through node-llama-cpp 3.21.1) and wllama (llama.cpp compiled to WebAssembly).
// Same definitions for all (src/cli/bench.ts): pp = prefill of P random tokens from an empty cache,
// tg = N single-token decode steps from an empty cache, ttft = P-token prompt to the first token.
// Each contestant runs in its own process; their repetitions are interleaved test by test
// (A, B, C, A, B, C, ...) so that machine noise hits them alike. The memory read bandwidth is
// measured in the same run and gives the decode ceiling: bandwidth / weight bytes read per token.
//
//   npm run bench:peers                 # full: 3 files x threads 1,2, pp512 tg128, 3 reps
//   npm run bench:peers -- --quick      # one file, small p/n, 2 reps
//   npm run bench:peers -- --files qwen2-0.5b:Q4_0 --threads 1 -p 64 -n 16 -r 2 --engines mimo,llama.cpp
//   npm run bench:peers -- --parallel 4,8 --verify 1,2,4,8 ...   # + batched decode, verification cost
// Batched decode (--parallel) runs after the other tests on a second load of each contestant with
// as many sequences as the largest S (so the other figures, peak RSS included, are those of a
// one-sequence load); verification cost (--verify) runs with the other tests. wllama has neither.
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { WARMUP_MS, batchTestsFor, contextFor, stat, testsFor, verifyName, verifyTestFor, weightBytesPerToken, wordTokenPool, type Measurement, type Stat, type TestSpec } from "../src/cli/bench.ts";
import { measureBandwidth } from "./bandwidth.ts";
import { PREWARM_MS, describeCores, probeCores } from "./cores.ts";
import { machineInfo } from "./machine.ts";
import { Contestant } from "./contestant.ts";
import { benchFile, warmPageCache } from "./files.ts";
import type { LoadReply, TestReply } from "./runner.ts";

const here = fileURLToPath(new URL(".", import.meta.url));
const { values: a } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    files: { type: "string" },
    threads: { type: "string", short: "t" },
    prompt: { type: "string", short: "p" },
    gen: { type: "string", short: "n" },
    reps: { type: "string", short: "r" },
    engines: { type: "string", default: "mimo,llama.cpp,wllama" },
    layers: { type: "string" },
    "no-save": { type: "boolean", default: false },
    "no-ttft": { type: "boolean", default: false },
    "no-prewarm": { type: "boolean", default: false },
    parallel: { type: "string" },
    "parallel-prompt": { type: "string" },
    "parallel-gen": { type: "string" },
    verify: { type: "string" },
    "verify-depth": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (a.help) {
  process.stdout.write(
    "npm run bench:peers -- [--quick] [--files preset:TYPE|path,...] [-t 1,2] [-p 512] [-n 128] [-r 3]\n" +
      "                       [--engines mimo,llama.cpp,wllama] [--layers N] [--no-ttft] [--no-prewarm] [--no-save]\n" +
      "                       [--parallel 4,8 [--parallel-prompt 32] [--parallel-gen N]] [--verify 1,2,4,8 [--verify-depth 128]]\n",
  );
  process.exit(0);
}
const ints = (s: string) => s.split(",").map((x) => {
  const n = Number(x);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`not a non-negative integer: "${x}"`);
  return n;
});
const quick = a.quick;
const fileSpecs = (a.files ?? (quick ? "qwen2-0.5b:Q4_0" : "qwen2-0.5b:Q4_0,qwen2-0.5b:Q8_0,llama-3.2-1b:Q4_0")).split(",");
const threadList = ints(a.threads ?? "1,2");
const prompt = ints(a.prompt ?? (quick ? "64" : "512"))[0]!;
const gen = ints(a.gen ?? (quick ? "16" : "128"))[0]!;
const reps = ints(a.reps ?? (quick ? "2" : "3"))[0]!;
const engines = a.engines.split(",").map((s) => s.trim());
const layers = a.layers === undefined ? undefined : ints(a.layers)[0];
const parallel = a.parallel === undefined ? [] : ints(a.parallel);
const parallelPrompt = a["parallel-prompt"] === undefined ? 32 : ints(a["parallel-prompt"])[0]!;
const parallelGen = a["parallel-gen"] === undefined ? gen || 128 : ints(a["parallel-gen"])[0]!;
const verify = a.verify === undefined ? [] : ints(a.verify);
const verifyDepth = a["verify-depth"] === undefined ? 128 : ints(a["verify-depth"])[0]!;

interface EngineRun {
  engine: string;
  version?: string;
  error?: string;
  loadMs?: number;
  /** Load with as many sequences as the largest batched test. */
  batchedLoadMs?: number;
  /** After the first phase (the one-sequence tests). */
  peakRssBytes?: number;
  tests: Record<string, Stat>;
}

interface ConfigResult {
  file: string;
  fileBytes: number;
  weightBytesPerToken: number;
  threads: number;
  bandwidthBytesPerSecond: number;
  ceilingTokPerSecond: number;
  runs: EngineRun[];
}

const tests: TestSpec[] = testsFor([prompt], [gen], !a["no-ttft"]);
const verifyTests: TestSpec[] = verifyTestFor(verify, verifyDepth);
const batchTests: TestSpec[] = batchTestsFor(parallel, parallelGen, parallelPrompt);
/** Each phase: a load of every contestant (that has its tests), a warm-up, interleaved repetitions. */
const phases = [
  { tests: [...tests, ...verifyTests], batched: false },
  { tests: batchTests, batched: true },
].filter((p) => p.tests.length > 0);
const units = new Map<string, Measurement["unit"]>();

process.stderr.write(
  `bench:peers: ${engines.join(" vs ")}; files ${fileSpecs.join(", ")}; threads ${threadList.join(",")}; ${phases.flatMap((p) => p.tests.map((t) => t.name)).join(", ")}; ${reps} reps\n`,
);
const loadAtStart = loadavg()[0]!;
const bandwidth = new Map<number, number>();
for (const t of threadList) {
  bandwidth.set(t, await measureBandwidth(t));
  process.stderr.write(`bench:peers: read bandwidth, ${t} thread(s): ${(bandwidth.get(t)! / 1e9).toFixed(1)} GB/s\n`);
}

const cores = await probeCores();
process.stderr.write(`bench:peers: ${describeCores(cores)}\n`);
const machine = { ...machineInfo(), loadAverageAtStart: loadAtStart, cores };

const SETTLE_MS = 300;
// Then an untimed burst of the same engine, right before its timed test (see bench/cores.ts).
const prewarmMs = a["no-prewarm"] ? 0 : PREWARM_MS;
const results: ConfigResult[] = [];
for (const spec of fileSpecs) {
  const file = await benchFile(spec, layers);
  const w = await weightBytesPerToken(file);
  const pool = await wordTokenPool(file);
  for (const threads of threadList) {
    await warmPageCache(file);
    const runs: EngineRun[] = engines.map((engine) => ({ engine, tests: {} }));
    const cs = engines.map((e) => new Contestant(e));
    const alive = (i: number) => runs[i]!.error === undefined;
    const attempt = async (i: number, f: () => Promise<void>) => {
      if (!alive(i)) return;
      try {
        await f();
      } catch (e) {
        runs[i]!.error = (e as Error).message;
        process.stderr.write(`bench:peers: ${engines[i]} failed: ${(e as Error).message}\n`);
      }
    };
    const supports = runs.map(() => ({ batch: false, verify: false }));
    const can = (i: number, t: TestSpec) => (t.kind === "batch" ? supports[i]!.batch : t.kind === "verify" ? supports[i]!.verify : true);
    const values = runs.map(() => new Map<string, number[]>());
    for (const [pi, phase] of phases.entries()) {
      const { contextSize, batchSize, sequences } = contextFor(phase.tests);
      // Load one at a time (each has the machine to itself), then warm up. A later phase loads
      // again (the runner drops its first model) only the contestants that have its tests.
      for (let i = 0; i < cs.length; i++) {
        if (pi > 0 && !phase.tests.some((t) => can(i, t))) continue;
        await attempt(i, async () => {
          await cs[i]!.ready;
          const r = await cs[i]!.request<LoadReply>({ cmd: "load", file, threads, contextSize, batchSize, sequences, pool });
          supports[i] = r.supports;
          if (phase.batched) runs[i]!.batchedLoadMs = r.loadMs;
          else runs[i]!.loadMs = r.loadMs;
          runs[i]!.version = r.version;
          if (phase.batched) {
            if (r.supports.batch) await cs[i]!.request({ cmd: "warmup", seed: 12345, sequences });
          } else await cs[i]!.request({ cmd: "warmup", seed: 12345 });
        });
      }
      for (let r = 0; r < reps; r++) {
        for (const [ti, t] of phase.tests.entries()) {
          const seed = 1000 * (r + 1) + ti + 100 * pi; // the same tokens for every contestant
          for (let i = 0; i < cs.length; i++) {
            if (!can(i, t)) continue; // wllama: no batched decode or verification step
            // Let the previous contestant's threads finish spinning and go to sleep first: a thread
            // pool still polling for work would take cores from the next one.
            await new Promise((r) => setTimeout(r, SETTLE_MS));
            await attempt(i, async () => {
              if (prewarmMs > 0) await cs[i]!.request({ cmd: "prewarm", ms: prewarmMs, seed: seed + 7 });
              const ms = await cs[i]!.request<TestReply>({ cmd: "test", test: t, seed });
              for (const m of ms) {
                units.set(m.name, m.unit);
                if (!values[i]!.has(m.name)) values[i]!.set(m.name, []);
                values[i]!.get(m.name)!.push(m.value);
                process.stderr.write(`bench:peers: ${basename(file)} t=${threads} rep ${r + 1}/${reps} ${m.name} ${engines[i]}: ${m.value.toFixed(2)} ${m.unit}\n`);
              }
            });
          }
        }
      }
      if (pi === 0) {
        for (let i = 0; i < cs.length; i++) {
          await attempt(i, async () => {
            runs[i]!.peakRssBytes = await cs[i]!.request<number>({ cmd: "rss" });
          });
        }
      }
    }
    for (let i = 0; i < cs.length; i++) {
      for (const [name, v] of values[i]!) runs[i]!.tests[name] = stat(v);
      await cs[i]!.close();
    }
    const bw = bandwidth.get(threads)!;
    results.push({
      file: basename(file),
      fileBytes: w.fileBytes,
      weightBytesPerToken: w.perToken,
      threads,
      bandwidthBytesPerSecond: bw,
      ceilingTokPerSecond: bw / w.perToken,
      runs,
    });
  }
}

// ---- report ----
const f1 = (v: number | undefined, d = 1) => (v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(d));
const med = (c: ConfigResult, engine: string, test: string) => c.runs.find((r) => r.engine === engine)?.tests[test]?.median;
const ratio = (x: number | undefined, y: number | undefined) => (x === undefined || y === undefined ? "-" : `${(x / y).toFixed(2)}x`);
const has = (e: string) => engines.includes(e);

const lines: string[] = [];
if (tests.length > 0) {
const head = ["file", "threads", "test", ...engines.map((e) => `${e}`), ...(has("llama.cpp") ? ["mimo/llama.cpp"] : []), ...(has("wllama") ? ["mimo/wllama"] : []), "% of bandwidth ceiling (mimo / llama.cpp)"];
lines.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
for (const c of results) {
  for (const t of tests) {
    const vals = engines.map((e) => med(c, e, t.name));
    const m = med(c, "mimo", t.name);
    // tok/s: mimo / peer; ms (ttft): peer / mimo. Above 1 means mimo is faster.
    const rel = (peer: string) => (t.kind === "ttft" ? ratio(med(c, peer, t.name), m) : ratio(m, med(c, peer, t.name)));
    const pct = (e: string) => f1(t.kind === "tg" && med(c, e, t.name) !== undefined ? (100 * med(c, e, t.name)!) / c.ceilingTokPerSecond : undefined, 0);
    const unit = t.kind === "ttft" ? " ms" : " tok/s";
    lines.push(
      `| ${c.file} | ${c.threads} | ${t.name} | ${vals.map((v) => (v === undefined ? "-" : f1(v, t.kind === "ttft" || v >= 10 ? 1 : 2) + unit)).join(" | ")} |` +
        `${has("llama.cpp") ? ` ${rel("llama.cpp")} |` : ""}${has("wllama") ? ` ${rel("wllama")} |` : ""}` +
        ` ${t.kind === "tg" ? `${pct("mimo")}% / ${pct("llama.cpp")}% of ${f1(c.ceilingTokPerSecond)} tok/s` : ""} |`,
    );
  }
  const withUnit = (v: string, unit: string) => (v === "-" ? v : v + unit);
  const loads = engines.map((e) => withUnit(f1(c.runs.find((r) => r.engine === e)?.loadMs, 0), " ms"));
  lines.push(`| ${c.file} | ${c.threads} | load | ${loads.join(" | ")} |${has("llama.cpp") ? " |" : ""}${has("wllama") ? " |" : ""} |`);
  const rss = engines.map((e) => withUnit(f1((c.runs.find((r) => r.engine === e)?.peakRssBytes ?? NaN) / 1e6, 0), " MB"));
  lines.push(`| ${c.file} | ${c.threads} | peak RSS | ${rss.join(" | ")} |${has("llama.cpp") ? " |" : ""}${has("wllama") ? " |" : ""} |`);
}
}

// Batched decode: aggregate tok/s per engine, mimo / llama.cpp, and each engine's gain over one sequence and over its tg.
const tgName = tests.find((t) => t.kind === "tg")?.name;
const withBatch = engines.filter((e) => results.some((c) => batchTests.some((t) => med(c, e, t.name) !== undefined)));
if (batchTests.length > 0 && withBatch.length > 0) {
  const h = [
    "file",
    "threads",
    "sequences",
    ...withBatch.map((e) => `${e} aggregate`),
    ...(withBatch.includes("mimo") && withBatch.includes("llama.cpp") ? ["mimo/llama.cpp"] : []),
    ...withBatch.map((e) => `${e} vs 1 sequence`),
    ...(tgName ? withBatch.map((e) => `${e} vs ${tgName}`) : []),
  ];
  lines.push("", `Batched decode (pp${parallelPrompt} prompt per sequence, then ${parallelGen} steps of one forward pass for all sequences; aggregate tok/s = sequences x steps / time):`, "");
  lines.push(`| ${h.join(" | ")} |`, `|${h.map(() => "---").join("|")}|`);
  for (const c of results) {
    const one = batchTests.find((t) => t.sequences === 1)!.name;
    for (const t of batchTests) {
      const cells = [
        c.file,
        String(c.threads),
        String(t.sequences),
        ...withBatch.map((e) => (med(c, e, t.name) === undefined ? "-" : `${f1(med(c, e, t.name))} tok/s`)),
        ...(withBatch.includes("mimo") && withBatch.includes("llama.cpp") ? [ratio(med(c, "mimo", t.name), med(c, "llama.cpp", t.name))] : []),
        ...withBatch.map((e) => ratio(med(c, e, t.name), med(c, e, one))),
        ...(tgName ? withBatch.map((e) => ratio(med(c, e, t.name), med(c, e, tgName))) : []),
      ];
      lines.push(`| ${cells.join(" | ")} |`);
    }
  }
}

// Verification cost: ms of one forward pass of 1+k tokens (every token's logits) and its ratio to the 1-token step.
const withVerify = engines.filter((e) => results.some((c) => verifyTests.some((t) => med(c, e, verifyName(t, 0)) !== undefined)));
if (verifyTests.length > 0 && withVerify.length > 0) {
  const t = verifyTests[0]!;
  const h = [
    "file",
    "threads",
    "k",
    "tokens",
    ...withVerify.map((e) => `${e} ms`),
    ...withVerify.map((e) => `${e} ratio to 1 token`),
    ...(withVerify.includes("mimo") && withVerify.includes("llama.cpp") ? ["llama.cpp ms / mimo ms"] : []),
  ];
  lines.push("", `Verification cost (${t.tokens} cached positions; one forward pass of 1+k tokens with every token's logits and greedy choice, rolled back after; k=0 is the 1-token step; ratio = median over repetitions of each repetition's ms(1+k) / ms(1)):`, "");
  lines.push(`| ${h.join(" | ")} |`, `|${h.map(() => "---").join("|")}|`);
  for (const c of results) {
    for (const k of [0, ...(t.drafts ?? [])]) {
      const ms = (e: string) => med(c, e, verifyName(t, k));
      const cells = [
        c.file,
        String(c.threads),
        String(k),
        String(1 + k),
        ...withVerify.map((e) => f1(ms(e), 2)),
        ...withVerify.map((e) => (k === 0 ? (ms(e) === undefined ? "-" : "1") : f1(med(c, e, verifyName(t, k, true)), 2))),
        ...(withVerify.includes("mimo") && withVerify.includes("llama.cpp") ? [ratio(ms("llama.cpp"), ms("mimo"))] : []),
      ];
      lines.push(`| ${cells.join(" | ")} |`);
    }
  }
}
const versions = new Map<string, string>();
for (const c of results) for (const r of c.runs) if (r.version) versions.set(r.engine, r.version);
const errors = new Set<string>();
for (const c of results) for (const r of c.runs) if (r.error) errors.add(`${r.engine} (${c.file}, ${c.threads} threads): ${r.error}`);
const notes = [
  "",
  `Machine: ${machine.cpu}, ${machine.cpus} CPUs, ${machine.memGiB} GiB, SIMD ${machine.simd.join(" ") || "?"}; Node ${machine.node}; ` +
    `load average ${loadAtStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end (above ~1 means other work shared the CPUs).`,
  `Read bandwidth (streamSum, WebAssembly 128-bit loads): ${[...bandwidth].map(([t, b]) => `${t} thread(s) ${(b / 1e9).toFixed(1)} GB/s`).join(", ")}.`,
  describeCores(cores),
  `Bandwidth ceiling = bandwidth / weight bytes read per token (${results.map((c) => `${c.file} ${(c.weightBytesPerToken / 1e6).toFixed(0)} MB`).filter((v, i, s) => s.indexOf(v) === i).join(", ")}).`,
  `Medians of ${reps} interleaved repetitions (min/max in the JSON). pp/tg in tok/s, ttft in ms; ratios above 1 mean mimo is faster.`,
  `After loading, every engine decoded untimed for ${WARMUP_MS} ms (JIT compilation of the JavaScript engines).`,
  prewarmMs > 0
    ? `Each timed test ran right after ${prewarmMs} ms of untimed single-token decode steps of the same engine (after a ${SETTLE_MS} ms pause that lets the previous contestant's threads go to sleep), so the figures are steady-state ones: the idle-burst figure above is what a first request after a pause pays on this host (--no-prewarm measures that way).`
    : `Cold: each timed test ran right after a ${SETTLE_MS} ms pause (--no-prewarm), so 2-thread figures include the idle-burst penalty above.`,
  ...(batchTests.length > 0
    ? [`Batched decode: each contestant loaded again with ${Math.max(...batchTests.map((t) => t.sequences ?? 1))} sequences (load ${results.map((c) => c.runs.map((r) => (r.batchedLoadMs === undefined ? "" : `${r.engine} ${f1(r.batchedLoadMs, 0)} ms`)).filter(Boolean).join(", ")).filter((v, i, s) => s.indexOf(v) === i).join("; ")}); llama.cpp: a node-llama-cpp context with that many sequences, every sequence's controlledEvaluate queued in the same tick (one llama_decode per step). Peak RSS above is from before that load.`]
    : []),
  `Contestants: ${[...versions].map(([e, v]) => `${e}: ${v}`).join("; ")}.`,
  ...[...errors].map((e) => `Failed: ${e}`),
];
const md = lines.join("\n") + "\n" + notes.join("\n") + "\n";
process.stdout.write(md);
if (!a["no-save"]) {
  const dir = join(here, "results");
  mkdirSync(dir, { recursive: true });
  const d = new Date();
  const stamp = `${d.toISOString().slice(0, 10)}-${d.toISOString().slice(11, 16).replace(":", "")}`;
  writeFileSync(join(dir, `${stamp}.md`), `# bench:peers ${d.toISOString()}\n\n${md}`);
  writeFileSync(join(dir, `${stamp}.json`), JSON.stringify({ date: d.toISOString(), machine: { ...machine, loadAverageAtEnd: loadavg()[0] }, params: { fileSpecs, threadList, prompt, gen, reps, engines, layers, prewarmMs, parallel, parallelPrompt, parallelGen, verify, verifyDepth }, units: Object.fromEntries(units), bandwidth: Object.fromEntries(bandwidth), results }, null, 2) + "\n");
  process.stderr.write(`bench:peers: saved bench/results/${stamp}.md and .json\n`);
}
process.exit(0);
