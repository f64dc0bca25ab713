// One fuzz case: mutate a seed file, write it to disk, load it through the public API, generate a
// few tokens, and classify what happened. The same function runs in the harness's child processes
// and in-process in the test suite.
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadModel, ModelFileError } from "../src/index.ts";
import { mutate } from "./mutate.ts";

/** typed rejection, loaded and generated, other error, hang, memory. Only the first two are good. */
export type Outcome = "rejected" | "generated" | "error" | "hang" | "memory";
export const goodOutcomes: readonly Outcome[] = ["rejected", "generated"];

export interface CaseResult {
  readonly index: number;
  readonly seedFile: string;
  readonly kinds: readonly string[];
  readonly details: readonly string[];
  readonly outcome: Outcome;
  readonly ms: number;
  /** The error's class and message (rejections and errors). */
  readonly error?: string;
  /** Why an outcome is bad: an untyped error, a bad message, a leak. */
  readonly reason?: string;
}

export interface CaseOptions {
  readonly seed: number;
  readonly index: number;
  readonly backend: "reference" | "wasm";
  readonly threads?: number;
  /** Tokens to generate after a successful load. */
  readonly tokens: number;
  /** Where the case's file is written (and removed). */
  readonly dir: string;
}

const root = fileURLToPath(new URL("../", import.meta.url));

/** The seed files: stories260K and its F16 and quantized variants (test/data). */
export const seedFiles: readonly string[] = [
  "test/data/stories260K/stories260K.gguf",
  ...readdirSync(join(root, "test/data/stories260K/derived"))
    .filter((f) => f.endsWith(".gguf"))
    .sort()
    .map((f) => `test/data/stories260K/derived/${f}`),
];

const seedBytes = new Map<string, Uint8Array>();
function seedFile(path: string): Uint8Array {
  let b = seedBytes.get(path);
  if (!b) {
    b = new Uint8Array(readFileSync(join(root, path)));
    seedBytes.set(path, b);
  }
  return b;
}

// Control, format, surrogate, private-use, unassigned and separator characters: none may appear
// in an error message.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u;
/** The longest message a rejection may have. */
export const MAX_MESSAGE = 700;

/** What is wrong with a rejection's message, or undefined: one printable line, bounded, naming the file. */
export function messageProblem(message: string, file: string): string | undefined {
  if (INVISIBLE.test(message)) return "message has control or invisible characters";
  if (message.length > MAX_MESSAGE) return `message is ${message.length} characters long`;
  if (!message.startsWith(`${file}: `)) return "message does not start with the file name";
  return undefined;
}

/** Open file descriptors and threads of this process (Linux; undefined elsewhere). */
export function processResources(): { fds: number; threads: number } | undefined {
  try {
    return { fds: readdirSync("/proc/self/fd").length, threads: readdirSync("/proc/self/task").length };
  } catch {
    return undefined;
  }
}

export async function runCase(o: CaseOptions): Promise<CaseResult> {
  const seedPath = seedFiles[o.index % seedFiles.length]!;
  const m = mutate(seedFile(seedPath), o.seed, o.index);
  const path = join(o.dir, `case-${o.seed}-${o.index}.gguf`);
  writeFileSync(path, m.bytes);
  const base = { index: o.index, seedFile: seedPath, kinds: m.kinds, details: m.details };
  const before = processResources();
  const t0 = performance.now();
  let outcome: Outcome;
  let error: string | undefined;
  let reason: string | undefined;
  try {
    const model = await loadModel(path, { backend: o.backend, threads: o.threads });
    try {
      // The text goes through the file's tokenizer; the prompt is cut to what the context holds
      // (a prompt longer than the context is the caller's RangeError, not a file problem).
      const ids = model.tokenize("Once upon a time").slice(-(model.contextSize - 1));
      await model.complete(ids.length > 0 ? ids : [0], { temperature: 0, maxTokens: o.tokens, ignoreEos: true });
    } finally {
      await model.dispose();
    }
    outcome = "generated";
  } catch (e) {
    const err = e as Error;
    error = `${err?.name}: ${err?.message}`;
    if (e instanceof ModelFileError) {
      reason = messageProblem(err.message, path);
      outcome = reason ? "error" : "rejected";
    } else {
      outcome = "error";
      reason = "not a ModelFileError";
    }
    if (error.length > 2000) error = `${error.slice(0, 2000)}... (${error.length} chars)`;
  }
  const ms = performance.now() - t0;
  rmSync(path, { force: true });
  // A thread may still be finishing its exit for a moment: only what stays open is a leak.
  let after = processResources();
  for (let i = 0; i < 40 && before && after && (after.fds > before.fds || after.threads > before.threads); i++) {
    await new Promise((r) => setTimeout(r, 50));
    after = processResources();
  }
  if (before && after && (after.fds > before.fds || after.threads > before.threads)) {
    reason = `leaked ${after.fds - before.fds} file descriptors, ${after.threads - before.threads} threads` + (reason ? `; ${reason}` : "");
    outcome = "error";
  }
  return { ...base, outcome, ms, error, reason };
}
