// `mimo bench --profile`: where the time of one decode step goes. Greedy generation through the
// public API (model.complete, the path every caller takes), N tokens per repetition, each
// repetition run twice: plain (the tok/s any user gets) and with an OpProfile attached (every op's
// wall-clock time on the calling thread, by kind: matmul kernels by matrix, input quantization and
// copies, attention, norms, RoPE, element-wise ops, waits for the worker threads, the forward
// pass's own JavaScript, sampling, token output, the driver, yields). Figures are per token,
// medians over the repetitions; what the clock cannot attribute to an op is shown as its own row,
// so the rows add up to the measured time per token.
import { loadModel, type Model } from "../index.ts";
import { OpProfile } from "../compute/profile.ts";
import { SeededRandom } from "../sampling/rng.ts";
import { stat } from "./bench.ts";

/** Labels the driver records (the rest are the backend's ops). */
const STEP = "step (driver total)";
const FORWARD = "forward (total)";
const SAMPLING = "sampling";
const OUTPUT = "token output (text, stop strings, stream)";
const YIELD = "yield to event loop";
const DRIVER_LABELS = new Set([STEP, FORWARD, SAMPLING, OUTPUT, YIELD]);

export interface ProfileRow {
  readonly label: string;
  /** Median microseconds per token. */
  readonly us: number;
  /** Median calls per token (undefined for derived rows). */
  readonly calls?: number;
  /** Derived (a difference), not a measured op. */
  readonly derived?: boolean;
}

export interface ProfileResult {
  readonly file: string;
  readonly threads: number;
  readonly backend: string;
  readonly tokens: number;
  readonly reps: number;
  /** Median tok/s without the profile attached, and with it. */
  readonly plainTokPerS: number;
  readonly profiledTokPerS: number;
  /** Median microseconds per token of the profiled runs. */
  readonly usPerToken: number;
  /** Median CPU time of the calling thread per token (µs), where the runtime reports it. */
  readonly cpuUsPerToken: number | undefined;
  /** Per worker thread (index 1..): median µs per token running its jobs. */
  readonly workerBusyUs: number[];
  /** Per worker thread (index 1..): median times per token it slept in Atomics.wait (each one a wake-up later). */
  readonly workerSleeps: number[];
  readonly rows: ProfileRow[];
}

function threadCpuUs(): number | undefined {
  const f = (process as { threadCpuUsage?: () => { user: number; system: number } }).threadCpuUsage;
  if (typeof f !== "function") return undefined;
  const u = f.call(process);
  return u.user + u.system;
}

async function decode(model: Model, first: number, n: number): Promise<number> {
  const t0 = performance.now();
  await model.complete([first], { temperature: 0, ignoreEos: true, maxTokens: n });
  return performance.now() - t0;
}

/** Orders rows: matmul kernels, matmul overheads, attention, the other ops, sync, then the JS rows. */
function rank(label: string): number {
  if (label.startsWith("matmul ")) return 0;
  if (label.startsWith("matmul:")) return 1;
  if (label.startsWith("attention")) return 2;
  if (label.startsWith("sync:")) return 4;
  return 3;
}

