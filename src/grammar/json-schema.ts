// JSON Schema to GBNF. Covers llama.cpp's subset (types, properties, required,
// additionalProperties, enum, const, anyOf/oneOf, allOf of objects, items/minItems/maxItems,
// string minLength/maxLength/pattern `^...$`, formats date/time/date-time/uuid, integer
// minimum/maximum, local $ref including recursion) and keeps the schema's property order. Any
// keyword outside it is an error naming the keyword and where it is (llama.cpp skips them silently).

import { normalizeRanges } from "./compile.ts";
import type { CodepointRanges } from "./gbnf.ts";

export class JsonSchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JsonSchemaError";
  }
}

export interface JsonSchemaOptions {
  /**
   * "minified" (default): no whitespace at all, `{"a":1,"b":[1,2]}`: the structure is forced and
   * costs no sampling (jump-forward), in the fewest tokens (Qwen2's vocabulary: 15 tokens for
   * `{"device":"tv","action":"on","value":8}`-shaped output where "compact" takes 20, and every
   * forced token still goes through the model).
   * "compact": one fixed layout with a space after `:` and `,`, `{"a": 1, "b": [1, 2]}` (Python's
   * json.dumps layout), also forced.
   * "flexible": llama.cpp's optional whitespace after every token (space, or a newline and up to
   * 20 spaces or tabs).
   */
  readonly whitespace?: "minified" | "compact" | "flexible";
  /**
   * Name of the rule that matches the whole value. Default "root"; another name lets the rules go
   * inside a larger grammar (one whose own root wraps the value, e.g. a tool call's tags).
   */
  readonly rootName?: string;
}

/** Keywords that describe and do not constrain: accepted and ignored. */
const ANNOTATIONS = new Set([
  "$schema", "$id", "$comment", "title", "description", "default", "examples", "$defs", "definitions",
  "readOnly", "writeOnly", "deprecated", "strict", "nullable_", "$anchor_",
]);

const HANDLED = new Set([
  "type", "properties", "required", "additionalProperties", "enum", "const", "anyOf", "oneOf", "allOf",
  "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
  "exclusiveMinimum", "exclusiveMaximum", "$ref",
]);

const FORMATS = ["date", "time", "date-time", "uuid"];

type Schema = Record<string, unknown> | boolean;

/** A GBNF grammar for `json_object` mode: any JSON value. */
export function jsonValueGbnf(opts: JsonSchemaOptions = {}): string {
  return jsonSchemaToGbnf({}, opts);
}

