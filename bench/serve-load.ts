// Load test of `mimo serve` (npm run bench:serve): a real server process on loopback, many
// concurrent streaming clients, random prompts and lengths, some clients disconnecting mid-stream.
// Checks: every completed stream is well-formed SSE and equal to the same request served alone; no
// sequence leaks (metrics back to zero active); live memory (after a full collection) flat across the later rounds. Reports requests/s and
// aggregate tok/s against one-at-a-time serving, and the same load on llama.cpp (node-llama-cpp
// 3.21.1, a context with as many sequences as --parallel, in process) side by side. Stops by itself.
//
//   node bench/serve-load.ts [-m model.gguf] [--clients 32] [--requests 500] [--disconnect 0.1]
//                            [--parallel 8] [--threads 2] [--ctx 1024] [--seed 1] [--rounds 4] [--no-peer]
import { spawn } from "node:child_process";
import { cpus, loadavg, totalmem } from "node:os";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { getLlama, type LlamaContextSequence, type Token } from "node-llama-cpp";
import { defaultModelPath, loadModel } from "../src/index.ts";
import { SeededRandom } from "../src/sampling/rng.ts";
import { measureBandwidth } from "./bandwidth.ts";

const { values: a } = parseArgs({
  options: {
    model: { type: "string", short: "m" },
    clients: { type: "string", default: "32" },
    requests: { type: "string", default: "500" },
    disconnect: { type: "string", default: "0.1" },
    parallel: { type: "string", default: "8" },
    threads: { type: "string", default: String(Math.min(2, cpus().length)) },
    ctx: { type: "string", default: "1024" },
    seed: { type: "string", default: "1" },
    rounds: { type: "string", default: "4" },
    "no-peer": { type: "boolean", default: false },
  },
});
const modelPath = a.model ?? defaultModelPath();
const clients = Number(a.clients);
const total = Number(a.requests);
const disconnectShare = Number(a.disconnect);
const parallel = Number(a.parallel);
const threads = Number(a.threads);
const ctx = Number(a.ctx);
const nRounds = Number(a.rounds);
if (!(Number.isInteger(nRounds) && nRounds >= 3)) throw new Error(`--rounds must be an integer >= 3 (the first concurrent rounds warm up the allocator; memory is compared between the later ones), got ${a.rounds}`);
const log = (s: string) => process.stderr.write(`bench:serve: ${s}\n`);

// ---- the request list: random prompts and lengths, chat and completions, greedy and seeded ----
const WORDS = "once upon a time there was little girl named lily she loved to play with her dog in the park one day they saw big red ball and ran after it happy sun tree bird".split(" ");
interface Req {
  readonly i: number;
  readonly kind: "chat" | "text";
  readonly prompt: string;
  readonly maxTokens: number;
  readonly seed: number | undefined;
  /** Disconnect after this many content chunks (concurrent phase only). */
  readonly disconnectAfter: number | undefined;
}
const rng = new SeededRandom(Number(a.seed));
const pick = (n: number) => Math.floor(rng.next() * n);
const requests: Req[] = Array.from({ length: total }, (_, i) => {
  const words = Array.from({ length: 2 + pick(24) }, () => WORDS[pick(WORDS.length)]!);
  return {
    i,
    kind: rng.next() < 0.5 ? "chat" : "text",
    prompt: words.join(" "),
    maxTokens: 8 + pick(88),
    seed: rng.next() < 0.2 ? 1000 + i : undefined,
    disconnectAfter: rng.next() < disconnectShare ? 1 + pick(6) : undefined,
  };
});

