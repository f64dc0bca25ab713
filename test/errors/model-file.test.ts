// The model-file error hierarchy: every class is a ModelFileError, exported from the public
// entry, and every message is one printable, bounded line however corrupt the file's strings are.
import { test } from "node:test";
import assert from "node:assert/strict";
import { escapeText, oneLine, quote } from "../../src/errors/model-file.ts";
import * as api from "../../src/index.ts";

test("the error classes form one hierarchy under ModelFileError and are exported", () => {
  const { ModelFileError, TokenizerError, UnsupportedModelError, UnsupportedTensorTypeError } = api;
  const t = new TokenizerError("m.gguf", "no tokens");
  const u = new UnsupportedModelError("m.gguf", "head size 6");
  const x = new UnsupportedTensorTypeError(77, "unknown(77)", ["F32"], "w", "m.gguf");
  for (const e of [t, u, x]) assert.ok(e instanceof ModelFileError && e instanceof Error);
  assert.ok(x instanceof UnsupportedModelError);
  assert.deepEqual([t.name, u.name, x.name], ["TokenizerError", "UnsupportedModelError", "UnsupportedTensorTypeError"]);
  assert.equal(t.message, "m.gguf: no tokens");
  assert.equal(t.file, "m.gguf");
  assert.equal(t.problem, "no tokens");
  assert.equal(x.message, 'm.gguf: tensor "w" has type unknown(77), which mimo does not support (supported: F32); use a GGUF file quantized to one of the supported types');
});

test("quote() escapes control and invisible characters and cuts long strings", () => {
  assert.equal(quote("blk.0.attn_q.weight"), '"blk.0.attn_q.weight"');
  assert.equal(quote("a\0b\nc\x1b[31m"), '"a\\0b\\nc\\x1b[31m"');
  assert.equal(quote('say "hi" \\ ok'), '"say \\"hi\\" \\\\ ok"');
  assert.equal(quote("\u202eevil\u200b"), '"\\u{202e}evil\\u{200b}"');
  assert.equal(quote("\ud800x"), '"\\u{d800}x"');
  assert.equal(quote("▁the 日本"), '"▁the 日本"'); // printable non-ASCII stays as it is
  const long = quote("\0".repeat(200_000));
  assert.ok(long.length < 250, long);
  assert.match(long, /^"(\\0){48}…" \(200000 chars\)$/);
  assert.equal(escapeText("tab\there"), "tab\\there");
});

test("a ModelFileError is one printable line of bounded length, whatever its parts", () => {
  const e = new api.ModelFileError("/tmp/a\nb.gguf", `bad ${"\0".repeat(100_000)} thing\r\nsecond line`);
  assert.ok(!/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(e.message), e.message.slice(0, 200));
  assert.ok(e.message.length <= 700, String(e.message.length));
  assert.ok(e.message.startsWith("/tmp/a\\nb.gguf: bad \\0"));
  const longPath = `/${"d".repeat(5000)}/model.gguf`;
  const p = new api.ModelFileError(longPath, "x");
  assert.ok(p.message.length < 200 && p.message.endsWith("/model.gguf: x"), p.message);
  assert.equal(oneLine("ok"), "ok");
});
