// Lowers a GBNF syntax tree to a byte-level program: every terminal becomes a set of bytes (a
// character class becomes its UTF-8 byte sequences), repetitions become right-recursive rules
// (llama.cpp's expansion), and the result is a flat array of positions:
//   BYTES(set) | REF(rule) | TOKEN(id) ... END     one alternative after another.
// Matching on bytes makes UTF-8 across token boundaries free: a token ending inside a character
// simply leaves the parser between two bytes of it.

import { GrammarError, parseGbnf, type CodepointRanges, type GbnfGrammar, type GbnfItem, type GbnfSequence } from "./gbnf.ts";

export const END = 0;
export const BYTES = 1;
export const REF = 2;
/** A whole vocabulary token (`<[id]>`); arg = id, negated when `negated[pos]`. */
export const TOKEN = 3;

/** Resolves `<text>` token items: the id of the one token whose text is exactly `text`. */
export type TokenLookup = (text: string) => number;

export interface CompiledGrammar {
  /** Per position: END, BYTES, REF or TOKEN. */
  readonly kind: Uint8Array;
  /** BYTES: byte-set index; REF: rule index; TOKEN: token id. */
  readonly arg: Int32Array;
  /** TOKEN positions: 1 when negated (any token but arg). */
  readonly negated: Uint8Array;
  /** 8 words (256 bits) per byte set. */
  readonly sets: Uint32Array;
  /** Start position of every alternative, per rule. */
  readonly alternatives: readonly Int32Array[];
  readonly ruleNames: readonly string[];
  readonly root: number;
  /** Fewest bytes each rule can match (a completion bound; token items count 1). */
  readonly minLength: Int32Array;
  /** Fewest bytes from a position to the end of its alternative. */
  readonly minRest: Int32Array;
  readonly hasTokens: boolean;
}

type Sym = { t: "bytes"; set: number } | { t: "ref"; rule: number } | { t: "token"; id: number; negated: boolean };

/** Code point ranges of the UTF-8-encodable scalar values (no surrogates). */
const SCALARS: CodepointRanges = [
  [0, 0xd7ff],
  [0xe000, 0x10ffff],
];

/** Sorted, merged, surrogate-free ranges; the complement when negated. */
export function normalizeRanges(ranges: CodepointRanges, negated: boolean): [number, number][] {
  const sorted = ranges.map(([a, b]) => [a, b] as [number, number]).sort((x, y) => x[0] - y[0]);
  const merged: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = merged[merged.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else merged.push([a, b]);
  }
  let out = merged;
  if (negated) {
    out = [];
    let next = 0;
    for (const [a, b] of merged) {
      if (a > next) out.push([next, a - 1]);
      next = Math.max(next, b + 1);
    }
    if (next <= 0x10ffff) out.push([next, 0x10ffff]);
  }
  // Cut out the surrogates, which have no UTF-8 encoding.
  const res: [number, number][] = [];
  for (const [a, b] of out) {
    for (const [sa, sb] of SCALARS) {
      const lo = Math.max(a, sa);
      const hi = Math.min(b, sb);
      if (lo <= hi) res.push([lo, hi]);
    }
  }
  return res;
}

function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

function utf8Bytes(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 63)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
}

/**
 * The byte-range sequences whose concatenations are exactly the UTF-8 encodings of [lo, hi]
 * (a range of scalar values): split at the encoding-length boundaries, then wherever a range does
 * not cover whole continuation-byte blocks, until each piece maps to one byte range per position.
 */
export function utf8Sequences(lo: number, hi: number): [number, number][][] {
  const out: [number, number][][] = [];
  const split = (a: number, b: number): void => {
    if (a > b) return;
    for (const edge of [0x7f, 0x7ff, 0xffff]) {
      if (a <= edge && b > edge) {
        split(a, edge);
        split(edge + 1, b);
        return;
      }
    }
    const n = utf8Length(a);
    for (let i = 1; i < n; i++) {
      const m = (1 << (6 * i)) - 1;
      if ((a & ~m) !== (b & ~m)) {
        if ((a & m) !== 0) {
          split(a, a | m);
          split((a | m) + 1, b);
          return;
        }
        if ((b & m) !== m) {
          split(a, (b & ~m) - 1);
          split(b & ~m, b);
          return;
        }
      }
    }
    const x = utf8Bytes(a);
    const y = utf8Bytes(b);
    out.push(x.map((v, i) => [v, y[i]!] as [number, number]));
  };
  split(lo, hi);
  return out;
}

