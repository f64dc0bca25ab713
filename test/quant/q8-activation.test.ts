// quantizeActivationRow of Q8_0 / Q8_1: how llama.cpp's x86 CPU backend (AVX2 quantize_row_q8_0 /
// q8_1) quantizes activations at run time. It scales by 127/amax and rounds ties to even, where
// the reference quantizer (quantizeRow, for files) multiplies by 1/d and rounds ties away from
// zero; d = amax/127 is the same, and Q8_1's s is fp16(d * sum(q)) with d in float32.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { f16ToF32, f32ToF16 } from "../../src/quant/half.ts";
import { GGMLType, getQuantTraits, ggmlTypeName, rowByteSize, supportedTypes } from "../../src/quant/traits.ts";
import type { GGMLTypeId } from "../../src/quant/traits.ts";
import { xorshift32 } from "./quant-test-data.ts";

const f32 = Math.fround;
const Q8_0 = getQuantTraits(GGMLType.Q8_0);
const Q8_1 = getQuantTraits(GGMLType.Q8_1);

interface Block {
  dBits: number;
  sBits: number | undefined;
  q: number[];
}

/** Quantizes x with `which` of the two quantizers of `type`, and splits the row into blocks. */
function run(type: GGMLTypeId, which: "quantizeRow" | "quantizeActivationRow", x: Float32Array): Block[] {
  const traits = type === GGMLType.Q8_0 ? Q8_0 : Q8_1;
  const bytes = new Uint8Array(rowByteSize(type, x.length));
  traits[which]!(x, 0, bytes, 0, x.length);
  const qsAt = type === GGMLType.Q8_1 ? 4 : 2;
  const blocks: Block[] = [];
  for (let p = 0; p < bytes.length; p += traits.bytesPerBlock) {
    blocks.push({
      dBits: bytes[p] | (bytes[p + 1] << 8),
      sBits: type === GGMLType.Q8_1 ? bytes[p + 2] | (bytes[p + 3] << 8) : undefined,
      q: Array.from(bytes.subarray(p + qsAt, p + qsAt + 32), (b) => (b << 24) >> 24),
    });
  }
  return blocks;
}

function gaussian(next: () => number): number {
  let g = -6;
  for (let k = 0; k < 12; k++) g += (next() >>> 8) / 16777216;
  return g;
}

function blockAmax(x: Float32Array, b: number): number {
  let amax = 0;
  for (let j = 32 * b; j < 32 * b + 32; j++) amax = Math.max(amax, Math.abs(x[j]));
  return amax;
}

/**
 * Rows whose block maxima are 127 * 2^k, so both 127/amax and 1/(amax/127) are exactly 2^-k and
 * x * id is exact: the quantizers can then differ only in how they round exact ties. Half the
 * other elements sit on ties (odd multiples of 2^(k-1)), the rest are random.
 */
function powerOfTwoRows(): Float32Array {
  const next = xorshift32(0x7e4);
  const exps = [-20, -6, -1, 0, 3, 10];
  const x = new Float32Array(32 * 4 * exps.length);
  for (let b = 0; b < x.length / 32; b++) {
    const unit = 2 ** exps[b % exps.length];
    for (let j = 0; j < 32; j++) {
      const m = (next() % 253) - 126; // |m| <= 126
      x[32 * b + j] = next() & 1 ? (m + 0.5) * unit : f32(gaussian(next) * 40 * unit);
    }
    x[32 * b + (next() % 32)] = (next() & 1 ? 127 : -127) * unit;
  }
  return x;
}

/** Weight- and activation-like rows with no special structure, at many magnitudes. */
function randomRows(): Float32Array {
  const next = xorshift32(0xac7);
  const x = new Float32Array(32 * 3000);
  const scales = [1e-6, 0.01, 0.3, 1, 7, 300];
  for (let b = 0; b < x.length / 32; b++) {
    const s = scales[b % scales.length];
    for (let j = 0; j < 32; j++) x[32 * b + j] = gaussian(next) * s + (b % 5 === 0 ? s : 0);
  }
  return x;
}

