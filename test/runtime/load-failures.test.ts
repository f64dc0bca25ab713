// A failed load releases what it opened (file handles, compute threads), and a disposed model
// leaves no thread behind: what lets a CLI exit without joining a half-stopped worker.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadModel, defaultModelPath, ModelFileError } from "../../src/index.ts";
import { removeTensor, replaceTensor, scanGGUF, setKv, tensorIndex, tensorInfoBytes, val } from "../../fuzz/gguf-edit.ts";
import { tempDir } from "../helpers/temp-dir.ts";

const dir = tempDir("mimo-loadfail-");
const seed = new Uint8Array(readFileSync(defaultModelPath()));
const layout = scanGGUF(seed);

const fds = () => readdirSync("/proc/self/fd").length;
const threads = () => readdirSync("/proc/self/task").length;
const linux = process.platform === "linux";

function write(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

// Failures at every stage of a load: the header, the hyper-parameters, the tokenizer, the weights.
const broken = [
  write("truncated.gguf", seed.slice(0, 5000)),
  write("arch.gguf", setKv(seed, layout, "general.architecture", val.str("rwkv6"))),
  write("tokens.gguf", setKv(seed, layout, "tokenizer.ggml.model", val.str("t5"))),
  write("no-tensor.gguf", removeTensor(seed, layout, tensorIndex(layout, "blk.4.ffn_down.weight"))),
];

async function warmUp(backend: "reference" | "wasm") {
  const m = await loadModel(defaultModelPath(), { backend, threads: 2 });
  await m.dispose();
}

test("failed loads close their file and stop their threads", { skip: !linux }, async () => {
  for (const backend of ["reference", "wasm"] as const) {
    await warmUp(backend); // thread pools started lazily (libuv, V8) are not counted as leaks
    const before = { fds: fds(), threads: threads() };
    for (let i = 0; i < 3; i++) {
      for (const path of broken) {
        await assert.rejects(loadModel(path, { backend, threads: 2 }), (e: Error) => e instanceof ModelFileError && e.message.startsWith(`${path}: `));
      }
    }
    assert.deepEqual({ fds: fds(), threads: threads() }, before, backend);
  }
});

test("dispose resolves once the wasm backend's threads have exited", { skip: !linux }, async () => {
  await warmUp("wasm");
  const before = threads();
  const model = await loadModel(defaultModelPath(), { backend: "wasm", threads: 3 });
  assert.ok(threads() >= before + 2, "the model runs two worker threads");
  await model.complete("Once", { temperature: 0, maxTokens: 4 });
  await model.dispose();
  assert.equal(threads(), before);
});

test("a load that fails after the worker threads started stops them", { skip: !linux }, async () => {
  await warmUp("wasm");
  const before = { fds: fds(), threads: threads() };
  // The last layer's ffn_down has its dimensions swapped (same bytes): the header is fine, the
  // threads start, and the weight loader refuses the shape.
  const i = tensorIndex(layout, "blk.4.ffn_down.weight");
  const t = layout.tensors[i]!;
  const path = write("swapped.gguf", replaceTensor(seed, layout, i, tensorInfoBytes(t.name, [t.dims[1]!, t.dims[0]!], t.type, t.offset)));
  await assert.rejects(loadModel(path, { backend: "wasm", threads: 3 }), ModelFileError);
  assert.deepEqual({ fds: fds(), threads: threads() }, before);
});
