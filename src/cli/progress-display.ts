/**
 * How `pgweave load` shows its progress on stderr. On a terminal: one line
 * redrawn in place (a bar when the size is known, bytes, rows, rows/s),
 * at most every 200 ms. Elsewhere (a pipe, a log file, CI): a plain line
 * every 2 seconds, so logs stay readable. Either way a last line sums up.
 */
export interface ProgressSample {
  bytes: number;
  rows: number | null;
}

const BAR_WIDTH = 30;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export class ProgressDisplay {
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly totalBytes: number | null,
    private readonly interactive: boolean = out.isTTY === true,
  ) {}

  private line(s: ProgressSample): string {
    const seconds = Math.max(0.001, (Date.now() - this.started) / 1000);
    const parts: string[] = [];
    if (this.totalBytes !== null && this.totalBytes > 0) {
      const share = Math.min(1, s.bytes / this.totalBytes);
      const pct = `${(share * 100).toFixed(0).padStart(3)}%`;
      if (this.interactive) {
        const full = Math.round(share * BAR_WIDTH);
        parts.push(`[${'#'.repeat(full)}${'.'.repeat(BAR_WIDTH - full)}] ${pct}`);
      } else parts.push(pct);
      parts.push(`${formatBytes(s.bytes)} of ${formatBytes(this.totalBytes)}`);
    } else parts.push(formatBytes(s.bytes));
    parts.push(`${formatBytes(s.bytes / seconds)}/s`);
    if (s.rows !== null) parts.push(`${formatCount(s.rows)} rows`, `${formatCount(s.rows / seconds)} rows/s`);
    return parts.join('  ');
  }

  /** A new sample; drawn when the last drawing is old enough. */
  update(s: ProgressSample): void {
    const now = Date.now();
    if (now - this.lastDraw < (this.interactive ? 200 : 2000)) return;
    this.lastDraw = now;
    if (this.interactive) {
      this.out.write(`\r${this.line(s)}\x1b[K`);
      this.drawn = true;
    } else this.out.write(`loading: ${this.line(s)}\n`);
  }

  /** The last line: the rows the server reports and the overall rates. */
  finish(s: ProgressSample, ok: boolean): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    const seconds = (Date.now() - this.started) / 1000;
    if (ok) this.out.write(`loaded ${this.line(s)} in ${seconds.toFixed(1)} s\n`);
    else this.out.write(`failed after ${formatBytes(s.bytes)} in ${seconds.toFixed(1)} s\n`);
  }
}
