// Downloading a model in a browser, with progress (bytes, rate, ETA), into the origin private file
// system (OPFS) so that a reload reads it from disk instead of the network. A cached file becomes
// visible only once it is complete: its metadata entry is written after the last byte, so an
// interrupted download is never mistaken for a model. Without OPFS (old browsers, some private
// modes) the download goes into a Blob in memory, as before.

/** Download progress, reported about ten times a second and once at the end. */
export interface DownloadProgress {
  readonly phase: "download";
  readonly url: string;
  readonly bytesLoaded: number;
  /** From Content-Length; undefined when the server does not say. */
  readonly bytesTotal: number | undefined;
  /** Average rate since the download started. */
  readonly bytesPerSecond: number;
  /** Seconds left at that rate; undefined when the total is unknown. */
  readonly etaSeconds: number | undefined;
  /** True when the bytes come from the OPFS cache (then one event, loaded = total). */
  readonly fromCache: boolean;
  readonly done: boolean;
}

/** One model in the OPFS cache. */
export interface CachedModel {
  readonly url: string;
  readonly bytes: number;
  /** When it was downloaded (ms since the epoch). */
  readonly cachedAt: number;
  readonly etag?: string;
}

export interface DownloadOptions {
  /** Keep the file in the OPFS cache and use it when present. Default true. */
  readonly cache?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: DownloadProgress) => void;
}

const DIR = "mimo-models";

interface StorageDirectory {
  getDirectoryHandle(name: string, o?: { create?: boolean }): Promise<StorageDirectory>;
  getFileHandle(name: string, o?: { create?: boolean }): Promise<StorageFile>;
  removeEntry(name: string): Promise<void>;
  values(): AsyncIterable<{ kind: string; name: string }>;
}
interface StorageFile {
  getFile(): Promise<File>;
  createWritable(): Promise<{ write(b: Uint8Array): Promise<void>; close(): Promise<void>; abort(): Promise<void> }>;
}

/** The cache directory, or undefined where OPFS is not available. */
async function cacheDir(): Promise<StorageDirectory | undefined> {
  const storage = (globalThis as unknown as { navigator?: { storage?: { getDirectory?: () => Promise<StorageDirectory> } } }).navigator?.storage;
  if (typeof storage?.getDirectory !== "function") return undefined;
  try {
    return await (await storage.getDirectory()).getDirectoryHandle(DIR, { create: true });
  } catch {
    return undefined; // e.g. storage disabled for this origin
  }
}

/** A file name for a URL: hex SHA-256 (URLs may be longer than names and hold any character). */
async function keyOf(url: string): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(url)));
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readMeta(dir: StorageDirectory, key: string): Promise<CachedModel | undefined> {
  try {
    const meta = JSON.parse(await (await (await dir.getFileHandle(`${key}.json`)).getFile()).text()) as CachedModel;
    const file = await (await dir.getFileHandle(`${key}.gguf`)).getFile();
    return file.size === meta.bytes ? meta : undefined;
  } catch {
    return undefined;
  }
}

/** The models in this origin's cache. */
export async function listCachedModels(): Promise<CachedModel[]> {
  const dir = await cacheDir();
  if (!dir) return [];
  const out: CachedModel[] = [];
  for await (const e of dir.values()) {
    if (e.kind !== "file" || !e.name.endsWith(".json")) continue;
    const meta = await readMeta(dir, e.name.slice(0, -5));
    if (meta) out.push(meta);
  }
  return out.sort((a, b) => a.cachedAt - b.cachedAt);
}

/** Removes one model (by the URL it was downloaded from); false when it was not cached. */
export async function deleteCachedModel(url: string | URL): Promise<boolean> {
  const dir = await cacheDir();
  if (!dir) return false;
  const key = await keyOf(absolute(url));
  let found = false;
  for (const name of [`${key}.json`, `${key}.gguf`]) {
    try {
      await dir.removeEntry(name);
      found = true;
    } catch {
      // absent
    }
  }
  return found;
}

/** Empties the cache (every model, and any partial download); returns how many models it held. */
export async function clearModelCache(): Promise<number> {
  const dir = await cacheDir();
  if (!dir) return 0;
  const n = (await listCachedModels()).length;
  const names: string[] = [];
  for await (const e of dir.values()) names.push(e.name);
  for (const name of names) await dir.removeEntry(name);
  return n;
}

function absolute(url: string | URL): string {
  return new URL(String(url), (globalThis as { location?: { href: string } }).location?.href).href;
}

