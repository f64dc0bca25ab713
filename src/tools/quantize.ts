// `mimo quantize`: rewrites a GGUF model with its matrices in another type, by one of llama.cpp's
// recipes (quant-recipes.ts), optionally weighted by an importance matrix (imatrix.ts). Tensors are
// streamed slab by slab (dequantize -> quantize on every thread -> write), so memory stays flat
// whatever the model size, and the output appears under its name only when complete.

import { gguf, type GGUFTypedValue } from "../format/gguf.ts";
import type { GGUFFile } from "../format/gguf-reader.ts";
import type { GGUFTensorToWrite } from "../format/gguf-writer.ts";
import { readModelConfig } from "../model/config.ts";
import { openGGUFFile, writeGGUFFile } from "../platform/node-file.ts";
import { ggmlTypeLayout, ggmlTypeName, type GGMLTypeId } from "../quant/ggml-type.ts";
import { getQuantTraits, rowByteSize, supportedWeightTypes } from "../quant/traits.ts";
import type { ImportanceMatrix } from "./imatrix.ts";
import { QuantizePool } from "./quantize-pool.ts";
import { RECIPES, chooseTensorTypes, findRecipe, parseTypeOverride, type TypeChoice, type TypeOverride } from "./quant-recipes.ts";

/** llama.cpp's GGML_QNT_VERSION, written as general.quantization_version. */
export const GGML_QNT_VERSION = 2;

export interface QuantizeOptions {
  /** A recipe name: Q4_K_M, Q8_0, F16, ... (see RECIPES). */
  readonly type: string;
  readonly pure?: boolean;
  /** `PATTERN=TYPE` overrides, first match wins (llama-quantize --tensor-type). */
  readonly tensorTypes?: readonly string[];
  readonly outputType?: string;
  readonly tokenEmbeddingType?: string;
  readonly leaveOutput?: boolean;
  readonly imatrix?: ImportanceMatrix;
  /** Threads in all (default: the number of cores). */
  readonly threads?: number;
  /** Replace an existing output file. */
  readonly overwrite?: boolean;
  readonly onProgress?: (p: QuantizeProgress) => void;
  /** Things the user should know (requantizing, tensors without importance data). */
  readonly onWarning?: (message: string) => void;
}

