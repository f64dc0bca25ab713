// IQ4_NL on hand-computed blocks. Its quantizer (llama.cpp's quantize_iq4_nl, the one files are
// written with) fits the block scale by weighted least squares over 15 candidate scales; on rows
// that are the table itself (times a power of two, either sign) the best fit is exact, so the
// bytes are known. Bit-exactness on real data: stories-derived.test.ts and llama-cpp-golden.test.ts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GGMLType, getQuantTraits, rowByteSize } from "../../src/quant/traits.ts";

/** llama.cpp's kvalues_iq4nl. */
const TABLE = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
const traits = getQuantTraits(GGMLType.IQ4_NL);

/** Quantizes x (whole blocks) from odd offsets in larger buffers; returns the row bytes and their decoding. */
function quantize(x: number[]): { bytes: number[]; back: number[] } {
  const n = x.length;
  const src = new Float32Array(n + 3);
  src.set(x, 3);
  const dst = new Uint8Array(rowByteSize(GGMLType.IQ4_NL, n) + 7).fill(0xaa);
  traits.quantizeRow(src, 3, dst, 5, n);
  const bytes = [...dst.subarray(5, 5 + rowByteSize(GGMLType.IQ4_NL, n))];
  assert.ok(dst.subarray(0, 5).every((b) => b === 0xaa) && dst.subarray(5 + bytes.length).every((b) => b === 0xaa), "wrote outside the row");
  const back = new Float32Array(n);
  traits.dequantizeRow(Uint8Array.from(bytes), 0, back, 0, n);
  return { bytes, back: [...back] };
}

/** Block bytes for indices 0..15 in elements 0..15 and again in 16..31: byte j = j | j << 4. */
const IDENTITY_QS = Array.from({ length: 16 }, (_, j) => j | (j << 4));

describe("IQ4_NL quantizer on hand-computed blocks", () => {
  test("the table itself: d = 1, element j gets index j (low nibble: element j, high: element j + 16)", () => {
    const { bytes, back } = quantize([...TABLE, ...TABLE]);
    assert.deepEqual(bytes, [0x00, 0x3c, ...IDENTITY_QS]);
    assert.deepEqual(back, [...TABLE, ...TABLE]);
  });

  test("the table negated: the extreme is +127, and the search finds d = -1", () => {
    // the first fit maps +127 to the table's top (113) and fits poorly; itry = 0 maps it to -127
    const x = [...TABLE, ...TABLE].map((v) => -v);
    const { bytes, back } = quantize(x);
    assert.deepEqual(bytes, [0x00, 0xbc, ...IDENTITY_QS]);
    assert.deepEqual(back, x);
  });

  test("a power-of-two multiple of the table, element order shuffled, several blocks", () => {
    const perm = Array.from({ length: 32 }, (_, i) => (i * 7 + 3) % 32);
    const x = [...perm.map((i) => TABLE[i % 16] / 64), ...perm.map((i) => TABLE[i % 16] * 8)];
    const { bytes, back } = quantize(x);
    const qs = Array.from({ length: 16 }, (_, j) => (perm[j] % 16) | ((perm[j + 16] % 16) << 4));
    assert.deepEqual(bytes, [0x00, 0x24, ...qs, 0x00, 0x48, ...qs]); // f16 2^-6 and 8
    assert.deepEqual(back, x);
  });

  test("a block whose largest |x| is below 1e-15 has d = 0 and every element at index 8 (value 1)", () => {
    for (const x of [Array(32).fill(0), Array.from({ length: 32 }, (_, i) => (i % 3) * 4e-16)]) {
      const { bytes, back } = quantize(x);
      assert.deepEqual(bytes, [0, 0, ...Array(16).fill(0x88)]);
      assert.ok(back.every((v) => v === 0));
    }
  });

  test("the indices come from the float32 scale, not its f16 rounding", () => {
    // 1e-15 is not below the threshold: its scale (~1e-17) underflows f16 to 0, but the final
    // indices are computed with the float32 scale, so the lone element gets an end of the table
    const { bytes } = quantize([1e-15, ...Array(31).fill(0)]);
    assert.deepEqual(bytes.slice(0, 2), [0, 0]);
    assert.ok([0x80, 0x8f].includes(bytes[2]), `first byte ${bytes[2].toString(16)}`);
    assert.deepEqual(bytes.slice(3), Array(15).fill(0x88));
  });

  test("refuses a row that is not whole blocks", () => {
    assert.throws(() => traits.quantizeRow(new Float32Array(48), 0, new Uint8Array(100), 0, 48), RangeError);
  });
});
