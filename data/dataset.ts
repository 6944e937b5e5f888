// A video-text dataset read from a CSV, as Open-Sora's: header with `path,caption` and optional
// `num_frames,height,width,fps` columns; one clip (or still image) per row. Samples are decoded by ffmpeg
// child processes (frame selection, resize keeping aspect + center crop and flip inside ffmpeg's filter
// graph) into float [C=3, T, H, W] in [-1, 1]. A DataLoader batches them with decoding running ahead,
// epoch-deterministic shuffling and an exact (epoch, batch) resume point.
//
//   const ds = await VideoDataset.open('clips.csv', { numFrames: 16, frameInterval: 3, imageSize: [256, 256] });
//   const loader = new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 1, prefetch: 2 });
//   const batch = await loader.next();   // { video [B,3,T,H,W], captions, indices, epoch, batch }
//   save(loader.state()) … later: loader.resume(state)
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { assertFileExists, decodeFrames, probeVideo } from './video.js';
import { coverCrop, cropFilter, framesToCTHW, mixSeed } from './transforms.js';
import { SeededRng } from './rng.js';

// ---- CSV (RFC 4180) -------------------------------------------------------------------------------------

export interface CsvRow {
  /** 1-based line of the file where the row starts. */
  line: number;
  cells: string[];
}

export interface CsvTable {
  header: string[];
  rows: CsvRow[];
}

/**
 * Parses RFC 4180 CSV: comma separators, LF or CRLF (or CR) row ends, quoted fields that may hold commas,
 * newlines and doubled quotes (""). A UTF-8 BOM is dropped; blank lines are skipped. The first row is the
 * header (names trimmed). Malformed quoting is an error naming the line.
 */
export function parseCsv(text: string, source = 'CSV'): CsvTable {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const n = text.length;
  const rows: CsvRow[] = [];
  let i = 0;
  let line = 1;
  while (i < n) {
    const rowLine = line;
    const cells: string[] = [];
    let quotedAny = false;
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        quotedAny = true;
        const openLine = line;
        i++;
        for (;;) {
          if (i >= n) throw new Error(`${source} line ${openLine}: unterminated quoted field (a '"' opens it and none closes it)`);
          const c = text[i]!;
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\n') line++;
          field += c;
          i++;
        }
        if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
          throw new Error(`${source} line ${line}: unexpected character ${JSON.stringify(text[i])} after a closing quote; quote the whole field and double any quote inside it ("")`);
        }
      } else {
        const start = i;
        while (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') i++;
        field = text.slice(start, i);
      }
      cells.push(field);
      if (i < n && text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '\r') {
        i++;
        if (text[i] === '\n') i++;
        line++;
      } else if (text[i] === '\n') {
        i++;
        line++;
      }
      break;
    }
    if (cells.length === 1 && cells[0] === '' && !quotedAny) continue; // blank line
    rows.push({ line: rowLine, cells });
  }
  const head = rows.shift();
  if (!head) throw new Error(`${source}: empty file; expected a header row with at least "path,caption"`);
  return { header: head.cells.map((h) => h.trim()), rows };
}

// ---- dataset ---------------------------------------------------------------------------------------------

export interface DatasetOptions {
  /** Frames per sample (T). */
  numFrames: number;
  /** Stride between sampled frames. Default 1. */
  frameInterval?: number;
  /** Output [H, W]: resize keeping aspect so the frame covers it, then center crop. */
  imageSize: [number, number];
  /** Random horizontal flip (p = 0.5, seeded). Default false. */
  randomFlip?: boolean;
  /** Augmentation seed (clip start, flip): each sample is a function of (seed, epoch, index). Default 0. */
  seed?: number;
  /** 'error' (default): a bad row or file throws. 'skip': it is left out and recorded in `skipped`. */
  onBadSample?: 'error' | 'skip';
  /**
   * Probe every file when opening (default true): missing, corrupt and too-short files are found up front,
   * so `length` counts only usable samples. With false, rows with num_frames/height/width columns are
   * trusted and others probed on first use; failures then surface in get() (or are skipped there).
   */
  validate?: boolean;
  /** ffprobe processes in parallel while validating. Default: the CPU count (at most 16). */
  concurrency?: number;
  /** ffmpeg threads per sample decode. Default 1 (the loader runs many decodes in parallel); 0 = auto. */
  decoderThreads?: number;
}

