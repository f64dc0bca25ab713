// Serves the browser demo (examples/browser-chat) with the built package beside it: dist/,
// build/kernels/ and the bundled model, on loopback. Cross-origin isolated by default (COOP/COEP,
// so worker threads run); --no-isolation serves without those headers (one thread).
//
//   npm run demo                       # http://127.0.0.1:8080/
//   npm run demo -- --port 3000 --no-isolation
import { createServer, type Server } from "node:http";
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const HERE = fileURLToPath(new URL(".", import.meta.url));
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".wasm": "application/wasm",
  ".gguf": "application/octet-stream",
  ".map": "application/json",
};

export interface DemoServer {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the demo server; port 0 picks a free one. */
export async function startDemoServer(opts: { port?: number; host?: string; isolation?: boolean } = {}): Promise<DemoServer> {
  if (!existsSync(join(ROOT, "dist/browser.js"))) throw new Error("dist/ is missing: run npm run build first");
  const isolation = opts.isolation ?? true;
  const headers: Record<string, string> = isolation ? { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" } : {};
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^\/+/, "");
    let file: string | undefined;
    if (path === "" || path === "index.html") file = join(HERE, "index.html");
    else if (path === "app.js" || path === "style.css") file = join(HERE, path);
    else if (/^(dist|build\/kernels|models|node_modules\/@huggingface\/jinja\/dist)\//.test(path) && !path.includes("..")) file = join(ROOT, path);
    const body = file ? await readFile(file).catch(() => undefined) : undefined;
    if (!body) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end(`not found: /${path}\n`);
      return;
    }
    res.writeHead(200, { ...headers, "Content-Type": TYPES[extname(file!)] ?? "application/octet-stream", "Cache-Control": "no-cache" }).end(body);
  });
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 8080, host, resolve);
  });
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://${host}:${port}/`, close: () => new Promise((r) => server.close(() => r())) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { port: { type: "string", default: "8080" }, host: { type: "string", default: "127.0.0.1" }, "no-isolation": { type: "boolean", default: false } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`mimo demo: error: --port must be an integer from 0 to 65535, got "${values.port}"`);
    process.exit(2);
  }
  try {
    const d = await startDemoServer({ port, host: values.host, isolation: !values["no-isolation"] });
    console.log(`mimo demo: ${d.url}  (${values["no-isolation"] ? "not cross-origin isolated: 1 thread" : "cross-origin isolated: worker threads"}; Ctrl-C stops)`);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    console.error(`mimo demo: error: ${err.code === "EADDRINUSE" ? `port ${port} is in use; pick another with --port` : err.message}`);
    process.exit(1);
  }
}
