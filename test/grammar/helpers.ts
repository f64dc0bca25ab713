// Shared by the grammar tests: the schema corpus, the example grammars, vocabularies.
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import formatsModule from "ajv-formats";
import { TESTDATA } from "../helpers/testdata.ts";

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