export interface DatasetEntry {
  /** CSV line of the row. */
  line: number;
  /** Path as written in the CSV. */
  rawPath: string;
  /** Absolute path (relative CSV paths resolve against the CSV's folder). */
  path: string;
  caption: string;
  isImage: boolean;
  /** From the CSV's optional columns (undefined when absent or empty). */
  numFrames?: number;
  height?: number;
  width?: number;
  fps?: number;
}

export interface SkippedSample {
  line: number;
  path: string;
  reason: string;
}

export interface Sample {
  /** [3, T, H, W] in [-1, 1]. */
  video: Float32Array;
  shape: [number, number, number, number];
  caption: string;
  /** Index of the sample returned (another index than asked when a bad sample was skipped in get()). */
  index: number;
  path: string;
  line: number;
  /** First source frame (0 for images) and whether the frames were flipped. */
  start: number;
  flip: boolean;
}

export interface GetOptions {
  epoch?: number;
  /** Write the sample here (a [3,T,H,W] view into a batch) instead of a new array. */
  out?: Float32Array;
}

const IMAGE_EXT = /\.(png|jpe?g|webp|bmp|tiff?)$/i;
const OPTIONAL_INT = ['num_frames', 'height', 'width'] as const;

interface MediaInfo {
  frames: number;
  width: number;
  height: number;
}

/** Error about one CSV row / file, with the CSV line in the message. */
class SampleError extends Error {}

