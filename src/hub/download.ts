// One file over HTTP into the cache: redirects followed by hand (credentials never cross to another
// host), a download in progress kept as FILE.partial and resumed with a Range request, the
// sha256 checked before the file takes its final name, and errors that say what to do.
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { formatBytes } from "./bytes.ts";
import { PARTIAL_SUFFIX, writeJsonAtomic } from "./cache.ts";

export interface DownloadProgress {
  readonly bytes: number;
  readonly total: number;
  /** Bytes already on disk from an earlier, interrupted download. */
  readonly resumedFrom: number;
}

export interface DownloadSpec {
  /** The first URL (e.g. the hub's resolve URL; it may redirect to a CDN). */
  readonly url: string;
  /** The final path; the download is FILE.partial until verified. */
  readonly path: string;
  /** What the user asked for, for messages. */
  readonly name: string;
  /** Expected size and sha256 (hex), when the source says (the hub's LFS metadata does). */
  readonly size?: number;
  readonly sha256?: string;
  /** Sent to the first URL's host only (HF_TOKEN). */
  readonly authorization?: string;
  /** Extra attempts after an interrupted transfer, each resuming where the last one stopped. Default 4. */
  readonly retries?: number;
  readonly onProgress?: (p: DownloadProgress) => void;
  readonly signal?: AbortSignal;
  /** A last check of the complete download before it takes its name: a problem, or undefined. */
  readonly check?: (partialPath: string) => Promise<string | undefined>;
}

export interface Downloaded {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  /** The final URL after redirects. */
  readonly url: string;
  /** Headers of the first response, before any redirect (the hub's X-Repo-Commit). */
  readonly headers: Headers;
  /** Bytes that came from an earlier partial download. */
  readonly resumedFrom: number;
}

/** An HTTP failure with its status, for callers that explain it in their terms (401: set HF_TOKEN). */
export class HttpStatusError extends Error {
  readonly status: number;
  readonly url: string;
  constructor(status: number, statusText: string, url: string, what: string) {
    super(`${what}: ${url} answered ${status}${statusText ? ` ${statusText}` : ""}`);
    this.status = status;
    this.url = url;
  }
}

interface PartialState {
  readonly url: string;
  readonly size?: number;
  readonly sha256?: string;
  readonly etag?: string;
  readonly lastModified?: string;
}

const MAX_REDIRECTS = 10;

/**
 * GET with redirects followed by hand: the Authorization header goes to the first URL's origin
 * only, never to a CDN on another host (fetch's own redirect handling is not relied upon for that).
 */
export async function fetchFollowing(url: string, headers: Record<string, string>, authorization: string | undefined, signal?: AbortSignal): Promise<Response> {
  const origin = new URL(url).origin;
  let current = url;
  let first: Headers | undefined;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const h: Record<string, string> = { ...headers };
    if (authorization && new URL(current).origin === origin) h.authorization = authorization;
    const res = await fetch(current, { headers: h, redirect: "manual", signal });
    first ??= res.headers;
    if (res.status >= 300 && res.status < 400 && res.headers.has("location")) {
      await res.body?.cancel();
      current = new URL(res.headers.get("location")!, current).href;
      continue;
    }
    Object.defineProperty(res, "finalUrl", { value: current });
    Object.defineProperty(res, "firstHeaders", { value: first });
    return res;
  }
  throw new Error(`${url}: more than ${MAX_REDIRECTS} redirects`);
}

function finalUrlOf(res: Response, fallback: string): string {
  return (res as Response & { finalUrl?: string }).finalUrl ?? fallback;
}

function firstHeadersOf(res: Response): Headers {
  return (res as Response & { firstHeaders?: Headers }).firstHeaders ?? res.headers;
}

function networkMessage(e: unknown): string {
  const err = e as Error & { cause?: Error & { code?: string } };
  const cause = err.cause;
  return cause?.code ? `${cause.code}${cause.message ? ` (${cause.message})` : ""}` : (cause?.message ?? err.message);
}

