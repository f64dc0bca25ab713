// The sampler chain lives in chain.ts (createSampler, SamplerChain, the stages). This module keeps
// the option types' old import path and a thin `Sampler` shim for src/runtime/model.ts.
import { createSampler, SamplerChain } from "./chain.ts";
import { resolveSamplingOptions, type ResolvedSamplingOptions, type SamplingOptions } from "./options.ts";
import { PenaltiesStage } from "./stages.ts";

export { defaultSampling, type SamplingOptions } from "./options.ts";
export { argmax } from "./candidates.ts";
export { createSampler, SamplerChain } from "./chain.ts";

/**
 * @deprecated Use `createSampler(options)` and `accept()` each prompt and generated token. This
 * shim keeps the pre-chain call `sample(logits, history)` working (same tokens) until
 * src/runtime/model.ts switches; it refills the penalty window from `history` on every call.
 */
export class Sampler {
  readonly options: ResolvedSamplingOptions;
  readonly chain: SamplerChain;
  private readonly penalties: PenaltiesStage;

  constructor(opts: SamplingOptions = {}) {
    this.options = resolveSamplingOptions(opts);
    this.chain = createSampler(this.options);
    this.penalties = this.chain.stages.find((s): s is PenaltiesStage => s instanceof PenaltiesStage)!;
  }

  get greedy(): boolean {
    return this.options.temperature <= 0;
  }

  /** Picks the next token from `logits` (left untouched) given the tokens seen so far. */
  sample(logits: Float32Array, history: readonly number[] = []): number {
    const lastN = this.options.penaltyLastN;
    this.penalties.reset();
    if (!this.penalties.neutral && lastN !== 0) {
      const start = lastN < 0 ? 0 : Math.max(0, history.length - Math.trunc(lastN));
      for (let i = start; i < history.length; i++) this.penalties.accept(history[i]!);
    }
    return this.chain.sample(logits);
  }
}
