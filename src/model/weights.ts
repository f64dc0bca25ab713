// A model file's weights, loaded onto a backend: every tensor the tensor table (tensors.ts) lists
// for the architecture, checked against its shape, into the fields named by its role.
import { ModelFileError, quote } from "../format/errors.ts";
import type { GGUFFile } from "../format/gguf-reader.ts";
import { getQuantTraits, supportedWeightTypes, unsupportedType } from "../quant/traits.ts";
import type { ComputeBackend, MatrixHandle, MatrixUsage } from "../compute/backend.ts";
import type { ModelConfig } from "./config.ts";
import {
  architectureTensors,
  parseTensorName,
  presenceIn,
  tensorName,
  type LayerTensorKey,
  type ModelTensorKey,
  type MtpTensorKey,
  type TensorKey,
  type TensorScope,
} from "./tensors.ts";

export interface AttentionWeights {
  readonly attnNorm: Float32Array;
  readonly wq: MatrixHandle;
  readonly wk: MatrixHandle;
  readonly wv: MatrixHandle;
  readonly wo: MatrixHandle;
  readonly bq?: Float32Array;
  readonly bk?: Float32Array;
  readonly bv?: Float32Array;
  readonly bo?: Float32Array;
  readonly qNorm?: Float32Array;
  readonly kNorm?: Float32Array;
}

export interface FeedForwardWeights {
  readonly ffnNorm: Float32Array;
  readonly gate: MatrixHandle;
  readonly up: MatrixHandle;
  readonly down: MatrixHandle;
}

export type LayerWeights = AttentionWeights & FeedForwardWeights;

/** MiMo's multi-token-prediction layer: fuses the last hidden state with the next token's embedding. */
export interface MtpLayerWeights extends LayerWeights {
  readonly tokenNorm: Float32Array;
  readonly hiddenNorm: Float32Array;
  /** [2*dim -> dim], input is cat[tokenNorm(embedding), hiddenNorm(h)] (embedding half first: see tensors.ts). */
  readonly inputProj: MatrixHandle;
  readonly finalNorm: Float32Array;
}

export interface TransformerWeights {
  readonly tokenEmbd: MatrixHandle;
  readonly outputNorm: Float32Array;
  /** The output projection; the token embedding itself when the model ties them. */
  readonly output: MatrixHandle;
  readonly ropeFreqs?: Float32Array;
  readonly layers: readonly LayerWeights[];
  readonly mtpLayers: readonly MtpLayerWeights[];
}

export interface LoadProgress {
  readonly tensorsLoaded: number;
  readonly tensorsTotal: number;
  readonly bytesLoaded: number;
  readonly bytesTotal: number;
}

class WeightLoader {
  private readonly file: GGUFFile;
  private readonly backend: ComputeBackend;
  private readonly onProgress?: (p: LoadProgress) => void;
  private loaded = 0;
  private bytesLoaded = 0;
  private readonly bytesTotal: number;
  constructor(file: GGUFFile, backend: ComputeBackend, onProgress?: (p: LoadProgress) => void) {
    this.file = file;
    this.backend = backend;
    this.onProgress = onProgress;
    this.bytesTotal = file.tensors.reduce((a, t) => a + t.byteSize, 0);
  }

  /** Shape and type of a tensor, checked before any backend sees it. */
  private checkShape(name: string, expected: readonly number[]): void {
    const t = this.file.tensor(name);
    const same = t.shape.length === expected.length && t.shape.every((d, i) => d === expected[i]);
    if (!same) {
      throw new ModelFileError(this.file.fileName, `tensor ${quote(name)} has shape [${t.shape.join(", ")}], expected [${expected.join(", ")}]`);
    }
    if (!supportedWeightTypes.includes(t.type as never)) throw unsupportedType(t.type, name, this.file.fileName);
  }

  private progress(bytes: number): void {
    this.loaded++;
    this.bytesLoaded += bytes;
    this.onProgress?.({ tensorsLoaded: this.loaded, tensorsTotal: this.file.tensors.length, bytesLoaded: this.bytesLoaded, bytesTotal: this.bytesTotal });
  }

