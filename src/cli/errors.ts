import type { Command } from "commander";

import { oneLine } from "../errors/model-file.ts";
import { terminateAllThreads } from "../platform/threads.ts";

/** How long exiting waits for compute threads to stop before giving up on them. */
const THREAD_STOP_TIMEOUT_MS = 5_000;

/**
 * Stops every compute thread, then exits. process.exit() while a worker thread is still running
 * or being torn down makes Node join it mid-teardown, which can deadlock: every exit goes here.
 */
export async function exitProcess(code: number): Promise<never> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    terminateAllThreads(),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, THREAD_STOP_TIMEOUT_MS);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
  process.exit(code);
}

/** Prints one clear line for an error and exits non-zero; stack traces only with MIMO_DEBUG=1. */
export async function exitWithError(e: unknown): Promise<never> {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`mimo: error: ${oneLine(msg)}\n`);
  if (process.env.MIMO_DEBUG && e instanceof Error && e.stack) process.stderr.write(e.stack + "\n");
  return exitProcess(1);
}

/** A one-line warning on stderr (the command goes on). */
export function warn(msg: string): void {
  process.stderr.write(`mimo: warning: ${msg}\n`);
}

/**
 * Usage errors (unknown option or command, missing or invalid argument) as the other errors are:
 * one `mimo: error: ...` line, then where to find the usage instead of the whole help text. Applied
 * to every command of the tree, including those added after `program` was configured.
 */
export function reportUsageErrorsBriefly(cmd: Command, path = cmd.name()): void {
  cmd.configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, "mimo: error: ")) });
  cmd.showHelpAfterError(`(see '${path} --help' for usage)`);
  for (const sub of cmd.commands) reportUsageErrorsBriefly(sub, `${path} ${sub.name()}`);
}

/**
 * The library validates its own options (RangeError "maxTokens must be >= 0, got -1"); the user
 * typed flags. Rewrites such a message in the user's terms, each option name replaced by its flag.
 */
export function inFlagTerms(e: unknown, flags: Readonly<Record<string, string>>): unknown {
  if (!(e instanceof RangeError)) return e;
  let msg = e.message;
  for (const [option, flag] of Object.entries(flags)) {
    // A camelCase name is never prose; a plain word ("threads") is an option name only where the
    // message starts with it.
    const where = /[A-Z]/.test(option) ? new RegExp(`\\b${option}\\b`, "g") : new RegExp(`^${option}\\b`);
    msg = msg.replace(where, flag);
  }
  return msg === e.message ? e : new RangeError(msg, { cause: e });
}
