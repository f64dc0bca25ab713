// `mimo bench --spec ...`: speculative decoding against plain greedy decoding on the same model,
// prompt and thread count, repetitions interleaved (plain, then each mode, then plain again ...).
// Two modes, always labelled:
//   real: the proposer's own drafts; the acceptance is the proposer's real acceptance on this
//     model and prompt;
//   replay p: a simulation of acceptance. The repetition's plain run records the model's tokens;
//     the speculative run does all of the proposer's work (MTP layer and output head, draft model
//     passes, lookups), then each draft token is replaced by the recorded correct token with
//     probability p (seeded) and by a wrong one otherwise. It measures the engine's cost at a
//     stated acceptance; it says nothing about any model's real acceptance.
// Every speculative run's tokens are compared with the plain run's (greedy: they must be equal).
import type { Model, SpeculationStats, SpeculativeOptions } from "../index.ts";

export interface SpecMode {
  /** "real" or "replay 0.9". */
  readonly name: string;
  /** undefined: real. */
  readonly acceptance?: number;
}

export function specModes(real: boolean, replay: readonly number[]): SpecMode[] {
  const modes: SpecMode[] = real ? [{ name: "real" }] : [];
  for (const p of replay) {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`--replay takes acceptance rates between 0 and 1, got ${p}`);
    modes.push({ name: `replay ${p}`, acceptance: p });
  }
  return modes;
}

export interface SpecRun {
  readonly tokens: number[];
  /** Tokens per second after the first: (n - 1) / (time of the n-th token - time of the first). */
  readonly tokPerS: number;
  readonly stats?: SpeculationStats;
}

/**
 * One greedy generation of n tokens after `prompt` (the cached prompt reused), with or without
 * speculation, timed from the first streamed token to the last (the peer is timed the same way).
 */
export async function greedyRun(model: Model, prompt: readonly number[], n: number, speculative?: SpeculativeOptions): Promise<SpecRun> {
  const it = model.generate(prompt, { temperature: 0, maxTokens: n, ignoreEos: true, speculative });
  let tFirst = 0;
  let tLast = 0;
  let count = 0;
  for (;;) {
    const step = await it.next();
    if (step.done) {
      return { tokens: step.value.tokens, tokPerS: (count - 1) / ((tLast - tFirst) / 1000), stats: step.value.stats.speculative };
    }
    if (step.value.token < 0) continue;
    tLast = performance.now();
    if (count++ === 0) tFirst = tLast;
  }
}

export interface SpecModeResult {
  readonly mode: string;
  readonly plainTokPerS: number[];
  readonly specTokPerS: number[];
  /** Per repetition: speculative / plain of the same repetition. */
  readonly speedups: number[];
  readonly stats: SpeculationStats[];
  /** Every speculative run gave the plain run's tokens. */
  readonly identical: boolean;
}

/**
 * `reps` rounds of: a plain run, then each mode's speculative run (replay modes replay that
 * round's plain tokens). Returns per-mode figures.
 */
export async function benchSpeculative(
  model: Model,
  prompt: readonly number[],
  n: number,
  spec: SpeculativeOptions,
  modes: readonly SpecMode[],
  reps: number,
  log: (s: string) => void = () => {},
  seed = 1,
): Promise<SpecModeResult[]> {
  const out = modes.map((m) => ({ mode: m.name, plainTokPerS: [] as number[], specTokPerS: [] as number[], speedups: [] as number[], stats: [] as SpeculationStats[], identical: true }));
  // Warm-up: JIT, first-touch and the cost curve's first measurements stay out of the figures.
  await greedyRun(model, prompt, Math.min(n, 8));
  for (const m of modes) await greedyRun(model, prompt, Math.min(n, 8), m.acceptance === undefined ? spec : { ...spec, replay: { tokens: [], acceptance: m.acceptance, seed } });
  for (let r = 0; r < reps; r++) {
    const plain = await greedyRun(model, prompt, n);
    log(`mimo bench --spec: rep ${r + 1}/${reps} plain: ${plain.tokPerS.toFixed(2)} tok/s`);
    for (let i = 0; i < modes.length; i++) {
      const m = modes[i]!;
      const opts: SpeculativeOptions = m.acceptance === undefined ? spec : { ...spec, replay: { tokens: plain.tokens, acceptance: m.acceptance, seed: seed + r } };
      const s = await greedyRun(model, prompt, n, opts);
      const o = out[i]!;
      o.plainTokPerS.push(plain.tokPerS);
      o.specTokPerS.push(s.tokPerS);
      o.speedups.push(s.tokPerS / plain.tokPerS);
      o.stats.push(s.stats!);
      if (s.tokens.length !== plain.tokens.length || s.tokens.some((t, j) => t !== plain.tokens[j])) o.identical = false;
      log(
        `mimo bench --spec: rep ${r + 1}/${reps} ${m.name}: ${s.tokPerS.toFixed(2)} tok/s (${(s.tokPerS / plain.tokPerS).toFixed(2)}x), ` +
          `token acceptance ${(100 * s.stats!.tokenAcceptance).toFixed(1)}%, ${s.stats!.tokensPerForward.toFixed(2)} tokens per forward`,
      );
    }
  }
  return out;
}

