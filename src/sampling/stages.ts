import { Candidates } from "./candidates.ts";
import { SeededRandom } from "./rng.ts";

/**
 * One step of a sampler chain, in the style of llama.cpp's `llama_sampler` ({ name, apply,
 * accept, reset, clone }) and transformers.js's logits processors.
 */
export interface SamplerStage {
  readonly name: string;
  /** Edits the candidates in place: changes logits, cuts the list, or selects a position. */
  apply(c: Candidates): void;
  /** Told every token that becomes part of the sequence (prompt tokens too), in order. */
  accept?(token: number): void;
  /** Back to the state just after construction (empty penalty window, RNG at its seed). */
  reset?(): void;
  /** An independent deep copy: advancing one never changes the other. */
  clone(): SamplerStage;
  /**
   * Set on a stage that selects the token (the chain's last): "greedy" takes the best candidate,
   * "dist" draws from softmax of what is left. Speculative verification reads it.
   */
  readonly selects?: "greedy" | "dist";
}

// ---------------------------------------------------------------------------------------------
// Logit mask (the grammar slot)

/**
 * Which tokens are allowed:
 * - a bitset `Uint32Array`: token t is allowed when bit (t & 31) of word (t >>> 5) is set; tokens
 *   past the end of the array are not allowed. The cheap form for a grammar: it can keep one
 *   buffer per state and hand it over without copying.
 * - a list or set of the allowed token ids.
 * `null` / `undefined` allows everything (the stage does nothing).
 */
export type TokenMask = Uint32Array | readonly number[] | ReadonlySet<number>;

/** Called once per sampled token with the candidates as they reach the mask stage. */
export type TokenMaskFn = (candidates: Candidates) => TokenMask | null | undefined;

/** A stateful mask source (a grammar): the stage forwards accept / reset / clone to it. */
export interface TokenMaskProvider {
  allowed(candidates: Candidates): TokenMask | null | undefined;
  accept?(token: number): void;
  reset?(): void;
  /** Without clone, a cloned stage shares this provider. */
  clone?(): TokenMaskProvider;
}

/** A bitset allowing exactly `ids` (ids outside [0, vocabSize) are ignored). */
export function tokenMaskOf(ids: Iterable<number>, vocabSize: number): Uint32Array {
  const mask = new Uint32Array((vocabSize + 31) >>> 5);
  for (const id of ids) if (id >= 0 && id < vocabSize) mask[id >>> 5]! |= 1 << (id & 31);
  return mask;
}

/**
 * Removes the candidates the mask does not allow (keeping the others' order, so a sorted prefix
 * stays sorted). Throws if none is left: a masked token must never be chosen.
 *
 * Place it first in the chain, where llama.cpp applies the grammar: in llama.cpp's common sampler
 * the grammar runs on the full candidate list before the chain (penalties, top-k, ...), so the
 * truncation stages and the final draw only ever see allowed tokens, top-k keeps the k best
 * *allowed* tokens, and probabilities are normalized over allowed tokens. `createSampler(o, {
 * mask })` puts it there.
 */
export class LogitMaskStage implements SamplerStage {
  readonly name = "logit-mask";
  private readonly provider: TokenMaskProvider;
  private scratch = new Uint32Array(0);

  constructor(source: TokenMaskFn | TokenMaskProvider) {
    this.provider = typeof source === "function" ? { allowed: source } : source;
  }

  apply(c: Candidates): void {
    const m = this.provider.allowed(c);
    if (m == null) return;
    const mask = m instanceof Uint32Array ? m : this.toBitset(m, c);
    // First in the chain: the allowed tokens are read straight from the logits (no copy of the vocabulary).
    const before = c.size;
    if (c.takeMasked(mask)) {
      if (c.size === 0) throw new Error(`the logit mask allows none of the ${before} candidate tokens`);
      return;
    }
    const ids = c.ids;
    const lg = c.logits;
    const p = c.probs;
    const withProbs = c.probsValid;
    const n = c.size;
    const identity = c.identity;
    const words = mask.length;
    let w = 0;
    let sortedKept = 0;
    for (let i = 0; i < n; i++) {
      const id = identity ? i : ids[i]!;
      const word = id >>> 5;
      if (word >= words || ((mask[word]! >>> (id & 31)) & 1) === 0) continue;
      if (w !== i) {
        ids[w] = id;
        lg[w] = lg[i]!;
        if (withProbs) p[w] = p[i]!;
      }
      if (i < c.sortedPrefix) sortedKept++;
      w++;
    }
    if (w === 0) throw new Error(`the logit mask allows none of the ${n} candidate tokens`);
    if (w !== n) c.identity = false;
    c.size = w;
    c.sortedPrefix = sortedKept;
  }

