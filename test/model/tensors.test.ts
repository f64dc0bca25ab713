// The tensor table (src/model/tensors.ts): names, shapes and per-architecture presence, as the
// loader and the synthetic-model writer use them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ReferenceBackend } from "../../src/backends/reference.ts";
import { ModelFileError } from "../../src/format/errors.ts";
import { supportedArchitectures, type ArchitectureName } from "../../src/model/architectures.ts";
import { readModelConfig } from "../../src/model/config.ts";
import { TENSORS, architectureTensors, hasMtpLayers, parseTensorName, presenceIn, tensorName } from "../../src/model/tensors.ts";
import { loadTransformerWeights } from "../../src/model/weights.ts";
import { openGGUFFile, writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { syntheticModel, type SyntheticModelSpec } from "../../src/tools/synthetic-model.ts";
import type { GGUFWriteSpec } from "../../src/format/gguf-writer.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-tensors-");

const small = (arch: ArchitectureName): SyntheticModelSpec => ({
  arch, dim: 64, ffnDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: arch === "qwen3" ? 32 : undefined,
  vocabSize: 300, contextLength: 64, weightType: GGMLType.Q8_0, seed: 5,
});

async function load(name: string, spec: GGUFWriteSpec) {
  const path = join(dir, name);
  await writeGGUFFile(path, spec, { overwrite: true });
  const file = await openGGUFFile(path);
  try {
    const config = readModelConfig(file);
    return { path, config, weights: await loadTransformerWeights(file, config, new ReferenceBackend()) };
  } finally {
    await file.close();
  }
}

test("every role's GGUF name parses back to the role and its layer", () => {
  for (const role of TENSORS) {
    const layer = role.scope === "model" ? undefined : 17;
    assert.deepEqual(parseTensorName(tensorName(role, layer)), layer === undefined ? { role } : { role, layer });
  }
  assert.equal(tensorName("wq", 3), "blk.3.attn_q.weight");
  assert.equal(tensorName("inputProj", 36), "blk.36.nextn.eh_proj.weight");
  assert.equal(parseTensorName("blk.0.attn_rot_embd"), undefined);
  assert.throws(() => tensorName("wq"), /needs a layer index/);
});

test("per-architecture tensors are llama.cpp's: q/k/v biases for Qwen2 and MiMo, q/k norms for Qwen3, MTP layers for MiMo", () => {
  const required = (arch: ArchitectureName) =>
    TENSORS.filter((r) => presenceIn(r, arch) === "required").map((r) => r.key).join(" ");
  const common = "tokenEmbd outputNorm attnNorm wq wk wv wo ffnNorm gate up down";
  const sorted = (s: string) => s.split(" ").sort().join(" ");
  assert.equal(sorted(required("llama")), sorted(common));
  assert.equal(sorted(required("qwen2")), sorted(common + " bq bk bv"));
  assert.equal(sorted(required("qwen3")), sorted(common + " qNorm kNorm"));
  assert.equal(sorted(required("mimo")), sorted(common + " bq bk bv tokenNorm hiddenNorm inputProj finalNorm"));
  assert.deepEqual(supportedArchitectures.filter(hasMtpLayers), ["mimo"]);
  assert.ok(architectureTensors("llama", "layer").some((r) => r.key === "bq"), "Llama may carry q/k/v biases");
});

for (const arch of supportedArchitectures) {
  test(`${arch}: a synthetic file holds the table's tensors at the table's shapes, and loads into the weight fields`, async () => {
    const spec = syntheticModel(small(arch));
    for (const t of spec.tensors) assert.ok(parseTensorName(t.name), `${t.name} is a table role`);
    const { config, weights } = await load(`${arch}.gguf`, spec);
    for (const t of spec.tensors) assert.deepEqual(t.shape, parseTensorName(t.name)!.role.shape(config), t.name);
    assert.equal(weights.layers.length, 2);
    assert.equal(weights.mtpLayers.length, hasMtpLayers(arch) ? 1 : 0);
    const L = weights.layers[1]!;
    assert.equal(L.bq !== undefined, arch === "qwen2" || arch === "mimo");
    assert.equal(L.qNorm?.length, arch === "qwen3" ? 32 : undefined);
    if (hasMtpLayers(arch)) assert.ok(weights.mtpLayers[0]!.inputProj && weights.mtpLayers[0]!.wq && weights.mtpLayers[0]!.finalNorm.length === 64);
  });
}

test("a tied file uses the token embedding as the output; an optional tensor present is loaded", async () => {
  const tied = await load("tied.gguf", syntheticModel({ ...small("llama"), tiedOutput: true }));
  assert.equal(tied.weights.output, tied.weights.tokenEmbd);
  // Llama with q biases (optional there): loaded.
  const spec = syntheticModel(small("llama"));
  const bias = syntheticModel(small("qwen2")).tensors.filter((t) => t.name.endsWith(".bias"));
  const withBias = await load("llama-bias.gguf", { ...spec, tensors: [...spec.tensors, ...bias] });
  assert.equal(withBias.weights.layers[0]!.bq?.length, 64);
  assert.notEqual(withBias.weights.output, withBias.weights.tokenEmbd, "an untied file has its own output matrix");
});

test("a required per-architecture tensor missing is an error naming the file and the tensor", async () => {
  const spec = syntheticModel(small("qwen2"));
  await assert.rejects(
    load("no-bias.gguf", { ...spec, tensors: spec.tensors.filter((t) => t.name !== "blk.1.attn_k.bias") }),
    (e: Error) => e instanceof ModelFileError && /no-bias\.gguf: required tensor "blk\.1\.attn_k\.bias" is missing/.test(e.message),
  );
  const mimo = syntheticModel(small("mimo"));
  await assert.rejects(
    load("no-mtp.gguf", { ...mimo, tensors: mimo.tensors.filter((t) => t.name !== "blk.2.nextn.hnorm.weight") }),
    /no-mtp\.gguf: required tensor "blk\.2\.nextn\.hnorm\.weight" is missing/,
  );
  const shape = syntheticModel(small("qwen3"));
  await assert.rejects(
    load("qnorm.gguf", {
      ...shape,
      tensors: shape.tensors.map((t) => (t.name === "blk.0.attn_q_norm.weight" ? { ...t, shape: [16], data: new Uint8Array(64) } : t)),
    }),
    /qnorm\.gguf: tensor "blk\.0\.attn_q_norm\.weight" has shape \[16\], expected \[32\]/,
  );
});
