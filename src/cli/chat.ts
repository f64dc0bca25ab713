// `mimo chat`: an interactive conversation in the terminal (or over piped stdin, one message per line).
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { loadModel, defaultModelPath, ChatSession, jsonSchemaToGbnf } from "../index.ts";
import { modelPath } from "./pull.ts";
import { grammarFlags, int, num, samplingOptions } from "./options.ts";

interface ChatCliOptions {
  model?: string;
  system?: string;
  nPredict: number;
  temp: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  seed?: number;
  ctxSize?: number;
  threads?: number;
  backend: string;
  stats: boolean;
  grammar?: string;
  jsonSchema?: string;
}

const HELP = `commands: /reset (forget the conversation), /system <text> (new system prompt, conversation reset), /exit
end a line with \\ to continue the message on the next line; Ctrl-C stops an answer, Ctrl-D exits`;

export function registerChatCommand(program: Command): void {
  samplingOptions(program
    .command("chat")
    .description("talk with a model: streamed answers, history, /reset and /system; reads one message per line from piped stdin")
    .option("-m, --model <file>", "GGUF model file or hf:OWNER/REPO[:QUANT] (pulled on first use; default: the bundled stories260K)")
    .option("--system <text>", "system prompt")
    .option("-n, --n-predict <n>", "most tokens per answer", int("--n-predict"), 512))
    .option("-s, --seed <n>", "random seed (same seed, same answers)", int("--seed"))
    .option("-c, --ctx-size <n>", "context size in tokens", int("--ctx-size"))
    .option("-t, --threads <n>", "compute threads (default: chosen for the model's size, at most the number of cores)", int("--threads"))
    .option("--backend <name>", "wasm (SIMD kernels on threads) or reference (plain TypeScript)", "wasm")
    .option("--grammar <file>", "constrain every answer to this GBNF grammar (llama.cpp's format)")
    .option("-j, --json-schema <file>", "constrain every answer to JSON valid under this JSON Schema file")
    .option("--no-stats", "no tok/s line after each answer")
    .action(chatCommand);
}

export async function chatCommand(o: ChatCliOptions): Promise<void> {
  if (o.backend !== "wasm" && o.backend !== "reference") throw new Error(`--backend must be "wasm" or "reference", got "${o.backend}"`);
  const constraint = grammarFlags(o);
  const interactive = process.stdin.isTTY === true;
  const model = await loadModel(o.model === undefined ? defaultModelPath() : await modelPath(o.model, {}), {
    contextSize: o.ctxSize,
    threads: o.threads,
    backend: o.backend,
    onWarning: (m) => process.stderr.write(`mimo: warning: ${m}\n`),
  });
  void model.chatTemplate; // the template warning (if any) before the first prompt
  // A bad grammar or schema is an error now, not at the first message.
  if (constraint.grammar !== undefined || constraint.jsonSchema !== undefined) {
    try {
      model.compileGrammar(constraint.grammar ?? jsonSchemaToGbnf(constraint.jsonSchema));
    } catch (e) {
      await model.dispose();
      throw new Error(`${constraint.grammar !== undefined ? `--grammar ${o.grammar}` : `--json-schema ${o.jsonSchema}`}: ${(e as Error).message}`);
    }
  }
  const session = new ChatSession(model, { system: o.system });
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive, historySize: 200 });
  let answering: AbortController | undefined;
  let closed = false;
  const interrupt = () => {
    if (answering) answering.abort(new Error("interrupted"));
    else if (interactive) {
      process.stdout.write("^C (Ctrl-D or /exit quits)\n");
      rl.prompt();
    } else rl.close();
  };
  rl.on("SIGINT", interrupt);
  process.on("SIGINT", interrupt);
  rl.on("close", () => (closed = true));
  if (interactive) {
    process.stdout.write(`mimo chat: ${model.config.name ?? "model"} (${model.chatTemplate.name === "model" ? "its chat template" : `built-in ${model.chatTemplate.name} template`}); /help for commands\n`);
  }
  rl.setPrompt("> ");
  try {
    let pending = "";
    if (interactive) rl.prompt();
    for await (const line of rl) {
      if (line.endsWith("\\")) {
        pending += line.slice(0, -1) + "\n";
        if (interactive) process.stdout.write("… ");
        continue;
      }
      const text = pending + line;
      pending = "";
      const trimmed = text.trim();
      if (trimmed === "") {
        if (interactive) rl.prompt();
        continue;
      }
      if (trimmed.startsWith("/") && !trimmed.includes("\n")) {
        const [cmd, ...rest] = trimmed.split(/\s+/);
        if (cmd === "/exit" || cmd === "/quit") break;
        if (cmd === "/help") process.stdout.write(HELP + "\n");
        else if (cmd === "/reset") {
          session.reset();
          process.stdout.write("[conversation reset]\n");
        } else if (cmd === "/system") {
          const sys = trimmed.slice("/system".length).trim();
          session.reset(sys === "" ? null : sys);
          process.stdout.write(sys === "" ? "[system prompt removed; conversation reset]\n" : "[system prompt set; conversation reset]\n");
        } else process.stdout.write(`unknown command ${cmd}\n${HELP}\n`);
        if (interactive) rl.prompt();
        continue;
      }
      answering = new AbortController();
      const dropped = session.droppedTurns;
      // Piped input keeps arriving while we answer: pause the reader so lines wait their turn.
      rl.pause();
      try {
        const it = session.send(text, {
          maxTokens: o.nPredict,
          temperature: o.temp,
          topK: o.topK,
          topP: o.topP,
          minP: o.minP,
          repeatPenalty: o.repeatPenalty,
          seed: o.seed,
          signal: answering.signal,
          ...constraint,
        });
        for (;;) {
          const step = await it.next();
          if (step.done) {
            process.stdout.write("\n");
            const s = step.value.stats;
            if (session.droppedTurns > dropped) process.stderr.write(`[the ${session.droppedTurns - dropped === 1 ? "oldest turn was" : `${session.droppedTurns - dropped} oldest turns were`} dropped to fit the context]\n`);
            if (o.stats) {
              process.stderr.write(
                `[${s.generatedTokens} tok, ${s.generationTokensPerSecond.toFixed(1)} tok/s; prompt ${s.promptTokensEvaluated} new of ${s.promptTokens} tok, first token ${s.timeToFirstTokenMs.toFixed(0)} ms${step.value.finishReason === "stop" ? "" : `; stopped: ${step.value.finishReason}`}]\n`,
              );
            }
            break;
          }
          process.stdout.write(step.value.text);
        }
      } catch (e) {
        if (!answering.signal.aborted) {
          // A message that cannot be answered (too long for the context ...) ends that turn, not the chat.
          process.stderr.write(`mimo: error: ${e instanceof Error ? e.message : String(e)}\n`);
          if (!interactive) process.exitCode = 1;
          continue;
        }
        process.stdout.write("\n[answer stopped]\n");
        // A stopped answer is not kept: the conversation goes on from the question before it.
      } finally {
        answering = undefined;
        if (!closed) rl.resume();
      }
      if (interactive) rl.prompt();
    }
  } finally {
    process.off("SIGINT", interrupt);
    rl.close();
    await model.dispose();
  }
}
