// The token mask: which vocabulary tokens may come next from a grammar state.
//
// Computing it by walking every token's bytes through the parser costs milliseconds on a 150k
// vocabulary. Three levels of reuse make it cost microseconds (XGrammar's adaptive token-mask
// cache, on top of a byte trie):
//   1. per grammar position (computed once per grammar): walk the vocabulary trie from that
//      position alone, with the enclosing rules unknown. Tokens that stay inside the frame are
//      accepted or rejected for good; tokens that leave it ("uncertain") are kept as trie ranges.
//      Inside a JSON string almost every token stays inside: only those with a closing quote are
//      uncertain.
//   2. per stack (a position with its enclosing frames): the position's accepted set plus the
//      uncertain ranges checked against the real stack; cached, so a stack seen before costs a lookup.
//   3. per state (a set of stacks): the union, cached.
// End-of-generation tokens are allowed exactly when the grammar is complete.

import type { Tokenizer } from "../tokenizer/index.ts";
import { BYTES, END, REF, TOKEN, compileGrammar, type CompiledGrammar, type CompileOptions } from "./compile.ts";
import { ACCEPT, DEAD, GrammarEngine, POPPED, ROOT, SENTINEL } from "./matcher.ts";
import { vocabTrieOf, vocabTrieOfAsync, type VocabTrie } from "./vocab-trie.ts";

interface PositionCache {
  /** Tokens accepted whatever encloses the frames: a bitset, or a short list of ids. */
  readonly accepted: Uint32Array | Int32Array;
  /** `accepted` as a bitset (made on first use when it is a list). */
  dense?: Uint32Array;
  /** (trie parent node or -1, first node, end node) triples of tokens that leave the frames. */
  readonly uncertain: Int32Array;
  /** Trie nodes in the uncertain ranges (the cost of checking them against a real stack). */
  readonly uncertainNodes: number;
}

/** One stack's allowed tokens: a shared bitset and/or a short list of ids (either may be absent). */
interface NodeMask {
  readonly dense: Uint32Array | undefined;
  readonly list: Int32Array | undefined;
}

/** A context whose uncertain tokens span more trie nodes than this gets one more enclosing frame. */
const UNCERTAIN_LIMIT = 300;
/** Most enclosing frames a context cache looks at. */
const MAX_FRAMES = 6;

export interface TokenGrammarStats {
  readonly positions: number;
  readonly cachedPositions: number;
  readonly stacks: number;
  readonly states: number;
  readonly compileMs: number;
}

/**
 * A compiled grammar bound to a vocabulary: masks, token acceptance and forced tokens, with the
 * caches shared by every sequence constrained by it. Per-sequence state is just a state number
 * (see GrammarConstraint).
 */
export class TokenGrammar {
  readonly engine: GrammarEngine;
  readonly trie: VocabTrie;
  readonly grammar: CompiledGrammar;
  private readonly tokenizer: Tokenizer | undefined;
  /** Level 1 caches, keyed by a stack truncated to its top frames (SENTINEL below them). */
  private readonly contexts = new Map<number, PositionCache>();
  private readonly ruleOfPos: Int32Array;
  /** Per rule: the positions its frame can return to (-1: the end of the grammar). */
  private readonly returns: number[][];
  private readonly nodeMasks = new Map<number, NodeMask>();
  private readonly stateMasks = new Map<number, Uint32Array>();
  private readonly forcedCache = new Map<number, readonly number[]>();
  private readonly closingCache = new Map<number, readonly number[]>();
  private readonly guessCache = new Map<number, number>();
  private readonly endMask: Uint32Array;
  private readonly stateAt: Int32Array;
  private readonly scratchBits: Uint32Array;
  private readonly popped: Uint8Array;
  /** Milliseconds of compilation (with compileAsync: of work, not counting the pauses). */
  compileMs: number;

  /** `precompute: "later"`: the caches are filled by precomputeAsync (compileAsync does it). */
  constructor(grammar: CompiledGrammar, trie: VocabTrie, tokenizer?: Tokenizer, opts: { precompute?: boolean | "later" } = {}) {
    const t0 = performance.now();
    this.grammar = grammar;
    this.engine = new GrammarEngine(grammar);
    this.trie = trie;
    this.tokenizer = tokenizer;
    [this.ruleOfPos, this.returns] = returnPositions(grammar);
    this.endMask = new Uint32Array(trie.words);
    for (const t of trie.endTokens) this.endMask[t >>> 5]! |= 1 << (t & 31);
    this.stateAt = new Int32Array(trie.maxDepth + 2);
    this.scratchBits = new Uint32Array(trie.words);
    this.popped = new Uint8Array(trie.maxDepth + 2);
    const pre = opts.precompute ?? true;
    if (pre === true) for (const p of this.reachablePositions()) this.precompute([p]);
    if (pre !== "later") this.work.precomputing = false;
    this.compileMs = performance.now() - t0;
  }

