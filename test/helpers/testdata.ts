// Where the shared test data lives: ../shared/testdata beside the repository (as on the
// developers' machines and in CI), or MIMO_TESTDATA.
import { fileURLToPath } from "node:url";

export const TESTDATA: string = process.env.MIMO_TESTDATA ?? fileURLToPath(new URL("../../../shared/testdata", import.meta.url));
export const STORIES_DIR = `${TESTDATA}/stories260K`;
export const VOCAB_DIR = `${TESTDATA}/vocab`;
