// Hand-computed blocks for the legacy quantizers, following the rounding of llama.cpp's
// quantize_row_*_ref (ggml-quants.c), and round-trip error bounds for every type.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GGMLType, getQuantTraits, ggmlTypeName, rowByteSize, supportedTypes } from "../../src/quant/traits.ts";
import type { GGMLTypeId } from "../../src/quant/traits.ts";
import { xorshift32 } from "./quant-test-data.ts";

/** 32 nibble levels -> 16 bytes: byte j holds element j (low nibble) and element j + 16 (high). */
function packNibbles(levels: number[]): number[] {
  return Array.from({ length: 16 }, (_, j) => (levels[j] & 15) | ((levels[j + 16] & 15) << 4));
}

/** The fifth bits of 32 levels as the little-endian u32 `qh`: bit i for element i. */
function highBits(levels: number[]): number[] {
  let qh = 0;
  levels.forEach((l, i) => (qh |= ((l >> 4) & 1) << i));
  return [qh & 255, (qh >>> 8) & 255, (qh >>> 16) & 255, qh >>> 24];
}

const F16_ONE = [0x00, 0x3c];
const F16_MINUS_ONE = [0x00, 0xbc];

function quantize(type: GGMLTypeId, x: number[]): { bytes: number[]; back: Float32Array } {
  const traits = getQuantTraits(type);
  const out = new Uint8Array(rowByteSize(type, x.length));
  traits.quantizeRow(Float32Array.from(x), 0, out, 0, x.length);
  const back = new Float32Array(x.length);
  traits.dequantizeRow(out, 0, back, 0, x.length);
  return { bytes: [...out], back };
}

describe("legacy quantizers on hand-computed blocks", () => {
  test("Q4_0: d = max / -8 for the signed extreme, level = min(15, trunc(x / d + 8.5))", () => {
    // the first element of largest magnitude is -8, so d = 1 and ties round up (-0.5 -> level 8, 0.5 -> 9)
    const x = [-8, -7.5, -0.5, 0, 0.49, 0.5, 1.5, 2.5, 7, 7.49, 7.5, 8, -3.2, 3.2, -6.6, 6.6,
      1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 0.25, -0.25, 0.75, -0.75];
    const levels = [0, 1, 8, 8, 8, 9, 10, 11, 15, 15, 15, 15, 5, 11, 1, 15,
      9, 7, 10, 6, 11, 5, 12, 4, 13, 3, 14, 2, 8, 8, 9, 7];
    const { bytes, back } = quantize(GGMLType.Q4_0, x);
    assert.deepEqual(bytes, [...F16_ONE, ...packNibbles(levels)]);
    assert.deepEqual([...back], levels.map((l) => l - 8));
  });

  test("Q4_1: d = (max - min) / 15, m = min, level = min(15, trunc((x - min) / d + 0.5))", () => {
    const x = [-1, 14, 0, 0.5, 0.49, 13.6, 6.5, -0.5, 2, 3, 4, 5, 6, 7, 8, 9, ...Array(16).fill(10)];
    const levels = [0, 15, 1, 2, 1, 15, 8, 1, 3, 4, 5, 6, 7, 8, 9, 10, ...Array(16).fill(11)];
    const { bytes, back } = quantize(GGMLType.Q4_1, x);
    assert.deepEqual(bytes, [...F16_ONE, ...F16_MINUS_ONE, ...packNibbles(levels)]);
    assert.deepEqual([...back], levels.map((l) => l - 1));
  });

  test("Q5_0: d = max / -16, level = min(31, trunc(x / d + 16.5)), fifth bits in qh", () => {
    const x = [-16, 15.5, 15, -0.5, 0, 0.5, 0.49, -15.6, 3.7, -3.7, 10, -10, 1, 2, 4, 8,
      ...Array.from({ length: 16 }, (_, k) => k - 8)];
    const levels = [0, 31, 31, 16, 16, 17, 16, 0, 20, 12, 26, 6, 17, 18, 20, 24,
      ...Array.from({ length: 16 }, (_, k) => k + 8)];
    const { bytes, back } = quantize(GGMLType.Q5_0, x);
    assert.deepEqual(bytes, [...F16_ONE, ...highBits(levels), ...packNibbles(levels)]);
    assert.deepEqual([...back], levels.map((l) => l - 16));
  });

  test("Q5_1: d = (max - min) / 31, m = min, level = trunc((x - min) / d + 0.5)", () => {
    const x = [-1, 30, 0, 0.5, 0.49, 29.6, 15, 14.5, -0.5, 1, 2, 3, 4, 5, 6, 7, ...Array(16).fill(20)];
    const levels = [0, 31, 1, 2, 1, 31, 16, 16, 1, 2, 3, 4, 5, 6, 7, 8, ...Array(16).fill(21)];
    const { bytes, back } = quantize(GGMLType.Q5_1, x);
    assert.deepEqual(bytes, [...F16_ONE, ...F16_MINUS_ONE, ...highBits(levels), ...packNibbles(levels)]);
    assert.deepEqual([...back], levels.map((l) => l - 1));
  });

  test("Q8_0: d = max|x| / 127, q = roundf(x / d) (ties away from zero)", () => {
    const x = [127, -127, 2.5, -2.5, 0.5, -0.5, 1.4999, -1.5001, 100.4, -100.6, 0, 63.5, ...Array(20).fill(0)];
    const q = [127, -127, 3, -3, 1, -1, 1, -2, 100, -101, 0, 64, ...Array(20).fill(0)];
    const { bytes, back } = quantize(GGMLType.Q8_0, x);
    assert.deepEqual(bytes, [...F16_ONE, ...q.map((v) => v & 255)]);
    assert.deepEqual([...back], q);

    // d = 2: x / d = +-1.5 and 2.5 round away from zero
    const y = [254, 3, -3, 1, 5, ...Array(27).fill(0)];
    const { bytes: yb } = quantize(GGMLType.Q8_0, y);
    assert.deepEqual(yb.slice(0, 7), [0x00, 0x40, 127, 2, (-2) & 255, 1, 3]);
  });

  test("Q8_1: like Q8_0, plus s = d * sum(q) for the min term of Q4_1 / Q5_1 dot products", () => {
    const x = [127, -127, 2.5, -2.5, 0.5, 10, ...Array(26).fill(0)];
    const { bytes } = quantize(GGMLType.Q8_1, x);
    // q = 127, -127, 3, -3, 1, 10: sum 11, and fp16(11.0) = 0x4980
    assert.deepEqual(bytes.slice(0, 10), [...F16_ONE, 0x80, 0x49, 127, 129, 3, 253, 1, 10]);
  });

  test("an all-zero block has d = 0 and decodes to zeros", () => {
    for (const type of supportedTypes) {
      const traits = getQuantTraits(type);
      const n = Math.max(32, traits.blockSize);
      const out = new Uint8Array(rowByteSize(type, n)).fill(0xaa);
      traits.quantizeRow(new Float32Array(n), 0, out, 0, n);
      const back = new Float32Array(n).fill(NaN);
      traits.dequantizeRow(out, 0, back, 0, n);
      assert.ok(back.every((v) => v === 0), ggmlTypeName(type));
    }
  });
});

