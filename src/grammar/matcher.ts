// The byte-level parser: a pushdown recognizer over a CompiledGrammar, in the manner of
// llama.cpp's grammar stacks, with everything interned so that states are small integers:
//   - a stack node is (position, parent node): the position to match next in this rule frame and
//     the frame to return to; nodes are interned, so equal stacks are the same number;
//   - a state is the set of stacks the text so far can be in (top positions are always terminals),
//     plus two flags: ACCEPT (the root rule finished: the text is complete) and POPPED (a walk that
//     started from one frame left it; used by the token-mask cache);
//   - advance(state, byte) is memoized, so walking a vocabulary trie reuses every transition.
// A reference in tail position does not push a frame (the callee returns straight to the caller's
// parent), so `x*` expanded as `r ::= x r | ""` runs in constant stack depth.

import { BYTES, END, REF, TOKEN, type CompiledGrammar } from "./compile.ts";

/** Parent of a bottom frame: popping it completes the grammar. */
export const ROOT = -1;
/** Parent of a frame walked out of context (token-mask cache): popping it sets POPPED. */
export const SENTINEL = -2;

export const ACCEPT = 1;
export const POPPED = 2;

/** The state with no stacks and no flags: nothing can follow. */
export const DEAD = 0;

const POS_BITS = 2 ** 22;

export class GrammarEngine {
  readonly grammar: CompiledGrammar;
  // Stack nodes.
  readonly nodePos: number[] = [];
  readonly nodeParent: number[] = [];
  private readonly nodeIds = new Map<number, number>();
  // States.
  readonly stateNodes: Int32Array[] = [];
  readonly stateFlags: number[] = [];
  private readonly stateIds = new Map<string, number>();
  /** Per state, 256 next states (-1: not computed yet), allocated on first use. */
  private readonly transitions: (Int32Array | undefined)[] = [];
  private readonly tokenTransitions = new Map<number, number>();
  readonly initial: number;
  // Scratch for closure().
  private out: number[] = [];
  private flags = 0;
  private readonly visited = new Set<number>();

  constructor(grammar: CompiledGrammar) {
    if (grammar.kind.length >= POS_BITS) throw new RangeError(`the grammar has ${grammar.kind.length} positions; at most ${POS_BITS - 1} are supported`);
    this.grammar = grammar;
    this.internState([], 0); // DEAD = 0
    this.initial = this.start(this.grammar.alternatives[this.grammar.root]!, ROOT);
  }

  get nodeCount(): number {
    return this.nodePos.length;
  }

  get stateCount(): number {
    return this.stateNodes.length;
  }

  node(pos: number, parent: number): number {
    const key = (parent + 2) * POS_BITS + pos;
    let id = this.nodeIds.get(key);
    if (id === undefined) {
      id = this.nodePos.length;
      this.nodePos.push(pos);
      this.nodeParent.push(parent);
      this.nodeIds.set(key, id);
    }
    return id;
  }

  private internState(nodes: number[], flags: number): number {
    nodes.sort((a, b) => a - b);
    let w = 0;
    for (let i = 0; i < nodes.length; i++) if (i === 0 || nodes[i] !== nodes[i - 1]) nodes[w++] = nodes[i]!;
    nodes.length = w;
    const key = flags + ":" + nodes.join(",");
    let id = this.stateIds.get(key);
    if (id === undefined) {
      id = this.stateNodes.length;
      this.stateNodes.push(Int32Array.from(nodes));
      this.stateFlags.push(flags);
      this.stateIds.set(key, id);
    }
    return id;
  }

  /** The state of starting the given alternatives with `parent` below them. */
  private start(alts: Int32Array, parent: number): number {
    this.out = [];
    this.flags = 0;
    this.visited.clear();
    for (const a of alts) this.closure(a, parent);
    return this.internState(this.out, this.flags);
  }

  /** The state holding just one stack node (its top must be a terminal). */
  stateOfNode(node: number): number {
    return this.internState([node], 0);
  }

  /** The state for a frame at `pos` walked out of context (below it: SENTINEL). */
  sentinelState(pos: number): number {
    return this.stateOfNode(this.node(pos, SENTINEL));
  }

  /** Adds to `out` every terminal top reachable from (pos, parent) without consuming input. */
  private closure(pos: number, parent: number): void {
    const key = (parent + 2) * POS_BITS + pos;
    if (this.visited.has(key)) return;
    this.visited.add(key);
    const g = this.grammar;
    switch (g.kind[pos]) {
      case END:
        if (parent === ROOT) this.flags |= ACCEPT;
        else if (parent === SENTINEL) this.flags |= POPPED;
        else this.closure(this.nodePos[parent]!, this.nodeParent[parent]!);
        return;
      case REF: {
        const ret = g.kind[pos + 1] === END ? parent : this.node(pos + 1, parent);
        for (const a of g.alternatives[g.arg[pos]!]!) this.closure(a, ret);
        return;
      }
      default:
        this.out.push(this.node(pos, parent));
    }
  }

