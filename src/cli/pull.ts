// `mimo pull`, `mimo list`, `mimo rm`: the model cache from the command line, and the model
// argument of the other commands (a file, or an hf: reference / URL pulled on first use).
import type { Command } from "commander";
import { listCached, modelCacheDir, pullModel, removeCached, resolveModel, HF_SYNTAX, type HubOptions, type PullResult } from "../index.ts";
import { formatBytes, progressBar, type ProgressBar } from "./progress.ts";

/** Hub options with a download progress bar on a terminal. */
function withProgress(o: HubOptions = {}): { opts: HubOptions; done: () => void } {
  let bar: ProgressBar | undefined;
  let label = "";
  const opts: HubOptions = {
    ...o,
    onProgress: (p) => {
      if (!bar || label !== p.file) {
        bar?.done();
        label = p.file;
        bar = progressBar(`pulling ${p.file.replace(/^.*\//, "")}`, p.resumedFrom);
      }
      bar?.update(p.bytes, p.total);
    },
  };
  return { opts, done: () => bar?.done() };
}

function pulledLine(p: PullResult, ms: number): string {
  if (!p.downloaded) return `${p.ref}: up to date (${formatBytes(p.size)}, sha256 ${p.sha256.slice(0, 12)}...) at ${p.path}\n`;
  const resumed = p.resumedFrom > 0 ? `, resumed at ${formatBytes(p.resumedFrom)}` : "";
  return `pulled ${p.ref} (${formatBytes(p.size)} in ${(ms / 1000).toFixed(1)} s${resumed}, sha256 ${p.sha256.slice(0, 12)}... verified) to ${p.path}\n`;
}

/**
 * The model argument of run (and the other commands that load one): a path as it is, or an hf:
 * reference / URL from the cache, pulled with a progress bar on first use. `offline` never touches
 * the network.
 */
export async function modelPath(model: string, o: { offline?: boolean; quiet?: boolean }): Promise<string> {
  const { opts, done } = withProgress({ offline: o.offline || undefined });
  const t0 = performance.now();
  try {
    const r = await resolveModel(model, opts);
    if (r.pulled && !o.quiet) process.stderr.write(pulledLine(r.pulled, performance.now() - t0));
    return r.path;
  } finally {
    done();
  }
}

export function registerPullCommands(program: Command): void {
  program
    .command("pull")
    .description("download a model into the cache (resumable, sha256-verified)")
    .argument("<model>", `${HF_SYNTAX} (e.g. hf:Qwen/Qwen2-0.5B-Instruct-GGUF:Q4_0) or an http(s) URL`)
    .addHelpText("after", "\nThe cache is $MIMO_MODELS, else the platform's cache folder (`mimo list` shows it).\nHF_TOKEN: token for gated and private repositories; HF_ENDPOINT: another hub (a mirror).")
    .action(async (model: string) => {
      const { opts, done } = withProgress();
      const t0 = performance.now();
      let p: PullResult;
      try {
        p = await pullModel(model, opts);
      } finally {
        done();
      }
      process.stderr.write(pulledLine(p, performance.now() - t0));
    });

  program
    .command("list")
    .alias("ls")
    .description("list the models in the cache")
    .action(async () => {
      const cache = modelCacheDir();
      const models = await listCached(cache);
      process.stdout.write(`cache: ${cache}\n`);
      if (models.length === 0) {
        process.stdout.write("no models yet: mimo pull hf:OWNER/REPO:QUANT\n");
        return;
      }
      const width = Math.max(...models.map((m) => m.ref.length));
      for (const m of models) {
        const what = m.partial
          ? `${formatBytes(m.partial.bytes)}${m.partial.total ? ` of ${formatBytes(m.partial.total)}` : ""}, unfinished (mimo pull resumes it)`
          : `${formatBytes(m.size)}${m.info ? `  ${m.info.pulledAt.slice(0, 10)}  sha256 ${m.info.sha256.slice(0, 12)}` : ""}`;
        process.stdout.write(`${m.ref.padEnd(width)}  ${what}\n`);
      }
    });

  program
    .command("rm")
    .description("remove models from the cache")
    .argument("<model...>", "as `mimo list` shows them, or as pulled (hf:OWNER/REPO:QUANT)")
    .action(async (refs: string[]) => {
      const cache = modelCacheDir();
      for (const ref of refs) {
        for (const m of await removeCached(cache, ref)) {
          process.stdout.write(`removed ${m.ref} (${formatBytes(m.size)}${m.partial ? ", unfinished" : ""})\n`);
        }
      }
    });
}
