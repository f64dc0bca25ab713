import { readFile, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { ModelFileError } from "../format/errors.ts";
import { tensorDataSize, writeGGUF } from "../format/gguf-writer.ts";
import { NodeDirectory, NodeFileSink, writeGGUFFile } from "../platform/node-file.ts";
import { ggmlTypeFromName, ggmlTypeName } from "../quant/ggml-type.ts";
import { supportedWeightTypes } from "../quant/traits.ts";
import { convertHuggingFace } from "../tools/convert-hf.ts";
import { convertLlama2c } from "../tools/convert-llama2c.ts";
import { RECIPES, findRecipe, type QuantRecipe } from "../tools/quant-recipes.ts";

export interface ConvertOptions {
  tokenizer?: string;
  output: string;
  outtype: string;
  name?: string;
  force?: boolean;
}

async function readInput(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFileError(path, code === "ENOENT" ? "no such file" : (e as Error).message);
  }
}

/** --outtype: auto, a weight type mimo computes with, or a llama.cpp file type such as q4_k_m (any case). */
function parseOutType(v: string): number | "auto" | QuantRecipe {
  if (v.toLowerCase() === "auto") return "auto";
  const t = ggmlTypeFromName(v.toUpperCase());
  if (t !== undefined && supportedWeightTypes.includes(t as never)) return t;
  const recipe = findRecipe(v);
  if (recipe) return recipe;
  throw new Error(
    `--outtype must be auto, one of ${supportedWeightTypes.map((x) => ggmlTypeName(x).toLowerCase()).join(", ")}, ` +
      `or a file type (${RECIPES.filter((r) => ggmlTypeFromName(r.name) === undefined).map((r) => r.name.toLowerCase()).join(", ")}); got "${v}"`,
  );
}

/** A Hugging Face folder (or a file in one) or a llama2.c checkpoint. */
async function inputKind(input: string): Promise<{ kind: "hf"; dir: string } | { kind: "llama2c" }> {
  let s;
  try {
    s = await stat(input);
  } catch {
    throw new ModelFileError(input, "no such file or folder");
  }
  if (s.isDirectory()) return { kind: "hf", dir: input };
  const base = basename(input);
  if (base.endsWith(".safetensors") || base === "config.json" || base === "model.safetensors.index.json") return { kind: "hf", dir: dirname(input) };
  return { kind: "llama2c" };
}

function formatBytes(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export async function convertCommand(input: string, o: ConvertOptions): Promise<void> {
  const outType = parseOutType(o.outtype);
  const kind = await inputKind(input);
  if (kind.kind === "llama2c") {
    if (!o.tokenizer) throw new Error(`${input} is not a Hugging Face model folder, so it is read as a llama2.c checkpoint, which needs its tokenizer: -t tokenizer.bin`);
    if (outType !== "auto" && outType !== 0) throw new Error("a llama2.c checkpoint converts to F32 only; quantize the result with mimo quantize");
    const conv = convertLlama2c(await readInput(input), await readInput(o.tokenizer), { checkpoint: input, tokenizer: o.tokenizer, modelName: o.name });
    await writeGGUFFile(o.output, { metadata: conv.metadata, tensors: conv.tensors }, { overwrite: o.force });
    process.stderr.write(`wrote ${o.output}: ${conv.tensors.length} tensors\n`);
    return;
  }
  if (o.tokenizer) throw new Error("-t/--tokenizer is for llama2.c checkpoints; a Hugging Face folder brings its tokenizer.json");

  // Refuse an existing output before reading anything.
  const sink = await NodeFileSink.create(o.output, o.force);
  let conv;
  try {
    conv = await convertHuggingFace(new NodeDirectory(kind.dir), {
      ...(typeof outType === "object" ? { recipe: outType } : { outType }),
      name: o.name,
      onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
    });
  } catch (e) {
    await sink.abort();
    throw e;
  }
  const sizes = conv.tensors.map((t) => tensorDataSize(t.type, t.shape, t.name));
  const total = sizes.reduce((a, b) => a + b, 0);
  process.stderr.write(
    `${kind.dir}: ${conv.arch}, ${conv.nLayers} layers${conv.nMtpLayers ? ` + ${conv.nMtpLayers} MTP` : ""}, ` +
      `${conv.tiedEmbeddings ? "tied" : "separate"} output, ${typeof outType === "object" ? `${outType.name} (${outType.summary})` : `matrices as ${ggmlTypeName(conv.outType)}`} -> ${o.output} (${formatBytes(total)})\n`,
  );
  const tty = process.stderr.isTTY;
  let done = 0;
  const t0 = performance.now();
  try {
    await writeGGUF(sink, {
      metadata: conv.metadata,
      tensors: conv.tensors,
      onTensorWritten: (i, n, name) => {
        done += sizes[i]!;
        const line = `[${String(i + 1).padStart(String(n).length)}/${n}] ${formatBytes(done)} / ${formatBytes(total)} ${name}`;
        if (tty) process.stderr.write(`\r\x1b[K${line}${i + 1 === n ? "\n" : ""}`);
        else if (i + 1 === n || (i + 1) % 50 === 0) process.stderr.write(line + "\n");
      },
    });
  } catch (e) {
    await sink.abort();
    throw e;
  } finally {
    await conv.close();
  }
  process.stderr.write(`wrote ${o.output}: ${conv.tensors.length} tensors, ${formatBytes(total)} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
