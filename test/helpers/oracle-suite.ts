// Oracle tests: synthetic models (our GGUF writer, deterministic random weights) of one
// architecture in every supported quant type, run by mimo and by llama.cpp on the same file.
//
// Tolerance, measured: mimo reproduces llama.cpp's arithmetic (quantized activations, f16 KV
// cache, f16 attention inputs), so most steps agree to ~1e-6 in log-probability. Now and then an
// intermediate lands on the other side of an f16 rounding boundary because the two sum in a
// different order or use a different exp(); in these random models one such flip moves
// log-probabilities by up to ~5e-2 (measured by switching a single f16 rounding off). So:
//   - every step: max |Δ log p| <= 0.15 over tokens with log p > -20;
//   - the median step agrees to 2e-2 (measured: ~1e-6 on most type/arch pairs, up to ~7e-3 for
//     the most sensitive, Qwen3 with Q4_1); a real bug (a dropped bias or min term, a wrong
//     rope) moves every step by far more;
//   - greedy tokens identical at every step whose top-2 margin (llama.cpp's) exceeds twice the
//     measured deviation at that step plus 1e-4 nats: there the argmax cannot legitimately
//     differ. At a closer call either of llama.cpp's top two is accepted, and the free-running
//     comparison stops there, because the two paths may legitimately part.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../../src/index.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { WASM_TYPES } from "../../src/kernels/types.ts";
import { findArchitecture } from "../../src/model/architectures.ts";
import { hasMtpLayers } from "../../src/model/tensors.ts";
import { ggmlTypeFromName } from "../../src/quant/ggml-type.ts";
import { syntheticModel, type SyntheticArch, type SyntheticModelSpec } from "../../src/tools/synthetic-model.ts";
import { llamaCppGreedyTrace } from "./llama-cpp-oracle.ts";
import { tempDir } from "./temp-dir.ts";

/** Every weight type the kernels multiply (ORACLE_TYPES=IQ4_NL,Q4_0 runs only those). */
const only = process.env.ORACLE_TYPES?.split(",");
export const oracleTypes: readonly string[] = WASM_TYPES.map((t) => t.name).filter((n) => !only || only.includes(n));

/** The backend mimo runs on (default: loadModel's); ORACLE_BACKEND=reference checks the reference arithmetic. */
const ORACLE_BACKEND = process.env.ORACLE_BACKEND as "reference" | "wasm" | undefined;
const STEPS = 32;
const DEFAULT_PROMPT = [1, 300, 301, 302, 303];
const MAX_LOGPROB_DIFF = 0.15;
const MEDIAN_LOGPROB_DIFF = 2e-2;

/** The small synthetic model the oracle tests run (256-wide, so K-quant rows are whole blocks). */
export function specFor(arch: SyntheticArch, type: number): SyntheticModelSpec {
  return {
    arch,
    dim: 256, // K-quant rows must be multiples of 256
    ffnDim: 512,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: arch === "qwen3" ? 64 : undefined,
    vocabSize: 512,
    contextLength: 512,
    weightType: type,
    seed: 1,
    matrixGain: 0.5,
    // Unit q/k norms make attention so peaky that one f16 rounding flip moves logits by ~1e-2.
    qkNormGain: 0.3,
    outputGain: 4,
  };
}

export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = Math.log(sum) + max;
  return Float64Array.from(logits, (v) => v - lse);
}

export function defineOracleTests(arch: SyntheticArch): void {
  const dir = tempDir(`mimo-oracle-${arch}-`);
  for (const typeName of oracleTypes) {
    test(`${arch} ${typeName}: same greedy tokens and next-token distributions as llama.cpp`, async (t) => {
      const type = ggmlTypeFromName(typeName)!;
      const path = join(dir, `${arch}-${typeName}.gguf`);
      await writeGGUFFile(path, syntheticModel(specFor(arch, type)));
      // llama.cpp knows no "mimo": it runs the same weights as qwen2 (MiMo's main path is exactly Qwen2).
      let oraclePath = path;
      const mainPathAs = findArchitecture(arch)!.mainPathAs;
      if (mainPathAs) {
        oraclePath = join(dir, `${arch}-as-${mainPathAs}-${typeName}.gguf`);
        await writeGGUFFile(oraclePath, syntheticModel(specFor(mainPathAs, type)));
      }
      await compareWithLlamaCpp(t, path, oraclePath, { arch });
    });
  }
}

