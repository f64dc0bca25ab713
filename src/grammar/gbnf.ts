// GBNF, the grammar format of llama.cpp (its grammars/README.md): rules `name ::= ...`, sequences,
// alternatives `|`, groups `( )`, repetition `* + ? {m} {m,} {m,n}`, string literals, character
// classes `[a-z]` / `[^...]`, any character `.`, `#` comments, and tokens `<[id]>` / `<text>`
// (negated with `!`). This file parses the text into a syntax tree; compile.ts lowers it to bytes.

/** A grammar that does not parse or compile; the message names the line and column or the rule. */
export class GrammarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GrammarError";
  }
}

/** Inclusive code point ranges. */
export type CodepointRanges = readonly (readonly [number, number])[];

export type GbnfItem =
  | { readonly kind: "literal"; readonly codepoints: readonly number[] }
  | { readonly kind: "class"; readonly ranges: CodepointRanges; readonly negated: boolean }
  | { readonly kind: "any" }
  | { readonly kind: "ref"; readonly name: string; readonly line: number; readonly column: number }
  | { readonly kind: "group"; readonly alternatives: GbnfSequence[] }
  | { readonly kind: "repeat"; readonly item: GbnfItem; readonly min: number; readonly max: number }
  | { readonly kind: "token"; readonly id?: number; readonly text?: string; readonly negated: boolean };

export type GbnfSequence = GbnfItem[];

export interface GbnfGrammar {
  /** Rules in the order they appear; each is a list of alternatives. */
  readonly rules: ReadonlyMap<string, GbnfSequence[]>;
}

/** llama.cpp refuses repetition counts above this (MAX_REPETITION_THRESHOLD). */
export const MAX_REPETITION = 2000;

const isNameChar = (c: string) => /[A-Za-z0-9_-]/.test(c);
const isDigit = (c: string) => c >= "0" && c <= "9";

/** Parses GBNF text; throws GrammarError with line:column for any syntax error or missing rule. */
export function parseGbnf(text: string): GbnfGrammar {
  return new Parser(text).grammar();
}

class Parser {
  private readonly src: string;
  private pos = 0;
  private readonly rules = new Map<string, GbnfSequence[]>();

  constructor(src: string) {
    this.src = src;
  }

  private fail(msg: string, at = this.pos): never {
    let line = 1;
    let col = 1;
    for (let i = 0; i < at && i < this.src.length; i++) {
      if (this.src[i] === "\n") {
        line++;
        col = 1;
      } else col++;
    }
    const near = JSON.stringify(this.src.slice(at, at + 20));
    throw new GrammarError(`GBNF ${line}:${col}: ${msg} (at ${at >= this.src.length ? "end of input" : near})`);
  }

  private lineCol(at: number): [number, number] {
    let line = 1;
    let col = 1;
    for (let i = 0; i < at; i++) {
      if (this.src[i] === "\n") {
        line++;
        col = 1;
      } else col++;
    }
    return [line, col];
  }

  private peek(o = 0): string {
    return this.src[this.pos + o] ?? "";
  }

  /** Spaces, tabs, comments; newlines too where `newlineOk`. */
  private space(newlineOk: boolean): void {
    for (;;) {
      const c = this.peek();
      if (c === " " || c === "\t") this.pos++;
      else if (c === "#") {
        while (this.pos < this.src.length && this.peek() !== "\n" && this.peek() !== "\r") this.pos++;
      } else if (newlineOk && (c === "\n" || c === "\r")) this.pos++;
      else return;
    }
  }

  private name(): string {
    const start = this.pos;
    while (isNameChar(this.peek())) this.pos++;
    if (this.pos === start) this.fail("expecting a rule name");
    return this.src.slice(start, this.pos);
  }

  grammar(): GbnfGrammar {
    this.space(true);
    while (this.pos < this.src.length) {
      this.rule();
      this.space(true);
    }
    if (!this.rules.has("root")) throw new GrammarError("GBNF: the grammar has no `root` rule (the start of the output)");
    for (const alts of this.rules.values()) this.checkRefs(alts);
    return { rules: this.rules };
  }

  private checkRefs(alts: GbnfSequence[]): void {
    const visit = (item: GbnfItem): void => {
      if (item.kind === "ref" && !this.rules.has(item.name)) {
        throw new GrammarError(`GBNF ${item.line}:${item.column}: undefined rule \`${item.name}\``);
      }
      if (item.kind === "group") for (const s of item.alternatives) s.forEach(visit);
      if (item.kind === "repeat") visit(item.item);
    };
    for (const s of alts) s.forEach(visit);
  }

  private rule(): void {
    const at = this.pos;
    const name = this.name();
    this.space(false);
    if (this.src.startsWith("::=", this.pos)) this.pos += 3;
    else this.fail(`expecting ::= after rule name \`${name}\``);
    this.space(true);
    const alts = this.alternates(false);
    if (this.peek() === "\r") this.pos++;
    if (this.peek() === "\n") this.pos++;
    else if (this.pos < this.src.length) this.fail(`expecting a newline or end of input after rule \`${name}\``);
    if (this.rules.has(name)) this.fail(`rule \`${name}\` is defined twice`, at);
    this.rules.set(name, alts);
  }

