// The type table and traits table: ggml's numbering, block layouts, sizes and typed errors.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  BlockSizeMismatchError,
  GGMLType,
  UnsupportedTensorTypeError,
  getQuantTraits,
  getWeightTraits,
  ggmlTypeFromName,
  ggmlTypeLayout,
  ggmlTypeName,
  isGGMLType,
  rowByteSize,
  supportedTypes,
  supportedWeightTypes,
  tensorByteSize,
} from "../../src/quant/traits.ts";

// enum ggml_type as ggml.h numbers it (ids 4, 5, 31-33, 36-38 were removed from ggml)
const GGML_H: Record<string, number> = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q8_1: 9, Q2_K: 10, Q3_K: 11, Q4_K: 12,
  Q5_K: 13, Q6_K: 14, Q8_K: 15, IQ2_XXS: 16, IQ2_XS: 17, IQ3_XXS: 18, IQ1_S: 19, IQ4_NL: 20, IQ3_S: 21,
  IQ2_S: 22, IQ4_XS: 23, I8: 24, I16: 25, I32: 26, I64: 27, F64: 28, IQ1_M: 29, BF16: 30, TQ1_0: 34,
  TQ2_0: 35, MXFP4: 39, NVFP4: 40, Q1_0: 41, Q2_0: 42,
};

// sizeof(block_*) and QK_* from ggml-common.h (as ggml_blck_size / ggml_type_size report them)
const BLOCK_LAYOUT: Record<string, [number, number]> = {
  F32: [1, 4], F16: [1, 2], BF16: [1, 2], Q4_0: [32, 18], Q4_1: [32, 20], Q5_0: [32, 22], Q5_1: [32, 24],
  Q8_0: [32, 34], Q8_1: [32, 36], Q2_K: [256, 84], Q3_K: [256, 110], Q4_K: [256, 144], Q5_K: [256, 176],
  Q6_K: [256, 210], Q8_K: [256, 292], IQ2_XXS: [256, 66], IQ2_XS: [256, 74], IQ3_XXS: [256, 98],
  IQ1_S: [256, 50], IQ4_NL: [32, 18], IQ3_S: [256, 110], IQ2_S: [256, 82], IQ4_XS: [256, 136],
  IQ1_M: [256, 56], TQ1_0: [256, 54], TQ2_0: [256, 66], MXFP4: [32, 17],
};

describe("GGML types", () => {
  test("have ggml.h's ids and names", () => {
    assert.deepEqual({ ...GGMLType }, GGML_H);
    for (const [name, id] of Object.entries(GGML_H)) {
      assert.equal(ggmlTypeName(id), name);
      assert.equal(ggmlTypeFromName(name.toLowerCase()), id);
      assert.ok(isGGMLType(id));
    }
  });

  test("unknown and removed ids are named by number", () => {
    assert.equal(ggmlTypeName(4), "unknown(4)");
    assert.equal(ggmlTypeName(99), "unknown(99)");
    assert.equal(isGGMLType(31), false);
    assert.equal(ggmlTypeLayout(36), undefined);
    assert.equal(ggmlTypeFromName("Q4_2"), undefined);
  });

  test("have ggml's block layouts, and the traits agree with them", () => {
    for (const [name, [blockSize, bytesPerBlock]] of Object.entries(BLOCK_LAYOUT)) {
      const layout = ggmlTypeLayout(GGML_H[name])!;
      assert.deepEqual([layout.blockSize, layout.bytesPerBlock], [blockSize, bytesPerBlock], name);
    }
    for (const type of supportedTypes) {
      const traits = getQuantTraits(type);
      const layout = ggmlTypeLayout(type)!;
      assert.equal(traits.name, layout.name);
      assert.equal(traits.blockSize, layout.blockSize);
      assert.equal(traits.bytesPerBlock, layout.bytesPerBlock);
    }
  });
});

describe("traits table", () => {
  test("supports the weight types F32, F16, BF16, the legacy quants, Q2_K..Q6_K and IQ4_NL, plus Q8_1 / Q8_K for activations", () => {
    assert.deepEqual(
      supportedWeightTypes.map(ggmlTypeName),
      ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL"],
    );
    assert.deepEqual(supportedTypes.filter((t) => !supportedWeightTypes.includes(t)).map(ggmlTypeName), ["Q8_1", "Q8_K"]);
    assert.equal(getQuantTraits(GGMLType.Q8_K).vecDot, null);
  });

  test("an unsupported tensor type is a typed error naming the tensor, the type and what is supported", () => {
    assert.throws(
      () => getQuantTraits(GGMLType.IQ2_XXS, "blk.0.attn_q.weight"),
      (e: unknown) => {
        assert.ok(e instanceof UnsupportedTensorTypeError);
        assert.equal(e.name, "UnsupportedTensorTypeError");
        assert.equal(e.type, GGMLType.IQ2_XXS);
        assert.equal(e.typeName, "IQ2_XXS");
        assert.equal(e.tensorName, "blk.0.attn_q.weight");
        assert.equal(
          e.message,
          'tensor "blk.0.attn_q.weight" has type IQ2_XXS, which mimo does not support ' +
            "(supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL); " +
            "use a GGUF file quantized to one of the supported types",
        );
        return true;
      },
    );
    assert.throws(() => getQuantTraits(77), /^UnsupportedTensorTypeError: type unknown\(77\) is not supported by mimo/);
    // activation-only types can't be the weight side of a dot product
    assert.throws(() => getWeightTraits(GGMLType.Q8_K, "x"), /tensor "x" has type Q8_K, which mimo does not support/);
    assert.equal(getWeightTraits(GGMLType.Q4_K).vecDotType, GGMLType.Q8_K);
    assert.equal(getWeightTraits(GGMLType.IQ4_NL, "token_embd.weight").name, "IQ4_NL");
    // IQ4_XS, its 256-block sibling, is still refused
    assert.throws(() => getWeightTraits(GGMLType.IQ4_XS, "x"), /tensor "x" has type IQ4_XS, which mimo does not support/);
  });

  test("rowByteSize and tensorByteSize size any GGML type, and reject rows that are not whole blocks", () => {
    assert.equal(rowByteSize(GGMLType.Q4_0, 64), 36);
    assert.equal(rowByteSize(GGMLType.Q4_K, 4096), 16 * 144);
    assert.equal(rowByteSize(GGMLType.IQ2_XXS, 512), 2 * 66); // unsupported for compute, but sizable
    assert.equal(rowByteSize(GGMLType.F32, 0), 0);
    assert.equal(tensorByteSize(GGMLType.Q6_K, [256, 3, 2]), 6 * 210);
    assert.equal(tensorByteSize(GGMLType.F16, [64]), 128);
    assert.throws(
      () => tensorByteSize(GGMLType.Q4_K, [172, 64], "blk.0.ffn_down.weight"),
      (e: unknown) =>
        e instanceof BlockSizeMismatchError &&
        e instanceof RangeError &&
        e.message === 'tensor "blk.0.ffn_down.weight" (type Q4_K): row length 172 is not a multiple of the block size 256',
    );
    assert.throws(() => rowByteSize(GGMLType.Q8_0, 33), BlockSizeMismatchError);
    assert.throws(() => rowByteSize(33, 32), UnsupportedTensorTypeError);
  });
});
