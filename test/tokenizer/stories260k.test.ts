// The bundled stories260K model's SentencePiece tokenizer against llama2.c-derived goldens.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createTokenizer } from "../../src/tokenizer/index.ts";
import { readMetadata, TESTDATA } from "./helpers.ts";

const golden = JSON.parse(readFileSync(`${TESTDATA}/stories260K/stories260K.golden.json`, "utf8")) as {
  tok512_encode: Array<{ text: string; ids: number[] }>;
  runs: Array<{ name: string; prompt: string; ids: number[]; text: string }>;
};
const tok = createTokenizer(await readMetadata(`${TESTDATA}/stories260K/stories260K.gguf`));

test("encodes like llama2.c's run.c: BOS, dummy-prefix space, byte fallback, best-score merges", () => {
  for (const { text, ids } of golden.tok512_encode) {
    assert.deepEqual(tok.encode(text), ids, `input ${JSON.stringify(text)}`);
  }
});

test("knows its special tokens: BOS 1, EOS 2 ends generation, BOS is added", () => {
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.bos, 1);
  assert.equal(tok.eos, 2);
  assert.equal(tok.eot, undefined);
  assert.equal(tok.addBos, true);
  assert.equal(tok.addEos, false);
  assert.ok(tok.isEndOfGeneration(2));
  assert.ok(!tok.isEndOfGeneration(1));
});

test("decodes the golden runs to the golden texts", () => {
  for (const run of golden.runs) {
    // Without BOS the dummy-prefix space of the first piece is dropped...
    assert.equal(tok.decode(run.ids.slice(1)), run.text, run.name);
    // ...after BOS llama.cpp keeps it (run.c strips it when printing).
    assert.equal(tok.decode(run.ids), " " + run.text, run.name);
  }
});

test("streams the golden runs token by token to the same text", () => {
  for (const run of golden.runs) {
    const stream = tok.createStreamDecoder();
    let text = "";
    for (const id of run.ids.slice(1)) text += stream.push(id);
    text += stream.flush();
    assert.equal(text, run.text, run.name);
  }
});
