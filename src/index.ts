// mimo's public API for Node. (The browser entry uses loadModelFromSource with a BlobByteSource.)
import { BlobByteSource, MemoryByteSource, type ByteSource } from "./format/byte-source.ts";
import { NodeFileSource } from "./platform/node-file.ts";
import { loadModelFromSource, type LoadOptions, type Model } from "./runtime/model.ts";

export { Model, loadModelFromSource } from "./runtime/model.ts";
export type {
  FinishReason,
  GenerateOptions,
  GenerationChunk,
  GenerationResult,
  GenerationStats,
  LoadOptions,
} from "./runtime/model.ts";
export type { SamplingOptions } from "./sampling/sampler.ts";
export type { Tokenizer } from "./tokenizer/index.ts";
export type { ModelConfig } from "./model/config.ts";
export type { LoadProgress } from "./model/weights.ts";
export { ModelFileError } from "./format/errors.ts";
export { UnsupportedTensorTypeError } from "./quant/traits.ts";
export { BlobByteSource, MemoryByteSource, type ByteSource } from "./format/byte-source.ts";
export { readGGUF, GGUFFile } from "./format/gguf-reader.ts";
export { writeGGUF } from "./format/gguf-writer.ts";
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
