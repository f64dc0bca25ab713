// A Hugging Face model directory (config.json; model.safetensors or shards listed in
// model.safetensors.index.json; tokenizer.json + tokenizer_config.json) -> GGUF tensors and
// metadata, written as llama.cpp's convert_hf_to_gguf.py writes them so llama.cpp loads the file:
//   - names from the tensor table (tensors.ts, its `hf` column);
//   - Llama's q/k rows permuted per head from rotate-half order (HF) to adjacent pairs (GGUF);
//   - lm_head dropped when the embedding is tied;
//   - rope scaling: linear and YaRN as metadata, Llama 3 as the rope_freqs factors tensor;
//   - 1-D tensors F32, matrices in the requested type (F16 when a row is not whole blocks);
//   - tokenizer: SentencePiece tokenizer.model (Llama 2 / Mistral) or byte-level BPE tokenizer.json;
//   - MiMo's MTP layers model.mtp_layers.{j}.* as blk.{nLayers+j}.*, their input_proj as
//     nextn.eh_proj with its two column halves swapped (the GGUF takes [embedding, hidden]).
// Tensors are produced a slice of rows at a time while the file is written.

import type { ByteSource, ModelDirectory } from "../format/byte-source.ts";
import { ModelFileError } from "../format/errors.ts";
import { gguf, type GGUFTypedValue } from "../format/gguf.ts";
import type { GGUFTensorToWrite } from "../format/gguf-writer.ts";
import { readSafetensors, type SafetensorsFile, type SafetensorsTensor } from "../format/safetensors.ts";
import type { ArchitectureName } from "../model/architectures.ts";
import { architectureTensors, presenceIn, tensorName, type TensorDims, type TensorRole, type TensorScope } from "../model/tensors.ts";
import { pureFileType } from "../quant/file-type.ts";
import { GGMLType, ggmlTypeLayout, ggmlTypeName } from "../quant/ggml-type.ts";
import { getQuantTraits } from "../quant/traits.ts";
import { chooseTensorTypes, type QuantRecipe } from "./quant-recipes.ts";
import { parseSentencePieceModel, sentencePieceToGGUFMetadata, tokenizerJsonToGGUFMetadata, typedTokenizerMetadata } from "../tokenizer/index.ts";

/** config.json `architectures[0]` -> the GGUF architecture it converts to. */
export const HF_ARCHITECTURES: Readonly<Record<string, ArchitectureName>> = {
  LlamaForCausalLM: "llama",
  Qwen2ForCausalLM: "qwen2",
  Qwen3ForCausalLM: "qwen3",
  MiMoForCausalLM: "mimo",
};

export interface HfConversionOptions {
  /** GGML type of the matrices; "auto" (default): BF16 or F16 as the checkpoint's first matrix is, else F16 (llama.cpp's --outtype auto). */
  readonly outType?: number | "auto";
  /**
   * A llama.cpp file type such as Q4_K_M instead of one matrix type: each tensor gets the type
   * `mimo quantize` would give it (quant-recipes.ts), quantized straight from the checkpoint's
   * values. Takes precedence over `outType`.
   */
  readonly recipe?: QuantRecipe;
  /** general.name; default the directory's name. */
  readonly name?: string;
  /** Notes for the user (a fallback type, rope scaling mimo cannot run). */
  readonly onWarning?: (message: string) => void;
}

