// What the `mimo` command says to a user who gets something wrong or stops it: each message's text
// and exit code, as a user sees them (the real CLI in a child process).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "../helpers/temp-dir.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const entry = join(root, "src/cli/entry.ts");
const dir = tempDir("mimo-messages-");

function mimo(...args: string[]) {
  const r = spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("--version prints the package's version", () => {
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  for (const flag of ["--version", "-V"]) {
    const r = mimo(flag);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
  }
});

test("a usage error is one mimo: error line and a pointer to the command's --help, exit code 1", () => {
  const cases: [string[], string, string][] = [
    [["run", "x", "--bogus"], "mimo: error: unknown option '--bogus'", "(see 'mimo run --help' for usage)"],
    [["info"], "mimo: error: missing required argument 'file'", "(see 'mimo info --help' for usage)"],
    [["run", "x", "-n", "many"], `mimo: error: option '-n, --n-predict <n>' argument 'many' is invalid. --n-predict must be an integer, got "many"`, "(see 'mimo run --help' for usage)"],
    [["frobnicate"], "mimo: error: unknown command 'frobnicate'", "(see 'mimo --help' for usage)"],
  ];
  for (const [args, error, hint] of cases) {
    const r = mimo(...args);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(r.stdout, "");
    assert.deepEqual(r.stderr.trimEnd().split("\n"), [error, hint], args.join(" "));
  }
});

test("option errors name the flag the user typed, not the library's option", () => {
  const cases: [string[], string][] = [
    [["-n", "-5"], "mimo: error: -n must be >= 0, got -5\n"],
    [["--top-p", "2"], "mimo: error: --top-p must be between 0 and 1, got 2\n"],
    [["--min-p", "-1"], "mimo: error: --min-p must be between 0 and 1, got -1\n"],
    [["-c", "0"], "mimo: error: -c must be a positive integer, got 0\n"],
    [["-t", "0"], "mimo: error: -t must be an integer from 1 to 64, got 0\n"],
  ];
  for (const [flags, message] of cases) {
    const r = mimo("run", "x", "-q", ...flags);
    assert.equal(r.code, 1, flags.join(" "));
    assert.equal(r.stderr, message, flags.join(" "));
  }
});

test("-c above the model's trained context warns and goes on", () => {
  const r = mimo("run", "Once", "-c", "1024", "-n", "4", "--temp", "0", "-q");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "mimo: warning: -c 1024 is above the context this model was trained on (512 tokens); text past position 512 is usually poor\n");
  assert.ok(r.stdout.startsWith("Once upon a time"), r.stdout);
});

test("a -c too large for memory names -c and the size that fits, and advises threads only when they would help", () => {
  // stories260K: 4 KV heads, so 4 threads already split the cache as far as it goes.
  const r = mimo("run", "x", "-c", "100000000", "-t", "4", "-q");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^mimo: error: a KV cache of 1 x 100000000 positions needs [\d.]+ GiB on one thread, which has [\d.]+ GiB of its 4 GiB WebAssembly memory left; use a smaller -c \(at most \d+ positions fit per sequence\)\n$/);
  // On 1 thread a cache that 2 threads can hold: the advice names them.
  const one = mimo("run", "x", "-c", "8000000", "-t", "1", "-q");
  assert.equal(one.code, 1);
  assert.match(one.stderr, /use a smaller -c \(at most \d+ positions fit per sequence\) or 2 threads \(the cache is split by KV head across the threads\)\n$/);
});

test("Ctrl-C during generation prints the statistics of what was generated and exits 130", async () => {
  // -c 4096 with --ignore-eos keeps stories260K generating until it is interrupted.
  const child = spawn(process.execPath, [entry, "run", "Once", "-c", "4096", "-n", "100000", "--ignore-eos", "--temp", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => {
    let sent = false;
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      // Interrupt once the first generated words have arrived (no fixed delay: under load they come late).
      if (!sent && stdout.startsWith("Once upon a time")) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    child.on("exit", (c) => resolve(c));
  });
  assert.equal(code, 130, stderr);
  assert.ok(stdout.startsWith("Once upon a time"), stdout.slice(0, 80));
  const m = /\nload [\d.]+ ms \| prompt 2 tok \| first token [\d.]+ ms \| generated (\d+) tok in [\d.]+ ms \([\d.]+ tok\/s\) \| finish: interrupted \(Ctrl-C\)\n$/.exec(stderr);
  assert.ok(m, stderr);
  assert.ok(Number(m[1]) >= 1);
});

test("a model over 100 MB shows a load progress bar on a terminal, and nothing when stderr is piped", (t) => {
  const big = join(dir, "big.gguf");
  // qwen2-0.5b's 151936 x 896 embedding as Q8_0 and one layer: over 150 MB.
  const synth = mimo("synth", "--preset", "qwen2-0.5b", "--type", "Q8_0", "--layers", "1", "-o", big);
  assert.equal(synth.code, 0, synth.stderr);
  const piped = mimo("run", "x", "-m", big, "-n", "1", "-q");
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(piped.stderr, "");
  const script = spawnSync("script", ["--version"], { encoding: "utf8" });
  if (script.status !== 0) {
    t.skip("no `script` (util-linux) to give the CLI a terminal");
    return;
  }
  // `script` runs the command on a pseudo-terminal and copies what it wrote.
  const cmd = [process.execPath, entry, "run", "x", "-m", big, "-n", "1", "-q"].map((a) => `'${a}'`).join(" ");
  const tty = spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", timeout: 120_000, env: { ...process.env, COLUMNS: "100" } });
  assert.equal(tty.status, 0, tty.stdout);
  assert.match(tty.stdout, /\rloading big\.gguf \[[#.]+\]\s+\d+% [\d.]+ [kMG]?B\/1\d\d\.\d MB/);
  assert.match(tty.stdout, /\rloading big\.gguf \[#+\] 100% (1\d\d\.\d MB)\/\1/);
  assert.match(tty.stdout, /\r\x1b\[K/); // the bar's line is cleared before the text
});
