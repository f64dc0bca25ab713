// `mimo convert` from Hugging Face folders written by the test (test/helpers/hf-model.ts), checked
// by two independent oracles:
//   (a) a plain float64 forward pass written from the transformers modeling code (rotate_half
//       RoPE on the unpermuted q/k weights, the config's eps and theta) over the checkpoint's own
//       tensors gives the logits mimo computes on the converted GGUF. F32 output, mimo's
//       reference backend with an f32 KV cache: max |Δ logit| <= 1e-4 (measured 1e-6 to 4e-6
//       with logits up to ~40); a wrong permutation, norm, eps or theta moves them by > 1e-2.
//   (b) llama.cpp (node-llama-cpp) loads the converted GGUF and agrees with mimo on it: the
//       criteria of the oracle suite (test/helpers/oracle-suite.ts) over 16 greedy steps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadModel } from "../../src/index.ts";
import { writeGGUF } from "../../src/format/gguf-writer.ts";
import { NodeDirectory, NodeFileSink, openGGUFFile, writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { getQuantTraits } from "../../src/quant/traits.ts";
import { convertHuggingFace } from "../../src/tools/convert-hf.ts";
import { CHAT_TEMPLATE, hfConfig, hfForward, safetensorsBytes, SPECIAL, writeHfModel, type HfModelSpec, type HfTensor } from "../helpers/hf-model.ts";
import { llamaCppGreedyTrace, llamaCppTokenize } from "../helpers/llama-cpp-oracle.ts";
import { sentencePieceModelBytes } from "../helpers/sentencepiece.ts";
import { readMetadata, readVocabVectors, VOCAB_DIR } from "../tokenizer/helpers.ts";
import { logSoftmax } from "../helpers/oracle-suite.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const root = tempDir("mimo-convert-hf-");
const base = { dim: 64, ffnDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300, seed: 11 } as const;

const CASES: { label: string; spec: HfModelSpec }[] = [
  { label: "llama, untied, one file, F32, attention biases", spec: { ...base, arch: "llama", tied: false, dtype: "F32", attentionBias: true } },
  { label: "qwen2, tied, 3 shards, BF16", spec: { ...base, arch: "qwen2", tied: true, dtype: "BF16", shards: 3 } },
  { label: "qwen3, untied, 2 shards, F16, head_dim 32", spec: { ...base, arch: "qwen3", tied: false, dtype: "F16", shards: 2, headDim: 32, eps: 1e-5, ropeTheta: 1e6 } },
  { label: "mimo with an MTP layer, tied, 2 shards, F32", spec: { ...base, arch: "mimo", tied: true, dtype: "F32", shards: 2 } },
  { label: "llama, Llama 3 rope scaling", spec: { ...base, arch: "llama", tied: true, dtype: "F32", ropeTheta: 500000, ropeScaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } } },
  { label: "llama, linear rope scaling", spec: { ...base, arch: "llama", tied: false, dtype: "F32", ropeScaling: { type: "linear", factor: 2 } } },
];

const TOKENS = [5, 100, 200, 33, 260, 7, 8, 9, 120, 45];

async function convert(dir: string, out: string, outType: number | "auto", warnings: string[] = []): Promise<void> {
  const conv = await convertHuggingFace(new NodeDirectory(dir), { outType, onWarning: (m) => warnings.push(m) });
  try {
    await writeGGUFFile(out, { metadata: conv.metadata, tensors: conv.tensors }, { overwrite: true });
  } finally {
    await conv.close();
  }
}

