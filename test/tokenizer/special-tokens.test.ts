// Special tokens: splitting on their texts, BOS/EOS flags, per-model attributes and end of generation.
// Expected ids come from llama.cpp (via node-llama-cpp) on the same vocab files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createTokenizer, TokenAttr } from "../../src/tokenizer/index.ts";
import { vocabTokenizer } from "./helpers.ts";

test("llama-spm: control tokens are recognised only with parseSpecial; each is followed by a dummy-prefix space", async () => {
  const tok = await vocabTokenizer("llama-spm");
  const text = "<s>Hello</s> world<unk>";
  assert.deepEqual(tok.encode(text, { addSpecial: false, parseSpecial: true }), [1, 15043, 2, 29871, 3186, 0]);
  assert.deepEqual(tok.encode(text, { addSpecial: false }), [529, 29879, 29958, 10994, 829, 29879, 29958, 3186, 29966, 2960, 29958]);
  assert.equal(tok.decode([1, 15043, 2, 29871, 3186, 0]), " Hello  world");
  assert.equal(tok.decode([1, 15043, 2, 29871, 3186, 0], { renderSpecial: true }), "<s> Hello</s>  world<unk>");
});

test("addSpecial follows add_bos / add_eos (BERT always frames with [CLS] ... [SEP])", async () => {
  const spm = await vocabTokenizer("llama-spm");
  assert.deepEqual(spm.encode("Hello"), [1, 15043]);
  assert.deepEqual(spm.encode("Hello", { addSpecial: false }), [15043]);
  assert.deepEqual(spm.encode(""), [1]);
  const gpt2 = await vocabTokenizer("gpt-2");
  assert.equal(gpt2.addBos, false);
  assert.deepEqual(gpt2.encode("Hello"), [15496]);
  const bert = await vocabTokenizer("bert-bge");
  assert.deepEqual(bert.encode("[CLS] Hello, WORLD! [SEP] naïve café", { addSpecial: false, parseSpecial: true }),
    [101, 7592, 1010, 2088, 999, 102, 15743, 7668]);
  assert.deepEqual(bert.encode("hello"), [101, 7592, 102]);
});

test("phi-3: special tokens strip the whitespace after them (llama.cpp's per-model attribute)", async () => {
  const tok = await vocabTokenizer("phi-3");
  const text = "<|user|>\nHi there<|end|>\n<|assistant|>  Hello";
  assert.deepEqual(tok.encode(text, { addSpecial: false, parseSpecial: true }), [32010, 6324, 727, 32007, 32001, 15043]);
  assert.ok(tok.tokenAttr(32010) & TokenAttr.RSTRIP);
  assert.equal(tok.decode([32010, 6324, 727, 32007, 32001, 15043], { renderSpecial: true }), "<|user|> Hi there<|end|><|assistant|> Hello");
});

test("end of generation: eos, plus end-of-turn tokens found by their text", async () => {
  const phi3 = await vocabTokenizer("phi-3");
  assert.equal(phi3.eos, 32000);
  assert.equal(phi3.eot, 32007); // "<|end|>", not named in the metadata
  assert.ok(phi3.isEndOfGeneration(32000) && phi3.isEndOfGeneration(32007));
  assert.ok(!phi3.isEndOfGeneration(32001));
  const gpt2 = await vocabTokenizer("gpt-2");
  assert.ok(gpt2.isEndOfGeneration(50256));
});

// A tiny hand-made vocabulary to pin down the rules without a model file.
function tinySpm(extra: Record<string, unknown> = {}) {
  const tokens = ["<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab", "▁ab", "<|im_end|>", "<tool>", "<|im_start|>"];
  const types = [2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4, 3];
  const scores = [0, 0, 0, -1, -2, -2, -1.5, -1, -0.5, 0, 0, 0];
  return createTokenizer(new Map<string, unknown>([
    ["tokenizer.ggml.model", "llama"],
    ["tokenizer.ggml.tokens", tokens],
    ["tokenizer.ggml.scores", Float32Array.from(scores)],
    ["tokenizer.ggml.token_type", Int32Array.from(types)],
    ...Object.entries(extra),
  ]));
}

test("a token named like an end-of-turn marker becomes a control token and ends generation", () => {
  const tok = tinySpm();
  assert.equal(tok.eot, 9);
  assert.ok(tok.tokenAttr(9) & TokenAttr.CONTROL);
  assert.ok(tok.isEndOfGeneration(9) && tok.isEndOfGeneration(2));
  assert.deepEqual(tok.encode("ab<|im_end|>", { addSpecial: false, parseSpecial: true }), [8, 9]);
});

test("user-defined tokens are split out even without parseSpecial; control tokens are not", () => {
  const tok = tinySpm();
  assert.deepEqual(tok.encode("ab<tool>ab", { addSpecial: false }), [8, 10, 8]);
  const plain = tok.encode("<|im_start|>", { addSpecial: false });
  assert.ok(!plain.includes(11));
  assert.deepEqual(tok.encode("<|im_start|>", { addSpecial: false, parseSpecial: true }), [11]);
});

test("metadata flags override the defaults: add_space_prefix, add_bos_token, add_eos_token, special ids", () => {
  const tok = tinySpm({
    "tokenizer.ggml.add_space_prefix": false,
    "tokenizer.ggml.add_bos_token": false,
    "tokenizer.ggml.add_eos_token": true,
    "tokenizer.ggml.eos_token_id": 9,
    "tokenizer.ggml.padding_token_id": 4294967295, // out of range: ignored, as llama.cpp does
  });
  assert.deepEqual(tok.encode("ab"), [7, 9]);
  assert.equal(tok.decode([8]), " ab"); // no dummy prefix to strip
  assert.equal(tok.addBos, false);
  assert.equal(tok.addEos, true);
});

test("characters outside the vocabulary fall back to the unknown token when there are no byte tokens", () => {
  const tok = tinySpm();
  assert.deepEqual(tok.encode("ac", { addSpecial: false }), [6, 0]);
});
