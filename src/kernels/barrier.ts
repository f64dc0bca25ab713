// A reusable barrier for worker threads on a SharedArrayBuffer: spin briefly (a matvec step is
// tens of microseconds, so waking through the OS would dominate), then block with Atomics.wait so
// that an oversubscribed machine does not burn the core the other thread needs.
// Atomics.wait is not allowed on a browser's main thread: call this from workers only.

/** Int32 slots a barrier uses in its SharedArrayBuffer. */
export const BARRIER_SLOTS = 2;

export interface Barrier {
  /** Returns when all nthreads threads have called it (for this generation). */
  wait(): void;
}

/**
 * ctl[at] counts arrivals, ctl[at + 1] is the generation. Every participant creates its own
 * Barrier over the same memory and slots.
 */
export function createBarrier(ctl: Int32Array, at: number, nthreads: number, spin = 20000): Barrier {
  const count = at, gen = at + 1;
  return {
    wait(): void {
      const g = Atomics.load(ctl, gen);
      if (Atomics.add(ctl, count, 1) === nthreads - 1) {
        Atomics.store(ctl, count, 0);
        Atomics.add(ctl, gen, 1);
        Atomics.notify(ctl, gen);
        return;
      }
      for (let i = 0; i < spin; i++) if (Atomics.load(ctl, gen) !== g) return;
      while (Atomics.load(ctl, gen) === g) Atomics.wait(ctl, gen, g);
    },
  };
}
