// Synthetic Hugging Face model directories for the converter's tests: a small safetensors writer,
// config.json / tokenizer.json / tokenizer_config.json as transformers writes them, deterministic
// random weights, and a plain float64 forward pass written from the transformers modeling code
// (LlamaForCausalLM / Qwen2 / Qwen3 / MiMo main path): RMSNorm, rotate_half RoPE on the
// unpermuted q/k projections, grouped-query causal attention, SiLU-gated MLP.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { f32ToBf16, bf16ToF32, f16ToF32, f32ToF16 } from "../../src/quant/half.ts";
import { SeededRandom } from "../../src/sampling/rng.ts";
import { hfPatterns } from "../../src/tokenizer/pre-tokenizer.ts";

export type HfDtype = "F32" | "F16" | "BF16";
export type HfArch = "llama" | "qwen2" | "qwen3" | "mimo";

export interface HfTensor {
  readonly name: string;
  /** PyTorch order: [rows, columns] for a matrix. */
  readonly shape: readonly number[];
  /** Values exactly as stored (already rounded to the dtype). */
  readonly values: Float32Array;
  readonly dtype: HfDtype;
}

// ---- safetensors -------------------------------------------------------------------------------

function encode(values: Float32Array, dtype: HfDtype): Uint8Array {
  if (dtype === "F32") return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = dtype === "F16" ? f32ToF16(values[i]!) : f32ToBf16(values[i]!);
  return new Uint8Array(out.buffer);
}

/** A safetensors file's bytes: u64 header length, JSON header padded with spaces to 8 bytes, data. */
export function safetensorsBytes(tensors: readonly HfTensor[], metadata: Record<string, string> = { format: "pt" }): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const b = encode(t.values, t.dtype);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + b.byteLength] };
    blobs.push(b);
    offset += b.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let p = 8 + head.byteLength;
  for (const b of blobs) {
    out.set(b, p);
    p += b.byteLength;
  }
  return out;
}

// ---- the model ---------------------------------------------------------------------------------

export interface HfModelSpec {
  readonly arch: HfArch;
  readonly dim: number;
  readonly ffnDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  /** Written as config.json head_dim when set (Qwen3 always has it). */
  readonly headDim?: number;
  readonly vocabSize: number;
  readonly tied: boolean;
  readonly dtype: HfDtype;
  readonly seed: number;
  /** Files the weights are spread over (1: model.safetensors; more: shards and an index). */
  readonly shards?: number;
  readonly ropeTheta?: number;
  readonly eps?: number;
  /** config.json rope_scaling. */
  readonly ropeScaling?: Record<string, unknown>;
  /** MiMo: MTP layers (default 1). */
  readonly nMtp?: number;
  /** Llama: attention_bias (q/k/v/o biases). */
  readonly attentionBias?: boolean;
  /** A SentencePiece tokenizer.model (its bytes) instead of the byte-level BPE tokenizer.json. */
  readonly sentencePiece?: Uint8Array;
}

const HF_ARCH: Record<HfArch, string> = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM", qwen3: "Qwen3ForCausalLM", mimo: "MiMoForCausalLM" };
const TORCH_DTYPE: Record<HfDtype, string> = { F32: "float32", F16: "float16", BF16: "bfloat16" };

export function headDimOf(s: HfModelSpec): number {
  return s.headDim ?? s.dim / s.nHeads;
}

function round(values: Float32Array, dtype: HfDtype): Float32Array {
  if (dtype === "F16") return values.map((v) => f16ToF32(f32ToF16(v)));
  if (dtype === "BF16") return values.map((v) => bf16ToF32(f32ToBf16(v)));
  return values;
}

