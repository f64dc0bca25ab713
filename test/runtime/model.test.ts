// The library API end to end on the bundled model, and clear errors for bad model files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel, defaultModelPath, ModelFileError, UnsupportedTensorTypeError } from "../../src/index.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { gguf, type GGUFTypedValue } from "../../src/format/gguf.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { syntheticModel, type SyntheticModelSpec } from "../../src/tools/synthetic-model.ts";
import type { GGUFWriteSpec } from "../../src/format/gguf-writer.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-model-");

test("generate streams text pieces and token ids that add up to the result", async () => {
  const model = await loadModel(defaultModelPath());
  try {
    const it = model.generate("Once upon a time", { temperature: 0, maxTokens: 40 });
    let text = "";
    const tokens: number[] = [];
    let step = await it.next();
    while (!step.done) {
      text += step.value.text;
      if (step.value.token >= 0) tokens.push(step.value.token);
      step = await it.next();
    }
    assert.equal(step.value.text, text);
    assert.deepEqual(step.value.tokens, tokens);
    assert.equal(tokens.length, 40);
    assert.equal(model.detokenize(tokens), text);
    assert.ok(text.startsWith(", there was a little girl"), JSON.stringify(text));
    const s = step.value.stats;
    assert.equal(s.promptTokens, 5);
    assert.equal(s.generatedTokens, 40);
    assert.ok(s.generationTokensPerSecond > 0 && s.timeToFirstTokenMs > 0);
  } finally {
    await model.dispose();
  }
});

test("the same seed gives the same story; sampling differs from greedy", async () => {
  const model = await loadModel(defaultModelPath());
  try {
    const a = await model.complete("Once upon a time", { temperature: 1, seed: 42, maxTokens: 60 });
    const b = await model.complete("Once upon a time", { temperature: 1, seed: 42, maxTokens: 60 });
    const c = await model.complete("Once upon a time", { temperature: 1, seed: 43, maxTokens: 60 });
    assert.deepEqual(a.tokens, b.tokens);
    assert.notDeepEqual(a.tokens, c.tokens);
  } finally {
    await model.dispose();
  }
});

test("a reused prompt prefix is not recomputed and gives identical output", async () => {
  const model = await loadModel(defaultModelPath());
  try {
    const first = await model.complete("Once upon a time, there was a dog", { temperature: 0, maxTokens: 30 });
    const again = await model.complete("Once upon a time, there was a dog", { temperature: 0, maxTokens: 30 });
    assert.deepEqual(again.tokens, first.tokens);
    assert.equal(again.stats.promptTokensEvaluated, 1);
    const longer = await model.complete("Once upon a time, there was a dog named Max", { temperature: 0, maxTokens: 30 });
    const fresh = await loadModel(defaultModelPath());
    try {
      const ref = await fresh.complete("Once upon a time, there was a dog named Max", { temperature: 0, maxTokens: 30 });
      assert.deepEqual(longer.tokens, ref.tokens);
      assert.ok(longer.stats.promptTokensEvaluated < ref.stats.promptTokensEvaluated);
    } finally {
      await fresh.dispose();
    }
  } finally {
    await model.dispose();
  }
});

test("stop strings end generation before the stop text", async () => {
  const model = await loadModel(defaultModelPath());
  try {
    const r = await model.complete("", { temperature: 0, maxTokens: 256, stop: ["Lily."] });
    assert.equal(r.text, "Once upon a time, there was a little girl named ");
    assert.equal(r.finishReason, "stop");
  } finally {
    await model.dispose();
  }
});

test("an AbortSignal stops generation at once", async () => {
  const model = await loadModel(defaultModelPath());
  try {
    const controller = new AbortController();
    let pieces = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of model.generate("", { temperature: 0, maxTokens: 1000, ignoreEos: true, signal: controller.signal })) {
          if (++pieces === 5) controller.abort();
        }
      })(),
      (e: Error) => e.name === "AbortError",
    );
    assert.equal(pieces, 5);
    // The model stays usable after an abort.
    const r = await model.complete("", { temperature: 0, maxTokens: 3 });
    assert.equal(r.tokens.length, 3);
  } finally {
    await model.dispose();
  }
});

test("the context limit ends generation with finishReason 'context'", async () => {
  const model = await loadModel(defaultModelPath(), { contextSize: 16 });
  try {
    const r = await model.complete("Once upon a time", { temperature: 0, ignoreEos: true });
    assert.equal(r.finishReason, "context");
    assert.equal(r.tokens.length + 5, 17);
    await assert.rejects(model.complete("Once upon a time there was a big big big dog and a cat"), /the prompt has \d+ tokens, but the context holds 16/);
  } finally {
    await model.dispose();
  }
});