  private toBitset(allowed: readonly number[] | ReadonlySet<number>, c: Candidates): Uint32Array {
    let vocab = c.size;
    if (!c.identity) for (let i = 0; i < c.size; i++) vocab = Math.max(vocab, c.ids[i]! + 1);
    const words = (vocab + 31) >>> 5;
    if (this.scratch.length < words) this.scratch = new Uint32Array(words);
    const mask = this.scratch.subarray(0, words);
    mask.fill(0);
    for (const id of allowed) if (id >= 0 && id < vocab) mask[id >>> 5]! |= 1 << (id & 31);
    return mask;
  }

  accept(token: number): void {
    this.provider.accept?.(token);
  }

  reset(): void {
    this.provider.reset?.();
  }

  clone(): LogitMaskStage {
    return new LogitMaskStage(this.provider.clone ? this.provider.clone() : this.provider);
  }
}

// ---------------------------------------------------------------------------------------------
// Penalties

export interface PenaltyOptions {
  /** How many recent accepted tokens count; -1 (any negative) means all, 0 disables. */
  readonly lastN: number;
  /** Divide positive / multiply negative logits of seen tokens; 1 disables. */
  readonly repeat: number;
  /** Subtracted per occurrence. */
  readonly frequency: number;
  /** Subtracted once per seen token. */
  readonly presence: number;
}

/**
 * Repeat, frequency and presence penalties over a window of the last `lastN` accepted tokens
 * (llama.cpp's penalties sampler). `accept` pushes a token into the window; the counts are kept
 * up to date incrementally, so `apply` costs O(distinct tokens in the window).
 */
export class PenaltiesStage implements SamplerStage {
  readonly name = "penalties";
  readonly options: PenaltyOptions;
  /** Ring buffer of the window (grown up to lastN, then overwritten at `head`). */
  private window: number[] = [];
  private head = 0;
  private counts = new Map<number, number>();
  private readonly capacity: number;

  constructor(options: PenaltyOptions) {
    this.options = { ...options };
    this.capacity = options.lastN < 0 ? Infinity : Math.trunc(options.lastN) || 0;
  }

  get neutral(): boolean {
    const o = this.options;
    return o.repeat === 1 && o.frequency === 0 && o.presence === 0;
  }

  accept(token: number): void {
    if (this.capacity === 0) return;
    if (this.capacity !== Infinity) {
      if (this.window.length < this.capacity) this.window.push(token);
      else {
        const old = this.window[this.head]!;
        const n = this.counts.get(old)! - 1;
        if (n === 0) this.counts.delete(old);
        else this.counts.set(old, n);
        this.window[this.head] = token;
        this.head = (this.head + 1) % this.capacity;
      }
    }
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
  }

  apply(c: Candidates): void {
    if (this.counts.size === 0 || this.neutral) return;
    const { repeat, frequency, presence } = this.options;
    const lg = c.logits;
    const penalize = (i: number, n: number) => {
      let v = lg[i]!;
      v = v > 0 ? v / repeat : v * repeat;
      v -= n * frequency + presence;
      lg[i] = v;
    };
    if (c.identity) {
      for (const [t, n] of this.counts) if (t >= 0 && t < c.size) penalize(t, n);
    } else {
      for (let i = 0; i < c.size; i++) {
        const n = this.counts.get(c.ids[i]!);
        if (n !== undefined) penalize(i, n);
      }
    }
    // Logits changed: no order or probabilities survive.
    c.sortedPrefix = 0;
    c.probsValid = false;
  }

  reset(): void {
    this.window = [];
    this.head = 0;
    this.counts = new Map();
  }

  clone(): PenaltiesStage {
    const s = new PenaltiesStage(this.options);
    s.window = this.window.slice();
    s.head = this.head;
    s.counts = new Map(this.counts);
    return s;
  }
}

// ---------------------------------------------------------------------------------------------
// Truncation

/** Keeps the k best candidates (sorted); k <= 0 or k >= size does nothing. */
export class TopKStage implements SamplerStage {
  readonly name = "top-k";
  readonly k: number;

  constructor(k: number) {
    this.k = k;
  }

  apply(c: Candidates): void {
    if (this.k > 0) c.keepTop(this.k);
  }

  clone(): TopKStage {
    return new TopKStage(this.k);
  }
}

/**
 * Keeps the smallest sorted prefix whose probabilities add up to at least p (probabilities are
 * kept, not renormalized); p >= 1 does nothing. Sorts only as far as it walks.
 */
