// `mimo imatrix`: an importance matrix, as llama.cpp's llama-imatrix computes it: for every weight
// matrix of the decoder layers, the sum over calibration tokens of the squared input of each
// column (and the token count), from chunks of `chunkSize` tokens of a text, each starting with
// BOS. Quantizers then weight each column's error by its mean squared activation.
//
// Files: llama.cpp's GGUF imatrix format (its default): per matrix "<name>.in_sum2" (F32, one
// value per column) and "<name>.counts" (F32, one value), general.type = "imatrix",
// imatrix.datasets / chunk_count / chunk_size. Its legacy .dat format is read too.

import { gguf, type GGUFTypedValue } from "../format/gguf.ts";
import { MemoryByteSource } from "../format/byte-source.ts";
import { readGGUF } from "../format/gguf-reader.ts";
import type { GGUFTensorToWrite } from "../format/gguf-writer.ts";
import { ModelFileError } from "../format/errors.ts";
import { tensorName, type LayerTensorKey } from "../model/tensors.ts";
import type { Model } from "../runtime/model.ts";
import { GGMLType } from "../quant/ggml-type.ts";

/** The mean squared activations llama-quantize uses, per tensor name (sum / count). */
export interface ImportanceMatrix {
  /** Where it came from (recorded in quantized files as quantize.imatrix.file). */
  readonly source: string;
  readonly datasets: readonly string[];
  readonly chunkCount: number;
  readonly chunkSize: number;
  readonly entries: ReadonlyMap<string, Float32Array>;
}

/** What is collected: raw sums of squares and token counts (what the GGUF file stores). */
export interface ImatrixSums {
  readonly datasets: readonly string[];
  readonly chunkCount: number;
  readonly chunkSize: number;
  readonly sums: ReadonlyMap<string, Float32Array>;
  readonly counts: ReadonlyMap<string, number>;
}

export interface CollectOptions {
  /** Tokens per chunk (llama-imatrix -c; default 512). */
  readonly chunkSize?: number;
  /** At most this many chunks (default: all the text gives). */
  readonly maxChunks?: number;
  /** The text's name, recorded as imatrix.datasets. */
  readonly dataset?: string;
  readonly onChunk?: (done: number, total: number) => void;
}

/**
 * The tokens of `text` cut into whole chunks of `chunkSize`, each starting with BOS when the model
 * adds one (llama-imatrix replaces each chunk's first token by BOS). Shared by perplexity-style tools.
 */
export function calibrationChunks(model: Model, text: string, chunkSize: number, maxChunks = Infinity): number[][] {
  if (!(Number.isInteger(chunkSize) && chunkSize >= 2)) throw new RangeError(`chunk size must be an integer >= 2, got ${chunkSize}`);
  if (chunkSize > model.contextSize) throw new RangeError(`chunk size ${chunkSize} exceeds the context size ${model.contextSize}`);
  const tokens = model.tokenize(text, { addSpecial: true });
  const n = Math.min(Math.floor(tokens.length / chunkSize), maxChunks);
  if (n < 1) throw new RangeError(`the text has ${tokens.length} tokens, fewer than one chunk of ${chunkSize}; use a longer text or a smaller chunk size (-c)`);
  const bos = model.tokenizer.bos;
  const addBos = model.tokenizer.addBos && bos !== undefined;
  const chunks: number[][] = [];
  for (let i = 0; i < n; i++) {
    const chunk = tokens.slice(i * chunkSize, (i + 1) * chunkSize);
    if (addBos) chunk[0] = bos!;
    chunks.push(chunk);
  }
  return chunks;
}

