import { readFileSync } from "node:fs";
import { Command } from "commander";
import { int, num, samplingOptions } from "./options.ts";
import { reportUsageErrorsBriefly } from "./errors.ts";
import { runCommand } from "./run.ts";
import { infoCommand } from "./info.ts";
import { convertCommand } from "./convert.ts";
import { registerSynthCommand } from "./synth.ts";
import { registerBenchCommand } from "./bench.ts";
import { registerPerplexityCommand } from "./perplexity.ts";
import { registerPullCommands } from "./pull.ts";
import { registerQuantizeCommands } from "./quantize.ts";
import { registerPruneCommand } from "./prune.ts";
import { registerChatCommand } from "./chat.ts";
import { registerServeCommand } from "./serve.ts";

function collect(v: string, acc: string[]): string[] {
  return [...acc, v];
}

/** The package's version (package.json sits two levels above src/cli and dist/cli). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

export function buildCli(): Command {
  const program = new Command();
  program
    .name("mimo")
    .description("Speed-first on-device LLM inference: run GGUF models locally, no network round trip.")
    .version(packageVersion(), "-V, --version", "print mimo's version");

  samplingOptions(program
    .command("run")
    .description("generate text from a prompt, streamed to stdout (timings on stderr)")
    .argument("[prompt]", 'the prompt ("" starts from BOS alone)', "")
    .option("-m, --model <file|ref>", "GGUF model file, or hf:OWNER/REPO[:QUANT] or a URL, pulled on first use (default: the bundled stories260K)")
    .option("--offline", "never use the network: an hf: model must already be in the cache")
    .option("-n, --n-predict <n>", "tokens to generate", int("--n-predict"), 256))
    .option("--repeat-last-n <n>", "how many recent tokens the penalties consider", int("--repeat-last-n"), 64)
    .option("--presence-penalty <p>", "presence penalty", num("--presence-penalty"), 0)
    .option("--frequency-penalty <p>", "frequency penalty", num("--frequency-penalty"), 0)
    .option("-s, --seed <n>", "random seed (same seed, same output)", int("--seed"))
    .option("-c, --ctx-size <n>", "context size in tokens", int("--ctx-size"))
    .option("-t, --threads <n>", "compute threads (default: chosen for the model's size, at most the number of cores)", int("--threads"))
    .option("--backend <name>", "wasm (SIMD kernels on threads; the default) or reference (plain TypeScript; the default where the wasm kernels cannot run the model)")
    .option("--stop <text>", "stop before this string (repeatable)", collect, [])
    .option("--ignore-eos", "keep generating past end-of-generation tokens")
    .option("--special", "parse special-token text in the prompt")
    .option("--grammar <file>", "constrain the output to this GBNF grammar (llama.cpp's format)")
    .option("-j, --json-schema <file>", "constrain the output to JSON valid under this JSON Schema file")
    .option("--no-jump-forward", "evaluate grammar-forced tokens one step each (same output, slower)")
    .option("-q, --quiet", "no timings on stderr")
    .option("--spec <method>", "speculative decoding: mtp (MiMo's MTP layer), ngram (prompt lookup) or draft:FILE (a draft model)")
    .option("--draft-max <n>", "most draft tokens per step (default: 1 for mtp, 8 otherwise)", int("--draft-max"))
    .option("--draft-min <n>", "fewest draft tokens worth verifying (default 1)", int("--draft-min"))
    .option("--draft-p-min <p>", "stop a draft at a token the proposer gives less than p (mtp, draft; default 0.75)", num("--draft-p-min"))
    .action(runCommand);

  program
    .command("info")
    .description("inspect a GGUF file: architecture, hyper-parameters, tokenizer, metadata and tensor table")
    .argument("<file>", "GGUF file")
    .option("--all-metadata", "print every metadata value (arrays shortened)")
    .action(infoCommand);

  program
    .command("convert")
    .description(
      "convert a Hugging Face model folder (config.json, safetensors, tokenizer.json; Llama, Qwen2, Qwen3, MiMo) " +
        "or a llama2.c checkpoint (.bin, with -t tokenizer.bin) to GGUF",
    )
    .argument("<input>", "Hugging Face model folder (or a file in it), or a llama2.c checkpoint")
    .requiredOption("-o, --output <file>", "GGUF file to write")
    .option("--outtype <type>", "type of the weight matrices: auto (the checkpoint's BF16/F16, else F16), f32, f16, bf16, a quant type (q8_0, q4_k, ...), or a file type with llama.cpp's mixes (q4_k_m, q5_k_m, ...)", "auto")
    .option("-t, --tokenizer <file>", "llama2.c tokenizer.bin (llama2.c checkpoints only)")
    .option("--name <name>", "general.name to record")
    .option("-f, --force", "overwrite the output file if it exists")
    .action(convertCommand);

  registerSynthCommand(program);
  registerBenchCommand(program);
  registerPerplexityCommand(program);
  registerPullCommands(program);
  registerQuantizeCommands(program);
  registerPruneCommand(program);
  registerChatCommand(program);
  registerServeCommand(program);
  reportUsageErrorsBriefly(program);
  return program;
}
