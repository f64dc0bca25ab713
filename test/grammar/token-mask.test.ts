// The token mask against the byte-level parser: for random texts drawn from each grammar, at every
// token boundary, the mask allows exactly the tokens whose bytes the parser accepts after the
// prefix (every allowed token leads to a live prefix, no live prefix is masked off), and the end
// token exactly when the text is complete. Exhaustive on stories260K's 512-token vocabulary;
// on the 151k-token Qwen vocabulary at sampled steps, plus the true next token at every step.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { GrammarEngine, DEAD, jsonSchemaToGbnf, randomText, TokenGrammar, vocabTrieOf } from "../../src/grammar/index.ts";
import { SeededRandom } from "../../src/sampling/rng.ts";
import { createTokenizer, type Tokenizer } from "../../src/tokenizer/index.ts";
import { readGGUF } from "../../src/format/gguf-reader.ts";
import { NodeFileSource } from "../../src/platform/node-file.ts";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { hfTokenizer } from "../tokenizer/helpers.ts";
import { exampleGrammar, exampleGrammars, schemaCorpus } from "./helpers.ts";

async function storiesTokenizer(): Promise<Tokenizer> {
  const f = await readGGUF(await NodeFileSource.open(`${STORIES_DIR}/stories260K.gguf`));
  try {
    return createTokenizer(f.metadata);
  } finally {
    await f.close();
  }
}
void readFile;

const grammars: { name: string; gbnf: string }[] = [
  ...exampleGrammars.map((n) => ({ name: n, gbnf: exampleGrammar(n) })),
  ...schemaCorpus.map((s) => ({ name: `schema ${s.name}`, gbnf: jsonSchemaToGbnf(s.schema) })),
];

/** Splits text bytes into vocabulary tokens, longest match first (any valid split will do). */
function splitIntoTokens(tg: TokenGrammar, bytes: Uint8Array): number[] {
  const trie = tg.trie;
  const out: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    let best = -1;
    let bestLen = 0;
    // Walk the trie along the text.
    let node = -1;
    for (let d = 0; at + d < bytes.length; d++) {
      const b = bytes[at + d]!;
      // Children of `node` are the nodes after it (preorder) with depth d+1, up to its subtree end.
      let child = node < 0 ? 0 : node + 1;
      const end = node < 0 ? trie.size : trie.end[node]!;
      let found = -1;
      while (child < end) {
        if (trie.byte[child] === b) {
          found = child;
          break;
        }
        child = trie.end[child]!;
      }
      if (found < 0) break;
      node = found;
      if (trie.token[node]! >= 0) {
        best = trie.token[node]!;
        bestLen = d + 1;
      }
    }
    assert.ok(best >= 0, `no token starts with byte ${bytes[at]}`);
    out.push(best);
    at += bestLen;
  }
  return out;
}

function checkStep(tg: TokenGrammar, ref: GrammarEngine, refState: number, state: number, tokens: Iterable<number>, where: string): void {
  const mask = tg.mask(state);
  const complete = ref.isComplete(refState);
  for (const t of tokens) {
    const allowed = ((mask[t >>> 5]! >>> (t & 31)) & 1) === 1;
    const piece = tg.trie.pieces[t]!;
    let expected: boolean;
    if (tg.trie.endTokens.includes(t)) expected = complete;
    else if (piece.length === 0) expected = false;
    else expected = ref.advanceBytes(refState, piece) !== DEAD;
    if (allowed !== expected) {
      assert.fail(`${where}: token ${t} ${JSON.stringify(new TextDecoder().decode(piece))} is ${allowed ? "allowed" : "masked"} but the parser says ${expected ? "live" : "dead"}`);
    }
  }
}

