// JSON Schema to grammar: every text the grammar produces validates with ajv; the schema's
// property order is kept; unsupported keywords are errors naming the keyword.
import { test } from "node:test";
import assert from "node:assert/strict";
import { compileGrammar, GrammarEngine, JsonSchemaError, jsonSchemaToGbnf, randomText } from "../../src/grammar/index.ts";
import { SeededRandom } from "../../src/sampling/rng.ts";
import { newAjv, schemaCorpus } from "./helpers.ts";

test("the corpus has at least 30 schemas", () => {
  assert.ok(schemaCorpus.length >= 30);
});

for (const whitespace of ["minified", "compact", "flexible"] as const) {
  test(`random texts of every corpus schema's grammar (${whitespace}) are JSON that ajv validates`, () => {
    const ajv = newAjv();
    const rng = new SeededRandom(42);
    for (const { name, schema } of schemaCorpus) {
      const e = new GrammarEngine(compileGrammar(jsonSchemaToGbnf(schema, { whitespace })));
      const validate = ajv.compile(schema as object);
      for (let i = 0; i < 25; i++) {
        const text = new TextDecoder().decode(randomText(e, { random: () => rng.next(), softLimit: 80 }));
        let value: unknown;
        assert.doesNotThrow(() => (value = JSON.parse(text)), `${name}: not JSON: ${text}`);
        assert.ok(validate(value), `${name}: ${text} fails: ${JSON.stringify(validate.errors)}`);
      }
    }
  });
}

/** The default (minified) layout of a text written with a space after `:` and `,` (none of these texts has them inside strings). */
function min(text: string): string {
  return text.replace(/": /g, '":').replace(/, "/g, ',"');
}

test("layouts: minified (the default) has no whitespace, compact a space after : and , only, flexible any", () => {
  const schema = { type: "object", properties: { a: { type: "integer" }, b: { type: "array", items: { type: "integer" } }, c: { const: { x: [1, 2] } } }, required: ["a", "b", "c"] };
  const spaced = '{"a": 1, "b": [1, 2], "c": {"x": [1, 2]}}';
  const minified = '{"a":1,"b":[1,2],"c":{"x":[1,2]}}';
  const def = new GrammarEngine(compileGrammar(jsonSchemaToGbnf(schema)));
  assert.equal(def.matches(minified), true);
  assert.equal(def.matches(spaced), false);
  const compact = new GrammarEngine(compileGrammar(jsonSchemaToGbnf(schema, { whitespace: "compact" })));
  assert.equal(compact.matches(spaced), true);
  assert.equal(compact.matches(minified), false);
  const flexible = new GrammarEngine(compileGrammar(jsonSchemaToGbnf(schema, { whitespace: "flexible" })));
  assert.equal(flexible.matches(minified), true);
  // (a const value is one literal, written without whitespace)
  assert.equal(flexible.matches('{ "a": 1 ,\n  "b": [ 1, 2 ], "c": {"x":[1,2]} }'), true);
  assert.throws(() => jsonSchemaToGbnf(schema, { whitespace: "pretty" as never }), /whitespace must be "minified", "compact" or "flexible", got "pretty"/);
});

test("texts that break the schema are rejected", () => {
  const schema = {
    type: "object",
    properties: { device: { enum: ["light", "tv"] }, level: { type: "integer", minimum: 0, maximum: 100 }, at: { type: "string", format: "time" } },
    required: ["device", "level"],
  };
  const e = new GrammarEngine(compileGrammar(jsonSchemaToGbnf(schema)));
  assert.equal(e.matches(min('{"device": "light", "level": 100}')), true);
  assert.equal(e.matches(min('{"device": "tv", "level": 0, "at": "23:59:59Z"}')), true);
  assert.equal(e.matches(min('{"device": "lamp", "level": 1}')), false);
  assert.equal(e.matches(min('{"device": "tv", "level": 101}')), false);
  assert.equal(e.matches(min('{"device": "tv", "level": -1}')), false);
  assert.equal(e.matches(min('{"device": "tv", "level": 05}')), false);
  assert.equal(e.matches(min('{"level": 5, "device": "tv"}')), false); // schema order
  assert.equal(e.matches(min('{"device": "tv"}')), false); // required
  assert.equal(e.matches(min('{"device": "tv", "level": 1, "extra": 1}')), false); // additionalProperties defaults to false
  assert.equal(e.matches(min('{"device": "tv", "level": 1, "at": "24:00:00Z"}')), false);
});

test("integer ranges are exact at their edges", () => {
  for (const [lo, hi] of [[0, 100], [-123, 4567], [16, 30], [7, 7], [-50, -3], [99, 1001]]) {
    const e = new GrammarEngine(compileGrammar(jsonSchemaToGbnf({ type: "integer", minimum: lo, maximum: hi })));
    for (let v = lo - 30; v <= hi + 30; v++) assert.equal(e.matches(String(v)), v >= lo! && v <= hi!, `${v} in [${lo}, ${hi}]`);
    assert.equal(e.matches("-0"), false);
  }
});

test("property order is the schema's, optional properties keep their place", () => {
  const e = new GrammarEngine(compileGrammar(jsonSchemaToGbnf({ type: "object", properties: { z: { type: "integer" }, a: { type: "integer" }, m: { type: "integer" } }, required: ["m"] })));
  assert.equal(e.matches(min('{"z": 1, "a": 2, "m": 3}')), true);
  assert.equal(e.matches(min('{"a": 2, "m": 3}')), true);
  assert.equal(e.matches(min('{"m": 3}')), true);
  assert.equal(e.matches(min('{"a": 2, "z": 1, "m": 3}')), false);
  assert.equal(e.matches(min('{"z": 1, "a": 2}')), false);
});

test("additional properties never repeat a declared name", () => {
  const e = new GrammarEngine(compileGrammar(jsonSchemaToGbnf({ type: "object", properties: { id: { type: "integer" } }, required: ["id"], additionalProperties: { type: "string" } })));
  assert.equal(e.matches(min('{"id": 1, "idx": "a", "i": "b", "name": "c"}')), true);
  assert.equal(e.matches(min('{"id": 1, "id": "a"}')), false);
});

test("unsupported keywords and bad schemas are errors that name the keyword and where it is", () => {
  const bad: [unknown, RegExp][] = [
    [{ type: "array", uniqueItems: true }, /#: unsupported keyword "uniqueItems"/],
    [{ type: "object", properties: { a: { not: { type: "string" } } } }, /#\/properties\/a: unsupported keyword "not"/],
    [{ type: "object", patternProperties: { "^x": {} } }, /unsupported keyword "patternProperties"/],
    [{ if: { type: "string" }, then: {} }, /unsupported keyword "if"/],
    [{ type: "string", format: "email" }, /unsupported format "email"/],
    [{ type: "number", minimum: 0 }, /"minimum" is supported on integers only/],
    [{ type: "string", pattern: "abc" }, /must start with \^ and end with \$/],
    [{ $ref: "https://example.com/s.json" }, /only local references/],
    [{ $ref: "#/$defs/missing" }, /points at nothing/],
    [{ type: "object", properties: {}, required: ["x"] }, /required property "x" is not in properties/],
    [{ type: "wat" }, /unknown type "wat"/],
    [{ type: "integer", minimum: 5, maximum: 4 }, /no integer lies between/],
    ["{not json", /not valid JSON/],
    [[1, 2], /must be an object or a boolean/],
  ];
  for (const [schema, re] of bad) {
    assert.throws(() => jsonSchemaToGbnf(schema), (e: unknown) => e instanceof JsonSchemaError && re.test(e.message), `for ${JSON.stringify(schema)}`);
  }
});
