// Ids back to bytes and text: pieces, whole-sequence decode, and the streaming decoder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cleanSpaces } from "../../src/tokenizer/detokenize.ts";
import type { Tokenizer } from "../../src/tokenizer/index.ts";
import { lcg, vocabTokenizer } from "./helpers.ts";

const MIXED = "Hi 🦙 and 你好, Привет! 👨‍👩‍👧 ok 🇺🇸 Cửa Việt កាន់តែ ✅";

function streamAll(tok: Tokenizer, ids: readonly number[], renderSpecial = false): string[] {
  const stream = tok.createStreamDecoder({ renderSpecial });
  const chunks = ids.map((id) => stream.push(id));
  chunks.push(stream.flush());
  return chunks;
}

for (const name of ["llama-spm", "gpt-2", "deepseek-llm"]) {
  test(`${name}: streaming emoji and CJK split across byte tokens never emits U+FFFD and equals decode()`, async () => {
    const tok = await vocabTokenizer(name);
    const ids = tok.encode(MIXED, { addSpecial: false });
    const chunks = streamAll(tok, ids);
    for (const c of chunks) assert.ok(!c.includes("\uFFFD"), `chunk ${JSON.stringify(c)}`);
    assert.ok(chunks.some((c) => c === ""), "some token ended mid-character and was held back");
    assert.equal(chunks.join(""), tok.decode(ids));
    assert.equal(tok.decode(ids), MIXED);
  });
}

test("llama-spm: 🦙 is four byte tokens; the text appears with the fourth", async () => {
  const tok = await vocabTokenizer("llama-spm");
  const ids = tok.encode("🦙", { addSpecial: false });
  assert.deepEqual(ids.slice(1).map((id) => tok.tokenText(id)), ["<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"]);
  assert.deepEqual([...tok.tokenToPiece(ids[1]!)], [0xf0]);
  const stream = tok.createStreamDecoder();
  assert.equal(tok.tokenText(ids[0]!), "\u2581"); // the dummy prefix, stripped when decoding
  assert.deepEqual(ids.map((id) => stream.push(id)), ["", "", "", "", "🦙"]);
  assert.equal(stream.flush(), "");
});

test("a stream cut in the middle of a character flushes U+FFFD", async () => {
  const tok = await vocabTokenizer("llama-spm");
  const ids = tok.encode("🦙", { addSpecial: false });
  const stream = tok.createStreamDecoder();
  for (const id of ids.slice(0, 4)) assert.equal(stream.push(id), "");
  assert.equal(stream.flush(), "\uFFFD");
});

test("random texts stream to exactly decode()'s text, including space clean-up", async () => {
  const rnd = lcg(42);
  const bits = ["a", "Hello", " ", "  ", " ,", " .", " ?", " !", " '", "'", " 's", " 're", " 've", " 'm", " 't", "é", "🦙", "你", "\n", "!"];
  for (const name of ["gpt-2", "llama-spm", "bert-bge"]) {
    const tok = await vocabTokenizer(name);
    for (let n = 0; n < 300; n++) {
      let text = "";
      const len = 1 + Math.floor(rnd() * 10);
      for (let i = 0; i < len; i++) text += bits[Math.floor(rnd() * bits.length)];
      const ids = tok.encode(text, { addSpecial: n % 2 === 0 });
      assert.equal(streamAll(tok, ids).join(""), tok.decode(ids), `${name}: ${JSON.stringify(text)}`);
      assert.equal(streamAll(tok, ids, true).join(""), tok.decode(ids, { renderSpecial: true }), `${name}: ${JSON.stringify(text)}`);
    }
  }
});

test("tokenToPiece gives raw bytes: ▁ as a space, byte-level chars as bytes, control tokens only on request", async () => {
  const spm = await vocabTokenizer("llama-spm");
  const bytes = (t: Tokenizer, id: number, renderSpecial = false) => new TextDecoder().decode(t.tokenToPiece(id, { renderSpecial }));
  assert.equal(bytes(spm, 278), " the"); // "▁the"
  assert.equal(bytes(spm, 1), "");
  assert.equal(bytes(spm, 1, true), "<s>");
  const gpt2 = await vocabTokenizer("gpt-2");
  assert.equal(gpt2.tokenText(262), "Ġthe");
  assert.equal(bytes(gpt2, 262), " the");
  assert.equal(bytes(gpt2, 50256), ""); // <|endoftext|>
  assert.equal(bytes(gpt2, 50256, true), "<|endoftext|>");
});

test("decode drops the dummy-prefix space of the first piece only (llama.cpp detokenize)", async () => {
  const spm = await vocabTokenizer("llama-spm");
  assert.equal(spm.decode(spm.encode("Hello world", { addSpecial: false })), "Hello world");
  assert.equal(spm.decode(spm.encode("Hello world")), " Hello world"); // BOS first: its empty piece takes the strip
  assert.equal(spm.decode(spm.encode("Hello world"), { renderSpecial: true }), "<s> Hello world");
  assert.equal(spm.decode([]), "");
});

// Literal port of llama.cpp's three in-place clean-up loops (detokenize, clean_spaces), as the reference.
function llamaCppCleanSpaces(s: string): string {
  const t = s.split("");
  let total = t.length;
  const n1 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < n1; i++) {
    const x = t[i]!;
    if (t[i - 1] === " " && (x === "?" || x === "!" || x === "." || x === ",")) total--;
    t[total++] = x;
  }
  const n2 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < n2; i++) {
    const x = t[i]!;
    if (x === "'" && i + 1 < n2 && t[i - 1] === " " && t[i + 1] === " ") {
      total--;
      t[++i] = "\0";
    }
    t[total++] = x;
  }
  const n3 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < n3; i++) {
    const x = t[i]!;
    if (t[i - 1] === " " && x === "'" && i + 1 < n3) {
      const x1 = t[i + 1]!;
      if (x1 === "s" || x1 === "m") total--;
      else if (x1 !== "t" && x1 !== "d" && i + 2 < n3) {
        const x2 = t[i + 2]!;
        if ((x1 === "r" || x1 === "v") && x2 === "e") total--;
      }
    }
    t[total++] = x;
  }
  return t.slice(0, total).join("");
}

test("space clean-up matches llama.cpp's passes on random strings", () => {
  const rnd = lcg(7);
  const alphabet = " ',.?!srmvetdx";
  for (let n = 0; n < 20000; n++) {
    let s = "";
    const len = Math.floor(rnd() * 12);
    for (let i = 0; i < len; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    assert.equal(cleanSpaces(s), llamaCppCleanSpaces(s), JSON.stringify(s));
  }
});

test("gpt-2 decode cleans spaces before punctuation and contractions like llama.cpp", async () => {
  const tok = await vocabTokenizer("gpt-2");
  const ids = tok.encode("Hello , world . I don 't know ' s it 're<|endoftext|>", { addSpecial: false, parseSpecial: true });
  assert.deepEqual(ids, [15496, 837, 995, 764, 314, 836, 705, 83, 760, 705, 264, 340, 705, 260, 50256]); // llama.cpp's ids
  assert.equal(tok.decode(ids), "Hello, world. I don 't know's it're");
  assert.equal(tok.decode(ids, { renderSpecial: true }), "Hello, world. I don 't know's it're<|endoftext|>");
});
