import { openGGUFFile } from "../platform/node-file.ts";
import { ggmlTypeName } from "../quant/ggml-type.ts";
import { readModelConfig } from "../model/config.ts";
import { detectFamily } from "../chat/template.ts";

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 120 ? v.slice(0, 117) + "..." : v);
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const a = Array.from(v as ArrayLike<unknown>);
    const head = a.slice(0, 6).map(show).join(", ");
    return `[${head}${a.length > 6 ? `, ... (${a.length} items)` : ""}]`;
  }
  return String(v);
}

function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

export async function infoCommand(path: string, o: { allMetadata?: boolean }): Promise<void> {
  const f = await openGGUFFile(path);
  try {
    const out: string[] = [];
    const md = f.metadata;
    const arch = md.get("general.architecture");
    out.push(`file: ${path}`);
    out.push(`GGUF v${f.version}, ${bytes(f.fileSize)}, ${md.size} metadata keys, ${f.tensors.length} tensors, alignment ${f.alignment}`);
    out.push(`architecture: ${show(arch)}${md.has("general.name") ? `  name: ${show(md.get("general.name"))}` : ""}`);
    try {
      const c = readModelConfig(f);
      out.push(
        `hyper-parameters: layers ${c.nLayers}${c.nMtpLayers ? ` (+${c.nMtpLayers} MTP)` : ""}, dim ${c.dim}, ffn ${c.ffnDim}, heads ${c.nHeads}, kv heads ${c.nKvHeads}, head dim ${c.headDim},` +
          ` vocab ${c.vocabSize}, context ${c.contextLength}, rope ${c.arch.ropeStyle} base ${c.ropeBase} dims ${c.ropeDim}, rms eps ${Number(c.normEps.toPrecision(6))}`,
      );
    } catch (e) {
      out.push(`hyper-parameters: not loadable by mimo: ${(e as Error).message}`);
    }
    const tokens = md.get("tokenizer.ggml.tokens") as unknown[] | undefined;
    out.push(
      `tokenizer: ${show(md.get("tokenizer.ggml.model") ?? "none")}${md.has("tokenizer.ggml.pre") ? ` pre ${show(md.get("tokenizer.ggml.pre"))}` : ""}` +
        `${tokens ? `, ${tokens.length} tokens` : ""}${md.has("tokenizer.ggml.merges") ? `, ${(md.get("tokenizer.ggml.merges") as unknown[]).length} merges` : ""}` +
        `, bos ${show(md.get("tokenizer.ggml.bos_token_id"))}, eos ${show(md.get("tokenizer.ggml.eos_token_id"))}`,
    );
    const template = md.get("tokenizer.chat_template");
    if (typeof template === "string") {
      out.push("", `chat template (${template.length} chars, tokenizer.chat_template):`, ...template.split("\n").map((l) => `  | ${l}`));
    } else {
      const family = detectFamily((m) => (tokens ?? []).includes(m)) ?? "chatml";
      out.push(`chat template: none in the file (chat uses the built-in ${family} template)`);
    }
    out.push("");
    out.push("metadata:");
    for (const [k, v] of md) {
      if (k === "tokenizer.chat_template" && typeof v === "string") {
        out.push(`  ${k} = (${v.length} chars, shown above)`);
      } else if (!o.allMetadata && k.startsWith("tokenizer.ggml.") && (Array.isArray(v) || ArrayBuffer.isView(v))) {
        out.push(`  ${k} = (${(v as ArrayLike<unknown>).length} items)`);
      } else out.push(`  ${k} = ${show(v)}`);
    }
    out.push("");
    out.push("tensors:");
    const nameW = Math.max(4, ...f.tensors.map((t) => t.name.length));
    out.push(`  ${"#".padStart(4)}  ${"name".padEnd(nameW)}  ${"type".padEnd(7)}  ${"shape".padEnd(20)}  ${"bytes".padStart(12)}  offset`);
    let total = 0;
    f.tensors.forEach((t, i) => {
      total += t.byteSize;
      out.push(
        `  ${String(i).padStart(4)}  ${t.name.padEnd(nameW)}  ${ggmlTypeName(t.type).padEnd(7)}  ${("[" + t.shape.join(", ") + "]").padEnd(20)}  ${String(t.byteSize).padStart(12)}  ${t.offset}`,
      );
    });
    out.push(`  total tensor data: ${bytes(total)}`);
    process.stdout.write(out.join("\n") + "\n");
  } finally {
    await f.close();
  }
}
