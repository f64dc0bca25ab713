// The coordinator and worker threads talk through one SharedArrayBuffer of int32 slots:
// a command sequence number, a done counter, the command, and one job table per thread.
// A job runs one exported kernel on the thread's own memory; its first int indexes the list of
// kernel names (WorkerInit.functions), the rest are the kernel's arguments:
//   matmul kernels: fn(w, x, y, k, g0, g1, nrows, ntok)  (weights, activations, output, columns, row groups, rows, tokens)
//   ATTENTION_KERNEL (and ATTENTION_F32_KERNEL): attentionF16(q, kc, vc, out, scratch, startPos, nTok, nHeads, nKvHeads, hd,
//     hdV, scale, rowKvHeads, kIn, vIn), the f32 scale as its bit pattern (see assembly/attention.ts)

export const CTL_SEQ = 0;
export const CTL_DONE = 1;
export const CTL_OP = 2;
export const CTL_NJOBS = 3;
/** Set (to the thread index + 1) by a worker whose jobs threw; the coordinator then fails the op. */
export const CTL_ERROR = 4;
/** Non-zero while a profile is attached: workers then add their job time to CTL_BUSY + thread. */
export const CTL_PROFILE = 5;
/** Worker t's job time (units of BUSY_UNIT_MS) at CTL_BUSY + t, for threads 1..PROFILED_THREADS. */
export const CTL_BUSY = 7;
export const PROFILED_THREADS = 8;
export const BUSY_UNIT_MS = 1e-4;
/** While profiling: how often worker t went to sleep in Atomics.wait (at CTL_SLEEPS + t). */
export const CTL_SLEEPS = CTL_BUSY + PROFILED_THREADS + 1;
/** When the coordinator last notified the workers (clockUs), so that a woken worker can tell how long its wake-up took. */
export const CTL_POSTED_US = CTL_SLEEPS + PROFILED_THREADS + 1;
/**
 * Set by a worker whose last wake-up took longer than CONTENDED_WAKE_US: the OS had no free core
 * for it (more runnable threads than cores). Then the coordinator does not wake sleeping workers
 * early at the start of a pass (WasmBackend.pass), which would only add a context switch; it is
 * cleared by the next wake-up that is quick again.
 */
export const CTL_CONTENDED = CTL_POSTED_US + 1;
export const CTL_HEADER = 32;

/** A wake-up slower than this means the cores are oversubscribed (a quiet one takes 40-50 µs here). */
export const CONTENDED_WAKE_US = 250;

/**
 * A clock in whole microseconds, modulo 2^30 (a small integer: no heap number per reading), that
 * every thread of the process reads alike (performance.now() counts from each thread's own start).
 */
export function clockUs(): number {
  return Math.floor((TIME_ORIGIN + performance.now()) * 1000) % 0x40000000;
}
const TIME_ORIGIN = performance.timeOrigin; // a getter: read once
/** Whole microseconds from clockUs() reading `since` to now (wrap-around handled). */
export function usSince(since: number): number {
  return (clockUs() - since + 0x40000000) % 0x40000000;
}

export const OP_RUN = 1;
export const OP_EXIT = 2;

export const JOB_INTS = 16;
/** Jobs per thread in one command: the matrices of a fused matmul, or one attention job per segment. */
export const MAX_JOBS = 64;
export const THREAD_AREA = JOB_INTS * MAX_JOBS;

export function controlInts(nThreads: number): number {
  return CTL_HEADER + nThreads * THREAD_AREA;
}

export function jobOffset(thread: number, job: number): number {
  return CTL_HEADER + thread * THREAD_AREA + job * JOB_INTS;
}

export interface WorkerInit {
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly control: SharedArrayBuffer;
  readonly thread: number;
  /** Export names of the kernels jobs run; a job's first int indexes this list. */
  readonly functions: readonly string[];
  /** Iterations to spin on the command slot before sleeping in Atomics.wait. */
  readonly spin: number;
}

/**
 * Adaptive spinning before Atomics.wait. A waiter spins up to `limit` iterations, then sleeps.
 * If the event came soon after it gave up (a short sleep), it spins longer next time: waking a
 * sleeping thread costs tens of microseconds. If the sleep was long, the thread it waits for was
 * off its core (more runnable threads than cores: another process, a browser's other work), and
 * spinning would only have taken a core from that thread, so it spins less. Measured on 2 cores,
 * qwen2-0.5b Q4_0 decode on 2 threads, with one CPU-bound process beside it: at most 100k
 * iterations (~1.7 ms) fell to 6-8 tok/s, at most 5k (~30 µs at 5.5-7 ns per Atomics.load on Zen 5) kept 25 tok/s; alone, 5k was as
 * fast as 100k (47-55 tok/s).
 */
export const MIN_SPIN = 256;
export function adaptSpin(limit: number, sleptMs: number, max: number): number {
  if (sleptMs < 0.5) return Math.min(max, limit * 2);
  if (sleptMs > 2) return Math.max(MIN_SPIN, limit >> 1);
  return limit;
}

/** The export attention jobs run: over an f16 KV cache, or (ATTENTION_F32_KERNEL) its f32 form. */
export const ATTENTION_KERNEL = "attentionF16";
export const ATTENTION_F32_KERNEL = "attentionF32";

/** Runs one job: the kernel's arguments are read from the job table at offset o. */
export type JobRunner = (ctl: Int32Array, o: number) => void;

type Kernel = (...args: number[]) => void;

const bitsI = new Int32Array(1);
const bitsF = new Float32Array(bitsI.buffer);
/** The int carrying an f32 argument (its bit pattern). */
export function f32ToBitsInt(x: number): number {
  bitsF[0] = x;
  return bitsI[0]!;
}
function bitsIntToF32(b: number): number {
  bitsI[0] = b;
  return bitsF[0]!;
}

/** A runner per kernel name, on a kernels instance's exports (used by workers and by the coordinator). */
export function jobRunners(exports: object, functions: readonly string[]): JobRunner[] {
  const ex = exports as Record<string, Kernel | undefined>;
  return functions.map((name) => {
    const f = ex[name];
    if (typeof f !== "function") throw new Error(`kernels have no export "${name}"`);
    if (name === ATTENTION_KERNEL || name === ATTENTION_F32_KERNEL) {
      return (c, o) => f(c[o + 1]!, c[o + 2]!, c[o + 3]!, c[o + 4]!, c[o + 5]!, c[o + 6]!, c[o + 7]!, c[o + 8]!, c[o + 9]!, c[o + 10]!, c[o + 11]!, bitsIntToF32(c[o + 12]!), c[o + 13]!, c[o + 14]!, c[o + 15]!);
    }
    return (c, o) => f(c[o + 1]!, c[o + 2]!, c[o + 3]!, c[o + 4]!, c[o + 5]!, c[o + 6]!, c[o + 7]!, c[o + 8]!);
  });
}

/** Runs this thread's jobs of the current command (used by workers and by the coordinator). */
export function runJobs(ctl: Int32Array, thread: number, runners: readonly JobRunner[]): void {
  const n = ctl[CTL_NJOBS]!;
  for (let j = 0; j < n; j++) {
    const o = jobOffset(thread, j);
    const fn = ctl[o]!;
    if (fn < 0) continue; // nothing for this thread
    runners[fn]!(ctl, o);
  }
}
