// `mimo serve`: the OpenAI-compatible server (src/server/) on a model loaded from a file.
import { basename } from "node:path";
import type { Command } from "commander";
import { loadModel, defaultModelPath } from "../index.ts";
import { MimoServer } from "../server/server.ts";
import { modelPath } from "./pull.ts";
import { int } from "./options.ts";

interface ServeOptions {
  model?: string;
  alias?: string;
  host: string;
  port: number;
  parallel: number;
  ctxSize?: number;
  threads?: number;
  backend: string;
  apiKey?: string;
  maxQueue: number;
  maxBody: number;
  shutdownTimeout: number;
  quiet?: boolean;
}

/** Loopback addresses: only this machine can connect. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description("serve a model over an OpenAI-compatible HTTP API (chat, completions, embeddings) with continuous batching")
    .option("-m, --model <file>", "GGUF model file or hf:OWNER/REPO[:QUANT] (pulled on first use; default: the bundled stories260K)")
    .option("-a, --alias <id>", "model id the API lists and requests name (default: the file name without .gguf)")
    .option("--host <address>", "interface to bind; anything but loopback needs --api-key", "127.0.0.1")
    .option("--port <n>", "TCP port (0 = any free port)", int("--port"), 8080)
    .option("--parallel <n>", "sequences generated at once (batched into the same forward passes)", int("--parallel"), 4)
    .option("-c, --ctx-size <n>", "context size of each sequence in tokens", int("--ctx-size"))
    .option("-t, --threads <n>", "compute threads (default: chosen for the model's size, at most the number of cores)", int("--threads"))
    .option("--backend <name>", "wasm (SIMD kernels on threads) or reference (plain TypeScript)", "wasm")
    .option("--api-key <key>", "require Authorization: Bearer <key> (default: $MIMO_API_KEY)")
    .option("--max-queue <n>", "requests that may wait for a free sequence; more get 503 + Retry-After", int("--max-queue"), 64)
    .option("--max-body <bytes>", "largest request body", int("--max-body"), 4 << 20)
    .option("--shutdown-timeout <ms>", "on SIGINT/SIGTERM, how long running requests may finish before they are cancelled", int("--shutdown-timeout"), 5000)
    .option("-q, --quiet", "no request log on stderr")
    .action(serveCommand);
}

export async function serveCommand(o: ServeOptions): Promise<void> {
  if (o.backend !== "wasm" && o.backend !== "reference") throw new Error(`--backend must be "wasm" or "reference", got "${o.backend}"`);
  const apiKey = o.apiKey ?? (process.env.MIMO_API_KEY || undefined);
  if (!isLoopback(o.host) && apiKey === undefined) {
    throw new Error(`--host ${o.host} lets other machines connect: set --api-key (or MIMO_API_KEY), or bind 127.0.0.1`);
  }
  if (!(o.port >= 0 && o.port <= 65535)) throw new Error(`--port must be from 0 to 65535, got ${o.port}`);
  const path = o.model === undefined ? defaultModelPath() : await modelPath(o.model, {});
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const server = new MimoServer({ host: o.host, port: o.port, apiKey, maxQueue: o.maxQueue, maxBodyBytes: o.maxBody, log: o.quiet ? undefined : log });
  const { url } = await server.listen();
  log(`mimo serve: listening on ${url} (loading ${path} ...)`);
  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    if (stopping) {
      log(`mimo serve: ${signal} again, exiting now`);
      process.exit(130);
    }
    log(`mimo serve: ${signal}: finishing running requests (up to ${o.shutdownTimeout} ms), then exiting`);
    stopping = server.close(o.shutdownTimeout);
  };
  const onInt = () => stop("SIGINT");
  const onTerm = () => stop("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  let model;
  try {
    model = await loadModel(path, { contextSize: o.ctxSize, threads: o.threads, backend: o.backend, parallel: o.parallel, onWarning: (m) => log(`mimo serve: warning: ${m}`) });
  } catch (e) {
    await server.close(0);
    throw e;
  }
  const id = o.alias ?? basename(path).replace(/\.gguf$/i, "");
  void model.chatTemplate;
  server.setModel(model, id);
  log(`mimo serve: model "${id}" ready: ${model.parallel} sequences of ${model.contextSize} tokens, ${model.backendName}; OpenAI base URL ${url}/v1`);
  await new Promise<void>((resolve) => {
    const wait = () => (stopping ? void stopping.then(resolve) : setTimeout(wait, 100));
    wait();
  });
  process.off("SIGINT", onInt);
  process.off("SIGTERM", onTerm);
  await model.dispose();
  log("mimo serve: stopped");
}