// ---- the server process ----
const entry = fileURLToPath(new URL("../src/cli/entry.ts", import.meta.url));
const gcProbe = fileURLToPath(new URL("./serve-gc-probe.ts", import.meta.url));
const server = spawn(process.execPath, ["--import", gcProbe, entry, "serve", "-m", modelPath, "--port", "0", "--parallel", String(parallel), "-t", String(threads), "-c", String(ctx), "--max-queue", String(clients * 2), "-q"], {
  stdio: ["ignore", "inherit", "pipe"],
});
const url = await new Promise<string>((resolve, reject) => {
  let err = "";
  server.stderr!.on("data", (d) => {
    err += d;
    const m = /listening on (http:\/\/\S+)/.exec(err);
    if (m) resolve(m[1]!);
  });
  server.on("exit", (code) => reject(new Error(`the server exited (${code}): ${err}`)));
});
for (;;) {
  const r = await fetch(`${url}/health`).catch(() => undefined);
  if (r?.status === 200) break;
  await new Promise((r) => setTimeout(r, 50));
}
const modelId = ((await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
log(`server ${url}, model ${modelId}, ${parallel} sequences, ${threads} threads`);

/** The server's live memory after a full collection (bench/serve-gc-probe.ts answers SIGUSR2). */
interface Live {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}
let probeLines = "";
server.stderr!.on("data", (d) => (probeLines += d));
async function liveMemory(): Promise<Live> {
  const seen = probeLines.length;
  server.kill("SIGUSR2");
  for (const end = Date.now() + 10_000; Date.now() < end; ) {
    const m = /gc-probe (\{.*\})\n/.exec(probeLines.slice(seen));
    if (m) return JSON.parse(m[1]!) as Live;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the server did not answer the memory probe (SIGUSR2) within 10 s");
}

async function metrics(): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return new Map([...text.matchAll(/^([a-z_]+(?:\{[^}]*\})?) (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

// ---- one streamed request, checked strictly ----
interface Outcome {
  text: string;
  tokens: number;
  disconnected: boolean;
  problems: string[];
}

async function stream(r: Req, allowDisconnect: boolean): Promise<Outcome> {
  const body: Record<string, unknown> = { model: modelId, max_tokens: r.maxTokens, stream: true, stream_options: { include_usage: true } };
  if (r.seed === undefined) body.temperature = 0;
  else Object.assign(body, { temperature: 0.9, top_k: 0, top_p: 1, min_p: 0, seed: r.seed });
  if (r.kind === "chat") body.messages = [{ role: "user", content: r.prompt }];
  else body.prompt = r.prompt;
  const controller = new AbortController();
  const res = await fetch(`${url}/v1/${r.kind === "chat" ? "chat/completions" : "completions"}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  const problems: string[] = [];
  if (res.status !== 200) return { text: "", tokens: 0, disconnected: false, problems: [`HTTP ${res.status}: ${await res.text()}`] };
  if (res.headers.get("content-type") !== "text/event-stream; charset=utf-8") problems.push(`content-type ${res.headers.get("content-type")}`);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const events: string[] = [];
  let chunks = 0;
  let text = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let k;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        events.push(buf.slice(0, k));
        buf = buf.slice(k + 2);
        const ev = events[events.length - 1]!;
        if (ev.startsWith("data: {")) {
          const c = JSON.parse(ev.slice(6)) as { choices: { delta?: { content?: string }; text?: string }[] };
          const piece = c.choices[0] ? (r.kind === "chat" ? (c.choices[0].delta?.content ?? "") : (c.choices[0].text ?? "")) : "";
          text += piece;
          if (piece) chunks++;
          if (allowDisconnect && r.disconnectAfter !== undefined && chunks >= r.disconnectAfter) {
            controller.abort();
            return { text, tokens: 0, disconnected: true, problems };
          }
        }
      }
    }
  } catch (e) {
    return { text, tokens: 0, disconnected: false, problems: [`read failed: ${(e as Error).message}`] };
  }
  if (buf !== "") problems.push(`trailing bytes ${JSON.stringify(buf)}`);
  if (events[events.length - 1] !== "data: [DONE]") problems.push("no data: [DONE] at the end");
  const parsed = events.slice(0, -1).map((e) => {
    if (!e.startsWith("data: ")) problems.push(`event without data: ${JSON.stringify(e.slice(0, 40))}`);
    return JSON.parse(e.slice(6)) as { id: string; object: string; choices: { index: number; delta?: { role?: string }; finish_reason: string | null }[]; usage: null | { completion_tokens: number } };
  });
  const ids = new Set(parsed.map((p) => p.id));
  if (ids.size !== 1) problems.push(`${ids.size} different ids`);
  const object = r.kind === "chat" ? "chat.completion.chunk" : "text_completion";
  if (parsed.some((p) => p.object !== object)) problems.push(`object is not ${object}`);
  if (r.kind === "chat" && parsed[0]?.choices[0]?.delta?.role !== "assistant") problems.push("the first chat chunk has no assistant role");
  const usage = parsed[parsed.length - 1];
  if (!usage || usage.choices.length !== 0 || !usage.usage) problems.push("no usage chunk last");
  if (parsed.slice(0, -1).some((p) => p.usage !== null)) problems.push("usage is not null before the last chunk");
  const finishes = parsed.filter((p) => p.choices[0]?.finish_reason);
  if (finishes.length !== 1 || finishes[0] !== parsed[parsed.length - 2]) problems.push("finish_reason not exactly once, in the chunk before usage");
  return { text, tokens: usage?.usage?.completion_tokens ?? 0, disconnected: false, problems };
}

/** `work` over the list with `n` concurrent workers; wall time and results in list order. */
async function pool<T>(list: readonly Req[], n: number, work: (r: Req) => Promise<T>): Promise<{ ms: number; results: T[] }> {
  const results: T[] = new Array(list.length);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(n, list.length) }, async () => {
      while (next < list.length) {
        const k = next++;
        results[k] = await work(list[k]!);
      }
    }),
  );
  return { ms: performance.now() - t0, results };
}

const bandwidth = await measureBandwidth(threads);
const failures: string[] = [];
const rows: { name: string; requests: number; ms: number; tokens: number }[] = [];

// One at a time: the reference texts and the baseline rate.
log(`one at a time: ${total} requests ...`);
const alone = await pool(requests, 1, (r) => stream(r, false));
alone.results.forEach((o, k) => o.problems.forEach((p) => failures.push(`request ${k} alone: ${p}`)));
rows.push({ name: "mimo serve, one at a time", requests: total, ms: alone.ms, tokens: alone.results.reduce((s, o) => s + o.tokens, 0) });
const warm = await liveMemory();

const rounds: { rss: number; live: Live; completed: number; disconnected: number; mismatched: number }[] = [];
for (let round = 1; round <= nRounds; round++) {
  log(`round ${round}: ${clients} concurrent streaming clients, ${total} requests, ${requests.filter((r) => r.disconnectAfter !== undefined).length} disconnecting ...`);
  const run = await pool(requests, clients, (r) => stream(r, true));
  let mismatched = 0;
  let completed = 0;
  let disconnected = 0;
  run.results.forEach((o, k) => {
    o.problems.forEach((p) => failures.push(`round ${round} request ${k}: ${p}`));
    if (o.disconnected) {
      disconnected++;
      if (!alone.results[k]!.text.startsWith(o.text)) failures.push(`round ${round} request ${k}: the text before the disconnect differs from the request alone`);
      return;
    }
    completed++;
    if (o.text !== alone.results[k]!.text) {
      mismatched++;
      failures.push(`round ${round} request ${k} (${requests[k]!.kind}, ${requests[k]!.seed === undefined ? "greedy" : "seeded"}): ${JSON.stringify(o.text.slice(0, 60))} != alone ${JSON.stringify(alone.results[k]!.text.slice(0, 60))}`);
    }
  });
  const completedTokens = run.results.reduce((s, o) => s + o.tokens, 0);
  rows.push({ name: `mimo serve, ${clients} clients (round ${round})`, requests: completed, ms: run.ms, tokens: completedTokens });
  // No leaked sequence: back to zero active and nothing queued.
  let m = await metrics();
  const end = Date.now() + 5000;
  while ((m.get("mimo_active_sequences")! > 0 || m.get("mimo_queue_depth")! > 0) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    m = await metrics();
  }
  if (m.get("mimo_active_sequences") !== 0) failures.push(`round ${round}: ${m.get("mimo_active_sequences")} sequences still active after the run`);
  if (m.get("mimo_queue_depth") !== 0) failures.push(`round ${round}: ${m.get("mimo_queue_depth")} requests still queued`);
  const live = await liveMemory();
  rounds.push({ rss: live.rss, live, completed, disconnected, mismatched });
}
const m = await metrics();
server.kill("SIGTERM");
await new Promise((r) => server.on("exit", r));
// Memory flat: what is live after a full collection (JS heap, buffers) must not grow from round 2
// to the last (within 2 MiB or 10%): a leak grows every round. Resident memory is reported, not
// judged: V8 keeps freed heap pages, so it grows in steps with the allocation rate and then stays.
const heapGrowth = rounds[nRounds - 1]!.live.heapUsed - rounds[1]!.live.heapUsed;
if (heapGrowth > Math.max(2 * 2 ** 20, rounds[1]!.live.heapUsed * 0.1)) failures.push(`live JS heap after a full collection grew by ${(heapGrowth / 2 ** 20).toFixed(1)} MiB from round 2 to round ${nRounds}`);
const bufGrowth = rounds[nRounds - 1]!.live.arrayBuffers - rounds[1]!.live.arrayBuffers;
if (bufGrowth > Math.max(2 * 2 ** 20, rounds[1]!.live.arrayBuffers * 0.1)) failures.push(`live array buffers grew by ${(bufGrowth / 2 ** 20).toFixed(1)} MiB from round 2 to round ${nRounds}`);

// ---- in process, same token lists: mimo's generate and llama.cpp with as many sequences ----
const mimo = await loadModel(modelPath, { parallel, threads, contextSize: ctx, onWarning: () => {} });
const promptTokens = requests.map((r) => (r.kind === "chat" ? mimo.applyChatTemplate([{ role: "user", content: r.prompt }]).tokens : mimo.tokenize(r.prompt)));
const greedy = requests.map((r, k) => ({ ...r, tokens: promptTokens[k]! }));
const mimoRun = (n: number) =>
  pool(greedy, n, async (r) => (await mimo.complete((r as (typeof greedy)[number]).tokens, { maxTokens: r.maxTokens, temperature: 0 })).tokens.length);
let peer: { describe: string; run: (n: number) => Promise<{ ms: number; results: number[] }>; dispose: () => Promise<void> } | undefined;
if (!a["no-peer"]) {
  try {
    const llama = await getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false } as never);
    const lm = await llama.loadModel({ modelPath, gpuLayers: 0 });
    const lctx = await lm.createContext({ contextSize: ctx, threads, flashAttention: false, sequences: parallel });
    const free: LlamaContextSequence[] = Array.from({ length: parallel }, () => lctx.getSequence());
    const waiting: ((s: LlamaContextSequence) => void)[] = [];
    const take = () => (free.length > 0 ? Promise.resolve(free.pop()!) : new Promise<LlamaContextSequence>((r) => waiting.push(r)));
    const give = (s: LlamaContextSequence) => (waiting.length > 0 ? waiting.shift()!(s) : free.push(s));
    peer = {
      describe: `node-llama-cpp 3.21.1 (llama.cpp ${llama.llamaCppRelease.release}), ${parallel} sequences`,
      run: (n) =>
        pool(greedy, n, async (r) => {
          const seq = await take();
          try {
            await seq.clearHistory();
            let k = 0;
            for await (const t of seq.evaluate((r as (typeof greedy)[number]).tokens as Token[], { temperature: 0, yieldEogToken: true } as never)) {
              if (lm.isEogToken(t)) break;
              if (++k >= r.maxTokens) break;
            }
            return k;
          } finally {
            give(seq);
          }
        }),
      dispose: async () => {
        await lctx.dispose();
        await lm.dispose();
      },
    };
  } catch (e) {
    log(`llama.cpp peer unavailable: ${(e as Error).message}`);
  }
}
// Interleaved: mimo and the peer one at a time, then both concurrent.
for (const n of [1, clients]) {
  log(`in process, ${n === 1 ? "one at a time" : `${n} concurrent`} ...`);
  const r = await mimoRun(n);
  rows.push({ name: `mimo generate in process, ${n === 1 ? "one at a time" : `${n} concurrent`}`, requests: total, ms: r.ms, tokens: r.results.reduce((s, x) => s + x, 0) });
  if (peer) {
    const p = await peer.run(n);
    rows.push({ name: `llama.cpp in process, ${n === 1 ? "one at a time" : `${n} concurrent`}`, requests: total, ms: p.ms, tokens: p.results.reduce((s, x) => s + x, 0) });
  }
}
await mimo.dispose();
await peer?.dispose();

// ---- report ----
const machine = { cpu: cpus()[0]?.model ?? "?", cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.versions.node, loadAverage: loadavg()[0] };
const lines = [
  `mimo serve load test: ${modelPath}, ${total} requests (random prompts of 2-25 words, max_tokens 8-95, half chat half completions, 20% seeded sampling), ${clients} clients, ${Math.round(disconnectShare * 100)}% disconnecting mid-stream, --parallel ${parallel}, ${threads} threads`,
  `machine: ${machine.cpu}, ${machine.cpus} cores, ${machine.memGiB} GiB; read bandwidth ${(bandwidth / 1e9).toFixed(1)} GB/s (${threads} threads); load average ${machine.loadAverage.toFixed(2)} at the end${peer ? `; peer: ${peer.describe}` : ""}`,
  "",
  "| run | requests completed | wall s | requests/s | tok/s (aggregate) | x one at a time |",
  "|---|---|---|---|---|---|",
];
const base = new Map<string, number>();
for (const r of rows) {
  const tps = r.tokens / (r.ms / 1000);
  const family = r.name.split(",")[0]!;
  if (r.name.includes("one at a time")) base.set(family, tps);
  const ratio = base.has(family) && !r.name.includes("one at a time") ? `${(tps / base.get(family)!).toFixed(2)}x` : "1.00x";
  lines.push(`| ${r.name} | ${r.requests} | ${(r.ms / 1000).toFixed(1)} | ${(r.requests / (r.ms / 1000)).toFixed(1)} | ${tps.toFixed(0)} | ${ratio} |`);
}
lines.push(
  "",
  `checks: ${rounds.map((r, k) => `round ${k + 1}: ${r.completed} streams completed (${r.mismatched} differ from alone), ${r.disconnected} disconnected`).join("; ")}; active sequences after: 0 expected, ${m.get("mimo_active_sequences")}; live JS heap after a full collection, after warm-up and rounds 1..${nRounds}: ${[warm, ...rounds.map((r) => r.live)].map((l) => (l.heapUsed / 2 ** 20).toFixed(1)).join(" / ")} MiB; array buffers ${[warm, ...rounds.map((r) => r.live)].map((l) => (l.arrayBuffers / 2 ** 20).toFixed(1)).join(" / ")} MiB; resident memory (reported, not judged) ${[warm, ...rounds.map((r) => r.live)].map((l) => (l.rss / 2 ** 20).toFixed(0)).join(" / ")} MiB, V8 heap reserved ${[warm, ...rounds.map((r) => r.live)].map((l) => (l.heapTotal / 2 ** 20).toFixed(0)).join(" / ")} MiB`,
  `prefix cache: ${m.get("mimo_prompt_tokens_cached_total")} of ${m.get("mimo_prompt_tokens_total")} prompt tokens came from the cache (${((100 * m.get("mimo_prompt_tokens_cached_total")!) / m.get("mimo_prompt_tokens_total")!).toFixed(0)}%)`,
  failures.length === 0 ? "all checks passed" : `${failures.length} check(s) FAILED:\n${failures.slice(0, 30).map((f) => `  ${f}`).join("\n")}`,
);
process.stdout.write(lines.join("\n") + "\n");
const dir = fileURLToPath(new URL("results/", import.meta.url));
mkdirSync(dir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
writeFileSync(`${dir}serve-load-${stamp}.json`, JSON.stringify({ date: new Date().toISOString(), machine, bandwidth, params: { modelPath, clients, total, disconnectShare, parallel, threads, ctx, rounds: nRounds }, rows, rounds, failures }, null, 2) + "\n");
process.exitCode = failures.length === 0 ? 0 : 1;
