// mimo's public API for Node ("mimo"); src/browser.ts is the browser entry ("mimo/browser").
import { BlobByteSource, MemoryByteSource, type ByteSource } from "./format/byte-source.ts";
import { NodeFileSource } from "./platform/node-file.ts";
import { loadModelFromSource, type LoadOptions, type Model } from "./runtime/model.ts";

export * from "./api.ts";
export { openGGUFFile, writeGGUFFile } from "./platform/node-file.ts";
export { defaultModelPath } from "./platform/default-model.ts";

/**
 * Loads a GGUF model: a file path, a Blob/File, bytes in memory, or any ByteSource.
 * Weights are read tensor by tensor; the file is never loaded whole.
 */
export async function loadModel(model: string | Blob | Uint8Array | ByteSource, opts: LoadOptions = {}): Promise<Model> {
  let source: ByteSource;
  if (typeof model === "string") source = await NodeFileSource.open(model);
  else if (model instanceof Uint8Array) source = new MemoryByteSource(model);
  else if (typeof Blob !== "undefined" && model instanceof Blob) source = new BlobByteSource(model);
  else source = model as ByteSource;
  return loadModelFromSource(source, opts);
}
