// What a user may name as a model to pull: a Hugging Face repository (with a file, a quant or
// neither, at a revision) or an http(s) URL. Parsed once here; everything else takes a ModelRef.

export interface HfRef {
  readonly kind: "hf";
  readonly owner: string;
  readonly repo: string;
  /** A file path inside the repository, e.g. "qwen2-0_5b-instruct-q4_0.gguf". */
  readonly file?: string;
  /** A quant type to pick the file by, e.g. "Q4_K_M" (matched in the file names). */
  readonly quant?: string;
  /** Branch, tag or commit; default "main". */
  readonly revision: string;
}

export interface UrlRef {
  readonly kind: "url";
  readonly url: URL;
}

export type ModelRef = HfRef | UrlRef;

export const HF_SYNTAX = "hf:OWNER/REPO[/FILE.gguf][:QUANT][@REVISION]";

const NAME = "[A-Za-z0-9][A-Za-z0-9._-]*";
const HF = new RegExp(`^hf:(${NAME})/(${NAME})(?:/([^@:]+))?(?::([A-Za-z0-9_]+))?(?:@(.+))?$`);

/** Whether a model argument names something to pull rather than a local file. */
export function isModelRef(s: string): boolean {
  return s.startsWith("hf:") || /^https?:\/\//i.test(s);
}

/** Parses a reference; a malformed one is an error that shows the expected form. */
export function parseModelRef(s: string): ModelRef {
  if (s.startsWith("hf:")) {
    const m = HF.exec(s);
    if (!m) throw new RangeError(`"${s}" is not a Hugging Face model reference (expected ${HF_SYNTAX}, e.g. hf:Qwen/Qwen2-0.5B-Instruct-GGUF:Q4_0)`);
    const [, owner, repo, file, quant, revision] = m;
    if (file !== undefined && quant !== undefined) throw new RangeError(`"${s}": name either a file or a quant, not both`);
    if (file !== undefined && file.split("/").some((p) => p === "" || p === "." || p === "..")) {
      throw new RangeError(`"${s}": "${file}" is not a file path inside the repository`);
    }
    return { kind: "hf", owner: owner!, repo: repo!, file, quant, revision: revision ?? "main" };
  }
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new RangeError(`"${s}" is neither a model file, a URL nor ${HF_SYNTAX}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new RangeError(`"${s}": only http(s) URLs can be pulled`);
  if (url.pathname.endsWith("/")) throw new RangeError(`"${s}": the URL names no file`);
  return { kind: "url", url };
}

/** The canonical text of a reference, as `mimo list` shows it and `mimo rm` accepts it. */
export function formatModelRef(r: ModelRef, file?: string): string {
  if (r.kind === "url") return r.url.href;
  const f = file ?? r.file;
  const rev = r.revision === "main" ? "" : `@${r.revision}`;
  return `hf:${r.owner}/${r.repo}${f ? `/${f}` : r.quant ? `:${r.quant}` : ""}${rev}`;
}

/** A file name's quant tag matches when delimited by -, _, . or the name's ends (case-insensitive). */
export function matchesQuant(path: string, quant: string): boolean {
  const base = path.slice(path.lastIndexOf("/") + 1).replace(/\.gguf$/i, "");
  return new RegExp(`(^|[-_.])${quant}($|[-_.])`, "i").test(base);
}

const SPLIT = /-\d{5}-of-\d{5}\.gguf$/i;

/**
 * Picks the GGUF file a reference names among a repository's files: the file itself, the one
 * matching the quant, the only GGUF file, or else Q4_K_M (llama.cpp's default pick). Multimodal
 * projector files (mmproj) are never picked by quant. Errors list what there is to choose from.
 */
export function chooseFile(r: HfRef, paths: readonly string[]): string {
  const name = formatModelRef(r);
  if (r.file !== undefined) {
    if (paths.includes(r.file)) return r.file;
    throw new RangeError(`${name}: no file "${r.file}" in ${r.owner}/${r.repo} at ${r.revision}${listGguf(r, paths)}`);
  }
  const gguf = paths.filter((p) => /\.gguf$/i.test(p) && !/mmproj/i.test(p));
  if (gguf.length === 0) throw new RangeError(`${name}: ${r.owner}/${r.repo} at ${r.revision} has no GGUF file`);
  const quant = r.quant ?? (gguf.length === 1 ? undefined : "Q4_K_M");
  if (quant === undefined) return gguf[0]!;
  const hits = gguf.filter((p) => matchesQuant(p, quant));
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1 && hits.every((p) => SPLIT.test(p))) {
    throw new RangeError(`${name}: the ${quant} model is split into ${hits.length} files; split GGUF files are not supported yet`);
  }
  if (hits.length > 1) throw new RangeError(`${name}: ${hits.length} files match ${quant}: ${hits.join(", ")}; name one with hf:${r.owner}/${r.repo}/FILE`);
  const why = r.quant ? `no GGUF file matches ${quant}` : `it has ${gguf.length} GGUF files and none is Q4_K_M; pick one`;
  throw new RangeError(`${name}: ${why}${listGguf(r, paths)}`);
}

function listGguf(r: HfRef, paths: readonly string[]): string {
  const gguf = paths.filter((p) => /\.gguf$/i.test(p));
  if (gguf.length === 0) return "";
  const shown = gguf.slice(0, 12).map((p) => `hf:${r.owner}/${r.repo}/${p}`);
  return ` (files: ${shown.join(", ")}${gguf.length > 12 ? `, ... ${gguf.length - 12} more` : ""})`;
}
