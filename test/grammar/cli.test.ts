// `mimo run --json-schema FILE` / `--grammar FILE` as a user runs them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { newAjv } from "./helpers.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));
const dir = tempDir("mimo-grammar-cli-");

function mimo(...args: string[]) {
  const r = spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("mimo run --json-schema prints JSON that validates, and the forced-token count", () => {
  const schema = { type: "object", properties: { hero: { type: "string", maxLength: 12 }, age: { type: "integer", minimum: 1, maximum: 9 }, brave: { type: "boolean" } }, required: ["hero", "age", "brave"] };
  const file = join(dir, "hero.json");
  writeFileSync(file, JSON.stringify(schema));
  const r = mimo("run", "Once upon a time", "--json-schema", file, "-n", "80", "-s", "3", "-t", "1");
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout.slice("Once upon a time".length).trim();
  assert.ok(newAjv().compile(schema)(JSON.parse(out)), out);
  assert.match(r.stderr, /forced \d+ tok, \d+ forward passes saved \| finish: stop/);
});

test("mimo run --grammar follows a GBNF file; bad files are clear errors", () => {
  const file = join(dir, "yesno.gbnf");
  writeFileSync(file, 'root ::= " " ("yes" | "no") "."\n');
  const r = mimo("run", "Is it", "--grammar", file, "-q", "-t", "1");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Is it (yes|no)\.\n$/);
  const missing = mimo("run", "x", "--grammar", join(dir, "nope.gbnf"));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--grammar .*nope\.gbnf: no such file/);
  const badSchema = join(dir, "bad.json");
  writeFileSync(badSchema, '{"type": "string", "format": "email"}');
  const bad = mimo("run", "x", "--json-schema", badSchema);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unsupported format "email"/);
});