export interface HfConversion {
  readonly arch: ArchitectureName;
  readonly metadata: [string, GGUFTypedValue][];
  readonly tensors: GGUFTensorToWrite[];
  /** The GGML type the matrices are written in. */
  readonly outType: number;
  readonly nLayers: number;
  readonly nMtpLayers: number;
  readonly tiedEmbeddings: boolean;
  /** Closes the checkpoint files (after writing). */
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Safetensors dtypes the converter reads, and the GGML type of the same encoding. */
const SOURCE_TYPES: Readonly<Record<string, number>> = { F32: GGMLType.F32, F16: GGMLType.F16, BF16: GGMLType.BF16 };
const TORCH_DTYPES: Readonly<Record<string, string>> = { float32: "F32", float16: "F16", bfloat16: "BF16" };

/** Source bytes converted per slice of a large tensor. */
const SLICE_BYTES = 8 << 20;

async function readJson(dir: ModelDirectory, file: string): Promise<unknown | undefined> {
  const text = await dir.readText(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFileError(`${dir.name}/${file}`, `is not valid JSON: ${(e as Error).message}`);
  }
}

/** One checkpoint tensor and the shard holding it. */
interface Located {
  readonly file: string;
  readonly shard: SafetensorsFile;
  readonly tensor: SafetensorsTensor;
}

async function openCheckpoint(dir: ModelDirectory): Promise<{ tensors: Map<string, Located>; sources: ByteSource[] }> {
  const sources: ByteSource[] = [];
  const tensors = new Map<string, Located>();
  const openShard = async (file: string, why: string): Promise<SafetensorsFile> => {
    const src = await dir.open(file);
    if (!src) throw new ModelFileError(`${dir.name}/${file}`, `is missing (${why})`);
    sources.push(src);
    return readSafetensors(src);
  };
  try {
    const index = await readJson(dir, "model.safetensors.index.json");
    if (index !== undefined) {
      const indexName = `${dir.name}/model.safetensors.index.json`;
      if (!isObject(index) || !isObject(index.weight_map)) throw new ModelFileError(indexName, 'has no "weight_map" object');
      const byFile = new Map<string, string[]>();
      for (const [name, file] of Object.entries(index.weight_map)) {
        if (typeof file !== "string") throw new ModelFileError(indexName, `weight_map["${name}"] is not a file name`);
        if (!byFile.has(file)) byFile.set(file, []);
        byFile.get(file)!.push(name);
      }
      for (const [file, names] of byFile) {
        const shard = await openShard(file, `model.safetensors.index.json puts ${names.length} tensors there, e.g. "${names[0]}"`);
        for (const name of names) {
          const tensor = shard.tensors.get(name);
          if (!tensor) throw new ModelFileError(`${dir.name}/${file}`, `has no tensor "${name}", which model.safetensors.index.json places there`);
          tensors.set(name, { file, shard, tensor });
        }
      }
    } else {
      const shard = await openShard("model.safetensors", "no model.safetensors.index.json either; only safetensors checkpoints can be converted");
      for (const [name, tensor] of shard.tensors) tensors.set(name, { file: "model.safetensors", shard, tensor });
    }
  } catch (e) {
    await Promise.all(sources.map((s) => s.close().catch(() => {})));
    throw e;
  }
  return { tensors, sources };
}

/** Typed access to config.json fields with errors naming the field. */
class HfConfig {
  readonly file: string;
  readonly json: Json;
  constructor(file: string, json: Json) {
    this.file = file;
    this.json = json;
  }
  private fail(problem: string): never {
    throw new ModelFileError(this.file, problem);
  }
  count(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (v === undefined) this.fail(`"${key}" is missing`);
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) this.fail(`"${key}" should be a positive integer, found ${JSON.stringify(v)}`);
    return v;
  }
  number(key: string, fallback: number): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(`"${key}" should be a number, found ${JSON.stringify(v)}`);
    return v;
  }
}

/** Where a checkpoint name sits in the table: role and GGUF layer index. */
interface Mapped {
  readonly role: TensorRole;
  readonly layer?: number;
}

function hfNameIndex(arch: ArchitectureName, nLayers: number): (name: string) => Mapped | undefined {
  const model = new Map(architectureTensors(arch, "model").filter((r) => r.hf).map((r) => [r.hf!, r]));
  const layer = new Map(architectureTensors(arch, "layer").filter((r) => r.hf).map((r) => [r.hf!, r]));
  const mtp = new Map(architectureTensors(arch, "mtp").filter((r) => r.hf).map((r) => [r.hf!, r]));
  return (name) => {
    const m = model.get(name);
    if (m) return { role: m };
    let match = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
    if (match) {
      const r = layer.get(match[2]!);
      return r ? { role: r, layer: Number(match[1]) } : undefined;
    }
    match = /^model\.mtp_layers\.(\d+)\.(.+)$/.exec(name);
    if (match && mtp.size > 0) {
      const r = mtp.get(match[2]!) ?? layer.get(match[2]!);
      return r ? { role: r, layer: nLayers + Number(match[1]) } : undefined;
    }
    return undefined;
  };
}

