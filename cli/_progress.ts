// Training progress: a one-line bar redrawn in place on a terminal, plain log lines otherwise (CI, files).
// Shows step/total, loss, step time, samples/s, tokens/s, GPU memory, ETA. Loss and rates are averages over
// the steps since the previous line/redraw (so a slow step is not hidden, and rates are per wall time of
// the steps, not of the printing); the ETA uses a smoothed step time.
//   const p = new Progress({ total: 1000, every: 10 });
//   p.update({ step, loss, stepTime, samples: batch, tokens: batch * tokensPerSample, gpuBytes }); … p.finish();

export interface StepStats {
  /** Steps completed so far (1 after the first step). */
  step: number;
  loss?: number;
  /** Seconds this step took. */
  stepTime?: number;
  /** Samples in this step (global batch). */
  samples?: number;
  /** Tokens in this step (samples × tokens per sample). */
  tokens?: number;
  /** GPU memory in use, bytes. */
  gpuBytes?: number;
  lr?: number;
  lossScale?: number;
}

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  total: number;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Force bar (true) or line (false) mode; default: the stream's isTTY. */
  tty?: boolean;
  /** Line mode: print every N steps (and the last). Default 1. */
  every?: number;
  /** Step count at start (resume), so ETA and the first window start there. */
  startStep?: number;
  /** Bar mode: minimum ms between redraws (default 100). */
  redrawMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

/** 1234 → '1.23k', 4.5e6 → '4.50M'. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  for (const [d, u] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) if (a >= d) return `${(n / d).toPrecision(3)}${u}`;
  return a >= 100 ? n.toFixed(0) : n.toPrecision(3);
}

export function formatBytes(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) (b /= 1024), i++;
  return i ? `${b.toFixed(2)} ${units[i]}` : `${b} B`;
}

/** Seconds → '45s', '7m38s', '2h05m', '3d04h'. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor(s / 3600) % 24).padStart(2, '0')}h`;
}

const fmtLoss = (x: number) => (Number.isFinite(x) ? (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(3)) : String(x));

/** The fields of one progress line (without the step counter), from window averages. */
export function formatStats(w: { loss?: number; stepTime?: number; samplesPerS?: number; tokensPerS?: number; gpuBytes?: number; lr?: number; lossScale?: number; eta?: number }): string[] {
  const parts: string[] = [];
  if (w.loss !== undefined) parts.push(`loss ${fmtLoss(w.loss)}`);
  if (w.stepTime !== undefined) parts.push(`${w.stepTime < 10 ? w.stepTime.toFixed(3) : w.stepTime.toFixed(1)} s/step`);
  if (w.samplesPerS !== undefined) parts.push(`${formatCount(w.samplesPerS)} samples/s`);
  if (w.tokensPerS !== undefined) parts.push(`${formatCount(w.tokensPerS)} tokens/s`);
  if (w.gpuBytes !== undefined) parts.push(`gpu ${formatBytes(w.gpuBytes)}`);
  if (w.lr !== undefined) parts.push(`lr ${w.lr.toExponential(2)}`);
  if (w.lossScale !== undefined) parts.push(`scale ${formatCount(w.lossScale)}`);
  if (w.eta !== undefined) parts.push(`eta ${formatDuration(w.eta)}`);
  return parts;
}

export class Progress {
  private readonly total: number;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly every: number;
  private readonly redrawMs: number;
  private readonly now: () => number;
  private win = { steps: 0, time: 0, samples: 0, tokens: 0, loss: 0, lossN: 0, timed: 0 };
  private smoothStep: number | undefined;
  private lastDraw = -Infinity;
  private barShown = '';
  private step: number;
  private last: StepStats | undefined;

  constructor(opts: ProgressOptions) {
    if (!Number.isInteger(opts.total) || opts.total < 1) throw new Error(`Progress: total = ${opts.total} must be a positive integer`);
    this.total = opts.total;
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? !!this.stream.isTTY;
    this.every = Math.max(1, Math.floor(opts.every ?? 1));
    this.redrawMs = opts.redrawMs ?? 100;
    this.now = opts.now ?? (() => performance.now());
    this.step = opts.startStep ?? 0;
  }

  /** Records a finished step; prints a line (every N steps) or redraws the bar (throttled). */
  update(s: StepStats): void {
    const w = this.win;
    w.steps++;
    if (s.stepTime !== undefined) (w.time += s.stepTime), w.timed++;
    w.samples += s.samples ?? 0;
    w.tokens += s.tokens ?? 0;
    if (s.loss !== undefined) (w.loss += s.loss), w.lossN++;
    this.step = s.step;
    this.last = s;
    const done = s.step >= this.total;
    if (this.tty) {
      const t = this.now();
      if (done || t - this.lastDraw >= this.redrawMs) {
        this.lastDraw = t;
        this.draw(this.flush());
      }
    } else if (done || s.step % this.every === 0) {
      this.stream.write(`${this.flush()}\n`);
    }
  }

  /** A message on its own line (above the bar in TTY mode). */
  log(message: string): void {
    if (this.tty && this.barShown) this.stream.write(`\r\x1b[2K${message}\n${this.barShown}`);
    else this.stream.write(`${message}\n`);
  }

  /** Ends the bar's line (TTY); prints any steps not yet shown (line mode). */
  finish(): void {
    if (this.win.steps && !this.tty) this.stream.write(`${this.flush()}\n`);
    if (this.tty && this.barShown) this.stream.write('\n');
    this.barShown = '';
  }

  /** Formats the window since the last output, then starts a new window. */
  private flush(): string {
    const w = this.win;
    const stepTime = w.timed ? w.time / w.timed : undefined;
    if (stepTime !== undefined) this.smoothStep = this.smoothStep === undefined ? stepTime : 0.7 * this.smoothStep + 0.3 * stepTime;
    const s = this.last!;
    const fields = formatStats({
      loss: w.lossN ? w.loss / w.lossN : undefined,
      stepTime,
      samplesPerS: w.time > 0 && w.samples ? w.samples / w.time : undefined,
      tokensPerS: w.time > 0 && w.tokens ? w.tokens / w.time : undefined,
      gpuBytes: s.gpuBytes,
      lr: s.lr,
      lossScale: s.lossScale,
      eta: this.smoothStep !== undefined ? this.smoothStep * Math.max(0, this.total - this.step) : undefined,
    });
    this.win = { steps: 0, time: 0, samples: 0, tokens: 0, loss: 0, lossN: 0, timed: 0 };
    const pct = ((100 * this.step) / this.total).toFixed(1);
    const counter = `${this.step}/${this.total}`;
    return this.tty ? `${counter} ${pct}% ${fields.join(' | ')}` : `step ${counter} (${pct}%) ${fields.join(' | ')}`;
  }

  private draw(text: string): void {
    const cols = this.stream.columns ?? 100;
    const width = Math.max(10, Math.min(30, cols - text.length - 4));
    const filled = Math.round((width * Math.min(this.step, this.total)) / this.total);
    let line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`;
    if (line.length > cols - 1) line = line.slice(0, cols - 1);
    this.barShown = line;
    this.stream.write(`\r\x1b[2K${line}`);
  }
}
