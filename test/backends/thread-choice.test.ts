// The default thread count: as many threads as pay for themselves on the model (no timing here:
// the rule's output for given sizes, and what loadModel does with it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadModel, defaultModelPath, OpProfile } from "../../src/index.ts";
import { openGGUFFile } from "../../src/platform/node-file.ts";
import { decodeWeightBytes } from "../../src/model/weights.ts";
import { threadsForWork } from "../../src/backends/wasm/thread-choice.ts";

const MB = 1e6;

test("the rule: 1 thread for tiny models, more as the work per step grows, never more than the cores", () => {
  // stories260K (1 MB): 1 thread whatever the cores (measured: 1 thread about 3x faster than 2).
  for (const cores of [1, 2, 4, 8, 64]) assert.equal(threadsForWork({ weightBytes: 1.04 * MB, layers: 5 }, cores), 1, `${cores} cores`);
  // The stories15M shape in Q4_0 (8.6 MB) and Q8_0 (16 MB) and the stories42M shape in Q4_0 (23 MB)
  // stay on 1 (measured quiet: 1.42x and 1.18x faster on 1 than on 2); stories110M in Q4_0 (~62 MB)
  // and 0.5B models take 2 of 2 cores.
  assert.equal(threadsForWork({ weightBytes: 8.56 * MB, layers: 6 }, 2), 1);
  assert.equal(threadsForWork({ weightBytes: 16.15 * MB, layers: 6 }, 2), 1);
  assert.equal(threadsForWork({ weightBytes: 23.48 * MB, layers: 8 }, 2), 1);
  assert.equal(threadsForWork({ weightBytes: 62 * MB, layers: 12 }, 2), 2);
  assert.equal(threadsForWork({ weightBytes: 278 * MB, layers: 24 }, 2), 2);
  assert.ok(threadsForWork({ weightBytes: 278 * MB, layers: 24 }, 8) >= 4);
  // Monotonic: more bytes, a larger batch or more cores never give fewer threads; never above the cores.
  for (const cores of [1, 2, 3, 4, 8, 16]) {
    let last = 1;
    for (let mb = 0.25; mb <= 8000; mb *= 1.5) {
      const t = threadsForWork({ weightBytes: mb * MB, layers: 16 }, cores);
      assert.ok(t >= last && t <= cores && t >= 1, `${mb} MB on ${cores} cores: ${t} after ${last}`);
      assert.ok(threadsForWork({ weightBytes: mb * MB, layers: 16, batch: 4 }, cores) >= t);
      if (cores > 1) assert.ok(t >= threadsForWork({ weightBytes: mb * MB, layers: 16 }, cores - 1));
      last = t;
    }
  }
});

test("stories260K: the default is 1 thread, shown in backendName; an explicit thread count wins", async () => {
  const f = await openGGUFFile(defaultModelPath());
  try {
    assert.ok(decodeWeightBytes(f) > 0.9 * MB && decodeWeightBytes(f) < 1.2 * MB);
  } finally {
    await f.close();
  }
  const auto = await loadModel(defaultModelPath());
  try {
    assert.match(auto.backendName, /^wasm-\S+ x1 \(auto\)$/);
  } finally {
    await auto.dispose();
  }
  const two = await loadModel(defaultModelPath(), { threads: 2 });
  try {
    assert.match(two.backendName, /^wasm-\S+ x2$/);
  } finally {
    await two.dispose();
  }
});

test("2 threads: q/k/v, RoPE and attention run as one dispatch per layer, with the logits of 1 thread bit for bit", async () => {
  const logits = async (threads: number) => {
    const model = await loadModel(defaultModelPath(), { threads, contextSize: 64 });
    const profile = new OpProfile();
    try {
      const seq = model.createSequence();
      model.setProfile(profile);
      // A 5-token prefill, then two decode steps: every row's logits.
      const rows = [model.forward([{ sequence: seq, tokens: [1, 403, 407, 261, 374], logits: "all" }])[0]!.logits.slice()];
      for (const t of [300, 301]) rows.push(model.forward([{ sequence: seq, tokens: [t], logits: "last" }])[0]!.logits.slice());
      model.setProfile(undefined);
      seq.release();
      return { rows, fused: profile.totals.get("q/k/v + RoPE + attention (fused)")?.calls ?? 0 };
    } finally {
      await model.dispose();
    }
  };
  const one = await logits(1);
  const two = await logits(2);
  assert.equal(one.fused, 0);
  assert.equal(two.fused, 3 * 5, "every layer of the 3 forward passes took the fused dispatch");
  assert.deepEqual(two.rows, one.rows);
});
