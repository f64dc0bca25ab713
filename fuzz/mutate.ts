// Deterministic mutations of a valid GGUF file: case (seed, index) always gives the same bytes.
// Byte-level (bit flips, overwritten bytes, truncation) and field-aware (counts, lengths, type ids,
// dimensions, offsets set to boundary values; keys and tensors removed, duplicated, retyped or
// renamed; tokenizer arrays shortened, grown or garbled; alignment added) mutations, one to three
// per case.
import { SeededRandom } from "../src/sampling/rng.ts";
import {
  T, addKv, concat, duplicateKv, duplicateTensor, kvIndex, numberItems, readField, removeKv, removeTensor, replaceTensor,
  scanGGUF, setField, setKv, stringItems, tensorInfoBytes, val, type GGUFLayout, type Value,
} from "./gguf-edit.ts";

export interface Mutant {
  /** The mutation kinds applied, in order ("field", "kv-retype", ...). */
  readonly kinds: string[];
  /** What each did, for the report (field names, values). */
  readonly details: string[];
  readonly bytes: Uint8Array;
}

/** The case's random stream: a mix of the run's seed and the case index. */
export function caseRandom(seed: number, index: number): SeededRandom {
  return new SeededRandom(((seed >>> 0) * 0x9e3779b1 + index * 0x85ebca77 + 0x27d4eb2f) >>> 0);
}

class Pick {
  readonly r: SeededRandom;
  constructor(r: SeededRandom) {
    this.r = r;
  }
  int(n: number): number {
    return this.r.nextU32() % n;
  }
  chance(p: number): boolean {
    return this.r.next() < p;
  }
  of<X>(a: readonly X[]): X {
    return a[this.int(a.length)]!;
  }
  u64(): bigint {
    return (BigInt(this.r.nextU32()) << 32n) | BigInt(this.r.nextU32());
  }
  bytes(n: number, garbage = true): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = garbage ? this.int(256) : 0x61 + this.int(26);
    return out;
  }
  weighted<X>(items: readonly (readonly [X, number])[]): X {
    const total = items.reduce((a, [, w]) => a + w, 0);
    let x = this.r.next() * total;
    for (const [item, w] of items) {
      x -= w;
      if (x < 0) return item;
    }
    return items[items.length - 1]![0];
  }
}

/** Values at and around the boundaries that overflow, truncate or exhaust a reader. */
function interesting(p: Pick, orig: bigint): bigint {
  return p.of([
    0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 13n, 31n, 32n, 33n, 63n, 64n, 255n, 256n, 511n, 512n, 513n, 1023n, 4096n, 65535n, 65536n,
    2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 32n + 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 62n, 2n ** 63n - 1n,
    2n ** 63n, 2n ** 64n - 1n, 2n ** 64n - 32n, orig - 1n, orig + 1n, orig * 2n, orig / 2n, orig + 4096n, BigInt(p.r.nextU32()), p.u64(),
  ]);
}

/** Strings that break naive readers and printers. */
function nastyString(p: Pick): Uint8Array {
  const enc = new TextEncoder();
  return p.of([
    () => new Uint8Array(0),
    () => p.bytes(1 + p.int(64)),
    () => new Uint8Array(64 + p.int(4096)), // NUL bytes
    () => p.bytes(70_000, p.chance(0.5)),
    () => enc.encode("blk.0.attn_q.weight\n\x1b[31mred\x1b[0m\u202e\u0000"),
    () => enc.encode("\ud800".repeat(3)),
    () => p.bytes(100, false),
  ])();
}

type Mutator = (file: Uint8Array, layout: GGUFLayout, p: Pick) => { detail: string; bytes: Uint8Array };

const headerPos = (layout: GGUFLayout, p: Pick) => p.int(layout.headerEnd);

