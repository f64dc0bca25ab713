// Option parsers the commands share: a bad value names the flag and what was given.
import { readFileSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";

export function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got "${v}"`);
    return n;
  };
}

export function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    return n;
  };
}

export function positive(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got "${v}"`);
    return n;
  };
}

export function nonNegative(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
}

/** A file a flag names, read as text; a clear error naming the flag when it cannot be read. */
export function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`${flag} ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
}

/** The output constraint of --grammar FILE (GBNF) or --json-schema FILE (run and chat). */
export function grammarFlags(o: { grammar?: string; jsonSchema?: string }): { grammar?: string; jsonSchema?: unknown } {
  if (o.grammar !== undefined && o.jsonSchema !== undefined) throw new Error("give either --grammar or --json-schema, not both");
  if (o.grammar !== undefined) return { grammar: readFlagFile("--grammar", o.grammar) };
  if (o.jsonSchema === undefined) return {};
  const text = readFlagFile("--json-schema", o.jsonSchema);
  try {
    return { jsonSchema: JSON.parse(text) };
  } catch (e) {
    throw new Error(`--json-schema ${o.jsonSchema}: not valid JSON (${(e as Error).message})`);
  }
}

/** The sampler flags `run` and `chat` share (same names, defaults and messages as llama.cpp's CLI). */
export function samplingOptions(cmd: Command): Command {
  return cmd
    .option("--temp <t>", "temperature; 0 = greedy", num("--temp"), 0.8)
    .option("--top-k <k>", "top-k sampling; 0 = off", int("--top-k"), 40)
    .option("--top-p <p>", "top-p (nucleus) sampling; 1 = off", num("--top-p"), 0.95)
    .option("--min-p <p>", "min-p sampling; 0 = off", num("--min-p"), 0.05)
    .option("--repeat-penalty <r>", "penalty for recently seen tokens; 1 = off", num("--repeat-penalty"), 1);
}
