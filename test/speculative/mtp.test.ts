// MiMo's MTP forward against a plain TypeScript transcription of Xiaomi's formula (vLLM / SGLang
// mimo_mtp.py), written from MiMo's side: its input_proj multiplies cat[hidden_layernorm(h),
// token_layernorm(e)], so the transcription first rebuilds MiMo's (Hugging Face ordered) input_proj
// from the file's eh_proj by swapping the column halves back, as the converter's inverse. A wrong
// half order in the engine (or a norm applied to the wrong half) fails here. Then: rollback stress
// for the MTP layer's own cache (proposals after random accept/reject patterns equal a fresh
// catch-up's).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readGGUF, type GGUFFile } from "../../src/format/gguf-reader.ts";
import { NodeFileSource, writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { getQuantTraits } from "../../src/quant/traits.ts";
import { readModelConfig, type ModelConfig } from "../../src/model/config.ts";
import { tensorName } from "../../src/model/tensors.ts";
import { loadTransformerWeights } from "../../src/model/weights.ts";
import { Transformer } from "../../src/model/transformer.ts";
import { ReferenceBackend } from "../../src/backends/reference.ts";
import { WasmBackend } from "../../src/backends/wasm/wasm-backend.ts";
import type { ComputeBackend, KvCacheType } from "../../src/compute/backend.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import { MtpProposer } from "../../src/speculative/mtp.ts";
import { SeededRandom } from "../../src/sampling/rng.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-mtp-");

async function mimoFile(type: number, name: string): Promise<string> {
  const path = join(dir, name);
  await writeGGUFFile(
    path,
    syntheticModel({ arch: "mimo", dim: 64, ffnDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 320, contextLength: 256, weightType: type, seed: 5, qkNormGain: 0.3 }),
    { overwrite: true },
  );
  return path;
}

/** Every tensor as f32 values, dequantized from the file. */
async function tensorValues(file: GGUFFile, name: string): Promise<Float32Array> {
  const t = file.tensor(name);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const bytes = await file.readTensorBytes(name);
  getQuantTraits(t.type, name).dequantizeRow(bytes, 0, out, 0, n);
  return out;
}

// ---- The plain transcription (f64 arithmetic, no kernels) ----

function rmsNorm(x: ArrayLike<number>, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return Float64Array.from({ length: x.length }, (_, i) => x[i]! * scale * w[i]!);
}

/** y = W x for a row-major [rows x cols] W (a GGUF matrix: ne0 = cols). */
function matvec(w: Float32Array, rows: number, cols: number, x: ArrayLike<number>, bias?: Float32Array): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = bias ? bias[r]! : 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c]! * x[c]!;
    y[r] = s;
  }
  return y;
}

/** NeoX RoPE (Qwen2): rotate (x[i], x[i + d/2]) of each head by pos * base^(-2i/d). */
function rope(x: Float64Array, nHeads: number, headDim: number, pos: number, base: number): void {
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(base, (-2 * i) / headDim);
      const a = h * headDim + i;
      const b = a + half;
      const x0 = x[a]!;
      const x1 = x[b]!;
      x[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
      x[b] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
    }
  }
}

/**
 * MiMo's MTP layer at positions 0..n-1: row p fuses the main model's hidden state h_p with the
 * embedding of nextTokens[p] (token p + 1), as mimo_mtp.py: inputs_embeds[positions == 0] = 0;
 * x = input_proj(cat[hidden_layernorm(h), token_layernorm(e)]); Qwen2 decoder block; final_layernorm;
 * lm_head. Returns the logits rows.
 */
