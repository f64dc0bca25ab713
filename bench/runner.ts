// One contestant of bench/peers.ts in its own process (its own memory high-water mark, no shared
// heap or thread pool with the others). Driven over IPC: load, warmup, test, rss, exit.
import type { Engine, LoadedEngine, TestSpec } from "../src/cli/bench.ts";
import { mimoEngine, peakRssBytes, runTest, warmup } from "../src/cli/bench.ts";
import { SeededRandom } from "../src/sampling/rng.ts";

export type RunnerRequest =
  | { id: number; cmd: "load"; file: string; threads: number; contextSize: number; batchSize: number; pool: number[] }
  | { id: number; cmd: "warmup"; seed: number }
  | { id: number; cmd: "test"; test: TestSpec; seed: number }
  | { id: number; cmd: "rss" }
  | { id: number; cmd: "exit" };

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
      const t0 = performance.now();
      loaded = await engine.load(m.file, m.threads, m.contextSize, m.batchSize);
      const loadMs = performance.now() - t0;
      pool = m.pool; // computed by the parent: a tokenizer here would count in this engine's RSS
      return { loadMs, vocabSize: loaded.vocabSize, version: await engine.describe() };
    }
    case "warmup":
      return warmup(loaded!, new SeededRandom(m.seed), pool);
    case "test":
      return runTest(loaded!, m.test, new SeededRandom(m.seed), pool);
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
process.send!({ id: 0, ok: true, value: "ready" } satisfies RunnerReply);
