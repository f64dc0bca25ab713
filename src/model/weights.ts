import { ModelFileError } from "../format/errors.ts";
import type { GGUFFile } from "../format/gguf-reader.ts";
import { getQuantTraits } from "../quant/traits.ts";
import type { ComputeBackend, MatrixHandle, MatrixUsage } from "../compute/backend.ts";
import type { ModelConfig } from "./config.ts";

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
  /** [2*dim -> dim], input is concat(hiddenNorm(h), tokenNorm(embedding)). */
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

  private checkShape(name: string, expected: readonly number[]): void {
    const t = this.file.tensor(name);
    const same = t.shape.length === expected.length && t.shape.every((d, i) => d === expected[i]);
    if (!same) {
      throw new ModelFileError(this.file.fileName, `tensor "${name}" has shape [${t.shape.join(", ")}], expected [${expected.join(", ")}]`);
    }
  }

  private progress(bytes: number): void {
    this.loaded++;
    this.bytesLoaded += bytes;
    this.onProgress?.({ tensorsLoaded: this.loaded, tensorsTotal: this.file.tensors.length, bytesLoaded: this.bytesLoaded, bytesTotal: this.bytesTotal });
  }

  async matrix(name: string, cols: number, rows: number, usage: MatrixUsage = "matmul"): Promise<MatrixHandle> {
    this.checkShape(name, [cols, rows]);
    const info = this.file.tensor(name);
    const m = await this.backend.loadMatrix({ name, type: info.type, shape: info.shape }, this.file.tensorData(name), usage);
    this.progress(info.byteSize);
    return m;
  }

  /** A 1-D tensor (norm weight, bias) as f32, whatever its stored type. */
  async vector(name: string, length: number): Promise<Float32Array> {
    this.checkShape(name, [length]);
    const info = this.file.tensor(name);
    const traits = getQuantTraits(info.type, name);
    const bytes = await this.file.readTensorBytes(name);
    const out = new Float32Array(length);
    traits.dequantizeRow(bytes, 0, out, 0, length);
    this.progress(info.byteSize);
    return this.backend.loadVector(out);
  }

  async optionalVector(name: string, length: number): Promise<Float32Array | undefined> {
    return this.file.hasTensor(name) ? this.vector(name, length) : undefined;
  }

  has(name: string): boolean {
    return this.file.hasTensor(name);
  }
}

export async function loadTransformerWeights(
  file: GGUFFile,
  config: ModelConfig,
  backend: ComputeBackend,
  onProgress?: (p: LoadProgress) => void,
): Promise<TransformerWeights> {
  const w = new WeightLoader(file, backend, onProgress);
  const c = config;
  const qDim = c.nHeads * c.headDim;
  const kDim = c.nKvHeads * c.headDim;
  const vDim = c.nKvHeads * c.headDimV;

  const tied = !w.has("output.weight");
  const tokenEmbd = await w.matrix("token_embd.weight", c.dim, c.vocabSize, tied ? "both" : "rows");
  const outputNorm = await w.vector("output_norm.weight", c.dim);
  const output = tied ? tokenEmbd : await w.matrix("output.weight", c.dim, c.vocabSize);
  const ropeFreqs = await w.optionalVector("rope_freqs.weight", c.ropeDim / 2);

  const loadLayer = async (i: number): Promise<LayerWeights> => {
    const p = `blk.${i}.`;
    const bias = async (name: string, n: number) =>
      c.arch.requiresQkvBias ? w.vector(p + name, n) : w.optionalVector(p + name, n);
    return {
      attnNorm: await w.vector(p + "attn_norm.weight", c.dim),
      wq: await w.matrix(p + "attn_q.weight", c.dim, qDim),
      wk: await w.matrix(p + "attn_k.weight", c.dim, kDim),
      wv: await w.matrix(p + "attn_v.weight", c.dim, vDim),
      wo: await w.matrix(p + "attn_output.weight", c.nHeads * c.headDimV, c.dim),
      bq: await bias("attn_q.bias", qDim),
      bk: await bias("attn_k.bias", kDim),
      bv: await bias("attn_v.bias", vDim),
      bo: await w.optionalVector(p + "attn_output.bias", c.dim),
      qNorm: c.arch.qkNorm ? await w.vector(p + "attn_q_norm.weight", c.headDim) : undefined,
      kNorm: c.arch.qkNorm ? await w.vector(p + "attn_k_norm.weight", c.headDim) : undefined,
      ffnNorm: await w.vector(p + "ffn_norm.weight", c.dim),
      gate: await w.matrix(p + "ffn_gate.weight", c.dim, c.ffnDim),
      up: await w.matrix(p + "ffn_up.weight", c.dim, c.ffnDim),
      down: await w.matrix(p + "ffn_down.weight", c.ffnDim, c.dim),
    };
  };

  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.nLayers; i++) layers.push(await loadLayer(i));
  const mtpLayers: MtpLayerWeights[] = [];
  for (let j = 0; j < c.nMtpLayers; j++) {
    const i = c.nLayers + j;
    const p = `blk.${i}.nextn.`;
    const base = await loadLayer(i);
    mtpLayers.push({
      ...base,
      tokenNorm: await w.vector(p + "enorm.weight", c.dim),
      hiddenNorm: await w.vector(p + "hnorm.weight", c.dim),
      inputProj: await w.matrix(p + "eh_proj.weight", 2 * c.dim, c.dim),
      finalNorm: await w.vector(p + "shared_head_norm.weight", c.dim),
    });
  }
  return { tokenEmbd, outputNorm, output, ropeFreqs, layers, mtpLayers };
}