for (const { label, spec } of CASES) {
  test(`${label}: mimo on the converted GGUF gives the transformers-semantics logits`, async () => {
    const dir = join(root, label.replace(/[^a-z0-9]+/gi, "-"));
    const tensors = writeHfModel(dir, spec);
    const out = `${dir}.gguf`;
    await convert(dir, out, GGMLType.F32);
    const model = await loadModel(out, { backend: "reference", kvCacheType: "f32" });
    try {
      const ours = model.evaluate(TOKENS, { allLogits: true });
      const ref = hfForward(spec, tensors, TOKENS);
      let maxDiff = 0;
      ref.forEach((row, p) => row.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - ours[p * spec.vocabSize + i]!)))));
      assert.ok(maxDiff <= 1e-4, `max |Δ logit| ${maxDiff}`);
      assert.equal(model.config.nLayers, spec.nLayers);
      assert.equal(model.config.nMtpLayers, spec.arch === "mimo" ? 1 : 0);
    } finally {
      await model.dispose();
    }
    const f = await openGGUFFile(out);
    try {
      const md = f.metadata;
      const a = spec.arch;
      assert.equal(md.get("general.architecture"), a);
      assert.equal(md.get(`${a}.attention.layer_norm_rms_epsilon`), Math.fround(spec.eps ?? 1e-6));
      assert.equal(md.get(`${a}.rope.freq_base`), spec.ropeTheta ?? 10000);
      assert.equal(md.get("general.file_type"), 0);
      assert.equal(f.tensors.some((t) => t.name === "output.weight"), !spec.tied);
      const tokens = md.get("tokenizer.ggml.tokens") as string[];
      assert.equal(tokens.length, spec.vocabSize);
      assert.equal(md.get("tokenizer.chat_template"), CHAT_TEMPLATE);
      assert.equal(md.get("tokenizer.ggml.eos_token_id"), tokens.indexOf(a === "llama" ? SPECIAL.eos : SPECIAL.imEnd));
      assert.equal(md.get("tokenizer.ggml.add_bos_token"), a === "llama");
      if (a === "llama") assert.equal(md.get("tokenizer.ggml.bos_token_id"), tokens.indexOf(SPECIAL.bos));
      if (spec.headDim) assert.equal(md.get(`${a}.attention.key_length`), spec.headDim);
      const rs = spec.ropeScaling;
      assert.equal(f.tensors.some((t) => t.name === "rope_freqs.weight"), rs?.rope_type === "llama3");
      if (rs?.type === "linear") assert.deepEqual([md.get("llama.rope.scaling.type"), md.get("llama.rope.scaling.factor")], ["linear", 2]);
      if (a === "mimo") await checkMtpTensors(f, tensors, spec);
    } finally {
      await f.source.close();
    }
  });
}

/** MiMo's MTP layer: numbered after the main layers; eh_proj = input_proj with the halves swapped (embedding half first). */
async function checkMtpTensors(f: Awaited<ReturnType<typeof openGGUFFile>>, tensors: readonly HfTensor[], spec: HfModelSpec): Promise<void> {
  const hf = new Map(tensors.map((t) => [t.name, t.values]));
  const read = async (name: string) => {
    const t = f.tensor(name);
    const bytes = await f.source.read(t.offset, t.byteSize);
    return new Float32Array(bytes.slice().buffer);
  };
  const L = spec.nLayers;
  assert.equal(f.metadata.get("mimo.block_count"), L + 1);
  assert.equal(f.metadata.get("mimo.nextn_predict_layers"), 1);
  const d = spec.dim;
  const proj = hf.get("model.mtp_layers.0.input_proj.weight")!; // [d, 2d]: columns 0..d-1 take hnorm(h), d..2d-1 take enorm(e)
  const eh = await read(`blk.${L}.nextn.eh_proj.weight`);
  for (let r = 0; r < d; r++) {
    for (let c = 0; c < d; c++) {
      assert.equal(eh[r * 2 * d + c], proj[r * 2 * d + d + c], `eh_proj row ${r}, embedding column ${c}`);
      assert.equal(eh[r * 2 * d + d + c], proj[r * 2 * d + c], `eh_proj row ${r}, hidden column ${c}`);
    }
  }
  assert.deepEqual(await read(`blk.${L}.nextn.enorm.weight`), hf.get("model.mtp_layers.0.token_layernorm.weight"));
  assert.deepEqual(await read(`blk.${L}.nextn.hnorm.weight`), hf.get("model.mtp_layers.0.hidden_layernorm.weight"));
  assert.deepEqual(await read(`blk.${L}.nextn.shared_head_norm.weight`), hf.get("model.mtp_layers.0.final_layernorm.weight"));
  assert.deepEqual(await read(`blk.${L}.attn_q.weight`), hf.get("model.mtp_layers.0.self_attn.q_proj.weight"));
  assert.deepEqual(await read(`blk.${L}.ffn_down.weight`), hf.get("model.mtp_layers.0.mlp.down_proj.weight"));
}

