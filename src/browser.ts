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
export async function loadModel(model: Blob | Uint8Array | ByteSource | URL | string, opts: LoadOptions = {}): Promise<Model> {
  let source: ByteSource;
  if (typeof model === "string" || model instanceof URL) {
    const url = new URL(String(model), (globalThis as { location?: { href: string } }).location?.href);
    const res = await fetch(url);
    if (!res.ok) throw new Error(`cannot download the model from ${url.href}: HTTP ${res.status}`);
    source = new BlobByteSource(await res.blob(), url.href);
  } else if (model instanceof Uint8Array) source = new MemoryByteSource(model);
  else if (typeof Blob !== "undefined" && model instanceof Blob) source = new BlobByteSource(model);
  else source = model as ByteSource;
  if (typeof SharedArrayBuffer === "undefined" || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) {
    throw new Error(
      "mimo needs SharedArrayBuffer: serve the page cross-origin isolated (headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)",
    );
  }
  return loadModelFromSource(source, opts);
}