export async function runProfile(o: {
  model: string;
  threads: readonly (number | undefined)[];
  tokens: number;
  reps: number;
  seed: number;
  log?: (s: string) => void;
}): Promise<ProfileResult[]> {
  if (!(o.tokens >= 2)) throw new RangeError(`--profile needs -n of at least 2, got ${o.tokens}`);
  if (!(o.reps >= 1)) throw new RangeError(`-r must be at least 1, got ${o.reps}`);
  const log = o.log ?? (() => {});
  const out: ProfileResult[] = [];
  for (const threads of o.threads) {
    const contextSize = Math.ceil((o.tokens + 16) / 256) * 256;
    const model = await loadModel(o.model, { threads: threads || undefined, contextSize });
    try {
      const rng = new SeededRandom(o.seed);
      const first = () => 3 + (rng.nextU32() % (model.config.vocabSize - 3));
      await decode(model, first(), Math.min(16, o.tokens)); // warm-up: JIT, first touch
      const plain: number[] = [];
      const profiled: number[] = [];
      const cpu: number[] = [];
      const perLabel = new Map<string, { us: number[]; calls: number[] }>();
      const derived = new Map<string, number[]>();
      const workers: number[][] = [];
      const sleeps: number[][] = [];
      const n = o.tokens;
      for (let r = 0; r < o.reps; r++) {
        plain.push(n / ((await decode(model, first(), n)) / 1000));
        const p = new OpProfile();
        model.setProfile(p);
        const c0 = threadCpuUs();
        let ms: number;
        try {
          ms = await decode(model, first(), n);
        } finally {
          model.setProfile(undefined);
        }
        const c1 = threadCpuUs();
        if (c0 !== undefined && c1 !== undefined) cpu.push((c1 - c0) / n);
        profiled.push(n / (ms / 1000));
        let backendMs = 0;
        for (const [label, t] of p.totals) {
          if (!DRIVER_LABELS.has(label)) backendMs += t.ms;
          let e = perLabel.get(label);
          if (!e) perLabel.set(label, (e = { us: [], calls: [] }));
          e.us.push((t.ms * 1000) / n);
          e.calls.push(t.calls / n);
        }
        const get = (l: string) => p.totals.get(l)?.ms ?? 0;
        const add = (label: string, msTotal: number) => {
          let e = derived.get(label);
          if (!e) derived.set(label, (e = []));
          e.push((msTotal * 1000) / n);
        };
        add("forward: JavaScript between ops", get(FORWARD) - backendMs);
        add("driver: batch bookkeeping", get(STEP) - get(FORWARD) - get(SAMPLING) - get(OUTPUT));
        add("generate: async iteration, stats (rest)", ms - get(STEP) - get(YIELD));
        add("total per token", ms);
        p.workerBusyMs.forEach((w, t) => ((workers[t] ??= []).push((w * 1000) / n)));
        p.workerSleeps.forEach((s, t) => ((sleeps[t] ??= []).push(s / n)));
        log(`mimo bench --profile: t=${model.backendName} rep ${r + 1}/${o.reps}: ${plain[r]!.toFixed(0)} tok/s plain, ${profiled[r]!.toFixed(0)} tok/s profiled`);
      }
      const med = (v: readonly number[]) => stat(v).median;
      const rows: ProfileRow[] = [...perLabel]
        .filter(([label]) => label !== STEP && label !== FORWARD)
        .map(([label, e]) => ({ label, us: med(e.us), calls: med(e.calls) }));
      const ordered = [
        ...rows.filter((r) => !DRIVER_LABELS.has(r.label)).sort((a, b) => rank(a.label) - rank(b.label) || b.us - a.us),
        { label: "forward: JavaScript between ops", us: med(derived.get("forward: JavaScript between ops")!), derived: true },
        ...rows.filter((r) => r.label === SAMPLING || r.label === OUTPUT),
        { label: "driver: batch bookkeeping", us: med(derived.get("driver: batch bookkeeping")!), derived: true },
        ...rows.filter((r) => r.label === YIELD),
        { label: "generate: async iteration, stats (rest)", us: med(derived.get("generate: async iteration, stats (rest)")!), derived: true },
      ];
      out.push({
        file: o.model,
        threads: Number(/ x(\d+)/.exec(model.backendName)?.[1] ?? 1),
        backend: model.backendName,
        tokens: n,
        reps: o.reps,
        plainTokPerS: med(plain),
        profiledTokPerS: med(profiled),
        usPerToken: med(derived.get("total per token")!),
        cpuUsPerToken: cpu.length ? med(cpu) : undefined,
        workerBusyUs: workers.map((w) => (w ? med(w) : 0)),
        workerSleeps: sleeps.map((s) => (s ? med(s) : 0)),
        rows: ordered,
      });
    } finally {
      await model.dispose();
    }
  }
  return out;
}

const f1 = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));

/** One markdown table per result: µs per token, share of the total, calls per token. */
export function profileTable(results: readonly ProfileResult[]): string {
  const parts: string[] = [];
  for (const r of results) {
    const lines = [
      `${r.file}, ${r.backend}: ${f1(r.plainTokPerS)} tok/s plain, ${f1(r.profiledTokPerS)} tok/s profiled; ` +
        `${f1(r.usPerToken)} µs per token profiled (medians of ${r.reps} x ${r.tokens} greedy tokens)` +
        (r.cpuUsPerToken !== undefined ? `; calling thread's CPU time ${f1(r.cpuUsPerToken)} µs per token (${((100 * r.cpuUsPerToken) / r.usPerToken).toFixed(0)}% of wall)` : ""),
      "",
      "| op (calling thread, wall clock) | µs per token | share | calls per token |",
      "|---|---:|---:|---:|",
    ];
    for (const row of r.rows) {
      lines.push(`| ${row.derived ? `*${row.label}*` : row.label} | ${f1(row.us)} | ${((100 * row.us) / r.usPerToken).toFixed(1)}% | ${row.calls === undefined ? "" : f1(row.calls)} |`);
    }
    lines.push(`| **total** | **${f1(r.usPerToken)}** | 100% | |`);
    r.workerBusyUs.forEach((us, t) => {
      if (t > 0) lines.push(`| worker thread ${t}: running its jobs | ${f1(us)} | ${((100 * us) / r.usPerToken).toFixed(1)}% | |`);
    });
    r.workerSleeps.forEach((n, t) => {
      if (t > 0) lines.push(`| worker thread ${t}: went to sleep (a wake-up later) | | | ${f1(n)} |`);
    });
    parts.push(lines.join("\n"));
  }
  return parts.join("\n\n");
}