export class TopPStage implements SamplerStage {
  readonly name = "top-p";
  readonly p: number;

  constructor(p: number) {
    this.p = p;
  }

  apply(c: Candidates): void {
    if (this.p >= 1) return;
    if (!c.probsValid) c.softmax();
    const p = c.probs;
    let cum = 0;
    for (let i = 0; i < c.size; i++) {
      c.sortUpTo(i);
      cum += p[i]!;
      if (cum >= this.p) {
        c.size = i + 1;
        c.sortedPrefix = Math.min(c.sortedPrefix, c.size);
        return;
      }
    }
  }

  clone(): TopPStage {
    return new TopPStage(this.p);
  }
}

/**
 * Drops candidates whose probability is below minP times the best one's (probabilities are kept,
 * not renormalized); minP <= 0 does nothing. The kept set is a prefix of the sorted order, but it
 * is found without sorting: the unsorted tail is filtered in one pass.
 */
export class MinPStage implements SamplerStage {
  readonly name = "min-p";
  readonly minP: number;

  constructor(minP: number) {
    this.minP = minP;
  }

  apply(c: Candidates): void {
    if (this.minP <= 0 || c.size <= 1) return;
    if (!c.probsValid) c.softmax();
    c.sortUpTo(0);
    const p = c.probs;
    const threshold = p[0]! * this.minP;
    // Probabilities only fall along the sorted order: a failure in the sorted prefix ends the list.
    for (let i = 1; i < c.sortedPrefix; i++) {
      if (!(p[i]! >= threshold)) {
        c.size = i;
        c.sortedPrefix = i;
        return;
      }
    }
    const ids = c.ids;
    const lg = c.logits;
    let w = c.sortedPrefix;
    for (let i = w; i < c.size; i++) {
      if (!(p[i]! >= threshold)) continue;
      if (w !== i) {
        ids[w] = ids[i]!;
        lg[w] = lg[i]!;
        p[w] = p[i]!;
        c.identity = false;
      }
      w++;
    }
    c.size = w;
  }

  clone(): MinPStage {
    return new MinPStage(this.minP);
  }
}

/**
 * Temperature: later probabilities are softmax(logits / t). It scales `candidates.temperature`
 * rather than every logit (see Candidates.temperature). t <= 0 keeps only the best candidate,
 * as llama.cpp's temperature sampler does.
 */
export class TemperatureStage implements SamplerStage {
  readonly name = "temperature";
  readonly temperature: number;

  constructor(temperature: number) {
    this.temperature = temperature;
  }

  apply(c: Candidates): void {
    if (this.temperature <= 0) {
      c.keepOnly(c.best());
    } else {
      c.temperature *= this.temperature;
    }
    c.probsValid = false;
  }

  clone(): TemperatureStage {
    return new TemperatureStage(this.temperature);
  }
}

// ---------------------------------------------------------------------------------------------
// Selection

/** Selects the best candidate: one pass over the logits, the first maximum (lowest id) wins. */
export class GreedyStage implements SamplerStage {
  readonly name = "greedy";
  readonly selects = "greedy";

  apply(c: Candidates): void {
    c.selected = c.best();
  }

  clone(): GreedyStage {
    return new GreedyStage();
  }
}

/**
 * Draws from softmax(logits / temperature) over the remaining candidates (renormalized), walking
 * them in sorted order with one uniform number from a seeded generator, so the same seed gives
 * the same tokens. Sorts only as far as the walk goes. reset() goes back to the seed; clone()
 * copies the generator's current state.
 */
export class DistStage implements SamplerStage {
  readonly name = "dist";
  readonly selects = "dist";
  private rng: SeededRandom;

  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed;
    this.rng = new SeededRandom(seed);
  }

  apply(c: Candidates): void {
    c.softmax();
    const p = c.probs;
    let r = this.rng.next();
    let last = 0;
    for (let i = 0; i < c.size; i++) {
      c.sortUpTo(i);
      const q = p[i]!;
      r -= q;
      if (r < 0) {
        c.selected = i;
        return;
      }
      if (q > 0) last = i;
    }
    // Rounding left r just above the total: the last token that had any probability.
    c.selected = last;
  }

  reset(): void {
    this.rng = new SeededRandom(this.seed);
  }

  /** The next uniform number in [0, 1) of this stage's generator (speculative rejection sampling draws from it). */
  uniform(): number {
    return this.rng.next();
  }

  clone(): DistStage {
    const s = new DistStage(this.seed);
    s.rng = this.rng.clone();
    return s;
  }
}
