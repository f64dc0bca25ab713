// The model files the side-by-side benchmarks run on: "preset:TYPE" (a `mimo synth` file under
// bench/files/, written on first use), "stories260K" (the bundled model) or a path.
import { createReadStream, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writePresetModel } from "../src/cli/synth.ts";

const here = fileURLToPath(new URL(".", import.meta.url));
export const bundledModel = fileURLToPath(new URL("../models/stories260K.gguf", import.meta.url));

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
  await writePresetModel({ preset, type, output: path, layers, progress: false });
  return path;
}

/** Reads the file once so that every contestant loads from the page cache. */
export function warmPageCache(path: string): Promise<void> {
  return new Promise((res, rej) => createReadStream(path, { highWaterMark: 1 << 24 }).on("data", () => {}).on("end", res).on("error", rej));
}