export function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

const sum = (v: readonly number[]) => v.reduce((a, b) => a + b, 0);

/** Acceptance, mean accepted length and tokens per forward over all repetitions of a mode. */
export function pooledStats(stats: readonly SpeculationStats[]): { acceptance: number; tokenAcceptance: number; meanAccepted: number; tokensPerForward: number; proposed: number; draftSteps: number } {
  const proposed = sum(stats.map((s) => s.proposed));
  const accepted = sum(stats.map((s) => s.accepted));
  const rejections = sum(stats.map((s) => s.rejected));
  const steps = sum(stats.map((s) => s.draftSteps));
  const forwards = sum(stats.map((s) => s.forwards));
  const emitted = sum(stats.map((s) => s.tokensPerForward * s.forwards));
  return { acceptance: proposed > 0 ? accepted / proposed : 0, tokenAcceptance: accepted + rejections > 0 ? accepted / (accepted + rejections) : 0, meanAccepted: steps > 0 ? accepted / steps : 0, tokensPerForward: forwards > 0 ? emitted / forwards : 0, proposed, draftSteps: steps };
}

/** Markdown rows: one per mode. */
export function specTable(rows: readonly { engine: string; threads: number; method: string; result: SpecModeResult }[]): string {
  const lines = [
    "| engine | threads | method | mode | plain tok/s | speculative tok/s | speedup (median, min-max) | token acceptance | accepted / proposed | mean accepted / draft | tokens / forward | output = plain |",
    "|---|---:|---|---|---:|---:|---|---:|---:|---:|---:|---|",
  ];
  for (const { engine, threads, method, result: r } of rows) {
    const p = pooledStats(r.stats);
    const sp = [...r.speedups].sort((a, b) => a - b);
    lines.push(
      `| ${engine} | ${threads} | ${method} | ${r.mode} | ${median(r.plainTokPerS).toFixed(2)} | ${median(r.specTokPerS).toFixed(2)} | **${median(r.speedups).toFixed(2)}x** (${sp[0]!.toFixed(2)}-${sp[sp.length - 1]!.toFixed(2)}) | ` +
        `${(100 * p.tokenAcceptance).toFixed(1)}% | ${(100 * p.acceptance).toFixed(1)}% | ${p.meanAccepted.toFixed(2)} | ${p.tokensPerForward.toFixed(2)} | ${r.identical ? "yes" : "**NO**"} |`,
    );
  }
  return lines.join("\n");
}

export const SPEC_MODE_NOTE =
  "Token acceptance: the probability that a draft token is accepted given that the ones before it were (the p of replay); " +
  "accepted / proposed is lower for long drafts, whose tail goes unverified after a rejection. " +
  "real: the proposer's own drafts (real acceptance on this model and prompt). replay p: a simulation of acceptance: " +
  "the repetition's plain greedy run records the tokens; the speculative run does all of the proposer's work, then each draft token " +
  "is replaced by the recorded correct one with probability p (seeded) and by a wrong one otherwise. It measures the engine's cost at a " +
  "stated acceptance, not any model's acceptance.";

/**
 * An input-grounded prompt: a story, then its beginning again, so that continuing it means
 * repeating it (prompt lookup finds the continuation in the prompt). The story is the first lines
 * stories260K tells on its own (its greedy output from BOS), so that the bundled model continues it.
 */
export const GROUNDED_PROMPT =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. " +
  "She wanted to play with it, but it was too high.\n" +
  "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but I can't find it.\"\n" +
  "Once upon a time, there was a little girl named Lily.";
