// `mimo bench --scenario command`: the edge scenario of structured output. A smart-home assistant
// prompt (devices, allowed actions) stays in the prefix cache; 50 short spoken-style commands each
// become one JSON action under a JSON Schema (enum devices and actions, bounded numbers). Per
// command: the latency from the command's text in to complete, validated JSON out; tokens sampled
// vs forced; validity. The same requests run through llama.cpp (node-llama-cpp's JSON-schema
// grammar, when the package is installed), interleaved command by command, in the same run.
// With random weights the values chosen are meaningless; the work per command is real.
import { cpus, loadavg } from "node:os";
import { loadModel, type Model } from "../index.ts";

export const SMART_HOME_DEVICES = [
  "living_room_light",
  "kitchen_light",
  "bedroom_light",
  "thermostat",
  "front_door_lock",
  "garage_door",
  "tv",
  "speaker",
  "blinds",
  "coffee_machine",
] as const;

export const SMART_HOME_ACTIONS = ["turn_on", "turn_off", "set_level", "set_temperature", "lock", "unlock", "open", "close", "play", "pause"] as const;

/** The action schema: enum devices and actions, bounded numbers. */
export const commandSchema = {
  type: "object",
  properties: {
    device: { enum: SMART_HOME_DEVICES },
    action: { enum: SMART_HOME_ACTIONS },
    value: { type: "integer", minimum: 0, maximum: 100 },
  },
  required: ["device", "action", "value"],
  additionalProperties: false,
} as const;

export const systemPrompt =
  "You are the voice assistant of a smart home. Turn each spoken command into exactly one JSON action.\n" +
  `Devices: ${SMART_HOME_DEVICES.join(", ")}.\n` +
  `Actions: ${SMART_HOME_ACTIONS.join(", ")}.\n` +
  'Output: {"device": <device>, "action": <action>, "value": <integer 0-100; brightness, volume, position in percent, or temperature in degrees Celsius; 0 when not used>}.\n' +
  'Example: "make the kitchen brighter" -> {"device": "kitchen_light", "action": "set_level", "value": 80}\n';

export const commands = [
  "turn on the living room light",
  "switch off the kitchen light",
  "dim the bedroom light to thirty percent",
  "set the thermostat to twenty one degrees",
  "lock the front door",
  "unlock the front door please",
  "open the garage",
  "close the garage door",
  "turn the tv on",
  "pause the tv",
  "play some music on the speaker",
  "turn the speaker volume to forty",
  "open the blinds halfway",
  "close the blinds",
  "make me a coffee",
  "turn off the coffee machine",
  "it's too cold in here",
  "it's way too hot",
  "lights off in the bedroom",
  "brighten the living room",
  "kitchen lights to full",
  "I'm leaving, lock up",
  "good night",
  "set the heating to eighteen",
  "turn the temperature down to nineteen",
  "stop the music",
  "mute the tv",
  "volume up on the speaker",
  "let some light in",
  "shut the blinds all the way",
  "garage door up",
  "is the front door locked? lock it",
  "start the coffee",
  "living room lamp on at ten percent",
  "bedroom light on",
  "switch the kitchen light on",
  "thermostat to twenty five",
  "heat the house to twenty",
  "turn off everything in the living room",
  "play the news on the tv",
  "open the front door",
  "blinds to seventy percent",
  "speaker off",
  "tv off",
  "turn the bedroom light down",
  "coffee machine on",
  "cool it down to seventeen",
  "close the garage, it's raining",
  "put the living room light at sixty",
  "resume the music on the speaker",
];

/** Independent of the grammar engine: the schema's rules checked on the parsed value. */
export function isValidAction(v: unknown): boolean {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length !== 3 || !keys.includes("device") || !keys.includes("action") || !keys.includes("value")) return false;
  return (
    (SMART_HOME_DEVICES as readonly unknown[]).includes(o.device) &&
    (SMART_HOME_ACTIONS as readonly unknown[]).includes(o.action) &&
    Number.isInteger(o.value) &&
    (o.value as number) >= 0 &&
    (o.value as number) <= 100
  );
}

export function commandPrompt(command: string): string {
  return `${systemPrompt}\nCommand: "${command}"\nAction: `;
}

interface CommandResult {
  readonly ms: number;
  readonly valid: boolean;
  readonly sampled: number;
  readonly forced: number;
  readonly text: string;
  /** mimo only: where the time went. */
  readonly breakdown?: { promptTokens: number; firstPassMs: number; restMs: number; passes: number; headRows: number };
}