/** The checkpoint's tensors, in the order transformers saves them. */
export function hfTensors(s: HfModelSpec): HfTensor[] {
  const rng = new SeededRandom(s.seed);
  const hd = headDimOf(s);
  const out: HfTensor[] = [];
  const add = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = offset + (rng.next() * 2 - 1) * scale;
    out.push({ name, shape, values: round(v, s.dtype), dtype: s.dtype });
  };
  const mat = (name: string, rows: number, cols: number, gain = 0.5) => add(name, [rows, cols], gain / Math.sqrt(cols));
  const norm = (name: string, n: number) => add(name, [n], 0.1, 1);
  const bias = (name: string, n: number) => add(name, [n], 0.1);
  add("model.embed_tokens.weight", [s.vocabSize, s.dim], 1);
  const block = (p: string) => {
    norm(`${p}.input_layernorm.weight`, s.dim);
    mat(`${p}.self_attn.q_proj.weight`, s.nHeads * hd, s.dim);
    mat(`${p}.self_attn.k_proj.weight`, s.nKvHeads * hd, s.dim);
    mat(`${p}.self_attn.v_proj.weight`, s.nKvHeads * hd, s.dim);
    const qkvBias = s.arch === "qwen2" || s.arch === "mimo" || s.attentionBias;
    if (qkvBias) {
      bias(`${p}.self_attn.q_proj.bias`, s.nHeads * hd);
      bias(`${p}.self_attn.k_proj.bias`, s.nKvHeads * hd);
      bias(`${p}.self_attn.v_proj.bias`, s.nKvHeads * hd);
    }
    if (s.arch === "qwen3") {
      add(`${p}.self_attn.q_norm.weight`, [hd], 0.1, 0.5);
      add(`${p}.self_attn.k_norm.weight`, [hd], 0.1, 0.5);
    }
    mat(`${p}.self_attn.o_proj.weight`, s.dim, s.nHeads * hd);
    if (s.attentionBias) bias(`${p}.self_attn.o_proj.bias`, s.dim);
    norm(`${p}.post_attention_layernorm.weight`, s.dim);
    mat(`${p}.mlp.gate_proj.weight`, s.ffnDim, s.dim);
    mat(`${p}.mlp.up_proj.weight`, s.ffnDim, s.dim);
    mat(`${p}.mlp.down_proj.weight`, s.dim, s.ffnDim);
  };
  for (let l = 0; l < s.nLayers; l++) block(`model.layers.${l}`);
  if (s.arch === "mimo") {
    for (let j = 0; j < (s.nMtp ?? 1); j++) {
      const p = `model.mtp_layers.${j}`;
      norm(`${p}.token_layernorm.weight`, s.dim);
      norm(`${p}.hidden_layernorm.weight`, s.dim);
      mat(`${p}.input_proj.weight`, s.dim, 2 * s.dim);
      block(p);
      norm(`${p}.final_layernorm.weight`, s.dim);
    }
  }
  norm("model.norm.weight", s.dim);
  if (!s.tied) add("lm_head.weight", [s.vocabSize, s.dim], 4 / Math.sqrt(s.dim));
  return out;
}

export function hfConfig(s: HfModelSpec): Record<string, unknown> {
  const c: Record<string, unknown> = {
    architectures: [HF_ARCH[s.arch]],
    model_type: s.arch,
    hidden_size: s.dim,
    intermediate_size: s.ffnDim,
    num_hidden_layers: s.nLayers,
    num_attention_heads: s.nHeads,
    num_key_value_heads: s.nKvHeads,
    max_position_embeddings: 1024,
    rms_norm_eps: s.eps ?? 1e-6,
    rope_theta: s.ropeTheta ?? 10000,
    vocab_size: s.vocabSize,
    tie_word_embeddings: s.tied,
    torch_dtype: TORCH_DTYPE[s.dtype],
    hidden_act: "silu",
  };
  if (s.headDim !== undefined) c.head_dim = s.headDim;
  if (s.ropeScaling) c.rope_scaling = s.ropeScaling;
  if (s.arch === "mimo") c.num_nextn_predict_layers = s.nMtp ?? 1;
  if (s.arch === "llama") c.attention_bias = s.attentionBias ?? false;
  return c;
}

/** GPT-2's byte -> printable character table (bytes_to_unicode). */
function byteChars(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + extra++));
}

export const SPECIAL = { bos: "<|begin_of_text|>", eos: "<|end_of_text|>", imStart: "<|im_start|>", imEnd: "<|im_end|>" } as const;
export const CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";