export interface QuantizeProgress {
  readonly tensorIndex: number;
  readonly tensorCount: number;
  readonly tensorName: string;
  /** Input bytes processed so far, of inputBytes. */
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface QuantizeSummary {
  readonly recipe: string;
  readonly tensors: readonly (TypeChoice & { readonly from: number; readonly shape: readonly number[]; readonly bytes: number })[];
  readonly inputBytes: number;
  readonly outputBytes: number;
  readonly parameters: number;
  readonly threads: number;
  readonly ms: number;
}

function typeOption(flag: string, name: string | undefined): GGMLTypeId | undefined {
  if (name === undefined) return undefined;
  const t = supportedWeightTypes.find((x) => ggmlTypeName(x) === name.toUpperCase());
  if (t === undefined) throw new RangeError(`${flag} ${name}: not a tensor type mimo computes (one of ${supportedWeightTypes.map(ggmlTypeName).join(", ")})`);
  return t;
}

/** Rows per slab: about 16 M floats (64 MB as f32), at least one row. */
function slabRows(cols: number, rows: number): number {
  return Math.max(1, Math.min(rows, Math.floor((16 << 20) / cols)));
}

/** The output metadata: the input's, with the file type (and the importance matrix used) recorded. */
function outputMetadata(file: GGUFFile, ftype: number, imatrix: ImportanceMatrix | undefined): [string, GGUFTypedValue][] {
  const md = new Map<string, GGUFTypedValue>(file.metadataTypes);
  md.set("general.quantization_version", gguf.u32(GGML_QNT_VERSION));
  md.set("general.file_type", gguf.u32(ftype));
  for (const k of [...md.keys()]) if (k.startsWith("split.") || k.startsWith("quantize.imatrix.")) md.delete(k);
  if (imatrix) {
    md.set("quantize.imatrix.file", gguf.str(imatrix.source));
    if (imatrix.datasets.length > 0) md.set("quantize.imatrix.dataset", gguf.str(imatrix.datasets[0]!));
    md.set("quantize.imatrix.entries_count", gguf.u32(imatrix.entries.size));
    if (imatrix.chunkCount > 0) md.set("quantize.imatrix.chunks_count", gguf.u32(imatrix.chunkCount));
  }
  return [...md];
}

/** Writes `output`: `input` with its matrices converted by the recipe. */
export async function quantizeModel(input: string, output: string, o: QuantizeOptions): Promise<QuantizeSummary> {
  const t0 = performance.now();
  const recipe = findRecipe(o.type);
  if (!recipe) throw new RangeError(`unknown quantization type "${o.type}" (one of ${RECIPES.map((r) => r.name).join(", ")})`);
  const overrides: TypeOverride[] = (o.tensorTypes ?? []).map(parseTypeOverride);
  const outputType = typeOption("--output-tensor-type", o.outputType);
  const tokenEmbeddingType = typeOption("--token-embedding-type", o.tokenEmbeddingType);
  const warn = o.onWarning ?? (() => {});

  const file = await openGGUFFile(input);
  let pool: QuantizePool | undefined;
  try {
    const config = readModelConfig(file);
    const imatrix = o.imatrix;
    if (imatrix) {
      for (const [name, values] of imatrix.entries) {
        for (const v of values) if (!Number.isFinite(v)) throw new RangeError(`${imatrix.source}: entry "${name}" holds a non-finite value (${v})`);
      }
    }
    const choices = chooseTensorTypes(file.tensors, recipe, {
      arch: config.arch.name,
      nHead: config.nHeads,
      nHeadKv: config.nKvHeads,
      nLayerAll: config.nLayers + config.nMtpLayers,
    }, { pure: o.pure, overrides, outputType, tokenEmbeddingType, leaveOutput: o.leaveOutput, hasImatrix: imatrix !== undefined });

    // Check everything before any work: types, shapes, the importance data the recipe needs.
    const requantized = new Set<string>();
    let missingImportance = 0;
    for (let i = 0; i < file.tensors.length; i++) {
      const t = file.tensors[i]!;
      const c = choices[i]!;
      if (c.type === t.type) continue;
      getQuantTraits(c.type, t.name); // a type mimo can write (UnsupportedTensorTypeError otherwise)
      getQuantTraits(t.type, t.name); // and one it can read
      if ((ggmlTypeLayout(t.type)?.blockSize ?? 1) > 1) requantized.add(ggmlTypeName(t.type));
      const special = t.name === "token_embd.weight" || t.name === "output.weight";
      const entry = imatrix?.entries.get(t.name);
      if (imatrix && entry && entry.length !== t.shape[0] && !special) {
        throw new RangeError(`${imatrix.source}: entry "${t.name}" has ${entry.length} values, but the tensor's rows have ${t.shape[0]} columns (an importance matrix of another model?)`);
      }
      if (imatrix && !entry && !special) missingImportance++;
      if (c.type === 10 /* Q2_K */ && recipe.name === "Q2_K_S" && !special && !entry) {
        throw new RangeError(`${recipe.name} needs an importance matrix for "${t.name}" (run mimo imatrix, then pass --imatrix FILE)`);
      }
    }
    if (requantized.size > 0) {
      warn(`${input} is already quantized (${[...requantized].join(", ")}); requantizing loses more quality than quantizing from F32/F16/BF16 once`);
    }
    if (missingImportance > 0) warn(`${imatrix!.source} has no data for ${missingImportance} tensor(s) being quantized; they are quantized without it`);

    pool = await QuantizePool.create(o.threads);
    const p = pool;
    const inputBytes = file.tensors.reduce((a, t) => a + t.byteSize, 0);
    let bytesDone = 0;
    const report = (index: number, name: string, bytes: number) => {
      bytesDone += bytes;
      o.onProgress?.({ tensorIndex: index, tensorCount: file.tensors.length, tensorName: name, bytesDone, bytesTotal: inputBytes });
    };

    const tensors: GGUFTensorToWrite[] = file.tensors.map((t, index) => {
      const c = choices[index]!;
      const data = file.tensorData(t.name);
      if (c.type === t.type) {
        // Copied as it is, in pieces of at most 64 MB.
        return {
          name: t.name, type: t.type, shape: t.shape,
          data: async function* () {
            for (let at = 0; at < t.byteSize; ) {
              const n = Math.min(t.byteSize - at, 64 << 20);
              yield await data.read(at, n);
              at += n;
              report(index, t.name, n);
            }
            if (t.byteSize === 0) report(index, t.name, 0);
          },
        };
      }
      const cols = t.shape[0]!;
      const rows = t.shape.slice(1).reduce((a, b) => a * b, 1);
      const from = getQuantTraits(t.type, t.name);
      const inRow = rowByteSize(t.type, cols);
      const importance = imatrix?.entries.get(t.name);
      const useImportance = importance && importance.length === cols ? importance : undefined;
      return {
        name: t.name, type: c.type, shape: t.shape,
        data: async function* () {
          const step = slabRows(cols, rows);
          const f = new Float32Array(step * cols);
          for (let r = 0; r < rows; r += step) {
            const n = Math.min(step, rows - r);
            const raw = await data.read(r * inRow, n * inRow);
            for (let k = 0; k < n; k++) from.dequantizeRow(raw, k * inRow, f, k * cols, cols);
            yield await p.quantize(c.type, f.subarray(0, n * cols), cols, n, useImportance);
            report(index, t.name, n * inRow);
          }
        },
      };
    });

    await writeGGUFFile(output, { metadata: outputMetadata(file, recipe.ftype, imatrix), tensors }, { overwrite: o.overwrite });
    const summary = file.tensors.map((t, i) => ({ ...choices[i]!, from: t.type, shape: t.shape, bytes: sizeOf(choices[i]!.type, t.shape) }));
    return {
      recipe: recipe.name,
      tensors: summary,
      inputBytes,
      outputBytes: summary.reduce((a, t) => a + t.bytes, 0),
      parameters: file.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0),
      threads: p.threads,
      ms: performance.now() - t0,
    };
  } finally {
    await pool?.close();
    await file.close();
  }
}

function sizeOf(type: number, shape: readonly number[]): number {
  return rowByteSize(type, shape[0]!) * shape.slice(1).reduce((a, b) => a * b, 1);
}
