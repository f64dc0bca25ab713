// Server counters in Prometheus' text exposition format (version 0.0.4).

const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Window over which the tokens-per-second gauge is measured. */
const RATE_WINDOW_MS = 10_000;

export class Metrics {
  private readonly requests = new Map<string, number>();
  promptTokens = 0;
  cachedPromptTokens = 0;
  generatedTokens = 0;
  private readonly ttftCounts = new Array<number>(TTFT_BUCKETS.length).fill(0);
  private ttftSum = 0;
  private ttftCount = 0;
  /** Generated tokens per 100 ms bucket over the rate window: [bucket start, count]. */
  private readonly recent: [number, number][] = [];

  request(endpoint: string, status: number): void {
    const key = `endpoint="${endpoint}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  tokens(n: number, at = performance.now()): void {
    this.generatedTokens += n;
    const bucket = Math.floor(at / 100) * 100;
    const last = this.recent[this.recent.length - 1];
    if (last && last[0] === bucket) last[1] += n;
    else this.recent.push([bucket, n]);
    this.trim(at);
  }

  timeToFirstToken(seconds: number): void {
    this.ttftSum += seconds;
    this.ttftCount++;
    for (let i = 0; i < TTFT_BUCKETS.length; i++) if (seconds <= TTFT_BUCKETS[i]!) this.ttftCounts[i]!++;
  }

  private trim(at: number): void {
    while (this.recent.length > 0 && this.recent[0]![0] < at - RATE_WINDOW_MS) this.recent.shift();
  }

  /** Generated tokens per second over the last ten seconds. */
  tokensPerSecond(at = performance.now()): number {
    this.trim(at);
    return this.recent.reduce((s, [, n]) => s + n, 0) / (RATE_WINDOW_MS / 1000);
  }

  render(gauges: { activeSequences: number; queueDepth: number; parallel: number; ready: boolean }): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) lines.push(`${name}${labels ? `{${labels}}` : ""} ${Number.isFinite(v) ? v : 0}`);
    };
    metric("mimo_requests_total", "counter", "HTTP requests answered, by endpoint and status.", [...this.requests]);
    metric("mimo_prompt_tokens_total", "counter", "Prompt tokens of completed generations.", [["", this.promptTokens]]);
    metric("mimo_prompt_tokens_cached_total", "counter", "Prompt tokens taken from the prefix cache instead of computed.", [["", this.cachedPromptTokens]]);
    metric("mimo_generated_tokens_total", "counter", "Tokens generated.", [["", this.generatedTokens]]);
    metric("mimo_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s, all sequences together.", [["", this.tokensPerSecond()]]);
    metric("mimo_active_sequences", "gauge", "Sequences holding a KV cache slot (generating or prefilling).", [["", gauges.activeSequences]]);
    metric("mimo_queue_depth", "gauge", "Requests waiting for a free sequence.", [["", gauges.queueDepth]]);
    metric("mimo_parallel_sequences", "gauge", "KV cache slots (--parallel).", [["", gauges.parallel]]);
    metric("mimo_ready", "gauge", "1 when the model is loaded and serving.", [["", gauges.ready ? 1 : 0]]);
    const mem = process.memoryUsage();
    metric("process_resident_memory_bytes", "gauge", "Resident memory of the server process.", [["", mem.rss]]);
    metric("nodejs_heap_used_bytes", "gauge", "JavaScript heap in use.", [["", mem.heapUsed]]);
    lines.push("# HELP mimo_time_to_first_token_seconds Time from a request's arrival to its first generated token.", "# TYPE mimo_time_to_first_token_seconds histogram");
    TTFT_BUCKETS.forEach((b, i) => lines.push(`mimo_time_to_first_token_seconds_bucket{le="${b}"} ${this.ttftCounts[i]}`));
    lines.push(`mimo_time_to_first_token_seconds_bucket{le="+Inf"} ${this.ttftCount}`);
    lines.push(`mimo_time_to_first_token_seconds_sum ${this.ttftSum}`, `mimo_time_to_first_token_seconds_count ${this.ttftCount}`);
    return lines.join("\n") + "\n";
  }
}
