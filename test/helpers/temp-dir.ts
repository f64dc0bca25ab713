// A temporary folder for one test file (or one test, when called inside it), deleted when that
// file's (or test's) tests have finished: the suite writes hundreds of MB of model files per run,
// which must not pile up in the system's temporary directory.
import { after } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
