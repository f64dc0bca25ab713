// The folder tree shows the data flow: a module imports only from its own folder or from folders
// below it in this order (README "Layout"). A new import that points up fails here, naming both ends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// "entry" is src/index.ts, src/browser.ts and src/api.ts; the CLI is built on the public entry.
// "hub" (the model cache and Hugging Face downloads) is Node-only: only src/index.ts and the CLI use it.
const LAYERS = ["errors", "quant", "format", "platform", "tokenizer", "compute", "kernels", "backends", "model", "sampling", "grammar", "speculative", "chat", "runtime", "tools", "hub", "server", "entry", "cli"];
const src = fileURLToPath(new URL("../src/", import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === "assembly" ? [] : sourceFiles(p); // assembly/: AssemblyScript, its own world
    return p.endsWith(".ts") ? [p] : [];
  });
}

/** The layer index of a file under src/ (entries at the top level sit above every layer). */
function layerOf(file: string): number {
  const top = relative(src, file).split(/[\\/]/)[0]!;
  return LAYERS.indexOf(top.endsWith(".ts") ? "entry" : top);
}

test("every folder of src/ is a known layer", () => {
  const folders = readdirSync(src).filter((n) => statSync(join(src, n)).isDirectory());
  assert.deepEqual(folders.filter((f) => !LAYERS.includes(f) || f === "entry"), []);
});

test("imports only go down the layers: errors, quant, format, platform, tokenizer, compute, kernels, backends, model, sampling, grammar, speculative, chat, runtime, tools, hub, server, the entries, cli", () => {
  const upward: string[] = [];
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?from\s+"(\.[^"]+)"/g)) {
      const target = resolve(dirname(file), m[1]!);
      const from = layerOf(file);
      const to = layerOf(target);
      if (to > from) upward.push(`${relative(src, file)} imports ${relative(src, target)} (${LAYERS[from]} -> ${LAYERS[to]})`);
    }
    // Dynamic imports and worker scripts count too.
    for (const m of text.matchAll(/import\(\s*"(\.[^"]+)"\s*\)/g)) {
      const target = resolve(dirname(file), m[1]!);
      if (layerOf(target) > layerOf(file)) upward.push(`${relative(src, file)} dynamically imports ${relative(src, target)}`);
    }
  }
  assert.deepEqual(upward, []);
});

test("the browser entry never reaches the Node-only server (src/server/)", () => {
  const seen = new Set<string>();
  const stack = [join(src, "browser.ts")];
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?from\s+"(\.[^"]+)"/g)) stack.push(resolve(dirname(file), m[1]!));
  }
  const reached = [...seen].map((f) => relative(src, f)).filter((f) => f.startsWith("server"));
  assert.ok(seen.size > 10, "the walk follows the imports");
  assert.deepEqual(reached, []);
});