async function readState(path: string): Promise<PartialState | undefined> {
  try {
    return JSON.parse(await readFile(path + ".json", "utf8")) as PartialState;
  } catch {
    return undefined;
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Hashes the bytes already downloaded, so that the resumed download's sha256 covers the whole file. */
async function hashExisting(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}


/** Refuses before downloading when the disk cannot hold what is left to download. */
async function checkFreeSpace(dir: string, needed: number, name: string): Promise<void> {
  let free: number;
  try {
    const s = await statfs(dir);
    free = s.bavail * s.bsize;
  } catch {
    return; // statfs unsupported here: the write itself reports a full disk
  }
  if (needed > free) {
    throw new Error(`${name}: needs ${formatBytes(needed)} more, but only ${formatBytes(free)} is free in ${dir}; free some space, or set MIMO_MODELS to a cache folder on a larger disk`);
  }
}

/**
 * Downloads a file into the cache. An existing FILE.partial of the same file (same expected
 * sha256, or for a plain URL the same ETag) is resumed from its last byte; a server that ignores
 * the Range header restarts it from zero. The file appears under its final name only after its size
 * and sha256 (when known) check out; a wrong hash removes the download.
 */
export async function download(spec: DownloadSpec): Promise<Downloaded> {
  const partial = spec.path + PARTIAL_SUFFIX;
  await mkdir(dirname(spec.path), { recursive: true });
  const prior = await readState(partial);
  const sameFile = prior !== undefined && (spec.sha256 !== undefined ? prior.sha256 === spec.sha256 : prior.url === spec.url);
  if (!sameFile) {
    await rm(partial, { force: true });
    await rm(partial + ".json", { force: true });
  }
  let state: PartialState = sameFile ? prior! : { url: spec.url, size: spec.size, sha256: spec.sha256 };
  await writeJsonAtomic(partial + ".json", state);

  const retries = spec.retries ?? 4;
  let attempt = 0;
  let resumedFrom = await fileSize(partial);
  let hash = createHash("sha256");
  if (resumedFrom > 0) await hashExisting(partial, hash);
  let have = resumedFrom;
  let restartedAfter416 = false;
  for (;;) {
    if (spec.size !== undefined) await checkFreeSpace(dirname(spec.path), spec.size - have, spec.name);
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (have > 0) {
      headers.range = `bytes=${have}-`;
      // A plain URL whose content changed must not be spliced onto the old bytes.
      if (!spec.sha256 && (state.etag || state.lastModified)) headers["if-range"] = (state.etag ?? state.lastModified)!;
    }
    let res: Response;
    try {
      res = await fetchFollowing(spec.url, headers, spec.authorization, spec.signal);
    } catch (e) {
      if (spec.signal?.aborted) throw e;
      if (attempt++ < retries) {
        await delay(attempt);
        continue;
      }
      throw new Error(`${spec.name}: cannot reach ${new URL(spec.url).host}: ${networkMessage(e)}`);
    }
    const finalUrl = finalUrlOf(res, spec.url);
    if (res.status === 416 && have > 0) {
      // Nothing left past our bytes: complete if the size says so, else start over (once).
      await res.body?.cancel();
      if (spec.size !== undefined && have === spec.size) return finish(spec, partial, hash, have, finalUrl, firstHeadersOf(res), resumedFrom);
      if (restartedAfter416) throw new HttpStatusError(416, res.statusText, finalUrl, spec.name);
      restartedAfter416 = true;
      await rm(partial, { force: true });
      hash = createHash("sha256");
      have = resumedFrom = 0;
      continue;
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw new HttpStatusError(res.status, res.statusText, finalUrl, spec.name);
    }
    if (res.status === 206) {
      const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
      if (!m || Number(m[1]) !== have) {
        await res.body?.cancel();
        throw new Error(`${spec.name}: ${finalUrl} answered a range request with the wrong range ("${res.headers.get("content-range")}", wanted bytes ${have}-)`);
      }
    } else if (have > 0) {
      // 200 to a range request: the server sends the whole file again.
      await rm(partial, { force: true });
      hash = createHash("sha256");
      have = resumedFrom = 0;
    }
    const total = spec.size ?? (res.status === 206 ? Number(/\/(\d+)$/.exec(res.headers.get("content-range") ?? "")?.[1] ?? NaN) : have + Number(res.headers.get("content-length") ?? NaN));
    if (have === 0) {
      state = { ...state, size: Number.isFinite(total) ? total : undefined, etag: res.headers.get("etag") ?? undefined, lastModified: res.headers.get("last-modified") ?? undefined };
      await writeJsonAtomic(partial + ".json", state);
    }
    if (spec.size !== undefined) await checkFreeSpace(dirname(spec.path), spec.size - have, spec.name);
    const fh = await open(partial, "a");
    try {
      spec.onProgress?.({ bytes: have, total, resumedFrom });
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        try {
          await fh.write(chunk);
        } catch (e) {
          throw diskError(e, spec, partial, have, total);
        }
        hash.update(chunk);
        have += chunk.byteLength;
        spec.onProgress?.({ bytes: have, total, resumedFrom });
      }
    } catch (e) {
      await fh.close();
      if ((e as { diskFull?: boolean }).diskFull || spec.signal?.aborted) throw e;
      // The connection broke mid-transfer: resume from what arrived.
      if (attempt++ < retries) {
        await delay(attempt);
        continue;
      }
      throw new Error(`${spec.name}: the download was interrupted at ${formatBytes(have)}${Number.isFinite(total) ? ` of ${formatBytes(total)}` : ""} (${networkMessage(e)}); run the same command again to resume it`);
    }
    try {
      await fh.sync();
    } catch (e) {
      await fh.close();
      throw diskError(e, spec, partial, have, total);
    }
    await fh.close();
    if (Number.isFinite(total) && have < total) {
      if (attempt++ < retries) {
        await delay(attempt);
        continue;
      }
      throw new Error(`${spec.name}: the download ended early at ${formatBytes(have)} of ${formatBytes(total)}; run the same command again to resume it`);
    }
    return finish(spec, partial, hash, have, finalUrl, firstHeadersOf(res), resumedFrom);
  }
}

function diskError(e: unknown, spec: DownloadSpec, partial: string, have: number, total: number): Error {
  const code = (e as NodeJS.ErrnoException).code;
  const err = code === "ENOSPC" || code === "EDQUOT"
    ? new Error(`${spec.name}: the disk is full (${code}) after ${formatBytes(have)}${Number.isFinite(total) ? ` of ${formatBytes(total)}` : ""} in ${partial}; free some space and run the same command again to resume, or set MIMO_MODELS to a cache folder on a larger disk`)
    : new Error(`${spec.name}: cannot write ${partial}: ${(e as Error).message}`);
  Object.assign(err, { diskFull: true, cause: e });
  return err;
}

async function finish(spec: DownloadSpec, partial: string, hash: Hash, size: number, url: string, headers: Headers, resumedFrom: number): Promise<Downloaded> {
  const sha256 = hash.digest("hex");
  if (spec.size !== undefined && size !== spec.size) {
    await rm(partial, { force: true });
    await rm(partial + ".json", { force: true });
    throw new Error(`${spec.name}: downloaded ${size} bytes, but the file has ${spec.size}; the download was discarded`);
  }
  if (spec.sha256 !== undefined && sha256 !== spec.sha256.toLowerCase()) {
    await rm(partial, { force: true });
    await rm(partial + ".json", { force: true });
    throw new Error(`${spec.name}: sha256 mismatch: expected ${spec.sha256}, got ${sha256}; the download was discarded`);
  }
  const problem = await spec.check?.(partial);
  if (problem) {
    await rm(partial, { force: true });
    await rm(partial + ".json", { force: true });
    throw new Error(`${spec.name}: ${problem}; the download was discarded`);
  }
  await rename(partial, spec.path);
  await rm(partial + ".json", { force: true });
  return { path: spec.path, size, sha256, url, headers, resumedFrom };
}

function delay(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.min(4000, 250 * 2 ** (attempt - 1))));
}