const mutators: Record<string, Mutator> = {
  field(file, layout, p) {
    const f = p.of(layout.fields);
    const x = interesting(p, readField(file, f));
    return { detail: `${f.what} = ${f.size === 4 ? BigInt.asUintN(32, x) : x}`, bytes: setField(file, f, x) };
  },
  bitflip(file, layout, p) {
    const out = file.slice();
    const n = 1 + p.int(4);
    const at: number[] = [];
    for (let i = 0; i < n; i++) {
      const pos = p.chance(0.85) ? headerPos(layout, p) : p.int(file.byteLength);
      out[pos]! ^= 1 << p.int(8);
      at.push(pos);
    }
    return { detail: `bits at ${at.join(", ")}`, bytes: out };
  },
  bytes(file, layout, p) {
    const out = file.slice();
    const pos = headerPos(layout, p);
    const n = 1 + p.int(16);
    const fill = p.of([0, 0xff, -1]);
    for (let i = pos; i < Math.min(pos + n, out.byteLength); i++) out[i] = fill < 0 ? p.int(256) : fill;
    return { detail: `${n} bytes at ${pos} = ${fill < 0 ? "random" : fill}`, bytes: out };
  },
  truncate(file, layout, p) {
    const at = p.chance(0.6) ? headerPos(layout, p) : layout.dataStart + p.int(file.byteLength - layout.dataStart);
    return { detail: `at ${at} of ${file.byteLength}`, bytes: file.slice(0, at) };
  },
  "kv-remove"(file, layout, p) {
    const kv = p.of(layout.kvs);
    return { detail: kv.key, bytes: removeKv(file, layout, kv.key) };
  },
  "kv-duplicate"(file, layout, p) {
    const i = p.int(layout.kvs.length);
    return { detail: layout.kvs[i]!.key, bytes: duplicateKv(file, layout, i) };
  },
  "kv-retype"(file, layout, p) {
    const kv = p.of(layout.kvs);
    const v: Value = p.of([
      val.str("32"), val.f32(1.5), val.bool(true), val.u64(2n ** 40n), val.i32(-1), val.u32(7), val.strings(["a"]), val.i32s([1, 2]),
      val.f32s([]), val.raw(13, new Uint8Array(8)), val.raw(0xffffffff, new Uint8Array(8)), val.raw(T.BOOL, new Uint8Array([2])),
    ]);
    return { detail: `${kv.key} -> type ${v.type}`, bytes: setKv(file, layout, kv.key, v) };
  },
  "kv-value"(file, layout, p) {
    const numeric = layout.kvs.filter((k) => k.type === T.UINT32 || k.type === T.INT32 || k.type === T.FLOAT32);
    const kv = p.of(numeric);
    const x = Number(BigInt.asUintN(32, interesting(p, 8n)));
    const v = kv.type === T.FLOAT32 ? val.f32(p.of([0, -1, 1e-30, 1e30, NaN, Infinity, x])) : kv.type === T.INT32 ? val.i32(x) : val.u32(x);
    return { detail: `${kv.key} = ${kv.type === T.FLOAT32 ? "float" : x}`, bytes: setKv(file, layout, kv.key, v) };
  },
  alignment(file, layout, p) {
    const v = p.of([val.u32(0), val.u32(1), val.u32(3), val.u32(16), val.u32(64), val.u32(2 ** 31), val.u32(48), val.str("32"), val.u64(32), val.f32(32), val.i32(-32), val.strings(["32"])]);
    const pow2 = v.type === T.UINT32 && new DataView(v.bytes.buffer).getUint32(0, true);
    const align = typeof pow2 === "number" && pow2 > 0 && (pow2 & (pow2 - 1)) === 0 && pow2 <= 4096 ? pow2 : undefined;
    return { detail: `general.alignment type ${v.type}`, bytes: addKv(file, layout, "general.alignment", v, align) };
  },
  "tensor-remove"(file, layout, p) {
    const i = p.int(layout.tensors.length);
    return { detail: layout.tensors[i]!.name, bytes: removeTensor(file, layout, i) };
  },
  "tensor-duplicate"(file, layout, p) {
    const i = p.int(layout.tensors.length);
    return { detail: layout.tensors[i]!.name, bytes: duplicateTensor(file, layout, i) };
  },
  "tensor-edit"(file, layout, p) {
    const i = p.int(layout.tensors.length);
    const t = layout.tensors[i]!;
    const what = p.of(["name", "dims", "type", "offset", "swap"]);
    let name: string | Uint8Array = t.name;
    let dims: bigint[] = [...t.dims];
    let type = t.type;
    let offset = t.offset;
    if (what === "name") name = nastyString(p);
    else if (what === "dims") {
      const nd = p.of([0, 1, 2, 3, 4, 5]);
      dims = Array.from({ length: nd }, (_, d) => (p.chance(0.5) && d < t.dims.length ? interesting(p, t.dims[d]!) : BigInt(p.of([0, 1, 2, 6, 8, 64, 512]))));
    } else if (what === "type") type = p.of([0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 20, 24, 25, 26, 30, 31, 39, 40, 255, 0xffffffff]);
    else if (what === "offset") offset = BigInt.asUintN(64, interesting(p, t.offset));
    else {
      const other = layout.tensors[p.int(layout.tensors.length)]!;
      offset = other.offset;
    }
    return { detail: `${t.name} ${what}`, bytes: replaceTensor(file, layout, i, tensorInfoBytes(name, dims, type, offset)) };
  },
  tokenizer(file, layout, p) {
    const has = (k: string) => layout.kvs.some((kv) => kv.key === k);
    const tokensKv = layout.kvs[kvIndex(layout, "tokenizer.ggml.tokens")]!;
    const tokens = stringItems(file, tokensKv);
    const what = p.of(["shrink", "grow", "types", "scores", "garble", "bytes", "model", "pre", "special", "empty"]);
    const enc = new TextEncoder();
    switch (what) {
      case "shrink": {
        const n = p.of([0, 1, 3, 10, 255, 256, 300, tokens.length - 1]);
        return { detail: `tokens -> ${n}`, bytes: setKv(file, layout, "tokenizer.ggml.tokens", val.strings(tokens.slice(0, n))) };
      }
      case "grow": {
        const extra = p.of([1, 88, 1000]);
        const more = Array.from({ length: extra }, (_, i) => enc.encode(`<extra_${i}>`));
        return { detail: `tokens +${extra}`, bytes: setKv(file, layout, "tokenizer.ggml.tokens", val.strings([...tokens, ...more])) };
      }
      case "types":
      case "scores": {
        const key = what === "types" ? "tokenizer.ggml.token_type" : "tokenizer.ggml.scores";
        if (!has(key)) return { detail: `${key} absent`, bytes: file };
        const items = numberItems(file, layout.kvs[kvIndex(layout, key)]!);
        const n = p.of([0, 1, items.length - 1]);
        const v = what === "types" ? val.i32s(items.slice(0, n).map((x) => (p.chance(0.1) ? p.int(1000) - 500 : x))) : val.f32s(items.slice(0, n));
        return { detail: `${key} -> ${n}`, bytes: setKv(file, layout, key, v) };
      }
      case "garble": {
        const k = p.int(tokens.length);
        const copy = [...tokens];
        copy[k] = nastyString(p);
        return { detail: `token ${k}`, bytes: setKv(file, layout, "tokenizer.ggml.tokens", val.strings(copy)) };
      }
      case "bytes": {
        // Byte tokens renamed: SPM's byte fallback loses them.
        const copy = tokens.map((t) => (/^<0x[0-9A-F]{2}>$/.test(new TextDecoder().decode(t)) ? enc.encode(`~${new TextDecoder().decode(t)}`) : t));
        return { detail: "byte tokens renamed", bytes: setKv(file, layout, "tokenizer.ggml.tokens", val.strings(copy)) };
      }
      case "model": {
        const m = p.of(["gpt2", "bert", "rwkv", "", "llama\0", "t5"]);
        return { detail: `model ${JSON.stringify(m)}`, bytes: setKv(file, layout, "tokenizer.ggml.model", val.str(m)) };
      }
      case "pre":
        return { detail: "pre", bytes: setKv(file, layout, "tokenizer.ggml.pre", val.str(nastyString(p))) };
      case "special": {
        const key = p.of(["bos", "eos", "unknown", "padding", "seperator", "eot", "eom"]);
        const id = p.of([-1, 511, 512, 513, 2 ** 31 - 1, 2 ** 32 - 1, 0, 1]);
        return { detail: `${key} id ${id}`, bytes: setKv(file, layout, `tokenizer.ggml.${key}_token_id`, p.chance(0.5) ? val.u32(id) : val.i32(id)) };
      }
      default:
        return { detail: "all tokenizer keys removed", bytes: layout.kvs.filter((k) => k.key.startsWith("tokenizer.")).reduce((f, kv) => removeKv(f, scanGGUF(f), kv.key), file) };
    }
  },
};

