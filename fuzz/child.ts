// A fuzz harness child process: runs the cases its parent sends, one at a time, and reports each
// result. The parent enforces the time and memory limits (it kills a child that exceeds them).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCase, seedFiles, type CaseOptions } from "./case.ts";
import { loadModel } from "../src/index.ts";

export interface CaseRequest extends Omit<CaseOptions, "dir"> {}

const dir = mkdtempSync(join(tmpdir(), "mimo-fuzz-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

// Warm up once on an unmodified seed, so that threads started lazily (the libuv pool, V8's
// compiler threads) are running before the first case counts them.
let warm: Promise<void> | undefined;
async function warmUp(req: CaseRequest): Promise<void> {
  const model = await loadModel(new URL(`../${seedFiles[0]}`, import.meta.url).pathname, { backend: req.backend, threads: req.threads });
  await model.complete("Once", { temperature: 0, maxTokens: 2 });
  await model.dispose();
}

process.on("message", async (req: CaseRequest) => {
  warm ??= warmUp(req);
  await warm;
  const result = await runCase({ ...req, dir });
  process.send!(result);
});
process.send!({ ready: true });
