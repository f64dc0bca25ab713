// Continuous batching must be invisible in the outputs: concurrent requests (batched into the same
// forward passes, joining and leaving between steps) return exactly what they return one by one.
// A client that disconnects mid-stream frees its sequence at once; a full queue answers 503.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, waitIdle, MODEL_ID } from "./helpers.ts";

const prompts = Array.from({ length: 16 }, (_, i) => ["Once upon a time", "The little dog", "Lily wanted", "One day, a bird"][i % 4]! + " ".repeat(i % 3) + (i >= 8 ? " and" : ""));

/** The same parameters for the chat endpoint (no prompt). */
function chatParams<T extends { prompt: string }>(p: T): Omit<T, "prompt"> {
  const { prompt: _, ...rest } = p;
  return rest;
}

test("16 concurrent greedy requests return the texts of the same requests sent one by one (and seeded sampling likewise)", async () => {
  const s = await startServer({}, { parallel: 4 });
  try {
    const greedy = (p: string, i: number) => ({ model: MODEL_ID, prompt: p, max_tokens: 12 + (i % 5) * 6, temperature: 0 });
    const seeded = (p: string, i: number) => ({ model: MODEL_ID, prompt: p, max_tokens: 20, temperature: 0.9, top_k: 0, top_p: 1, min_p: 0, seed: 100 + i });
    for (const params of [greedy, seeded]) {
      const alone: string[] = [];
      for (let i = 0; i < prompts.length; i++) alone.push((await s.client.completions.create(params(prompts[i]!, i))).choices[0]!.text);
      const together = await Promise.all(prompts.map(async (p, i) => (await s.client.completions.create(params(p, i))).choices[0]!.text));
      assert.deepEqual(together, alone);
      // Streamed chat, all at once, too.
      const chats = await Promise.all(
        prompts.map(async (p, i) => {
          const st = await s.client.chat.completions.create({ ...chatParams(params(p, i)), messages: [{ role: "user", content: p }], stream: true });
          let t = "";
          for await (const c of st) t += c.choices[0]?.delta.content ?? "";
          return t;
        }),
      );
      const chatsAlone: string[] = [];
      for (let i = 0; i < 4; i++) {
        chatsAlone.push((await s.client.chat.completions.create({ ...chatParams(params(prompts[i]!, i)), messages: [{ role: "user", content: prompts[i]! }] })).choices[0]!.message.content!);
      }
      assert.deepEqual(chats.slice(0, 4), chatsAlone);
    }
    await waitIdle(s.model);
  } finally {
    await s.close();
  }
});

test("a client that disconnects mid-stream cancels its sequence at once; the others finish unchanged", async () => {
  const s = await startServer({}, { parallel: 2 });
  try {
    const params = { model: MODEL_ID, prompt: "Once upon a time", max_tokens: 400, temperature: 0, ignore_eos: true } as const;
    const expected = (await s.client.completions.create({ ...params, max_tokens: 60 })).choices[0]!.text;
    const controller = new AbortController();
    const doomed = await s.client.completions.create({ ...params, stream: true }, { signal: controller.signal });
    const other = s.client.completions.create({ ...params, max_tokens: 60 });
    let got = 0;
    try {
      for await (const _ of doomed) {
        if (++got === 3) controller.abort();
      }
    } catch {
      // the client's own abort
    }
    assert.equal((await other).choices[0]!.text, expected);
    await waitIdle(s.model, 2000);
    const m = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(m, /^mimo_active_sequences 0$/m);
    // It stopped long before its 400 tokens (how soon depends on the machine's load: the stream runs
    // ahead of its reader by what the socket buffers hold).
    const generated = Number(/^mimo_generated_tokens_total (\d+)$/m.exec(m)![1]);
    assert.ok(generated - 60 - 60 < 200, `${generated - 120} tokens generated for the disconnected request`);
  } finally {
    await s.close();
  }
});

test("a full queue answers 503 with Retry-After; the server keeps serving", async () => {
  const s = await startServer({ maxQueue: 1 }, { parallel: 1 });
  try {
    // Long requests (the context's worth), and no fixed sleep: on a fast machine 150 tokens of
    // stories260K take 30 ms, so the third request is sent once one runs and one waits.
    const params = { model: MODEL_ID, prompt: "Once upon a time", max_tokens: 480, temperature: 0, ignore_eos: true };
    const running = [s.client.completions.create(params), s.client.completions.create(params)];
    const end = Date.now() + 10_000;
    while (!(s.model.activeSequences === 1 && s.model.waitingRequests === 1)) {
      assert.ok(Date.now() < end, `never saw 1 running and 1 queued request (${s.model.activeSequences} active, ${s.model.waitingRequests} waiting)`);
      await new Promise((r) => setImmediate(r));
    }
    const res = await fetch(`${s.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(params) });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    const body = await res.json();
    assert.equal(body.error.code, "queue_full");
    const [a, b] = await Promise.all(running);
    assert.equal(a.choices[0]!.text, b.choices[0]!.text);
    assert.equal((await s.client.completions.create({ ...params, max_tokens: 3 })).usage!.completion_tokens, 3);
  } finally {
    await s.close();
  }
});

test("graceful shutdown: running requests finish, new ones are refused, then the server closes", async () => {
  const s = await startServer({}, { parallel: 2 });
  const params = { model: MODEL_ID, prompt: "Once upon a time", max_tokens: 40, temperature: 0, ignore_eos: true };
  const running = s.client.completions.create(params);
  // Close once the request is running (observed, not a fixed delay: a loaded machine may take
  // longer than any delay to start it, a fast one may finish it first).
  let settled = false;
  void running.then(() => (settled = true), () => (settled = true));
  while (s.model.activeSequences === 0 && !settled) await new Promise((r) => setTimeout(r, 1));
  const closing = s.server.close(10_000);
  const r = await running;
  assert.equal(r.usage!.completion_tokens, 40);
  await closing;
  await assert.rejects(fetch(`${s.url}/health`));
  await s.model.dispose();
});