  async matrix(name: string, shape: readonly number[], usage: MatrixUsage): Promise<MatrixHandle> {
    this.checkShape(name, shape);
    const info = this.file.tensor(name);
    const m = await this.backend.loadMatrix({ name, type: info.type, shape: info.shape }, this.file.tensorData(name), usage);
    this.progress(info.byteSize);
    return m;
  }

  /** A 1-D tensor (norm weight, bias) as f32, whatever its stored type. */
  async vector(name: string, shape: readonly number[]): Promise<Float32Array> {
    this.checkShape(name, shape);
    const length = shape[0]!;
    const info = this.file.tensor(name);
    const traits = getQuantTraits(info.type, name);
    const bytes = await this.file.readTensorBytes(name);
    const out = new Float32Array(length);
    traits.dequantizeRow(bytes, 0, out, 0, length);
    this.progress(info.byteSize);
    return this.backend.loadVector(out);
  }

  has(name: string): boolean {
    return this.file.hasTensor(name);
  }
}

/** One table scope's tensors of an architecture, by role key (optional tensors absent from the file left out). */
type LoadedTensors = Partial<Record<TensorKey, MatrixHandle | Float32Array>>;

export async function loadTransformerWeights(
  file: GGUFFile,
  config: ModelConfig,
  backend: ComputeBackend,
  onProgress?: (p: LoadProgress) => void,
): Promise<TransformerWeights> {
  const w = new WeightLoader(file, backend, onProgress);
  const c = config;
  const arch = c.arch.name;
  const tied = !w.has(tensorName("output"));

  const load = async (scope: TensorScope, layer?: number): Promise<LoadedTensors> => {
    const out: LoadedTensors = {};
    for (const role of architectureTensors(arch, scope)) {
      const name = tensorName(role, layer);
      if (presenceIn(role, arch) === "optional" && !w.has(name)) continue;
      const shape = role.shape(c);
      const usage: MatrixUsage = role.key !== "tokenEmbd" ? "matmul" : tied ? "both" : "rows";
      out[role.key] = role.kind === "matrix" ? await w.matrix(name, shape, usage) : await w.vector(name, shape);
    }
    return out;
  };

  // The table's keys are the fields below (see tensors.ts); these casts only name the shape.
  const model = (await load("model")) as Pick<TransformerWeights, "tokenEmbd" | "outputNorm" | "ropeFreqs"> & { output?: MatrixHandle };
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.nLayers; i++) layers.push((await load("layer", i)) as unknown as LayerWeights);
  const mtpLayers: MtpLayerWeights[] = [];
  for (let j = 0; j < c.nMtpLayers; j++) {
    const i = c.nLayers + j;
    mtpLayers.push({ ...(await load("layer", i)), ...(await load("mtp", i)) } as unknown as MtpLayerWeights);
  }
  return { ...model, output: model.output ?? model.tokenEmbd, layers, mtpLayers };
}

// Compile-time check that the table's role keys are exactly the tensor fields of these interfaces.
type SameKeys<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _keysMatch: [
  SameKeys<ModelTensorKey, Exclude<keyof TransformerWeights, "layers" | "mtpLayers">>,
  SameKeys<LayerTensorKey, keyof LayerWeights>,
  SameKeys<MtpTensorKey, Exclude<keyof MtpLayerWeights, keyof LayerWeights>>,
] = [true, true, true];
void _keysMatch;

/**
 * Bytes of weights one decode step reads: every tensor of the main layers and the output matrix;
 * not the MTP layers, nor an untied token embedding (a step looks up one row of it).
 */
export function decodeWeightBytes(file: GGUFFile): number {
  const arch = String(file.metadata.get("general.architecture"));
  const blocks = Number(file.metadata.get(`${arch}.block_count`) ?? 0);
  const mtp = Number(file.metadata.get(`${arch}.nextn_predict_layers`) ?? 0);
  const tied = !file.hasTensor(tensorName("output"));
  let bytes = 0;
  for (const t of file.tensors) {
    const parsed = parseTensorName(t.name);
    if (parsed?.role.scope === "mtp" || (parsed?.layer !== undefined && parsed.layer >= blocks - mtp)) continue;
    if (t.name === tensorName("tokenEmbd") && !tied) continue;
    bytes += t.byteSize;
  }
  return bytes;
}
