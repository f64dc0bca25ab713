// wllama (llama.cpp compiled to WebAssembly, @wllama/wllama) under Node, behind the bench Engine
// interface. wllama is written for browsers: it runs llama.cpp in a Web Worker made from a Blob URL,
// and the Emscripten code in that worker starts pthreads as further workers. Node has no Web
// Worker, so a small stand-in below maps it onto worker_threads:
//   - the Blob URL's code is written to a temporary .cjs file (the Emscripten glue is a classic
//     script that, seeing Node, uses require("worker_threads") for its pthreads);
//   - inside, self / postMessage / onmessage are wired to parentPort;
//   - the Blob of the glue that wllama posts for the pthreads is written to a file too, and
//     URL.createObjectURL returns that file's path, which worker_threads accepts.
// Node 24 has memory64 and JSPI, so wllama's default (64-bit, multi-thread) build runs, not its
// 32-bit compat build. Generation goes through wllama's llama-server-style completion API with
// token-id prompts and cache_prompt: false, timed here with performance.now().
import { mkdtempSync, openAsBlob, readFileSync, writeFileSync } from "node:fs";
import { resolveObjectURL } from "node:buffer";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker as NodeWorker } from "node:worker_threads";
import type { Engine, LoadedEngine } from "../../src/cli/bench.ts";
import { openGGUFFile } from "../../src/platform/node-file.ts";
import { createTokenizer } from "../../src/tokenizer/index.ts";

const wllamaDir = new URL("../../node_modules/@wllama/wllama/", import.meta.url);
const tmp = mkdtempSync(join(tmpdir(), "mimo-wllama-"));
let fileCount = 0;

// Runs in each stand-in worker before wllama's code: the Web Worker globals, over parentPort.
const PREAMBLE = `
const { parentPort: __pp } = require("node:worker_threads");
globalThis.self = globalThis;
globalThis.location = { href: ${JSON.stringify(pathToFileURL(tmp).href + "/")} };
globalThis.postMessage = (data, transfer) => __pp.postMessage(data, transfer);
const __fs = require("node:fs"), __path = require("node:path");
const __blobFiles = new Map();
const __createObjectURL = URL.createObjectURL;
URL.createObjectURL = (b) => __blobFiles.get(b) ?? __createObjectURL(b);
let __n = 0;
__pp.on("message", async (data) => {
  // Blobs of code (the pthread glue) become files before the worker code sees them.
  for (const a of Array.isArray(data?.args) ? data.args : []) {
    if (a instanceof Blob && /javascript/.test(a.type) && !__blobFiles.has(a)) {
      const p = __path.join(${JSON.stringify(tmp)}, "pthread-" + process.pid + "-" + (__n++) + ".cjs");
      __fs.writeFileSync(p, await a.text());
      __blobFiles.set(a, p);
    }
  }
  globalThis.onmessage?.({ data });
});
`;

/** A Web Worker made of worker_threads, enough for wllama's outer worker. */
class WebWorkerShim {
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  private worker: Promise<NodeWorker>;
  constructor(url: string | URL) {
    const href = String(url);
    this.worker = (async () => {
      const blob = resolveObjectURL(href);
      if (!blob) throw new Error(`wllama shim: only Blob URL workers are supported, got ${href}`);
      const path = join(tmp, `worker-${process.pid}-${fileCount++}.cjs`);
      writeFileSync(path, PREAMBLE + "\n" + (await blob.text()));
      const w = new NodeWorker(path);
      w.on("message", (data) => this.onmessage?.({ data }));
      w.on("error", (e) => (this.onerror ? this.onerror(e) : console.error("wllama worker:", e)));
      return w;
    })();
  }
  postMessage(data: unknown, transfer?: Transferable[]): void {
    void this.worker.then((w) => w.postMessage(data, transfer as never));
  }
  terminate(): void {
    void this.worker.then((w) => w.terminate());
  }
}

function installShims(): void {
  const g = globalThis as Record<string, unknown>;
  g.Worker ??= WebWorkerShim;
  g.self ??= globalThis;
  g.location ??= { href: pathToFileURL(tmp).href + "/" };
}

interface WllamaLike {
  loadModel(blobs: Blob[], params: Record<string, unknown>): Promise<void>;
  createCompletion(o: Record<string, unknown>): Promise<{ usage?: unknown; timings?: unknown }>;
  getModelMetadata?(): { hparams?: { nVocab?: number } };
  exit(): Promise<void>;
}

export const wllamaEngine: Engine = {
  name: "wllama",
  async describe() {
    const pkg = JSON.parse(readFileSync(new URL("package.json", wllamaDir), "utf8")) as { version: string };
    return `@wllama/wllama ${pkg.version} (default build: wasm64, multi-thread; JSPI ${typeof (WebAssembly as { Suspending?: unknown }).Suspending === "function" ? "on" : "off"})`;
  },
  async load(path, threads, contextSize, batchSize): Promise<LoadedEngine> {
    installShims();
    const { Wllama } = (await import(new URL("esm/index.js", wllamaDir).href)) as { Wllama: new (p: Record<string, string>, c?: Record<string, unknown>) => WllamaLike };
    const quiet = process.env.WLLAMA_LOG !== undefined ? console : { debug() {}, log() {}, info() {}, warn: console.warn, error: console.error };
    const w = new Wllama({ default: new URL("esm/wasm/wllama.wasm", wllamaDir).href }, {
      logger: quiet,
      suppressNativeLog: process.env.WLLAMA_LOG === undefined,
      // Its download cache needs OPFS or the Cache API; models come from local files here.
      cacheManager: {},
      modelManager: {},
    });
    const blob = await openAsBlob(path);
    // Blob names matter to wllama (it checks for .gguf); a File carries one.
    const file = new File([blob], path.split("/").pop()!, { type: "application/octet-stream" });
    await w.loadModel([file], {
      n_threads: threads,
      n_ctx: contextSize,
      n_batch: batchSize,
      n_ubatch: Math.min(batchSize, 512),
      n_gpu_layers: 0,
      n_parallel: 1,
      flash_attn: false, // as the llama.cpp contestant (and llama-bench's CPU default)
    });
    const tok = await fileTokenizer(path);
    // Its completion API takes text only: the bench's tokens (wordTokenPool) round-trip through text.
    const run = (prompt: readonly number[], n: number) =>
      w.createCompletion({ prompt: tok.decode([...prompt]), n_predict: n, max_tokens: n, temperature: 0, ignore_eos: true, cache_prompt: false, stream: false });
    return {
      vocabSize: tok.vocabSize,
      async prefill(tokens) {
        const t0 = performance.now();
        await run(tokens, 0);
        return performance.now() - t0;
      },
      async decode(first, n) {
        const t0 = performance.now();
        await run([first], n);
        return performance.now() - t0;
      },
      async ttft(tokens) {
        const t0 = performance.now();
        await run(tokens, 1);
        return performance.now() - t0;
      },
      dispose: () => w.exit(),
    };
  },
};

async function fileTokenizer(path: string) {
  const f = await openGGUFFile(path);
  try {
    return createTokenizer(f.metadata);
  } finally {
    await f.close();
  }
}
