// The model cache on disk: where pulled files live, what is known about each (a small JSON file
// beside it), listing and removal. Layout under the cache directory:
//   hf/OWNER/REPO/REVISION/PATH          a Hugging Face file (REVISION URL-encoded: refs/pr/1)
//   url/HOST/PATH                        a file pulled from a URL
//   ...FILE.partial, FILE.partial.json   a download in progress (resumable)
//   ...FILE.mimo.json                    what was pulled: source, size, sha256, commit, date
import { existsSync, readdirSync, statSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, relative, sep } from "node:path";
import { chooseFile, formatModelRef, parseModelRef, type HfRef, type ModelRef } from "./model-ref.ts";

/**
 * The cache directory: $MIMO_MODELS, else the platform's cache folder: $XDG_CACHE_HOME/mimo/models
 * (default ~/.cache/mimo/models) on Linux and other Unixes, ~/Library/Caches/mimo/models on
 * macOS, %LOCALAPPDATA%\mimo\models on Windows.
 */
export function modelCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, home = homedir()): string {
  if (env.MIMO_MODELS) return env.MIMO_MODELS;
  if (platform === "darwin") return join(home, "Library", "Caches", "mimo", "models");
  if (platform === "win32") return join(env.LOCALAPPDATA || join(home, "AppData", "Local"), "mimo", "models");
  return join(env.XDG_CACHE_HOME || join(home, ".cache"), "mimo", "models");
}

/** The folder a Hugging Face reference's files go to (its revision as the user named it). */
export function hfDir(cache: string, r: HfRef): string {
  return join(cache, "hf", r.owner, r.repo, encodeURIComponent(r.revision));
}

/** Where a file of a reference lives in the cache. */
export function cachePath(cache: string, r: ModelRef, file?: string): string {
  if (r.kind === "url") {
    const parts = r.url.pathname.split("/").filter(Boolean).map((p) => decodeURIComponent(p));
    if (parts.some((p) => p === "." || p === ".." || p.includes(sep) || p.includes("/"))) throw new RangeError(`${r.url.href}: unusual path, cannot be cached`);
    return join(cache, "url", r.url.host.replace(/:/g, "_"), ...parts);
  }
  const f = file ?? r.file;
  if (!f) throw new Error("cachePath: no file chosen");
  return join(hfDir(cache, r), ...f.split("/"));
}

export interface PulledInfo {
  /** The reference of this exact file (hf:OWNER/REPO/FILE[@REV] or the URL). */
  readonly ref: string;
  readonly size: number;
  readonly sha256: string;
  /** The commit the hub resolved the revision to, when it said. */
  readonly commit?: string;
  readonly url: string;
  readonly pulledAt: string;
}

export const META_SUFFIX = ".mimo.json";
export const PARTIAL_SUFFIX = ".partial";

export async function readMeta(path: string): Promise<PulledInfo | undefined> {
  try {
    return JSON.parse(await readFile(path + META_SUFFIX, "utf8")) as PulledInfo;
  } catch {
    return undefined;
  }
}

/** Writes JSON under a temporary name, then renames it into place. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(value, null, 1) + "\n");
  await rename(tmp, path);
}

/** Every file under dir, relative to it, with "/" separators. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join("/"));
}

function isModelFile(p: string): boolean {
  return !p.endsWith(META_SUFFIX) && !p.endsWith(PARTIAL_SUFFIX) && !p.endsWith(PARTIAL_SUFFIX + ".json") && !/\.tmp-\d+$/.test(p);
}

/**
 * The cached file a reference names, without the network: the file itself, or for a quant (or
 * nothing) the same pick `mimo pull` makes among the files cached for that repository and revision.
 */
export function findCached(cache: string, r: ModelRef): string | undefined {
  if (r.kind === "url" || r.file !== undefined) {
    const p = cachePath(cache, r);
    return existsSync(p) ? p : undefined;
  }
  const files = filesUnder(hfDir(cache, r)).filter(isModelFile);
  if (files.length === 0) return undefined;
  try {
    return cachePath(cache, r, chooseFile(r, files));
  } catch {
    return undefined;
  }
}

export interface CachedModel {
  readonly ref: string;
  readonly path: string;
  readonly size: number;
  readonly info?: PulledInfo;
  /** A download in progress: bytes so far and the full size, when known. */
  readonly partial?: { readonly bytes: number; readonly total?: number };
}

/** Every model in the cache, and every unfinished download, sorted by reference. */
export async function listCached(cache: string): Promise<CachedModel[]> {
  const out: CachedModel[] = [];
  for (const rel of filesUnder(cache)) {
    const path = join(cache, ...rel.split("/"));
    const partial = rel.endsWith(PARTIAL_SUFFIX);
    if (!partial && !isModelFile(rel)) continue;
    const file = partial ? rel.slice(0, -PARTIAL_SUFFIX.length) : rel;
    const ref = refOfCachePath(file);
    if (!ref) continue;
    const size = statSync(path).size;
    if (partial) {
      let state: { size?: number; url?: string } = {};
      try {
        state = JSON.parse(await readFile(path + ".json", "utf8")) as { size?: number; url?: string };
      } catch {
        // no state: the size is unknown
      }
      out.push({ ref: ref.startsWith("url:") && state.url ? state.url : ref, path, size, partial: { bytes: size, total: state.size } });
    } else {
      const info = await readMeta(path);
      out.push({ ref: ref.startsWith("url:") && info ? info.ref : ref, path, size, info });
    }
  }
  return out.sort((a, b) => a.ref.localeCompare(b.ref));
}

/** hf/OWNER/REPO/REV/FILE -> hf:OWNER/REPO/FILE[@REV]; url/HOST/PATH -> https://HOST/PATH (from the metadata when there). */
function refOfCachePath(rel: string): string | undefined {
  const p = rel.split("/");
  if (p[0] === "hf" && p.length >= 5) {
    const rev = decodeURIComponent(p[3]!);
    return `hf:${p[1]}/${p[2]}/${p.slice(4).join("/")}${rev === "main" ? "" : `@${rev}`}`;
  }
  if (p[0] === "url" && p.length >= 3) return `url:${p.slice(1).join("/")}`;
  return undefined;
}

/**
 * Removes the cached files a reference names (the model, its metadata, an unfinished download).
 * Returns what was removed; nothing found is an error naming the cache.
 */
export async function removeCached(cache: string, refText: string): Promise<CachedModel[]> {
  const all = await listCached(cache);
  let targets = all.filter((m) => m.ref === refText || m.path === refText);
  if (targets.length === 0 && /^(hf:|https?:\/\/)/i.test(refText)) {
    const r = parseModelRef(refText);
    const found = findCached(cache, r);
    const partial = r.kind === "url" || r.file !== undefined ? cachePath(cache, r) + PARTIAL_SUFFIX : undefined;
    targets = all.filter((m) => m.path === found || m.path === partial);
  }
  if (targets.length === 0) throw new RangeError(`${refText}: not in the model cache (${cache}); \`mimo list\` shows what is`);
  for (const t of targets) {
    const base = t.partial ? t.path.slice(0, -PARTIAL_SUFFIX.length) : t.path;
    await rm(t.path, { force: true });
    if (t.partial) await rm(t.path + ".json", { force: true });
    else await rm(base + META_SUFFIX, { force: true });
  }
  return targets;
}

export { formatModelRef };
