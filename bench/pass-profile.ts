// Where the time of one multi-token forward pass goes (a prompt's rest, jump-forward tokens, a
// verification pass): n tokens after P cached positions, per op of the OpProfile (`mimo bench
// --profile` does the same for 1-token decode steps). Wall-clock medians over R passes per n.
// With 2+ threads the profile's clock readings perturb the dispatch (the "sync:" rows then take
// far more than unprofiled passes lose to them): trust the 1-thread rows, and with --plain the
// passes' wall time without a profile attached.
// Run: node bench/pass-profile.ts -m FILE [-t 1] [--n 1,2,5,9,14] [-r 7] [--depth 300] [--logits last|all|none] [--plain]
import { loadModel } from "../src/index.ts";
import { OpProfile } from "../src/compute/profile.ts";
import { machineInfo } from "./machine.ts";

const arg = (name: string, alt?: string): string | undefined => {
  const i = process.argv.findIndex((a) => a === name || a === alt);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const file = arg("-m", "--model");
if (!file) throw new Error("usage: node bench/pass-profile.ts -m FILE [-t 1] [--n 1,2,5,9,14] [-r 7] [--depth 300] [--logits last|all|none] [--plain]");
const threads = Number(arg("-t", "--threads") ?? 1);
const ns = (arg("--n") ?? "1,2,5,9,14").split(",").map(Number);
const reps = Number(arg("-r") ?? 7);
const depth = Number(arg("--depth") ?? 300);
const logits = (arg("--logits") ?? "last") as "last" | "all" | "none";
const plain = process.argv.includes("--plain");
for (const n of ns) if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`--n: token counts must be whole numbers >= 1, got ${n}`);

const model = await loadModel(file, { threads, contextSize: Math.ceil((depth + Math.max(...ns) + 16) / 256) * 256 });
const m = machineInfo();
console.log(`${file}, ${model.backendName}, depth ${depth}, logits ${logits}; CPU ${m.cpu} x${m.cpus}; load ${m.loadAverageAtStart.toFixed(1)}`);
const seq = model.createSequence();
const vocab = model.config.vocabSize;
const prefix = Array.from({ length: depth }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
model.forward([{ sequence: seq, tokens: prefix, logits: "none" }]);
const tokens = (n: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 104729 + 17) % (vocab - 3)));
for (let w = 0; w < 3; w++) for (const n of ns) { model.forward([{ sequence: seq, tokens: tokens(n), logits }]); seq.truncate(depth); }
for (const n of ns) {
  const prof = new OpProfile();
  const wall: number[] = [];
  for (let r = 0; r < reps; r++) {
    if (!plain) model.setProfile(prof);
    const t0 = performance.now();
    try {
      model.forward([{ sequence: seq, tokens: tokens(n), logits }]);
    } finally {
      model.setProfile(undefined);
    }
    wall.push(performance.now() - t0);
    seq.truncate(depth);
  }
  wall.sort((a, b) => a - b);
  console.log(`n=${n}: ${wall[reps >> 1]!.toFixed(2)} ms median, ${wall[0]!.toFixed(2)} fastest`);
  if (plain) continue;
  for (const [label, t] of [...prof.totals].sort((a, b) => b[1].ms - a[1].ms)) {
    if (t.ms / reps >= 0.05) console.log(`  ${(t.ms / reps).toFixed(2).padStart(7)} ms  ${(t.calls / reps).toFixed(0).padStart(4)} calls  ${label}`);
  }
  prof.workerBusyMs.forEach((ms, t) => console.log(`  worker ${t}: busy ${(ms / reps).toFixed(2)} ms, went to sleep ${((prof.workerSleeps[t] ?? 0) / reps).toFixed(0)} times per pass`));
}
await model.dispose();