  /**
   * GBNF text compiled for a tokenizer's vocabulary like fromGbnf, in slices of about `sliceMs`
   * with `pause()` between them (the vocabulary trie's first build too), so a server's other
   * streams keep flowing while a new schema compiles on a 150k vocabulary. The longest slice is
   * one context's walk over the trie. `onProgress(done, total)` after each slice.
   */
  static async compileAsync(
    gbnf: string,
    tokenizer: Tokenizer,
    o: { pause: () => Promise<void>; sliceMs?: number; onProgress?: (done: number, total: number) => void },
  ): Promise<TokenGrammar> {
    const sliceMs = o.sliceMs ?? 8;
    const g = compileGrammar(gbnf, grammarCompileOptions(tokenizer));
    const trie = await vocabTrieOfAsync(tokenizer, o.pause, sliceMs);
    const tg = new TokenGrammar(g, trie, tokenizer, { precompute: "later" });
    const positions = tg.reachablePositions();
    let work = tg.compileMs;
    let t0 = performance.now();
    for (let i = 0; i < positions.length; i++) {
      for (const _ of tg.precomputeSteps([positions[i]!])) {
        if (performance.now() - t0 > sliceMs) {
          work += performance.now() - t0;
          o.onProgress?.(i, positions.length);
          await o.pause();
          t0 = performance.now();
        }
      }
    }
    work += performance.now() - t0;
    o.onProgress?.(positions.length, positions.length);
    tg.work.precomputing = false;
    tg.compileMs = work;
    return tg;
  }

  /** GBNF text compiled for a tokenizer's vocabulary (`<text>` token items resolved by it). */
  static fromGbnf(gbnf: string, tokenizer: Tokenizer, opts: { precompute?: boolean } = {}): TokenGrammar {
    const g = compileGrammar(gbnf, grammarCompileOptions(tokenizer));
    return new TokenGrammar(g, vocabTrieOf(tokenizer), tokenizer, opts);
  }

  get initial(): number {
    return this.engine.initial;
  }

  get stats(): TokenGrammarStats {
    return {
      positions: this.grammar.kind.length,
      cachedPositions: this.contexts.size,
      stacks: this.nodeMasks.size,
      states: this.stateMasks.size,
      compileMs: this.compileMs,
    };
  }

  /** Terminal positions in rules reachable from the root (inlining leaves some rules unused). */
  private reachablePositions(): number[] {
    const g = this.grammar;
    const seen = new Uint8Array(g.alternatives.length);
    const stack = [g.root];
    seen[g.root] = 1;
    const out: number[] = [];
    while (stack.length) {
      const r = stack.pop()!;
      for (const a of g.alternatives[r]!) {
        for (let p = a; g.kind[p] !== END; p++) {
          if (g.kind[p] === REF) {
            const callee = g.arg[p]!;
            if (!seen[callee]) {
              seen[callee] = 1;
              stack.push(callee);
            }
          } else out.push(p);
        }
      }
    }
    return out;
  }

  /**
   * Level 1 for a chain of frames (top position first): computes its cache and, while the uncertain
   * part is large, the caches of every way the bottom frame can be entered (one more frame).
   */
  private precompute(chain: number[]): void {
    for (const _ of this.precomputeSteps(chain));
  }

  /** precompute, pausable: it yields after each context's walk over the trie (compileAsync's slices). */
  private *precomputeSteps(chain: number[]): Generator<void> {
    const c = this.context(this.chainNode(chain, false));
    yield;
    if (c.uncertainNodes <= UNCERTAIN_LIMIT || chain.length >= MAX_FRAMES || this.contexts.size > 20000) return;
    const bottom = chain[chain.length - 1]!;
    for (const ret of this.returns[this.ruleOfPos[bottom]!]!) {
      if (ret < 0) {
        this.context(this.chainNode(chain, true));
        yield;
      } else yield* this.precomputeSteps([...chain, ret]);
    }
  }

  /** The stack node of a chain of frame positions (top first) over SENTINEL, or over ROOT. */
  private chainNode(chain: readonly number[], rooted: boolean): number {
    let n = rooted ? ROOT : SENTINEL;
    for (let i = chain.length - 1; i >= 0; i--) n = this.engine.node(chain[i]!, n);
    return n;
  }

