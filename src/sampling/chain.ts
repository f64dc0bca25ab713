import { Candidates, type FastArgmax, type FastBlockMax } from "./candidates.ts";
import { resolveSamplingOptions, type SamplingOptions } from "./options.ts";
import {
  DistStage,
  GreedyStage,
  LogitMaskStage,
  MinPStage,
  PenaltiesStage,
  TemperatureStage,
  TopKStage,
  TopPStage,
  type SamplerStage,
  type TokenMaskFn,
  type TokenMaskProvider,
} from "./stages.ts";

export { Candidates, argmax, type FastArgmax, type FastBlockMax } from "./candidates.ts";
export { defaultSampling, resolveSamplingOptions, type ResolvedSamplingOptions, type SamplingOptions } from "./options.ts";
export * from "./stages.ts";

/**
 * Turns logits into tokens by running stages in order over one reused Candidates list, like
 * llama.cpp's sampler chain. The chain keeps state between tokens (the penalty window, the
 * random generator), so the caller tells it every token of the sequence:
 *
 * ```ts
 * const s = createSampler(options);
 * for (const t of promptTokens) s.accept(t);
 * for (;;) { const tok = s.sample(logits); s.accept(tok); ... }
 * ```
 */
export class SamplerChain {
  readonly stages: readonly SamplerStage[];
  private readonly current: Candidates;
  private readonly fastArgmax: FastArgmax | undefined;
  private readonly blockMax: FastBlockMax | undefined;

  /** `fastArgmax`, `blockMax`: faster scans over the caller's logits, where it has them (see CreateSamplerExtras). */
  constructor(stages: readonly SamplerStage[], fastArgmax?: FastArgmax, blockMax?: FastBlockMax) {
    this.stages = [...stages];
    this.fastArgmax = fastArgmax;
    this.blockMax = blockMax;
    this.current = new Candidates(0, fastArgmax, blockMax);
  }

  /**
   * Runs every stage over a copy of `logits` (never written) and returns the selected token. The
   * token is not accepted: call accept() with the token the sequence actually continues with.
   */
  sample(logits: Float32Array): number {
    if (logits.length === 0) throw new RangeError("cannot sample from an empty vocabulary (no logits)");
    const c = this.current.reset(logits);
    const stages = this.stages;
    for (let i = 0; i < stages.length; i++) stages[i]!.apply(c);
    const token = c.selectedToken;
    if (token < 0) {
      throw new Error(`the sampler chain [${this.stages.map((s) => s.name).join(", ")}] selected no token: end it with a greedy or dist stage`);
    }
    return token;
  }

  /**
   * The candidates as the last sample() left them (a buffer reused by the next call). If no stage
   * needed a copy of the logits (greedy without penalties), reading `ids` / `logits` copies the
   * array passed to that sample() as it is now.
   */
  get candidates(): Candidates {
    return this.current;
  }

  /** How the last stage selects: "greedy", "dist" (a seeded draw), or undefined (a custom selector). */
  get selection(): "greedy" | "dist" | undefined {
    return this.stages[this.stages.length - 1]?.selects;
  }

  /**
   * The distribution a "dist" chain draws from: every stage but the last run over `logits`, then
   * softmax over the candidates left (at the chain's temperature). The candidates' ids and probs
   * are valid until the next call. Used by speculative rejection sampling.
   */
  distribution(logits: Float32Array): Candidates {
    const last = this.stages[this.stages.length - 1];
    if (!(last instanceof DistStage)) throw new Error("distribution() needs a chain that ends with a dist stage");
    const c = this.current.reset(logits);
    for (let i = 0; i < this.stages.length - 1; i++) this.stages[i]!.apply(c);
    c.softmax();
    return c;
  }

  /** A uniform number in [0, 1) from the chain's dist stage (the same generator sample() draws with). */
  uniform(): number {
    const last = this.stages[this.stages.length - 1];
    if (!(last instanceof DistStage)) throw new Error("uniform() needs a chain that ends with a dist stage");
    return last.uniform();
  }

  /** Tells every stage that `token` is now part of the sequence. */
  accept(token: number): void {
    const stages = this.stages;
    for (let i = 0; i < stages.length; i++) stages[i]!.accept?.(token);
  }

  /** Every stage back to its initial state: empty penalty window, random generator at its seed. */
  reset(): void {
    for (const stage of this.stages) stage.reset?.();
  }

  /** An independent deep copy (penalty window, random generator state, mask provider if it clones). */
  clone(): SamplerChain {
    return new SamplerChain(this.stages.map((s) => s.clone()), this.fastArgmax, this.blockMax);
  }
}

export interface CreateSamplerExtras {
  /**
   * Allowed tokens (a future grammar): becomes a LogitMaskStage at the head of the chain, where
   * llama.cpp applies its grammar, before the penalties and truncation.
   */
  readonly mask?: TokenMaskFn | TokenMaskProvider;
  /**
   * The greedy choice over a logits array by a faster route than a JavaScript loop (a backend's
   * SIMD kernel for the logits in its memory); undefined for an array it cannot scan. It must
   * agree with `argmax` (first maximum, NaN never chosen).
   */
  readonly argmax?: FastArgmax;
  /**
   * The largest value of each block of 16 logits by a faster route (a backend's SIMD kernel), for
   * top-k over a large vocabulary: it then reads only the blocks that can still enter its list.
   * Must ignore NaN as FastBlockMax says.
   */
  readonly blockMax?: FastBlockMax;
}

/**
 * The default chain for `options` (defaults from `defaultSampling`, RangeError on an out-of-range
 * option), in llama.cpp's order: [mask], penalties, then either greedy (temperature <= 0) or
 * top-k, top-p, min-p, temperature and a seeded draw.
 */
export function createSampler(options: SamplingOptions = {}, extras: CreateSamplerExtras = {}): SamplerChain {
  const o = resolveSamplingOptions(options);
  const stages: SamplerStage[] = [];
  if (extras.mask) stages.push(new LogitMaskStage(extras.mask));
  stages.push(
    new PenaltiesStage({ lastN: o.penaltyLastN, repeat: o.repeatPenalty, frequency: o.frequencyPenalty, presence: o.presencePenalty }),
  );
  if (o.temperature <= 0) {
    stages.push(new GreedyStage());
  } else {
    stages.push(new TopKStage(o.topK), new TopPStage(o.topP), new MinPStage(o.minP), new TemperatureStage(o.temperature), new DistStage(o.seed));
  }
  return new SamplerChain(stages, extras.argmax, extras.blockMax);
}
