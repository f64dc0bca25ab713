// Starting compute threads: Node worker_threads here, Web Workers in browsers (same worker script).

export interface ComputeThread {
  postMessage(msg: unknown): void;
  /** Resolves with the first message the thread sends, rejects if it fails to start. */
  firstMessage(): Promise<unknown>;
  /** Calls `handler` with every message the thread sends from now on (request/response protocols). */
  onMessage(handler: (msg: unknown) => void): void;
  terminate(): Promise<void>;
}

export type ThreadFactory = (script: URL) => ComputeThread;

/**
 * Node built-ins are imported through a computed name so that bundlers building for browsers
 * leave them alone (this code runs only under Node).
 */
function nodeModule<T>(name: string): Promise<T> {
  return import(name) as Promise<T>;
}

/** How many threads to use by default: the number of cores this runtime reports. */
export async function defaultThreadCount(): Promise<number> {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (typeof process !== "undefined" && process.versions?.node) {
    const os = await nodeModule<typeof import("node:os")>("node:os");
    return Math.max(1, os.availableParallelism());
  }
  return Math.max(1, nav?.hardwareConcurrency ?? 1);
}

/** Node compute threads not yet terminated (see terminateAllThreads). */
const liveNodeThreads = new Set<ComputeThread>();

/**
 * Terminates every compute thread this process started and still runs, and resolves once all have
 * exited. A process must call this before process.exit(): exiting while a worker thread is still
 * starting or stopping makes Node join a thread in the middle of its teardown, which can deadlock
 * (the CLI hung about once in 400 runs that way).
 */
export async function terminateAllThreads(): Promise<void> {
  await Promise.all([...liveNodeThreads].map((t) => t.terminate()));
}

/**
 * Node: worker_threads on the script's URL. Browsers: module Web Workers, made by `spawn` when
 * given (a caller that writes `new Worker(new URL("./worker.js", import.meta.url), { type:
 * "module" })` out in full lets bundlers find and bundle the worker script), else from the URL.
 */
export async function defaultThreadFactory(spawn?: () => Worker): Promise<ThreadFactory> {
  if (typeof process !== "undefined" && process.versions?.node) {
    const { Worker } = await nodeModule<typeof import("node:worker_threads")>("node:worker_threads");
    return (script) => {
      const w = new Worker(script);
      w.unref(); // idle compute threads must not keep the process alive
      let exited: Promise<void> | undefined;
      const thread: ComputeThread = {
        postMessage: (m) => w.postMessage(m),
        firstMessage: () =>
          new Promise((resolve, reject) => {
            w.once("message", resolve);
            w.once("error", reject);
            w.once("exit", (code) => reject(new Error(`compute thread exited with code ${code} before starting`)));
          }),
        onMessage: (handler) => {
          w.on("message", handler);
        },
        // Resolves once the thread has exited and been joined. The worker is ref'd meanwhile:
        // an unref'd worker's pending 'exit' does not keep the event loop alive, so without this
        // the process could start exiting while the thread is still being torn down.
        terminate: () =>
          (exited ??= (async () => {
            w.ref();
            try {
              await w.terminate();
            } finally {
              liveNodeThreads.delete(thread);
            }
          })()),
      };
      liveNodeThreads.add(thread);
      return thread;
    };
  }
  return (script) => {
    const w = spawn ? spawn() : new Worker(script, { type: "module" });
    return {
      postMessage: (m) => w.postMessage(m),
      firstMessage: () =>
        new Promise((resolve, reject) => {
          w.addEventListener("message", (e) => resolve(e.data), { once: true });
          w.addEventListener(
            "error",
            (e) => reject(new Error(`compute thread failed: ${e.message || `its script did not load (${spawn ? "the bundled worker" : script.href}); check that the server sends it as JavaScript`}`)),
            { once: true },
          );
        }),
      onMessage: (handler) => w.addEventListener("message", (e) => handler(e.data)),
      terminate: async () => w.terminate(),
    };
  };
}
