// Per-kernel GPU time from timestamp queries. While enabled, every dispatch gets its own compute pass
// with beginning/end timestamps; results are resolved at each submit and read back asynchronously.

export interface KernelTime {
  kernel: string;
  count: number;
  totalMs: number;
  meanUs: number;
}

const CAPACITY = 4096; // queries per set: 2048 dispatches per submit before an automatic flush

export class Profiler {
  private querySet: GPUQuerySet | null = null;
  private labels: string[] = [];
  private pending: Promise<void>[] = [];
  private totals = new Map<string, { count: number; ns: number }>();
  enabled = false;

  constructor(
    private device: GPUDevice,
    readonly available: boolean,
  ) {}

  enable(on = true): void {
    if (on && !this.available) {
      throw new Error('profiler: this device has no timestamp-query feature (software llvmpipe, or a browser without it); profile on SwiftShader or a GPU');
    }
    this.enabled = on;
  }

  get full(): boolean {
    return this.labels.length * 2 >= CAPACITY;
  }

  /** Timestamp writes for the pass that will hold one dispatch of `label`. */
  passTimestamps(label: string): GPUComputePassTimestampWrites {
    this.querySet ??= this.device.createQuerySet({ type: 'timestamp', count: CAPACITY, label: 'profiler' });
    const i = this.labels.length;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Encodes the resolve of this submit's queries; call before finishing the encoder. */
  resolve(encoder: GPUCommandEncoder): (() => void) | null {
    if (!this.labels.length || !this.querySet) return null;
    const n = this.labels.length * 2;
    const bytes = n * 8;
    const resolveBuf = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readBuf = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.resolveQuerySet(this.querySet, 0, n, resolveBuf, 0);
    encoder.copyBufferToBuffer(resolveBuf, 0, readBuf, 0, bytes);
    const labels = this.labels;
    this.labels = [];
    // Called after submit: map and accumulate without blocking the caller.
    return () => {
      this.pending.push(
        readBuf.mapAsync(GPUMapMode.READ).then(() => {
          const t = new BigUint64Array(readBuf.getMappedRange());
          labels.forEach((label, i) => {
            const ns = Number(t[2 * i + 1]! - t[2 * i]!);
            const e = this.totals.get(label) ?? { count: 0, ns: 0 };
            e.count++;
            e.ns += ns > 0 ? ns : 0;
            this.totals.set(label, e);
          });
          readBuf.unmap();
          readBuf.destroy();
          resolveBuf.destroy();
        }),
      );
    };
  }

  /** Waits for outstanding readbacks and returns per-kernel times, slowest first. */
  async report(): Promise<KernelTime[]> {
    await Promise.all(this.pending);
    this.pending = [];
    return [...this.totals]
      .map(([kernel, { count, ns }]) => ({ kernel, count, totalMs: ns / 1e6, meanUs: ns / 1e3 / count }))
      .sort((a, b) => b.totalMs - a.totalMs);
  }

  reset(): void {
    this.totals.clear();
  }

  static format(rows: KernelTime[]): string {
    const total = rows.reduce((s, r) => s + r.totalMs, 0) || 1;
    const lines = rows.map(
      (r) => `${r.totalMs.toFixed(3).padStart(10)} ms ${((100 * r.totalMs) / total).toFixed(1).padStart(5)}% ${String(r.count).padStart(6)} × ${r.meanUs.toFixed(1).padStart(9)} us  ${r.kernel}`,
    );
    return ['  total ms     %   count       mean      kernel', ...lines].join('\n');
  }
}
