// mimo's quantizers, dequantizers and dot products against outputs of llama.cpp's own code
// (fixtures/llama-cpp-quant-golden.json, made by fixtures/gen-llama-cpp-golden.ts).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, describe, test } from "node:test";
import { getQuantTraits, getWeightTraits, ggmlTypeFromName, rowByteSize } from "../../src/quant/traits.ts";
import {
  DOT_LENGTHS,
  DOT_TYPES,
  QUANT_TYPES,
  SYNTHETIC_ROW_LENGTH,
  digest,
  partnerRows,
  storiesTensors,
  syntheticRows,
} from "./quant-test-data.ts";

interface Golden {
  syntheticRowCount: number;
  storiesTensors: string[];
  quantize: Record<string, { synthetic: string[]; stories: Record<string, string> }>;
  dequantize: Record<string, { synthetic: string; stories: string }>;
  vecDot: Record<string, Record<string, string[]>>;
}

const golden: Golden = JSON.parse(readFileSync(new URL("./fixtures/llama-cpp-quant-golden.json", import.meta.url), "utf8"));

/** Our vecDot mirrors ggml's scalar C operation for operation for these; the other K-quants sum in a different order. */
// Q4_1/Q5_1 follow llama.cpp's SIMD kernels (what runs on x86/ARM), which add the min terms
// m * s in a separate sum; its scalar fallback adds them per block, so those two agree to float
// rounding only.
const BIT_EXACT_DOT = new Set(["F32", "F16", "BF16", "Q4_0", "Q5_0", "Q8_0", "Q2_K", "IQ4_NL"]);

/**
 * The llama.cpp function whose bytes llama-quantize writes (without an importance matrix): the
 * reference quantizer, except for IQ4_NL, where ggml_quantize_chunk runs quantize_iq4_nl (scale
 * search with ntry = 7) rather than quantize_row_iq4_nl_ref (ntry = -1).
 */
function fileQuantizer(name: string): string {
  return name === "IQ4_NL" ? "quantize_iq4_nl" : `quantize_row_${name.toLowerCase()}_ref`;
}

function bitsToF32(hex: string): number {
  return new Float32Array(new Uint32Array([parseInt(hex, 16)]).buffer)[0];
}

describe("bit-exact with llama.cpp's reference quantizers", () => {
  const synthetic = syntheticRows();
  let stories: { name: string; data: Float32Array }[] = [];
  before(async () => {
    stories = await storiesTensors();
  });

  test("the synthetic rows and stories260K tensors are the ones the goldens were made from", () => {
    assert.equal(synthetic.length / SYNTHETIC_ROW_LENGTH, golden.syntheticRowCount);
    assert.deepEqual(
      stories.map((s) => s.name),
      golden.storiesTensors,
    );
  });

  for (const name of QUANT_TYPES) {
    test(`${name}: quantizeRow writes the bytes of ${fileQuantizer(name)}, and dequantizeRow reads them as llama.cpp does`, () => {
      const traits = getQuantTraits(ggmlTypeFromName(name)!);
      const rowBytes = rowByteSize(traits.type, SYNTHETIC_ROW_LENGTH);
      const rows = golden.syntheticRowCount;

      const q = new Uint8Array(rowBytes * rows);
      traits.quantizeRow(synthetic, 0, q, 0, synthetic.length);
      const wrongRows: number[] = [];
      for (let r = 0; r < rows; r++) {
        if (digest(q.subarray(r * rowBytes, (r + 1) * rowBytes)) !== golden.quantize[name].synthetic[r]) wrongRows.push(r);
      }
      assert.deepEqual(wrongRows, [], `synthetic rows quantized differently from llama.cpp`);

      const wrongTensors: string[] = [];
      const storyBytes: Uint8Array[] = [];
      for (const s of stories) {
        const bytes = new Uint8Array(rowByteSize(traits.type, s.data.length));
        traits.quantizeRow(s.data, 0, bytes, 0, s.data.length);
        storyBytes.push(bytes);
        if (digest(bytes) !== golden.quantize[name].stories[s.name]) wrongTensors.push(s.name);
      }
      assert.deepEqual(wrongTensors, [], `stories260K tensors quantized differently from llama.cpp`);

      if (name === "Q8_1") return; // llama.cpp has no Q8_1 dequantizer to compare with
      const deq = new Float32Array(synthetic.length);
      traits.dequantizeRow(q, 0, deq, 0, deq.length);
      assert.equal(digest(new Uint8Array(deq.buffer)), golden.dequantize[name].synthetic, "dequantized synthetic rows differ");
      const storyDeq = new Float32Array(stories.reduce((a, s) => a + s.data.length, 0));
      let at = 0;
      for (const bytes of storyBytes) {
        const n = (bytes.length / traits.bytesPerBlock) * traits.blockSize;
        traits.dequantizeRow(bytes, 0, storyDeq, at, n);
        at += n;
      }
      assert.equal(digest(new Uint8Array(storyDeq.buffer)), golden.dequantize[name].stories, "dequantized stories260K tensors differ");
    });
  }

  for (const name of DOT_TYPES) {
    const exact = BIT_EXACT_DOT.has(name);
    test(`${name}: vecDot ${exact ? "equals" : "agrees to float rounding with"} llama.cpp's scalar ggml_vec_dot`, () => {
      const w = getWeightTraits(ggmlTypeFromName(name)!);
      const a = getQuantTraits(w.vecDotType);
      const activations = partnerRows(synthetic);
      const wBytes = new Uint8Array(rowByteSize(w.type, synthetic.length));
      const aBytes = new Uint8Array(rowByteSize(a.type, activations.length));
      w.quantizeRow(synthetic, 0, wBytes, 0, synthetic.length);
      a.quantizeRow(activations, 0, aBytes, 0, activations.length);
      for (const n of DOT_LENGTHS) {
        const expected = golden.vecDot[name][n];
        const wRow = rowByteSize(w.type, n);
        const aRow = rowByteSize(a.type, n);
        const dw = new Float32Array(n);
        const da = new Float32Array(n);
        for (let r = 0; r < expected.length; r++) {
          const ours = w.vecDot(n, wBytes, r * wRow, aBytes, r * aRow);
          const theirs = bitsToF32(expected[r]);
          if (exact) {
            assert.ok(Object.is(ours, theirs), `n=${n} row ${r}: ${ours} !== ${theirs}`);
          } else if (!Number.isFinite(ours) || !Number.isFinite(theirs)) {
            assert.ok(Object.is(ours, theirs), `n=${n} row ${r}: ${ours} !== ${theirs}`); // both NaN or the same infinity
          } else {
            // ggml's scalar K-quant dots sum 8 float lanes; we scale each block's exact integer
            // sum (and Q4_1/Q5_1 sum their min terms apart, as ggml's SIMD code does). Both round float terms of size up to |scale part| + |min part| per element,
            // each at most about 2 x the sub-block's largest |x|, so that bounds the rounding noise.
            w.dequantizeRow(wBytes, r * wRow, dw, 0, n);
            a.dequantizeRow(aBytes, r * aRow, da, 0, n);
            let magnitude = 0;
            for (let s = 0; s < n; s += 16) {
              let maxW = 0;
              let sumA = 0;
              for (let i = s; i < s + 16; i++) {
                maxW = Math.max(maxW, Math.abs(dw[i]));
                sumA += Math.abs(da[i]);
              }
              magnitude += 3 * maxW * sumA;
            }
            assert.ok(Math.abs(ours - theirs) <= 1e-6 * magnitude, `n=${n} row ${r}: ${ours} vs ${theirs}`);
          }
        }
      }
    });
  }
});