interface ScenarioEngine {
  readonly name: string;
  run(command: string): Promise<CommandResult>;
  dispose(): Promise<void>;
}

function parseValid(text: string): boolean {
  try {
    return isValidAction(JSON.parse(text));
  } catch {
    return false;
  }
}

const MAX_TOKENS = 128;

async function mimoScenario(path: string, threads: number): Promise<ScenarioEngine> {
  const model: Model = await loadModel(path, { threads, contextSize: 1024 });
  return {
    name: "mimo",
    async run(command) {
      const t0 = performance.now();
      const r = await model.complete(commandPrompt(command), { jsonSchema: commandSchema, temperature: 0, maxTokens: MAX_TOKENS });
      const valid = parseValid(r.text);
      const ms = performance.now() - t0;
      const st = r.stats;
      // One pass for the prompt's uncached rest (with the forced opening), then one per sampled token
      // but the first; every forced token rides along with a pass (or ends the text), and so does
      // a guessed token that sampling then picks.
      const passes = 1 + Math.max(0, st.generatedTokens - 1 - st.forwardPassesSaved - st.guessesKept);
      return {
        ms,
        valid,
        sampled: st.generatedTokens - st.forcedTokens,
        forced: st.forcedTokens,
        text: r.text,
        breakdown: { promptTokens: st.promptTokensEvaluated, firstPassMs: st.promptMs, restMs: st.generationMs, passes, headRows: st.outputHeadRows },
      };
    },
    dispose: () => model.dispose(),
  };
}

async function llamaCppScenario(path: string, threads: number): Promise<ScenarioEngine> {
  const { getLlama, LlamaCompletion } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error", progressLogs: false } as never);
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: 1024, threads, flashAttention: false });
  const completion = new LlamaCompletion({ contextSequence: ctx.getSequence() });
  // node-llama-cpp's JSON-schema grammar has no integer bounds: they are left out (and checked after).
  const grammar = await llama.createGrammarForJsonSchema({
    type: "object",
    properties: { device: { enum: [...SMART_HOME_DEVICES] }, action: { enum: [...SMART_HOME_ACTIONS] }, value: { type: "integer" } },
    required: ["device", "action", "value"],
    additionalProperties: false,
  } as never);
  return {
    name: "llama.cpp",
    async run(command) {
      const t0 = performance.now();
      const r = await completion.generateCompletionWithMeta(commandPrompt(command), { grammar, temperature: 0, maxTokens: MAX_TOKENS });
      const valid = parseValid(r.response);
      const ms = performance.now() - t0;
      return { ms, valid, sampled: model.tokenize(r.response).length, forced: 0, text: r.response };
    },
    async dispose() {
      await ctx.dispose();
      await model.dispose();
    },
  };
}