  /** A stack cut to its top `frames` frames, over SENTINEL (the whole stack if it has no more frames). */
  private truncate(node: number, frames: number): number {
    const e = this.engine;
    const chain: number[] = [];
    for (let n = node; n >= 0 && chain.length < frames; n = e.nodeParent[n]!) chain.push(e.nodePos[n]!);
    return this.chainNode(chain, false);
  }

  private depthOf(node: number): number {
    let d = 0;
    for (let n = node; n >= 0; n = this.engine.nodeParent[n]!) d++;
    return d;
  }

  /** Work counters (benchmarks): contexts walked after compilation, uncertain trie ranges checked. */
  readonly work = { lateContexts: 0, lateContextNodes: 0, uncertainRanges: 0, uncertainNodes: 0, precomputing: true };

  /** Level 1: the part of the mask decided by the top frames of a stack alone. */
  private context(node: number): PositionCache {
    let c = this.contexts.get(node);
    if (c) return c;
    if (!this.work.precomputing) {
      this.work.lateContexts++;
      if (process.env.MASK_DEBUG2) {
        const chain: string[] = [];
        for (let n = node; n >= 0; n = this.engine.nodeParent[n]!) chain.push(`${this.engine.nodePos[n]}(${this.grammar.ruleNames[this.ruleOfPos[this.engine.nodePos[n]!]!]})`);
        console.error("late context", chain.join(" <- "), "bottom", this.engine.nodeParent[node]);
      }
    }
    const trie = this.trie;
    const g = this.grammar;
    const pos = this.engine.nodePos[node]!;
    const bits = new Uint32Array(trie.words);
    const uncertain: number[] = [];
    if (g.kind[pos] === TOKEN) {
      const id = g.arg[pos]!;
      if (g.negated[pos]) {
        for (let i = 0; i < trie.size; i++) if (i !== id) trie.markNode(i, bits);
        if (id >= 0) bits[id >>> 5]! &= ~(1 << (id & 31));
      } else bits[id >>> 5]! |= 1 << (id & 31);
    } else {
      this.walk(this.engine.stateOfNode(node), bits, uncertain, 0, trie.size, 0);
    }
    let count = 0;
    for (let w = 0; w < bits.length; w++) count += popcount(bits[w]!);
    let accepted: Uint32Array | Int32Array = bits;
    if (count <= 512) {
      const list = new Int32Array(count);
      let k = 0;
      for (let w = 0; w < bits.length; w++) {
        let x = bits[w]!;
        while (x) {
          const low = x & -x;
          list[k++] = w * 32 + (31 - Math.clz32(low));
          x ^= low;
        }
      }
      accepted = list;
    }
    let uncertainNodes = 0;
    for (let k = 0; k < uncertain.length; k += 3) uncertainNodes += uncertain[k + 2]! - uncertain[k + 1]!;
    c = { accepted, uncertain: Int32Array.from(uncertain), uncertainNodes };
    this.contexts.set(node, c);
    return c;
  }

  /**
   * Walks trie nodes [from, to) (whole subtrees whose parent is at depth `baseDepth`) from `start`,
   * setting the bits of tokens the parser accepts. With `uncertain`, a token whose walk left the
   * starting frame (POPPED) and then died is recorded there instead of being rejected.
   */
  private walk(start: number, bits: Uint32Array, uncertain: number[] | null, from: number, to: number, baseDepth: number, found?: number[]): void {
    const { byte, depth, end, parent } = this.trie;
    const e = this.engine;
    const flags = e.stateFlags;
    const nodes = e.stateNodes;
    const stateAt = this.stateAt;
    const popped = this.popped;
    stateAt[baseDepth] = start;
    popped[baseDepth] = flags[start]! & POPPED ? 1 : 0;
    let i = from;
    while (i < to) {
      const d = depth[i]!;
      const s = e.advance(stateAt[d - 1]!, byte[i]!);
      if (s === DEAD) {
        if (uncertain && popped[d - 1]) addRange(uncertain, parent[i]!, i, end[i]!);
        i = end[i]!;
        continue;
      }
      if (found) this.trie.collectNode(i, found);
      else this.trie.markNode(i, bits);
      const pp = popped[d - 1]! | (flags[s]! & POPPED ? 1 : 0);
      if (nodes[s]!.length === 0) {
        if (uncertain && pp && end[i]! > i + 1) addRange(uncertain, i, i + 1, end[i]!);
        i = end[i]!;
        continue;
      }
      stateAt[d] = s;
      popped[d] = pp;
      i++;
    }
  }

