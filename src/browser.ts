// mimo's public API for browsers (and any runtime without node:fs): models from a File/Blob, a URL
// or bytes in memory. Same engine as the Node entry. Compute threads are module Web Workers
// sharing memory with the page, which needs cross-origin isolation (COOP/COEP headers); without
// it the model runs on one thread (the page's own), after a one-line notice.
import { BlobByteSource, MemoryByteSource, type ByteSource } from "./format/byte-source.ts";
import type { LoadProgress } from "./model/weights.ts";
import { fetchModel, type DownloadProgress } from "./platform/model-cache.ts";
import { loadModelFromSource, type LoadOptions, type Model } from "./runtime/model.ts";

export * from "./api.ts";
export { listCachedModels, deleteCachedModel, clearModelCache, fetchModel, type CachedModel, type DownloadProgress, type DownloadOptions } from "./platform/model-cache.ts";

/** Progress of a browser load: the download (URLs only), then placing the weights. */
export type BrowserLoadProgress = DownloadProgress | (LoadProgress & { readonly phase: "load" });

export interface BrowserLoadOptions extends Omit<LoadOptions, "onProgress" | "draftModel"> {
  /** A draft model for speculative decoding, given like the model itself. */
  readonly draftModel?: BrowserModelSource;
  /** Download (bytes, rate, ETA; from the cache: one event) and load progress. */
  readonly onProgress?: (p: BrowserLoadProgress) => void;
  /** URLs: keep the model in the origin private file system and read it from there next time. Default true. */
  readonly cache?: boolean;
  /** Cancels the download. */
  readonly signal?: AbortSignal;
  /** Where the one-line notice goes when the page is not cross-origin isolated. Default console.warn. */
  readonly onNotice?: (message: string) => void;
}

/** Whether this page can run worker threads on shared memory (cross-origin isolated). */
export function canUseThreads(): boolean {
  const g = globalThis as { crossOriginIsolated?: boolean };
  return typeof SharedArrayBuffer !== "undefined" && g.crossOriginIsolated !== false;
}

/**
 * Checked before any download: the kernels need a WebAssembly shared memory (even on one
 * thread), and without cross-origin isolation only one thread can run.
 */
function checkEnvironment(opts: BrowserLoadOptions): BrowserLoadOptions {
  if (canUseThreads() || (opts.backend !== undefined && opts.backend !== "wasm")) return opts;
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  } catch {
    throw new Error(
      "this browser allows WebAssembly shared memory only on cross-origin isolated pages: serve the page with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp",
    );
  }
  const asked = opts.threads;
  (opts.onNotice ?? console.warn)(
    `mimo: this page is not cross-origin isolated, so the model runs on 1 thread${asked !== undefined && asked > 1 ? ` (not ${asked})` : ""}; serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp for more`,
  );
  return { ...opts, threads: 1 };
}

/**
 * Loads a GGUF model from a File/Blob (read in slices, never whole), bytes in memory, any
 * ByteSource, or a URL (downloaded with progress into the OPFS cache, or read from it: the
 * network is used only when given a URL that is not cached yet).
 */
export async function loadModel(model: BrowserModelSource, options: BrowserLoadOptions = {}): Promise<Model> {
  const opts = checkEnvironment(options);
  const source = await sourceOf(model, opts);
  const draftModel = opts.draftModel === undefined ? undefined : await sourceOf(opts.draftModel, opts);
  const report = opts.onProgress;
  return loadModelFromSource(source, { ...opts, draftModel, onProgress: report ? (p) => report({ ...p, phase: "load" }) : undefined });
}

/** A File/Blob, bytes in memory, any ByteSource, or a URL. */
export type BrowserModelSource = Blob | Uint8Array | ByteSource | URL | string;

async function sourceOf(model: BrowserModelSource, opts: BrowserLoadOptions): Promise<ByteSource> {
  if (typeof model === "string" || model instanceof URL) {
    const href = new URL(String(model), (globalThis as { location?: { href: string } }).location?.href).href;
    const blob = await fetchModel(href, { cache: opts.cache, signal: opts.signal, onProgress: opts.onProgress });
    return new BlobByteSource(blob, href);
  }
  if (model instanceof Uint8Array) return new MemoryByteSource(model);
  if (typeof Blob !== "undefined" && model instanceof Blob) return new BlobByteSource(model);
  return model as ByteSource;
}
