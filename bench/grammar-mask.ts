// Token-mask cost on the 151,936-token Qwen2 vocabulary over the JSON Schema corpus
// (bench/json-schemas.json), as JSONSchemaBench's MaskBench measures it: for valid JSON texts of
// each schema (random texts of its grammar, tokenized by the Qwen2 tokenizer), the time to compute
// the allowed-token mask at every token, then the time to advance the parser by the token.
// Grammar compilation (trie walks of the precomputed positions) is timed separately, once per schema.
// Each token's mask is timed on `--runs` independent compilations of the grammar stepping through
// the same tokens (default 3), and the least of those times counts: on a shared machine a step
// is often preempted for milliseconds, and the least of independent runs filters that out (the raw
// single-run figures are printed too).
//
//   npm run bench:grammar [-- --texts 4 --out bench/results/grammar-mask-<date>.json]
import { readFileSync, writeFileSync, mkdirSync, renameSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { jsonSchemaToGbnf, randomText, TokenGrammar, vocabTrieOf } from "../src/grammar/index.ts";
import { createTokenizer } from "../src/tokenizer/index.ts";
import { presetTokenizer } from "../src/cli/synth.ts";
import { findPreset } from "../src/tools/presets.ts";
import { SeededRandom } from "../src/sampling/rng.ts";

const { values } = parseArgs({ options: { texts: { type: "string", default: "4" }, runs: { type: "string", default: "3" }, out: { type: "string" } } });
const textsPerSchema = Number(values.texts);
const runs = Number(values.runs);

interface Entry {
  name: string;
  schema: Record<string, unknown>;
}
const corpus: Entry[] = JSON.parse(readFileSync(new URL("./json-schemas.json", import.meta.url), "utf8"));

/** A coarse class per schema, for the per-class table. */
function classOf(schema: unknown): string {
  const text = JSON.stringify(schema);
  if (text.includes('"$ref"')) return "$ref / recursive";
  if (text.includes('"anyOf"') || text.includes('"oneOf"') || text.includes('"allOf"')) return "anyOf / oneOf / allOf";
  if (text === "{}" || /"additionalProperties":(true|\{)/.test(text) || text === '{"type":"object"}') return "free-form JSON";
  const nested = (JSON.stringify((schema as { properties?: unknown }).properties ?? (schema as { items?: unknown }).items ?? {}).match(/"type":"(object|array)"/g) ?? []).length;
  if ((schema as { type?: string }).type === "array" || nested > 0) return "nested / arrays";
  return "flat objects";
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

// The Qwen2 vocabulary as the qwen2-0.5b preset embeds it (151,936 entries, padded as llama.cpp's converter does).
const preset = findPreset("qwen2-0.5b")!;
const md = new Map<string, unknown>();
for (const [k, v] of presetTokenizer(preset)!) md.set(k, (v as { value: unknown }).value);
let t0 = performance.now();
const tok = createTokenizer(md);
const tokMs = performance.now() - t0;
t0 = performance.now();
const trie = vocabTrieOf(tok);
const trieMs = performance.now() - t0;
console.error(`vocabulary ${tok.vocabSize} tokens (tokenizer ${tokMs.toFixed(0)} ms, byte trie ${trie.size} nodes ${trieMs.toFixed(0)} ms)`);

const rng = new SeededRandom(2026);
const all: number[] = [];
const advance: number[] = [];
const byClass = new Map<string, number[]>();
const rows: { name: string; cls: string; compileMs: number; tokens: number; p50: number; p99: number; max: number }[] = [];
const raw: number[] = [];
for (const { name, schema } of corpus) {
  const gbnf = jsonSchemaToGbnf(schema);
  const grammars = Array.from({ length: runs }, () => TokenGrammar.fromGbnf(gbnf, tok));
  const tg = grammars[0]!;
  const times: number[] = [];
  for (let k = 0; k < textsPerSchema; k++) {
    const bytes = randomText(tg.engine, { random: () => rng.next(), softLimit: 120 });
    const ids = tok.encode(new TextDecoder().decode(bytes), { addSpecial: false });
    const states = grammars.map((g) => g.initial);
    for (const id of ids) {
      let best = Infinity;
      for (let r = 0; r < runs; r++) {
        const g = grammars[r]!;
        const a = performance.now();
        const m = g.mask(states[r]!);
        const b = performance.now();
        if (((m[id >>> 5]! >>> (id & 31)) & 1) === 0) throw new Error(`${name}: token ${id} of a valid text is masked`);
        const c = performance.now();
        states[r] = g.next(states[r]!, id);
        const d = performance.now();
        if (r === 0) {
          raw.push((b - a) * 1000);
          advance.push((d - c) * 1000);
        }
        best = Math.min(best, (b - a) * 1000);
      }
      times.push(best);
    }
    for (let r = 0; r < runs; r++) if (!grammars[r]!.engine.isComplete(states[r]!)) throw new Error(`${name}: a valid text does not complete the grammar`);
  }
  const sorted = [...times].sort((x, y) => x - y);
  const cls = classOf(schema);
  const compileMs = Math.min(...grammars.map((g) => g.compileMs));
  rows.push({ name, cls, compileMs, tokens: times.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1]! });
  all.push(...times);
  byClass.set(cls, [...(byClass.get(cls) ?? []), ...times]);
  console.error(`${name.padEnd(20)} ${cls.padEnd(22)} compile ${compileMs.toFixed(0).padStart(5)} ms  ${String(times.length).padStart(4)} tokens  p50 ${quantile(sorted, 0.5).toFixed(1)} µs  p99 ${quantile(sorted, 0.99).toFixed(0)} µs`);
}

const sortedAll = [...all].sort((x, y) => x - y);
const sortedAdv = [...advance].sort((x, y) => x - y);
const mean = all.reduce((x, y) => x + y, 0) / all.length;
const compiles = rows.map((r) => r.compileMs).sort((x, y) => x - y);
const lines: string[] = [];
lines.push(`CPU: ${cpus()[0]?.model ?? "?"} x${cpus().length}; Node ${process.version}; ${new Date().toISOString()}`);
lines.push(`Qwen2 vocabulary ${tok.vocabSize} tokens, ${corpus.length} schemas, ${textsPerSchema} texts each, ${all.length} tokens; each token's mask time is the least of ${runs} independent runs; load average ${loadavg()[0]!.toFixed(1)}`);
lines.push("");
lines.push("| schema class | schemas | tokens | mask p50 (µs) | mask p99 (µs) | mask max (µs) |");
lines.push("|---|---|---|---|---|---|");
for (const [cls, t] of [...byClass].sort()) {
  const s = [...t].sort((x, y) => x - y);
  lines.push(`| ${cls} | ${rows.filter((r) => r.cls === cls).length} | ${t.length} | ${quantile(s, 0.5).toFixed(1)} | ${quantile(s, 0.99).toFixed(0)} | ${s[s.length - 1]!.toFixed(0)} |`);
}
lines.push(`| **all** | ${rows.length} | ${all.length} | **${quantile(sortedAll, 0.5).toFixed(1)}** | **${quantile(sortedAll, 0.99).toFixed(0)}** | ${sortedAll[sortedAll.length - 1]!.toFixed(0)} |`);
lines.push("");
lines.push(`mask mean ${mean.toFixed(1)} µs; single run (raw, preemption included) p50 ${quantile([...raw].sort((x, y) => x - y), 0.5).toFixed(1)} µs, p99 ${quantile([...raw].sort((x, y) => x - y), 0.99).toFixed(0)} µs; parser advance per token p50 ${quantile(sortedAdv, 0.5).toFixed(1)} µs, p99 ${quantile(sortedAdv, 0.99).toFixed(0)} µs; grammar compile (per schema, precomputed positions) p50 ${quantile(compiles, 0.5).toFixed(0)} ms, max ${compiles[compiles.length - 1]!.toFixed(0)} ms; vocabulary trie once per tokenizer ${trieMs.toFixed(0)} ms`);
console.log(lines.join("\n"));
if (values.out) {
  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  const tmp = values.out + ".tmp";
  writeFileSync(tmp, JSON.stringify({ cpu: cpus()[0]?.model, threads: cpus().length, date: new Date().toISOString(), textsPerSchema, rows, summary: lines }, null, 1));
  renameSync(tmp, values.out);
}