/** llama.cpp on `oraclePath` vs mimo on `path`: teacher-forced distributions and greedy tokens, as the oracle suite checks them. */
async function agreeWithLlamaCpp(path: string, oraclePath: string, diag: (m: string) => void): Promise<void> {
  const prompt = [5, 100, 200, 33];
  const steps = 16;
  const trace = await llamaCppGreedyTrace(oraclePath, prompt, steps);
  const model = await loadModel(path);
  try {
    const V = model.config.vocabSize;
    const all = model.evaluate([...prompt, ...trace.slice(0, -1).map((s) => s.token)], { allLogits: true });
    const diffs = trace.map((step, s) => {
      const ours = logSoftmax(all.subarray((prompt.length - 1 + s) * V, (prompt.length + s) * V));
      let d = 0;
      let best = 0;
      for (let t = 0; t < V; t++) {
        if (step.logProbs[t]! > -20) d = Math.max(d, Math.abs(ours[t]! - step.logProbs[t]!));
        if (ours[t]! > ours[best]!) best = t;
      }
      if (step.margin > 2 * d + 1e-4) assert.equal(best, step.token, `step ${s}: mimo picks ${best}, llama.cpp ${step.token}`);
      return d;
    });
    const sorted = [...diffs].sort((a, b) => a - b);
    diag(`max |Δ log p| ${sorted[steps - 1]!.toExponential(1)}, median ${sorted[steps >> 1]!.toExponential(1)}`);
    assert.ok(sorted[steps - 1]! <= 0.15, `max |Δ log p| ${sorted[steps - 1]}`);
    assert.ok(sorted[steps >> 1]! <= 2e-2, `median |Δ log p| ${sorted[steps >> 1]}`);
  } finally {
    await model.dispose();
  }
}

for (const arch of ["llama", "qwen2", "qwen3"] as const) {
  test(`${arch}: llama.cpp loads the converted GGUF (default F16) and agrees with mimo`, async (t) => {
    const spec = CASES.find((c) => c.spec.arch === arch)!.spec;
    const dir = join(root, `oracle-${arch}`);
    writeHfModel(dir, spec);
    const out = `${dir}.gguf`;
    await convert(dir, out, "auto");
    const f = await openGGUFFile(out);
    assert.equal(f.tensor("blk.0.attn_q.weight").type, spec.dtype === "BF16" ? GGMLType.BF16 : GGMLType.F16);
    assert.equal(f.tensor("blk.0.attn_norm.weight").type, GGMLType.F32);
    await f.source.close();
    await agreeWithLlamaCpp(out, out, (m) => t.diagnostic(m));
  });
}

test("mimo: llama.cpp runs the main path (as Qwen2, converted from the same checkpoint without MTP) and agrees with mimo's file", async (t) => {
  const spec = CASES.find((c) => c.spec.arch === "mimo")!.spec;
  const dir = join(root, "oracle-mimo");
  const tensors = writeHfModel(dir, spec);
  const asQwen2 = join(root, "oracle-mimo-as-qwen2");
  mkdirSync(asQwen2, { recursive: true });
  const config = hfConfig({ ...spec, arch: "qwen2" });
  writeFileSync(join(asQwen2, "config.json"), JSON.stringify(config));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(dir, f), join(asQwen2, f));
  writeFileSync(join(asQwen2, "model.safetensors"), safetensorsBytes(tensors.filter((x) => !x.name.startsWith("model.mtp_layers."))));
  await convert(dir, `${dir}.gguf`, GGMLType.Q8_0);
  await convert(asQwen2, `${asQwen2}.gguf`, GGMLType.Q8_0);
  await agreeWithLlamaCpp(`${dir}.gguf`, `${asQwen2}.gguf`, (m) => t.diagnostic(m));
});

