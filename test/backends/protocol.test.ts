// The spin policy of the compute threads (src/backends/wasm/protocol.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { MIN_SPIN, adaptSpin, clockUs, usSince } from "../../src/backends/wasm/protocol.ts";

test("waiters spin longer after short sleeps and shorter after long ones, within bounds", () => {
  const max = 5000;
  // Crowded cores: every sleep is long, so the limit halves down to the floor and stays there.
  let limit = max;
  for (let i = 0; i < 20; i++) limit = adaptSpin(limit, 5, max);
  assert.equal(limit, MIN_SPIN);
  // Quiet again: short sleeps double it back up to the cap, never beyond.
  for (let i = 0; i < 20; i++) limit = adaptSpin(limit, 0.05, max);
  assert.equal(limit, max);
  // In between (0.5-2 ms) it holds.
  assert.equal(adaptSpin(1000, 1, max), 1000);
});

test("the cross-thread microsecond clock is a small integer and differences from it are never negative", () => {
  const c = clockUs();
  assert.ok(Number.isInteger(c) && c >= 0 && c < 2 ** 30);
  const d = usSince(c);
  assert.ok(d >= 0 && d < 1e6, `${d}`);
  // A reading 10 µs back (taken modulo 2^30 as the clock is).
  const wrapped = (clockUs() - 10 + 2 ** 30) % 2 ** 30;
  assert.ok(usSince(wrapped) >= 10 && usSince(wrapped) < 1e6);
});
