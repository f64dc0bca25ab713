// Starting compute threads: Node worker_threads here, Web Workers in browsers (same worker script).

export interface ComputeThread {
  postMessage(msg: unknown): void;
  /** Resolves with the first message the thread sends, rejects if it fails to start. */
  firstMessage(): Promise<unknown>;
  terminate(): Promise<void>;
}

export type ThreadFactory = (script: URL) => ComputeThread;

/** How many threads to use by default: the number of cores this runtime reports. */
export async function defaultThreadCount(): Promise<number> {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (typeof process !== "undefined" && process.versions?.node) {
    const os = await import("node:os");
    return Math.max(1, os.availableParallelism());
  }
  return Math.max(1, nav?.hardwareConcurrency ?? 1);
}

export async function defaultThreadFactory(): Promise<ThreadFactory> {
  if (typeof process !== "undefined" && process.versions?.node) {
    const { Worker } = await import("node:worker_threads");
    return (script) => {
      const w = new Worker(script);
      w.unref(); // idle compute threads must not keep the process alive
      return {
        postMessage: (m) => w.postMessage(m),
        firstMessage: () =>
          new Promise((resolve, reject) => {
            w.once("message", resolve);
            w.once("error", reject);
            w.once("exit", (code) => reject(new Error(`compute thread exited with code ${code} before starting`)));
          }),
        terminate: async () => {
          await w.terminate();
        },
      };
    };
  }
  return (script) => {
    const w = new Worker(script, { type: "module" });
    return {
      postMessage: (m) => w.postMessage(m),
      firstMessage: () =>
        new Promise((resolve, reject) => {
          w.addEventListener("message", (e) => resolve(e.data), { once: true });
          w.addEventListener("error", (e) => reject(new Error(`compute thread failed: ${e.message}`)), { once: true });
        }),
      terminate: async () => w.terminate(),
    };
  };
}
