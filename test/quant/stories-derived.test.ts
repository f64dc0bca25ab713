// The GGUF files llama-quantize made from stories260K.gguf (test/data/stories260K/derived/):
// dequantizing their tensors gives back the F32 weights to within each type's precision, and
// quantizing the F32 weights with mimo's quantizers gives exactly the bytes llama.cpp wrote
// (including the IQ4_NL tensors llama.cpp falls back to in the Q2_K file, whose quantizer
// searches for the block scale).
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import type { GGUFFile } from "../../src/format/gguf-reader.ts";
import { openGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType, ggmlTypeName } from "../../src/quant/ggml-type.ts";
import { UnsupportedTensorTypeError, getQuantTraits, isSupportedType, rowByteSize } from "../../src/quant/traits.ts";
import { STORIES_F32, TESTDATA } from "./quant-test-data.ts";

const DERIVED = `${TESTDATA}/derived`;

/**
 * Largest |dequantized - f32| allowed, as a fraction of the tensor's largest |x| (test/data's
 * README saw F16 4e-4, Q8_0 4e-3, Q5_1 3e-2, Q5_0 5e-2, IQ4_NL 8e-2). The limits are the formats'
 * worst cases: half a step of the block scale, plus the fp16 rounding of the scales; Q5_0 can clip
 * by a whole step (levels -16..15 with the block's extreme at -16). IQ4_NL's non-uniform levels
 * and fitted scale have no such simple bound: it gets the README's figure, which is the observed
 * maximum rounded (blk.0.ffn_gate.weight of the Q2_K file is at 0.0801; the bytes are llama.cpp's
 * own, see below, so this is the file's error, not ours).
 */
const TOLERANCE: Record<string, number> = {
  F32: 0,
  F16: 2 ** -11,
  Q8_0: 0.5 / 127 + 2 ** -10,
  Q5_1: 2 * (0.5 / 31) + 2 ** -10,
  Q5_0: 1 / 16 + 2 ** -10,
  IQ4_NL: 8.1e-2,
};

/** Per type, how many tensors of the derived files were re-quantized to exactly the file's bytes. */
const reproduced = new Map<string, number>();

const files = readdirSync(DERIVED).filter((f) => f.endsWith(".gguf")).sort();

function asF32(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}

describe("stories260K files quantized by llama.cpp", () => {
  let reference: GGUFFile;
  before(async () => {
    reference = await openGGUFFile(STORIES_F32);
  });
  after(async () => {
    await reference.close();
  });

  test("the derived files exist", () => {
    assert.deepEqual(files, [
      "stories260K-F16.gguf",
      "stories260K-Q2_K.gguf",
      "stories260K-Q4_K_M.gguf",
      "stories260K-Q5_K_S.gguf",
      "stories260K-Q6_K.gguf",
    ]);
  });

  for (const file of files) {
    describe(file, () => {
      let g: GGUFFile;
      before(async () => {
        g = await openGGUFFile(`${DERIVED}/${file}`);
      });
      after(async () => {
        await g.close();
      });

      test("every tensor of a supported type dequantizes to its F32 original, row by row", async () => {
        let checked = 0;
        for (const t of g.tensors) {
          if (!isSupportedType(t.type)) continue;
          const traits = getQuantTraits(t.type, t.name);
          const rowLength = t.shape[0];
          const rows = t.shape.slice(1).reduce((a, b) => a * b, 1);
          const bytes = await g.readTensorBytes(t.name);
          assert.equal(bytes.length, rowByteSize(t.type, rowLength) * rows, `${t.name}: byte size`);
          const deq = new Float32Array(rowLength * rows);
          const rowBytes = rowByteSize(t.type, rowLength);
          for (let r = 0; r < rows; r++) traits.dequantizeRow(bytes, r * rowBytes, deq, r * rowLength, rowLength);

          const original = asF32(await reference.readTensorBytes(t.name));
          assert.equal(original.length, deq.length, `${t.name}: element count`);
          let maxAbs = 0;
          let maxErr = 0;
          for (let i = 0; i < deq.length; i++) {
            maxAbs = Math.max(maxAbs, Math.abs(original[i]));
            maxErr = Math.max(maxErr, Math.abs(deq[i] - original[i]));
          }
          const tolerance = TOLERANCE[ggmlTypeName(t.type)];
          assert.ok(maxErr <= tolerance * maxAbs, `${t.name} (${ggmlTypeName(t.type)}): max error ${maxErr / maxAbs} of max |x| > ${tolerance}`);
          checked++;
        }
        assert.ok(checked > 0);
      });

      test("quantizing the F32 originals reproduces the file's bytes exactly", async () => {
        const differing: string[] = [];
        for (const t of g.tensors) {
          if (!isSupportedType(t.type)) continue;
          const traits = getQuantTraits(t.type, t.name);
          const original = asF32(await reference.readTensorBytes(t.name));
          const ours = new Uint8Array(rowByteSize(t.type, original.length));
          traits.quantizeRow(original, 0, ours, 0, original.length);
          const theirs = await g.readTensorBytes(t.name);
          const typeName = ggmlTypeName(t.type);
          if (Buffer.compare(ours, theirs) !== 0) differing.push(`${t.name} (${typeName})`);
          else reproduced.set(typeName, (reproduced.get(typeName) ?? 0) + 1);
        }
        assert.deepEqual(differing, []);
      });

      test("every tensor has a type mimo supports", () => {
        const unsupported = g.tensors.filter((t) => !isSupportedType(t.type)).map((t) => `${t.name} (${ggmlTypeName(t.type)})`);
        assert.deepEqual(unsupported, []);
      });
    });
  }

  test("the files cover the types the README lists, and every tensor of each was reproduced byte for byte", async () => {
    const count = new Map<string, number>();
    for (const file of files) {
      const g = await openGGUFFile(`${DERIVED}/${file}`);
      for (const t of g.tensors) count.set(ggmlTypeName(t.type), (count.get(ggmlTypeName(t.type)) ?? 0) + 1);
      await g.close();
    }
    assert.deepEqual([...count.keys()].sort(), ["F16", "F32", "IQ4_NL", "Q5_0", "Q5_1", "Q8_0"]);
    // the Q2_K file's IQ4_NL tensors: token_embd and the 6 block matrices other than ffn_down, 5 blocks
    assert.equal(count.get("IQ4_NL"), 31);
    // (the per-file tests ran first; if one failed, this reports which types fell short)
    assert.deepEqual(Object.fromEntries([...reproduced].sort()), Object.fromEntries([...count].sort()));
  });

  test("a tensor of a type mimo does not support is refused with an error naming the tensor and its type", () => {
    assert.equal(isSupportedType(GGMLType.IQ4_XS), false);
    assert.throws(
      () => getQuantTraits(GGMLType.IQ4_XS, "blk.0.attn_q.weight"),
      (e: unknown) =>
        e instanceof UnsupportedTensorTypeError &&
        e.tensorName === "blk.0.attn_q.weight" &&
        e.message.startsWith('tensor "blk.0.attn_q.weight" has type IQ4_XS, which mimo does not support'),
    );
  });
});
