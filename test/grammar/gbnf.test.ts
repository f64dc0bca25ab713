// GBNF as llama.cpp's grammars/README.md defines it: its example grammars accept and reject
// hand-picked strings, and bad grammars fail with errors that say where and what.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { compileGrammar, GrammarEngine, GrammarError, parseGbnf } from "../../src/grammar/index.ts";
import { TESTDATA } from "../helpers/testdata.ts";

const example = (name: string) => new GrammarEngine(compileGrammar(readFileSync(`${TESTDATA}/grammars/${name}.gbnf`, "utf8")));

const cases: Record<string, { accept: string[]; reject: string[] }> = {
  arithmetic: {
    accept: ["1+2=3\n", "x = (a +b)\n", "(1)=1\n", "foo_1/3-2=bar\n1=1\n"],
    reject: ["", "1+2=3", "1++2=3\n", "X=1\n", "=1\n"],
  },
  c: {
    accept: ["int main(){}", "int f(int x){return x;}", "float g(){while(a<b){a = a+1;}}", "char h(){// hi\n}", "int m(){/* c * d */}"],
    reject: ["main(){}", "int main(){", "int main(){return}", "int main(){x = ;}"],
  },
  chess: {
    accept: ["1. e4 e5\n2. Nf3 Nc6\n", "1. d4 d5\n2. c4 dxc4\n3. O-O Qxd8+\n", "1. e8=Q Kxf7#\n2. a3 b6\n"],
    reject: ["1. e4 e5\n", "1. e9 e5\n2. a3 a4\n", "2. e4 e5\n2. a3 a4\n", "1. e4  e5\n2. a3 a4\n"],
  },
  english: {
    accept: ["Hello, world!", "a b\tc\nd", "It's 42."],
    reject: ["", "héllo", "two  spaces", "trailing "],
  },
  japanese: {
    accept: ["こんにちは", "カタカナ 漢字", "ひらがな、カタカナ。"],
    reject: ["hello", "こんにちは!", "", "日本 "],
  },
  json: {
    accept: ['{}', '{"a": 1}', '{"a": [1, 2.5, -3, "x\\u00e9", true, false, null], "b": {"c": {}}}', '{"é": "日本"}\n', '{"n": 1e5}'],
    reject: ['[]', '{"a" 1}', '{"a": 01}', '{"a": "\\x"}', '{"a": "line\nbreak"}', '{', '{"a": 1,}'],
  },
  json_arr: {
    accept: ["[\n]", '[\n{"a": 1},\n2]', '[\n"x"]'],
    reject: ["[]", "{}", '[\n1] ', '[1]'],
  },
  list: {
    accept: ["- one\n", "- one\n- two items\n", "- ü\n"],
    reject: ["", "- \n", "one\n", "- one", "- a\r\n"],
  },
};

for (const [name, { accept, reject }] of Object.entries(cases)) {
  test(`llama.cpp's ${name}.gbnf accepts and rejects hand-picked strings`, () => {
    const e = example(name);
    for (const s of accept) assert.equal(e.matches(s), true, `${name} should accept ${JSON.stringify(s)}`);
    for (const s of reject) assert.equal(e.matches(s), false, `${name} should reject ${JSON.stringify(s)}`);
  });
}

test("prefixes: a text that can still be completed is a live prefix, one that cannot is dead", () => {
  const e = example("json");
  assert.equal(e.matchesPrefix('{"a": [1, tr'), true);
  assert.equal(e.matchesPrefix('{"a": [1, tx'), false);
  // Half of a multi-byte character is a live prefix; a byte that cannot continue it is not.
  const bytes = new TextEncoder().encode('{"é');
  assert.equal(e.matchesPrefix(bytes.subarray(0, bytes.length - 1)), true);
  assert.equal(e.matchesPrefix(Uint8Array.of(...bytes.subarray(0, bytes.length - 1), 0x41)), false);
});

test("repetition counts, any character, escapes and comments follow the README", () => {
  const e = new GrammarEngine(
    compileGrammar(String.raw`
# comment line
root ::= "a"{2,3} b? c{2} d* e+ # trailing comment
b    ::= [\x41-\x43]
c    ::= . # any character
d    ::= "\u00e9" | [\n\t]
e    ::= "\"" | "\\" | [^a-z\]]
`),
  );
  assert.equal(e.matches('aaB日x"'), true);
  assert.equal(e.matches("aa日xé\n\t!"), true);
  assert.equal(e.matches('a日x"'), false); // a{2,3}
  assert.equal(e.matches('aaaa日x"'), false);
  assert.equal(e.matches("aa日xq"), false); // [^a-z\]]
  assert.equal(e.matches("aa日x]"), false);
  assert.equal(e.matches("aa日x\\"), true);
});

test("a newline after | continues the rule; rules are separated by newlines", () => {
  const g = parseGbnf('root ::= "a" |\n  "b"\nother ::= "c"\n');
  assert.equal(g.rules.get("root")!.length, 2);
  assert.equal(g.rules.size, 2);
});

test("token items parse: <[id]>, <text>, negation", () => {
  const g = parseGbnf("root ::= <[12]> !<[13]>* <think>\n");
  assert.deepEqual(
    g.rules.get("root")![0]!.map((i) => i.kind),
    ["token", "repeat", "token"],
  );
  assert.throws(() => compileGrammar("root ::= <think>\n"), /needs a tokenizer/);
});

test("bad grammars fail with a GrammarError saying where and what", () => {
  const bad: [string, RegExp][] = [
    ['root ::= foo\n', /1:10: undefined rule `foo`/],
    ['item ::= "a"\n', /no `root` rule/],
    ['root ::= "a\n', /end of input in a string literal/],
    ['root ::= [a-\n', /character/],
    ['root ::= ( "a"\n', /expecting \)/],
    ['root ::= "\\q"\n', /unknown escape \\q/],
    ['root ::= * "a"\n', /preceding item/],
    ['root ::= "a"{3,2}\n', /maximum is below the minimum/],
    ['root ::= "a"\nroot ::= "b"\n', /defined twice/],
    ['root ::= root "a" | "b"\n', /left recursion in rule `root`/],
    ['root ::= x\nx ::= "(" x ")"\n', /can never finish/],
    ['root "a"\n', /expecting ::=/],
  ];
  for (const [text, re] of bad) {
    assert.throws(() => compileGrammar(text), (e: unknown) => e instanceof GrammarError && re.test(e.message), `for ${JSON.stringify(text)}`);
  }
});

test("right recursion and nullable repetition run without growing stacks or looping", () => {
  const e = new GrammarEngine(compileGrammar('root ::= item*\nitem ::= ws? "x"?\nws ::= [ ]*\n'));
  assert.equal(e.matches(""), true);
  assert.equal(e.matches("  x x   xx"), true);
  let s = e.initial;
  for (let i = 0; i < 2000; i++) s = e.advance(s, "x ".charCodeAt(i % 2));
  assert.equal(e.isComplete(s), true);
  assert.ok(e.nodeCount < 50, `stack nodes stay few: ${e.nodeCount}`);
});
