// Unsupported or broken tokenizer metadata fails with a message that names the problem.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createTokenizer, TokenizerError } from "../../src/tokenizer/index.ts";
import { vocabTokenizer } from "./helpers.ts";

const md = (entries: Record<string, unknown>) => new Map<string, unknown>(Object.entries(entries));
const bpe = (pre: string | undefined) => md({
  "tokenizer.ggml.model": "gpt2",
  ...(pre === undefined ? {} : { "tokenizer.ggml.pre": pre }),
  "tokenizer.ggml.tokens": ["a", "b", "ab"],
  "tokenizer.ggml.merges": ["a b"],
});

function throwsTokenizerError(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TokenizerError, `expected a TokenizerError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test("an unsupported tokenizer model is named, with the supported ones", () => {
  for (const model of ["t5", "rwkv", "no_vocab", "bpe-something"]) {
    throwsTokenizerError(
      () => createTokenizer(md({ "tokenizer.ggml.model": model, "tokenizer.ggml.tokens": ["a"] })),
      new RegExp(`^tokenizer model "${model}" is not supported \\(supported: llama, gpt2, bert\\)$`),
    );
  }
});

test("an unknown pre-tokenizer is named, with the supported ones", () => {
  throwsTokenizerError(() => createTokenizer(bpe("my-new-model")),
    /^unknown pre-tokenizer "my-new-model" \(tokenizer\.ggml\.pre\); supported: default, llama3, /);
  assert.throws(() => createTokenizer(bpe("my-new-model")), (e: Error) =>
    ["llama-bpe", "qwen2", "gpt-2", "deepseek-llm", "deepseek-coder", "falcon", "mpt", "starcoder", "refact"].every((p) => e.message.includes(p)));
});

test("a BPE vocabulary without a pre-tokenizer uses llama.cpp's default one", () => {
  const tok = createTokenizer(bpe(undefined));
  assert.equal(tok.pre, undefined);
  assert.deepEqual(tok.encode("ab", { addSpecial: false }), [2]);
});

test("missing model, tokens or merges are reported", () => {
  throwsTokenizerError(() => createTokenizer(md({ "tokenizer.ggml.tokens": ["a"] })), /no tokenizer\.ggml\.model/);
  throwsTokenizerError(() => createTokenizer(md({ "tokenizer.ggml.model": "llama" })), /no tokenizer\.ggml\.tokens/);
  throwsTokenizerError(() => createTokenizer(md({ "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.tokens": ["a"] })),
    /no tokenizer\.ggml\.merges/);
  throwsTokenizerError(() => createTokenizer(md({ "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": "abc" })),
    /^metadata "tokenizer\.ggml\.tokens" should be an array of strings, found the string "abc"$/);
});

test("decoding an id outside the vocabulary is a RangeError (the caller's mistake, not the file's)", async () => {
  const tok = await vocabTokenizer("gpt-2");
  assert.throws(() => tok.decode([50257]), (e: Error) => e instanceof RangeError && /token id 50257 is out of range \(vocabulary has 50257 tokens\)/.test(e.message));
  assert.throws(() => tok.tokenToPiece(-1), RangeError);
});