async function transcription(file: GGUFFile, c: ModelConfig, hidden: Float32Array, nextTokens: readonly number[], swapHalves = true): Promise<Float64Array[]> {
  const L = c.nLayers; // the MTP layer's index in the file
  const T = (key: Parameters<typeof tensorName>[0]) => tensorValues(file, tensorName(key, key === "tokenEmbd" || key === "output" ? undefined : L));
  const dim = c.dim;
  const [embd, tokenNorm, hiddenNorm, ehProj, finalNorm] = await Promise.all([T("tokenEmbd"), T("tokenNorm"), T("hiddenNorm"), T("inputProj"), T("finalNorm")]);
  const output = file.hasTensor(tensorName("output")) ? await T("output") : embd;
  const [attnNorm, wq, wk, wv, bq, bk, bv, wo, ffnNorm, gate, up, down] = await Promise.all(
    (["attnNorm", "wq", "wk", "wv", "bq", "bk", "bv", "wo", "ffnNorm", "gate", "up", "down"] as const).map((k) => T(k)),
  );
  // MiMo's input_proj.weight [dim x 2dim], Hugging Face column order (hidden half first): the
  // file's eh_proj has the embedding half first, so the halves are swapped back.
  const inputProj = swapHalves ? new Float32Array(dim * 2 * dim) : ehProj;
  for (let r = 0; swapHalves && r < dim; r++) {
    for (let col = 0; col < dim; col++) {
      inputProj[r * 2 * dim + col] = ehProj[r * 2 * dim + dim + col]!; // hidden half
      inputProj[r * 2 * dim + dim + col] = ehProj[r * 2 * dim + col]!; // embedding half
    }
  }
  const { nHeads, nKvHeads, headDim, ffnDim } = c;
  const keys: Float64Array[] = [];
  const values: Float64Array[] = [];
  const out: Float64Array[] = [];
  for (let p = 0; p < nextTokens.length; p++) {
    const e = p === 0 ? new Float32Array(dim) : embd.subarray(nextTokens[p]! * dim, (nextTokens[p]! + 1) * dim);
    const h = hidden.subarray(p * dim, (p + 1) * dim);
    const cat = new Float64Array(2 * dim);
    cat.set(rmsNorm(h, hiddenNorm, c.normEps), 0);
    cat.set(rmsNorm(e, tokenNorm, c.normEps), dim);
    const x = matvec(inputProj, dim, 2 * dim, cat);
    // Qwen2 decoder block.
    const xn = rmsNorm(x, attnNorm, c.normEps);
    const q = matvec(wq, nHeads * headDim, dim, xn, bq);
    const k = matvec(wk, nKvHeads * headDim, dim, xn, bk);
    const v = matvec(wv, nKvHeads * headDim, dim, xn, bv);
    rope(q, nHeads, headDim, p, c.ropeBase);
    rope(k, nKvHeads, headDim, p, c.ropeBase);
    keys.push(k);
    values.push(v);
    const att = new Float64Array(nHeads * headDim);
    for (let hd = 0; hd < nHeads; hd++) {
      const kvh = Math.floor(hd / (nHeads / nKvHeads));
      const scores = keys.map((kk) => {
        let s = 0;
        for (let i = 0; i < headDim; i++) s += q[hd * headDim + i]! * kk[kvh * headDim + i]!;
        return s / Math.sqrt(headDim);
      });
      const m = Math.max(...scores);
      const w = scores.map((s) => Math.exp(s - m));
      const z = w.reduce((a, b) => a + b, 0);
      for (let j = 0; j < w.length; j++) for (let i = 0; i < headDim; i++) att[hd * headDim + i] += (w[j]! / z) * values[j]![kvh * headDim + i]!;
    }
    const o = matvec(wo, dim, nHeads * headDim, att);
    for (let i = 0; i < dim; i++) x[i] += o[i]!;
    const xf = rmsNorm(x, ffnNorm, c.normEps);
    const g = matvec(gate, ffnDim, dim, xf);
    const u = matvec(up, ffnDim, dim, xf);
    const act = g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * u[i]!);
    const d = matvec(down, dim, ffnDim, act);
    for (let i = 0; i < dim; i++) x[i] += d[i]!;
    out.push(matvec(output, c.vocabSize, dim, rmsNorm(x, finalNorm, c.normEps)));
  }
  return out;
}

async function engine(path: string, backend: ComputeBackend, kv: KvCacheType) {
  const file = await readGGUF(await NodeFileSource.open(path));
  const config = readModelConfig(file);
  const weights = await loadTransformerWeights(file, config, backend);
  const t = new Transformer(config, weights, backend);
  return { file, config, t, pool: t.createKvPool(3, 128, kv) };
}

const TOKENS = [1, 40, 41, 300, 7, 99, 120, 121, 122, 5, 77, 201, 13, 260, 64, 65];

