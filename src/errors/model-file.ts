// The errors a model file can cause, in one hierarchy callers can `instanceof`:
//
//   ModelFileError                    the file is malformed, inconsistent or not what mimo can run
//   ├─ TokenizerError                 its tokenizer metadata (or a tokenizer.json) is unusable
//   └─ UnsupportedModelError          well-formed, but mimo (or the chosen backend) cannot run it
//      └─ UnsupportedTensorTypeError  a tensor has a GGML type mimo has no kernels for
//
// Every message is one printable line of bounded length: "<file>: <problem>". Names and strings
// taken from the file go through quote(), which escapes control and invisible characters and cuts
// long values, so a corrupt name cannot make a 200 KB message full of NUL bytes.
// This folder sits below every other layer so that the lowest one (quant) can throw these too.

/** Longest problem text kept in a message (the file name is bounded separately). */
const MAX_PROBLEM = 480;
/** Longest file name kept in a message: its end (the base name) is kept. */
const MAX_FILE = 160;
/** Longest string from a file shown by quote(). */
const MAX_QUOTED = 48;

// Characters that are not visible on their own or would break the line: controls (C0, DEL, C1),
// format characters (bidi overrides, zero-width, BOM), lone surrogates, private use, unassigned,
// line and paragraph separators.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/gu;

function escapeChar(ch: string): string {
  const c = ch.codePointAt(0)!;
  switch (ch) {
    case "\n": return "\\n";
    case "\r": return "\\r";
    case "\t": return "\\t";
    case "\0": return "\\0";
  }
  return c <= 0xff ? `\\x${c.toString(16).padStart(2, "0")}` : `\\u{${c.toString(16)}}`;
}

/** The text with invisible characters escaped (backslashes too, so the result is unambiguous). */
export function escapeText(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(INVISIBLE, escapeChar);
}

/** Cuts an already printable text to `max` characters (code points), marking the cut. */
function cut(s: string, max: number): string {
  const cps = Array.from(s);
  if (cps.length <= max) return s;
  return `${cps.slice(0, max - 1).join("")}…`;
}

/**
 * A string from a model file as it appears in a message: in double quotes, escaped, and cut to
 * `max` characters with its full length noted ("blk.0.attn…" (70000 chars)).
 */
export function quote(s: string, max = MAX_QUOTED): string {
  const cps = Array.from(s);
  const shown = cps.length > max ? cps.slice(0, max).join("") : s;
  const body = escapeText(shown).replace(/"/g, '\\"');
  return cps.length > max ? `"${body}…" (${cps.length} chars)` : `"${body}"`;
}

/** A file name for a message: escaped, and cut in the middle when very long (the base name is kept). */
export function printableFileName(file: string): string {
  const e = escapeText(file);
  const cps = Array.from(e);
  if (cps.length <= MAX_FILE) return e;
  return `${cps.slice(0, 40).join("")}…${cps.slice(cps.length - (MAX_FILE - 41)).join("")}`;
}

/** A problem text as one printable, bounded line (the safety net under the call sites' quote()). */
export function oneLine(problem: string, max = MAX_PROBLEM): string {
  return cut(problem.replace(INVISIBLE, escapeChar), max);
}

/**
 * A model file is malformed, inconsistent, or not what mimo can run. The message is one line:
 * the file, then the problem (the field or tensor, what was expected and what was found).
 */
export class ModelFileError extends Error {
  /** The file as the caller named it (a path, a URL, "<memory>"); undefined only outside any file (e.g. a type asked for by name). */
  readonly file: string | undefined;
  /** The problem alone, without the file name. */
  readonly problem: string;
  constructor(file: string | undefined, problem: string) {
    const p = oneLine(problem);
    super(file === undefined ? p : `${printableFileName(file)}: ${p}`);
    this.name = "ModelFileError";
    this.file = file;
    this.problem = p;
  }
}

/** The tokenizer metadata of a model file (or a tokenizer.json) cannot give a working tokenizer. */
export class TokenizerError extends ModelFileError {
  /** `new TokenizerError(file, problem)`, or `new TokenizerError(problem)` where no file is known. */
  constructor(file: string | undefined, problem?: string) {
    if (problem === undefined) super(undefined, file ?? "");
    else super(file, problem);
    this.name = "TokenizerError";
  }
}

/**
 * The file is well-formed but asks for something mimo, or the backend chosen, cannot run: an
 * architecture, a RoPE scaling, a head size. The message says what would run it, where anything can.
 */
export class UnsupportedModelError extends ModelFileError {
  constructor(file: string | undefined, problem: string) {
    super(file, problem);
    this.name = "UnsupportedModelError";
  }
}

/** A tensor (or a requested type) has a GGML type mimo cannot compute with. */
export class UnsupportedTensorTypeError extends UnsupportedModelError {
  /** The GGML type id. */
  readonly type: number;
  readonly typeName: string;
  readonly tensorName: string | undefined;

  /**
   * @param typeName the type's name (or "unknown(N)")
   * @param supported the names of the supported weight types, for the message
   */
  constructor(type: number, typeName: string, supported: readonly string[], tensorName?: string, file?: string) {
    const problem =
      tensorName !== undefined
        ? `tensor ${quote(tensorName)} has type ${typeName}, which mimo does not support`
        : `type ${typeName} is not supported by mimo`;
    super(file, `${problem} (supported: ${supported.join(", ")}); use a GGUF file quantized to one of the supported types`);
    this.name = "UnsupportedTensorTypeError";
    this.type = type;
    this.typeName = typeName;
    this.tensorName = tensorName;
  }
}
