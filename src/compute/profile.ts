// Where the time of a decode step goes: wall-clock milliseconds accumulated per label (an op kind,
// a matrix, a phase of a dispatch). The backend, the driver and the sampler add to one OpProfile
// when a caller attached it (`mimo bench --profile`); unattached, the hot paths test one field.
// Imports nothing, like backend.ts: the layers above all may record into it.

export interface OpTotal {
  /** Sum of the wall-clock milliseconds recorded under this label. */
  ms: number;
  /** How many times it was recorded. */
  calls: number;
}

export class OpProfile {
  readonly totals = new Map<string, OpTotal>();
  /** Per worker thread (index 1..): milliseconds it spent running its jobs (kept by the wasm backend). */
  workerBusyMs: number[] = [];
  /** Per worker thread (index 1..): how often it slept in Atomics.wait (each sleep costs a wake-up later). */
  workerSleeps: number[] = [];

  /** Adds `ms` under `label`. */
  add(label: string, ms: number): void {
    const t = this.totals.get(label);
    if (t) {
      t.ms += ms;
      t.calls++;
    } else {
      this.totals.set(label, { ms, calls: 1 });
    }
  }

  /** Adds the time since `since` (a performance.now() reading) under `label` and returns now. */
  lap(label: string, since: number): number {
    const t = performance.now();
    this.add(label, t - since);
    return t;
  }

  reset(): void {
    this.totals.clear();
    this.workerBusyMs = [];
    this.workerSleeps = [];
  }
}

/** The op kind of a tensor name: "blk.3.attn_q.weight" -> "attn_q", "output.weight" -> "output". */
export function opLabelOfTensor(name: string): string {
  return name.replace(/^blk\.\d+\./, "").replace(/\.weight$/, "");
}
