export interface SamplingOptions {
  /** 0 (or less) means greedy: always the most likely token. Default 0.8. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens; 0 disables. Default 40. */
  readonly topK?: number;
  /** Keep the smallest set of tokens whose probability adds up to p; 1 disables. Default 0.95. */
  readonly topP?: number;
  /** Drop tokens less likely than minP times the most likely one; 0 disables. Default 0.05. */
  readonly minP?: number;
  /** Divide positive / multiply negative logits of recently seen tokens; 1 disables. Default 1. */
  readonly repeatPenalty?: number;
  /** Subtracted once from the logit of any recently seen token. Default 0. */
  readonly presencePenalty?: number;
  /** Subtracted per occurrence from the logit of recently seen tokens. Default 0. */
  readonly frequencyPenalty?: number;
  /** How many recent tokens the penalties look at; -1 means all. Default 64. */
  readonly penaltyLastN?: number;
  /** Seed of the random generator: the same seed gives the same output. Default: random. */
  readonly seed?: number;
}

export const defaultSampling = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  penaltyLastN: 64,
} as const;

/** Every option filled in: the defaults, and a random seed when none was given. */
export type ResolvedSamplingOptions = { -readonly [K in keyof Required<SamplingOptions>]: number };

function checkRange(name: string, v: number, lo: number, hi: number): void {
  if (!(v >= lo && v <= hi)) throw new RangeError(`${name} must be between ${lo} and ${hi}, got ${v}`);
}

/** Fills in the defaults and checks the ranges (RangeError naming the option and its value). */
export function resolveSamplingOptions(opts: SamplingOptions = {}): ResolvedSamplingOptions {
  const o = { ...defaultSampling, ...stripUndefined(opts) };
  checkRange("temperature", o.temperature, -Infinity, 100);
  checkRange("topK", o.topK, 0, Number.MAX_SAFE_INTEGER);
  checkRange("topP", o.topP, 0, 1);
  checkRange("minP", o.minP, 0, 1);
  checkRange("repeatPenalty", o.repeatPenalty, 0, 100);
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 32);
  return { ...o, seed };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
