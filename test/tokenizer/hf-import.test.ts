// Importing a Hugging Face tokenizer.json into GGUF tokenizer metadata, the way llama.cpp's
// convert_hf_to_gguf.py writes it; the result must tokenize like llama.cpp's qwen2 / llama-bpe vocabs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createTokenizer, tokenizerJsonToGGUFMetadata, TokenizerError, TokenType } from "../../src/tokenizer/index.ts";
import { hfMetadata, hfTokenizer, readVocabVectors } from "./helpers.ts";

const cases = [
  { vectors: "qwen2", json: "qwen3" },
  { vectors: "deepseek-r1-qwen", json: "qwen3" },
  { vectors: "llama-bpe", json: "llama3" },
] as const;

for (const c of cases) {
  test(`${c.vectors}: test vectors pass with the vocabulary imported from ${c.json}'s tokenizer.json`, () => {
    const tok = hfTokenizer(c.json);
    for (const { text, ids } of readVocabVectors(c.vectors)) {
      assert.deepEqual(tok.encode(text, { addSpecial: false, parseSpecial: false }), ids, `input ${JSON.stringify(text)}`);
    }
  });
}

test("Qwen metadata has llama.cpp's keys, value kinds and token types", () => {
  const md = hfMetadata("qwen3");
  assert.equal(md.get("tokenizer.ggml.model"), "gpt2");
  assert.equal(md.get("tokenizer.ggml.pre"), "qwen2");
  const tokens = md.get("tokenizer.ggml.tokens") as string[];
  const types = md.get("tokenizer.ggml.token_type") as Int32Array;
  assert.ok(Array.isArray(tokens) && types instanceof Int32Array && types.length === tokens.length);
  assert.equal(tokens.length, 151669);
  const merges = md.get("tokenizer.ggml.merges") as string[];
  assert.equal(merges[0], "Ġ Ġ"); // the [a, b] pair form became "a b"
  const typeOf = (t: string) => types[tokens.indexOf(t)];
  assert.equal(typeOf("<|im_start|>"), TokenType.CONTROL); // special: true
  assert.equal(typeOf("<|fim_prefix|>"), TokenType.CONTROL); // special: false, but looks special
  assert.equal(typeOf("<think>"), TokenType.USER_DEFINED);
  assert.equal(typeOf("hello"), TokenType.NORMAL);
  assert.equal(md.get("tokenizer.ggml.eos_token_id"), tokens.indexOf("<|endoftext|>"));
});

test("Llama 3 metadata is llama-bpe with BOS added by default", () => {
  const tok = hfTokenizer("llama3");
  assert.equal(tok.pre, "llama-bpe");
  assert.equal(tok.bos, 128000);
  assert.equal(tok.eos, 128001);
  assert.equal(tok.eot, 128009);
  assert.equal(tok.addBos, true);
  assert.deepEqual(tok.encode("Hello world"), [128000, 9906, 1917]);
  assert.ok(tok.isEndOfGeneration(128009) && tok.isEndOfGeneration(128001) && !tok.isEndOfGeneration(9906));
});

// Expected ids below were produced by llama.cpp (through node-llama-cpp) on a GGUF written from this metadata.
test("Qwen: control tokens are parsed only on request; user-defined tokens always", () => {
  const tok = hfTokenizer("qwen3");
  const text = "<|im_start|>user\nHi<|im_end|>\n<think>\nok</think>";
  assert.deepEqual(tok.encode(text, { addSpecial: false, parseSpecial: true }), [151644, 872, 198, 13048, 151645, 198, 151667, 198, 562, 151668]);
  assert.deepEqual(tok.encode(text, { addSpecial: false }),
    [27, 91, 318, 4906, 91, 29, 872, 198, 13048, 27, 91, 318, 6213, 91, 397, 151667, 198, 562, 151668]);
  assert.equal(tok.addBos, false);
  assert.equal(tok.eot, 151645);
  // llama.cpp also stops on the FIM pad / repo / file-separator tokens
  for (const id of [151643, 151645, 151662, 151663, 151664]) assert.ok(tok.isEndOfGeneration(id), `id ${id}`);
  assert.equal(tok.decode([151644, 872, 198, 13048, 151645]), "user\nHi");
  assert.equal(tok.decode([151644, 872, 198, 13048, 151645], { renderSpecial: true }), "<|im_start|>user\nHi<|im_end|>");
});

