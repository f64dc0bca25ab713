// Big-model smoke run: a MiMo-7B-shaped Q4_0 file (about 4.4 GB, over the 4 GiB a single
// WebAssembly memory can hold) loads and generates on 2 threads, each thread holding its half.
//   npm run smoke:7b            (writes bench/files/mimo-7b-Q4_0.gguf first if missing, ~1 min)
import { existsSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { writePresetModel } from "../src/cli/synth.ts";
import { loadModel } from "../src/index.ts";
import { peakRssBytes } from "../src/cli/bench.ts";

const path = fileURLToPath(new URL("./files/mimo-7b-Q4_0.gguf", import.meta.url));
const threads = Number(process.argv[2] ?? 2);
if (!existsSync(path)) {
  process.stderr.write(`smoke:7b: writing ${path}\n`);
  await writePresetModel({ preset: "mimo-7b", type: "Q4_0", output: path, seed: 1 });
}
const fileBytes = statSync(path).size;
const gb = (b: number) => (b / 1e9).toFixed(2);
process.stderr.write(`smoke:7b: loading ${gb(fileBytes)} GB with ${threads} threads\n`);
const t0 = performance.now();
let lastPct = -10;
const model = await loadModel(path, {
  threads,
  contextSize: 512,
  onProgress: (p) => {
    const pct = Math.floor((100 * p.bytesLoaded) / p.bytesTotal);
    if (pct >= lastPct + 10) {
      lastPct = pct;
      process.stderr.write(`smoke:7b: loaded ${pct}%\n`);
    }
  },
});
const loadMs = performance.now() - t0;
const prompt = model.tokenize("The quick brown fox");
const r = await model.complete(prompt, { temperature: 0, maxTokens: 16, ignoreEos: true });
const rss = peakRssBytes();
console.log(
  `mimo-7b Q4_0 (${gb(fileBytes)} GB, ${model.config.nLayers} layers + ${model.config.nMtpLayers} MTP) on ${model.backendName}: ` +
    `load ${(loadMs / 1000).toFixed(1)} s, prompt ${prompt.length} tok ${r.stats.promptTokensPerSecond.toFixed(2)} tok/s, ` +
    `decode ${r.stats.generatedTokens} tok ${r.stats.generationTokensPerSecond.toFixed(2)} tok/s, peak RSS ${gb(rss)} GB (file ${gb(fileBytes)} GB)`,
);
await model.dispose();