for (const [label, type, backendKind, kv, tol] of [
  // F32 weights, f32 KV cache, plain arithmetic: only summation order differs.
  ["reference backend, F32 weights", GGMLType.F32, "reference", "f32", 2e-4],
  // The fast path: activations quantized to Q8_0 before every matmul (as llama.cpp does) and an f16
  // KV cache; measured 0.084 at a largest |logit| of 7.8 (1.1%).
  ["wasm backend, Q8_0 weights", GGMLType.Q8_0, "wasm", "f16", 0.15],
] as const) {
  test(`MTP forward equals the plain transcription of MiMo's formula (${label}, max |Δ logit| <= ${tol})`, async () => {
    const path = await mimoFile(type, `mimo-${label.replace(/\W+/g, "-")}.gguf`);
    const backend = backendKind === "reference" ? new ReferenceBackend() : await WasmBackend.create({ threads: 2 });
    const { file, config, t, pool } = await engine(path, backend, kv);
    try {
      assert.equal(config.nMtpLayers, 1);
      const n = TOKENS.length - 1;
      const main = t.forward([{ slot: 0, startPos: 0, tokens: TOKENS.slice(0, n), logits: "none", hidden: "all" }], pool)[0]!;
      const mtp = t.mtpForward(0, { slot: 0, startPos: 0, nextTokens: TOKENS.slice(1), hidden: main.hidden, logits: "all" }, pool);
      // The transcription reads the same file (dequantized) with the engine's hidden states as input.
      const want = await transcription(file, config, main.hidden, TOKENS.slice(1));
      let maxDiff = 0;
      let scale = 0;
      for (let p = 0; p < n; p++) {
        for (let i = 0; i < config.vocabSize; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(mtp.logits[p * config.vocabSize + i]! - want[p]![i]!));
          scale = Math.max(scale, Math.abs(want[p]![i]!));
        }
      }
      assert.ok(scale > 1, `logits have a real spread (max |logit| ${scale})`);
      assert.ok(maxDiff <= tol, `max |Δ logit| ${maxDiff} (largest |logit| ${scale})`);

      // Reading eh_proj as if it were MiMo's input_proj (halves not swapped) gives other logits by far
      // more than the tolerance: the check above tells the two orders apart.
      const swapped = await transcription(file, config, main.hidden, TOKENS.slice(1), false);
      let swapDiff = 0;
      for (let p = 0; p < n; p++) for (let i = 0; i < config.vocabSize; i++) swapDiff = Math.max(swapDiff, Math.abs(mtp.logits[p * config.vocabSize + i]! - swapped[p]![i]!));
      assert.ok(swapDiff > 10 * tol, `the wrong half order is detectable: ${swapDiff}`);
    } finally {
      backend.dispose();
      await file.close();
    }
  });
}

test("MTP rollback stress: proposals after random accept/reject patterns equal a fresh catch-up's", async () => {
  const path = await mimoFile(GGMLType.Q8_0, "mimo-stress.gguf");
  const backend = await WasmBackend.create({ threads: 1 });
  const { file, config, t, pool } = await engine(path, backend, "f16");
  try {
    const rng = new SeededRandom(11);
    const rand = (n: number) => Math.floor(rng.next() * n);
    const truth = Array.from({ length: 120 }, () => 3 + rand(config.vocabSize - 3));
    const live = new MtpProposer(t, pool, 0);
    let len = 0; // positions of slot 0 holding truth[0..len)
    const prefill = 5;
    live.observe(0, truth.slice(0, prefill), t.forward([{ slot: 0, startPos: 0, tokens: truth.slice(0, prefill), logits: "none", hidden: "all" }], pool)[0]!.hidden);
    len = prefill;
    let checks = 0;
    for (let step = 0; len < 100; step++) {
      // The sequence holds truth[0..len); truth[len] is the token just chosen.
      const proposal = live.propose({ tokens: truth.slice(0, len), next: truth[len]!, max: 1 + rand(3), pMin: 1e-30 });
      if (step % 7 === 0) {
        // A fresh proposer on another slot: main forward over everything, MTP catch-up in one batch.
        const fresh = new MtpProposer(t, pool, 1);
        fresh.observe(0, truth.slice(0, len), t.forward([{ slot: 1, startPos: 0, tokens: truth.slice(0, len), logits: "none", hidden: "all" }], pool)[0]!.hidden);
        const want = fresh.propose({ tokens: truth.slice(0, len), next: truth[len]!, max: proposal.tokens.length, pMin: 1e-30 });
        assert.deepEqual(proposal.tokens, want.tokens, `step ${step}, length ${len}`);
        assert.deepEqual(proposal.probs, want.probs, `step ${step}, length ${len}`);
        checks++;
      }
      // Verify [truth[len], j correct tokens, junk...] and keep 1 + j of them.
      const k = rand(6);
      const j = rand(k + 1);
      const tokens = [truth[len]!, ...truth.slice(len + 1, len + 1 + j), ...Array.from({ length: k - j }, () => 3 + rand(config.vocabSize - 3))];
      const out = t.forward([{ slot: 0, startPos: len, tokens, logits: "all", hidden: "all" }], pool)[0]!;
      live.observe(len, tokens, out.hidden);
      len += 1 + j;
      live.rollback(len);
    }
    assert.ok(checks >= 5);
  } finally {
    backend.dispose();
    await file.close();
  }
});