async function differential(tok: Tokenizer, label: string, textsPerGrammar: number, exhaustiveSteps: number): Promise<void> {
  const rng = new SeededRandom(1234);
  const vocab = tok.vocabSize;
  const all = Array.from({ length: vocab }, (_, i) => i);
  let steps = 0;
  for (const { name, gbnf } of grammars) {
    const tg = TokenGrammar.fromGbnf(gbnf, tok, { precompute: false });
    const ref = new GrammarEngine(tg.grammar); // a separate parser: no shared caches
    for (let k = 0; k < textsPerGrammar; k++) {
      const bytes = randomText(ref, { random: () => rng.next(), softLimit: 40 });
      const tokens = splitIntoTokens(tg, bytes);
      let state = tg.initial;
      let refState = ref.initial;
      let exhaustive = exhaustiveSteps;
      for (let i = 0; i <= tokens.length; i++) {
        const where = `${label} ${name} text ${JSON.stringify(new TextDecoder().decode(bytes))} step ${i}`;
        if (exhaustive > 0 && (vocab <= 4096 || rng.next() < 0.3 || i === tokens.length)) {
          checkStep(tg, ref, refState, state, all, where);
          exhaustive--;
        } else {
          // The true next token, the end tokens and 64 random ones.
          const sample = [...tg.trie.endTokens, ...Array.from({ length: 64 }, () => Math.floor(rng.next() * vocab))];
          if (i < tokens.length) sample.push(tokens[i]!);
          checkStep(tg, ref, refState, state, sample, where);
        }
        steps++;
        if (i === tokens.length) break;
        const t = tokens[i]!;
        state = tg.next(state, t);
        refState = ref.advanceBytes(refState, tg.trie.pieces[t]!);
        assert.notEqual(state, DEAD, where);
      }
      assert.equal(tg.engine.isComplete(state), true);
    }
  }
  assert.ok(steps > 100);
}

test("token mask = byte-level parser, exhaustively, on stories260K's vocabulary (all example grammars and corpus schemas)", async () => {
  await differential(await storiesTokenizer(), "stories260K", 3, Infinity);
});

test("token mask = byte-level parser on the 151k-token Qwen vocabulary (sampled steps exhaustive)", async () => {
  await differential(hfTokenizer("qwen3"), "qwen", 1, 2);
});

test("end-of-generation tokens are allowed exactly when the grammar is complete", () => {
  const tok = hfTokenizer("qwen3");
  const tg = TokenGrammar.fromGbnf('root ::= "ab" "c"?\n', tok);
  const eos = tg.trie.endTokens;
  assert.ok(eos.length > 0);
  const isSet = (m: Uint32Array, t: number) => ((m[t >>> 5]! >>> (t & 31)) & 1) === 1;
  let s = tg.initial;
  for (const t of eos) assert.equal(isSet(tg.mask(s), t), false);
  s = tg.next(s, tok.encode("ab", { addSpecial: false })[0]!);
  for (const t of eos) assert.equal(isSet(tg.mask(s), t), true, "complete after ab");
  s = tg.next(s, tok.encode("c", { addSpecial: false })[0]!);
  assert.equal(tg.engine.isFinished(s), true);
  assert.equal(tg.next(s, eos[0]!) !== DEAD, true);
});

test("UTF-8 across token boundaries: a character split over byte tokens is followed byte by byte", () => {
  const tok = hfTokenizer("qwen3");
  const tg = TokenGrammar.fromGbnf('root ::= "日" [本日]\n', tok);
  const trie = vocabTrieOf(tok);
  // A single-byte token holding the first byte of 日 (E6 97 A5) must be allowed, one with a wrong byte not.
  const firstByte = trie.pieces.findIndex((p) => p.length === 1 && p[0] === 0xe6);
  const wrongByte = trie.pieces.findIndex((p) => p.length === 1 && p[0] === 0xe5);
  assert.ok(firstByte >= 0 && wrongByte >= 0);
  assert.equal(tg.isAllowed(tg.initial, firstByte), true);
  assert.equal(tg.isAllowed(tg.initial, wrongByte), false);
  const s = tg.next(tg.initial, firstByte);
  const second = trie.pieces.findIndex((p) => p.length === 1 && p[0] === 0x97);
  assert.equal(tg.isAllowed(s, second), true);
});
