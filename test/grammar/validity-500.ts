// 500 constrained generations over the JSON Schema corpus (bench/json-schemas.json), half on the
// real stories260K model and half on a synthetic model with the 151,936-token Qwen2 vocabulary,
// every output parsed and validated with ajv: 100% must be valid. Not part of `npm test` (about
// a minute): `npm run test:grammar-500`. The default suite runs a smaller sample of the same check.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadModel, defaultModelPath } from "../../src/index.ts";
import { schemaCorpus, tinyQwenVocabModel, validateCorpus } from "./helpers.ts";

const perModel = 250;
const perSchema = Math.ceil(perModel / schemaCorpus.length);

for (const [label, path, prompt] of [
  ["stories260K", () => Promise.resolve(defaultModelPath()), "Once upon a time"],
  ["qwen-vocab synthetic", tinyQwenVocabModel, "JSON:"],
] as const) {
  test(`${label}: ${perSchema * schemaCorpus.length} constrained generations, all valid under ajv`, async () => {
    const model = await loadModel(await path(), { threads: 1 });
    try {
      const n = await validateCorpus(model, prompt, perSchema, label, 1, 1000);
      assert.ok(n >= perModel, `${n} generations`);
    } finally {
      await model.dispose();
    }
  });
}
