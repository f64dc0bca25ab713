// Worker for the 2-thread matvec benchmark: its own kernels instance on the shared memory; runs its
// share of the row groups of each matvec, then meets the other threads at a spin barrier.
import { parentPort, workerData } from "node:worker_threads";
import { instantiateKernels, type KernelExports } from "../../src/kernels/kernels.ts";

export interface Job {
  fn: "matvecQ4_0R8" | "matvecQ8_0R8" | "matvecQ4_0" | "matvecQ8_0";
  repacked: boolean;
  mats: Array<{ w: number; x: number; y: number; k: number; rows: number }>;
}

const { module, memory, ctl: ctlBuf, index, nthreads } = workerData as {
  module: WebAssembly.Module; memory: WebAssembly.Memory; ctl: SharedArrayBuffer; index: number; nthreads: number;
};
const ex: KernelExports = instantiateKernels(module, memory);
// ctl[0]: barrier count, ctl[1]: barrier generation, ctl[2]: run generation, ctl[3]: steps to run
const ctl = new Int32Array(ctlBuf);

// A reusable barrier: spin briefly (a matvec step is tens of microseconds), then block in
// Atomics.wait so that an oversubscribed machine does not burn the core the other thread needs.
function barrier(spin = 20000): void {
  const g = Atomics.load(ctl, 1);
  if (Atomics.add(ctl, 0, 1) === nthreads - 1) {
    Atomics.store(ctl, 0, 0);
    Atomics.add(ctl, 1, 1);
    Atomics.notify(ctl, 1);
    return;
  }
  for (let i = 0; i < spin; i++) if (Atomics.load(ctl, 1) !== g) return;
  while (Atomics.load(ctl, 1) === g) Atomics.wait(ctl, 1, g);
}

parentPort!.on("message", (job: Job) => {
  const split = job.mats.map((m) => {
    const units = job.repacked ? Math.ceil(m.rows / 8) : m.rows;
    return [Math.floor((units * index) / nthreads), Math.floor((units * (index + 1)) / nthreads)];
  });
  const f = ex[job.fn];
  const steps = ctl[3];
  barrier();
  for (let s = 0; s < steps; s++) {
    for (let i = 0; i < job.mats.length; i++) {
      const m = job.mats[i];
      const [a, b] = split[i];
      if (job.repacked) (f as KernelExports["matvecQ4_0R8"])(m.w, m.x, m.y, m.k, a, b, m.rows);
      else (f as KernelExports["matvecQ4_0"])(m.w, m.x, m.y, m.k, a, b);
      barrier();
    }
  }
  parentPort!.postMessage("done");
});
