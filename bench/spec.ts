// Speculative decoding, mimo and llama.cpp (node-llama-cpp 3.21.1's token predictors) side by side
// in one process, repetitions interleaved: for each repetition, each engine's plain greedy run and
// then its speculative runs. Modes (always labelled in the output):
//   real: the proposer's own drafts (mimo: its n-gram lookup / MTP layer; llama.cpp: node-llama-cpp's
//     InputLookupTokenPredictor, n-gram only);
//   replay p: a simulation of acceptance: each engine's repetition replays its own plain run's
//     tokens; every draft token is the recorded correct one with probability p, else a wrong one.
//     mimo's proposer still does all its work (MTP layer and head, lookups); llama.cpp's predictor
//     is a plain TokenPredictor that returns the replayed tokens (llama.cpp has no MTP layer).
// mimo runs twice per mode: adaptive draft length (its default) and fixed at --draft-max (what
// llama.cpp's predictor does). Timing for both: (n - 1) tokens over the time from the first
// streamed token to the last. The machine's CPU, SIMD flags, bandwidth probe and load average go
// into the results file.
//
//   npm run bench:spec -- --file bench/files/qwen2-0.5b-Q4_0.gguf --spec ngram --replay 0.7 --draft-max 8 -t 2
//   npm run bench:spec -- --file bench/files/mimo-7b-Q4_0.gguf --peer-file bench/files/mimo-7b-Q4_0-nomtp.gguf \
//                         --spec mtp --replay 0.5,0.7,0.9 --draft-max 1 -t 2 -n 48
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { getLlama, InputLookupTokenPredictor, TokenPredictor, type Token } from "node-llama-cpp";
import { loadModel, type SpeculativeOptions } from "../src/index.ts";
import { ggufVocabSize } from "../src/cli/bench.ts";
import { GROUNDED_PROMPT, greedyRun, median, pooledStats, SPEC_MODE_NOTE, specModes, type SpecMode } from "../src/cli/bench-spec.ts";
import { measureBandwidth } from "./bandwidth.ts";
import { machineInfo } from "./machine.ts";