test("Llama 3 chat header tokens parse as single ids", () => {
  const tok = hfTokenizer("llama3");
  assert.deepEqual(tok.encode("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", { addSpecial: false, parseSpecial: true }),
    [128006, 882, 128007, 271, 13347, 128009]);
});

function tinyTokenizerJson(merges: unknown[]): Record<string, unknown> {
  const vocab: Record<string, number> = { a: 0, b: 1, c: 2, "Ġ": 3, ab: 4, abc: 5, "Ġa": 6 };
  return {
    model: { type: "BPE", vocab, merges },
    added_tokens: [
      { id: 7, content: "<|end|>", special: true },
      { id: 8, content: "<tool>", special: false },
      { id: 9, content: "▁sp", special: false },
    ],
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, use_regex: true },
    decoder: { type: "ByteLevel" },
  };
}

test("merges in either form (\"a b\" strings or [a, b] pairs) give the same metadata", () => {
  const fromStrings = tokenizerJsonToGGUFMetadata(tinyTokenizerJson(["a b", "ab c", "Ġ a"]));
  const fromPairs = tokenizerJsonToGGUFMetadata(tinyTokenizerJson([["a", "b"], ["ab", "c"], ["Ġ", "a"]]));
  assert.deepEqual(fromPairs.get("tokenizer.ggml.merges"), fromStrings.get("tokenizer.ggml.merges"));
  assert.equal(fromStrings.get("tokenizer.ggml.pre"), "gpt-2");
  // a space inside a pair is written as U+0120, as gguf-py does
  assert.deepEqual(tokenizerJsonToGGUFMetadata(tinyTokenizerJson([["a b", "c"]])).get("tokenizer.ggml.merges"), ["aĠb c"]);
  const tok = createTokenizer(fromPairs);
  assert.deepEqual(tok.encode("abc a"), [5, 6]);
  assert.equal(tok.decode([5, 6]), "abc a");
});

test("added tokens: special -> control, others -> user-defined with ▁ written as a space", () => {
  const md = tokenizerJsonToGGUFMetadata(tinyTokenizerJson(["a b"]));
  const tokens = md.get("tokenizer.ggml.tokens") as string[];
  const types = md.get("tokenizer.ggml.token_type") as Int32Array;
  assert.deepEqual([...types.slice(7)], [TokenType.CONTROL, TokenType.USER_DEFINED, TokenType.USER_DEFINED]);
  assert.equal(tokens[9], " sp");
});

test("vocab_size from config.json pads with unused [PADn] tokens; tokenizer_config.json sets BOS/EOS", () => {
  const md = tokenizerJsonToGGUFMetadata(tinyTokenizerJson(["a b"]), {
    modelConfig: { vocab_size: 12 },
    tokenizerConfig: { eos_token: "<|end|>", bos_token: { content: "<|end|>" }, add_bos_token: true },
  });
  const tokens = md.get("tokenizer.ggml.tokens") as string[];
  assert.deepEqual(tokens.slice(10), ["[PAD10]", "[PAD11]"]);
  assert.equal((md.get("tokenizer.ggml.token_type") as Int32Array)[11], TokenType.UNUSED);
  assert.equal(md.get("tokenizer.ggml.eos_token_id"), 7);
  assert.equal(md.get("tokenizer.ggml.bos_token_id"), 7);
  assert.equal(md.get("tokenizer.ggml.add_bos_token"), true);
});

test("an unrecognised pre-tokenizer regex is an error that names it (or can be overridden)", () => {
  const json = tinyTokenizerJson(["a b"]);
  json.pre_tokenizer = { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { Regex: "\\w+" } }, { type: "ByteLevel", use_regex: false }] };
  assert.throws(() => tokenizerJsonToGGUFMetadata(json), (e: unknown) =>
    e instanceof TokenizerError && /unknown pre-tokenizer regex "\\\\w\+"/.test(e.message) && /qwen2/.test(e.message));
  assert.equal(tokenizerJsonToGGUFMetadata(json, { pre: "gpt-2" }).get("tokenizer.ggml.pre"), "gpt-2");
});

test("a tokenizer.json that is not byte-level BPE is rejected with what it is", () => {
  assert.throws(
    () => tokenizerJsonToGGUFMetadata({ model: { type: "WordPiece", vocab: {} }, decoder: { type: "WordPiece" } }),
    (e: unknown) => e instanceof TokenizerError && /only byte-level BPE/.test(e.message) && /"WordPiece"/.test(e.message),
  );
});
