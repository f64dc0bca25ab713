// Concurrent generate calls on one model: batched into the same forward passes up to `parallel`,
// queued first come first served beyond, each cancellable alone, all with the texts they would
// have alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadModel, defaultModelPath, type GenerateOptions, type Model } from "../../src/index.ts";

const PROMPTS = ["Once upon a time", "Zoo", "The cat sat", "Lily went to the park", "Tom had a red", "One day", "The sun was", "A little bird"];

async function withModel<T>(opts: { parallel: number; threads?: number; backend?: "wasm" | "reference" }, f: (m: Model) => Promise<T>): Promise<T> {
  const m = await loadModel(defaultModelPath(), { backend: opts.backend ?? "wasm", threads: opts.threads ?? 2, parallel: opts.parallel });
  try {
    return await f(m);
  } finally {
    await m.dispose();
  }
}

const optionSets: [string, (i: number) => GenerateOptions][] = [
  ["greedy", () => ({ temperature: 0, maxTokens: 48 })],
  ["seeded sampling", (i) => ({ temperature: 0.9, topK: 40, topP: 0.95, seed: 1000 + i, maxTokens: 48 })],
  ["seeded sampling with penalties and a stop string", (i) => ({ temperature: 1, seed: 7 * i, repeatPenalty: 1.2, maxTokens: 48, stop: ["."] })],
];

for (const [name, opts] of optionSets) {
  test(`8 concurrent generate calls (${name}) give exactly the texts of 8 sequential calls`, async () => {
    const sequential = await withModel({ parallel: 1 }, async (m) => {
      const out = [];
      for (let i = 0; i < 8; i++) out.push(await m.complete(PROMPTS[i]!, opts(i)));
      return out;
    });
    for (const parallel of [8, 3]) {
      const concurrent = await withModel({ parallel }, (m) => Promise.all(PROMPTS.map((p, i) => m.complete(p, opts(i)))));
      for (let i = 0; i < 8; i++) {
        assert.equal(concurrent[i]!.text, sequential[i]!.text, `prompt ${i}, parallel ${parallel}`);
        assert.deepEqual(concurrent[i]!.tokens, sequential[i]!.tokens);
        assert.equal(concurrent[i]!.finishReason, sequential[i]!.finishReason);
      }
    }
  });
}

test("concurrent calls really share forward passes: 8 streams take fewer steps than 8 x their tokens", async () => {
  await withModel({ parallel: 8 }, async (m) => {
    const backend = (m as unknown as { transformer: { backend: { matmul: (...a: unknown[]) => void } } }).transformer.backend;
    let outputMatmuls = 0;
    const orig = backend.matmul.bind(backend);
    const outputRows = m.config.vocabSize;
    backend.matmul = (w: unknown, ...rest: unknown[]) => {
      if ((w as { rows: number }).rows === outputRows) outputMatmuls++;
      orig(w, ...rest);
    };
    const rs = await Promise.all(PROMPTS.map((p) => m.complete(p, { temperature: 0, maxTokens: 30, ignoreEos: true })));
    const tokens = rs.reduce((n, r) => n + r.tokens.length, 0);
    assert.equal(tokens, 240);
    assert.ok(outputMatmuls <= 40, `${outputMatmuls} output projections for ${tokens} tokens: the streams were not batched`);
  });
});

test("cancelling one of several concurrent calls mid-way leaves the others' outputs unchanged", async () => {
  const opts = (i: number): GenerateOptions => ({ temperature: 0.8, seed: 99 + i, maxTokens: 60, ignoreEos: true });
  const alone = await withModel({ parallel: 1 }, async (m) => {
    const out = [];
    for (let i = 0; i < 4; i++) out.push((await m.complete(PROMPTS[i]!, opts(i))).text);
    return out;
  });
  await withModel({ parallel: 4 }, async (m) => {
    const ctrl = new AbortController();
    let seen = 0;
    const cancelled = (async () => {
      const it = m.generate(PROMPTS[1]!, { ...opts(1), signal: ctrl.signal });
      for await (const _ of it) if (++seen === 10) ctrl.abort();
    })();
    const others = [0, 2, 3].map((i) => m.complete(PROMPTS[i]!, opts(i)));
    await assert.rejects(cancelled, (e: unknown) => (e as Error).name === "AbortError");
    assert.equal(seen, 10, "no chunk arrives after the abort");
    const texts = await Promise.all(others);
    assert.deepEqual(texts.map((t) => t.text), [alone[0], alone[2], alone[3]]);
    // The cancelled call's sequence went back to the pool: 4 calls fit at once again.
    const again = await Promise.all([0, 1, 2, 3].map((i) => m.complete(PROMPTS[i]!, opts(i))));
    assert.deepEqual(again.map((t) => t.text), alone);
  });
});

test("calls beyond `parallel` wait their turn in order, and one aborted while waiting never runs", async () => {
  await withModel({ parallel: 1 }, async (m) => {
    const order: number[] = [];
    const ctrl = new AbortController();
    const calls = [0, 1, 2, 3].map((i) =>
      m.complete(PROMPTS[i]!, { temperature: 0, maxTokens: 8, signal: i === 2 ? ctrl.signal : undefined }).then((r) => {
        order.push(i);
        return r;
      }),
    );
    ctrl.abort();
    const results = await Promise.allSettled(calls);
    assert.equal(results[2]!.status, "rejected");
    assert.deepEqual(order, [0, 1, 3]);
  });
});

test("a reader that stops reading pauses its stream without holding up the others", async () => {
  await withModel({ parallel: 2 }, async (m) => {
    const slow = m.generate("Once upon a time", { temperature: 0, maxTokens: 200, ignoreEos: true });
    await slow.next(); // starts it, then never reads again while the other runs
    const fast = await m.complete("Zoo", { temperature: 0, maxTokens: 100, ignoreEos: true });
    assert.equal(fast.tokens.length, 100);
    await slow.return(undefined as never); // the reader goes away: its sequence is released
    const r = await Promise.all([m.complete("Zoo", { temperature: 0, maxTokens: 5 }), m.complete("One day", { temperature: 0, maxTokens: 5 })]);
    assert.equal(r.length, 2);
  });
});

test("evaluate and forward run beside a generation without disturbing it", async () => {
  const expected = await withModel({ parallel: 1 }, (m) => m.complete("Once upon a time", { temperature: 0, maxTokens: 40 }));
  await withModel({ parallel: 2 }, async (m) => {
    const it = m.generate("Once upon a time", { temperature: 0, maxTokens: 40 });
    let text = "";
    let i = 0;
    for await (const c of it) {
      text += c.text;
      if (++i === 5) {
        const logits = m.evaluate(m.tokenize("Zoo"));
        assert.equal(logits.length, m.config.vocabSize);
        const extra = m.createSequence();
        assert.throws(() => m.createSequence(), /no free sequence: all 2 KV cache slots are in use/);
        extra.release();
      }
    }
    assert.equal(text, expected.text);
  });
});

test("generation still works on the reference backend with several sequences", async () => {
  await withModel({ parallel: 2, backend: "reference" }, async (m) => {
    const [a, b] = await Promise.all([m.complete("Zoo", { temperature: 0, maxTokens: 12 }), m.complete("One day", { temperature: 0, maxTokens: 12 })]);
    const a1 = await m.complete("Zoo", { temperature: 0, maxTokens: 12 });
    assert.equal(a.text, a1.text);
    assert.ok(b.text.length > 0);
  });
});
