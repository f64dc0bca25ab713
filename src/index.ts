// mimo's public API for Node ("mimo"); src/browser.ts is the browser entry ("mimo/browser").
import { BlobByteSource, MemoryByteSource, type ByteSource } from "./format/byte-source.ts";
import { NodeFileSource } from "./platform/node-file.ts";
import { loadModelFromSource, type LoadOptions, type Model } from "./runtime/model.ts";

export * from "./api.ts";
export { openGGUFFile, writeGGUFFile } from "./platform/node-file.ts";
export { defaultModelPath } from "./platform/default-model.ts";
// The model cache and the hub (Node only): pull "hf:OWNER/REPO:QUANT" or a URL, list, remove.
export { pullModel, resolveModel, type HubOptions, type PullResult } from "./hub/pull.ts";
export { modelCacheDir, listCached, removeCached, type CachedModel, type PulledInfo } from "./hub/cache.ts";
export { parseModelRef, formatModelRef, HF_SYNTAX, type ModelRef } from "./hub/model-ref.ts";
export type { DownloadProgress } from "./hub/download.ts";

/**
 * Loads a GGUF model: a file path, a Blob/File, bytes in memory, or any ByteSource.
 * Weights are read tensor by tensor; the file is never loaded whole.
 */
export async function loadModel(model: ModelSource, opts: NodeLoadOptions = {}): Promise<Model> {
  const draftModel = opts.draftModel === undefined ? undefined : await sourceOf(opts.draftModel);
  return loadModelFromSource(await sourceOf(model), { ...opts, draftModel });
}

/** A GGUF file path, a Blob/File, bytes in memory, or any ByteSource. */
export type ModelSource = string | Blob | Uint8Array | ByteSource;

/** LoadOptions, with the draft model given like the model itself (a path too). */
export type NodeLoadOptions = Omit<LoadOptions, "draftModel"> & { readonly draftModel?: ModelSource };

async function sourceOf(model: ModelSource): Promise<ByteSource> {
  if (typeof model === "string") return NodeFileSource.open(model);
  if (model instanceof Uint8Array) return new MemoryByteSource(model);
  if (typeof Blob !== "undefined" && model instanceof Blob) return new BlobByteSource(model);
  return model as ByteSource;
}
