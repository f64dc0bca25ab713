// The test data inside the repository (test/data; provenance and licenses in test/data/README.md).
import { fileURLToPath } from "node:url";

export const TESTDATA: string = fileURLToPath(new URL("../data", import.meta.url));
export const STORIES_DIR = `${TESTDATA}/stories260K`;
export const VOCAB_DIR = `${TESTDATA}/vocab`;