test("tokenize and detokenize round-trip", async () => {
  const model = await loadModel(defaultModelPath());
  try {
    const ids = model.tokenize("Hello world");
    assert.deepEqual(ids, [1, 346, 306, 414, 263, 304, 341]);
    assert.equal(model.detokenize(ids.slice(1)), "Hello world");
  } finally {
    await model.dispose();
  }
});

// ---- bad model files: one clear error naming the file and the problem ----

const small: SyntheticModelSpec = {
  arch: "llama", dim: 64, ffnDim: 128, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 300, contextLength: 64,
  weightType: GGMLType.Q8_0, seed: 3,
};

async function writeVariant(name: string, edit: (spec: GGUFWriteSpec) => GGUFWriteSpec): Promise<string> {
  const path = join(dir, name);
  await writeGGUFFile(path, edit(syntheticModel(small)), { overwrite: true });
  return path;
}

function withMeta(spec: GGUFWriteSpec, key: string, value: GGUFTypedValue | undefined): GGUFWriteSpec {
  const md = [...spec.metadata].filter(([k]) => k !== key);
  if (value) md.push([key, value]);
  return { ...spec, metadata: md };
}

test("a well-formed small synthetic model loads and generates", async () => {
  const model = await loadModel(await writeVariant("ok.gguf", (s) => s));
  const r = await model.complete([1, 5, 6], { temperature: 0, maxTokens: 5, ignoreEos: true });
  assert.equal(r.tokens.length, 5);
  await model.dispose();
});

test("bad model: missing required tensor", async () => {
  const path = await writeVariant("missing.gguf", (s) => ({ ...s, tensors: s.tensors.filter((t) => t.name !== "blk.0.ffn_up.weight") }));
  await assert.rejects(loadModel(path), (e: Error) => e instanceof ModelFileError && e.message === `${path}: required tensor "blk.0.ffn_up.weight" is missing`);
});

test("bad model: tensor of the wrong shape", async () => {
  const path = await writeVariant("shape.gguf", (s) => ({
    ...s,
    tensors: s.tensors.map((t) => (t.name === "blk.0.attn_q.weight" ? { ...t, shape: [64, 32], data: new Uint8Array((64 / 32) * 34 * 32) } : t)),
  }));
  await assert.rejects(loadModel(path), /shape\.gguf: tensor "blk\.0\.attn_q\.weight" has shape \[64, 32\], expected \[64, 64\]/);
});

test("bad model: missing required metadata key", async () => {
  const path = await writeVariant("nokey.gguf", (s) => withMeta(s, "llama.embedding_length", undefined));
  await assert.rejects(loadModel(path), /nokey\.gguf: required metadata key "llama\.embedding_length" is missing/);
  const path2 = await writeVariant("badkey.gguf", (s) => withMeta(s, "llama.block_count", gguf.str("five")));
  await assert.rejects(loadModel(path2), /badkey\.gguf: metadata "llama\.block_count" should be a number, found string "five"/);
});

test("bad model: unsupported architecture lists the supported ones", async () => {
  const path = await writeVariant("arch.gguf", (s) => withMeta(s, "general.architecture", gguf.str("rwkv6")));
  await assert.rejects(loadModel(path), /arch\.gguf: architecture "rwkv6" is not supported \(supported: llama, qwen2, qwen3, mimo\)/);
});

test("bad model: a tensor type mimo cannot compute with names the tensor and the type", async () => {
  const path = join(dir, "iq2.gguf");
  const spec = syntheticModel({ ...small, dim: 256, ffnDim: 256, nHeads: 4, nKvHeads: 2 });
  await writeGGUFFile(path, {
    ...spec,
    tensors: spec.tensors.map((t) => (t.name === "blk.0.ffn_gate.weight" ? { ...t, type: GGMLType.IQ2_XXS, data: new Uint8Array(66 * 256) } : t)),
  }, { overwrite: true });
  await assert.rejects(loadModel(path), (e: Error) => {
    assert.ok(e instanceof UnsupportedTensorTypeError && e instanceof ModelFileError);
    assert.equal(e.file, path);
    assert.ok(e.message.startsWith(`${path}: tensor "blk.0.ffn_gate.weight" has type IQ2_XXS, which mimo does not support (supported: F32, F16, BF16`), e.message);
    return true;
  });
});
