// One contestant of bench/peers.ts in its own process (its own memory high-water mark, no shared
// heap or thread pool with the others). Driven over IPC: load, warmup, prewarm, test, rss, exit. A second
// load (the batched tests' model with several sequences) replaces the first.
import type { Engine, LoadedEngine, Measurement, TestSpec } from "../src/cli/bench.ts";
import { decodeFor, measure, mimoEngine, peakRssBytes, warmup, warmupBatched } from "../src/cli/bench.ts";
import { SeededRandom } from "../src/sampling/rng.ts";

export type RunnerRequest =
  | { id: number; cmd: "load"; file: string; threads: number; contextSize: number; batchSize: number; sequences?: number; pool: number[] }
  | { id: number; cmd: "warmup"; seed: number; sequences?: number }
  | { id: number; cmd: "test"; test: TestSpec; seed: number }
  | { id: number; cmd: "prewarm"; ms: number; seed: number }
  | { id: number; cmd: "prefill"; tokens: number[] }
  | { id: number; cmd: "decode"; first: number; n: number }
  | { id: number; cmd: "rss" }
  | { id: number; cmd: "exit" };

/** What "load" answers. */
export interface LoadReply {
  loadMs: number;
  vocabSize: number;
  version: string;
  /** Which optional tests the engine has. */
  supports: { batch: boolean; verify: boolean };
}

/** What "test" answers: the test's figures (see measure). */
export type TestReply = Measurement[];

export type RunnerReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

async function engineByName(name: string): Promise<Engine> {
  if (name === "mimo") return mimoEngine;
  if (name === "llama.cpp") return (await import("./engines/llama-cpp.ts")).llamaCppEngine;
  if (name === "wllama") return (await import("./engines/wllama.ts")).wllamaEngine;
  throw new Error(`unknown engine "${name}"`);
}

const engine = await engineByName(process.argv[2] ?? "");
let loaded: LoadedEngine | undefined;
let pool: number[] = [];

async function handle(m: RunnerRequest): Promise<unknown> {
  switch (m.cmd) {
    case "load": {
      await loaded?.dispose();
      loaded = undefined;
      const t0 = performance.now();
      loaded = await engine.load(m.file, m.threads, m.contextSize, m.batchSize, m.sequences ?? 1);
      const loadMs = performance.now() - t0;
      pool = m.pool; // computed by the parent: a tokenizer here would count in this engine's RSS
      const supports = { batch: loaded.batchedDecode !== undefined, verify: loaded.verify !== undefined };
      return { loadMs, vocabSize: loaded.vocabSize, version: await engine.describe(), supports } satisfies LoadReply;
    }
    case "warmup":
      if (m.sequences !== undefined) return warmupBatched(loaded!, m.sequences, new SeededRandom(m.seed), pool);
      return warmup(loaded!, new SeededRandom(m.seed), pool);
    case "prewarm":
      // Right before a timed test, so that it does not pay for threads (and, on some virtual
      // machines, vCPUs) waking up from a pause (see bench/cores.ts).
      return decodeFor(loaded!, m.ms, new SeededRandom(m.seed), pool);
    case "test":
      return (await measure(loaded!, m.test, new SeededRandom(m.seed), pool)) satisfies TestReply;
    case "prefill":
      return loaded!.prefill(m.tokens);
    case "decode":
      return loaded!.decode(m.first, m.n);
    case "rss":
      return peakRssBytes();
    case "exit":
      await loaded?.dispose();
      setImmediate(() => process.exit(0));
      return null;
  }
}

process.on("message", (m: RunnerRequest) => {
  handle(m).then(
    (value) => process.send!({ id: m.id, ok: true, value } satisfies RunnerReply),
    (e: unknown) => process.send!({ id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) } satisfies RunnerReply),
  );
});
// The parent is gone (stopped or crashed): so is this contestant.
process.on("disconnect", () => process.exit(0));
process.send!({ id: 0, ok: true, value: "ready" } satisfies RunnerReply);
