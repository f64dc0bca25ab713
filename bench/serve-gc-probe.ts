// Loaded into the `mimo serve` process of bench/serve-load.ts (node --import): on SIGUSR2, runs a
// full garbage collection and prints the memory that is still live, so that the load test can tell
// a leak (live memory grows every round) from V8 keeping freed heap pages (resident memory grows in
// steps with the allocation rate, then stays). Bench tooling only; the server itself has no such hook.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
process.on("SIGUSR2", () => {
  gc();
  gc();
  const m = process.memoryUsage();
  process.stderr.write(`gc-probe ${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers })}\n`);
});
