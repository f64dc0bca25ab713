import { readFile } from "node:fs/promises";
import { ModelFileError } from "../format/errors.ts";
import { writeGGUFFile } from "../platform/node-file.ts";
import { convertLlama2c } from "../tools/convert-llama2c.ts";

async function readInput(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFileError(path, code === "ENOENT" ? "no such file" : (e as Error).message);
  }
}

export async function convertCommand(checkpoint: string, o: { tokenizer: string; output: string; name?: string; force?: boolean }): Promise<void> {
  const conv = convertLlama2c(await readInput(checkpoint), await readInput(o.tokenizer), {
    checkpoint,
    tokenizer: o.tokenizer,
    modelName: o.name,
  });
  await writeGGUFFile(o.output, { metadata: conv.metadata, tensors: conv.tensors }, { overwrite: o.force });
  process.stderr.write(`wrote ${o.output}: ${conv.tensors.length} tensors\n`);
}