/** Converts a JSON Schema (an object, or true/false) to GBNF text with a `root` rule. */
export function jsonSchemaToGbnf(schema: unknown, opts: JsonSchemaOptions = {}): string {
  if (typeof schema === "string") {
    try {
      schema = JSON.parse(schema);
    } catch (e) {
      throw new JsonSchemaError(`the JSON Schema is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (!(typeof schema === "boolean" || (typeof schema === "object" && schema !== null && !Array.isArray(schema)))) {
    throw new JsonSchemaError(`a JSON Schema must be an object or a boolean, got ${Array.isArray(schema) ? "an array" : typeof schema}`);
  }
  return new Converter(schema as Schema, opts).run();
}

function gbnfLiteral(text: string): string {
  let out = '"';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (c === 10) out += "\\n";
    else if (c === 13) out += "\\r";
    else if (c === 9) out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + '"';
}

function classChar(c: number): string {
  if (/[A-Za-z0-9 ]/.test(String.fromCodePoint(c))) return String.fromCodePoint(c);
  if (c <= 0xff) return "\\x" + c.toString(16).padStart(2, "0");
  if (c <= 0xffff) return "\\u" + c.toString(16).padStart(4, "0");
  return "\\U" + c.toString(16).padStart(8, "0");
}

function gbnfClass(ranges: readonly (readonly [number, number])[]): string {
  return "[" + ranges.map(([a, b]) => (a === b ? classChar(a) : classChar(a) + "-" + classChar(b))).join("") + "]";
}

const JSON_ESCAPES: Record<number, string> = { 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r", 34: '\\"', 92: "\\\\" };

/** A set of characters as they may appear inside a JSON string (quotes, backslashes and controls escaped). */
function jsonCharSet(ranges: [number, number][]): string {
  const plain: [number, number][] = [];
  const escaped: string[] = [];
  for (const [a, b] of ranges) {
    let lo = a;
    for (let c = a; c <= Math.min(b, 0x5c); c++) {
      if (c < 0x20 || c === 0x22 || c === 0x5c) {
        if (lo < c) plain.push([lo, c - 1]);
        lo = c + 1;
        escaped.push(gbnfLiteral(JSON_ESCAPES[c] ?? "\\u" + c.toString(16).padStart(4, "0")));
      }
    }
    if (lo <= b) plain.push([lo, b]);
  }
  const alts = [...(plain.length ? [gbnfClass(plain)] : []), ...escaped];
  if (alts.length === 0) throw new JsonSchemaError("pattern: a character set matches no character");
  return alts.length === 1 ? alts[0]! : "(" + alts.join(" | ") + ")";
}

class Converter {
  private readonly root: Schema;
  private readonly rules = new Map<string, string>();
  private readonly refNames = new Map<string, string>();
  private readonly ws: "minified" | "compact" | "flexible";
  private readonly top: string;

  constructor(root: Schema, opts: JsonSchemaOptions) {
    this.root = root;
    this.ws = opts.whitespace ?? "minified";
    this.top = opts.rootName ?? "root";
    if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(this.top)) throw new JsonSchemaError(`rootName must be a GBNF rule name (letters, digits, dashes), got ${JSON.stringify(this.top)}`);
    if (this.top !== "root") this.reserved.add("root");
    if (!["minified", "compact", "flexible"].includes(this.ws)) throw new JsonSchemaError(`whitespace must be "minified", "compact" or "flexible", got ${JSON.stringify(this.ws)}`);
  }

  run(): string {
    const top = this.top;
    const body = this.visit(this.root, top, "#");
    if (body !== top) this.rules.set(top, body);
    if (this.ws === "flexible") this.prim("space");
    const order = [top, ...[...this.rules.keys()].filter((k) => k !== top).sort()];
    return order.map((k) => `${k} ::= ${this.rules.get(k)}`).join("\n") + "\n";
  }

  // Separators.
  private get colon(): string {
    return this.ws === "minified" ? '":"' : this.ws === "compact" ? '": "' : '":" space';
  }
  private get comma(): string {
    return this.ws === "minified" ? '","' : this.ws === "compact" ? '", "' : '"," space';
  }
  /** What follows a complete value. */
  private get after(): string {
    return this.ws === "flexible" ? " space" : "";
  }

  private unique(hint: string): string {
    let name = hint.replace(/[^A-Za-z0-9-]+/g, "-").replace(/^-+|-+$/g, "") || "r";
    if (!/^[A-Za-z]/.test(name)) name = "r-" + name;
    let n = name;
    for (let i = 2; this.rules.has(n) || this.reserved.has(n); i++) n = `${name}-${i}`;
    return n;
  }

  private readonly reserved = new Set<string>();

  private add(hint: string, body: string): string {
    const name = this.unique(hint);
    this.rules.set(name, body);
    return name;
  }

  /** Shared rules (defined once). */
  private prim(name: string): string {
    if (this.rules.has(name)) return name;
    const a = this.after;
    const defs: Record<string, string> = {
      space: '| " " | "\\n" [ \\t]{0,20}',
      char: '[^"\\\\\\x7F\\x00-\\x1F] | [\\\\] (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
      "integral-part": "[0] | [1-9] [0-9]{0,15}",
      "decimal-part": "[0-9]{1,16}",
      string: `"\\"" char* "\\""${a}`,
      number: `("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?${a}`,
      integer: `("-"? integral-part)${a}`,
      boolean: `("true" | "false")${a}`,
      null: `"null"${a}`,
      value: "object | array | string | number | boolean | null",
      object: `"{" ${this.ws === "flexible" ? "space " : ""}( string ${this.colon} value (${this.comma} string ${this.colon} value)* )? "}"${a}`,
      array: `"[" ${this.ws === "flexible" ? "space " : ""}( value (${this.comma} value)* )? "]"${a}`,
    };
    const deps: Record<string, string[]> = {
      string: ["char"],
      number: ["integral-part", "decimal-part"],
      integer: ["integral-part"],
      value: ["object", "array", "string", "number", "boolean", "null"],
      object: ["string", "value"],
      array: ["value"],
    };
    this.rules.set(name, defs[name]!);
    if (this.ws === "flexible" && name !== "space") this.prim("space");
    for (const d of deps[name] ?? []) this.prim(d);
    return name;
  }

  private fail(path: string, msg: string): never {
    throw new JsonSchemaError(`JSON Schema ${path}: ${msg}`);
  }

  private resolveRef(ref: string, path: string): { schema: Schema; pointer: string } {
    if (!ref.startsWith("#")) this.fail(path, `$ref ${JSON.stringify(ref)}: only local references (starting with "#") are supported`);
    let node: unknown = this.root;
    const parts = ref.slice(1).split("/").slice(1);
    for (const raw of parts) {
      const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      if (node === null || typeof node !== "object" || !(key in (node as object))) this.fail(path, `$ref ${JSON.stringify(ref)} points at nothing`);
      node = (node as Record<string, unknown>)[key];
    }
    if (!(typeof node === "boolean" || (typeof node === "object" && node !== null))) this.fail(path, `$ref ${JSON.stringify(ref)} is not a schema`);
    return { schema: node as Schema, pointer: ref };
  }

  /** The GBNF expression (usually a rule name) for a schema. */
  private visit(schema: Schema, hint: string, path: string): string {
    if (schema === true) return this.prim("value");
    if (schema === false) this.fail(path, "false (no value is allowed) cannot be generated");
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) this.fail(path, "a schema must be an object or a boolean");
    const s = schema as Record<string, unknown>;
    for (const k of Object.keys(s)) {
      if (!HANDLED.has(k) && !ANNOTATIONS.has(k)) this.fail(path, `unsupported keyword "${k}"`);
    }
    if (typeof s.$ref === "string") {
      const others = Object.keys(s).filter((k) => k !== "$ref" && !ANNOTATIONS.has(k));
      if (others.length) this.fail(path, `$ref next to other keywords (${others.join(", ")}) is not supported`);
      const ref = s.$ref;
      let name = this.refNames.get(ref);
      if (name) return name;
      const target = this.resolveRef(ref, path);
      name = ref === "#" ? this.top : this.unique(ref.split("/").pop()!);
      this.refNames.set(ref, name);
      this.reserved.add(name);
      const body = this.visit(target.schema, name, ref);
      if (body !== name) this.rules.set(name, body);
      return name;
    } else if (s.$ref !== undefined) this.fail(path, "$ref must be a string");

    if (s.const !== undefined) return this.add(hint, this.literalValue(s.const) + this.after);
    if (s.enum !== undefined) {
      if (!Array.isArray(s.enum) || s.enum.length === 0) this.fail(path, "enum must be a non-empty array");
      return this.add(hint, "(" + s.enum.map((v) => this.literalValue(v)).join(" | ") + ")" + this.after);
    }
    for (const key of ["anyOf", "oneOf"] as const) {
      if (s[key] === undefined) continue;
      const list = s[key];
      if (!Array.isArray(list) || list.length === 0) this.fail(path, `${key} must be a non-empty array`);
      const extra = Object.keys(s).filter((k) => k !== key && !ANNOTATIONS.has(k));
      if (extra.length) this.fail(path, `${key} next to other keywords (${extra.join(", ")}) is not supported`);
      const alts = list.map((sub, i) => this.visit(sub as Schema, `${hint}-${i}`, `${path}/${key}/${i}`));
      return this.add(hint, alts.join(" | "));
    }
    if (s.allOf !== undefined) {
      if (!Array.isArray(s.allOf) || s.allOf.length === 0) this.fail(path, "allOf must be a non-empty array");
      return this.visit(this.mergeAllOf(s, path), hint, path);
    }

    let type = s.type;
    if (type === undefined) {
      if (s.properties !== undefined || s.additionalProperties !== undefined) type = "object";
      else if (s.items !== undefined || s.minItems !== undefined || s.maxItems !== undefined) type = "array";
      else if (s.minLength !== undefined || s.maxLength !== undefined || s.pattern !== undefined || s.format !== undefined) type = "string";
      else if (s.minimum !== undefined || s.maximum !== undefined || s.exclusiveMinimum !== undefined || s.exclusiveMaximum !== undefined) type = "number";
      else return this.prim("value");
    }
    if (Array.isArray(type)) {
      if (type.length === 0) this.fail(path, "type must not be an empty array");
      return this.add(hint, type.map((t) => this.visit({ ...s, type: t }, `${hint}-${String(t)}`, path)).join(" | "));
    }
    switch (type) {
      case "string":
        return this.stringRule(s, hint, path);
      case "integer":
        return this.integerRule(s, hint, path);
      case "number":
        for (const k of ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) {
          if (s[k] !== undefined) this.fail(path, `"${k}" is supported on integers only (use "type": "integer")`);
        }
        return this.prim("number");
      case "boolean":
        return this.prim("boolean");
      case "null":
        return this.prim("null");
      case "object":
        return this.objectRule(s, hint, path);
      case "array":
        return this.arrayRule(s, hint, path);
      default:
        this.fail(path, `unknown type ${JSON.stringify(type)}`);
    }
  }

  private mergeAllOf(s: Record<string, unknown>, path: string): Schema {
    const merged: Record<string, unknown> = { type: "object", properties: {}, required: [] as string[] };
    const extra = Object.keys(s).filter((k) => k !== "allOf" && !ANNOTATIONS.has(k));
    const parts: unknown[] = [...(s.allOf as unknown[])];
    if (extra.length) parts.push(Object.fromEntries(extra.map((k) => [k, s[k]])));
    for (let i = 0; i < parts.length; i++) {
      let p = parts[i] as Schema;
      const where = `${path}/allOf/${i}`;
      while (typeof p === "object" && typeof p.$ref === "string") p = this.resolveRef(p.$ref, where).schema;
      if (typeof p !== "object") this.fail(where, "allOf parts must be object schemas");
      for (const k of Object.keys(p)) {
        if (ANNOTATIONS.has(k)) continue;
        if (k === "type") {
          if (p.type !== "object") this.fail(where, "allOf: only object schemas can be combined");
        } else if (k === "properties") Object.assign(merged.properties as object, p.properties);
        else if (k === "required") (merged.required as string[]).push(...(p.required as string[]));
        else if (k === "additionalProperties") merged.additionalProperties = p.additionalProperties;
        else if (k === "allOf") {
          const inner = this.mergeAllOf(p, where) as Record<string, unknown>;
          Object.assign(merged.properties as object, inner.properties);
          (merged.required as string[]).push(...(inner.required as string[]));
        } else this.fail(where, `allOf: keyword "${k}" cannot be combined (only properties, required, additionalProperties)`);
      }
    }
    return merged;
  }

  /** A JSON value as a GBNF literal, in this converter's layout. */
  private literalValue(v: unknown): string {
    return gbnfLiteral(this.serialize(v));
  }

  private serialize(v: unknown): string {
    const colon = this.ws === "compact" ? ": " : ":";
    const comma = this.ws === "compact" ? ", " : ",";
    if (Array.isArray(v)) return "[" + v.map((x) => this.serialize(x)).join(comma) + "]";
    if (v !== null && typeof v === "object") {
      return "{" + Object.entries(v).map(([k, x]) => JSON.stringify(k) + colon + this.serialize(x)).join(comma) + "}";
    }
    const s = JSON.stringify(v);
    if (s === undefined) throw new JsonSchemaError(`${String(v)} is not a JSON value`);
    return s;
  }

  private nonNegInt(s: Record<string, unknown>, key: string, path: string): number | undefined {
    const v = s[key];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) this.fail(path, `${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v;
  }

  private stringRule(s: Record<string, unknown>, hint: string, path: string): string {
    const minL = this.nonNegInt(s, "minLength", path) ?? 0;
    const maxL = this.nonNegInt(s, "maxLength", path);
    if (maxL !== undefined && maxL < minL) this.fail(path, `maxLength ${maxL} is below minLength ${minL}`);
    if (s.pattern !== undefined) {
      if (typeof s.pattern !== "string") this.fail(path, "pattern must be a string");
      if (s.minLength !== undefined || s.maxLength !== undefined || s.format !== undefined) this.fail(path, "pattern together with minLength/maxLength/format is not supported");
      return this.add(hint, `"\\"" ${new PatternConverter(s.pattern, path).convert()} "\\""${this.after}`);
    }
    if (s.format !== undefined) {
      if (typeof s.format !== "string" || !FORMATS.includes(s.format)) this.fail(path, `unsupported format ${JSON.stringify(s.format)} (supported: ${FORMATS.join(", ")})`);
      if (s.minLength !== undefined || s.maxLength !== undefined) this.fail(path, "format together with minLength/maxLength is not supported");
      return this.add(hint, `"\\"" ${this.formatRule(s.format)} "\\""${this.after}`);
    }
    if (minL === 0 && maxL === undefined) return this.prim("string");
    this.prim("char");
    const rep = maxL === undefined ? `char{${minL},}` : minL === maxL ? `char{${minL}}` : `char{${minL},${maxL}}`;
    return this.add(hint, `"\\"" ${rep} "\\""${this.after}`);
  }

  private formatRule(format: string): string {
    const d2 = (lo: number, hi: number) => this.add(`int-${lo}-${hi}`, intRangeSameLength(lo.toString().padStart(2, "0"), hi.toString().padStart(2, "0")));
    const ensure = (name: string, body: string) => {
      if (!this.rules.has(name)) this.rules.set(name, body);
      return name;
    };
    const date = () =>
      ensure(
        "date",
        `[0-9]{4} "-" ( ("01" | "03" | "05" | "07" | "08" | "10" | "12") "-" ${d2(1, 31)} | ("04" | "06" | "09" | "11") "-" ${d2(1, 30)} | "02" "-" ${d2(1, 28)} )`,
      );
    const time = () => ensure("time", `${d2(0, 23)} ":" ${d2(0, 59)} ":" ${d2(0, 59)} ("." [0-9]{1,6})? ("Z" | [+-] ${d2(0, 23)} ":" ${d2(0, 59)})`);
    switch (format) {
      case "date":
        return date();
      case "time":
        return time();
      case "date-time":
        return ensure("date-time", `${date()} "T" ${time()}`);
      default:
        return ensure("uuid", '[0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12}');
    }
  }

  private integerRule(s: Record<string, unknown>, hint: string, path: string): string {
    let lo = -Infinity;
    let hi = Infinity;
    const num = (k: string): number | undefined => {
      const v = s[k];
      if (v === undefined) return undefined;
      if (typeof v !== "number" || !Number.isFinite(v)) this.fail(path, `${k} must be a number, got ${JSON.stringify(v)}`);
      if (Math.abs(v) > Number.MAX_SAFE_INTEGER) this.fail(path, `${k} ${v} is beyond the safe integer range`);
      return v;
    };
    const min = num("minimum");
    const max = num("maximum");
    const xmin = num("exclusiveMinimum");
    const xmax = num("exclusiveMaximum");
    if (min !== undefined) lo = Math.max(lo, Math.ceil(min));
    if (xmin !== undefined) lo = Math.max(lo, Math.floor(xmin) + 1);
    if (max !== undefined) hi = Math.min(hi, Math.floor(max));
    if (xmax !== undefined) hi = Math.min(hi, Math.ceil(xmax) - 1);
    if (lo === -Infinity && hi === Infinity) return this.prim("integer");
    if (lo > hi) this.fail(path, `no integer lies between the minimum and the maximum`);
    return this.add(hint, "(" + intRange(lo, hi) + ")" + this.after);
  }

  private objectRule(s: Record<string, unknown>, hint: string, path: string): string {
    const props = s.properties ?? {};
    if (typeof props !== "object" || props === null || Array.isArray(props)) this.fail(path, "properties must be an object");
    const required = s.required ?? [];
    if (!Array.isArray(required) || !required.every((r) => typeof r === "string")) this.fail(path, "required must be an array of strings");
    const names = Object.keys(props);
    for (const r of required) if (!names.includes(r)) this.fail(path, `required property "${r}" is not in properties`);
    const ap = s.additionalProperties;
    if (ap !== undefined && typeof ap !== "boolean" && (typeof ap !== "object" || ap === null)) this.fail(path, "additionalProperties must be a boolean or a schema");
    const open = s.properties === undefined ? ap !== false : ap !== undefined && ap !== false;
    const lead = this.ws === "flexible" ? " space" : "";
    if (names.length === 0) {
      if (!open) return this.add(hint, `"{"${lead} "}"${this.after}`);
      if (ap === undefined || ap === true) return this.prim("object");
    }
    // kv rules in schema order.
    const kv = names.map((n) => {
      const v = this.visit((props as Record<string, Schema>)[n]!, `${hint}-${n}`, `${path}/properties/${n}`);
      return this.add(`${hint}-${n}-kv`, `${gbnfLiteral(JSON.stringify(n))} ${this.colon} ${v}`);
    });
    let extra: string | undefined;
    if (open) {
      const valueRule = ap === undefined || ap === true ? this.prim("value") : this.visit(ap as Schema, `${hint}-additional`, `${path}/additionalProperties`);
      this.prim("char");
      const key = this.add(`${hint}-additional-k`, notStrings(names) + this.after);
      extra = this.add(`${hint}-additional-kv`, `${key} ${this.colon} ${valueRule}`);
    }
    // after(i): the properties from i on, something already written (each starts with a comma);
    // first(i): the same with nothing written yet.
    const after: string[] = [];
    const first: string[] = [];
    const n = names.length;
    const extraTail = extra ? `(${this.comma} ${extra})*` : "";
    after[n] = extraTail ? this.add(`${hint}-rest`, extraTail) : "";
    first[n] = extra ? this.add(`${hint}-extra`, `( ${extra} ${extraTail} )?`) : "";
    for (let i = n - 1; i >= 0; i--) {
      const req = required.includes(names[i]!);
      const rest = after[i + 1];
      const a = req ? `${this.comma} ${kv[i]} ${rest}` : `( ${this.comma} ${kv[i]} )? ${rest}`;
      after[i] = this.add(`${hint}-after-${i}`, a.trim());
      const f = req ? `${kv[i]} ${rest}` : `${kv[i]} ${rest} | ${first[i + 1] || '""'}`;
      first[i] = this.add(`${hint}-from-${i}`, f.trim());
    }
    return this.add(hint, `"{"${lead} ${first[0]} "}"${this.after}`);
  }

  private arrayRule(s: Record<string, unknown>, hint: string, path: string): string {
    const minI = this.nonNegInt(s, "minItems", path) ?? 0;
    const maxI = this.nonNegInt(s, "maxItems", path);
    if (maxI !== undefined && maxI < minI) this.fail(path, `maxItems ${maxI} is below minItems ${minI}`);
    if (Array.isArray(s.items)) this.fail(path, "items as an array (tuples) is not supported; use a schema");
    const item = s.items === undefined ? this.prim("value") : this.visit(s.items as Schema, `${hint}-item`, `${path}/items`);
    const lead = this.ws === "flexible" ? " space" : "";
    if (maxI === 0) return this.add(hint, `"["${lead} "]"${this.after}`);
    const more = maxI === undefined ? `(${this.comma} ${item}){${Math.max(0, minI - 1)},}` : `(${this.comma} ${item}){${Math.max(0, minI - 1)},${maxI - 1}}`;
    const list = `${item} ${more}`;
    return this.add(hint, `"["${lead} ${minI === 0 ? `( ${list} )?` : list} "]"${this.after}`);
  }
}

/**
 * A JSON string key (quotes included) that is none of `names`: a trie of the names where every
 * branch off a name, or a name continued past its end, leads to free characters.
 */
function notStrings(names: readonly string[]): string {
  if (names.length === 0) return '"\\"" char* "\\""';
  interface Node {
    children: Map<string, Node>;
    end: boolean;
  }
  const root: Node = { children: new Map(), end: false };
  for (const n of names) {
    let node = root;
    for (const ch of JSON.stringify(n).slice(1, -1).match(/\\u[0-9a-fA-F]{4}|\\.|[^]/gu)!) {
      let next = node.children.get(ch);
      if (!next) node.children.set(ch, (next = { children: new Map(), end: false }));
      node = next;
    }
    node.end = true;
  }
  const visit = (node: Node): string => {
    const alts: string[] = [];
    const plainFirst: number[] = [];
    for (const [ch, child] of node.children) {
      alts.push(`${gbnfLiteral(ch)} ${visit(child)}`);
      if (ch.length === 1) plainFirst.push(ch.codePointAt(0)!);
    }
    // Any other first character (escapes other than those in the names included).
    const excluded: [number, number][] = [
      [0x22, 0x22],
      [0x5c, 0x5c],
      [0x7f, 0x7f],
      [0, 0x1f],
      ...plainFirst.map((c) => [c, c] as [number, number]),
    ];
    const others = normalizeRanges(excluded, true);
    alts.push(`${gbnfClass(others)} char*`);
    const escapes = [...node.children.keys()].filter((k) => k.startsWith("\\"));
    if (escapes.length === 0) alts.push(`[\\\\] (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4}) char*`);
    // Ending here is fine unless a name ends here.
    return "(" + alts.join(" | ") + ")" + (node.end ? "" : "?");
  };
  // The empty key is a name only if listed.
  return `"\\"" ${visit(root)} "\\""`;
}

/** Decimal integers in [lo, hi] (finite or not), without leading zeros; "-0" excluded. */
export function intRange(lo: number, hi: number): string {
  const MAX_DIGITS = 16;
  const alts: string[] = [];
  // Non-negative part [a, b].
  const nonNeg = (a: number, b: number): string[] => {
    const out: string[] = [];
    const la = a.toString().length;
    const lb = b === Infinity ? MAX_DIGITS : b.toString().length;
    for (let len = la; len <= lb; len++) {
      const from = len === la ? a : 10 ** (len - 1);
      const to = b !== Infinity && len === lb ? b : 10 ** len - 1;
      if (from > to) continue;
      if (b === Infinity && len === lb) {
        out.push(len === 1 ? "[0-9]" : `[1-9] [0-9]{${len - 1}}`);
        continue;
      }
      out.push(intRangeSameLength(from.toString(), to.toString()));
    }
    return out;
  };
  if (hi >= 0) alts.push(...nonNeg(Math.max(0, lo), hi));
  if (lo < 0) {
    const a = Math.max(1, hi < 0 ? -hi : 1);
    const b = lo === -Infinity ? Infinity : -lo;
    const parts = nonNeg(a, b);
    if (parts.length) alts.push(`"-" (${parts.join(" | ")})`);
  }
  return alts.join(" | ");
}

/** Integers a..b written with the same number of digits (a <= b, as strings). */
function intRangeSameLength(a: string, b: string): string {
  const n = a.length;
  if (a === b) return `"${a}"`;
  if (n === 1) return `[${a}-${b}]`;
  if (a[0] === b[0]) return `"${a[0]}" (${intRangeSameLength(a.slice(1), b.slice(1))})`;
  const alts: string[] = [];
  let first = +a[0]!;
  let last = +b[0]!;
  const zeros = "0".repeat(n - 1);
  const nines = "9".repeat(n - 1);
  if (a.slice(1) !== zeros) {
    alts.push(`"${a[0]}" (${intRangeSameLength(a.slice(1), nines)})`);
    first++;
  }
  let top: string | undefined;
  if (b.slice(1) !== nines) {
    top = `"${b[0]}" (${intRangeSameLength(zeros, b.slice(1))})`;
    last--;
  }
  if (first <= last) alts.push(`${first === last ? `"${first}"` : `[${first}-${last}]`} [0-9]{${n - 1}}`);
  if (top) alts.push(top);
  return alts.join(" | ");
}

/** A `^...$` regular expression (the common subset) as GBNF over JSON-string characters. */
class PatternConverter {
  private readonly p: string;
  private i = 0;
  private readonly path: string;

  constructor(pattern: string, path: string) {
    this.path = path;
    if (!pattern.startsWith("^") || !pattern.endsWith("$") || pattern.endsWith("\\$")) {
      throw new JsonSchemaError(`JSON Schema ${path}: pattern ${JSON.stringify(pattern)} must start with ^ and end with $`);
    }
    this.p = pattern.slice(1, -1);
  }

  private fail(msg: string): never {
    throw new JsonSchemaError(`JSON Schema ${this.path}: pattern: ${msg} at offset ${this.i + 1}`);
  }

  convert(): string {
    const e = this.alt();
    if (this.i < this.p.length) this.fail(`unexpected ${JSON.stringify(this.p[this.i])}`);
    return e;
  }

  private alt(): string {
    const alts = [this.seq()];
    while (this.p[this.i] === "|") {
      this.i++;
      alts.push(this.seq());
    }
    return alts.length === 1 ? alts[0]! : "(" + alts.join(" | ") + ")";
  }

  private seq(): string {
    const items: string[] = [];
    while (this.i < this.p.length && this.p[this.i] !== "|" && this.p[this.i] !== ")") {
      let atom = this.atom();
      const q = this.p[this.i];
      if (q === "*" || q === "+" || q === "?") {
        this.i++;
        atom = `(${atom})${q}`;
      } else if (q === "{" && /^\{\d+(,\d*)?\}/.test(this.p.slice(this.i))) {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.p.slice(this.i))!;
        this.i += m[0].length;
        atom = `(${atom}){${m[1]}${m[2] !== undefined ? "," + (m[3] ?? "") : ""}}`;
      }
      if (this.p[this.i] === "?" && /[*+?}]/.test(this.p[this.i - 1] ?? "")) this.i++; // lazy: same language
      items.push(atom);
    }
    return items.length === 0 ? '""' : items.join(" ");
  }

  private atom(): string {
    const c = this.p[this.i]!;
    if (c === "(") {
      this.i++;
      if (this.p.startsWith("?:", this.i)) this.i += 2;
      else if (this.p[this.i] === "?") this.fail("lookaround and named groups are not supported");
      const e = this.alt();
      if (this.p[this.i] !== ")") this.fail("missing )");
      this.i++;
      return `(${e})`;
    }
    if (c === "[") return jsonCharSet(this.charClass());
    if (c === ".") {
      this.i++;
      return jsonCharSet(normalizeRanges([[10, 10], [13, 13]], true));
    }
    if (c === "^" || c === "$") this.fail("anchors inside the pattern are not supported");
    if (c === "*" || c === "+" || c === "?" || c === "{") this.fail(`nothing to repeat before ${c}`);
    const set = this.single();
    return jsonCharSet(normalizeRanges(set.ranges, set.negated));
  }

  private static readonly CLASS_ESCAPES: Record<string, CodepointRanges> = {
    d: [[48, 57]],
    w: [[48, 57], [65, 90], [95, 95], [97, 122]],
    s: [[9, 13], [32, 32]],
  };

  /** One character or escape: its set. */
  private single(): { ranges: CodepointRanges; negated: boolean } {
    const c = this.p[this.i]!;
    if (c !== "\\") {
      const cp = this.p.codePointAt(this.i)!;
      this.i += cp > 0xffff ? 2 : 1;
      return { ranges: [[cp, cp]], negated: false };
    }
    const e = this.p[this.i + 1];
    if (e === undefined) this.fail("trailing backslash");
    this.i += 2;
    const lower = e.toLowerCase();
    if (lower in PatternConverter.CLASS_ESCAPES) return { ranges: PatternConverter.CLASS_ESCAPES[lower]!, negated: e !== lower };
    const simple: Record<string, number> = { n: 10, r: 13, t: 9, f: 12, v: 11, "0": 0 };
    if (e in simple) return { ranges: [[simple[e]!, simple[e]!]], negated: false };
    if (e === "u" || e === "x") {
      const len = e === "u" ? 4 : 2;
      const hex = this.p.slice(this.i, this.i + len);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) this.fail(`\\${e} needs ${len} hex digits`);
      this.i += len;
      const v = parseInt(hex, 16);
      return { ranges: [[v, v]], negated: false };
    }
    if (/[A-Za-z0-9]/.test(e)) this.fail(`escape \\${e} is not supported`);
    return { ranges: [[e.codePointAt(0)!, e.codePointAt(0)!]], negated: false };
  }

  private charClass(): [number, number][] {
    this.i++;
    let negated = false;
    if (this.p[this.i] === "^") {
      negated = true;
      this.i++;
    }
    const ranges: [number, number][] = [];
    let firstItem = true;
    while (this.p[this.i] !== "]" || firstItem) {
      if (this.i >= this.p.length) this.fail("missing ]");
      firstItem = false;
      const a = this.single();
      if (a.negated || a.ranges.length !== 1 || a.ranges[0]![0] !== a.ranges[0]![1]) {
        ranges.push(...normalizeRanges(a.ranges, a.negated));
        continue;
      }
      const lo = a.ranges[0]![0];
      if (this.p[this.i] === "-" && this.p[this.i + 1] !== "]" && this.i + 1 < this.p.length) {
        this.i++;
        const b = this.single();
        if (b.ranges.length !== 1 || b.negated) this.fail("a range must end in one character");
        const hi = b.ranges[0]![0];
        if (hi < lo) this.fail("range out of order");
        ranges.push([lo, hi]);
      } else ranges.push([lo, lo]);
    }
    this.i++;
    return normalizeRanges(ranges, negated);
  }
}