class Meter {
  private readonly t0 = performance.now();
  private last = 0;
  loaded = 0;
  private readonly url: string;
  private readonly total: number | undefined;
  private readonly report: ((p: DownloadProgress) => void) | undefined;
  constructor(url: string, total: number | undefined, report?: (p: DownloadProgress) => void) {
    this.url = url;
    this.total = total;
    this.report = report;
  }
  add(n: number): void {
    this.loaded += n;
    const t = performance.now();
    if (t - this.last >= 100) {
      this.last = t;
      this.emit(false);
    }
  }
  emit(done: boolean): void {
    if (!this.report) return;
    const s = Math.max(1e-3, (performance.now() - this.t0) / 1000);
    const rate = this.loaded / s;
    const eta = this.total === undefined ? undefined : done ? 0 : rate > 0 ? (this.total - this.loaded) / rate : undefined;
    this.report({ phase: "download", url: this.url, bytesLoaded: this.loaded, bytesTotal: this.total, bytesPerSecond: rate, etaSeconds: eta, fromCache: false, done });
  }
}

/**
 * The model at `url` as a Blob: from the OPFS cache when it is there (no network), else
 * downloaded with progress (into the cache when allowed and available, else into memory).
 */
export async function fetchModel(url: string | URL, opts: DownloadOptions = {}): Promise<Blob> {
  const href = absolute(url);
  const useCache = opts.cache ?? true;
  const dir = useCache ? await cacheDir() : undefined;
  const key = dir ? await keyOf(href) : "";
  if (dir) {
    const meta = await readMeta(dir, key);
    if (meta) {
      const file = await (await dir.getFileHandle(`${key}.gguf`)).getFile();
      opts.onProgress?.({ phase: "download", url: href, bytesLoaded: file.size, bytesTotal: file.size, bytesPerSecond: 0, etaSeconds: 0, fromCache: true, done: true });
      return file;
    }
  }
  const res = await fetch(href, { signal: opts.signal });
  if (!res.ok) throw new Error(`cannot download the model from ${href}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`);
  const type = res.headers.get("content-type") ?? "";
  if (type.startsWith("text/html")) {
    throw new Error(`cannot download the model from ${href}: the server answered with an HTML page, not a GGUF file (a wrong path, or a single-page app's fallback)`);
  }
  const lengthHeader = res.headers.get("content-length");
  // Content-Length counts encoded bytes; with a content encoding the body's length differs.
  const total = lengthHeader !== null && !res.headers.get("content-encoding") ? Number(lengthHeader) : undefined;
  const meter = new Meter(href, total, opts.onProgress);
  const body = res.body;
  if (!body) throw new Error(`cannot download the model from ${href}: the response has no body`);
  const reader = body.getReader();

  if (dir) {
    const handle = await dir.getFileHandle(`${key}.gguf`, { create: true });
    try {
      await dir.removeEntry(`${key}.json`); // a stale entry must not vouch for the new bytes
    } catch {
      // none
    }
    const w = await handle.createWritable();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await w.write(value);
        meter.add(value.byteLength);
      }
      await w.close();
    } catch (e) {
      await w.abort().catch(() => {});
      await dir.removeEntry(`${key}.gguf`).catch(() => {});
      if ((e as Error)?.name === "QuotaExceededError") {
        throw new Error(`not enough browser storage to cache the model from ${href} (${total ?? meter.loaded} bytes); free space with clearModelCache() or load with cache: false`);
      }
      throw e;
    }
    if (total !== undefined && meter.loaded !== total) {
      await dir.removeEntry(`${key}.gguf`).catch(() => {});
      throw new Error(`the download of ${href} ended after ${meter.loaded} of ${total} bytes`);
    }
    const meta: CachedModel = { url: href, bytes: meter.loaded, cachedAt: Date.now(), ...(res.headers.get("etag") ? { etag: res.headers.get("etag")! } : {}) };
    const mw = await (await dir.getFileHandle(`${key}.json`, { create: true })).createWritable();
    await mw.write(new TextEncoder().encode(JSON.stringify(meta)));
    await mw.close();
    meter.emit(true);
    return handle.getFile();
  }

  const chunks: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    meter.add(value.byteLength);
  }
  if (total !== undefined && meter.loaded !== total) throw new Error(`the download of ${href} ended after ${meter.loaded} of ${total} bytes`);
  meter.emit(true);
  return new Blob(chunks as BlobPart[]);
}