class Builder {
  readonly sets: number[][] = [];
  private readonly setIndex = new Map<string, number>();
  readonly rules: Sym[][][] = [];
  readonly names: string[] = [];
  private readonly classRules = new Map<string, number>();
  hasTokens = false;

  byteSet(bits: number[]): number {
    const key = bits.join(",");
    let i = this.setIndex.get(key);
    if (i === undefined) {
      i = this.sets.length;
      this.sets.push(bits);
      this.setIndex.set(key, i);
    }
    return i;
  }

  byteRange(lo: number, hi: number): number {
    const bits = new Array<number>(8).fill(0);
    for (let b = lo; b <= hi; b++) bits[b >>> 5]! |= 1 << (b & 31);
    return this.byteSet(bits.map((w) => w >>> 0));
  }

  newRule(name: string): number {
    this.rules.push([]);
    this.names.push(name);
    return this.rules.length - 1;
  }

  /** A character class as symbols: one byte set when it is all ASCII, else a rule of UTF-8 sequences. */
  classSyms(ranges: [number, number][], context: string): Sym[] {
    if (ranges.length === 0) throw new GrammarError(`GBNF: a character class in rule \`${context}\` matches no character`);
    if (ranges[ranges.length - 1]![1] < 0x80) {
      const bits = new Array<number>(8).fill(0);
      for (const [a, b] of ranges) for (let c = a; c <= b; c++) bits[c >>> 5]! |= 1 << (c & 31);
      return [{ t: "bytes", set: this.byteSet(bits.map((w) => w >>> 0)) }];
    }
    const key = ranges.map(([a, b]) => `${a}-${b}`).join(",");
    let rule = this.classRules.get(key);
    if (rule === undefined) {
      rule = this.newRule(`${context}-char`);
      this.classRules.set(key, rule);
      // One alternative per leading byte range; ASCII merges into one byte set.
      const ascii = new Array<number>(8).fill(0);
      let hasAscii = false;
      const alts: Sym[][] = [];
      for (const [a, b] of ranges) {
        for (const seq of utf8Sequences(a, b)) {
          if (seq.length === 1) {
            hasAscii = true;
            for (let c = seq[0]![0]; c <= seq[0]![1]; c++) ascii[c >>> 5]! |= 1 << (c & 31);
          } else alts.push(seq.map(([lo, hi]) => ({ t: "bytes", set: this.byteRange(lo, hi) }) as Sym));
        }
      }
      if (hasAscii) alts.unshift([{ t: "bytes", set: this.byteSet(ascii.map((w) => w >>> 0)) }]);
      this.rules[rule] = alts;
    }
    return [{ t: "ref", rule }];
  }
}

export interface CompileOptions {
  /** Needed for `<text>` token items; `<[id]>` items need none. */
  readonly tokenLookup?: TokenLookup;
  /** Largest valid token id + 1, to check `<[id]>` items. */
  readonly vocabSize?: number;
}

