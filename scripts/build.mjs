#!/usr/bin/env node
// The package build (npm's `prepare` step): the WebAssembly kernels (build/kernels/) and the
// compiled TypeScript (dist/). Each part is skipped when its inputs hash to the same value as at
// its last successful build and its outputs are all still there, so a repeated `npm install`, and
// npx's install of the project itself on the first `npx mimo`, take milliseconds instead of a
// rebuild. Usage: node scripts/build.mjs [--force | --check] (--check builds nothing and exits 1
// when a part is out of date).
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const require = createRequire(import.meta.url);
const force = process.argv.includes("--force");
const check = process.argv.includes("--check");
const stampDir = join(root, "build", ".stamps");

/** Every file under dir (relative to the root), sorted; `skip` names folders left out. */
function filesUnder(dir, skip = []) {
  const abs = join(root, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((f) => !skip.some((s) => f === s || f.startsWith(s + "/")))
    .sort();
}

function versionOf(pkg) {
  return JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), "utf8")).version;
}

function hashInputs(files, tools) {
  const h = createHash("sha256");
  for (const t of tools) h.update(`${t}@${versionOf(t)}\n`);
  for (const f of files) h.update(`${f}\n`).update(readFileSync(join(root, f))).update("\n");
  return h.digest("hex");
}

const parts = [
  {
    name: "kernels",
    inputs: () => [...filesUnder("src/kernels/assembly"), "scripts/build-kernels.mjs"],
    tools: ["assemblyscript"],
    outputs: () => filesUnder("build/kernels"),
    clean: () => {},
    run: () => [join(root, "scripts/build-kernels.mjs")],
  },
  {
    name: "dist",
    inputs: () => [...filesUnder("src", ["src/kernels/assembly"]), "tsconfig.json", "tsconfig.build.json"],
    tools: ["typescript"],
    outputs: () => filesUnder("dist"),
    // Outputs of deleted sources must not linger in the package.
    clean: () => rmSync(join(root, "dist"), { recursive: true, force: true }),
    run: () => [require.resolve("typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")],
  },
];

mkdirSync(stampDir, { recursive: true });
for (const part of parts) {
  const t0 = performance.now();
  const hash = hashInputs(part.inputs(), part.tools);
  const stampFile = join(stampDir, `${part.name}.json`);
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(stampFile, "utf8"));
  } catch {
    stamp = undefined;
  }
  const fresh = !force && stamp?.hash === hash && stamp.outputs.length > 0 &&
    stamp.outputs.every((o) => existsSync(join(root, o.path)) && statSync(join(root, o.path)).size === o.size);
  if (fresh) {
    console.log(`build: ${part.name} is up to date (${(performance.now() - t0).toFixed(0)} ms)`);
    continue;
  }
  if (check) {
    console.error(`build: ${part.name} is out of date (run npm run build)`);
    process.exitCode = 1;
    continue;
  }
  rmSync(stampFile, { force: true });
  part.clean();
  const r = spawnSync(process.execPath, part.run(), { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`build: ${part.name} failed`);
    process.exit(r.status ?? 1);
  }
  const outputs = part.outputs().map((path) => ({ path, size: statSync(join(root, path)).size }));
  writeFileSync(stampFile, JSON.stringify({ hash, outputs }, null, 1) + "\n");
  console.log(`build: ${part.name} built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
