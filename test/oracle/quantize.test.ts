// Files written by `mimo quantize` (llama.cpp's recipes, with and without an importance matrix)
// load in llama.cpp, and llama.cpp and mimo agree on them (the oracle suite's criteria).
import { test } from "node:test";
import { join } from "node:path";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { quantizeModel } from "../../src/tools/quantize.ts";
import { syntheticModel, type SyntheticArch } from "../../src/tools/synthetic-model.ts";
import { compareWithLlamaCpp, specFor } from "../helpers/oracle-suite.ts";
import { syntheticImportance } from "../tools/quantize-golden-cases.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-oracle-quantize-");
const sources = new Map<SyntheticArch, Promise<string>>();
function source(arch: SyntheticArch): Promise<string> {
  let p = sources.get(arch);
  if (!p) {
    const path = join(dir, `${arch}-F32.gguf`);
    p = writeGGUFFile(path, syntheticModel(specFor(arch, GGMLType.F32))).then(() => path);
    sources.set(arch, p);
  }
  return p;
}

const cases: { arch: SyntheticArch; recipe: string; imatrix?: boolean }[] = [
  { arch: "qwen2", recipe: "Q4_K_M" },
  { arch: "qwen2", recipe: "Q3_K_M" },
  { arch: "qwen2", recipe: "Q2_K", imatrix: true },
  { arch: "llama", recipe: "Q5_K_M", imatrix: true },
  { arch: "llama", recipe: "Q4_K_S" },
  { arch: "llama", recipe: "IQ4_NL", imatrix: true },
];

for (const c of cases) {
  test(`${c.arch} quantized by mimo to ${c.recipe}${c.imatrix ? " with an importance matrix" : ""}: llama.cpp loads it and agrees with mimo`, async (t) => {
    const out = join(dir, `${c.arch}-${c.recipe}${c.imatrix ? "-imatrix" : ""}.gguf`);
    await quantizeModel(await source(c.arch), out, {
      type: c.recipe,
      imatrix: c.imatrix ? syntheticImportance(specFor(c.arch, GGMLType.F32)) : undefined,
    });
    await compareWithLlamaCpp(t, out, out, { arch: c.arch });
  });
}
