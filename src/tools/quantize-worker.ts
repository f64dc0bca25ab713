// A quantize thread: receives slabs of rows, answers with their quantized bytes (see quantize-pool.ts).
import { quantizeRows } from "./quantize-rows.ts";
import type { QuantizeJob, QuantizeReply } from "./quantize-pool.ts";

function serve(post: (m: QuantizeReply, transfer?: ArrayBuffer[]) => void): (job: QuantizeJob) => void {
  return (job) => {
    try {
      const bytes = quantizeRows(job.type, job.src, job.cols, job.rows, job.importance);
      post({ id: job.id, bytes }, [bytes.buffer as ArrayBuffer]);
    } catch (e) {
      post({ id: job.id, error: e instanceof Error ? e.message : String(e) });
    }
  };
}

const isNode = typeof process !== "undefined" && typeof process.versions?.node === "string";
if (isNode) {
  const { parentPort } = await import("node:worker_threads");
  const handle = serve((m, transfer) => parentPort!.postMessage(m, transfer ?? []));
  parentPort!.on("message", handle);
  parentPort!.postMessage({ id: -1 });
} else {
  const scope = globalThis as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown, transfer?: ArrayBuffer[]): void };
  const handle = serve((m, transfer) => scope.postMessage(m, transfer ?? []));
  scope.onmessage = (e: MessageEvent) => handle(e.data as QuantizeJob);
  scope.postMessage({ id: -1 });
}