describe("Q8_0 / Q8_1 quantizeActivationRow (llama.cpp's AVX2 activation quantizer)", () => {
  test("exists for Q8_0 and Q8_1 only", () => {
    const withIt = supportedTypes.filter((t) => getQuantTraits(t).quantizeActivationRow !== undefined).map(ggmlTypeName);
    assert.deepEqual(withIt, ["Q8_0", "Q8_1"]);
  });

  test("a hand-computed block: d = 1, exact ties round to even (quantizeRow rounds them away from zero)", () => {
    const x = new Float32Array(32);
    x.set([127, -127, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 3.5, -3.5, 126.5, -126.5, 100.4, -100.6, 0.49, 4.5]);
    const ref = [127, -127, 3, -3, 1, -1, 2, -2, 4, -4, 127, -127, 100, -101, 0, 5, ...Array(16).fill(0)];
    const act = [127, -127, 2, -2, 0, 0, 2, -2, 4, -4, 126, -126, 100, -101, 0, 4, ...Array(16).fill(0)];
    for (const type of [GGMLType.Q8_0, GGMLType.Q8_1]) {
      const [r] = run(type, "quantizeRow", x);
      const [a] = run(type, "quantizeActivationRow", x);
      assert.equal(a.dBits, 0x3c00);
      assert.equal(r.dBits, 0x3c00);
      assert.deepEqual(r.q, ref);
      assert.deepEqual(a.q, act);
      if (type === GGMLType.Q8_1) {
        assert.equal(r.sBits, f32ToF16(4)); // d = 1, sum(q) = 4
        assert.equal(a.sBits, f32ToF16(3)); // d = 1, sum(q) = 3
      }
    }
  });

  for (const type of [GGMLType.Q8_0, GGMLType.Q8_1]) {
    const name = ggmlTypeName(type);

    test(`${name}: with exact scales, equals quantizeRow except on exact .5 ties, which round to even`, () => {
      const x = powerOfTwoRows();
      const ref = run(type, "quantizeRow", x);
      const act = run(type, "quantizeActivationRow", x);
      let ties = 0;
      for (let b = 0; b < act.length; b++) {
        const unit = blockAmax(x, b) / 127;
        assert.equal(act[b].dBits, ref[b].dBits, `block ${b}: d`);
        for (let j = 0; j < 32; j++) {
          const t = x[32 * b + j] / unit; // exact
          if (t - Math.floor(t) === 0.5) {
            ties++;
            const even = Math.floor(t) % 2 === 0 ? Math.floor(t) : Math.ceil(t);
            assert.equal(act[b].q[j], even, `block ${b} element ${j}: ${t}`);
            assert.equal(ref[b].q[j], t < 0 ? Math.floor(t) : Math.ceil(t), `block ${b} element ${j}: ${t}`);
          } else {
            assert.equal(act[b].q[j], ref[b].q[j], `block ${b} element ${j}: ${t}`);
          }
        }
      }
      assert.ok(ties > act.length * 8, `only ${ties} ties`);
    });

    test(`${name}: on random rows, d is quantizeRow's and q differs from it only next to a .5 (127/amax vs 1/d rounding)`, () => {
      const x = randomRows();
      const ref = run(type, "quantizeRow", x);
      const act = run(type, "quantizeActivationRow", x);
      let differing = 0;
      for (let b = 0; b < act.length; b++) {
        const amax = blockAmax(x, b);
        assert.equal(act[b].dBits, ref[b].dBits, `block ${b}: d`);
        for (let j = 0; j < 32; j++) {
          const t = (x[32 * b + j] * 127) / amax;
          // round to nearest of x * 127/amax, evaluated in float32
          assert.ok(Math.abs(act[b].q[j] - f32(x[32 * b + j] * f32(127 / amax))) <= 0.5, `block ${b} element ${j}`);
          if (act[b].q[j] !== ref[b].q[j]) {
            differing++;
            assert.ok(Math.abs(Math.abs(t - Math.trunc(t)) - 0.5) < 3e-5, `block ${b} element ${j}: ${t} is not near a tie`);
            assert.equal(Math.abs(act[b].q[j] - ref[b].q[j]), 1);
          }
        }
      }
      assert.ok(differing < act.length * 32 * 1e-3, `${differing} elements differ`);
    });
  }

  test("Q8_1: s = fp16(d * sum(q)) with the float32 d = amax/127, and d, q equal Q8_0's activation blocks", () => {
    for (const [x, random] of [[powerOfTwoRows(), false], [randomRows(), true]] as const) {
      const q81 = run(GGMLType.Q8_1, "quantizeActivationRow", x);
      const q80 = run(GGMLType.Q8_0, "quantizeActivationRow", x);
      let roundedDWouldDiffer = 0;
      for (let b = 0; b < q81.length; b++) {
        assert.equal(q81[b].dBits, q80[b].dBits);
        assert.deepEqual(q81[b].q, q80[b].q);
        const d = f32(blockAmax(x, b) / 127);
        const sum = q81[b].q.reduce((a, v) => a + v, 0);
        assert.equal(q81[b].sBits, f32ToF16(f32(d * sum)), `block ${b}`);
        if (f32ToF16(f32(d * sum)) !== f32ToF16(f32(f16ToF32(q81[b].dBits) * sum))) roundedDWouldDiffer++;
      }
      // the distinction is real: with the fp16-rounded d, s would come out differently in places
      if (random) assert.ok(roundedDWouldDiffer > 0);
    }
  });
});
