// Decode speed of one model in headless Chromium (a cross-origin isolated loopback page) and in
// Node, interleaved run by run, through the public generate() API (so the event-loop yield between
// tokens is part of what is measured). Reports tok/s per run and the median of each.
//
//   node bench/browser-decode.ts                        # stories260K, 1 thread, 256 tokens, 5 runs
//   node bench/browser-decode.ts --threads 2 -n 512 -r 7 --model path/to/file.gguf
//   node bench/browser-decode.ts --root /other/checkout # measure another tree's dist/ (e.g. before a change)
//   node bench/browser-decode.ts --profile              # also a V8 CPU profile of one more run in each: the top
//                                                       # functions by self time, side by side (µs per token)
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Session } from "node:inspector/promises";
import { chromium } from "playwright-core";

const { values: a } = parseArgs({
  options: {
    model: { type: "string", short: "m" },
    threads: { type: "string", short: "t", default: "1" },
    gen: { type: "string", short: "n", default: "256" },
    reps: { type: "string", short: "r", default: "5" },
    root: { type: "string" },
    chromium: { type: "string", default: process.env.MIMO_CHROMIUM ?? "/usr/bin/chromium" },
    profile: { type: "boolean", default: false },
    top: { type: "string", default: "25" },
  },
});
const root = resolve(a.root ?? fileURLToPath(new URL("..", import.meta.url)));
const modelPath = resolve(a.model ?? join(root, "models/stories260K.gguf"));
const threads = Number(a.threads), gen = Number(a.gen), reps = Number(a.reps);
if (!existsSync(join(root, "dist/browser.js"))) throw new Error(`${root}/dist/browser.js is missing: run npm run build there`);

const types: Record<string, string> = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
const page0 = `<!doctype html>
<script type="importmap">{ "imports": { "@huggingface/jinja": "/node_modules/@huggingface/jinja/dist/index.js" } }</script>
<script type="module">
import { loadModel } from "/dist/browser.js";
window.load = async (t) => { window.model = await loadModel("/model.gguf", { threads: t }); return window.model.backendName; };
window.run = async (n) => (await window.model.complete("", { temperature: 0, maxTokens: n, ignoreEos: true })).stats.generationTokensPerSecond;
window.ready = true;
</script>`;
const server = createServer(async (req, res) => {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  const h = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };
  try {
    if (path === "/") return void res.writeHead(200, { ...h, "Content-Type": "text/html" }).end(page0);
    const file = path === "/model.gguf" ? modelPath : join(root, normalize(decodeURIComponent(path)).replace(/^\/+/, ""));
    if (path !== "/model.gguf" && !/^\/(dist|build\/kernels|node_modules\/@huggingface\/jinja\/dist)\//.test(path)) return void res.writeHead(404).end();
    res.writeHead(200, { ...h, "Content-Type": types[extname(file)] ?? "application/octet-stream" }).end(await readFile(file));
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const port = (server.address() as { port: number }).port;
const browser = await chromium.launch({
  executablePath: a.chromium,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  const browserBackend = await page.evaluate((t) => (window as unknown as { load(t: number): Promise<string> }).load(t), threads);
  const mimo = (await import(pathToFileURL(join(root, "dist/index.js")).href)) as typeof import("../src/index.ts");
  const model = await mimo.loadModel(modelPath, { threads });
  const nodeRun = async () => (await model.complete("", { temperature: 0, maxTokens: gen, ignoreEos: true })).stats.generationTokensPerSecond;
  const browserRun = () => page.evaluate((n) => (window as unknown as { run(n: number): Promise<number> }).run(n), gen);
  await nodeRun(); await browserRun(); // warm-up
  const node: number[] = [], chrome: number[] = [];
  for (let r = 0; r < reps; r++) {
    node.push(await nodeRun());
    chrome.push(await browserRun());
  }
  await model.dispose();
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
  const f = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(" ");
  console.log(`${cpus()[0]?.model ?? "?"}, ${cpus().length} cores; tree ${root}; ${modelPath}; ${gen} tokens, ${reps} runs`);
  console.log(`node     ${model.backendName.padEnd(24)} median ${med(node).toFixed(0).padStart(6)} tok/s   runs ${f(node)}`);
  console.log(`chromium ${browserBackend.padEnd(24)} median ${med(chrome).toFixed(0).padStart(6)} tok/s   runs ${f(chrome)}`);
  console.log(`chromium / node: ${(med(chrome) / med(node)).toFixed(2)}`);
  if (a.profile) {
    // One more run in each runtime under V8's sampling profiler (the same profiler in both).
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 50 });
    await cdp.send("Profiler.start");
    await browserRun();
    const chromeProfile = (await cdp.send("Profiler.stop")).profile as CpuProfile;
    const session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 50 });
    await session.post("Profiler.start");
    const model2 = await mimo.loadModel(modelPath, { threads });
    await model2.complete("", { temperature: 0, maxTokens: gen, ignoreEos: true }); // warm-up, then reset the profile
    await session.post("Profiler.stop");
    await session.post("Profiler.start");
    await model2.complete("", { temperature: 0, maxTokens: gen, ignoreEos: true });
    const nodeProfile = (await session.post("Profiler.stop")).profile as CpuProfile;
    await model2.dispose();
    const c = selfTimes(chromeProfile), n = selfTimes(nodeProfile);
    const keys = [...new Set([...c.keys(), ...n.keys()])].sort((x, y) => Math.max(c.get(y) ?? 0, n.get(y) ?? 0) - Math.max(c.get(x) ?? 0, n.get(x) ?? 0));
    console.log(`\nSelf time per generated token (µs), one run of ${gen} tokens each, V8 sampling profiler (50 µs):`);
    console.log(`${"chromium".padStart(9)} ${"node".padStart(9)}  function`);
    for (const k of keys.slice(0, Number(a.top))) console.log(`${((c.get(k) ?? 0) / gen).toFixed(1).padStart(9)} ${((n.get(k) ?? 0) / gen).toFixed(1).padStart(9)}  ${k}`);
    console.log(`${(sum(c) / gen).toFixed(1).padStart(9)} ${(sum(n) / gen).toFixed(1).padStart(9)}  total`);
  }
} finally {
  await browser.close();
  server.close();
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}
/** µs of self time per function (name, file, line), across one profile. */
function selfTimes(p: CpuProfile): Map<string, number> {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const out = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const f = byId.get(p.samples[i]!)!.callFrame;
    const file = f.url.replace(/^.*\/(dist|src|node_modules)\//, "$1/").replace(/^node:/, "");
    const key = f.url.includes("wasm") && f.functionName.startsWith("$") === false && /wasm-function|^\$/.test(f.functionName) ? `wasm ${f.functionName}` : `${f.functionName || "(anonymous)"} ${file}${file ? ":" + (f.lineNumber + 1) : ""}`;
    out.set(key, (out.get(key) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  return out;
}
function sum(m: Map<string, number>): number {
  let s = 0;
  for (const v of m.values()) s += v;
  return s;
}
