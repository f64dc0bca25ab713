import { ModelFileError, quote } from "../format/errors.ts";

/** Typed, error-reporting access to GGUF metadata: a missing or mistyped key names the file and key. */
export class MetadataReader {
  readonly file: string;
  private readonly map: ReadonlyMap<string, unknown>;
  constructor(file: string, map: ReadonlyMap<string, unknown>) {
    this.file = file;
    this.map = map;
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  raw(key: string): unknown {
    return this.map.get(key);
  }
  private fail(problem: string): never {
    throw new ModelFileError(this.file, problem);
  }
  string(key: string): string {
    const v = this.map.get(key);
    if (v === undefined) this.fail(`required metadata key "${key}" is missing`);
    if (typeof v !== "string") this.fail(`metadata "${key}" should be a string, found ${describe(v)}`);
    return v;
  }
  optionalString(key: string): string | undefined {
    return this.map.has(key) ? this.string(key) : undefined;
  }
  number(key: string): number {
    const v = this.map.get(key);
    if (v === undefined) this.fail(`required metadata key "${key}" is missing`);
    if (typeof v !== "number") this.fail(`metadata "${key}" should be a number, found ${describe(v)}`);
    return v;
  }
  optionalNumber(key: string): number | undefined {
    return this.map.has(key) ? this.number(key) : undefined;
  }
  /** A positive integer (counts, lengths). */
  count(key: string): number {
    const v = this.number(key);
    if (!Number.isInteger(v) || v <= 0) this.fail(`metadata "${key}" should be a positive integer, found ${v}`);
    return v;
  }
  optionalCount(key: string): number | undefined {
    return this.map.has(key) ? this.count(key) : undefined;
  }
  optionalBool(key: string): boolean | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") this.fail(`metadata "${key}" should be a bool, found ${describe(v)}`);
    return v;
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return `an array of ${(v as ArrayLike<unknown>).length}`;
  if (typeof v === "string") return `string ${quote(v)}`;
  return `${typeof v} ${String(v)}`;
}
