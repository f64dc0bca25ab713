// Random texts of a grammar's language, drawn byte by byte (tests and benchmarks): at each step a
// random byte the parser allows; past a soft length budget, the byte that brings the text closest
// to complete, so every draw ends.

import { DEAD, type GrammarEngine } from "./matcher.ts";

export interface RandomTextOptions {
  /** Uniform [0, 1) numbers. */
  readonly random: () => number;
  /** After this many bytes, head for the shortest completion. Default 200. */
  readonly softLimit?: number;
  /** Chance of stopping at each complete point before the budget. Default 0.1. */
  readonly stopChance?: number;
  /** Chance of preferring printable ASCII when it is allowed (readable texts). Default 0.9. */
  readonly asciiBias?: number;
}

/** The bytes of one random text the grammar accepts (as a complete text). */
export function randomText(engine: GrammarEngine, opts: RandomTextOptions): Uint8Array {
  const { random } = opts;
  const soft = opts.softLimit ?? 200;
  const stop = opts.stopChance ?? 0.1;
  const ascii = opts.asciiBias ?? 0.9;
  const out: number[] = [];
  let s = engine.initial;
  const nb = new Uint32Array(8);
  for (let guard = 0; guard < soft * 20 + 10000; guard++) {
    if (engine.isComplete(s) && (engine.isFinished(s) || out.length >= soft || random() < stop)) return Uint8Array.from(out);
    engine.nextBytes(s, nb);
    const all: number[] = [];
    for (let b = 0; b < 256; b++) if ((nb[b >>> 5]! >>> (b & 31)) & 1) all.push(b);
    if (all.length === 0) throw new Error("randomText: a state with no next byte that is not complete (token items?)");
    let pick: number;
    if (out.length >= soft) {
      let best = Infinity;
      let bests: number[] = [];
      for (const b of all) {
        const d = engine.distance(engine.advance(s, b));
        if (d < best) {
          best = d;
          bests = [b];
        } else if (d === best) bests.push(b);
      }
      pick = bests[Math.floor(random() * bests.length)]!;
    } else {
      const printable = all.filter((b) => b >= 0x20 && b < 0x7f);
      const from = printable.length > 0 && random() < ascii ? printable : all;
      pick = from[Math.floor(random() * from.length)]!;
    }
    out.push(pick);
    s = engine.advance(s, pick);
    if (s === DEAD) throw new Error("randomText: walked into a dead state");
  }
  throw new Error("randomText: the text did not end");
}
