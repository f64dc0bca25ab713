// How many threads the wasm backend runs when the caller does not say: as many as pay for
// themselves. Every dispatch (a fused matmul, a layer's attention) synchronises the threads, and
// that costs about the same whatever the model; the work a thread takes off the others grows with
// the model. A tiny model (stories260K, 1 MB) decodes about 3x faster on 1 thread than on 2; a
// 0.5B model about 1.7x faster on 2 than on 1.
//
// The rule estimates one dispatch's time on t threads as work / t + sync(t), where work is the
// weight bytes one decode step reads per dispatch (scaled up for several tokens in a step) at
// the kernels' speed on one thread, and sync(t) the cost of synchronising t threads; it takes the
// fastest t up to the cores, and more threads only for a clear (3%) gain. The constants come from
// quiet runs on 2-core AMD EPYC (AVX-512 VNNI) machines, Node 24, against node-llama-cpp in the
// same run (bench/results/2026-11-29-1818.md): stories42M-shaped Q4_0 (23 MB, 33 dispatches per
// step) 622 tok/s on 1 thread and 526 on 2, stories15M-shaped Q8_0 (16 MB, 25 dispatches) 1,147
// and 805, stories260K 6,056 and 1,431: each dispatch costs about 33 µs more on 2 threads than
// its work saves at these sizes (an earlier machine of the same class measured ~18 µs, where the
// 15M/42M shapes ran 1.3-1.4x faster on 2 threads: the larger figure keeps "never slower than 1
// thread" on both), while qwen2-0.5b Q4_0 (278 MB) runs about 1.2-1.7x faster on 2. So on 2
// cores: 1 thread below about 840 KB of weights per dispatch (stories260K, the stories15M and
// stories42M shapes), 2 above (stories110M, 0.5B and larger).

/** What a model asks of the threads per decode step. */
export interface ThreadWork {
  /** Weight bytes one decode step reads (model/weights.ts decodeWeightBytes). */
  readonly weightBytes: number;
  /** Decoder layers: each costs DISPATCHES_PER_LAYER synchronisations, the output matmul one more. */
  readonly layers: number;
  /** Tokens a decode step carries (sequences decoding together). Default 1. */
  readonly batch?: number;
}

/**
 * Synchronisations of the threads per decoder layer in a decode step: q/k/v projections, RoPE and
 * attention (one, fused, when each thread's rows are its KV heads; else two), the output
 * projection, gate/up, down.
 */
export const DISPATCHES_PER_LAYER = 4;
/**
 * Weight bytes per second of a whole decode step on one thread (kernels plus the rest of the
 * step): measured 11.5 GB/s (stories42M shape, 34 MB, 338 tok/s) to 21 GB/s (stories15M shape,
 * 27 MB, 770 tok/s); the lower figure keeps the rule from underrating a second thread.
 */
export const THREAD_BYTES_PER_S = 12e9;
/** Seconds one synchronisation of 2 threads costs (measured, see above). */
export const SYNC_S = 33e-6;
/**
 * Seconds each further thread adds to a synchronisation: not measured here (2 cores), kept at
 * half of the first machine's 2-thread figure, so that a 0.5B model takes 4 threads of 8 cores.
 */
export const SYNC_EXTRA_S = 9e-6;
/** More threads only when the estimate drops by at least this fraction. */
const MIN_GAIN = 0.03;

/** Estimated seconds of one dispatch's matmul work and synchronisation on t threads. */
export function dispatchSeconds(w: ThreadWork, t: number): number {
  const dispatches = DISPATCHES_PER_LAYER * Math.max(1, w.layers) + 1;
  // Each further token in a step adds compute on weights already in cache: about half a pass.
  const batch = Math.max(1, w.batch ?? 1);
  const work = (w.weightBytes * (1 + (batch - 1) / 2)) / dispatches / THREAD_BYTES_PER_S;
  return work / t + (t > 1 ? SYNC_S + SYNC_EXTRA_S * (t - 2) : 0);
}

/** The default thread count for this work on `cores` cores (at least 1). */
export function threadsForWork(w: ThreadWork, cores: number): number {
  let best = 1;
  let bestS = dispatchSeconds(w, 1);
  for (let t = 2; t <= Math.max(1, Math.floor(cores)); t++) {
    const s = dispatchSeconds(w, t);
    if (s < bestS * (1 - MIN_GAIN)) {
      best = t;
      bestS = s;
    }
  }
  return best;
}

// ---- Calibration at load ----
// The rule above is a model of two machines; the crossover for 15-50M-parameter models moved
// between quiet runs of the same machine class (stories42M: 15% slower on 2 threads in one run,
// 19% faster in another). Where the rule's estimate for fewer threads is within CALIBRATE_WITHIN
// of its choice's, loadModel times real decode steps on both counts instead (runtime/
// thread-calibration.ts) and keeps what was measured faster.

/** A candidate thread count and the µs per decode step measured on it, one figure per round. */
export interface ThreadTiming {
  readonly threads: number;
  readonly stepUs: readonly number[];
}

/** What calibration chose, and the figures it chose on (median µs per decode step per candidate). */
export interface ThreadDecision {
  readonly threads: number;
  readonly usPerStep: readonly { readonly threads: number; readonly us: number }[];
}

function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The thread count to keep, from measured decode steps: the fewest threads unless more were
 * faster by at least MIN_GAIN (more threads cost the machine more, and a tie goes to fewer). So
 * the choice is never a count that a measured setting with fewer threads beat.
 */
export function chooseMeasured(timings: readonly ThreadTiming[]): ThreadDecision {
  if (timings.length === 0) throw new RangeError("chooseMeasured: no timings");
  const usPerStep = [...timings]
    .filter((t) => t.stepUs.length > 0)
    .sort((a, b) => a.threads - b.threads)
    .map((t) => ({ threads: t.threads, us: median(t.stepUs) }));
  if (usPerStep.length === 0) throw new RangeError("chooseMeasured: no timing has any step");
  let best = usPerStep[0]!;
  for (const c of usPerStep.slice(1)) if (c.us < best.us * (1 - MIN_GAIN)) best = c;
  return { threads: best.threads, usPerStep };
}

/** How a decision reads in backendName: "auto: x1 812 µs, x2 655 µs per token measured". */
export function describeDecision(d: ThreadDecision, cached = false): string {
  const figures = d.usPerStep.map((c) => `x${c.threads} ${c.us.toFixed(0)} µs`).join(", ");
  return `auto: ${figures} per token ${cached ? "measured earlier in this process" : "measured at load"}`;
}

/** Calibrate only models whose decode step reads at most this many weight bytes (above, the rule's choice is clear and loading twice costs). */
export const CALIBRATE_MAX_BYTES = 128e6;

/**
 * The two thread counts worth timing for this work, or undefined where the rule's choice is not
 * in doubt (one core, or a large model): the rule's choice and the next count towards 1 thread's
 * side (1 when the rule chose more, else 2).
 */
export function calibrationCandidates(w: ThreadWork, cores: number): readonly number[] | undefined {
  if (cores < 2 || w.weightBytes > CALIBRATE_MAX_BYTES) return undefined;
  const rule = threadsForWork(w, cores);
  return rule === 1 ? [1, 2] : [1, rule];
}
