// llama.cpp's tokenizer test vectors (tests/test-tokenizer-0): encode without BOS/EOS and without
// parsing special tokens must give exactly the ids in ggml-vocab-<name>.gguf.out.
import { test } from "node:test";
import assert from "node:assert/strict";
import { hasVocabGGUF, readVocabVectors, vocabTokenizer } from "./helpers.ts";

const VOCABS_WITH_GGUF = [
  "llama-spm", "phi-3", "gpt-2", "bert-bge", "deepseek-coder", "deepseek-llm", "falcon", "mpt", "refact", "starcoder",
];

for (const name of VOCABS_WITH_GGUF) {
  test(`${name}: every test vector encodes to llama.cpp's ids`, { skip: !hasVocabGGUF(name) && "vocab GGUF missing" }, async () => {
    const tok = await vocabTokenizer(name);
    const vectors = readVocabVectors(name);
    assert.equal(vectors.length, 46);
    for (const { text, ids } of vectors) {
      assert.deepEqual(tok.encode(text, { addSpecial: false, parseSpecial: false }), ids, `input ${JSON.stringify(text)}`);
    }
  });
}

// llama.cpp's tests/test-tokenizer-1-spm: every token, and every codepoint, survives
// detokenize -> tokenize -> detokenize (codepoints sampled here to keep the run short).
test("llama-spm: every token's text re-tokenizes to the same text", async () => {
  const tok = await vocabTokenizer("llama-spm");
  for (let id = 0; id < tok.vocabSize; id++) {
    const text = tok.decode([id], { renderSpecial: true });
    const again = tok.decode(tok.encode(text, { addSpecial: false, parseSpecial: true }), { renderSpecial: true });
    if (again !== text) assert.fail(`token ${id}: ${JSON.stringify(text)} came back as ${JSON.stringify(again)}`);
  }
});

test("llama-spm: codepoints round-trip through encode and decode", async () => {
  const tok = await vocabTokenizer("llama-spm");
  for (let cp = 0; cp < 0x110000; cp += cp < 0x3000 ? 1 : 61) {
    if ((cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x40000 && cp <= 0xe0000) || cp === 0x2581) continue;
    const text = String.fromCodePoint(cp);
    const again = tok.decode(tok.encode(text, { addSpecial: false, parseSpecial: true }), { renderSpecial: true });
    if (again !== text) assert.fail(`U+${cp.toString(16)} came back as ${JSON.stringify(again)}`);
  }
});