const here = fileURLToPath(new URL(".", import.meta.url));
const { values: a } = parseArgs({
  options: {
    file: { type: "string" },
    "peer-file": { type: "string" },
    spec: { type: "string", default: "ngram" },
    replay: { type: "string" },
    real: { type: "boolean", default: false },
    threads: { type: "string", short: "t", default: "2" },
    gen: { type: "string", short: "n", default: "64" },
    reps: { type: "string", short: "r", default: "3" },
    "draft-max": { type: "string" },
    variants: { type: "string", default: "adaptive,fixed" },
    engines: { type: "string", default: "mimo,llama.cpp" },
    prompt: { type: "string" },
    "no-save": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (a.help || !a.file) {
  process.stdout.write(
    "npm run bench:spec -- --file model.gguf [--peer-file same-weights-for-llama.cpp.gguf] [--spec ngram|mtp] [--replay 0.5,0.7,0.9] [--real]\n" +
      "                      [-t 2] [-n 64] [-r 3] [--draft-max N] [--variants adaptive,fixed] [--engines mimo,llama.cpp] [--prompt TEXT] [--no-save]\n" +
      "(a MiMo file runs in llama.cpp as qwen2: give --peer-file a `mimo synth --no-mtp` file of the same preset)\n",
  );
  process.exit(a.help ? 0 : 1);
}
const method = a.spec as "ngram" | "mtp";
if (method !== "ngram" && method !== "mtp") throw new RangeError(`--spec must be ngram or mtp, got ${a.spec}`);
const file = a.file;
const peerFile = a["peer-file"] ?? file;
const threads = Number(a.threads);
const n = Number(a.gen);
const reps = Number(a.reps);
const draftMax = Number(a["draft-max"] ?? (method === "mtp" ? 1 : 8));
const modes: SpecMode[] = specModes(a.real, a.replay ? a.replay.split(",").map(Number) : []);
if (modes.length === 0) throw new RangeError("nothing to measure: give --replay and/or --real");
const engines = a.engines.split(",");
const log = (s: string) => process.stderr.write(`bench:spec: ${s}\n`);

const machine = machineInfo();
const bandwidth = await measureBandwidth(threads);
log(`${machine.cpu}; read bandwidth ${threads} thread(s) ${(bandwidth / 1e9).toFixed(1)} GB/s; load average ${loadavg()[0]!.toFixed(2)}`);

// ---- mimo ----
const mimo = engines.includes("mimo") ? await loadModel(file, { threads, contextSize: 1024 }) : undefined;
const prompt = (mimo ?? (await loadModel(file, { threads: 1, contextSize: 1024 }))).tokenize(a.prompt ?? GROUNDED_PROMPT);
if (mimo) log(`mimo: ${mimo.backendName}, ${basename(file)}; prompt ${prompt.length} tokens`);

// ---- llama.cpp ----
/** Replays recorded tokens: each predicted token is the recorded one with probability p, else a wrong one. */
class ReplayPredictor extends TokenPredictor {
  recorded: number[] = [];
  private state = 0;
  private promptLength = 0;
  private rngState = 1;
  readonly p: number;
  readonly k: number;
  readonly vocab: number;
  constructor(p: number, k: number, vocab: number) {
    super();
    this.p = p;
    this.k = k;
    this.vocab = vocab;
  }
  start(recorded: number[], promptLength: number, seed: number): void {
    this.recorded = recorded;
    this.promptLength = promptLength;
    this.rngState = seed >>> 0 || 1;
  }
  private random(): number {
    // xorshift32: a seeded stream independent of mimo's.
    let x = this.rngState;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rngState = x >>> 0;
    return this.rngState / 4294967296;
  }
  reset({ stateTokens }: { stateTokens: Token[] }): void {
    this.state = stateTokens.length;
  }
  pushTokens(tokens: Token[]): void {
    this.state += tokens.length;
  }
  predictTokens(): Token[] {
    // state = prompt + generated tokens, the last being the one about to be evaluated.
    const g = this.state - this.promptLength;
    const out: Token[] = [];
    for (let i = 0; i < this.k; i++) {
      const correct = this.recorded[g + i];
      if (correct === undefined) break;
      out.push((this.random() < this.p ? correct : (correct + 1) % this.vocab) as Token);
    }
    return out;
  }
}

const llama = engines.includes("llama.cpp") ? await getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false } as never) : undefined;
const peerModel = llama ? await llama.loadModel({ modelPath: peerFile, gpuLayers: 0 }) : undefined;
const peerModes = modes.filter((m) => m.acceptance !== undefined || method === "ngram");
const peerCtx = peerModel ? await peerModel.createContext({ contextSize: 1024, batchSize: 512, threads, flashAttention: false, sequences: 1 + peerModes.length }) : undefined;
const vocab = mimo?.config.vocabSize ?? (await ggufVocabSize(peerFile));
const peerPredictors = peerModes.map((m) =>
  m.acceptance === undefined ? new InputLookupTokenPredictor({ patternLength: { min: 2, max: 4 }, predictionLength: { max: draftMax } }) : new ReplayPredictor(m.acceptance, draftMax, vocab),
);
const peerPlainSeq = peerCtx?.getSequence();
const peerSeqs = peerCtx ? peerPredictors.map((tokenPredictor) => peerCtx.getSequence({ tokenPredictor })) : [];
if (llama) log(`llama.cpp: node-llama-cpp, llama.cpp ${llama.llamaCppRelease.release}, ${llama.buildType} build; ${basename(peerFile)}`);

async function peerRun(seq: NonNullable<typeof peerPlainSeq>): Promise<{ tokens: number[]; tokPerS: number }> {
  await seq.clearHistory();
  const tokens: number[] = [];
  let tFirst = 0;
  let tLast = 0;
  for await (const t of seq.evaluate([...prompt] as Token[], { temperature: 0, yieldEogToken: true } as never)) {
    tLast = performance.now();
    if (tokens.length === 0) tFirst = tLast;
    tokens.push(t);
    if (tokens.length >= n) break;
  }
  return { tokens, tokPerS: (tokens.length - 1) / ((tLast - tFirst) / 1000) };
}

// ---- the interleaved repetitions ----
interface Row {
  engine: string;
  draft: string;
  mode: string;
  plain: number[];
  spec: number[];
  speedups: number[];
  acceptance: number[];
  tokensPerForward: number[];
  identical: boolean;
}
const rows: Row[] = [];
const row = (engine: string, draft: string, mode: string): Row => {
  let r = rows.find((x) => x.engine === engine && x.draft === draft && x.mode === mode);
  if (!r) rows.push((r = { engine, draft, mode, plain: [], spec: [], speedups: [], acceptance: [], tokensPerForward: [], identical: true }));
  return r;
};
const mimoVariants: { draft: string; adaptive: boolean }[] = a.variants.split(",").map((v) => {
  if (v !== "adaptive" && v !== "fixed") throw new RangeError(`--variants takes adaptive and/or fixed, got "${v}"`);
  return v === "adaptive" ? { draft: `adaptive <= ${draftMax}`, adaptive: true } : { draft: `fixed ${draftMax}`, adaptive: false };
});
const specOf = (m: SpecMode, adaptive: boolean, tokens: number[], seed: number): SpeculativeOptions => ({
  method,
  draftMax,
  adaptive,
  ...(m.acceptance === undefined ? {} : { replay: { tokens, acceptance: m.acceptance, seed } }),
});

// Warm-up (JIT, page cache, the adaptive cost curve's first passes).
if (mimo) {
  await greedyRun(mimo, prompt, 8);
  for (const m of modes) await greedyRun(mimo, prompt, 8, specOf(m, true, [], 1));
}
if (peerPlainSeq) await peerRun(peerPlainSeq);

for (let r = 0; r < reps; r++) {
  if (mimo) {
    const plain = await greedyRun(mimo, prompt, n);
    log(`rep ${r + 1}/${reps} mimo plain ${plain.tokPerS.toFixed(2)} tok/s`);
    for (const m of modes) {
      for (const v of mimoVariants) {
        const s = await greedyRun(mimo, prompt, n, specOf(m, v.adaptive, plain.tokens, 100 + r));
        const x = row("mimo", v.draft, m.name);
        x.plain.push(plain.tokPerS);
        x.spec.push(s.tokPerS);
        x.speedups.push(s.tokPerS / plain.tokPerS);
        const p = pooledStats([s.stats!]);
        x.acceptance.push(p.tokenAcceptance);
        x.tokensPerForward.push(p.tokensPerForward);
        if (s.tokens.join() !== plain.tokens.join()) x.identical = false;
        log(`rep ${r + 1}/${reps} mimo ${m.name} ${v.draft}: ${s.tokPerS.toFixed(2)} tok/s (${(s.tokPerS / plain.tokPerS).toFixed(2)}x), token acceptance ${(100 * p.tokenAcceptance).toFixed(1)}%`);
      }
    }
  }
  if (peerPlainSeq) {
    const plain = await peerRun(peerPlainSeq);
    log(`rep ${r + 1}/${reps} llama.cpp plain ${plain.tokPerS.toFixed(2)} tok/s`);
    for (let i = 0; i < peerModes.length; i++) {
      const m = peerModes[i]!;
      const pred = peerPredictors[i]!;
      if (pred instanceof ReplayPredictor) pred.start(plain.tokens, prompt.length, 100 + r);
      const seq = peerSeqs[i]!;
      const usedBefore = seq.tokenPredictions.used;
      const s = await peerRun(seq);
      // Predictions consumed without a decode of their own: decodes = tokens after the first - used.
      const used = seq.tokenPredictions.used - usedBefore;
      const x = row("llama.cpp", `fixed ${draftMax}`, m.name);
      x.plain.push(plain.tokPerS);
      x.spec.push(s.tokPerS);
      x.speedups.push(s.tokPerS / plain.tokPerS);
      x.tokensPerForward.push((s.tokens.length - 1) / Math.max(1, s.tokens.length - 1 - used));
      if (s.tokens.join() !== plain.tokens.join()) x.identical = false;
      log(`rep ${r + 1}/${reps} llama.cpp ${m.name}: ${s.tokPerS.toFixed(2)} tok/s (${(s.tokPerS / plain.tokPerS).toFixed(2)}x), ${used} predictions used`);
    }
  }
}

await mimo?.dispose();
await peerCtx?.dispose();
await peerModel?.dispose();

const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "-");
const lines = [
  `| engine | method | draft length | mode | plain tok/s | speculative tok/s | speedup (median, min-max) | token acceptance | tokens / forward | output = plain |`,
  `|---|---|---|---|---:|---:|---|---:|---:|---|`,
  ...rows.map((x) => {
    const sp = [...x.speedups].sort((p, q) => p - q);
    return (
      `| ${x.engine} | ${method} | ${x.draft} | ${x.mode} | ${f2(median(x.plain))} | ${f2(median(x.spec))} | **${f2(median(x.speedups))}x** (${f2(sp[0]!)}-${f2(sp[sp.length - 1]!)}) | ` +
      `${x.acceptance.length ? (100 * median(x.acceptance)).toFixed(1) + "%" : "-"} | ${x.tokensPerForward.length ? f2(median(x.tokensPerForward)) : "-"} | ${x.identical ? "yes" : "**NO**"} |`
    );
  }),
];
const notes = [
  ``,
  `File: ${basename(file)}${peerFile !== file ? ` (llama.cpp: ${basename(peerFile)}, the same weights without the MTP layer, as qwen2)` : ""}; ${threads} threads; prompt ${prompt.length} tokens; ${n} greedy tokens; ${reps} interleaved repetitions (medians).`,
  `Machine: ${machine.cpu}, ${machine.cpus} CPUs, SIMD ${machine.simd.join(" ") || "?"}; read bandwidth ${(bandwidth / 1e9).toFixed(1)} GB/s (${threads} threads); load average ${machine.loadAverageAtStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end (above ~${threads} means other work shared the CPUs).`,
  SPEC_MODE_NOTE,
  `llama.cpp: node-llama-cpp ${llama ? llama.llamaCppRelease.release : "-"} token predictors (replay: a TokenPredictor returning the replayed tokens; real n-gram: InputLookupTokenPredictor, patterns of 2-4 tokens, up to ${draftMax} predicted); its verification is llama.cpp's batch decode. node-llama-cpp 3.21.1 keeps at most the first predicted token of each batch (LlamaContextSequence._speculativeEvaluate compares later predictions with \`validatedTokens.at(-1)\`, an array it never fills), so its speculation yields at most 2 tokens per forward pass whatever the draft length.`,
];
const md = lines.join("\n") + "\n" + notes.join("\n") + "\n";
process.stdout.write(md);
if (!a["no-save"]) {
  const dir = join(here, "results");
  mkdirSync(dir, { recursive: true });
  const d = new Date();
  const stamp = `${d.toISOString().slice(0, 10)}-${d.toISOString().slice(11, 16).replace(":", "")}-spec`;
  writeFileSync(join(dir, `${stamp}.md`), `# bench:spec ${d.toISOString()}\n\n\`npm run bench:spec -- ${process.argv.slice(2).join(" ")}\`\n\n${md}`);
  writeFileSync(join(dir, `${stamp}.json`), JSON.stringify({ date: d.toISOString(), argv: process.argv.slice(2), machine: { ...machine, loadAverageAtEnd: loadavg()[0] }, bandwidth, prompt: prompt.length, n, reps, rows }, null, 2) + "\n");
  log(`saved bench/results/${stamp}.md and .json`);
}
process.exit(0);
