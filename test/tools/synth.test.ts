// `mimo synth` presets: real model shapes with deterministic random weights, a real tokenizer, and
// files that both mimo and llama.cpp load and agree on. Also `mimo bench`'s output shape.
// Nothing here is timed pass/fail, and nothing is downloaded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getLlama } from "node-llama-cpp";
import { loadModel } from "../../src/index.ts";
import { tensorDataSize } from "../../src/format/gguf-writer.ts";
import { ReferenceBackend } from "../../src/backends/reference.ts";
import { openGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { llama3RopeFactors, presetNames, presets, presetSpec } from "../../src/tools/presets.ts";
import { syntheticModel, typeForRow } from "../../src/tools/synthetic-model.ts";
import { writePresetModel } from "../../src/cli/synth.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
const dir = tempDir("mimo-synth-");
const mimo = (...args: string[]) => spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", timeout: 120_000 });

const weightBytes = (preset: string, type: number, layers?: number) =>
  syntheticModel(presetSpec(preset, { type, layers })).tensors.reduce((s, t) => s + tensorDataSize(t.type, t.shape, t.name), 0);

test("full-size presets have the published shapes' weight sizes", () => {
  // llama.cpp's Q4_0 / Q8_0 files of these shapes (token_embd and output in the same type).
  assert.equal(Math.round(weightBytes("qwen2-0.5b", GGMLType.Q4_0) / 1e6), 278);
  assert.equal(Math.round(weightBytes("qwen2-0.5b", GGMLType.Q8_0) / 1e6), 525);
  assert.equal(Math.round(weightBytes("llama-3.2-1b", GGMLType.Q4_0) / 1e6), 695);
  const mimoSpec = syntheticModel(presetSpec("mimo-7b", { type: GGMLType.Q4_0 }));
  assert.ok(mimoSpec.tensors.some((t) => t.name === "blk.36.nextn.eh_proj.weight"), "MiMo-7B's MTP layer follows its 36 layers");
  assert.ok(mimoSpec.tensors.some((t) => t.name === "output.weight"), "MiMo-7B's output is not tied");
  assert.ok(!syntheticModel(presetSpec("mimo-7b", { type: GGMLType.Q4_0, noMtp: true })).tensors.some((t) => t.name.includes("nextn")));
  for (const name of presetNames) assert.ok(presets[name].source.length > 0);
});

test("stories presets: llama2.c's published shapes, tied classifier", () => {
  // karpathy/llama2.c README: dim / n_layers / n_heads / n_kv_heads / max context; hidden_dim from
  // model.py: multiple_of(32) * ceil(int(2 * 4 * dim / 3) / 32).
  const hidden = (dim: number) => 32 * Math.ceil(Math.floor((2 * 4 * dim) / 3) / 32);
  for (const [name, dim, layers, heads, ctx] of [["stories15m", 288, 6, 6, 256], ["stories42m", 512, 8, 8, 1024], ["stories110m", 768, 12, 12, 1024]] as const) {
    const p = presets[name];
    assert.deepEqual(
      [p.hidden_size, p.num_hidden_layers, p.num_attention_heads, p.num_key_value_heads, p.max_position_embeddings, p.intermediate_size, p.vocab_size],
      [dim, layers, heads, heads, ctx, hidden(dim), 32000],
      name,
    );
    const spec = syntheticModel(presetSpec(name, { type: GGMLType.Q8_0 }));
    assert.ok(!spec.tensors.some((t) => t.name === "output.weight"), `${name}: the classifier is the token embedding`);
    assert.equal(spec.tensors.filter((t) => t.name.endsWith("attn_q.weight")).length, layers);
  }
  assert.deepEqual([presets.stories15m.intermediate_size, presets.stories42m.intermediate_size, presets.stories110m.intermediate_size], [768, 1376, 2048]);
});

test("a stories15M-shaped Q8_0 file: Llama 2's vocabulary, loads in mimo and llama.cpp, same greedy tokens", async () => {
  const path = join(dir, "stories15m-Q8_0.gguf");
  const r = await writePresetModel({ preset: "stories15m", type: "Q8_0", output: path, progress: false });
  assert.equal(r.tokenizer, "real");
  const prompt = "Once upon a time";
  const model = await loadModel(path, { threads: 2, contextSize: 64 });
  let ours: number[], tokens: number[];
  try {
    tokens = model.tokenize(prompt);
    assert.deepEqual(tokens, [1, 9038, 2501, 263, 931]); // BOS "▁Once" "▁upon" "▁a" "▁time" in Llama 2's vocabulary
    ours = (await model.complete(tokens, { temperature: 0, maxTokens: 8, ignoreEos: true })).tokens;
  } finally {
    await model.dispose();
  }
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false } as never);
  const lm = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    assert.deepEqual([...lm.tokenize(prompt)], tokens.slice(1));
    const ctx = await lm.createContext({ contextSize: 64, threads: 1, flashAttention: false });
    try {
      const seq = ctx.getSequence();
      const theirs: number[] = [];
      for await (const t of seq.evaluate(tokens as never, { temperature: 0, yieldEogToken: true } as never)) {
        theirs.push(t as number);
        if (theirs.length >= 8) break;
      }
      seq.dispose();
      assert.deepEqual(ours, theirs);
    } finally {
      await ctx.dispose();
    }
  } finally {
    await lm.dispose();
  }
});

