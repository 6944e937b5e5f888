// JSONL metrics log: one JSON object per line, appended with a synchronous write per record (no buffering in
// this process, so a crash loses at most the record being written). Non-finite numbers are kept as the
// strings "NaN", "Infinity", "-Infinity" (plain JSON would turn them into null and hide a diverged loss).
//   const log = new MetricsLog('outputs/run/metrics.jsonl'); log.write({ step, loss }); log.close();
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export type MetricValue = number | string | boolean | null | MetricValue[] | { [k: string]: MetricValue };
export type MetricRecord = Record<string, MetricValue>;

const replacer = (_k: string, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);

export interface MetricsLogOptions {
  /** Keep existing lines (default) or start the file afresh. */
  append?: boolean;
  /** Add `time` (Unix seconds, ms precision) to records that lack it (default true). */
  timestamp?: boolean;
  /** Clock in ms (tests). */
  now?: () => number;
}

export class MetricsLog {
  private fd: number | null;
  private readonly timestamp: boolean;
  private readonly now: () => number;

  constructor(readonly path: string, opts: MetricsLogOptions = {}) {
    mkdirSync(dirname(path), { recursive: true });
    // a record cut short by a crash leaves a line without '\n'; start on a fresh line so it stays one bad line
    const needsNewline = opts.append !== false && existsSync(path) && endsWithoutNewline(path);
    this.fd = openSync(path, opts.append === false ? 'w' : 'a');
    if (needsNewline) writeSync(this.fd, '\n');
    this.timestamp = opts.timestamp !== false;
    this.now = opts.now ?? Date.now;
  }

  /** Appends one record as one line. */
  write(record: MetricRecord): void {
    if (this.fd === null) throw new Error(`metrics log ${this.path} is closed`);
    const r = this.timestamp && !('time' in record) ? { ...record, time: Math.round(this.now()) / 1000 } : record;
    const line = JSON.stringify(r, replacer);
    if (line.includes('\n')) throw new Error('metrics record serialised with a newline'); // impossible for JSON.stringify without indent
    writeSync(this.fd, `${line}\n`);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function endsWithoutNewline(path: string): boolean {
  const b = readFileSync(path);
  return b.length > 0 && b[b.length - 1] !== 0x0a;
}

/** Reads a metrics log; lines that are not complete JSON objects (a record cut by a crash) are skipped. */
export function readMetrics(path: string): MetricRecord[] {
  const out: MetricRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v)) out.push(v as MetricRecord);
    } catch {
      // partial line
    }
  }
  return out;
}
