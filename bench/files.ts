// The model files the side-by-side benchmarks run on: "preset:TYPE" (a `mimo synth` file under
// bench/files/, written on first use), "stories260K" (the bundled model) or a path.
import { createReadStream, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writePresetModel } from "../src/cli/synth.ts";
import { writeGGUFFile } from "../src/platform/node-file.ts";
import { ggmlTypeFromName } from "../src/quant/ggml-type.ts";
import { findPreset } from "../src/tools/presets.ts";
import { syntheticModel } from "../src/tools/synthetic-model.ts";

const here = fileURLToPath(new URL(".", import.meta.url));
export const bundledModel = fileURLToPath(new URL("../models/stories260K.gguf", import.meta.url));

// llama2.c's published TinyStories configs (its README's table and model.py's ModelArgs: untied
// classifier in the GGUF conversions, vocabulary 32,000, norm eps 1e-5, rope base 10,000), used
// until `mimo synth` has these presets.
const storiesShapes: Record<string, { dim: number; ffnDim: number; nLayers: number; nHeads: number; contextLength: number }> = {
  stories15m: { dim: 288, ffnDim: 768, nLayers: 6, nHeads: 6, contextLength: 256 },
  stories42m: { dim: 512, ffnDim: 1376, nLayers: 8, nHeads: 8, contextLength: 1024 },
  stories110m: { dim: 768, ffnDim: 2048, nLayers: 12, nHeads: 12, contextLength: 1024 },
};

/** The file of a spec: "preset:TYPE" (written with `mimo synth`'s logic if missing), "stories260K", or a path. */
export async function benchFile(spec: string, layers?: number, log: (s: string) => void = (s) => process.stderr.write(s)): Promise<string> {
  if (spec === "stories260K") return bundledModel;
  if (spec.endsWith(".gguf")) {
    if (!existsSync(spec)) throw new Error(`${spec}: no such file`);
    return spec;
  }
  const [preset = "", type = "Q4_0"] = spec.split(":");
  const dir = join(here, "files");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${preset}-${type.toUpperCase()}${layers === undefined ? "" : `-${layers}l`}.gguf`);
  if (existsSync(path)) return path;
  log(`bench: writing ${path} (mimo synth)\n`);
  const shape = findPreset(preset) ? undefined : storiesShapes[preset];
  if (!shape) {
    await writePresetModel({ preset, type, output: path, layers, progress: false });
    return path;
  }
  const t = ggmlTypeFromName(type);
  if (t === undefined) throw new RangeError(`${spec}: unknown type ${type}`);
  const spec2 = syntheticModel({
    arch: "llama",
    name: `synthetic llama2.c ${preset} shape, ${type.toUpperCase()}`,
    ...shape,
    nLayers: layers ?? shape.nLayers,
    nKvHeads: shape.nHeads,
    vocabSize: 32000,
    ropeBase: 10000,
    normEps: 1e-5,
    weightType: t,
    tiedOutput: false,
    seed: 1,
    fastRandomBlocks: true,
  });
  await writeGGUFFile(path, spec2);
  return path;
}

/** Reads the file once so that every contestant loads from the page cache. */
export function warmPageCache(path: string): Promise<void> {
  return new Promise((res, rej) => createReadStream(path, { highWaterMark: 1 << 24 }).on("data", () => {}).on("end", res).on("error", rej));
}