/** Parses and compiles GBNF text (or an already parsed grammar). */
export function compileGrammar(source: string | GbnfGrammar, opts: CompileOptions = {}): CompiledGrammar {
  const g = typeof source === "string" ? parseGbnf(source) : source;
  const b = new Builder();
  const ruleIds = new Map<string, number>();
  for (const name of g.rules.keys()) ruleIds.set(name, b.newRule(name));

  const lowerSeq = (seq: GbnfSequence, ctx: string): Sym[] => seq.flatMap((it) => lowerItem(it, ctx));
  const single = (syms: Sym[], ctx: string): Sym => {
    if (syms.length === 1) return syms[0]!;
    const r = b.newRule(ctx);
    b.rules[r] = [syms];
    return { t: "ref", rule: r };
  };
  const lowerItem = (it: GbnfItem, ctx: string): Sym[] => {
    switch (it.kind) {
      case "literal":
        return it.codepoints.flatMap((cp) => utf8Bytes(cp).map((byte) => ({ t: "bytes", set: b.byteRange(byte, byte) }) as Sym));
      case "class":
        return b.classSyms(normalizeRanges(it.ranges, it.negated), ctx);
      case "any":
        return b.classSyms(normalizeRanges([[0, 0x10ffff]], false), ctx);
      case "ref":
        return [{ t: "ref", rule: ruleIds.get(it.name)! }];
      case "group": {
        const r = b.newRule(`${ctx}-group`);
        b.rules[r] = it.alternatives.map((s) => lowerSeq(s, ctx));
        return [{ t: "ref", rule: r }];
      }
      case "token": {
        b.hasTokens = true;
        let id = it.id;
        if (id === undefined) {
          if (!opts.tokenLookup) throw new GrammarError(`GBNF: token ${it.text} needs a tokenizer (compile the grammar for a model)`);
          id = opts.tokenLookup(it.text!);
        }
        if (opts.vocabSize !== undefined && !(id >= 0 && id < opts.vocabSize)) {
          throw new GrammarError(`GBNF: token id ${id} is outside the vocabulary (0..${opts.vocabSize - 1})`);
        }
        return [{ t: "token", id, negated: it.negated }];
      }
      case "repeat": {
        // llama.cpp's expansion: x{m,n} = m copies of x, then n-m nested optionals (or x* if n = inf).
        const x = single(lowerItem(it.item, ctx), `${ctx}-item`);
        const out: Sym[] = [];
        for (let i = 0; i < it.min; i++) out.push(x);
        if (it.max === Infinity) {
          const r = b.newRule(`${ctx}-star`);
          b.rules[r] = [[x, { t: "ref", rule: r }], []];
          out.push({ t: "ref", rule: r });
        } else if (it.max > it.min) {
          let tail: number | undefined;
          for (let k = 0; k < it.max - it.min; k++) {
            const r = b.newRule(`${ctx}-opt`);
            b.rules[r] = [tail === undefined ? [x] : [x, { t: "ref", rule: tail }], []];
            tail = r;
          }
          out.push({ t: "ref", rule: tail! });
        }
        return out;
      }
    }
  };
  for (const [name, alts] of g.rules) b.rules[ruleIds.get(name)!] = alts.map((s) => lowerSeq(s, name));

  inlineHeads(b.rules);
  const root = ruleIds.get("root")!;
  checkRules(b.rules, b.names, root);

  // Flatten.
  const kind: number[] = [];
  const arg: number[] = [];
  const neg: number[] = [];
  const alternatives: Int32Array[] = [];
  const altSyms: Sym[][] = [];
  for (const alts of b.rules) {
    const starts: number[] = [];
    for (const seq of alts) {
      starts.push(kind.length);
      altSyms.push(seq);
      for (const s of seq) {
        kind.push(s.t === "bytes" ? BYTES : s.t === "ref" ? REF : TOKEN);
        arg.push(s.t === "bytes" ? s.set : s.t === "ref" ? s.rule : s.id);
        neg.push(s.t === "token" && s.negated ? 1 : 0);
      }
      kind.push(END);
      arg.push(0);
      neg.push(0);
    }
    alternatives.push(Int32Array.from(starts));
  }
  const sets = new Uint32Array(b.sets.length * 8);
  b.sets.forEach((bits, i) => sets.set(bits, i * 8));
  const k = Uint8Array.from(kind);
  const a = Int32Array.from(arg);
  const { minLength, minRest } = lengths(k, a, alternatives);
  return {
    kind: k,
    arg: a,
    negated: Uint8Array.from(neg),
    sets,
    alternatives,
    ruleNames: b.names,
    root,
    minLength,
    minRest,
    hasTokens: b.hasTokens,
  };
}

/** Rules that (directly or not) refer to themselves. */
function recursiveRules(rules: Sym[][][]): boolean[] {
  const n = rules.length;
  const rec = new Array<boolean>(n).fill(false);
  for (let r = 0; r < n; r++) {
    const seen = new Uint8Array(n);
    const stack = [r];
    while (stack.length) {
      const x = stack.pop()!;
      for (const seq of rules[x]!)
        for (const s of seq) {
          if (s.t !== "ref") continue;
          if (s.rule === r) rec[r] = true;
          if (!seen[s.rule]) {
            seen[s.rule] = 1;
            stack.push(s.rule);
          }
        }
      if (rec[r]) break;
    }
  }
  return rec;
}

/**
 * Replaces a reference at the head of an alternative by the referenced rule's alternatives (when
 * that rule is not recursive and small): `rep ::= char rep | ""` with `char ::= [^"] | "\\" esc`
 * becomes `rep ::= [^"] rep | "\\" esc rep | ""`. The language is unchanged; the point is that a
 * repetition then runs inside one rule frame, so the token-mask cache of a position inside it holds
 * almost every token without looking at the enclosing rules.
 */