/** Runs `fn` over items with at most `limit` in flight; results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Counting semaphore bounding concurrent ffmpeg processes. */
class Limiter {
  private active = 0;
  private waiting: (() => void)[] = [];
  constructor(readonly limit: number) {}
  async run<R>(fn: () => Promise<R>): Promise<R> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export class VideoDataset {
  /** Usable rows (after skipping bad ones at open). */
  readonly entries: DatasetEntry[];
  /** Rows and files left out, with the reasons (onBadSample 'skip'). */
  readonly skipped: SkippedSample[] = [];
  readonly numFrames: number;
  readonly frameInterval: number;
  readonly height: number;
  readonly width: number;
  readonly seed: number;
  readonly randomFlip: boolean;
  readonly onBadSample: 'error' | 'skip';
  readonly decoderThreads: number;
  private readonly info = new Map<number, MediaInfo>();
  private readonly bad = new Map<number, string>();

  private constructor(readonly csvPath: string, entries: DatasetEntry[], opts: DatasetOptions) {
    this.entries = entries;
    this.numFrames = opts.numFrames;
    this.frameInterval = opts.frameInterval ?? 1;
    [this.height, this.width] = opts.imageSize;
    this.seed = opts.seed ?? 0;
    this.randomFlip = opts.randomFlip ?? false;
    this.onBadSample = opts.onBadSample ?? 'error';
    this.decoderThreads = opts.decoderThreads ?? 1;
  }

  /** Reads and checks the CSV (and, with validate, every file). */
  static async open(csvPath: string, opts: DatasetOptions): Promise<VideoDataset> {
    const T = opts.numFrames;
    const k = opts.frameInterval ?? 1;
    if (!(Number.isInteger(T) && T >= 1)) throw new Error(`VideoDataset: numFrames must be an integer >= 1, got ${T}`);
    if (!(Number.isInteger(k) && k >= 1)) throw new Error(`VideoDataset: frameInterval must be an integer >= 1, got ${k}`);
    const size = opts.imageSize;
    if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v > 0)) {
      throw new Error(`VideoDataset: imageSize must be [height, width] of positive integers, got ${JSON.stringify(size)}`);
    }
    const mode = opts.onBadSample ?? 'error';
    if (mode !== 'error' && mode !== 'skip') throw new Error(`VideoDataset: onBadSample must be 'error' or 'skip', got ${JSON.stringify(mode)}`);
    if (!existsSync(csvPath)) throw new Error(`dataset CSV not found: ${csvPath}`);
    const table = parseCsv(readFileSync(csvPath, 'utf8'), csvPath);
    const col = new Map(table.header.map((h, i) => [h.toLowerCase(), i]));
    for (const need of ['path', 'caption']) {
      if (!col.has(need)) throw new Error(`${csvPath}: the header (line 1: ${table.header.join(',')}) has no "${need}" column; expected at least "path,caption" (optional num_frames,height,width,fps)`);
    }
    const baseDir = dirname(resolve(csvPath));
    const skipped: SkippedSample[] = [];
    const reject = (line: number, path: string, reason: string) => {
      const msg = `${csvPath} line ${line}${path ? ` (${path})` : ''}: ${reason}`;
      if (mode === 'error') throw new SampleError(msg);
      skipped.push({ line, path, reason: msg });
    };
    const entries: DatasetEntry[] = [];
    for (const row of table.rows) {
      const c = row.cells;
      const rawPath = (c[col.get('path')!] ?? '').trim();
      if (c.length !== table.header.length) {
        reject(row.line, rawPath, `${c.length} fields, but the header has ${table.header.length} (${table.header.join(',')}); quote fields that contain commas`);
        continue;
      }
      const caption = c[col.get('caption')!]!;
      if (!rawPath) {
        reject(row.line, '', 'empty path');
        continue;
      }
      if (!caption.trim()) {
        reject(row.line, rawPath, 'empty caption');
        continue;
      }
      const e: DatasetEntry = { line: row.line, rawPath, path: isAbsolute(rawPath) ? rawPath : resolve(baseDir, rawPath), caption, isImage: IMAGE_EXT.test(rawPath) };
      let ok = true;
      for (const name of [...OPTIONAL_INT, 'fps'] as const) {
        const j = col.get(name);
        const v = j === undefined ? '' : c[j]!.trim();
        if (!v) continue;
        const x = Number(v);
        if (!(Number.isFinite(x) && x > 0 && (name === 'fps' || Number.isInteger(x)))) {
          reject(row.line, rawPath, `${name} is ${JSON.stringify(v)}, expected a positive ${name === 'fps' ? 'number' : 'integer'}`);
          ok = false;
          break;
        }
        if (name === 'num_frames') e.numFrames = x;
        else e[name] = x;
      }
      if (ok) entries.push(e);
    }
    const ds = new VideoDataset(csvPath, entries, opts);
    ds.skipped.push(...skipped);
    if (opts.validate ?? true) {
      const limit = Math.max(1, opts.concurrency ?? Math.min(16, availableParallelism()));
      const reasons = await mapLimit(entries, limit, async (e, i) => {
        try {
          ds.info.set(i, await ds.probe(e));
          return null;
        } catch (err) {
          return (err as Error).message;
        }
      });
      const keep: DatasetEntry[] = [];
      const infos: MediaInfo[] = [];
      reasons.forEach((r, i) => {
        if (r === null) {
          keep.push(entries[i]!);
          infos.push(ds.info.get(i)!);
        } else if (mode === 'error') throw new SampleError(r);
        else ds.skipped.push({ line: entries[i]!.line, path: entries[i]!.rawPath, reason: r });
      });
      ds.entries.splice(0, ds.entries.length, ...keep);
      ds.info.clear();
      infos.forEach((inf, i) => ds.info.set(i, inf));
    }
    ds.skipped.sort((a, b) => a.line - b.line);
    if (!ds.entries.length) {
      throw new Error(`${csvPath}: no usable samples (${table.rows.length} rows, ${ds.skipped.length} skipped${ds.skipped.length ? `; first: ${ds.skipped[0]!.reason}` : ''})`);
    }
    return ds;
  }

  get length(): number {
    return this.entries.length;
  }

  /** Frames a clip must have: (numFrames − 1)·frameInterval + 1. */
  get span(): number {
    return (this.numFrames - 1) * this.frameInterval + 1;
  }

  /** [3, T, H, W] of one sample. */
  get sampleShape(): [number, number, number, number] {
    return [3, this.numFrames, this.height, this.width];
  }

  private where(e: DatasetEntry): string {
    return `${this.csvPath} line ${e.line} (${e.rawPath})`;
  }

  /** Frame count and size of an entry's file, checked against the clip span. */
  private async probe(e: DatasetEntry): Promise<MediaInfo> {
    let info: MediaInfo;
    try {
      assertFileExists(e.path, e.isImage ? 'image' : 'video');
      info = await probeVideo(e.path);
    } catch (err) {
      throw new SampleError(`${this.where(e)}: ${(err as Error).message}`);
    }
    if (e.isImage) info = { frames: 1, width: info.width, height: info.height };
    this.checkLength(e, info);
    return info;
  }

  private checkLength(e: DatasetEntry, info: MediaInfo): void {
    if (!e.isImage && info.frames < this.span) {
      throw new SampleError(
        `${this.where(e)}: the video has ${info.frames} frames, but num_frames ${this.numFrames} with frame_interval ${this.frameInterval} needs at least ${this.span}; lower numFrames/frameInterval or drop the row`,
      );
    }
  }

  private async infoOf(index: number): Promise<MediaInfo> {
    const known = this.info.get(index);
    if (known) return known;
    const e = this.entries[index]!;
    let info: MediaInfo;
    if (e.numFrames !== undefined && e.width !== undefined && e.height !== undefined) {
      info = { frames: e.isImage ? 1 : e.numFrames, width: e.width, height: e.height };
      if (!existsSync(e.path)) throw new SampleError(`${this.where(e)}: ${e.isImage ? 'image' : 'video'} file not found: ${e.path}`);
      this.checkLength(e, info);
    } else info = await this.probe(e);
    this.info.set(index, info);
    return info;
  }

  /** Decodes one sample (no skipping). */
  private async load(index: number, epoch: number, out?: Float32Array): Promise<Sample> {
    const e = this.entries[index]!;
    const info = await this.infoOf(index);
    const T = this.numFrames;
    const H = this.height;
    const W = this.width;
    const rng = new SeededRng(mixSeed(this.seed, epoch, index));
    const start = e.isImage ? 0 : rng.below(info.frames - this.span + 1);
    const flip = this.randomFlip && rng.next() < 0.5;
    const filter = cropFilter(info.width, info.height, coverCrop(info.width, info.height, H, W), flip);
    let frames: Uint8Array[];
    try {
      frames = await decodeFrames(e.path, { start, count: e.isImage ? 1 : T, step: this.frameInterval, filter, width: W, height: H, threads: this.decoderThreads });
    } catch (err) {
      throw new SampleError(`${this.where(e)}: ${(err as Error).message}`);
    }
    if (e.isImage) frames = new Array<Uint8Array>(T).fill(frames[0]!);
    const video = framesToCTHW(frames, H, W, out);
    return { video, shape: [3, T, H, W], caption: e.caption, index, path: e.path, line: e.line, start, flip };
  }

  /**
   * Sample `index` for `epoch`: T frames from a seeded random start (stride frameInterval), resized to cover
   * imageSize and center-cropped, flipped at random when randomFlip. A bad file throws (naming the CSV line
   * and the file); with onBadSample 'skip' it is recorded in `skipped` and the next usable index is returned.
   */
  async get(index: number, opts: GetOptions = {}): Promise<Sample> {
    const n = this.entries.length;
    if (!(Number.isInteger(index) && index >= 0 && index < n)) throw new Error(`VideoDataset.get: index ${index} out of range [0, ${n})`);
    const epoch = opts.epoch ?? 0;
    for (let k = 0; k < n; k++) {
      const i = (index + k) % n;
      if (this.bad.has(i)) continue;
      try {
        return await this.load(i, epoch, opts.out);
      } catch (err) {
        if (this.onBadSample === 'error' || !(err instanceof SampleError)) throw err;
        if (!this.bad.has(i)) {
          this.bad.set(i, err.message);
          this.skipped.push({ line: this.entries[i]!.line, path: this.entries[i]!.rawPath, reason: err.message });
        }
      }
    }
    throw new Error(`${this.csvPath}: every sample failed to load (${this.skipped.length} skipped; first: ${this.skipped[0]?.reason})`);
  }
}