describe("round trip", () => {
  function gaussianBlock(next: () => number, n: number, scale: number, offset: number): Float32Array {
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let g = -6;
      for (let k = 0; k < 12; k++) g += (next() >>> 8) / 16777216;
      x[i] = g * scale + offset;
    }
    return x;
  }

  // worst-case error of one element, given its block's largest |x|, min and max
  const BOUND: Record<string, (amax: number, min: number, max: number) => number> = {
    // half a step (d = amax / 8), but the side opposite the extreme can clip by a whole step
    Q4_0: (amax) => (amax / 8) * (1 + 2 ** -10),
    Q5_0: (amax) => (amax / 16) * (1 + 2 ** -10),
    // half a step of d = range / 15 (or 31), plus the fp16 rounding of d (times up to 15) and of m
    Q4_1: (_, min, max) => ((max - min) / 15) * (0.5 + 16 * 2 ** -11) + Math.abs(min) * 2 ** -11,
    Q5_1: (_, min, max) => ((max - min) / 31) * (0.5 + 32 * 2 ** -11) + Math.abs(min) * 2 ** -11,
    Q8_0: (amax) => (amax / 127) * (0.5 + 128 * 2 ** -11),
    Q8_1: (amax) => (amax / 127) * (0.5 + 128 * 2 ** -11),
    F16: (amax) => amax * 2 ** -11,
    BF16: (amax) => amax * 2 ** -8,
    F32: () => 0,
  };

  for (const name of Object.keys(BOUND)) {
    test(`${name}: every element comes back within its block's worst-case error`, () => {
      const traits = getQuantTraits(GGMLType[name as keyof typeof GGMLType]);
      const next = xorshift32(0x51 + traits.type);
      const n = 32;
      for (let trial = 0; trial < 400; trial++) {
        const x = gaussianBlock(next, n, [0.01, 1, 50][trial % 3], trial % 4 === 0 ? 0.7 : 0);
        const q = new Uint8Array(rowByteSize(traits.type, n));
        traits.quantizeRow(x, 0, q, 0, n);
        const back = new Float32Array(n);
        traits.dequantizeRow(q, 0, back, 0, n);
        let amax = 0;
        let min = Infinity;
        let max = -Infinity;
        for (const v of x) {
          amax = Math.max(amax, Math.abs(v));
          min = Math.min(min, v);
          max = Math.max(max, v);
        }
        const bound = BOUND[name](amax, min, max);
        for (let i = 0; i < n; i++) {
          assert.ok(Math.abs(back[i] - x[i]) <= bound, `trial ${trial} element ${i}: ${x[i]} -> ${back[i]} (bound ${bound})`);
        }
      }
    });
  }

  test("K-quants: error falls with the bit count (Q2_K > Q3_K > Q4_K > Q5_K > Q6_K > Q8_K), at the expected levels", () => {
    const next = xorshift32(0x4b);
    const n = 256 * 64;
    const x = gaussianBlock(next, n, 1, 0);
    const rmsError: Record<string, number> = {};
    for (const name of ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]) {
      const traits = getQuantTraits(GGMLType[name as keyof typeof GGMLType]);
      const q = new Uint8Array(rowByteSize(traits.type, n));
      traits.quantizeRow(x, 0, q, 0, n);
      const back = new Float32Array(n);
      traits.dequantizeRow(q, 0, back, 0, n);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += (back[i] - x[i]) ** 2;
      rmsError[name] = Math.sqrt(sum / n);
    }
    const order = Object.values(rmsError);
    for (let i = 1; i < order.length; i++) assert.ok(order[i] < order[i - 1], JSON.stringify(rmsError));
    // unit-variance data: each extra bit should roughly halve the error
    assert.ok(rmsError.Q4_K < 0.12 && rmsError.Q4_K > 0.05, JSON.stringify(rmsError));
    assert.ok(rmsError.Q6_K < 0.03, JSON.stringify(rmsError));
  });
});
