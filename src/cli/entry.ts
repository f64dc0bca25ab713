// The `mimo` executable's body (bin/mimo.js checks the Node version, then loads the compiled copy of this file).
import { buildCli } from "./main.ts";
import { exitWithError } from "./errors.ts";

buildCli().parseAsync(process.argv).catch(exitWithError);
