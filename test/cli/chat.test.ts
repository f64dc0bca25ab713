// `mimo chat` driven through piped stdin, as a script or another program would: a two-turn
// conversation, /reset, and SIGINT (Ctrl-C) in the middle of an answer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const entry = fileURLToPath(new URL("../../src/cli/entry.ts", import.meta.url));

/** A running `mimo chat`; `waitFor` resolves when its stdout so far matches. */
function startChat(args: string[]) {
  const child = spawn(process.execPath, [entry, "chat", "-t", "1", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) if (w.re.test(out)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
  };
  child.stdout.on("data", (d) => ((out += d), check()));
  child.stderr.on("data", (d) => ((err += d), check()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  return {
    child,
    get out() {
      return out;
    },
    get err() {
      return err;
    },
    waitFor(re: RegExp, ms = 60_000) {
      return new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stdout: ${out}\nstderr: ${err}`)), ms);
        waiters.push({ re, resolve: () => (clearTimeout(t), resolve()) });
        check();
      });
    },
    exited,
  };
}

test("mimo chat over piped stdin: two turns reuse the cache, /reset starts over with the same answer", async () => {
  const c = startChat(["--temp", "0", "-n", "12"]);
  c.child.stdin.write("Tell me a story.\nAnd then?\n/reset\nTell me a story.\n");
  c.child.stdin.end();
  assert.equal(await c.exited, 0, c.err);
  const stats = [...c.err.matchAll(/\[(\d+) tok, [\d.]+ tok\/s; prompt (\d+) new of (\d+) tok/g)].map((m) => m.slice(1).map(Number));
  assert.equal(stats.length, 3, c.err);
  assert.equal(stats[0]![1], stats[0]![2], "first turn: all new");
  assert.ok(stats[1]![1]! < stats[1]![2]! - stats[0]![2]!, `second turn prefilled only its new tokens: ${stats[1]}`);
  const answers = c.out.split("\n[conversation reset]\n");
  assert.equal(answers.length, 2, c.out);
  const [before, after] = answers as [string, string];
  const firstAnswer = before.split("\n")[0]!;
  assert.ok(firstAnswer.length > 0);
  assert.equal(after.split("\n")[0], firstAnswer);
  assert.match(c.err, /no chat template; using the built-in chatml template/);
});

test("mimo chat: Ctrl-C (SIGINT) stops the current answer and the chat goes on; end of input exits", async () => {
  // 4,000 tokens: a second or more even on a fast machine, so the interrupt lands mid-answer (at
  // ~2,000 tok/s a 400-token answer could end before the signal arrived).
  const c = startChat(["--temp", "0", "-n", "4000", "-c", "8192"]);
  c.child.stdin.write("Tell me a long story.\n");
  // Some of the answer has streamed: interrupt it.
  try {
    await c.waitFor(/[^\n]{30}/);
    c.child.kill("SIGINT");
    await c.waitFor(/\[answer stopped\]/);
    c.child.stdin.write("Tell me a story.\n");
    c.child.stdin.end();
    assert.equal(await c.exited, 0, c.err);
  } finally {
    c.child.kill("SIGKILL");
  }
  const stats = [...c.err.matchAll(/\[(\d+) tok/g)];
  assert.equal(stats.length, 1, "only the second answer completed");
  assert.ok(c.out.indexOf("[answer stopped]") < c.out.lastIndexOf("\n"));
});

test("mimo chat: /system sets a system prompt and resets; unknown commands list the commands", async () => {
  const c = startChat(["--temp", "0", "-n", "4"]);
  c.child.stdin.write("/system You are a poet.\n/nope\n/help\n");
  c.child.stdin.end();
  assert.equal(await c.exited, 0, c.err);
  assert.match(c.out, /\[system prompt set; conversation reset\]/);
  assert.match(c.out, /unknown command \/nope\ncommands: \/reset/);
});

test("mimo info shows the chat template (or which built-in one chat uses)", async () => {
  const { execFile } = await import("node:child_process");
  const { promisify } = await import("node:util");
  const { storiesWithTemplate } = await import("../server/helpers.ts");
  const { defaultModelPath } = await import("../../src/index.ts");
  const run = async (path: string) => (await promisify(execFile)(process.execPath, [entry, "info", path])).stdout;
  assert.match(await run(defaultModelPath()), /^chat template: none in the file \(chat uses the built-in chatml template\)$/m);
  const out = await run(await storiesWithTemplate("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"));
  assert.match(out, /^chat template \(\d+ chars, tokenizer\.chat_template\):\n  \| \{% for m in messages %\}<\|im_start\|>\{\{ m\.role \}\}\n  \| \{\{ m\.content \}\}<\|im_end\|>\n/m);
  assert.match(out, /tokenizer\.chat_template = \(\d+ chars, shown above\)/);
});
