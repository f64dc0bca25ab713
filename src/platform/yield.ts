/** Lets timers and I/O run (so an AbortSignal fired elsewhere is seen) between tokens. */
export function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (cb: () => void) => unknown };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}

/** Milliseconds from a monotonic clock (performance.now exists in Node and browsers). */
export function now(): number {
  return performance.now();
}