test("K-quant rows that are not whole 256-blocks fall back as llama.cpp's quantizer does", () => {
  assert.equal(typeForRow(GGMLType.Q4_K, 896), GGMLType.Q5_0);
  assert.equal(typeForRow(GGMLType.Q6_K, 896), GGMLType.Q8_0);
  assert.equal(typeForRow(GGMLType.Q3_K, 896), GGMLType.Q4_0); // llama.cpp of node-llama-cpp 3.21.1 (older ones: IQ4_NL)
  assert.equal(typeForRow(GGMLType.Q4_K, 4864), GGMLType.Q4_K);
  const spec = syntheticModel(presetSpec("qwen2-0.5b", { type: GGMLType.Q4_K, layers: 1 }));
  const type = (n: string) => spec.tensors.find((t) => t.name === n)!.type;
  assert.equal(type("token_embd.weight"), GGMLType.Q5_0);
  assert.equal(type("blk.0.ffn_down.weight"), GGMLType.Q4_K);
  assert.equal(type("blk.0.attn_norm.weight"), GGMLType.F32);
});

test("Llama 3.2 RoPE factors follow llama.cpp's rope_freqs", () => {
  const f = llama3RopeFactors(presets["llama-3.2-1b"])!;
  assert.equal(f.length, 32);
  assert.equal(f[0], 1); // high frequencies unscaled
  assert.equal(f[31], 32); // low frequencies scaled by the factor
  for (let i = 1; i < f.length; i++) assert.ok(f[i]! >= f[i - 1]!);
});

test("a 2-layer Qwen2-0.5B-shaped Q4_0 file: real tokenizer, loads in mimo and llama.cpp, same greedy tokens", async () => {
  const path = join(dir, "qwen2-0.5b-Q4_0-2l.gguf");
  const r = await writePresetModel({ preset: "qwen2-0.5b", type: "Q4_0", output: path, layers: 2, progress: false });
  assert.equal(r.tokenizer, "real");
  // Same seed, same bytes.
  const again = join(dir, "again.gguf");
  await writePresetModel({ preset: "qwen2-0.5b", type: "Q4_0", output: again, layers: 2, progress: false });
  assert.ok(readFileSync(path).equals(readFileSync(again)));

  const f = await openGGUFFile(path);
  try {
    assert.equal(f.metadata.get("tokenizer.ggml.pre"), "qwen2");
    assert.equal((f.metadata.get("tokenizer.ggml.tokens") as string[]).length, 151936); // padded from the tokenizer's 151669
    assert.deepEqual(f.tensor("blk.0.ffn_up.weight").shape, [896, 4864]);
  } finally {
    await f.close();
  }

  const prompts = [[14990, 1879, 13], [785, 3974, 13876, 38835]];
  const model = await loadModel(path, { backend: new ReferenceBackend(), contextSize: 64 });
  const ours: number[][] = [];
  try {
    assert.deepEqual(model.tokenize("Hello world"), [9707, 1879]);
    for (const p of prompts) ours.push((await model.complete(p, { temperature: 0, maxTokens: 4, ignoreEos: true })).tokens);
  } finally {
    await model.dispose();
  }

  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false } as never);
  const lm = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    const ctx = await lm.createContext({ contextSize: 64, threads: 1, flashAttention: false });
    try {
      assert.deepEqual([...lm.tokenize("Hello world")], [9707, 1879]);
      for (const [i, p] of prompts.entries()) {
        const seq = ctx.getSequence();
        const theirs: number[] = [];
        for await (const t of seq.evaluate(p as never, { temperature: 0, yieldEogToken: true } as never)) {
          theirs.push(t as number);
          if (theirs.length >= 4) break;
        }
        await seq.clearHistory();
        seq.dispose();
        assert.deepEqual(ours[i], theirs, `prompt ${i}`);
      }
    } finally {
      await ctx.dispose();
    }
  } finally {
    await lm.dispose();
  }
});

