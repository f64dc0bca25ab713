// The generation loop gives the event loop a turn often enough that an AbortSignal fired by a
// timer lands within a few milliseconds, while a long generation is running (the same check runs
// in Chromium in test/browser/chromium.test.ts). A loop that never left the microtask queue would
// fire the timer only after the generation ended.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadModel } from "../../src/index.ts";
import { Yielder, yieldToEventLoop } from "../../src/platform/yield.ts";
import { STORIES_DIR } from "../helpers/testdata.ts";

test("an abort fired by a timer during a long generation lands within a few ms", { timeout: 120_000 }, async (t) => {
  const model = await loadModel(`${STORIES_DIR}/stories260K.gguf`, { threads: 1, contextSize: 4096 });
  try {
    const ctrl = new AbortController();
    let tokens = 0;
    let tAbort = 0;
    let timerLate = 0;
    let atAbort = 0;
    const tSet = performance.now();
    const delay = 30;
    setTimeout(() => {
      tAbort = performance.now();
      atAbort = tokens;
      timerLate = tAbort - tSet - delay;
      ctrl.abort(new Error("stop"));
    }, delay);
    // 4,000 tokens take about a second here even on an idle machine: far longer than the delay.
    const run = (async () => {
      for await (const _ of model.generate("", { temperature: 0, maxTokens: 4000, ignoreEos: true, signal: ctrl.signal })) tokens++;
    })();
    await assert.rejects(run, /stop/);
    const latency = performance.now() - tAbort;
    assert.ok(tAbort > 0, "the timer fired before the generation ended");
    assert.ok(tokens > 0 && tokens < 4000, `the abort came mid-generation (${tokens} tokens)`);
    // A few ms on a quiet machine (the loop yields every ~4 ms, plus one step); the bound grows
    // with the step time, which a loaded machine stretches.
    const stepMs = (tAbort - tSet) / Math.max(1, atAbort);
    const bound = 100 + 20 * stepMs;
    t.diagnostic(`timer late by ${timerLate.toFixed(1)} ms, stopped ${latency.toFixed(1)} ms after the abort, ${stepMs.toFixed(2)} ms per token`);
    assert.ok(timerLate < bound, `the timer ran ${timerLate.toFixed(1)} ms late (bound ${bound.toFixed(0)} ms)`);
    assert.ok(latency < bound, `the generation stopped ${latency.toFixed(1)} ms after the abort (bound ${bound.toFixed(0)} ms)`);
  } finally {
    await model.dispose();
  }
});

test("yieldToEventLoop runs queued timers; Yielder takes a full turn only every few ms", async () => {
  let fired = false;
  setTimeout(() => (fired = true), 0);
  await new Promise((r) => setTimeout(r, 1)); // the timer above is due now
  fired = false;
  // Node's setTimeout(0) is due after 1 ms, and 100 yields can take less than that: yield until
  // the timer fires or 1 s has passed (a microtask-only yield would starve it for the whole second).
  setTimeout(() => (fired = true), 0);
  const tFire = performance.now();
  while (!fired && performance.now() - tFire < 1_000) await yieldToEventLoop();
  assert.equal(fired, true);

  // Within the interval a Yielder only takes a microtask turn: a due timer does not run.
  const y = new Yielder(1_000);
  let timer = false;
  setTimeout(() => (timer = true), 0);
  const t0 = performance.now();
  while (performance.now() - t0 < 5) await y.yield();
  assert.equal(timer, false);
  // A zero interval yields to the event loop every time.
  const y0 = new Yielder(0);
  const tY0 = performance.now();
  while (!timer && performance.now() - tY0 < 1_000) await y0.yield();
  assert.equal(timer, true);
});
