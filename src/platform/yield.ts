// Giving the event loop a turn between tokens, with a mechanism no runtime clamps: browsers clamp
// nested setTimeout(0) to >= 4 ms (in Chromium that capped a 260K-parameter model at ~250 tok/s),
// so pages use scheduler.postTask or a MessageChannel round trip; Node uses setImmediate.

type Resolve = () => void;
interface Scheduler {
  postTask?(cb: () => void, opts?: { priority?: string }): Promise<unknown>;
}

let macrotask: ((resolve: Resolve) => void) | undefined;

/** The cheapest unclamped way to run a callback as a new task in this runtime. */
function pickMacrotask(): (resolve: Resolve) => void {
  const g = globalThis as { setImmediate?: (cb: () => void) => unknown; scheduler?: Scheduler };
  // Node (and Bun, Deno's node compat): setImmediate runs after pending I/O and timers.
  if (typeof g.setImmediate === "function") return (r) => void g.setImmediate!(r);
  // Chromium and Firefox: a prioritized task at the default priority; timers, input and messages
  // of the same priority interleave with it (scheduler.yield would jump ahead of them).
  const sched = g.scheduler;
  if (sched && typeof sched.postTask === "function") return (r) => void sched.postTask!(r, { priority: "user-visible" });
  // Safari and workers without the scheduler API: a message to ourselves is a task, never clamped.
  if (typeof MessageChannel === "function") {
    const ch = new MessageChannel();
    const waiting: Resolve[] = [];
    ch.port1.onmessage = () => waiting.shift()?.();
    return (r) => {
      waiting.push(r);
      ch.port2.postMessage(0);
    };
  }
  return (r) => void setTimeout(r, 0);
}

/** Lets timers, I/O, input and AbortSignals run: resolves in a new task of the event loop. */
export function yieldToEventLoop(): Promise<void> {
  const run = (macrotask ??= pickMacrotask());
  return new Promise(run);
}

/** Milliseconds from a monotonic clock (performance.now exists in Node and browsers). */
export function now(): number {
  return performance.now();
}

/**
 * Yields only as often as needed: a full event-loop turn once `intervalMs` has passed since the
 * last one (so aborts, timers and input wait at most that long plus one step), otherwise just a
 * microtask turn (promise continuations, e.g. a stream's reader, still run between steps).
 */
export class Yielder {
  private last = now();
  private readonly intervalMs: number;
  constructor(intervalMs = 4) {
    this.intervalMs = intervalMs;
  }

  async yield(): Promise<void> {
    if (now() - this.last >= this.intervalMs) {
      await yieldToEventLoop();
      this.last = now();
    } else {
      await Promise.resolve();
    }
  }
}