/** A small byte-level BPE tokenizer.json: 256 byte tokens, some merges, 4 special tokens. */
export function hfTokenizer(s: HfModelSpec): { tokenizer: unknown; config: unknown } {
  const bytes = byteChars();
  const vocab: Record<string, number> = {};
  bytes.forEach((c, i) => (vocab[c] = i));
  const G = bytes[32]!; // "Ġ", a space
  const merges = [[G, "t"], ["h", "e"], [G, "a"], ["i", "n"], [G + "t", "he"], ["o", "n"], ["e", "r"], ["a", "n"], [G, "s"], ["e", "d"], [G, "w"], ["o", "u"]];
  for (const [a, b] of merges) vocab[a! + b!] = Object.keys(vocab).length;
  const specials = Object.values(SPECIAL);
  if (Object.keys(vocab).length + specials.length > s.vocabSize) throw new RangeError("vocabSize too small for the test tokenizer");
  const added = specials.map((content, i) => ({ id: Object.keys(vocab).length + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const qwen = s.arch !== "llama";
  const tokenizer = {
    version: "1.0",
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: qwen ? hfPatterns.qwen2 : hfPatterns.llama3 }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
  const config = qwen
    ? { add_bos_token: false, add_eos_token: false, bos_token: null, eos_token: SPECIAL.imEnd, pad_token: SPECIAL.eos, chat_template: CHAT_TEMPLATE, model_max_length: 1024 }
    : { add_bos_token: true, add_eos_token: false, bos_token: SPECIAL.bos, eos_token: SPECIAL.eos, chat_template: CHAT_TEMPLATE, model_max_length: 1024 };
  return { tokenizer, config };
}

/** Writes the directory; returns the tensors (values as stored). */
export function writeHfModel(dir: string, s: HfModelSpec): HfTensor[] {
  mkdirSync(dir, { recursive: true });
  const tensors = hfTensors(s);
  writeFileSync(join(dir, "config.json"), JSON.stringify(hfConfig(s), null, 2));
  if (s.sentencePiece) {
    writeFileSync(join(dir, "tokenizer.model"), s.sentencePiece);
    const config = { add_bos_token: true, add_eos_token: false, bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", chat_template: CHAT_TEMPLATE };
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2));
  } else {
    const tok = hfTokenizer(s);
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tok.tokenizer));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(tok.config, null, 2));
  }
  const shards = s.shards ?? 1;
  if (shards === 1) {
    writeFileSync(join(dir, "model.safetensors"), safetensorsBytes(tensors));
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(tensors.length / shards);
    for (let i = 0; i < shards; i++) {
      const file = `model-${String(i + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
      const part = tensors.slice(i * per, (i + 1) * per);
      for (const t of part) weightMap[t.name] = file;
      writeFileSync(join(dir, file), safetensorsBytes(part));
    }
    const total = tensors.reduce((a, t) => a + t.values.length * (t.dtype === "F32" ? 4 : 2), 0);
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
  return tensors;
}

// ---- the reference forward pass ----------------------------------------------------------------

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * w[i]!);
}

/** y = W x (+ b), W stored [rows, cols] row-major as nn.Linear keeps it. */
function linear(w: Float32Array, rows: number, cols: number, x: Float64Array, b?: Float32Array): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = b ? b[r]! : 0;
    for (let c = 0; c < cols; c++) acc += w[r * cols + c]! * x[c]!;
    y[r] = acc;
  }
  return y;
}

/** transformers' rotate_half RoPE on one head: pairs (i, i + d/2). */
function ropeRotateHalf(v: Float64Array, off: number, d: number, pos: number, invFreq: Float64Array): void {
  const half = d / 2;
  for (let i = 0; i < half; i++) {
    const a = pos * invFreq[i]!;
    const c = Math.cos(a), s = Math.sin(a);
    const x1 = v[off + i]!, x2 = v[off + i + half]!;
    v[off + i] = x1 * c - x2 * s;
    v[off + i + half] = x2 * c + x1 * s;
  }
}

/**
 * Logits of every position of `tokens` (float64), the transformers way, from the checkpoint's
 * tensors. Supports linear rope scaling (positions divided by the factor) and Llama 3's
 * frequency rescaling as transformers' _compute_llama3_parameters does it.
 */
export function hfForward(s: HfModelSpec, tensors: readonly HfTensor[], tokens: readonly number[]): Float64Array[] {
  const W = new Map(tensors.map((t) => [t.name, t.values]));
  const w = (n: string) => {
    const v = W.get(n);
    if (!v) throw new Error(`reference forward: no tensor ${n}`);
    return v;
  };
  const hd = headDimOf(s);
  const eps = s.eps ?? 1e-6;
  const theta = s.ropeTheta ?? 10000;
  let invFreq = Float64Array.from({ length: hd / 2 }, (_, i) => 1 / Math.pow(theta, (2 * i) / hd));
  let posScale = 1;
  const rs = s.ropeScaling;
  if (rs && (rs.rope_type ?? rs.type) === "linear") posScale = 1 / (rs.factor as number);
  if (rs && (rs.rope_type ?? rs.type) === "llama3") {
    const factor = rs.factor as number, low = rs.low_freq_factor as number, high = rs.high_freq_factor as number, old = rs.original_max_position_embeddings as number;
    invFreq = invFreq.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < old / high) return f;
      if (wavelen > old / low) return f / factor;
      const smooth = (old / wavelen - low) / (high - low);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  const group = s.nHeads / s.nKvHeads;
  const n = tokens.length;
  const emb = w("model.embed_tokens.weight");
  let xs = tokens.map((t) => Float64Array.from(emb.subarray(t * s.dim, (t + 1) * s.dim)));
  for (let l = 0; l < s.nLayers; l++) {
    const p = `model.layers.${l}`;
    const opt = (name: string) => W.get(`${p}.${name}`);
    const qs: Float64Array[] = [], ks: Float64Array[] = [], vs: Float64Array[] = [];
    xs.forEach((x, pos) => {
      const h = rmsNorm(x, w(`${p}.input_layernorm.weight`), eps);
      const q = linear(w(`${p}.self_attn.q_proj.weight`), s.nHeads * hd, s.dim, h, opt("self_attn.q_proj.bias"));
      const k = linear(w(`${p}.self_attn.k_proj.weight`), s.nKvHeads * hd, s.dim, h, opt("self_attn.k_proj.bias"));
      const v = linear(w(`${p}.self_attn.v_proj.weight`), s.nKvHeads * hd, s.dim, h, opt("self_attn.v_proj.bias"));
      for (let hh = 0; hh < s.nHeads; hh++) {
        if (s.arch === "qwen3") q.set(rmsNorm(q.subarray(hh * hd, (hh + 1) * hd), w(`${p}.self_attn.q_norm.weight`), eps), hh * hd);
        ropeRotateHalf(q, hh * hd, hd, pos * posScale, invFreq);
      }
      for (let hh = 0; hh < s.nKvHeads; hh++) {
        if (s.arch === "qwen3") k.set(rmsNorm(k.subarray(hh * hd, (hh + 1) * hd), w(`${p}.self_attn.k_norm.weight`), eps), hh * hd);
        ropeRotateHalf(k, hh * hd, hd, pos * posScale, invFreq);
      }
      qs.push(q); ks.push(k); vs.push(v);
    });
    xs = xs.map((x, pos) => {
      const attn = new Float64Array(s.nHeads * hd);
      for (let hh = 0; hh < s.nHeads; hh++) {
        const kv = Math.floor(hh / group);
        const scores = Array.from({ length: pos + 1 }, (_, j) => {
          let d = 0;
          for (let i = 0; i < hd; i++) d += qs[pos]![hh * hd + i]! * ks[j]![kv * hd + i]!;
          return d / Math.sqrt(hd);
        });
        const m = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= pos; j++) for (let i = 0; i < hd; i++) attn[hh * hd + i] += (e[j]! / z) * vs[j]![kv * hd + i]!;
      }
      const o = linear(w(`${p}.self_attn.o_proj.weight`), s.dim, s.nHeads * hd, attn, opt("self_attn.o_proj.bias"));
      const x1 = x.map((v, i) => v + o[i]!);
      const h2 = rmsNorm(x1, w(`${p}.post_attention_layernorm.weight`), eps);
      const g = linear(w(`${p}.mlp.gate_proj.weight`), s.ffnDim, s.dim, h2);
      const u = linear(w(`${p}.mlp.up_proj.weight`), s.ffnDim, s.dim, h2);
      const act = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]!);
      const d = linear(w(`${p}.mlp.down_proj.weight`), s.dim, s.ffnDim, act);
      return x1.map((v, i) => v + d[i]!);
    });
  }
  const head = s.tied ? emb : w("lm_head.weight");
  return xs.map((x) => linear(head, s.vocabSize, s.dim, rmsNorm(x, w("model.norm.weight"), eps)));
}