  /** A context's accepted tokens as a bitset (shared: do not modify). */
  private dense(c: PositionCache): Uint32Array {
    if (c.accepted instanceof Uint32Array) return c.accepted;
    if (!c.dense) {
      c.dense = new Uint32Array(this.trie.words);
      for (const t of c.accepted) c.dense[t >>> 5]! |= 1 << (t & 31);
    }
    return c.dense;
  }

  /**
   * Level 2: the exact mask of one stack (its top is a terminal): the context's accepted set
   * (shared, never copied) plus the uncertain tokens that the real stack accepts (a short list).
   */
  private nodeMask(node: number): NodeMask {
    let m = this.nodeMasks.get(node);
    if (m) return m;
    const e = this.engine;
    // The fewest top frames whose cache leaves little uncertain (the same walk precompute() did);
    // when every frame is in, the stack itself (exact, nothing uncertain).
    let c: PositionCache;
    const depth = this.depthOf(node);
    for (let frames = 1; ; frames++) {
      c = this.context(this.truncate(node, frames));
      if (c.uncertainNodes <= UNCERTAIN_LIMIT || frames >= MAX_FRAMES) break;
      if (frames >= depth) {
        c = this.context(node);
        break;
      }
    }
    const base = c.accepted instanceof Uint32Array ? { dense: c.accepted, list: undefined } : { dense: undefined, list: c.accepted };
    const u = c.uncertain;
    if (u.length === 0) m = base;
    else {
      this.work.uncertainRanges += u.length / 3;
      this.work.uncertainNodes += c.uncertainNodes;
      const extra = this.scratchBits;
      const found: number[] = [];
      const full = e.stateOfNode(node);
      const at = new Map<number, number>();
      for (let k = 0; k < u.length; k += 3) {
        const par = u[k]!;
        const s = par < 0 ? full : this.stateAtTrieNode(par, full, at);
        if (s === DEAD || e.stateNodes[s]!.length === 0) continue;
        this.walk(s, extra, null, u[k + 1]!, u[k + 2]!, par < 0 ? 0 : this.trie.depth[par]!, found);
      }
      const list = base.list ? Int32Array.from([...base.list, ...found]) : Int32Array.from(found);
      m = { dense: base.dense, list };
    }
    if (this.nodeMasks.size > 65536) this.nodeMasks.clear();
    this.nodeMasks.set(node, m);
    return m;
  }

  private stateAtTrieNode(node: number, start: number, memo: Map<number, number>): number {
    const hit = memo.get(node);
    if (hit !== undefined) return hit;
    const p = this.trie.parent[node]!;
    const before = p < 0 ? start : this.stateAtTrieNode(p, start, memo);
    const s = before === DEAD ? DEAD : this.engine.advance(before, this.trie.byte[node]!);
    memo.set(node, s);
    return s;
  }

  /** Level 3: the tokens allowed in `state` (a shared buffer: do not modify). */
  mask(state: number): Uint32Array {
    let m = this.stateMasks.get(state);
    if (m) return m;
    const e = this.engine;
    const nodes = e.stateNodes[state]!;
    const complete = (e.stateFlags[state]! & ACCEPT) !== 0;
    const parts = Array.from(nodes, (n) => this.nodeMask(n));
    let dense: Uint32Array | undefined;
    let lists = 0;
    let denseCount = 0;
    for (const p of parts) {
      if (p.dense && p.dense !== dense) {
        denseCount++;
        dense ??= p.dense;
      }
      if (p.list && p.list.length > 0) lists++;
    }
    if (denseCount === 1 && lists === 0 && !complete) m = dense!;
    else {
      // The union: a copy of one bitset, the other bitsets OR-ed in, lists set bit by bit.
      m = dense ? dense.slice() : new Uint32Array(this.trie.words);
      for (const p of parts) {
        const d = p.dense;
        if (d && d !== dense) for (let w = 0; w < m.length; w++) m[w]! |= d[w]!;
        if (p.list) for (const t of p.list) m[t >>> 5]! |= 1 << (t & 31);
      }
      if (complete) for (const t of this.trie.endTokens) m[t >>> 5]! |= 1 << (t & 31);
    }
    if (this.stateMasks.size > 16384) this.stateMasks.clear();
    this.stateMasks.set(state, m);
    return m;
  }

