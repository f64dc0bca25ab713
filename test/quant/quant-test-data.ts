// Shared test data of the quant tests and of fixtures/gen-llama-cpp-golden.ts.
//
// Deterministic test rows for the quantizers: weight-like and adversarial distributions, built
// with integer arithmetic and exact float operations only (no Math.pow/log/sin, whose last bit
// may differ between JavaScript engines), so the fixture generator and the tests see identical
// float32 inputs.

import { createHash } from "node:crypto";
import { openGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType, ggmlTypeName } from "../../src/quant/ggml-type.ts";
import { supportedTypes, supportedWeightTypes } from "../../src/quant/traits.ts";

export const SYNTHETIC_ROW_LENGTH = 256;

import { STORIES_DIR } from "../helpers/testdata.ts";
export const TESTDATA = STORIES_DIR;
export const STORIES_F32 = `${TESTDATA}/stories260K.gguf`;

/** Types whose quantizers the golden file covers: every type of the traits table but F32 (it stores the values themselves). */
export const QUANT_TYPES: string[] = supportedTypes.filter((t) => t !== GGMLType.F32).map(ggmlTypeName);
/** Weight types whose vec_dot the golden file covers: every weight type of the traits table. */
export const DOT_TYPES: string[] = supportedWeightTypes.map(ggmlTypeName);
/** Row lengths of the vec_dot goldens: one K super-block (8 legacy blocks), and 8 super-blocks. */
export const DOT_LENGTHS = [256, 2048];

/** sha256 of the bytes, first 16 hex digits (64 bits: plenty to detect a difference). */
export function digest(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

/** The activation row paired with weight row r in the vec_dot goldens. */
export function partnerRow(r: number, rows: number): number {
  return (r * 7 + 3) % rows;
}

/** Rows reordered so that row r holds row partnerRow(r). */
export function partnerRows(x: Float32Array, n = SYNTHETIC_ROW_LENGTH): Float32Array {
  const rows = x.length / n;
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const p = partnerRow(r, rows);
    out.set(x.subarray(p * n, p * n + n), r * n);
  }
  return out;
}

/**
 * The F32 tensors of stories260K.gguf whose size is a multiple of 256 (all but the norms),
 * flattened, in file order.
 */
export async function storiesTensors(): Promise<{ name: string; data: Float32Array }[]> {
  const g = await openGGUFFile(STORIES_F32);
  try {
    const out: { name: string; data: Float32Array }[] = [];
    for (const t of g.tensors) {
      const count = t.shape.reduce((a, b) => a * b, 1);
      if (t.type !== GGMLType.F32 || count % 256 !== 0) continue;
      const bytes = await g.readTensorBytes(t.name);
      out.push({ name: t.name, data: new Float32Array(bytes.slice().buffer) });
    }
    return out;
  } finally {
    await g.close();
  }
}

/** xorshift32: a tiny deterministic uint32 stream. */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Uniform in [0, 1) with 24 random bits (exact in float32). */
function uniform(next: () => number): number {
  return (next() >>> 8) / 16777216;
}

/** Approximately standard normal (Irwin-Hall sum of 12 uniforms); exact in float64. */
function gaussian(next: () => number): number {
  let s = 0;
  for (let i = 0; i < 12; i++) s += uniform(next);
  return s - 6;
}

// Magnitudes from fp16-subnormal block scales to near fp16 overflow (literals, not 10 ** k).
const SCALES = [1e-9, 1e-6, 3e-4, 0.004, 0.02, 0.05, 0.1, 0.3, 1, 2.5, 10, 300, 6000];

/**
 * The synthetic rows (each SYNTHETIC_ROW_LENGTH long), concatenated. Row kinds: Gaussian at many
 * scales, heavy tails, offsets (all-positive / all-negative rows), sparsity, sub-blocks of zeros,
 * constants, lone outliers, exact rounding ties, and magnitudes where fp16 scales underflow.
 */
export function syntheticRows(): Float32Array {
  const n = SYNTHETIC_ROW_LENGTH;
  const rows: Float32Array[] = [];
  const next = xorshift32(0x6d696d6f); // "mimo"
  const add = (value: (i: number) => number) => {
    const row = new Float32Array(n);
    for (let i = 0; i < n; i++) row[i] = value(i);
    rows.push(row);
  };
  for (const s of SCALES) add(() => gaussian(next) * s);
  for (const s of [0.02, 1, 300]) add(() => gaussian(next) * gaussian(next) * s); // heavy tails
  for (const s of [0.05, 2.5]) add(() => gaussian(next) * s + 3 * s); // mostly positive
  for (const s of [0.05, 2.5]) add(() => -Math.abs(gaussian(next)) * s - s); // all negative
  add(() => Math.abs(gaussian(next))); // all non-negative, min 0
  add(() => (uniform(next) < 0.7 ? 0 : gaussian(next) * 0.1)); // sparse
  add((i) => ((i >> 4) % 2 === 1 ? 0 : gaussian(next) * 0.1)); // every other 16-element sub-block zero
  add((i) => ((i >> 5) % 3 === 0 ? 0 : gaussian(next) * 0.1)); // some 32-element sub-blocks zero
  add((i) => (i < 128 ? 0.001 : 1000) * gaussian(next)); // wildly different halves
  add((i) => (i >> 5) * 0.25 * gaussian(next)); // sub-block scales growing along the row
  add(() => 0);
  add(() => 1);
  add(() => -2.5);
  add((i) => (i === 77 ? 5 : 0)); // lone outlier
  add((i) => (i === 200 ? -5 : gaussian(next) * 0.01)); // outlier over noise
  add((i) => (i % 16 === 0 ? -3 : 0));
  add((i) => i - 128); // integer ramp
  add((i) => (i % 32) / 4 - 4); // quarter steps: exact ties for several block types
  add((i) => ((i * 37) % 17) - 8);
  add((i) => ((i * 11) % 31) / 2 - 7.5); // half-integers
  add(() => (next() & 1 ? 1 : -1) * 0.5); // +-0.5 only
  add(() => gaussian(next) * 1e-30); // scales underflow fp16 to zero
  add(() => gaussian(next) * 65000); // near the fp16 maximum
  for (let k = 0; k < 24; k++) {
    // mixed rows: random scale, sparsity and offset per row
    const s = SCALES[next() % SCALES.length];
    const sparse = uniform(next) < 0.3 ? uniform(next) : 0;
    const shift = uniform(next) < 0.3 ? gaussian(next) * s * 3 : 0;
    const heavy = uniform(next) < 0.3;
    add(() => (uniform(next) < sparse ? 0 : (heavy ? gaussian(next) * gaussian(next) : gaussian(next)) * s + shift));
  }
  const all = new Float32Array(rows.length * n);
  rows.forEach((row, r) => all.set(row, r * n));
  return all;
}
