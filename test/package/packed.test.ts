// The package as a consumer gets it: `npm pack`, installed from the tarball into a scratch project
// (its one dependency from the npm cache, or the registry when the cache lacks it), then the
// README's library example run as ESM and type-checked as TypeScript, the `mimo` bin, and the
// source maps. On a Node older than 22, if the machine has one, the library says once why it is slower.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "../helpers/temp-dir.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { name: string; version: string };
const env = { ...process.env, PATH: (process.env.PATH ?? "").split(delimiter).filter((p) => !p.includes("node_modules/.bin")).join(delimiter), npm_config_update_notifier: "false" };

/** The README's library example for consumers: the first js block of its "Install" section. */
function readmeExample(): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("\n## Install"));
  return /```js\n([\s\S]*?)```/.exec(section)![1]!;
}

function run(cmd: string, args: string[], cwd: string, timeout = 180_000) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

test("the packed tarball installs into a scratch project and runs the README's example as ESM and TypeScript", (t) => {
  // Pack what the build made (prepare is not re-run here: other tests read dist/ meanwhile).
  const fresh = run(process.execPath, [join(root, "scripts/build.mjs"), "--check"], root);
  assert.equal(fresh.code, 0, `the build is out of date, run npm run build: ${fresh.stderr}`);
  const work = tempDir("mimo-pack-");
  const pack = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], root);
  assert.equal(pack.code, 0, pack.stderr);
  const [{ filename }] = JSON.parse(pack.stdout) as [{ filename: string }];
  const tarball = join(work, filename);

  const app = join(work, "app");
  run("mkdir", ["-p", app], work);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2));
  const install = run("npm", ["install", tarball, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], app);
  assert.equal(install.code, 0, install.stderr);
  const installed = join(app, "node_modules", pkg.name);
  assert.ok(existsSync(join(installed, "dist/index.js")));

  // Every source map names files that are in the package.
  const maps = filesUnder(installed).filter((f) => f.endsWith(".map"));
  assert.ok(maps.length > 50, `${maps.length} source maps`);
  const missing: string[] = [];
  for (const m of maps) {
    const { sources } = JSON.parse(readFileSync(m, "utf8")) as { sources: string[] };
    for (const s of sources) if (!existsSync(resolve(dirname(m), s))) missing.push(`${relative(installed, m)} -> ${s}`);
  }
  assert.deepEqual(missing, []);

  // The README's example, as ESM on this Node.
  const example = readmeExample();
  assert.match(example, new RegExp(`from "${pkg.name}"`));
  writeFileSync(join(app, "example.mjs"), example);
  const esm = run(process.execPath, ["example.mjs"], app);
  assert.equal(esm.code, 0, esm.stderr);
  assert.match(esm.stdout, /^Once upon a time\b.{20,}/s);
  assert.equal(esm.stderr, "");

  // The same code as a TypeScript consumer file, type-checked against the package's declarations.
  writeFileSync(join(app, "example.ts"), example);
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
    compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: ["node"], typeRoots: [join(root, "node_modules/@types")] },
    files: ["example.ts"],
  }, null, 2));
  const tsc = run(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], app);
  assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);

  // The bin the package installs.
  const bin = join(app, "node_modules/.bin/mimo");
  const version = run(process.execPath, [bin, "--version"], app);
  assert.equal(version.stdout, `${pkg.version}\n`, version.stderr);
  const cli = run(process.execPath, [bin, "run", "Once upon a time", "-n", "16", "-q"], app);
  assert.equal(cli.code, 0, cli.stderr);
  assert.ok(cli.stdout.startsWith("Once upon a time"));

  // An older Node, where the machine has one as `node` (this one has Node 20; CI may not).
  const old = run("node", ["--version"], app);
  const major = Number(/^v(\d+)/.exec(old.stdout)?.[1] ?? 99);
  if (old.code !== 0 || major >= 22) {
    t.diagnostic(`no Node < 22 on PATH (found ${old.stdout.trim() || "none"}): the slow-kernels notice is not exercised`);
    return;
  }
  const slow = run("node", ["example.mjs"], app);
  assert.equal(slow.code, 0, slow.stderr);
  assert.match(slow.stdout, /^Once upon a time\b/);
  const notices = slow.stderr.split("\n").filter((l) => l.includes("MIMO_SLOW_KERNELS"));
  assert.equal(notices.length, 1, slow.stderr);
  assert.match(notices[0]!, new RegExp(`mimo runs on its plain SIMD128 kernels, which are slower on quantized models: Node ${old.stdout.trim().slice(1)} has no WebAssembly relaxed SIMD \\(Node >= 22 has it\\)\\.`));
  const oldCli = run("node", [bin, "--version"], app);
  assert.equal(oldCli.code, 1);
  assert.equal(oldCli.stderr, `mimo: error: this is Node ${old.stdout.trim().slice(1)}; mimo needs Node 22.12 or newer (install a current LTS from https://nodejs.org, or run \`nvm install --lts\`)\n`);
});