  private alternates(nested: boolean): GbnfSequence[] {
    const alts = [this.sequence(nested)];
    while (this.peek() === "|") {
      this.pos++;
      this.space(true);
      alts.push(this.sequence(nested));
    }
    return alts;
  }

  private sequence(nested: boolean): GbnfSequence {
    const seq: GbnfSequence = [];
    const lastItem = (op: string): GbnfItem => {
      const last = seq.pop();
      if (!last) this.fail(`expecting a preceding item to ${op}`);
      return last;
    };
    for (;;) {
      const c = this.peek();
      if (c === '"') {
        this.pos++;
        const cps: number[] = [];
        while (this.peek() !== '"') {
          if (this.pos >= this.src.length) this.fail("unexpected end of input in a string literal");
          cps.push(this.char());
        }
        this.pos++;
        seq.push({ kind: "literal", codepoints: cps });
      } else if (c === "[") {
        this.pos++;
        let negated = false;
        if (this.peek() === "^") {
          negated = true;
          this.pos++;
        }
        const ranges: [number, number][] = [];
        while (this.peek() !== "]") {
          if (this.pos >= this.src.length) this.fail("unexpected end of input in a character class");
          const lo = this.char();
          let hi = lo;
          if (this.peek() === "-" && this.peek(1) !== "]" && this.peek(1) !== "") {
            this.pos++;
            hi = this.char();
            if (hi < lo) this.fail(`character range ends below its start (U+${lo.toString(16)} > U+${hi.toString(16)})`);
          }
          ranges.push([lo, hi]);
        }
        this.pos++;
        seq.push({ kind: "class", ranges, negated });
      } else if (isNameChar(c)) {
        const at = this.pos;
        const name = this.name();
        const [line, column] = this.lineCol(at);
        seq.push({ kind: "ref", name, line, column });
      } else if (c === "(") {
        this.pos++;
        this.space(true);
        const alternatives = this.alternates(true);
        if (this.peek() !== ")") this.fail("expecting ) to close the group");
        this.pos++;
        seq.push({ kind: "group", alternatives });
      } else if (c === ".") {
        this.pos++;
        seq.push({ kind: "any" });
      } else if (c === "*" || c === "+" || c === "?") {
        this.pos++;
        const item = lastItem(c);
        seq.push({ kind: "repeat", item, min: c === "+" ? 1 : 0, max: c === "?" ? 1 : Infinity });
      } else if (c === "{") {
        this.pos++;
        this.space(false);
        const min = this.int();
        let max = min;
        this.space(false);
        if (this.peek() === ",") {
          this.pos++;
          this.space(false);
          max = isDigit(this.peek()) ? this.int() : Infinity;
          this.space(false);
        }
        if (this.peek() !== "}") this.fail("expecting } to close a repetition count");
        this.pos++;
        if (max < min) this.fail(`repetition {${min},${max}}: the maximum is below the minimum`);
        if (min > MAX_REPETITION || (max !== Infinity && max > MAX_REPETITION)) this.fail(`repetition count above ${MAX_REPETITION}`);
        const item = lastItem("{m,n}");
        seq.push({ kind: "repeat", item, min, max });
      } else if (c === "<" || (c === "!" && this.peek(1) === "<")) {
        const negated = c === "!";
        if (negated) this.pos++;
        this.pos++;
        if (this.peek() === "[") {
          this.pos++;
          const id = this.int();
          if (this.peek() !== "]" || this.peek(1) !== ">") this.fail("expecting ]> to close a token id");
          this.pos += 2;
          seq.push({ kind: "token", id, negated });
        } else {
          const start = this.pos;
          while (this.peek() !== ">") {
            if (this.pos >= this.src.length || this.peek() === "\n") this.fail("expecting > to close a token");
            this.pos++;
          }
          const text = "<" + this.src.slice(start, this.pos) + ">";
          this.pos++;
          seq.push({ kind: "token", text, negated });
        }
      } else {
        break;
      }
      this.space(nested);
    }
    return seq;
  }

  private int(): number {
    const start = this.pos;
    while (isDigit(this.peek())) this.pos++;
    if (this.pos === start) this.fail("expecting a number");
    return Number(this.src.slice(start, this.pos));
  }

  /** One code point of a literal or class, with llama.cpp's escapes. */
  private char(): number {
    const c = this.peek();
    if (c === "\\") {
      const e = this.peek(1);
      this.pos += 2;
      switch (e) {
        case "x":
          return this.hex(2);
        case "u":
          return this.hex(4);
        case "U":
          return this.hex(8);
        case "t":
          return 9;
        case "r":
          return 13;
        case "n":
          return 10;
        case "\\":
        case '"':
        case "[":
        case "]":
          return e.codePointAt(0)!;
        default:
          this.fail(`unknown escape \\${e}`, this.pos - 2);
      }
    }
    const cp = this.src.codePointAt(this.pos)!;
    this.pos += cp > 0xffff ? 2 : 1;
    return cp;
  }

  private hex(n: number): number {
    const s = this.src.slice(this.pos, this.pos + n);
    if (s.length !== n || !/^[0-9a-fA-F]+$/.test(s)) this.fail(`expecting ${n} hex digits`);
    this.pos += n;
    const v = parseInt(s, 16);
    if (v > 0x10ffff) this.fail(`code point U+${s} is beyond U+10FFFF`);
    return v;
  }
}
