// float32 <-> F16 / BF16 conversions: exact, round-to-nearest-even, ggml's NaN handling.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../src/quant/traits.ts";
import { xorshift32 } from "./quant-test-data.ts";

const bitsU32 = new Uint32Array(1);
const bitsF32 = new Float32Array(bitsU32.buffer);
function f32FromBits(bits: number): number {
  bitsU32[0] = bits >>> 0;
  return bitsF32[0];
}

const halfF16 = new Float16Array(1);
const halfU16 = new Uint16Array(halfF16.buffer);
function f16BitsOf(x: number): number {
  halfF16[0] = x; // Float16Array stores round to nearest, ties to even
  return halfU16[0];
}

describe("F16", () => {
  test("f16ToF32 decodes all 65536 bit patterns exactly (as Float16Array does)", () => {
    const halves = new Uint16Array(65536);
    for (let h = 0; h < 65536; h++) halves[h] = h;
    const decoded = new Float16Array(halves.buffer);
    for (let h = 0; h < 65536; h++) {
      const ours = f16ToF32(h);
      if (Number.isNaN(decoded[h])) assert.ok(Number.isNaN(ours), `0x${h.toString(16)}`);
      else assert.ok(Object.is(ours, decoded[h]), `0x${h.toString(16)}: ${ours} vs ${decoded[h]}`);
    }
  });

  test("f32ToF16 round-trips every half value, and rounds every halfway point to even", () => {
    for (let h = 0; h < 0x7c00; h++) {
      for (const sign of [0, 0x8000]) {
        const x = f16ToF32(h | sign);
        assert.equal(f32ToF16(x), h | sign);
        if (h === 0x7bff) continue;
        // the midpoint to the next half is exact in float32; ties go to the even neighbour
        const mid = (x + f16ToF32((h + 1) | sign)) / 2;
        const even = h % 2 === 0 ? h : h + 1;
        assert.equal(f32ToF16(mid), even | sign, `midpoint after 0x${(h | sign).toString(16)}`);
      }
    }
  });

  test("f32ToF16 agrees with Float16Array rounding on random float32 bit patterns", () => {
    const next = xorshift32(16);
    let mismatches = 0;
    for (let i = 0; i < 300_000; i++) {
      const x = f32FromBits(next());
      if (!Number.isNaN(x) && f32ToF16(x) !== f16BitsOf(x)) mismatches++;
    }
    assert.equal(mismatches, 0);
  });

  test("f32ToF16 overflows to infinity, underflows to (signed) zero, and makes NaN the quiet 0x7E00", () => {
    assert.equal(f32ToF16(65504), 0x7bff);
    assert.equal(f32ToF16(65519.99), 0x7bff);
    assert.equal(f32ToF16(65520), 0x7c00); // halfway to 2^16 rounds to even: infinity
    assert.equal(f32ToF16(1e10), 0x7c00);
    assert.equal(f32ToF16(-Infinity), 0xfc00);
    assert.equal(f32ToF16(NaN), 0x7e00);
    assert.equal(f32ToF16(2 ** -24), 0x0001);
    assert.equal(f32ToF16(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal: even is 0
    assert.equal(f32ToF16(1.5 * 2 ** -25), 0x0001);
    assert.equal(f32ToF16(-(2 ** -30)), 0x8000);
    assert.equal(f32ToF16(1 / 3), 0x3555);
  });
});

describe("BF16", () => {
  test("bf16ToF32 is the top half of the float32 bits", () => {
    assert.equal(bf16ToF32(0x3f80), 1);
    assert.equal(bf16ToF32(0xc0a0), -5);
    assert.ok(Object.is(bf16ToF32(0x8000), -0));
    assert.equal(bf16ToF32(0x7f80), Infinity);
    assert.ok(Number.isNaN(bf16ToF32(0x7fc0)));
  });

  test("f32ToBf16 rounds to nearest, ties to even (ggml's GGML_FP32_TO_BF16)", () => {
    assert.equal(f32ToBf16(1), 0x3f80);
    assert.equal(f32ToBf16(f32FromBits(0x3f808000)), 0x3f80); // tie, 0x3f80 is even
    assert.equal(f32ToBf16(f32FromBits(0x3f818000)), 0x3f82); // tie, rounds up to even
    assert.equal(f32ToBf16(f32FromBits(0x3f808001)), 0x3f81); // above the tie
    assert.equal(f32ToBf16(f32FromBits(0x3f807fff)), 0x3f80); // below the tie
    assert.equal(f32ToBf16(-0), 0x8000);
    assert.equal(f32ToBf16(3.4028234663852886e38), 0x7f80); // the largest float32 rounds to infinity
    assert.equal(f32ToBf16(-Infinity), 0xff80);
  });

  test("f32ToBf16 keeps NaN a (quiet) NaN instead of letting rounding carry it into infinity", () => {
    const b = f32ToBf16(NaN);
    assert.equal(b & 0x7f80, 0x7f80);
    assert.notEqual(b & 0x7f, 0);
    assert.equal(b & 0x40, 0x40);
  });

  test("f32ToBf16 agrees with round-to-nearest-even on random float32 bit patterns", () => {
    const next = xorshift32(30);
    const wrong: string[] = [];
    for (let i = 0; i < 300_000; i++) {
      const bits = next();
      const x = f32FromBits(bits);
      if (Number.isNaN(x)) continue;
      // nearest of the two bfloat16 neighbours; ties to even
      const lo = bits >>> 16;
      const rest = bits & 0xffff;
      const expected = (rest > 0x8000 || (rest === 0x8000 && (lo & 1) === 1) ? lo + 1 : lo) & 0xffff;
      if (f32ToBf16(x) !== expected) wrong.push(`0x${bits.toString(16)}`);
    }
    assert.deepEqual(wrong, []);
  });
});
