// A plain transcription of a Llama forward pass (float64, no KV cache, no kernels), written from
// the model's definition to check statistics that llama.cpp cannot: the residual stream around
// each layer and the input of each layer's ffn_down and attn_output.
import type { GGUFFile } from "../../src/format/gguf-reader.ts";
import type { ModelConfig } from "../../src/model/config.ts";
import { getQuantTraits } from "../../src/quant/traits.ts";

export interface PlainLayerTrace {
  /** Residual stream entering and leaving the layer, one row of dim per token. */
  readonly input: Float64Array[];
  readonly output: Float64Array[];
  /** silu(gate) * up per token (ffn_down's input) and the attention output per token (attn_output's input). */
  readonly ffnAct: Float64Array[];
  readonly att: Float64Array[];
}

async function matrix(file: GGUFFile, name: string): Promise<{ rows: number; cols: number; w: Float64Array }> {
  const t = file.tensor(name);
  const cols = t.shape[0]!;
  const rows = t.shape.length > 1 ? t.shape[1]! : 1;
  const bytes = await file.readTensorBytes(name);
  const f = new Float32Array(cols * rows);
  getQuantTraits(t.type).dequantizeRow(bytes, 0, f, 0, cols * rows);
  return { rows, cols, w: Float64Array.from(f) };
}

function matvec(m: { rows: number; cols: number; w: Float64Array }, x: Float64Array): Float64Array {
  const y = new Float64Array(m.rows);
  for (let r = 0; r < m.rows; r++) {
    let s = 0;
    for (let c = 0; c < m.cols; c++) s += m.w[r * m.cols + c]! * x[c]!;
    y[r] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const k = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * k * w[i]!);
}

/** Rotates adjacent pairs (Llama's "normal" RoPE) of every head in place. */
function rope(v: Float64Array, heads: number, headDim: number, pos: number, base: number): void {
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < headDim; i += 2) {
      const theta = pos * Math.pow(base, -i / headDim);
      const a = v[h * headDim + i]!;
      const b = v[h * headDim + i + 1]!;
      v[h * headDim + i] = a * Math.cos(theta) - b * Math.sin(theta);
      v[h * headDim + i + 1] = a * Math.sin(theta) + b * Math.cos(theta);
    }
  }
}

/** Runs `tokens` from position 0 through every layer of a Llama file; per layer, the traces above. */
export async function plainLlamaTrace(file: GGUFFile, c: ModelConfig, tokens: readonly number[]): Promise<PlainLayerTrace[]> {
  if (c.arch.name !== "llama") throw new Error("plainLlamaTrace: llama only");
  const embd = await matrix(file, "token_embd.weight");
  let xs: Float64Array[] = tokens.map((t) => embd.w.slice(t * c.dim, (t + 1) * c.dim));
  const traces: PlainLayerTrace[] = [];
  const group = c.nHeads / c.nKvHeads;
  for (let l = 0; l < c.nLayers; l++) {
    const W = async (n: string) => matrix(file, `blk.${l}.${n}.weight`);
    const [attnNorm, wq, wk, wv, wo, ffnNorm, gate, up, down] = await Promise.all(
      ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"].map(W),
    );
    const input = xs.map((x) => x.slice());
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    const att: Float64Array[] = [];
    const ffnAct: Float64Array[] = [];
    const after: Float64Array[] = [];
    xs.forEach((x, pos) => {
      const h = rmsNorm(x, attnNorm!.w, c.normEps);
      const q = matvec(wq!, h);
      const k = matvec(wk!, h);
      const v = matvec(wv!, h);
      rope(q, c.nHeads, c.headDim, pos, c.ropeBase);
      rope(k, c.nKvHeads, c.headDim, pos, c.ropeBase);
      ks.push(k);
      vs.push(v);
      const out = new Float64Array(c.nHeads * c.headDimV);
      for (let hd = 0; hd < c.nHeads; hd++) {
        const g = Math.floor(hd / group);
        const scores = ks.map((kk) => {
          let s = 0;
          for (let i = 0; i < c.headDim; i++) s += q[hd * c.headDim + i]! * kk[g * c.headDim + i]!;
          return s / Math.sqrt(c.headDim);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < e.length; t++) {
          for (let i = 0; i < c.headDimV; i++) out[hd * c.headDimV + i] += (e[t]! / z) * vs[t]![g * c.headDimV + i]!;
        }
      }
      att.push(out);
      const o = matvec(wo!, out);
      const x1 = x.map((v2, i) => v2 + o[i]!);
      const h2 = rmsNorm(x1, ffnNorm!.w, c.normEps);
      const gg = matvec(gate!, h2);
      const uu = matvec(up!, h2);
      const act = gg.map((g2, i) => (g2 / (1 + Math.exp(-g2))) * uu[i]!);
      ffnAct.push(act);
      const d = matvec(down!, act);
      after.push(x1.map((v2, i) => v2 + d[i]!));
    });
    traces.push({ input, output: after, ffnAct, att });
    xs = after;
  }
  return traces;
}