  /**
   * A likely next token in `state`, for drafting (it is sampled as usual, never forced): where the
   * grammar forces text whose tokenization is one token that could merge with what follows (after
   * `"action":` the text ` "`; ` "t`, ` "p`... join it with a value's first letters), that token,
   * the tokenizer's own spelling; else -1.
   */
  guess(state: number): number {
    let g = this.guessCache.get(state);
    if (g !== undefined) return g;
    g = this.findGuess(state);
    if (this.guessCache.size > 65536) this.guessCache.clear();
    this.guessCache.set(state, g);
    return g;
  }

  private findGuess(state: number): number {
    if (this.forced(state).length > 0) return -1;
    const f = this.forcedText(state);
    // One token spells the forced text and it could merge with what follows: it is held back.
    if (!f || f.all || f.ids.length !== 1) return -1;
    const t = f.ids[0]!;
    return this.isAllowed(state, t) && this.onlyToken(state) < 0 ? t : -1;
  }

  isAllowed(state: number, token: number): boolean {
    const m = this.mask(state);
    return ((m[token >>> 5]! >>> (token & 31)) & 1) === 1;
  }

  /** The state after `token`, or DEAD if the grammar does not allow it. */
  next(state: number, token: number): number {
    if (this.trie.endTokens.includes(token)) return this.engine.isComplete(state) ? this.engine.finishedState() : DEAD;
    const piece = this.trie.pieces[token];
    if (piece === undefined) return DEAD;
    const e = this.engine;
    const byBytes = piece.length > 0 ? e.advanceBytes(state, piece) : DEAD;
    return this.grammar.hasTokens ? e.union(byBytes, e.advanceTokenItem(state, token)) : byBytes;
  }

  /**
   * Tokens the grammar forces from `state` (jump-forward): the text is forced while exactly one
   * byte can follow; it is tokenized the way the tokenizer would, and every token but the last is
   * forced (the last could merge with what follows), all of them when nothing can follow the text.
   * Empty when nothing is forced or the tokenization does not give back the text's bytes.
   */
  forced(state: number): readonly number[] {
    let f = this.forcedCache.get(state);
    if (f) return f;
    f = this.forcedRun(state);
    if (this.forcedCache.size > 65536) this.forcedCache.clear();
    this.forcedCache.set(state, f);
    return f;
  }

  /**
   * The forced text's tokens (computeForced), then, while the state reached is not complete and
   * its mask allows a single token, that token and the forced text after it: sampling could
   * choose nothing else there (` ` before a number when no token joins a space and a digit), so
   * it costs no sample and no forward pass of its own.
   */
  private forcedRun(state: number): readonly number[] {
    const out: number[] = [];
    let s = state;
    while (out.length < 128) {
      for (const t of this.computeForced(s)) {
        out.push(t);
        s = this.next(s, t);
      }
      if (s === DEAD || this.engine.isComplete(s) || this.engine.isFinished(s)) break;
      const only = this.onlyToken(s);
      if (only < 0) break;
      out.push(only);
      s = this.next(s, only);
    }
    return out;
  }

  /** The one token the mask of `state` allows, or -1 when it allows none or several. */
  onlyToken(state: number): number {
    const m = this.mask(state);
    let only = -1;
    for (let w = 0; w < m.length; w++) {
      const x = m[w]!;
      if (x === 0) continue;
      if (only >= 0 || (x & (x - 1)) !== 0) return -1;
      only = w * 32 + (31 - Math.clz32(x & -x));
    }
    return only;
  }

  private computeForced(state: number): readonly number[] {
    const f = this.forcedText(state);
    if (!f) return [];
    return f.all ? f.ids : f.ids.slice(0, -1);
  }

  /**
   * The text only the grammar allows from `state` (while exactly one byte can follow, whole
   * characters), tokenized the tokenizer's way; `all`: nothing can follow it. Undefined when
   * there is none or its tokens do not spell its bytes.
   */
  private forcedText(state: number): { ids: readonly number[]; all: boolean } | undefined {
    const e = this.engine;
    const tok = this.tokenizer;
    if (!tok) return undefined;
    const bytes: number[] = [];
    const nb = new Uint32Array(8);
    let s = state;
    while (bytes.length < 128) {
      if (e.isComplete(s) || e.isFinished(s) || this.hasTokenTop(s)) break;
      e.nextBytes(s, nb);
      let only = -1;
      let count = 0;
      for (let w = 0; w < 8 && count < 2; w++) {
        const x = nb[w]!;
        if (x === 0) continue;
        count += popcount(x);
        only = w * 32 + (31 - Math.clz32(x & -x));
      }
      if (count !== 1) break;
      bytes.push(only);
      s = e.advance(s, only);
    }
    // Whole characters only.
    let n = bytes.length;
    let i = 0;
    while (i < n) {
      const b = bytes[i]!;
      const len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      if (i + len > n) break;
      i += len;
    }
    n = i;
    if (n === 0) return undefined;
    const text = new TextDecoder().decode(Uint8Array.from(bytes.slice(0, n)));
    const ids = tok.encode(text, { addSpecial: false, parseSpecial: false });
    // The tokens must spell exactly these bytes.
    let k = 0;
    for (const id of ids) {
      const p = this.trie.pieces[id]!;
      for (const b of p) if (bytes[k++] !== b) return undefined;
    }
    if (k !== n) return undefined;
    const endState = e.advanceBytes(state, bytes.slice(0, n));
    return { ids, all: n === bytes.length && e.isFinished(endState) };
  }