/** Llama 3 RoPE frequency factors, as convert_hf_to_gguf.py computes them (float32 math on the frequencies). */
function llama3RopeFactors(p: Json, theta: number, dim: number): Float32Array {
  const num = (k: string, d: number) => (typeof p[k] === "number" ? (p[k] as number) : d);
  const factor = num("factor", 8);
  const low = num("low_freq_factor", 1);
  const high = num("high_freq_factor", 4);
  const oldCtx = num("original_max_position_embeddings", 8192);
  const lowWavelen = oldCtx / low;
  const highWavelen = oldCtx / high;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / dim))));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = factor;
    else {
      const smooth = (oldCtx / wavelen - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

/**
 * Reads the directory's config, tokenizer and checkpoint headers and returns what to write. The
 * tensors' data functions read and convert the checkpoint when the writer reaches them.
 */
export async function convertHuggingFace(dir: ModelDirectory, opts: HfConversionOptions = {}): Promise<HfConversion> {
  const configName = `${dir.name}/config.json`;
  const configJson = await readJson(dir, "config.json");
  if (configJson === undefined) throw new ModelFileError(dir.name, "has no config.json: not a Hugging Face model directory");
  if (!isObject(configJson)) throw new ModelFileError(configName, "is not a JSON object");
  const cfg = new HfConfig(configName, configJson);
  const archList = configJson.architectures;
  const hfArch = Array.isArray(archList) && typeof archList[0] === "string" ? archList[0] : undefined;
  if (hfArch === undefined) throw new ModelFileError(configName, '"architectures" is missing: cannot tell which model this is');
  const arch = HF_ARCHITECTURES[hfArch];
  if (!arch) throw new ModelFileError(configName, `architecture "${hfArch}" is not supported (supported: ${Object.keys(HF_ARCHITECTURES).join(", ")})`);

  const dim = cfg.count("hidden_size");
  const nHeads = cfg.count("num_attention_heads");
  const nKvHeads = cfg.count("num_key_value_heads", nHeads);
  if (nHeads % nKvHeads !== 0) throw new ModelFileError(configName, `num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  const headDim = configJson.head_dim === undefined || configJson.head_dim === null ? dim / nHeads : cfg.count("head_dim");
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new ModelFileError(configName, `hidden_size ${dim} / num_attention_heads ${nHeads} is not an even head size; set head_dim`);
  const nLayers = cfg.count("num_hidden_layers");
  const vocabSize = cfg.count("vocab_size");
  const nMtp = arch === "mimo" ? (configJson.num_nextn_predict_layers === undefined ? 0 : (configJson.num_nextn_predict_layers as number)) : 0;
  if (!Number.isInteger(nMtp) || nMtp < 0) throw new ModelFileError(configName, `"num_nextn_predict_layers" should be a non-negative integer, found ${JSON.stringify(nMtp)}`);
  const dims: TensorDims = { dim, ffnDim: cfg.count("intermediate_size"), nHeads, nKvHeads, headDim, headDimV: headDim, vocabSize, ropeDim: headDim };
  const ropeParams = isObject(configJson.rope_parameters) ? configJson.rope_parameters : isObject(configJson.rope_scaling) ? configJson.rope_scaling : {};
  const theta = typeof ropeParams.rope_theta === "number" ? ropeParams.rope_theta : cfg.number("rope_theta", 10000);
  const eps = cfg.number("rms_norm_eps", 1e-6);
  const torchDtype = typeof configJson.torch_dtype === "string" ? configJson.torch_dtype : typeof configJson.dtype === "string" ? configJson.dtype : undefined;
  const expectedDtype = torchDtype === undefined ? undefined : TORCH_DTYPES[torchDtype];

  // Tokenizer first: cheap, and a missing one should fail before anything is read. As
  // convert_hf_to_gguf.py does, a SentencePiece tokenizer.model wins over tokenizer.json.
  const tokConfig = await readJson(dir, "tokenizer_config.json");
  let tokenizerMd: Map<string, unknown>;
  const spm = await dir.open("tokenizer.model");
  if (spm) {
    try {
      const model = parseSentencePieceModel(await spm.read(0, spm.size));
      tokenizerMd = sentencePieceToGGUFMetadata(model, { tokenizerConfig: tokConfig, modelConfig: configJson, addedTokens: await readJson(dir, "added_tokens.json") });
    } catch (e) {
      throw new ModelFileError(`${dir.name}/tokenizer.model`, (e as Error).message.replace(/^tokenizer\.model: /, ""));
    } finally {
      await spm.close();
    }
  } else {
    const tokJson = await readJson(dir, "tokenizer.json");
    if (tokJson === undefined) throw new ModelFileError(dir.name, "has no tokenizer.json or tokenizer.model");
    try {
      tokenizerMd = tokenizerJsonToGGUFMetadata(tokJson, { tokenizerConfig: tokConfig, modelConfig: configJson });
    } catch (e) {
      throw new ModelFileError(`${dir.name}/tokenizer.json`, (e as Error).message.replace(/^tokenizer\.json: /, ""));
    }
  }
  const templates = await chatTemplates(dir, isObject(tokConfig) ? tokConfig.chat_template : undefined);
  tokenizerMd.delete("tokenizer.chat_template");

  const { tensors: checkpoint, sources } = await openCheckpoint(dir);
  const close = () => Promise.all(sources.map((s) => s.close().catch(() => {}))).then(() => {});
  try {
    // Map every checkpoint tensor to a role, or fail naming it (as convert_hf_to_gguf.py does).
    const lookup = hfNameIndex(arch, nLayers);
    const found = new Map<string, { located: Located; mapped: Mapped }>();
    const unknown: string[] = [];
    for (const [name, located] of checkpoint) {
      if (name.endsWith(".rotary_emb.inv_freq")) continue;
      const mapped = lookup(name);
      if (!mapped) {
        unknown.push(name);
        continue;
      }
      if (mapped.layer !== undefined) {
        const mtpLayer = mapped.layer >= nLayers && /^model\.mtp_layers\./.test(name);
        if (!mtpLayer && mapped.layer >= nLayers) throw new ModelFileError(`${dir.name}/${located.file}`, `has "${name}", but config.json says num_hidden_layers is ${nLayers}`);
        if (mtpLayer && mapped.layer >= nLayers + nMtp) throw new ModelFileError(`${dir.name}/${located.file}`, `has "${name}", but config.json says num_nextn_predict_layers is ${nMtp}`);
      }
      found.set(tensorName(mapped.role, mapped.layer), { located, mapped });
    }
    if (unknown.length > 0) {
      throw new ModelFileError(dir.name, `cannot map ${unknown.length} checkpoint tensor(s) to ${arch} GGUF tensors: ${unknown.slice(0, 5).map((n) => `"${n}"`).join(", ")}${unknown.length > 5 ? ", ..." : ""}`);
    }

    const tieFlag = configJson.tie_word_embeddings;
    const hasLmHead = found.has(tensorName("output"));
    if (tieFlag === false && !hasLmHead) throw new ModelFileError(configName, "says tie_word_embeddings is false, but the checkpoint has no lm_head.weight");
    const tied = !hasLmHead || tieFlag === true;
    if (tied && hasLmHead) found.delete(tensorName("output"));

    // Rope scaling.
    const ropeMd: [string, GGUFTypedValue][] = [];
    let ropeFactors: Float32Array | undefined;
    const ropeType = typeof ropeParams.rope_type === "string" ? ropeParams.rope_type : typeof ropeParams.type === "string" ? ropeParams.type : undefined;
    const factor = typeof ropeParams.factor === "number" ? ropeParams.factor : undefined;
    if (ropeType === undefined || ropeType === "default") {
      // unscaled
    } else if (ropeType === "linear" && factor !== undefined) {
      ropeMd.push([`${arch}.rope.scaling.type`, gguf.str("linear")], [`${arch}.rope.scaling.factor`, gguf.f32(factor)]);
    } else if (ropeType === "yarn" && factor !== undefined) {
      ropeMd.push([`${arch}.rope.scaling.type`, gguf.str("yarn")], [`${arch}.rope.scaling.factor`, gguf.f32(factor)]);
      const orig = ropeParams.original_max_position_embeddings;
      if (typeof orig !== "number") throw new ModelFileError(configName, 'YaRN rope scaling needs "original_max_position_embeddings"');
      ropeMd.push([`${arch}.rope.scaling.original_context_length`, gguf.u32(orig)]);
      const opt = (k: string, gk: string) => typeof ropeParams[k] === "number" && ropeMd.push([`${arch}.rope.scaling.${gk}`, gguf.f32(ropeParams[k] as number)]);
      opt("extrapolation_factor", "yarn_ext_factor");
      opt(ropeParams.attention_factor !== undefined ? "attention_factor" : "attn_factor", "yarn_attn_factor");
      opt("beta_fast", "yarn_beta_fast");
      opt("beta_slow", "yarn_beta_slow");
      opts.onWarning?.("YaRN rope scaling is written for llama.cpp, but mimo cannot run it yet (mimo runs unscaled and linear RoPE and Llama 3 factors)");
    } else if (ropeType.toLowerCase() === "llama3" && arch === "llama") {
      ropeFactors = llama3RopeFactors(ropeParams, theta, headDim);
    } else {
      throw new ModelFileError(configName, `rope scaling ${JSON.stringify(ropeType)} is not supported for ${hfArch} (supported: linear, yarn, llama3 for Llama)`);
    }

    // Every role the architecture has, in table order; required ones must be there, shapes and dtypes must agree.
    const plan: { name: string; role: TensorRole; layer?: number; located?: Located }[] = [];
    const visit = (scope: TensorScope, layer?: number) => {
      for (const role of architectureTensors(arch, scope)) {
        const name = tensorName(role, layer);
        if (role.key === "ropeFreqs") {
          if (ropeFactors) plan.push({ name, role });
          continue;
        }
        const hit = found.get(name);
        if (!hit) {
          if (presenceIn(role, arch) === "required") {
            const prefix = layer === undefined ? "" : layer >= nLayers ? `model.mtp_layers.${layer - nLayers}.` : `model.layers.${layer}.`;
            throw new ModelFileError(dir.name, `the checkpoint has no "${role.scope === "model" ? role.hf : prefix + role.hf}" (GGUF ${name}), which ${hfArch} needs`);
          }
          continue;
        }
        const t = hit.located.tensor;
        const where = `${dir.name}/${hit.located.file}`;
        const expected = role.shape(dims);
        const ggufShape = [...t.shape].reverse();
        if (ggufShape.length !== expected.length || ggufShape.some((d, i) => d !== expected[i])) {
          throw new ModelFileError(
            where,
            `tensor "${t.name}" has shape [${t.shape.join(", ")}], but config.json (hidden_size ${dim}, intermediate_size ${dims.ffnDim}, ` +
              `heads ${nHeads}/${nKvHeads}, head_dim ${headDim}, vocab_size ${vocabSize}) implies [${[...expected].reverse().join(", ")}]`,
          );
        }
        if (SOURCE_TYPES[t.dtype] === undefined) {
          throw new ModelFileError(where, `tensor "${t.name}" is ${t.dtype}; only F32, F16 and BF16 checkpoints can be converted (not quantized ones)`);
        }
        if (expectedDtype !== undefined && role.kind === "matrix" && t.dtype !== expectedDtype) {
          throw new ModelFileError(where, `tensor "${t.name}" is ${t.dtype}, but config.json says torch_dtype "${torchDtype}" (${expectedDtype})`);
        }
        plan.push({ name, role, layer, located: hit.located });
      }
    };
    visit("model");
    for (let l = 0; l < nLayers; l++) visit("layer", l);
    for (let j = 0; j < nMtp; j++) {
      visit("layer", nLayers + j);
      visit("mtp", nLayers + j);
    }

    // Output type.
    let outType = opts.outType ?? "auto";
    if (outType === "auto") {
      const firstMatrix = plan.find((p) => p.role.kind === "matrix" && p.located)!.located!.tensor.dtype;
      outType = firstMatrix === "BF16" ? GGMLType.BF16 : GGMLType.F16;
    }
    const recipe = opts.recipe;
    if (recipe) outType = recipe.defaultType;
    const outTraits = getQuantTraits(outType);
    const fileType = recipe ? recipe.ftype : pureFileType(outType);
    if (fileType === undefined) throw new RangeError(`cannot write ${ggmlTypeName(outType)} files (no llama.cpp file type has that type)`);
    const shapes = plan.map((p) => p.role.shape(dims));
    // With a recipe: the types llama.cpp's quantizer gives a file converted to F32 first (its
    // mixes, its shape fallbacks); tensors it leaves alone (norms, biases) stay F32.
    const recipeTypes = recipe
      ? chooseTensorTypes(plan.map((p, i) => ({ name: p.name, shape: shapes[i]!, type: GGMLType.F32 })), recipe, { arch, nHead: nHeads, nHeadKv: nKvHeads, nLayerAll: nLayers + nMtp }).map((c) => c.type)
      : undefined;

    const tensors: GGUFTensorToWrite[] = plan.map((p, i) => {
      const shape = shapes[i]!;
      if (!p.located) {
        const f = ropeFactors!;
        return { name: p.name, type: GGMLType.F32, shape, data: () => new Uint8Array(f.buffer) };
      }
      let type: number = recipeTypes ? recipeTypes[i]! : p.role.kind === "matrix" ? outType : GGMLType.F32;
      const block = ggmlTypeLayout(type)!.blockSize;
      if (!recipeTypes && shape[0]! % block !== 0) {
        opts.onWarning?.(`${p.name}: rows of ${shape[0]} are not whole ${outTraits.name} blocks of ${block}; written as F16 (as llama.cpp's converter does)`);
        type = GGMLType.F16;
      }
      const permuteHeads = arch === "llama" && (p.role.key === "wq" || p.role.key === "bq") ? nHeads : arch === "llama" && (p.role.key === "wk" || p.role.key === "bk") ? nKvHeads : 0;
      const transform: RowTransform = permuteHeads ? { kind: "unpermute-rope", heads: permuteHeads } : p.role.key === "inputProj" ? { kind: "swap-halves" } : { kind: "none" };
      return { name: p.name, type, shape, data: () => convertTensor(p.located!, shape, type, transform) };
    });

    const a = arch;
    const metadata: [string, GGUFTypedValue][] = [
      ["general.architecture", gguf.str(a)],
      ["general.type", gguf.str("model")],
      ["general.name", gguf.str(opts.name ?? dir.name.split(/[\\/]/).filter(Boolean).pop() ?? "model")],
      [`${a}.block_count`, gguf.u32(nLayers + nMtp)],
      [`${a}.context_length`, gguf.u32(cfg.count("max_position_embeddings", 2048))],
      [`${a}.embedding_length`, gguf.u32(dim)],
      [`${a}.feed_forward_length`, gguf.u32(dims.ffnDim)],
      [`${a}.attention.head_count`, gguf.u32(nHeads)],
      [`${a}.attention.head_count_kv`, gguf.u32(nKvHeads)],
      ...ropeMd,
      [`${a}.rope.freq_base`, gguf.f32(theta)],
      [`${a}.attention.layer_norm_rms_epsilon`, gguf.f32(eps)],
    ];
    if (typeof configJson.head_dim === "number") metadata.push([`${a}.attention.key_length`, gguf.u32(headDim)], [`${a}.attention.value_length`, gguf.u32(headDim)]);
    metadata.push(["general.file_type", gguf.u32(fileType)]);
    if (a === "llama") metadata.push([`${a}.vocab_size`, gguf.u32(vocabSize)], [`${a}.rope.dimension_count`, gguf.u32(headDim)]);
    if (nMtp > 0) metadata.push([`${a}.nextn_predict_layers`, gguf.u32(nMtp)]);
    metadata.push(["general.quantization_version", gguf.u32(2)]);
    metadata.push(...typedTokenizerMetadata(tokenizerMd), ...templates);

    return { arch, metadata, tensors, outType, nLayers, nMtpLayers: nMtp, tiedEmbeddings: tied, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The chat template(s) as gguf-py writes them: tokenizer_config.json's chat_template, else
 * chat_template.jinja, else chat_template.json; a list of { name, template } gives the "default"
 * one as tokenizer.chat_template and the others as tokenizer.chat_template.NAME, listed in
 * tokenizer.chat_templates.
 */
async function chatTemplates(dir: ModelDirectory, fromConfig: unknown): Promise<[string, GGUFTypedValue][]> {
  let t = fromConfig;
  if (t === undefined || t === null) {
    const jinja = await dir.readText("chat_template.jinja");
    if (jinja !== undefined) t = jinja;
    else {
      const json = await readJson(dir, "chat_template.json");
      if (isObject(json)) t = json.chat_template;
    }
  }
  if (typeof t === "string") return [["tokenizer.chat_template", gguf.str(t)]];
  if (!Array.isArray(t)) return [];
  const out: [string, GGUFTypedValue][] = [];
  const names: string[] = [];
  let fallback: string | undefined;
  for (const choice of t) {
    if (!isObject(choice) || typeof choice.template !== "string") continue;
    const name = String(choice.name ?? "").replace(/[^A-Za-z0-9]/g, "_");
    if (!name) continue;
    if (name === "default") fallback = choice.template;
    else if (!names.includes(name)) {
      names.push(name);
      out.push([`tokenizer.chat_template.${name}`, gguf.str(choice.template)]);
    }
  }
  if (names.length > 0) out.push(["tokenizer.chat_templates", gguf.strings(names)]);
  if (fallback !== undefined) out.unshift(["tokenizer.chat_template", gguf.str(fallback)]);
  return out;
}

type RowTransform = { kind: "none" } | { kind: "unpermute-rope"; heads: number } | { kind: "swap-halves" };

/**
 * Streams one tensor: reads whole rows (whole heads for the rope permutation) a slice at a time,
 * converts them to `type`, and yields the bytes.
 */
async function* convertTensor(src: Located, shape: readonly number[], type: number, transform: RowTransform): AsyncGenerator<Uint8Array> {
  const t = src.tensor;
  const cols = shape[0]!;
  const rows = shape.length > 1 ? shape[1]! : 1;
  const srcType = SOURCE_TYPES[t.dtype]!;
  const srcBytes = t.byteLength / (rows * cols);
  const inTraits = getQuantTraits(srcType);
  const outTraits = getQuantTraits(type);
  const outRowBytes = (cols / outTraits.blockSize) * outTraits.bytesPerBlock;
  // A 1-D tensor permuted per head is a column of rows of one element.
  const perHead = transform.kind === "unpermute-rope" ? (rows > 1 ? rows : cols) / transform.heads : 1;
  const group = transform.kind === "unpermute-rope" && rows > 1 ? perHead : 1;
  const rowsPerSlice = Math.max(group, Math.floor(SLICE_BYTES / (cols * srcBytes) / group) * group);
  for (let r0 = 0; r0 < rows; r0 += rowsPerSlice) {
    const n = Math.min(rowsPerSlice, rows - r0);
    const raw = await src.shard.source.read(t.offset + r0 * cols * srcBytes, n * cols * srcBytes);
    if (transform.kind === "none" && srcType === type) {
      yield raw;
      continue;
    }
    const values = new Float32Array(n * cols);
    inTraits.dequantizeRow(raw, 0, values, 0, n * cols);
    const fixed = transform.kind === "none" ? values : applyTransform(values, n, cols, transform, perHead);
    const out = new Uint8Array(n * outRowBytes);
    for (let r = 0; r < n; r++) outTraits.quantizeRow(fixed, r * cols, out, r * outRowBytes, cols);
    yield out;
  }
}

/**
 * rotate-half -> adjacent pairs: within each head of `perHead` rows (or elements), output row
 * 2j + t is input row t * perHead/2 + j (llama.cpp's LlamaModel.permute). swap-halves: the two
 * column halves of every row change places.
 */
function applyTransform(v: Float32Array, rows: number, cols: number, t: RowTransform, perHead: number): Float32Array {
  const out = new Float32Array(v.length);
  if (t.kind === "swap-halves") {
    const h = cols / 2;
    for (let r = 0; r < rows; r++) {
      out.set(v.subarray(r * cols + h, (r + 1) * cols), r * cols);
      out.set(v.subarray(r * cols, r * cols + h), r * cols + h);
    }
    return out;
  }
  // Rows of a matrix, or the elements of a bias (a 1-row tensor whose "rows" are its elements).
  const unit = rows > 1 ? cols : 1;
  const count = rows > 1 ? rows : cols;
  const half = perHead / 2;
  for (let base = 0; base < count; base += perHead) {
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) {
        const from = base + s * half + j;
        const to = base + 2 * j + s;
        out.set(v.subarray(from * unit, (from + 1) * unit), to * unit);
      }
    }
  }
  return out;
}
