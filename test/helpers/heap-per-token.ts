// Run by test/runtime/allocation.test.ts in a child process with a large young generation
// (--min/max-semi-space-size) so that nothing is collected while it measures: the growth of the
// JS heap over a greedy generation, per generated token, after a warm-up generation.
// Prints {"bytesPerToken": n, "gcs": n}.
import { PerformanceObserver } from "node:perf_hooks";
import { loadModel, defaultModelPath } from "../../src/index.ts";

const threads = Number(process.argv[2] ?? 1);
const tokens = Number(process.argv[3] ?? 300);
const model = await loadModel(defaultModelPath(), { threads });
const opts = { temperature: 0, ignoreEos: true, maxTokens: tokens };
await model.complete("Once upon a time", opts); // warm-up: every buffer sized, every function compiled
let gcs = 0;
const obs = new PerformanceObserver((list) => (gcs += list.getEntries().length));
obs.observe({ entryTypes: ["gc"] });
(globalThis as { gc?: () => void }).gc?.();
await new Promise((r) => setTimeout(r, 10)); // the forced collection's entry arrives before counting
gcs = 0;
const before = process.memoryUsage().heapUsed;
await model.complete("Once upon a time", opts);
const after = process.memoryUsage().heapUsed;
await new Promise((r) => setTimeout(r, 10));
obs.disconnect();
console.log(JSON.stringify({ bytesPerToken: (after - before) / tokens, gcs }));
await model.dispose();