/** Runs the calibration text through the model and sums the squared inputs of every layer matrix. */
export function collectImatrix(model: Model, text: string, o: CollectOptions = {}): ImatrixSums {
  const chunkSize = o.chunkSize ?? 512;
  const chunks = calibrationChunks(model, text, chunkSize, o.maxChunks);
  // One accumulator per matmul input; matrices that share an input (q/k/v, gate/up) share it.
  const groups = new Map<string, { names: string[]; acc: Float32Array; count: number }>();
  model.setForwardProbe({
    matmulInput(layer, keys, x, n, cols) {
      // llama-imatrix ignores multiplies of fewer than 16 rows (it never sees them with whole chunks).
      if (n < 16) return;
      const id = `${layer}:${keys.join(",")}`;
      let g = groups.get(id);
      if (!g) groups.set(id, (g = { names: keys.map((k) => tensorName(k, layer)), acc: new Float32Array(cols), count: 0 }));
      const acc = g.acc;
      // float32 accumulation of float32 squares, as llama.cpp's acc[j] += x[j] * x[j]
      for (let r = 0; r < n; r++) {
        const o = r * cols;
        for (let j = 0; j < cols; j++) {
          const v = x[o + j]!;
          acc[j] = acc[j]! + Math.fround(v * v);
        }
      }
      g.count += n;
    },
  });
  try {
    chunks.forEach((chunk, i) => {
      model.evaluate(chunk);
      o.onChunk?.(i + 1, chunks.length);
    });
  } finally {
    model.setForwardProbe(undefined);
  }
  const sums = new Map<string, Float32Array>();
  const counts = new Map<string, number>();
  for (const g of groups.values()) {
    for (const name of g.names) {
      sums.set(name, g.acc.slice());
      counts.set(name, g.count);
    }
  }
  return { datasets: o.dataset ? [o.dataset] : [], chunkCount: chunks.length, chunkSize, sums, counts };
}

/** Mean squared activations (what the quantizers weight by), as llama-quantize derives them. */
export function importanceFromSums(s: ImatrixSums, source: string): ImportanceMatrix {
  const entries = new Map<string, Float32Array>();
  for (const [name, sum] of s.sums) {
    const count = s.counts.get(name) ?? 0;
    entries.set(name, count > 0 ? Float32Array.from(sum, (v) => v / count) : new Float32Array(sum.length).fill(1));
  }
  return { source, datasets: s.datasets, chunkCount: s.chunkCount, chunkSize: s.chunkSize, entries };
}

/** The GGUF file llama-imatrix writes (names sorted; sums and counts as F32 tensors). */
export function imatrixGGUF(s: ImatrixSums): { metadata: [string, GGUFTypedValue][]; tensors: GGUFTensorToWrite[] } {
  const tensors: GGUFTensorToWrite[] = [];
  for (const name of [...s.sums.keys()].sort()) {
    const sum = s.sums.get(name)!;
    tensors.push({ name: `${name}.in_sum2`, type: GGMLType.F32, shape: [sum.length, 1], data: new Uint8Array(Float32Array.from(sum).buffer) });
    tensors.push({ name: `${name}.counts`, type: GGMLType.F32, shape: [1, 1], data: new Uint8Array(Float32Array.of(s.counts.get(name) ?? 0).buffer) });
  }
  return {
    metadata: [
      ["general.type", gguf.str("imatrix")],
      ["imatrix.datasets", gguf.strings(s.datasets)],
      ["imatrix.chunk_count", gguf.u32(s.chunkCount)],
      ["imatrix.chunk_size", gguf.u32(s.chunkSize)],
    ],
    tensors,
  };
}

/** Reads an importance matrix: llama.cpp's GGUF format, or its legacy .dat format. */
export async function parseImatrix(bytes: Uint8Array, name: string): Promise<ImportanceMatrix> {
  const isGGUF = bytes.byteLength >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 && bytes[3] === 0x46;
  return isGGUF ? parseGGUFImatrix(bytes, name) : parseLegacyImatrix(bytes, name);
}

