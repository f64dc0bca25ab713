// The bundled stories260K model against the upstream llama2.c goldens and against llama.cpp.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadModel, defaultModelPath, openGGUFFile } from "../../src/index.ts";
import { convertLlama2c } from "../../src/tools/convert-llama2c.ts";
import { writeGGUF } from "../../src/format/gguf-writer.ts";
import { MemoryByteSink } from "../../src/format/byte-source.ts";
import { STORIES_DIR } from "../helpers/testdata.ts";
import { llamaCppGenerate } from "../helpers/llama-cpp-oracle.ts";

const golden = JSON.parse(readFileSync(`${STORIES_DIR}/stories260K.golden.json`, "utf8")) as {
  runs: { name: string; prompt: string; steps: number; temperature: number; ids: number[]; text: string }[];
};
const greedyRun = golden.runs.find((r) => r.name === "greedy_empty_prompt")!;
const goldenText = readFileSync(`${STORIES_DIR}/golden.greedy.txt`, "utf8").replace(/\n$/, "");

test("the bundled model is exactly what mimo convert makes of the llama2.c checkpoint", async () => {
  const conv = convertLlama2c(
    new Uint8Array(readFileSync(`${STORIES_DIR}/stories260K.bin`)),
    new Uint8Array(readFileSync(`${STORIES_DIR}/tok512.bin`)),
    { checkpoint: "stories260K.bin", tokenizer: "tok512.bin", modelName: "stories260K" },
  );
  const sink = new MemoryByteSink();
  await writeGGUF(sink, conv);
  assert.deepEqual(sink.bytes(), new Uint8Array(readFileSync(defaultModelPath())));
});

test("the converted tensors and vocabulary equal those of the stories260K GGUF made by another converter", async () => {
  const ours = await openGGUFFile(defaultModelPath());
  const theirs = await openGGUFFile(`${STORIES_DIR}/stories260K.gguf`);
  try {
    for (const t of ours.tensors) {
      assert.deepEqual(await ours.readTensorBytes(t.name), await theirs.readTensorBytes(t.name), t.name);
    }
    // Theirs stores a copy of the embedding as output.weight; ours ties them.
    assert.deepEqual(await theirs.readTensorBytes("output.weight"), await ours.readTensorBytes("token_embd.weight"));
    for (const key of ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"]) {
      assert.deepEqual(ours.metadata.get(key), theirs.metadata.get(key), key);
    }
  } finally {
    await ours.close();
    await theirs.close();
  }
});

test("greedy generation from BOS reproduces llama2.c's golden story word for word", async () => {
  const model = await loadModel(defaultModelPath());
  try {
    const r = await model.complete("", { temperature: 0, maxTokens: 256 });
    assert.deepEqual([1, ...r.tokens], greedyRun.ids);
    assert.equal(r.text, goldenText);
    assert.equal(r.finishReason, "length");
  } finally {
    await model.dispose();
  }
});

test('greedy generation after "Zoo" gives the llama2.c64 verification text', async () => {
  const model = await loadModel(defaultModelPath());
  try {
    const zoo = golden.runs.find((r) => r.prompt === "Zoo")!;
    const promptIds = model.tokenize("Zoo");
    assert.deepEqual(promptIds, [1, 410, 469, 347]);
    const r = await model.complete("Zoo", { temperature: 0, maxTokens: zoo.ids.length - promptIds.length });
    assert.deepEqual([...promptIds, ...r.tokens], zoo.ids);
    assert.equal("Zoo" + r.text, zoo.text.replace(/\n$/, ""));
    assert.ok(("Zoo" + r.text).startsWith("Zoo was a little girl named Lily."));
  } finally {
    await model.dispose();
  }
});

for (const [kvCacheType, tolerance] of [["f32", 1e-4], ["f16", 2e-2]] as const) {
  // The reference is a float32 numpy llama2.c: with an f32 KV cache we match it to float rounding;
  // with llama.cpp's default f16 cache (keys, values and attention weights rounded to f16) logits
  // move by up to ~1e-2 (measured 9.5e-3 on logits of magnitude ~10).
  test(`logits of the first 8 greedy steps match the f32 reference within ${tolerance} (${kvCacheType} KV cache)`, async () => {
    const ref = new Float32Array(new Uint8Array(readFileSync(`${STORIES_DIR}/stories260K.greedy.logits-f32le-8x512.bin`)).buffer);
    const model = await loadModel(defaultModelPath(), { kvCacheType });
    try {
      const logits = model.evaluate(greedyRun.ids.slice(0, 8), { allLogits: true });
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(logits[i]! - ref[i]!));
      assert.ok(maxDiff < tolerance, `max |logit difference| ${maxDiff}`);
    } finally {
      await model.dispose();
    }
  });
}

test("llama.cpp and mimo generate the same 256 greedy tokens on the testdata stories260K GGUF", async () => {
  const path = `${STORIES_DIR}/stories260K.gguf`;
  const model = await loadModel(path);
  try {
    const ours = await model.complete([1], { temperature: 0, maxTokens: 256 });
    const theirs = await llamaCppGenerate(path, [1], 256, 512);
    assert.deepEqual(ours.tokens, theirs);
  } finally {
    await model.dispose();
  }
});

const quantGolden = JSON.parse(readFileSync(`${STORIES_DIR}/derived/quant_golden.json`, "utf8")) as {
  variants: Record<string, { file: string; agree_chars: number; llamacpp_text: string; deq_text: string }>;
};

for (const [name, v] of Object.entries(quantGolden.variants)) {
  test(`the ${name} variant loads and its greedy story agrees with llama.cpp for at least ${v.agree_chars} characters`, async () => {
    const model = await loadModel(`${STORIES_DIR}/derived/${v.file}`);
    try {
      const r = await model.complete("", { temperature: 0, maxTokens: 256 });
      let agree = 0;
      while (agree < r.text.length && r.text[agree] === v.llamacpp_text[agree]) agree++;
      assert.ok(agree >= v.agree_chars, `agrees with llama.cpp for ${agree} characters, expected >= ${v.agree_chars}`);
    } finally {
      await model.dispose();
    }
  });
}