// ---- loader ----------------------------------------------------------------------------------------------

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle each epoch with a permutation from (seed, epoch). Default true. */
  shuffle?: boolean;
  /** Shuffle seed. Default 0. */
  seed?: number;
  /** Drop the last incomplete batch of an epoch. Default true. */
  dropLast?: boolean;
  /** Batches decoded ahead of the one being consumed. Default 2; 0 decodes on demand. */
  prefetch?: number;
  /** Concurrent ffmpeg processes at most. Default: the CPU count. */
  workers?: number;
}

/** Where the loader stands: the next batch it yields is batch `batch` of epoch `epoch`. */
export interface LoaderState {
  epoch: number;
  batch: number;
}

export interface Batch {
  /** [B, 3, T, H, W] in [-1, 1]. */
  video: Float32Array;
  shape: [number, number, number, number, number];
  captions: string[];
  /** Dataset index of each sample. */
  indices: number[];
  epoch: number;
  batch: number;
}

interface Pending {
  epoch: number;
  batch: number;
  promise: Promise<Batch>;
}

/** What a DataLoader batches: VideoDataset, or any source that writes [3,T,H,W] samples into `out`. */
export interface SampleSource {
  readonly length: number;
  readonly sampleShape: readonly [number, number, number, number];
  /** Writes sample `index` (for `epoch`) into opts.out; returns its caption and the index actually used. */
  get(index: number, opts: { epoch: number; out: Float32Array }): Promise<{ caption: string; index: number }>;
}