function inlineHeads(rules: Sym[][][]): void {
  const rec = recursiveRules(rules);
  const MAX_ALTS = 32;
  for (let round = 0; round < 4; round++) {
    let changed = false;
    for (let r = 0; r < rules.length; r++) {
      const out: Sym[][] = [];
      let did = false;
      for (const seq of rules[r]!) {
        const head = seq[0];
        if (head?.t === "ref" && head.rule !== r && !rec[head.rule] && rules[head.rule]!.length <= MAX_ALTS && rules[r]!.length + rules[head.rule]!.length <= 64) {
          for (const alt of rules[head.rule]!) out.push([...alt, ...seq.slice(1)]);
          did = true;
        } else out.push(seq);
      }
      if (did) {
        rules[r] = out;
        changed = true;
      }
    }
    if (!changed) break;
  }
}

/** Errors for grammars the matcher cannot run: left recursion through a rule call, rules that never finish. */
function checkRules(rules: Sym[][][], names: readonly string[], root: number): void {
  const n = rules.length;
  // Nullable rules (fixpoint).
  const nullable = new Array<boolean>(n).fill(false);
  for (let changed = true; changed; ) {
    changed = false;
    for (let r = 0; r < n; r++) {
      if (nullable[r]) continue;
      if (rules[r]!.some((seq) => seq.every((s) => s.t === "ref" && nullable[s.rule]))) {
        nullable[r] = changed = true;
      }
    }
  }
  // Left edges: r -> s when s can be the first thing r expands to; "push" when s is not in tail position.
  const edges: { to: number; push: boolean }[][] = rules.map(() => []);
  for (let r = 0; r < n; r++) {
    for (const seq of rules[r]!) {
      for (let i = 0; i < seq.length; i++) {
        const s = seq[i]!;
        if (s.t !== "ref") break;
        edges[r]!.push({ to: s.rule, push: i < seq.length - 1 });
        if (!nullable[s.rule]) break;
      }
    }
  }
  const reaches = (from: number, target: number): boolean => {
    const seen = new Uint8Array(n);
    const stack = [from];
    while (stack.length) {
      const x = stack.pop()!;
      if (x === target) return true;
      for (const e of edges[x]!) if (!seen[e.to]) {
        seen[e.to] = 1;
        stack.push(e.to);
      }
    }
    return false;
  };
  for (let r = 0; r < n; r++) {
    for (const e of edges[r]!) {
      if (e.push && reaches(e.to, r)) throw new GrammarError(`GBNF: left recursion in rule \`${names[r]}\` (it can call itself before matching anything); rewrite it with repetition`);
    }
  }
  // Productive rules (can finish): fixpoint; every rule reachable from root must be.
  const productive = new Array<boolean>(n).fill(false);
  for (let changed = true; changed; ) {
    changed = false;
    for (let r = 0; r < n; r++) {
      if (productive[r]) continue;
      if (rules[r]!.some((seq) => seq.every((s) => s.t !== "ref" || productive[s.rule]))) productive[r] = changed = true;
    }
  }
  const seen = new Uint8Array(n);
  const stack = [root];
  seen[root] = 1;
  while (stack.length) {
    const x = stack.pop()!;
    if (!productive[x]) throw new GrammarError(`GBNF: rule \`${names[x]}\` can never finish (every alternative recurses forever)`);
    for (const seq of rules[x]!) for (const s of seq) if (s.t === "ref" && !seen[s.rule]) {
      seen[s.rule] = 1;
      stack.push(s.rule);
    }
  }
}

function lengths(kind: Uint8Array, arg: Int32Array, alternatives: readonly Int32Array[]): { minLength: Int32Array; minRest: Int32Array } {
  const INF = 0x3fffffff;
  const minLength = new Int32Array(alternatives.length).fill(INF);
  const minRest = new Int32Array(kind.length).fill(INF);
  const restFrom = (p: number): number => {
    let total = 0;
    for (let q = p; kind[q] !== END; q++) {
      const k = kind[q]!;
      total += k === REF ? minLength[arg[q]!]! : 1;
      if (total >= INF) return INF;
    }
    return total;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (let r = 0; r < alternatives.length; r++) {
      let best = INF;
      for (const a of alternatives[r]!) best = Math.min(best, restFrom(a));
      if (best < minLength[r]!) {
        minLength[r] = best;
        changed = true;
      }
    }
  }
  for (let p = 0; p < kind.length; p++) minRest[p] = restFrom(p);
  return { minLength, minRest };
}
