// Matrices of one Qwen2-0.5B decode step: [name, rows, cols] (24 layers + the output matrix).
export const HIDDEN = 896;
export const INTERMEDIATE = 4864;
export const LAYERS = 24;
export const VOCAB = 151936;

export function qwen2_05bMatrices(): Array<{ name: string; rows: number; k: number }> {
  const out: Array<{ name: string; rows: number; k: number }> = [];
  for (let l = 0; l < LAYERS; l++) {
    out.push({ name: `blk.${l}.attn_q`, rows: HIDDEN, k: HIDDEN });
    out.push({ name: `blk.${l}.attn_k`, rows: 128, k: HIDDEN });
    out.push({ name: `blk.${l}.attn_v`, rows: 128, k: HIDDEN });
    out.push({ name: `blk.${l}.attn_output`, rows: HIDDEN, k: HIDDEN });
    out.push({ name: `blk.${l}.ffn_gate`, rows: INTERMEDIATE, k: HIDDEN });
    out.push({ name: `blk.${l}.ffn_up`, rows: INTERMEDIATE, k: HIDDEN });
    out.push({ name: `blk.${l}.ffn_down`, rows: HIDDEN, k: INTERMEDIATE });
  }
  out.push({ name: "output", rows: VOCAB, k: HIDDEN });
  return out;
}

/** Two decoder layers of MiMo-7B (hidden 4096, 8 KV heads of 128, intermediate 11008): 228 MB of Q4_0, beyond any cache. */
export function mimo7bLayerMatrices(layers = 2): Array<{ name: string; rows: number; k: number }> {
  const out: Array<{ name: string; rows: number; k: number }> = [];
  for (let l = 0; l < layers; l++) {
    out.push({ name: `blk.${l}.attn_q`, rows: 4096, k: 4096 });
    out.push({ name: `blk.${l}.attn_k`, rows: 1024, k: 4096 });
    out.push({ name: `blk.${l}.attn_v`, rows: 1024, k: 4096 });
    out.push({ name: `blk.${l}.attn_output`, rows: 4096, k: 4096 });
    out.push({ name: `blk.${l}.ffn_gate`, rows: 11008, k: 4096 });
    out.push({ name: `blk.${l}.ffn_up`, rows: 11008, k: 4096 });
    out.push({ name: `blk.${l}.ffn_down`, rows: 4096, k: 11008 });
  }
  return out;
}
