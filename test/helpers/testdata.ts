// Where the shared test data lives: ../shared/testdata beside the repository (as on the
// developers' machines and in CI), or MIMO_TESTDATA.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const TESTDATA: string = process.env.MIMO_TESTDATA ?? fileURLToPath(new URL("../../../shared/testdata", import.meta.url));
if (!existsSync(`${TESTDATA}/stories260K/stories260K.gguf`)) {
  throw new Error(`test data not found at ${TESTDATA}: place shared/testdata beside the repository or set MIMO_TESTDATA`);
}
export const STORIES_DIR = `${TESTDATA}/stories260K`;
export const VOCAB_DIR = `${TESTDATA}/vocab`;