/**
 * mimo on `path` against llama.cpp on `oraclePath` (the same weights; for MiMo, as qwen2), by the
 * criteria above: teacher-forced log-probabilities, then free-running greedy tokens up to the
 * first step whose top-2 margin is too close to call.
 */
export async function compareWithLlamaCpp(
  t: { diagnostic(message: string): void },
  path: string,
  oraclePath: string,
  o: { arch?: SyntheticArch; prompt?: readonly number[] } = {},
): Promise<void> {
  const PROMPT = o.prompt ?? DEFAULT_PROMPT;
  const trace = await llamaCppGreedyTrace(oraclePath, PROMPT, STEPS);
  const model = await loadModel(path, ORACLE_BACKEND ? { backend: ORACLE_BACKEND } : {});
  try {
    if (o.arch && hasMtpLayers(o.arch)) assert.equal(model.config.nMtpLayers, 1);
    // Teacher-forced on llama.cpp's path: our distribution at every step.
    const forced = [...PROMPT, ...trace.slice(0, -1).map((s) => s.token)];
    const all = model.evaluate(forced, { allLogits: true });
    const V = model.config.vocabSize;
    const diffs: number[] = [];
    const decidableSteps: boolean[] = [];
    trace.forEach((step, s) => {
      const pos = PROMPT.length - 1 + s;
      const ours = logSoftmax(all.subarray(pos * V, (pos + 1) * V));
      let d = 0;
      for (let t = 0; t < V; t++) if (step.logProbs[t]! > -20) d = Math.max(d, Math.abs(ours[t]! - step.logProbs[t]!));
      diffs.push(d);
      let best = 0;
      for (let t = 1; t < V; t++) if (ours[t]! > ours[best]!) best = t;
      const decidable = step.margin > 2 * d + 1e-4;
      decidableSteps.push(decidable);
      if (decidable) assert.equal(best, step.token, `step ${s}: mimo picks ${best}, llama.cpp ${step.token} (margin ${step.margin.toFixed(4)}, |Δ log p| ${d.toExponential(1)})`);
      else {
        const second = [...step.logProbs.keys()].sort((a, b) => step.logProbs[b]! - step.logProbs[a]!)[1];
        assert.ok(best === step.token || best === second, `step ${s}: near tie, but mimo picks ${best}, not ${step.token} or ${second}`);
      }
    });
    const sorted = [...diffs].sort((a, b) => a - b);
    const median = sorted[sorted.length >> 1]!;
    assert.ok(sorted[sorted.length - 1]! <= MAX_LOGPROB_DIFF, `max |Δ log p| ${sorted[sorted.length - 1]} at step ${diffs.indexOf(sorted[sorted.length - 1]!)}`);
    assert.ok(median <= MEDIAN_LOGPROB_DIFF, `median step |Δ log p| ${median}`);
    const close = diffs.filter((d) => d <= 1e-4).length;

    // Free-running greedy generation (prefill as one batch, then one token at a time).
    const free = await model.complete(PROMPT, { temperature: 0, maxTokens: STEPS, ignoreEos: true });
    const firstTie = decidableSteps.indexOf(false);
    const compared = firstTie < 0 ? STEPS : firstTie;
    assert.equal(free.tokens.length, STEPS);
    assert.deepEqual(free.tokens.slice(0, compared), trace.slice(0, compared).map((s) => s.token));
    t.diagnostic(`greedy tokens compared: ${compared}/${STEPS}; max |Δ log p| ${sorted[sorted.length - 1]!.toExponential(1)}, median ${median.toExponential(1)}, steps within 1e-4: ${close}`);
  } finally {
    await model.dispose();
  }
}
