// The `mimo` executable's body (bin/mimo.js loads the compiled copy of this file).
import { buildCli } from "./main.ts";
import { exitWithError } from "./errors.ts";

const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
  process.stderr.write(
    `mimo: error: Node ${process.versions.node} is too old; mimo needs Node >= 22 (through npx or npm scripts the project's pinned Node 24 is used)\n`,
  );
  process.exit(1);
}
buildCli().parseAsync(process.argv).catch(exitWithError);
