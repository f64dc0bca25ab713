// Memory read bandwidth, measured the way a WebAssembly engine reads weights: the kernels'
// streamSum (128-bit loads) over a buffer far larger than the caches, one worker thread per
// thread, each over its own region, all started together. GB/s = total bytes / slowest thread.
// Run alone: node bench/bandwidth.ts [threads...]
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { createSharedMemory, instantiateKernels, loadKernels, KERNEL_RESERVED_BYTES } from "../src/kernels/kernels.ts";

const REGION = 256 * 2 ** 20; // per thread; L3 is 32 MB on the machines we use
const PASSES = 3;

interface Job { module: WebAssembly.Module; memory: WebAssembly.Memory; ctl: SharedArrayBuffer; index: number; nthreads: number; runs: number }

if (!isMainThread && workerData?.bandwidthWorker) {
  const j = workerData.job as Job;
  const ex = instantiateKernels(j.module, j.memory);
  const ctl = new Int32Array(j.ctl);
  const base = KERNEL_RESERVED_BYTES + j.index * REGION;
  ex.streamSum(base, REGION); // first touch
  parentPort!.postMessage("ready");
  for (let r = 0; r < j.runs; r++) {
    Atomics.wait(ctl, 0, r); // main bumps ctl[0] to r + 1 to start run r
    const t0 = performance.now();
    for (let p = 0; p < PASSES; p++) ex.streamSum(base, REGION);
    parentPort!.postMessage(performance.now() - t0);
  }
}

/** Read bandwidth in bytes/s with `threads` threads: the median of `runs` runs. */
export async function measureBandwidth(threads: number, runs = 5): Promise<number> {
  const memory = createSharedMemory(KERNEL_RESERVED_BYTES + threads * REGION + 65536, KERNEL_RESERVED_BYTES + threads * REGION + 65536);
  const k = await loadKernels({ memory });
  // Non-zero contents so no page stays a shared zero page.
  new Uint8Array(memory.buffer).fill(1, KERNEL_RESERVED_BYTES);
  const ctl = new SharedArrayBuffer(4);
  const ctlView = new Int32Array(ctl);
  const workers: Worker[] = [];
  const inbox: ((v: unknown) => void)[][] = [];
  const next = (i: number) => new Promise((res) => inbox[i]!.push(res));
  for (let i = 0; i < threads; i++) {
    inbox.push([]);
    const w = new Worker(new URL(import.meta.url), { workerData: { bandwidthWorker: true, job: { module: k.module, memory, ctl, index: i, nthreads: threads, runs } } });
    w.on("message", (m) => inbox[i]!.shift()?.(m));
    w.on("error", (e) => { throw e; });
    workers.push(w);
  }
  try {
    await Promise.all(workers.map((_, i) => next(i)));
    const rates: number[] = [];
    for (let r = 0; r < runs; r++) {
      const done = workers.map((_, i) => next(i) as Promise<number>);
      Atomics.store(ctlView, 0, r + 1);
      Atomics.notify(ctlView, 0);
      const ms = Math.max(...(await Promise.all(done)));
      rates.push((threads * REGION * PASSES) / (ms / 1000));
    }
    rates.sort((a, b) => a - b);
    return rates[Math.floor(rates.length / 2)]!;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

if (isMainThread && import.meta.url === `file://${process.argv[1]}`) {
  const list = process.argv.slice(2).map(Number);
  for (const t of list.length ? list : [1, 2]) console.log(`${t} thread(s): ${(await measureBandwidth(t) / 1e9).toFixed(1)} GB/s`);
}
