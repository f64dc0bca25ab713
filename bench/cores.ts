// How much two threads of this machine get in each other's way, recorded beside the bandwidth
// probe: 2-thread results depend on it more than on anything in mimo.
// - Sharing: an integer loop on one thread, alone and while a second thread runs a busy loop
//   (medians of interleaved runs). ~1.0 means separate cores; ~1.3-2 means the two threads share
//   a core's execution units (SMT siblings, or vCPUs the host runs on one core); more means the
//   host gives the two vCPUs less than a core each.
// - Round trips: one thread stores a number, the other (spinning) echoes it; 20,000 round trips
//   with 20 µs of work between them. p50 is the price of one synchronisation; p99 and the stalls
//   (round trips over 1 ms: a thread that was descheduled) are what a 2-thread decode step, with
//   ~25-100 synchronisations, pays on this host.
// - Idle burst: both threads asleep for 300 ms, then both busy for 120 ms. On some virtual
//   machines the host takes tens of milliseconds to give two vCPUs that wake together a core each
//   (measured here: chunks of work ran 4-20x slower for the first 20-40 ms). A 128-token decode
//   lasts 50-150 ms, so the benchmarks run an untimed burst of the same engine right before each
//   timed test (PREWARM_MS), and this probe records how large the effect was.
// Run alone: node bench/cores.ts
import { Worker } from "node:worker_threads";

export interface CoreProbe {
  /** Time of the integer loop with a busy second thread / alone (median of the runs). */
  readonly slowdownWithBusySibling: number;
  /** Round-trip µs between two spinning threads. */
  readonly roundTripUs: { p50: number; p99: number; max: number };
  /** Share of the round trips that took over 1 ms. */
  readonly stallShare: number;
  /** After 300 ms asleep, two threads busy at once: mean chunk time of the first 40 ms / steady (last 40 ms); median of the trials. */
  readonly burstSlowdown: number;
  /** ...and ms until the last chunk that took over twice the steady time ended (0: none did). */
  readonly burstSettleMs: number;
}

/** Untimed work of the same engine right before each timed test of bench:peers and bench:browser (see the idle burst above). */
export const PREWARM_MS = 100;

const BUSY = `
const { workerData } = require("node:worker_threads");
const flag = new Int32Array(workerData);
let x = 1;
while (Atomics.load(flag, 0) === 0) for (let i = 0; i < 100000; i++) x = (x * 1103515245 + 12345) | 0;
Atomics.store(flag, 1, x | 1);
`;

const ECHO = `
const { workerData } = require("node:worker_threads");
const a = new Int32Array(workerData);
let seen = 0;
for (;;) {
  let v;
  while ((v = Atomics.load(a, 0)) === seen);
  if (v < 0) break;
  seen = v;
  Atomics.store(a, 1, v);
}
`;

/** Where each loop's result goes, so that the loop cannot be dropped. */
let sink = 0;
function intLoop(n: number): number {
  let x = 1;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) x = (x * 1103515245 + 12345) | 0;
  const ms = performance.now() - t0;
  sink ^= x;
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function sharing(runs = 5): Promise<number> {
  const n = 20_000_000;
  intLoop(n); // compiled
  const alone: number[] = [], busy: number[] = [];
  for (let r = 0; r < runs; r++) {
    alone.push(intLoop(n));
    const sab = new SharedArrayBuffer(8);
    const flag = new Int32Array(sab);
    const w = new Worker(BUSY, { eval: true, workerData: sab });
    await new Promise((res) => setTimeout(res, 50)); // the busy loop is running
    busy.push(intLoop(n));
    Atomics.store(flag, 0, 1);
    await w.terminate();
  }
  return median(busy) / median(alone);
}