test("straight to a quant type: Q8_0 matrices; rows that are not whole K-quant blocks fall back to F16 with a warning", async () => {
  const spec = CASES[1]!.spec;
  const dir = join(root, "quant");
  const tensors = writeHfModel(dir, spec);
  await convert(dir, `${dir}-q8.gguf`, GGMLType.Q8_0);
  const f = await openGGUFFile(`${dir}-q8.gguf`);
  try {
    assert.equal(f.metadata.get("general.file_type"), 7);
    for (const t of f.tensors) assert.equal(t.type, t.shape.length === 2 ? GGMLType.Q8_0 : GGMLType.F32, t.name);
    // The bytes are Q8_0's quantizer applied to the checkpoint's values.
    const q = f.tensor("blk.1.ffn_up.weight");
    const bytes = await f.source.read(q.offset, q.byteSize);
    const src = tensors.find((x) => x.name === "model.layers.1.mlp.up_proj.weight")!.values;
    const expected = new Uint8Array(bytes.byteLength);
    const rowBytes = bytes.byteLength / spec.ffnDim;
    for (let r = 0; r < spec.ffnDim; r++) getQuantTraits(GGMLType.Q8_0).quantizeRow(src, r * spec.dim, expected, r * rowBytes, spec.dim);
    assert.deepEqual(bytes, expected);
  } finally {
    await f.source.close();
  }
  const warnings: string[] = [];
  await convert(dir, `${dir}-q4k.gguf`, GGMLType.Q4_K, warnings);
  const k = await openGGUFFile(`${dir}-q4k.gguf`);
  assert.equal(k.tensor("blk.0.attn_q.weight").type, GGMLType.F16);
  assert.equal(k.metadata.get("general.file_type"), 14);
  await k.source.close();
  assert.ok(warnings.some((w) => /blk\.0\.attn_q\.weight: rows of 64 are not whole Q4_K blocks of 256; written as F16/.test(w)), warnings.join("\n"));
});

// ---- bad input ---------------------------------------------------------------------------------

function badDir(name: string, spec: HfModelSpec = CASES[3]!.spec): string {
  const dir = join(root, `bad-${name}`);
  writeHfModel(dir, spec);
  return dir;
}
const conv = (dir: string) => convertHuggingFace(new NodeDirectory(dir));

test("a corrupt safetensors header is refused naming the file", async () => {
  const dir = badDir("header", CASES[0]!.spec);
  const file = join(dir, "model.safetensors");
  const bytes = readFileSync(file);
  bytes.set(new TextEncoder().encode("\u0000garbage"), 8); // the JSON header no longer parses
  writeFileSync(file, bytes);
  await assert.rejects(conv(dir), /model\.safetensors: header is not valid JSON .*corrupt safetensors file/);
  new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(0, 1n << 40n, true);
  writeFileSync(file, bytes);
  await assert.rejects(conv(dir), /model\.safetensors: header length 1099511627776 is impossible for a file of \d+ bytes/);
});

test("a dtype or shape that disagrees with config.json is refused naming tensor, file and field", async () => {
  const dir = badDir("dtype");
  const cfgPath = join(dir, "config.json");
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, torch_dtype: "bfloat16" }));
  await assert.rejects(conv(dir), /model-00001-of-00002\.safetensors: tensor "model\.embed_tokens\.weight" is F32, but config\.json says torch_dtype "bfloat16" \(BF16\)/);
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, intermediate_size: 96 }));
  await assert.rejects(conv(dir), /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[128, 64\], but config\.json \(hidden_size 64, intermediate_size 96, .*\) implies \[96, 64\]/);
});

test("a missing shard is refused naming it and a tensor it should hold", async () => {
  const dir = badDir("shard");
  rmSync(join(dir, "model-00002-of-00002.safetensors"));
  await assert.rejects(conv(dir), /model-00002-of-00002\.safetensors: is missing \(model\.safetensors\.index\.json puts \d+ tensors there, e\.g\. "model\.[^"]+"\)/);
});

test("an unknown architecture or an unknown tensor is refused", async () => {
  const dir = badDir("arch");
  const cfgPath = join(dir, "config.json");
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, architectures: ["GPT2LMHeadModel"] }));
  await assert.rejects(conv(dir), /config\.json: architecture "GPT2LMHeadModel" is not supported \(supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MiMoForCausalLM\)/);
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, architectures: ["Qwen2ForCausalLM"] }));
  await assert.rejects(conv(dir), /cannot map \d+ checkpoint tensor\(s\) to qwen2 GGUF tensors: "model\.mtp_layers\.0\./);
  await assert.rejects(conv(join(root, "nowhere")), /nowhere: has no config\.json: not a Hugging Face model directory/);
});