  /**
   * Tokens spelling a shortest completion of `state` (closing a text that is running out of
   * tokens): the tokenizer's own tokenization when it spells those bytes, else longest matches.
   */
  closing(state: number): readonly number[] {
    let c = this.closingCache.get(state);
    if (c) return c;
    const bytes = this.engine.shortestCompletion(state);
    let ids: number[] | undefined;
    if (this.tokenizer && bytes.length > 0) {
      try {
        const text = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes));
        ids = this.tokenizer.encode(text, { addSpecial: false, parseSpecial: false });
        let k = 0;
        for (const id of ids) for (const b of this.trie.pieces[id]!) if (bytes[k++] !== b) ids = undefined;
        if (k !== bytes.length) ids = undefined;
      } catch {
        ids = undefined;
      }
    }
    c = ids ?? this.trie.spell(bytes) ?? [];
    if (this.closingCache.size > 65536) this.closingCache.clear();
    this.closingCache.set(state, c);
    return c;
  }

  private hasTokenTop(state: number): boolean {
    if (!this.grammar.hasTokens) return false;
    const e = this.engine;
    for (const n of e.stateNodes[state]!) if (this.grammar.kind[e.nodePos[n]!] !== BYTES) return true;
    return false;
  }
}

/** GBNF compile options for a tokenizer: its vocabulary size, `<text>` token items resolved by it. */
function grammarCompileOptions(tokenizer: Tokenizer): CompileOptions {
  return {
    vocabSize: tokenizer.vocabSize,
    tokenLookup: (text) => {
      const ids = tokenizer.encode(text, { addSpecial: false, parseSpecial: true });
      if (ids.length !== 1) throw new Error(`GBNF: token ${text} is not a single token of this vocabulary (it encodes to ${ids.length} tokens)`);
      return ids[0]!;
    },
  };
}

/** The rule of every position, and per rule the positions its frame returns to (-1: the end). */
function returnPositions(g: CompiledGrammar): [Int32Array, number[][]] {
  const n = g.alternatives.length;
  const ruleOfPos = new Int32Array(g.kind.length);
  const returns: Set<number>[] = Array.from({ length: n }, () => new Set<number>());
  const tailCallers: number[][] = Array.from({ length: n }, () => []);
  for (let r = 0; r < n; r++) {
    for (const a of g.alternatives[r]!) {
      let p = a;
      for (; g.kind[p] !== END; p++) {
        ruleOfPos[p] = r;
        if (g.kind[p] !== REF) continue;
        const callee = g.arg[p]!;
        if (g.kind[p + 1] === END) tailCallers[callee]!.push(r);
        else returns[callee]!.add(p + 1);
      }
      ruleOfPos[p] = r;
    }
  }
  returns[g.root]!.add(-1);
  for (let changed = true; changed; ) {
    changed = false;
    for (let r = 0; r < n; r++) {
      for (const caller of tailCallers[r]!) {
        for (const ret of returns[caller]!) {
          if (!returns[r]!.has(ret)) {
            returns[r]!.add(ret);
            changed = true;
          }
        }
      }
    }
  }
  return [ruleOfPos, returns.map((s) => [...s])];
}

function addRange(list: number[], parent: number, start: number, end: number): void {
  const k = list.length;
  if (k >= 3 && list[k - 3] === parent && list[k - 1] === start) list[k - 1] = end;
  else list.push(parent, start, end);
}

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/**
 * Where a lazy grammar starts (llama.cpp's grammar triggers): output is free until `word` appears
 * in it, and from the word on it must match the grammar (whose text starts with the word). With
 * `atStart`, only a word at the start of the output counts (whitespace before it allowed).
 */
export interface GrammarTrigger {
  readonly word: string;
  readonly atStart?: boolean;
}

