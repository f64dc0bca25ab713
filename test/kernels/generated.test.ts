// Generated sources are committed; each must equal what its generator writes today, so that an
// edit to the generator (or by hand to its output) cannot go unnoticed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ASSEMBLY = fileURLToPath(new URL("../../src/kernels/assembly/", import.meta.url));

test("src/kernels/assembly/kquants.ts is what kquants.gen.mjs generates", () => {
  // The generator writes kquants.ts next to itself: run a copy in a temporary folder.
  const dir = mkdtempSync(join(tmpdir(), "mimo-gen-"));
  try {
    copyFileSync(join(ASSEMBLY, "kquants.gen.mjs"), join(dir, "kquants.gen.mjs"));
    execFileSync(process.execPath, [join(dir, "kquants.gen.mjs")], { stdio: "pipe" });
    const generated = readFileSync(join(dir, "kquants.ts"), "utf8");
    const committed = readFileSync(join(ASSEMBLY, "kquants.ts"), "utf8");
    if (generated !== committed) {
      const a = generated.split("\n");
      const b = committed.split("\n");
      let line = 0;
      while (line < a.length && line < b.length && a[line] === b[line]) line++;
      assert.fail(
        `src/kernels/assembly/kquants.ts differs from its generator's output (first at line ${line + 1}:\n` +
          `  committed: ${JSON.stringify(b[line] ?? "<end of file>")}\n` +
          `  generated: ${JSON.stringify(a[line] ?? "<end of file>")}).\n` +
          `Edit the generator, not its output, and regenerate: node src/kernels/assembly/kquants.gen.mjs`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
