// A one-line progress bar on stderr for long work (loading a large model, a download). It draws
// only on a terminal: piped or redirected stderr gets nothing, so logs stay clean.
import { formatBytes } from "../hub/bytes.ts";

export { formatBytes };

/** Files at least this large get a load progress bar (smaller ones load in well under a second). */
export const LOAD_PROGRESS_MIN_BYTES = 100e6;


function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  const t = Math.round(s);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  const mmss = `${String(m).padStart(h ? 2 : 1, "0")}:${String(sec).padStart(2, "0")}`;
  return h ? `${h}:${mmss}` : mmss;
}

export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(s: string): boolean;
}

export class ProgressBar {
  private readonly stream: ProgressStream;
  private readonly label: string;
  private readonly t0 = performance.now();
  private readonly startBytes: number;
  private lastDraw = 0;
  private drawn = false;

  /** `startBytes`: bytes already there when the work started (a resumed download), left out of the rate. */
  constructor(stream: ProgressStream, label: string, startBytes = 0) {
    this.stream = stream;
    this.label = label;
    this.startBytes = startBytes;
  }

  /** Redraws at most 10 times a second (and always at 100%). */
  update(done: number, total: number): void {
    const t = performance.now();
    if (t - this.lastDraw < 100 && done < total) return;
    this.lastDraw = t;
    const secs = (t - this.t0) / 1000;
    const rate = secs > 0.2 ? (done - this.startBytes) / secs : 0;
    const eta = rate > 0 ? (total - done) / rate : Infinity;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const tail = ` ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)}` +
      (rate > 0 ? ` ${formatBytes(rate)}/s ETA ${formatSeconds(eta)}` : "");
    const cols = this.stream.columns || 80;
    const width = Math.max(10, Math.min(40, cols - this.label.length - tail.length - 4));
    const fill = Math.round(frac * width);
    this.stream.write(`\r${this.label} [${"#".repeat(fill)}${".".repeat(width - fill)}]${tail}\x1b[K`);
    this.drawn = true;
  }

  /** Clears the bar's line. */
  done(): void {
    if (this.drawn) this.stream.write("\r\x1b[K");
    this.drawn = false;
  }
}

/** A bar on a terminal, nothing otherwise. */
export function progressBar(label: string, startBytes = 0, stream: ProgressStream = process.stderr): ProgressBar | undefined {
  return stream.isTTY ? new ProgressBar(stream, label, startBytes) : undefined;
}

// Long work counted in any unit (chunks, tensor bytes) with an ETA: redrawn in place on a terminal,
// one line every few seconds otherwise (logs, CI), so that batch jobs show they are alive.

export interface ProgressLine {
  /** Reports `done` of `total` units; `label` says what is being worked on. */
  update(done: number, total: number, label?: string): void;
  /** Ends the line (a final newline on a terminal). */
  finish(): void;
}

function clockText(s: number): string {
  if (!Number.isFinite(s)) return "--";
  if (s < 60) return `${s.toFixed(0)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - 60 * m)} s`;
}

export function progressLine(prefix: string, o: { enabled?: boolean; stream?: NodeJS.WriteStream; unit?: (n: number) => string } = {}): ProgressLine {
  const stream = o.stream ?? process.stderr;
  const enabled = o.enabled ?? true;
  const tty = stream.isTTY === true;
  const unit = o.unit ?? ((n: number) => String(n));
  const t0 = performance.now();
  let last = -Infinity;
  let drawn = false;
  return {
    update(done, total, label) {
      if (!enabled) return;
      const now = performance.now();
      const final = done >= total;
      if (!final && now - last < (tty ? 200 : 5000)) return;
      last = now;
      const s = (now - t0) / 1000;
      const frac = total > 0 ? Math.min(1, done / total) : 1;
      const eta = frac > 0 ? (s * (1 - frac)) / frac : Infinity;
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = tty ? `[${"#".repeat(filled)}${".".repeat(width - filled)}] ` : "";
      const text = `${prefix}: ${bar}${(frac * 100).toFixed(0).padStart(3)}% ${unit(done)}/${unit(total)}, ${clockText(s)} elapsed, ETA ${clockText(eta)}${label ? `  ${label}` : ""}`;
      if (tty) {
        stream.write(`\r${text.slice(0, (stream.columns ?? 120) - 1)}\x1b[K`);
        drawn = true;
      } else stream.write(`${text}\n`);
    },
    finish() {
      if (enabled && tty && drawn) stream.write("\n");
    },
  };
}