const utf8 = new TextEncoder();

/**
 * One sequence's grammar state, as a stage of the sampler chain (a TokenMaskProvider): the mask
 * of allowed tokens, told each accepted token. Prompt tokens are not grammar output: the
 * constraint ignores accepted tokens until `begin()` is called. With triggers it is lazy: until a
 * trigger word appears in the output nothing is masked; the text from the word on is then fed to
 * the grammar, which constrains the rest.
 */
export class GrammarConstraint {
  readonly grammar: TokenGrammar;
  private state: number;
  private active = false;
  private readonly single: Uint32Array;
  private singleToken = -1;
  /** Accepted tokens that the grammar forced. */
  forcedCount = 0;
  /** Tokens accepted so far (since begin; before a trigger too). */
  produced = 0;
  /** Most tokens the output may take (set from maxTokens); the text is closed in time. */
  budget = Infinity;
  /** The budget ran low: the shortest completion is being forced. */
  closingMode = false;
  /** In closing mode: the completion's tokens, fixed when it began (a suffix re-tokenized could take more). */
  private plan: readonly number[] = [];
  private planAt = 0;
  private readonly triggers: readonly { readonly bytes: string; readonly atStart: boolean }[];
  /** Output bytes (latin1) since begin, while a trigger is awaited. */
  private buffer = "";
  /** A trigger word has appeared (always true without triggers). */
  triggered: boolean;
  /** The output so far is whitespace and the beginning of an at-start word. */
  private startOpen: boolean;

  constructor(grammar: TokenGrammar, state = grammar.initial, triggers: readonly GrammarTrigger[] = []) {
    this.grammar = grammar;
    this.state = state;
    this.single = new Uint32Array(grammar.trie.words);
    this.triggers = triggers.map((t) => {
      if (typeof t?.word !== "string" || t.word.length === 0) throw new TypeError("a grammar trigger needs a non-empty word");
      return { bytes: String.fromCharCode(...utf8.encode(t.word)), atStart: t.atStart ?? false };
    });
    this.triggered = this.triggers.length === 0;
    this.startOpen = this.triggers.some((t) => t.atStart);
  }

  /** From now on, accepted tokens are output. */
  begin(): void {
    this.active = true;
  }

  get current(): number {
    return this.state;
  }

  /** The grammar matched a complete text. */
  get complete(): boolean {
    return this.triggered && this.grammar.engine.isComplete(this.state);
  }

  /** Complete, and nothing may follow but the end. */
  get finished(): boolean {
    return this.triggered && this.grammar.engine.isFinished(this.state);
  }

  /**
   * The token the grammar forces next (sampling skipped), if any: the canonical tokenization of
   * text only the grammar allows, or, once the budget left is no more than the shortest completion
   * needs, the tokens of that completion (so output stays valid when it is cut short).
   */
  forced(): number | undefined {
    if (!this.triggered) return undefined;
    if (!this.closingMode && this.budget !== Infinity && !this.closable(this.state, this.budget - this.produced - 1)) this.close();
    if (this.closingMode) return this.plan[this.planAt];
    return this.grammar.forced(this.state)[0];
  }

  /**
   * The sampled token, or, when it would leave too few tokens of the budget to complete the text
   * (it opens more than the rest can close), the first token of the shortest completion.
   */
  fit(token: number): number {
    if (this.budget === Infinity || this.closingMode || !this.triggered) return token;
    const left = this.budget - this.produced - 1;
    const next = this.grammar.next(this.state, token);
    if (next !== DEAD && this.closable(next, left)) return token;
    this.close();
    // Complete already (e.g. between repetitions of the root): only the end stays within the budget.
    return this.plan[0] ?? this.grammar.trie.endTokens[0] ?? token;
  }

  private close(): void {
    this.closingMode = true;
    this.plan = this.grammar.closing(this.state);
    this.planAt = 0;
  }

  /**
   * Whether a shortest completion of `state` takes at most `left` tokens. Its length in bytes
   * bounds its length in tokens and costs nothing; the tokens themselves are counted only when
   * the bytes do not fit (near the end of the budget), so a long forced tail ("</tool_call>")
   * does not close the text early on a vocabulary with long tokens.
   */
  private closable(state: number, left: number): boolean {
    return this.grammar.engine.distance(state) <= left || this.grammar.closing(state).length <= left;
  }

  /** A likely next token to evaluate ahead of its sampling (TokenGrammar.guess), or undefined. */
  guess(): number | undefined {
    if (!this.triggered || this.closingMode || this.forced() !== undefined) return undefined;
    const g = this.grammar.guess(this.state);
    return g < 0 ? undefined : g;
  }