const kindWeights: readonly (readonly [string, number])[] = [
  ["field", 25], ["bitflip", 12], ["bytes", 8], ["truncate", 8], ["kv-remove", 6], ["kv-duplicate", 4], ["kv-retype", 8], ["kv-value", 10],
  ["alignment", 3], ["tensor-remove", 4], ["tensor-duplicate", 3], ["tensor-edit", 6], ["tokenizer", 8],
];

export const mutationKinds: readonly string[] = kindWeights.map(([k]) => k);

/** Case `index` of a run seeded `seed`: one to three mutations of `seedFile`. */
export function mutate(seedFile: Uint8Array, seed: number, index: number): Mutant {
  const p = new Pick(caseRandom(seed, index));
  const n = p.weighted([[1, 70], [2, 20], [3, 10]] as const);
  let bytes = seedFile;
  const kinds: string[] = [];
  const details: string[] = [];
  for (let i = 0; i < n; i++) {
    let layout: GGUFLayout;
    try {
      layout = scanGGUF(bytes);
    } catch {
      break; // an earlier mutation already broke the structure: field-aware edits need a valid one
    }
    const kind = p.weighted(kindWeights);
    let r: { detail: string; bytes: Uint8Array };
    try {
      r = mutators[kind]!(bytes, layout, p);
    } catch (e) {
      // The edit needs something an earlier mutation removed (a key, an array): skip it.
      r = { detail: `skipped (${(e as Error).message})`, bytes };
    }
    kinds.push(kind);
    details.push(r.detail);
    bytes = r.bytes;
  }
  return { kinds, details, bytes };
}

export { concat };
