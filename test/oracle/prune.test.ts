// Files written by `mimo prune` (layers, FFN channels and KV groups removed) load in llama.cpp, and
// llama.cpp and mimo agree on them (the oracle suite's criteria).
import { test } from "node:test";
import { join } from "node:path";
import { loadModel } from "../../src/index.ts";
import { writeGGUFFile } from "../../src/platform/node-file.ts";
import { GGMLType } from "../../src/quant/ggml-type.ts";
import { SeededRandom } from "../../src/sampling/rng.ts";
import { collectActivationStats, layerImportances, planPrune, writePrunedModel, type PruneRequest } from "../../src/tools/prune.ts";
import { syntheticModel, type SyntheticArch } from "../../src/tools/synthetic-model.ts";
import { compareWithLlamaCpp, specFor } from "../helpers/oracle-suite.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-oracle-prune-");

/** Text made of the synthetic vocabulary's words ("▁" + a base-26 spelling of the id). */
function syntheticText(words: number, seed: number): string {
  const rng = new SeededRandom(seed);
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    let k = 300 + Math.floor(rng.next() * 200);
    let s = "";
    do {
      s = "abcdefghijklmnopqrstuvwxyz"[k % 26]! + s;
      k = Math.floor(k / 26);
    } while (k > 0);
    out.push(s);
  }
  return out.join(" ");
}

const cases: { arch: SyntheticArch; what: string; request: PruneRequest }[] = [
  { arch: "llama", what: "1 layer (lowest block influence)", request: { removeLayers: 1 } },
  { arch: "qwen2", what: "25% of the FFN channels (wanda)", request: { ffnRatio: 0.25, ffnAlign: 32 } },
  { arch: "llama", what: "1 of 2 KV groups and 50% of the FFN channels", request: { kvGroups: 1, ffnRatio: 0.5, ffnAlign: 32 } },
  { arch: "qwen3", what: "1 of 2 KV groups", request: { kvGroups: 1 } },
];

for (const c of cases) {
  test(`${c.arch} with ${c.what} removed: llama.cpp loads the pruned file and agrees with mimo`, async (t) => {
    const src = join(dir, `${c.arch}-F32.gguf`);
    await writeGGUFFile(src, syntheticModel(specFor(c.arch, GGMLType.F32)), { overwrite: true });
    const model = await loadModel(src, { contextSize: 128 });
    const config = model.config;
    let imp;
    try {
      const stats = collectActivationStats(model, syntheticText(400, 3), { chunkSize: 128 });
      imp = await layerImportances(model.file, config, stats, "wanda");
    } finally {
      await model.dispose();
    }
    const out = join(dir, `${c.arch}-${c.what.replace(/\W+/g, "_")}.gguf`);
    await writePrunedModel(src, out, config, planPrune(config, c.request, imp));
    await compareWithLlamaCpp(t, out, out, { arch: c.arch });
  });
}