  /** The allowed tokens; null (no constraint) while a trigger is awaited. */
  allowed(): Uint32Array | null {
    if (!this.triggered) return null;
    const f = this.forced();
    if (f === undefined) return this.grammar.mask(this.state);
    if (this.singleToken !== f) {
      if (this.singleToken >= 0) this.single[this.singleToken >>> 5] = 0;
      this.single[f >>> 5] = 1 << (f & 31);
      this.singleToken = f;
    }
    return this.single;
  }

  /**
   * The greedy choice among the allowed tokens, as the mask stage followed by a greedy stage
   * picks it (the first maximum in id order, compared with the first allowed token's value),
   * without copying the vocabulary's candidates: only the mask's set bits are read. -1 while a
   * trigger is awaited or when nothing is allowed.
   */
  argmax(logits: Float32Array): number {
    const m = this.allowed();
    if (!m) return -1;
    const n = logits.length;
    const words = Math.min(m.length, (n + 31) >>> 5);
    let best = -1;
    let bestV = -Infinity;
    for (let w = 0; w < words; w++) {
      let x = m[w]!;
      while (x !== 0) {
        const t = w * 32 + (31 - Math.clz32(x & -x));
        x &= x - 1;
        if (t >= n) break;
        const v = logits[t]!;
        if (best < 0) {
          best = t;
          bestV = v;
        } else if (v > bestV) {
          bestV = v;
          best = t;
        }
      }
    }
    return best;
  }

  accept(token: number): void {
    if (!this.active) return;
    if (!this.triggered) {
      this.produced++;
      this.watch(token);
      return;
    }
    if (this.forced() === token) this.forcedCount++;
    if (this.closingMode && this.plan[this.planAt] === token) this.planAt++;
    this.produced++;
    const next = this.grammar.next(this.state, token);
    if (next === DEAD) throw new Error(`token ${token} is not allowed by the grammar here`);
    this.state = next;
  }

  /** Looks for a trigger word in the output so far; on one, the grammar takes the text from the word on. */
  private watch(token: number): void {
    const piece = this.grammar.trie.pieces[token];
    if (!piece || piece.length === 0) return;
    this.buffer += String.fromCharCode(...piece);
    const lead = this.buffer.length - this.buffer.trimStart().length;
    let at = -1;
    for (const t of this.triggers) {
      const i = t.atStart ? (this.startOpen && this.buffer.startsWith(t.bytes, lead) ? lead : -1) : this.buffer.indexOf(t.bytes);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      const bytes = new Uint8Array(this.buffer.length - at);
      for (let i = 0; i < bytes.length; i++) bytes[i] = this.buffer.charCodeAt(at + i);
      const next = this.grammar.engine.advanceBytes(this.grammar.initial, bytes);
      if (next !== DEAD) {
        this.state = next;
        this.triggered = true;
        this.buffer = "";
        return;
      }
      // The text after the word does not fit the grammar: not a start; keep waiting past it.
      this.buffer = this.buffer.slice(at + 1);
      this.startOpen = false;
    }
    if (this.startOpen) {
      const rest = this.buffer.slice(lead);
      this.startOpen = this.triggers.some((t) => t.atStart && t.bytes.startsWith(rest));
    }
    if (!this.startOpen) {
      // Only the tail a word could still be completing matters.
      const keep = Math.max(0, ...this.triggers.filter((t) => !t.atStart).map((t) => t.bytes.length - 1));
      if (this.buffer.length > keep) this.buffer = this.buffer.slice(this.buffer.length - keep);
    }
  }

  reset(): void {
    this.state = this.grammar.initial;
    this.active = false;
    this.forcedCount = 0;
    this.produced = 0;
    this.closingMode = false;
    this.plan = [];
    this.planAt = 0;
    this.triggered = this.triggers.length === 0;
    this.startOpen = this.triggers.some((t) => t.atStart);
    this.buffer = "";
  }

  clone(): GrammarConstraint {
    const c = new GrammarConstraint(this.grammar, this.state, []);
    Object.assign(c, { triggers: this.triggers });
    c.startOpen = this.startOpen;
    c.active = this.active;
    c.forcedCount = this.forcedCount;
    c.produced = this.produced;
    c.budget = this.budget;
    c.closingMode = this.closingMode;
    c.plan = this.plan;
    c.planAt = this.planAt;
    c.triggered = this.triggered;
    c.buffer = this.buffer;
    return c;
  }
}