test("an output that exists is refused; a failed write or an unwritable folder leaves nothing under the final name", async () => {
  const dir = badDir("output", CASES[0]!.spec);
  const out = join(root, "kept.gguf");
  writeFileSync(out, "the user's file");
  await assert.rejects(NodeFileSink.create(out), /kept\.gguf: already exists; refusing to overwrite it/);
  assert.equal(readFileSync(out, "utf8"), "the user's file");

  // The checkpoint shrinks after its header was read: reading fails in the middle of the write.
  const c = await conv(dir);
  truncateSync(join(dir, "model.safetensors"), 4096);
  const partial = join(root, "partial.gguf");
  const sink = await NodeFileSink.create(partial);
  await assert.rejects(writeGGUF(sink, { metadata: c.metadata, tensors: c.tensors }), /unexpected end of file/);
  await sink.abort();
  await c.close();
  assert.equal(existsSync(partial), false);
  assert.deepEqual(readdirSync(root).filter((n) => n.includes("partial")), []);

  // A folder that cannot be written (as root, whose permissions are not checked: a path through a file).
  const locked = join(root, "locked");
  mkdirSync(locked);
  chmodSync(locked, 0o500);
  const target = process.getuid?.() === 0 ? join(out, "model.gguf") : join(locked, "model.gguf");
  await assert.rejects(NodeFileSink.create(target), /model\.gguf: cannot write here: /);
  assert.deepEqual(readdirSync(locked), []);
});

test("the chat template comes from tokenizer_config.json, else chat_template.jinja; a list gives the default and named templates", async () => {
  const spec = CASES[1]!.spec;
  const dir = join(root, "templates");
  writeHfModel(dir, spec);
  const cfgPath = join(dir, "tokenizer_config.json");
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  const metadataOf = async () => {
    const c = await conv(dir);
    await c.close();
    return new Map(c.metadata.map(([k, v]) => [k, v.value]));
  };
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, chat_template: undefined }));
  writeFileSync(join(dir, "chat_template.jinja"), "{{ messages[0].content }}");
  assert.equal((await metadataOf()).get("tokenizer.chat_template"), "{{ messages[0].content }}");
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, chat_template: [{ name: "default", template: "D" }, { name: "tool_use", template: "T" }] }));
  const md = await metadataOf();
  assert.equal(md.get("tokenizer.chat_template"), "D");
  assert.equal(md.get("tokenizer.chat_template.tool_use"), "T");
  assert.deepEqual(md.get("tokenizer.chat_templates"), ["tool_use"]);
});

test("a SentencePiece tokenizer.model (Llama 2's vocabulary) converts to llama.cpp's vocabulary, and both engines tokenize as llama.cpp's test vectors say", async () => {
  const vocab = await readMetadata(`${VOCAB_DIR}/ggml-vocab-llama-spm.gguf`);
  const tokens = vocab.get("tokenizer.ggml.tokens") as string[];
  const scores = vocab.get("tokenizer.ggml.scores") as Float32Array;
  const types = vocab.get("tokenizer.ggml.token_type") as Int32Array;
  const pieces = tokens.map((piece, i) => ({ piece, score: scores[i]!, type: types[i]! }));
  const spec: HfModelSpec = { ...base, arch: "llama", tied: true, dtype: "F16", vocabSize: tokens.length, sentencePiece: sentencePieceModelBytes(pieces) };
  const dir = join(root, "spm");
  writeHfModel(dir, spec);
  const out = `${dir}.gguf`;
  await convert(dir, out, "auto");
  const md = await readMetadata(out);
  assert.equal(md.get("tokenizer.ggml.model"), "llama");
  assert.deepEqual(md.get("tokenizer.ggml.tokens"), tokens);
  assert.deepEqual(md.get("tokenizer.ggml.scores"), scores);
  assert.deepEqual(md.get("tokenizer.ggml.token_type"), types);
  assert.deepEqual([md.get("tokenizer.ggml.bos_token_id"), md.get("tokenizer.ggml.eos_token_id"), md.get("tokenizer.ggml.unknown_token_id")], [1, 2, 0]);
  assert.equal(md.get("tokenizer.ggml.add_bos_token"), true);
  const vectors = readVocabVectors("llama-spm").slice(0, 20);
  const model = await loadModel(out);
  try {
    for (const { text, ids } of vectors) assert.deepEqual(model.tokenize(text, { addSpecial: false }), ids, `mimo: ${JSON.stringify(text)}`);
  } finally {
    await model.dispose();
  }
  const theirs = await llamaCppTokenize(out, vectors.map((v) => v.text));
  vectors.forEach(({ text, ids }, i) => assert.deepEqual(theirs[i], ids, `llama.cpp: ${JSON.stringify(text)}`));
});
