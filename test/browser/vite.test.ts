// The browser entry in an app built with a bundler, as a user would have it: the packed package
// (npm pack, unpacked into the app's node_modules) imported by name from a minimal Vite app,
// through Vite's production build and its dev server, in headless Chromium. The worker and the
// kernels' .wasm must be found through the `new URL(..., import.meta.url)` patterns Vite rewrites;
// the model must tell llama2.c's golden story on 2 threads.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { build, createServer as createViteServer, type ViteDevServer } from "vite";
import { STORIES_DIR } from "../helpers/testdata.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHROMIUM = process.env.MIMO_CHROMIUM ?? "/usr/bin/chromium";
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}; .ci/run installs Debian's chromium package`);
const skip = haveBrowser ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set MIMO_CHROMIUM)`;
const goldenText = readFileSync(`${STORIES_DIR}/golden.greedy.txt`, "utf8").replace(/\n$/, "");
const NAME = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { name: string }).name;
const ISOLATION = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" };

const MAIN = `import { loadModel } from "${NAME}/browser";
window.run = async (threads) => {
  try {
    const model = await loadModel("/stories260K.gguf", { threads, cache: false });
    try {
      const r = await model.complete("", { temperature: 0, maxTokens: 256 });
      return { text: r.text, backend: model.backendName };
    } finally {
      await model.dispose();
    }
  } catch (e) {
    return { error: String(e?.message ?? e) };
  }
};
window.ready = true;
`;

let app = "";
let browser: Browser;

before(async () => {
  if (skip) return;
  app = mkdtempSync(join(tmpdir(), "mimo-vite-"));
  // The package as npm would install it: the tarball's files, unpacked under node_modules/NAME.
  const pkgDir = join(app, "node_modules", ...NAME.split("/"));
  mkdirSync(pkgDir, { recursive: true });
  const tgz = execFileSync("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", app], { cwd: ROOT, encoding: "utf8" }).trim().split("\n").at(-1)!;
  execFileSync("tar", ["xzf", join(app, tgz), "-C", pkgDir, "--strip-components=1"]);
  // Its runtime dependencies beside it, as npm would install them (copied from ours: no network).
  const deps = Object.keys((JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies?: Record<string, string> }).dependencies ?? {});
  for (const dep of deps) cpSync(join(ROOT, "node_modules", dep), join(app, "node_modules", dep), { recursive: true, dereference: true });
  mkdirSync(join(app, "public"));
  copyFileSync(join(ROOT, "models/stories260K.gguf"), join(app, "public/stories260K.gguf"));
  writeFileSync(join(app, "index.html"), `<!doctype html><meta charset="utf-8"><title>vite app</title><script type="module" src="/main.js"></script>\n`);
  writeFileSync(join(app, "main.js"), MAIN);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "vite-app", private: true, type: "module" }));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  if (app) rmSync(app, { recursive: true, force: true });
});

type Outcome = { text?: string; backend?: string; error?: string };
async function runIn(url: string, threads: number): Promise<{ out: Outcome; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  try {
    await page.goto(url);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, undefined, { timeout: 60_000 });
    const out = await page.evaluate((t) => (window as unknown as { run(t: number): Promise<Outcome> }).run(t), threads);
    return { out, errors };
  } finally {
    await page.close();
  }
}

test("Vite production build: worker and kernels bundled, 2 threads tell the golden story", { skip, timeout: 300_000 }, async () => {
  const outDir = join(app, "dist");
  await build({ root: app, configFile: false, logLevel: "error", build: { outDir, emptyOutDir: true } });
  const types: Record<string, string> = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
  const server: Server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^\/+/, "") || "index.html";
    const body = await readFile(join(outDir, path)).catch(() => undefined);
    if (body) res.writeHead(200, { ...ISOLATION, "Content-Type": types[extname(path)] ?? "application/octet-stream" }).end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const { out, errors } = await runIn(`http://127.0.0.1:${(server.address() as { port: number }).port}/`, 2);
    assert.deepEqual(errors, []);
    assert.equal(out.error, undefined);
    assert.match(out.backend!, / x2$/);
    assert.equal(out.text, goldenText);
  } finally {
    server.close();
  }
});

test("Vite dev server, no configuration (the package is pre-bundled): 2 threads tell the golden story", { skip, timeout: 300_000 }, async () => {
  let vite: ViteDevServer | undefined;
  try {
    vite = await createViteServer({
      root: app,
      configFile: false,
      logLevel: "error",
      server: { host: "127.0.0.1", port: 0, headers: ISOLATION, hmr: false },
    });
    await vite.listen();
    const { out, errors } = await runIn(vite.resolvedUrls!.local[0]!, 2);
    assert.deepEqual(errors, []);
    assert.equal(out.error, undefined);
    assert.match(out.backend!, / x2$/);
    assert.equal(out.text, goldenText);
  } finally {
    await vite?.close();
  }
});
