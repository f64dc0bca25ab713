// Each weight type's vecDot, with its activation partner type, equals the dot product of the two
// dequantized rows up to float32 rounding (and, for Q4_1 / Q5_1, up to the fp16 rounding of the
// activation's precomputed d * sum(q), which llama.cpp's dot product uses for the min term).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readF16 } from "../../src/quant/half.ts";
import { GGMLType, getQuantTraits, getWeightTraits, ggmlTypeName, rowByteSize, supportedWeightTypes } from "../../src/quant/traits.ts";
import { xorshift32 } from "./quant-test-data.ts";

const EXPECTED_PARTNER: Record<string, string> = {
  F32: "F32",
  F16: "F16",
  BF16: "BF16",
  Q4_0: "Q8_0",
  Q4_1: "Q8_1",
  Q5_0: "Q8_0",
  Q5_1: "Q8_1",
  Q8_0: "Q8_0",
  Q2_K: "Q8_K",
  Q3_K: "Q8_K",
  Q4_K: "Q8_K",
  Q5_K: "Q8_K",
  Q6_K: "Q8_K",
  IQ4_NL: "Q8_0",
};

function randomRow(next: () => number, n: number, scale: number, offset = 0): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let g = -6;
    for (let k = 0; k < 12; k++) g += (next() >>> 8) / 16777216;
    x[i] = g * scale + offset;
  }
  return x;
}

describe("vecDot", () => {
  test("pairs each weight type with llama.cpp's CPU vec_dot_type", () => {
    const pairs = Object.fromEntries(supportedWeightTypes.map((t) => [ggmlTypeName(t), ggmlTypeName(getWeightTraits(t).vecDotType)]));
    assert.deepEqual(pairs, EXPECTED_PARTNER);
  });

  for (const type of supportedWeightTypes) {
    const w = getWeightTraits(type);
    const a = getQuantTraits(w.vecDotType);
    // one block, and several blocks (a K-quant block is 256; legacy blocks are 32)
    const lengths = [...new Set([w.blockSize === 1 ? 1 : w.blockSize, 32, 256, 8 * Math.max(32, w.blockSize)])].filter(
      (n) => n % w.blockSize === 0,
    );
    test(`${w.name} x ${a.name} equals the dot of the dequantized rows (n = ${lengths.join(", ")})`, () => {
      const next = xorshift32(0xd07 + type);
      for (const n of lengths) {
        for (let trial = 0; trial < 20; trial++) {
          // weights with an offset now and then, so the mins of Q4_1 / Q5_1 / K-quants matter
          const x = randomRow(next, n, 0.05, trial % 3 === 0 ? 0.04 : 0);
          const y = randomRow(next, n, 2);
          // place both rows at odd byte offsets inside larger buffers
          const wOff = 3;
          const aOff = 5;
          const wBytes = new Uint8Array(wOff + rowByteSize(w.type, n) + 7);
          const aBytes = new Uint8Array(aOff + rowByteSize(a.type, n) + 7);
          w.quantizeRow(x, 0, wBytes, wOff, n);
          a.quantizeRow(y, 0, aBytes, aOff, n);
          const dw = new Float32Array(n);
          const da = new Float32Array(n);
          w.dequantizeRow(wBytes, wOff, dw, 0, n);
          a.dequantizeRow(aBytes, aOff, da, 0, n);

          let expected = 0;
          let magnitude = 0;
          for (let i = 0; i < n; i++) {
            expected += dw[i] * da[i];
            magnitude += Math.abs(dw[i] * da[i]);
          }
          if (a.type === GGMLType.Q8_1) {
            // llama.cpp applies the min m as m * s with s = fp16(d * sum(q)) stored in the activation
            // block, instead of m * d * sum(q): account for the difference exactly
            for (let b = 0; b < n / 32; b++) {
              const m = readF16(wBytes, wOff + b * w.bytesPerBlock + 2); // Q4_1 / Q5_1: d @0, m @2
              let sumA = 0;
              for (let i = 32 * b; i < 32 * b + 32; i++) sumA += da[i];
              const s = readF16(aBytes, aOff + b * 36 + 2);
              expected += m * (s - sumA);
              magnitude += Math.abs(m * s);
            }
          }
          const got = w.vecDot(n, wBytes, wOff, aBytes, aOff);
          assert.ok(
            Math.abs(got - expected) <= 2e-6 * magnitude + 1e-30,
            `n=${n} trial ${trial}: vecDot ${got}, dequantized dot ${expected} (|diff| ${Math.abs(got - expected)}, scale ${magnitude})`,
          );
        }
      }
    });
  }

  test("refuses a length that is not a whole number of blocks", () => {
    const w = getWeightTraits(GGMLType.Q4_K);
    assert.throws(() => w.vecDot(100, new Uint8Array(1000), 0, new Uint8Array(1000), 0), RangeError);
  });
});
