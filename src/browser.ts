// mimo's public API for browsers (and any runtime without node:fs): models from a File/Blob, a URL
// or bytes in memory. Same engine as the Node entry; compute threads are module Web Workers, which
// need a cross-origin isolated page (COOP/COEP headers) for SharedArrayBuffer.
import { BlobByteSource, MemoryByteSource, type ByteSource } from "./format/byte-source.ts";
import { loadModelFromSource, type LoadOptions, type Model } from "./runtime/model.ts";

export * from "./api.ts";

/**
 * Loads a GGUF model from a File/Blob (read in slices, never whole), bytes in memory, any
 * ByteSource, or a URL (downloaded once into a Blob: the network is used only when given a URL).
 */
export async function loadModel(model: BrowserModelSource, opts: BrowserLoadOptions = {}): Promise<Model> {
  const source = await sourceOf(model);
  const draftModel = opts.draftModel === undefined ? undefined : await sourceOf(opts.draftModel);
  if (typeof SharedArrayBuffer === "undefined" || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) {
    throw new Error(
      "mimo needs SharedArrayBuffer: serve the page cross-origin isolated (headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)",
    );
  }
  return loadModelFromSource(source, { ...opts, draftModel });
}

/** A File/Blob, bytes in memory, any ByteSource, or a URL. */
export type BrowserModelSource = Blob | Uint8Array | ByteSource | URL | string;

/** LoadOptions, with the draft model (speculative decoding) given like the model itself. */
export type BrowserLoadOptions = Omit<LoadOptions, "draftModel"> & { readonly draftModel?: BrowserModelSource };

async function sourceOf(model: BrowserModelSource): Promise<ByteSource> {
  if (typeof model === "string" || model instanceof URL) {
    const url = new URL(String(model), (globalThis as { location?: { href: string } }).location?.href);
    const res = await fetch(url);
    if (!res.ok) throw new Error(`cannot download the model from ${url.href}: HTTP ${res.status}`);
    return new BlobByteSource(await res.blob(), url.href);
  }
  if (model instanceof Uint8Array) return new MemoryByteSource(model);
  if (typeof Blob !== "undefined" && model instanceof Blob) return new BlobByteSource(model);
  return model as ByteSource;
}