function pct(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export async function runCommandScenario(o: { model: string[]; threads: number; peer: boolean; commands?: number; pauseMs?: number; log?: (s: string) => void }): Promise<string> {
  const pauseMs = o.pauseMs ?? 0;
  if (!(Number.isFinite(pauseMs) && pauseMs >= 0)) throw new RangeError(`the pause before each command must be a number of ms >= 0, got ${pauseMs}`);
  const log = o.log ?? (() => {});
  const list = commands.slice(0, o.commands ?? commands.length);
  const lines: string[] = [];
  lines.push(
    `Edge scenario "command": ${list.length} commands, system prompt cached, JSON Schema of actions (enum devices/actions, integer 0-100), greedy, ${o.threads} thread(s), ` +
      (pauseMs > 0 ? `each command after ${pauseMs} ms idle (--pause).` : "commands back to back."),
  );
  lines.push(`CPU: ${cpus()[0]?.model ?? "?"} x${cpus().length}; load average at start ${loadavg()[0]!.toFixed(1)}; ${new Date().toISOString()}`);
  lines.push("");
  lines.push("| model | engine | p50 ms | p95 ms | mean ms | CPU p50 ms | tokens sampled / forced per command | valid | p50 vs llama.cpp |");
  lines.push("|---|---|---|---|---|---|---|---|---|");
  const breakdowns: string[] = [];
  for (const path of o.model) {
    const engines: ScenarioEngine[] = [await mimoScenario(path, o.threads)];
    if (o.peer) {
      try {
        engines.push(await llamaCppScenario(path, o.threads));
      } catch (e) {
        log(`llama.cpp peer unavailable: ${(e as Error).message}`);
      }
    }
    try {
      // Warm-up: one command each (prompt prefix into the cache, grammar compiled), not timed.
      for (const e of engines) await e.run(commands[0]!);
      const results = new Map<string, CommandResult[]>(engines.map((e) => [e.name, []]));
      const cpu = new Map<string, number[]>(engines.map((e) => [e.name, []]));
      for (const c of list) {
        for (const e of engines) {
          // A command after a pause (--pause): the threads (and on some VMs the vCPUs) have gone to sleep.
          if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
          // CPU time of the whole process (every thread) over the command: a figure that shared
          // machines disturb less than wall-clock time (waiting for a core is not counted).
          const c0 = process.cpuUsage();
          const r = await e.run(c);
          const used = process.cpuUsage(c0);
          cpu.get(e.name)!.push((used.user + used.system) / 1000);
          results.get(e.name)!.push(r);
          log(`${path.split("/").pop()} ${e.name.padEnd(9)} ${r.ms.toFixed(1).padStart(7)} ms ${r.valid ? "valid  " : "INVALID"} ${r.text}`);
        }
      }
      const p50 = new Map<string, number>();
      for (const e of engines) {
        const rs = results.get(e.name)!;
        const ms = rs.map((r) => r.ms).sort((a, b) => a - b);
        p50.set(e.name, pct(ms, 0.5));
      }
      for (const e of engines) {
        const rs = results.get(e.name)!;
        const ms = rs.map((r) => r.ms).sort((a, b) => a - b);
        const cpuMs = cpu.get(e.name)!.sort((a, b) => a - b);
        const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
        const sampled = rs.reduce((a, r) => a + r.sampled, 0) / rs.length;
        const forced = rs.reduce((a, r) => a + r.forced, 0) / rs.length;
        const valid = rs.filter((r) => r.valid).length / rs.length;
        const peer = p50.get("llama.cpp");
        const ratio = peer !== undefined ? `${(peer / p50.get(e.name)!).toFixed(2)}x` : "-";
        const bs = rs.flatMap((r) => (r.breakdown ? [{ ...r.breakdown, ms: r.ms }] : []));
        if (bs.length > 0) {
          const mean = (f: (b: (typeof bs)[number]) => number) => bs.reduce((a, b) => a + f(b), 0) / bs.length;
          const first = mean((b) => b.firstPassMs);
          const rest = mean((b) => b.restMs);
          breakdowns.push(
            `| ${path.split("/").pop()} | ${mean((b) => b.promptTokens).toFixed(1)} | ${first.toFixed(1)} | ${mean((b) => b.passes - 1).toFixed(1)} | ${rest.toFixed(1)} | ${mean((b) => b.headRows / b.passes).toFixed(0)} | ${mean((b) => b.ms - b.firstPassMs - b.restMs).toFixed(1)} |`,
          );
        }
        lines.push(
          `| ${path.split("/").pop()} | ${e.name} | ${pct(ms, 0.5).toFixed(1)} | ${pct(ms, 0.95).toFixed(1)} | ${mean.toFixed(1)} | ${pct(cpuMs, 0.5).toFixed(1)} | ${sampled.toFixed(1)} / ${forced.toFixed(1)}${e.name === "llama.cpp" ? " (all sampled)" : ""} | ${(valid * 100).toFixed(0)}% | ${e.name === "llama.cpp" ? "1.00x" : ratio} |`,
        );
      }
    } finally {
      for (const e of engines) await e.dispose();
    }
  }
  if (breakdowns.length > 0) {
    lines.push("");
    lines.push("Where mimo's time goes (mean per command): the first forward pass carries the prompt's uncached rest and the tokens the grammar forces before the first sample; each later pass carries one sampled token and the forced tokens after it. Output-head rows per pass: the rows of the output matrix computed for the sampled tokens' logits (only the row groups of the tokens the grammar allows, when they are few).");
    lines.push("");
    lines.push("| model | prompt tokens evaluated | first pass ms | later passes | later passes ms | output-head rows per pass | rest ms (tokenize, parse, check) |");
    lines.push("|---|---|---|---|---|---|---|");
    for (const b of breakdowns) lines.push(b);
  }
  lines.push("");
  lines.push("Latency: from the command's text to parsed, validated JSON (tokenize, prefill of the uncached suffix, constrained decode, parse, check). llama.cpp: node-llama-cpp's JSON-schema grammar (no integer bounds there; validity checks them). CPU: process CPU time per command, every thread (spin-waiting threads count). Random weights: the chosen values are meaningless, the work is real.");
  return lines.join("\n");
}