async function parseGGUFImatrix(bytes: Uint8Array, name: string): Promise<ImportanceMatrix> {
  const file = await readGGUF(new MemoryByteSource(bytes, name));
  const type = file.metadata.get("general.type");
  if (type !== "imatrix") throw new ModelFileError(name, `is a GGUF file but not an importance matrix (general.type is ${JSON.stringify(type)}, expected "imatrix")`);
  const sums = new Map<string, Float32Array>();
  const counts = new Map<string, Float32Array>();
  for (const t of file.tensors) {
    if (t.type !== GGMLType.F32) throw new ModelFileError(name, `tensor "${t.name}" must be F32`);
    const data = await file.readTensorBytes(t.name);
    const values = new Float32Array(data.byteLength / 4);
    new Uint8Array(values.buffer).set(data);
    if (t.name.endsWith(".in_sum2")) sums.set(t.name.slice(0, -8), values);
    else if (t.name.endsWith(".counts")) counts.set(t.name.slice(0, -7), values);
  }
  const entries = new Map<string, Float32Array>();
  for (const [tensor, sum] of sums) {
    const c = counts.get(tensor);
    if (!c) throw new ModelFileError(name, `"${tensor}" has sums but no counts`);
    const per = sum.length / c.length;
    if (!Number.isInteger(per)) throw new ModelFileError(name, `"${tensor}": ${sum.length} sums do not split into ${c.length} matrices`);
    const e = new Float32Array(sum.length);
    for (let m = 0; m < c.length; m++) {
      const count = Math.fround(Math.round(c[m]!));
      for (let i = 0; i < per; i++) e[m * per + i] = count > 0 ? sum[m * per + i]! / count : 1;
    }
    entries.set(tensor, e);
  }
  const ds = file.metadata.get("imatrix.datasets");
  return {
    source: name,
    datasets: Array.isArray(ds) ? ds.map(String) : [],
    chunkCount: Number(file.metadata.get("imatrix.chunk_count") ?? 0),
    chunkSize: Number(file.metadata.get("imatrix.chunk_size") ?? 0),
    entries,
  };
}

function parseLegacyImatrix(bytes: Uint8Array, name: string): ImportanceMatrix {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n: number, what: string) => {
    if (at + n > bytes.byteLength) throw new ModelFileError(name, `is not an importance matrix (neither GGUF nor llama.cpp's .dat format): ends while reading ${what} at byte ${at}`);
  };
  const i32 = (what: string) => {
    need(4, what);
    const v = view.getInt32(at, true);
    at += 4;
    return v;
  };
  const str = (len: number, what: string) => {
    if (len < 0 || len > 4096) throw new ModelFileError(name, `is not an importance matrix: ${what} has length ${len}`);
    need(len, what);
    const s = new TextDecoder().decode(bytes.subarray(at, at + len));
    at += len;
    return s;
  };
  const n = i32("the entry count");
  if (n < 1 || n > 1 << 20) throw new ModelFileError(name, `is not an importance matrix: entry count ${n}`);
  const entries = new Map<string, Float32Array>();
  for (let e = 0; e < n; e++) {
    const tensor = str(i32(`the name length of entry ${e}`), `the name of entry ${e}`);
    const ncall = i32(`the call count of "${tensor}"`);
    const nval = i32(`the value count of "${tensor}"`);
    if (nval < 1 || nval > 1 << 26) throw new ModelFileError(name, `entry "${tensor}" has ${nval} values`);
    need(nval * 4, `the values of "${tensor}"`);
    const v = new Float32Array(nval);
    for (let i = 0; i < nval; i++) {
      const x = view.getFloat32(at + 4 * i, true);
      v[i] = ncall > 0 ? x / ncall : x;
    }
    at += nval * 4;
    entries.set(tensor, v);
  }
  let chunkCount = 0;
  const datasets: string[] = [];
  if (at + 4 <= bytes.byteLength) {
    chunkCount = i32("the chunk count");
    if (at + 4 <= bytes.byteLength) {
      const len = i32("the dataset name length");
      if (len > 0) datasets.push(str(len, "the dataset name"));
    }
  }
  return { source: name, datasets, chunkCount, chunkSize: 0, entries };
}