  /** The state after one more byte (DEAD when the byte cannot come next). */
  advance(state: number, byte: number): number {
    let row = this.transitions[state];
    if (row === undefined) row = this.transitions[state] = new Int32Array(256).fill(-1);
    const hit = row[byte]!;
    if (hit >= 0) return hit;
    const g = this.grammar;
    const sets = g.sets;
    this.out = [];
    this.flags = 0;
    this.visited.clear();
    for (const n of this.stateNodes[state]!) {
      const pos = this.nodePos[n]!;
      if (g.kind[pos] !== BYTES) continue;
      const set = g.arg[pos]! * 8;
      if ((sets[set + (byte >>> 5)]! >>> (byte & 31)) & 1) this.closure(pos + 1, this.nodeParent[n]!);
    }
    const next = this.out.length === 0 && this.flags === 0 ? DEAD : this.internState(this.out, this.flags);
    row[byte] = next;
    return next;
  }

  /** The state after a sequence of bytes. */
  advanceBytes(state: number, bytes: Uint8Array | readonly number[]): number {
    for (let i = 0; i < bytes.length && state !== DEAD; i++) state = this.advance(state, bytes[i]!);
    return state;
  }

  /** The state after a token matched as a whole by `<[id]>` items (DEAD when none matches). */
  advanceTokenItem(state: number, token: number): number {
    const g = this.grammar;
    if (!g.hasTokens) return DEAD;
    const key = state * 0x40000 + token;
    const hit = this.tokenTransitions.get(key);
    if (hit !== undefined) return hit;
    this.out = [];
    this.flags = 0;
    this.visited.clear();
    for (const n of this.stateNodes[state]!) {
      const pos = this.nodePos[n]!;
      if (g.kind[pos] !== TOKEN) continue;
      if ((g.arg[pos] === token) !== (g.negated[pos] === 1)) this.closure(pos + 1, this.nodeParent[n]!);
    }
    const next = this.out.length === 0 && this.flags === 0 ? DEAD : this.internState(this.out, this.flags);
    this.tokenTransitions.set(key, next);
    return next;
  }

  /** Union of two states (for a token that matches both as bytes and as a token item). */
  union(a: number, b: number): number {
    if (a === DEAD) return b;
    if (b === DEAD) return a;
    return this.internState([...this.stateNodes[a]!, ...this.stateNodes[b]!], this.stateFlags[a]! | this.stateFlags[b]!);
  }

  /** The state after the end-of-generation token: complete, nothing follows. */
  finishedState(): number {
    return this.internState([], ACCEPT);
  }

  isComplete(state: number): boolean {
    return (this.stateFlags[state]! & ACCEPT) !== 0;
  }

  /** Nothing but the end can follow. */
  isFinished(state: number): boolean {
    return this.stateNodes[state]!.length === 0;
  }

  /** The bytes any stack of `state` can take next (256-bit set as 8 words). */
  nextBytes(state: number, out = new Uint32Array(8)): Uint32Array {
    out.fill(0);
    const g = this.grammar;
    for (const n of this.stateNodes[state]!) {
      const pos = this.nodePos[n]!;
      if (g.kind[pos] !== BYTES) continue;
      const s = g.arg[pos]! * 8;
      for (let w = 0; w < 8; w++) out[w]! |= g.sets[s + w]!;
    }
    return out;
  }

  /** Fewest bytes from this stack node to the end of the grammar. */
  remaining(node: number): number {
    let total = 0;
    for (let n = node; n >= 0; n = this.nodeParent[n]!) total += this.grammar.minRest[this.nodePos[n]!]!;
    return total;
  }

  /** Fewest bytes from `state` to a complete text (0 when complete). */
  distance(state: number): number {
    if (this.isComplete(state)) return 0;
    let best = Infinity;
    for (const n of this.stateNodes[state]!) best = Math.min(best, this.remaining(n));
    return best;
  }

  /** The bytes of a shortest text that completes `state` (empty when it is complete). */
  shortestCompletion(state: number): number[] {
    const out: number[] = [];
    const nb = new Uint32Array(8);
    let s = state;
    let d = this.distance(s);
    while (d > 0 && d !== Infinity) {
      this.nextBytes(s, nb);
      let next = -1;
      for (let b = 0; b < 256 && next < 0; b++) {
        if (((nb[b >>> 5]! >>> (b & 31)) & 1) === 0) continue;
        const t = this.advance(s, b);
        if (this.distance(t) === d - 1) next = b;
      }
      if (next < 0) throw new Error("shortestCompletion: no byte brings the text closer to complete");
      out.push(next);
      s = this.advance(s, next);
      d--;
    }
    return out;
  }

  /** True when the whole text matches the grammar. */
  matches(text: string | Uint8Array): boolean {
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    return this.isComplete(this.advanceBytes(this.initial, bytes));
  }

  /** True when the text can be continued into a match. */
  matchesPrefix(text: string | Uint8Array): boolean {
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    return this.advanceBytes(this.initial, bytes) !== DEAD;
  }
}