async function roundTrips(n = 20_000): Promise<{ lat: number[] }> {
  const sab = new SharedArrayBuffer(8);
  const a = new Int32Array(sab);
  const w = new Worker(ECHO, { eval: true, workerData: sab });
  await new Promise((res) => setTimeout(res, 100));
  const lat: number[] = [];
  for (let i = 1; i <= n; i++) {
    const t0 = performance.now();
    Atomics.store(a, 0, i);
    while (Atomics.load(a, 1) !== i);
    lat.push((performance.now() - t0) * 1000);
    const t = performance.now() + 0.02;
    while (performance.now() < t);
  }
  Atomics.store(a, 0, -1);
  await w.terminate();
  return { lat };
}

const BURST = `
const { workerData } = require("node:worker_threads");
const a = new Int32Array(workerData);
let x = 1;
for (;;) {
  Atomics.wait(a, 0, 0);
  if (Atomics.load(a, 0) < 0) break;
  while (Atomics.load(a, 0) === 1) for (let i = 0; i < 50000; i++) x = (x * 1103515245 + 12345) | 0;
  Atomics.store(a, 1, x | 1);
}
`;

async function idleBursts(trials = 3, idleMs = 300, busyMs = 120): Promise<{ slowdown: number; settleMs: number }> {
  const sab = new SharedArrayBuffer(8);
  const a = new Int32Array(sab);
  const w = new Worker(BURST, { eval: true, workerData: sab });
  const slowdowns: number[] = [], settles: number[] = [];
  for (let r = 0; r < trials; r++) {
    await new Promise((res) => setTimeout(res, idleMs));
    Atomics.store(a, 0, 1);
    Atomics.notify(a, 0);
    const chunks: { end: number; ms: number }[] = [];
    const t0 = performance.now();
    let x = 1;
    while (performance.now() - t0 < busyMs) {
      const s = performance.now();
      for (let i = 0; i < 50000; i++) x = (x * 1103515245 + 12345) | 0;
      const e = performance.now();
      chunks.push({ end: e - t0, ms: e - s });
    }
    sink ^= x;
    Atomics.store(a, 0, 0);
    const mean = (c: { ms: number }[]) => c.reduce((t, v) => t + v.ms, 0) / Math.max(1, c.length);
    const steady = median(chunks.filter((c) => c.end > busyMs - 40).map((c) => c.ms));
    slowdowns.push(mean(chunks.filter((c) => c.end <= 40)) / steady);
    settles.push(chunks.filter((c) => c.ms > 2 * steady).reduce((m, c) => Math.max(m, c.end), 0));
  }
  Atomics.store(a, 0, -1);
  Atomics.notify(a, 0);
  await w.terminate();
  return { slowdown: median(slowdowns), settleMs: median(settles) };
}

/** The three measurements (about 3 s). */
export async function probeCores(): Promise<CoreProbe> {
  const slowdownWithBusySibling = await sharing();
  if (sink === 0x7fffffff) process.stderr.write(""); // reads the sink once
  const { lat } = await roundTrips();
  const burst = await idleBursts();
  const s = [...lat].sort((x, y) => x - y);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
  return {
    slowdownWithBusySibling,
    roundTripUs: { p50: q(0.5), p99: q(0.99), max: s[s.length - 1]! },
    stallShare: lat.filter((x) => x > 1000).length / lat.length,
    burstSlowdown: burst.slowdown,
    burstSettleMs: burst.settleMs,
  };
}

/** One line for a results file. */
export function describeCores(c: CoreProbe): string {
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  return (
    `Core sharing (bench/cores.ts): an integer loop runs ${c.slowdownWithBusySibling.toFixed(2)}x slower while a second thread is busy ` +
    `(1.0: separate cores); thread round trip p50 ${f(c.roundTripUs.p50)} µs, p99 ${f(c.roundTripUs.p99)} µs, max ${f(c.roundTripUs.max)} µs, ` +
    `${(c.stallShare * 100).toFixed(2)}% over 1 ms (a descheduled thread); after 300 ms asleep, two busy threads ran ` +
    `${c.burstSlowdown.toFixed(1)}x slower in their first 40 ms and were steady after ${c.burstSettleMs.toFixed(0)} ms.`
  );
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(describeCores(await probeCores()));