export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  readonly prefetch: number;
  /** Batches in one epoch. */
  readonly batchesPerEpoch: number;
  private pos: LoaderState = { epoch: 0, batch: 0 };
  private queue: Pending[] = [];
  private readonly limiter: Limiter;
  private orderCache: { epoch: number; order: Uint32Array } | null = null;

  constructor(readonly dataset: SampleSource, opts: LoaderOptions) {
    const B = opts.batchSize;
    if (!(Number.isInteger(B) && B >= 1)) throw new Error(`DataLoader: batchSize must be an integer >= 1, got ${B}`);
    this.batchSize = B;
    this.shuffle = opts.shuffle ?? true;
    this.seed = opts.seed ?? 0;
    this.dropLast = opts.dropLast ?? true;
    this.prefetch = opts.prefetch ?? 2;
    if (!(Number.isInteger(this.prefetch) && this.prefetch >= 0)) throw new Error(`DataLoader: prefetch must be an integer >= 0, got ${opts.prefetch}`);
    const n = dataset.length;
    this.batchesPerEpoch = this.dropLast ? Math.floor(n / B) : Math.ceil(n / B);
    if (this.batchesPerEpoch === 0) throw new Error(`DataLoader: the dataset has ${n} samples, fewer than batchSize ${B} with dropLast; lower batchSize (--batch_size N on the command line) or set dropLast false`);
    this.limiter = new Limiter(Math.max(1, opts.workers ?? availableParallelism()));
  }

  /** The sample order of an epoch (a seeded permutation when shuffling). */
  order(epoch: number): Uint32Array {
    if (this.orderCache?.epoch === epoch) return this.orderCache.order;
    const n = this.dataset.length;
    let order: Uint32Array;
    if (this.shuffle) order = new SeededRng(mixSeed(this.seed, epoch, 0x5348)).permutation(n);
    else {
      order = new Uint32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
    }
    this.orderCache = { epoch, order };
    return order;
  }

  /** Dataset indices of batch `batch` of `epoch`. */
  batchIndices(epoch: number, batch: number): number[] {
    const order = this.order(epoch);
    const lo = batch * this.batchSize;
    return Array.from(order.subarray(lo, Math.min(lo + this.batchSize, order.length)));
  }

  /** The position of the next batch (save it with a checkpoint). */
  state(): LoaderState {
    return { ...this.pos };
  }

  /** Continues from a saved state: the next batch is exactly the one that would have followed. */
  resume(state: LoaderState): void {
    const { epoch, batch } = state;
    if (!(Number.isInteger(epoch) && epoch >= 0 && Number.isInteger(batch) && batch >= 0 && batch <= this.batchesPerEpoch)) {
      throw new Error(`DataLoader.resume: bad state ${JSON.stringify(state)} (batch must be in [0, ${this.batchesPerEpoch}])`);
    }
    this.drop();
    this.pos = batch === this.batchesPerEpoch ? { epoch: epoch + 1, batch: 0 } : { epoch, batch };
  }

  private drop(): void {
    for (const p of this.queue) p.promise.catch(() => {});
    this.queue = [];
  }

  private advance(p: LoaderState): LoaderState {
    return p.batch + 1 >= this.batchesPerEpoch ? { epoch: p.epoch + 1, batch: 0 } : { epoch: p.epoch, batch: p.batch + 1 };
  }

  private async build(epoch: number, batch: number): Promise<Batch> {
    const indices = this.batchIndices(epoch, batch);
    const shape = this.dataset.sampleShape;
    const per = shape[0] * shape[1] * shape[2] * shape[3];
    const video = new Float32Array(indices.length * per);
    const samples = await Promise.all(
      indices.map((index, b) => this.limiter.run(() => this.dataset.get(index, { epoch, out: video.subarray(b * per, (b + 1) * per) }))),
    );
    return { video, shape: [indices.length, ...shape], captions: samples.map((s) => s.caption), indices: samples.map((s) => s.index), epoch, batch };
  }

  /** Keeps the next 1 + prefetch batches decoding. */
  private fill(): void {
    let p: LoaderState = this.queue.length ? this.advance(this.queue[this.queue.length - 1]!) : this.pos;
    while (this.queue.length < 1 + this.prefetch) {
      const promise = this.build(p.epoch, p.batch);
      promise.catch(() => {}); // consumed (and rethrown) by next()
      this.queue.push({ ...p, promise });
      p = this.advance(p);
    }
  }

  /** The next batch (rolling over into the next epoch after the last batch). */
  async next(): Promise<Batch> {
    this.fill();
    const head = this.queue.shift()!;
    let b: Batch;
    try {
      b = await head.promise;
    } catch (e) {
      this.drop(); // the position stays on the failed batch
      throw e;
    }
    this.pos = this.advance(head);
    return b;
  }

  /** The remaining batches of the current epoch. */
  async *epoch(): AsyncGenerator<Batch> {
    const e = this.pos.epoch;
    while (this.pos.epoch === e) yield await this.next();
  }

  /** Waits for the decodes in flight (so no ffmpeg process outlives the loader) and drops them. */
  async close(): Promise<void> {
    const q = this.queue;
    this.queue = [];
    await Promise.allSettled(q.map((p) => p.promise));
  }
}
