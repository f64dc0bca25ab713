// The `mimo` executable's body (bin/mimo.js checks the Node version, then loads the compiled copy of this file).
import { buildCli } from "./main.ts";
import { exitWithError } from "./errors.ts";

// On success the process ends when the command leaves nothing running (a command disposes its
// model, which waits for its threads to exit); on an error, exitWithError stops them first.
buildCli().parseAsync(process.argv).catch(exitWithError);
