// A compute thread: its own kernels instance on its own memory (its shard of every weight and of
// the KV pool).
// It waits for commands on the control buffer, runs its jobs, and reports done. Runs as a Node
// worker_thread or a browser module Worker.
import { instantiateKernels } from "../../kernels/kernels.ts";
import {
  BUSY_UNIT_MS, CONTENDED_WAKE_US, CTL_BUSY, CTL_CONTENDED, CTL_DONE, CTL_POSTED_US, CTL_ERROR, CTL_OP, CTL_PROFILE, CTL_SEQ, CTL_SLEEPS, OP_EXIT, PROFILED_THREADS, adaptSpin, jobRunners, usSince, runJobs, type WorkerInit,
} from "./protocol.ts";

function serve(init: WorkerInit, reply: (msg: unknown) => void): void {
  const fns = jobRunners(instantiateKernels(init.module, init.memory), init.functions);
  const ctl = new Int32Array(init.control);
  // Read the sequence number before saying ready: a command posted right after must be seen as new.
  let seen = Atomics.load(ctl, CTL_SEQ);
  reply({ ready: true });
  let limit = init.spin;
  let contended = false;
  for (;;) {
    for (;;) {
      let spins = limit;
      while (Atomics.load(ctl, CTL_SEQ) === seen && spins-- > 0);
      if (Atomics.load(ctl, CTL_SEQ) !== seen) break;
      if (ctl[CTL_PROFILE] !== 0 && init.thread <= PROFILED_THREADS) Atomics.add(ctl, CTL_SLEEPS + init.thread, 1);
      const t0 = performance.now();
      // Woken without a new command (a pass began, see WasmBackend.pass): spin again, then sleep.
      if (Atomics.wait(ctl, CTL_SEQ, seen) === "ok") {
        // How long the wake-up took tells whether the cores are oversubscribed (see CTL_CONTENDED).
        const late = usSince(Atomics.load(ctl, CTL_POSTED_US)) > CONTENDED_WAKE_US;
        if (late !== contended) Atomics.store(ctl, CTL_CONTENDED, late ? 1 : 0);
        contended = late;
      }
      limit = adaptSpin(limit, performance.now() - t0, init.spin);
    }
    seen = Atomics.load(ctl, CTL_SEQ);
    if (Atomics.load(ctl, CTL_OP) === OP_EXIT) break;
    const profiled = ctl[CTL_PROFILE] !== 0 && init.thread <= PROFILED_THREADS;
    const t0 = profiled ? performance.now() : 0;
    try {
      runJobs(ctl, init.thread, fns);
      if (profiled) Atomics.add(ctl, CTL_BUSY + init.thread, Math.round((performance.now() - t0) / BUSY_UNIT_MS));
    } catch (e) {
      Atomics.store(ctl, CTL_ERROR, init.thread + 1);
      reply({ error: String(e) });
    }
    Atomics.add(ctl, CTL_DONE, 1);
    Atomics.notify(ctl, CTL_DONE);
  }
}

const isNode = typeof process !== "undefined" && typeof process.versions?.node === "string";
if (isNode) {
  // A computed name and no top-level await: bundlers building for browsers leave this alone.
  const name = "node:worker_threads";
  void (import(name) as Promise<typeof import("node:worker_threads")>).then(({ parentPort }) =>
    parentPort!.once("message", (init: WorkerInit) => serve(init, (m) => parentPort!.postMessage(m))),
  );
} else {
  const scope = globalThis as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };
  scope.onmessage = (e: MessageEvent) => {
    scope.onmessage = null;
    serve(e.data as WorkerInit, (m) => scope.postMessage(m));
  };
}