test("mimo synth CLI: refuses to overwrite, names unknown presets", () => {
  const path = join(dir, "exists.gguf");
  writeFileSync(path, "x");
  const r = mimo("synth", "--preset", "qwen2-0.5b", "--layers", "1", "-o", path);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /already exists/);
  const u = mimo("synth", "--preset", "gpt-5", "-o", join(dir, "u.gguf"));
  assert.equal(u.status, 1);
  assert.match(u.stderr, /unknown preset "gpt-5" \(presets: qwen2-0.5b, qwen2-1.5b, llama-3.2-1b, qwen3-0.6b, stories15m, stories42m, stories110m, mimo-7b\)/);
});

test("mimo bench -o json reports every test with min/median/max, load time and peak RSS", () => {
  const path = join(dir, "bench.gguf");
  const w = mimo("synth", "--preset", "qwen3-0.6b", "--layers", "1", "--type", "Q8_0", "-o", path);
  assert.equal(w.status, 0, w.stderr);
  const r = mimo("bench", "-m", path, "-t", "1", "-p", "8", "-n", "2", "-r", "2", "-o", "json", "-q");
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(r.stdout) as { threads: number; loadMs: number; peakRssBytes: number; weightBytesPerToken: number; tests: { name: string; stat: { min: number; median: number; max: number; values: number[] } }[] }[];
  assert.equal(results.length, 1);
  assert.deepEqual(results[0]!.tests.map((t) => t.name), ["pp8", "tg2", "ttft8"]);
  for (const t of results[0]!.tests) {
    assert.equal(t.stat.values.length, 2);
    assert.ok(t.stat.min <= t.stat.median && t.stat.median <= t.stat.max && t.stat.min > 0);
  }
  assert.ok(results[0]!.loadMs > 0 && results[0]!.peakRssBytes > 0 && results[0]!.weightBytesPerToken > 0);
});

test("mimo bench --profile: every op of a decode step by kind, rows adding up to the time per token", () => {
  const r = mimo("bench", "-m", join(fileURLToPath(new URL("../../models/", import.meta.url)), "stories260K.gguf"), "--profile", "-t", "1,2", "-n", "8", "-r", "1", "-o", "json", "-q");
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(r.stdout) as { threads: number; backend: string; usPerToken: number; plainTokPerS: number; workerBusyUs: number[]; rows: { label: string; us: number; calls?: number }[] }[];
  assert.deepEqual(results.map((x) => x.threads), [1, 2]);
  for (const x of results) {
    const labels = x.rows.map((row) => row.label);
    // On 2 threads q/k/v, RoPE and attention are one fused dispatch (each thread its own heads).
    const qkv = x.threads === 1 ? ["matmul attn_q+attn_k+attn_v", "attention", "rope"] : ["q/k/v + RoPE + attention (fused)"];
    // On 2 threads each thread applies SwiGLU to its own gate/up rows in the same dispatch.
    const ffn = x.threads === 1 ? ["matmul ffn_gate+ffn_up", "swiglu"] : ["matmul ffn_gate+ffn_up + swiglu"];
    for (const l of [...qkv, ...ffn, "matmul attn_output", "matmul ffn_down", "matmul token_embd", "rmsnorm", "residual add", "embedding rows", "sampling"]) {
      assert.ok(labels.includes(l), `t=${x.threads}: no "${l}" row in ${labels.join(", ")}`);
    }
    const calls = (l: string) => x.rows.find((row) => row.label === l)!.calls;
    assert.equal(calls(qkv[0]!), 5); // stories260K has 5 layers
    assert.equal(calls("sampling"), 1);
    // One repetition: the rows (measured and derived) add up to the measured time per token.
    const sum = x.rows.reduce((a, row) => a + row.us, 0);
    assert.ok(Math.abs(sum - x.usPerToken) < 1e-6 * x.usPerToken + 1e-9, `t=${x.threads}: rows sum to ${sum}, total ${x.usPerToken}`);
    assert.ok(x.plainTokPerS > 0);
    assert.equal(labels.includes("sync: wait for workers"), x.threads === 2);
    if (x.threads === 2) assert.equal(calls("sync: wait for workers"), 4 * 5 + 1, "4 dispatches per layer and the output's");
  }
  assert.ok(results[1]!.workerBusyUs[1]! > 0, "the worker thread reports its job time");
  // And how often it went to sleep (a count per token: each costs a wake-up later).
  const sleeps = (results[1] as unknown as { workerSleeps: number[] }).workerSleeps[1];
  assert.ok(sleeps !== undefined && sleeps >= 0, `worker sleeps per token: ${sleeps}`);
});
