/** Prints one clear line for an error and exits non-zero; stack traces only with MIMO_DEBUG=1. */
export function exitWithError(e: unknown): never {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`mimo: error: ${msg}\n`);
  if (process.env.MIMO_DEBUG && e instanceof Error && e.stack) process.stderr.write(e.stack + "\n");
  process.exit(1);
}
