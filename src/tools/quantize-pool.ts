// Threads for the quantize tool: the rows of each slab are split between the calling thread and
// N - 1 worker threads (the quantizers are plain TypeScript, so this is where the cores go).

import { defaultThreadCount, defaultThreadFactory, type ComputeThread } from "../platform/threads.ts";
import { quantizeRows } from "./quantize-rows.ts";

export interface QuantizeJob {
  readonly id: number;
  readonly type: number;
  readonly src: Float32Array;
  readonly cols: number;
  readonly rows: number;
  readonly importance?: Float32Array;
}

export type QuantizeReply = { readonly id: number; readonly bytes?: Uint8Array; readonly error?: string };

/** Below this many elements a slab is not worth a message to another thread. */
const MIN_SHARE = 1 << 14;

export class QuantizePool {
  readonly threads: number;
  private readonly workers: ComputeThread[];
  private readonly pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  private nextId = 0;

  private constructor(workers: ComputeThread[]) {
    this.workers = workers;
    this.threads = workers.length + 1;
    for (const w of workers) {
      w.onMessage((m) => {
        const r = m as QuantizeReply;
        const p = this.pending.get(r.id);
        if (!p) return;
        this.pending.delete(r.id);
        if (r.error !== undefined || !r.bytes) p.reject(new Error(`quantize thread: ${r.error ?? "no result"}`));
        else p.resolve(r.bytes);
      });
    }
  }

  /** A pool of `threads` threads in all (default: the number of cores), the caller being one of them. */
  static async create(threads?: number): Promise<QuantizePool> {
    const n = threads ?? (await defaultThreadCount());
    if (!(Number.isInteger(n) && n >= 1 && n <= 256)) throw new RangeError(`threads must be an integer from 1 to 256, got ${threads}`);
    const workers: ComputeThread[] = [];
    if (n > 1) {
      const factory = await defaultThreadFactory();
      const script = new URL(import.meta.url.endsWith(".ts") ? "./quantize-worker.ts" : "./quantize-worker.js", import.meta.url);
      try {
        for (let i = 1; i < n; i++) {
          const th = factory(script);
          workers.push(th);
          await th.firstMessage();
        }
      } catch (e) {
        await Promise.all(workers.map((w) => w.terminate()));
        throw e;
      }
    }
    return new QuantizePool(workers);
  }

  /** Quantizes `rows` rows of `cols` floats; the same bytes whatever the thread count. */
  async quantize(type: number, src: Float32Array, cols: number, rows: number, importance?: Float32Array): Promise<Uint8Array> {
    const shares = Math.max(1, Math.min(this.threads, Math.floor((rows * cols) / MIN_SHARE), rows));
    if (shares === 1) return quantizeRows(type, src, cols, rows, importance);
    const per = Math.ceil(rows / shares);
    const parts: Promise<Uint8Array>[] = [];
    for (let s = 1; s < shares; s++) {
      const from = s * per;
      const n = Math.min(rows, from + per) - from;
      if (n <= 0) break;
      const slice = src.slice(from * cols, (from + n) * cols);
      const id = this.nextId++;
      parts.push(
        new Promise<Uint8Array>((resolve, reject) => {
          this.pending.set(id, { resolve, reject });
          const job: QuantizeJob = { id, type, src: slice, cols, rows: n, importance };
          this.workers[s - 1]!.postMessage(job);
        }),
      );
    }
    // The calling thread takes the first share while the others work.
    const first = quantizeRows(type, src.subarray(0, per * cols), cols, Math.min(per, rows), importance);
    // compute threads are unref'd (idle ones must not keep a process alive): hold the event loop
    // open while their answers are due
    const keepAlive = setInterval(() => {}, 1 << 30);
    let rest: Uint8Array[];
    try {
      rest = await Promise.all(parts);
    } finally {
      clearInterval(keepAlive);
    }
    const out = new Uint8Array(first.byteLength + rest.reduce((a, b) => a + b.byteLength, 0));
    out.set(first, 0);
    let at = first.byteLength;
    for (const b of rest) {
      out.set(b, at);
      at += b.byteLength;
    }
    return out;
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) p.reject(new Error("the quantize pool was closed"));
    this.pending.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
