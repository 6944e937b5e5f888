// Caching allocator for storage buffers, stream-ordered like PyTorch's CUDA caching allocator:
// a released buffer may be handed to work encoded *after* the release (the GPU runs dispatches in order,
// so the new writer waits for the old readers), but it is only destroyed once the GPU has finished every
// submit that was encoded before the release.

const MIN_BYTES = 256;

/** Size class: powers of two below 1 MiB, then steps of 1/8 of the power of two (≤ 12.5 % slack). */
export function sizeClass(bytes: number): number {
  const b = Math.max(MIN_BYTES, bytes);
  const p = 2 ** Math.ceil(Math.log2(b));
  if (p <= 1 << 20) return p;
  const step = p / 16;
  return Math.ceil(b / step) * step;
}

export interface PoolStats {
  /** Bytes held by the pool (in use + cached). */
  reservedBytes: number;
  inUseBytes: number;
  peakInUseBytes: number;
  allocations: number;
  reuses: number;
}

interface Cached {
  buffer: GPUBuffer;
  /** Submit serial at release time: the buffer may be destroyed once this serial has completed. */
  releasedAt: number;
}

export class BufferPool {
  private free = new Map<number, Cached[]>();
  /** Creation order of each buffer, for canonicalize(). */
  private readonly serial = new WeakMap<GPUBuffer, number>();
  private created = 0;
  readonly stats: PoolStats = { reservedBytes: 0, inUseBytes: 0, peakInUseBytes: 0, allocations: 0, reuses: 0 };

  constructor(
    private device: GPUDevice,
    private maxBufferSize: number,
  ) {}

  /** A buffer of at least `bytes` bytes (STORAGE | COPY_SRC | COPY_DST). */
  acquire(bytes: number, label: string): GPUBuffer {
    const size = sizeClass(bytes);
    const exact = size > this.maxBufferSize; // the last size class may not fit the device: allocate exactly
    const list = exact ? undefined : this.free.get(size);
    const hit = list?.pop();
    let buffer: GPUBuffer;
    if (hit) {
      buffer = hit.buffer;
      this.stats.reuses++;
    } else {
      buffer = this.create(exact ? bytes : size, label);
    }
    this.stats.inUseBytes += buffer.size;
    this.stats.peakInUseBytes = Math.max(this.stats.peakInUseBytes, this.stats.inUseBytes);
    return buffer;
  }

  private create(bytes: number, label: string): GPUBuffer {
    const buffer = this.device.createBuffer({
      size: Math.ceil(bytes / 4) * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      label,
    });
    this.stats.allocations++;
    this.stats.reservedBytes += buffer.size;
    this.serial.set(buffer, this.created++);
    return buffer;
  }

  /**
   * Puts every free list in creation order. Called at each submit: a repeated piece of work (a training
   * step) then gets the same buffers every time it runs, whatever order the last run released them in, so
   * the bind groups made for it can be reused (Gpu's bind-group cache).
   */
  canonicalize(): void {
    for (const list of this.free.values()) if (list.length > 1) list.sort((a, b) => this.serial.get(a.buffer)! - this.serial.get(b.buffer)!);
  }

  release(buffer: GPUBuffer, submitSerial: number): void {
    this.stats.inUseBytes -= buffer.size;
    const size = buffer.size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push({ buffer, releasedAt: submitSerial });
  }

  /** Destroys cached buffers whose last use has completed on the GPU. Returns the bytes freed. */
  trim(completedSerial: number): number {
    let freed = 0;
    for (const [size, list] of this.free) {
      const keep = list.filter((c) => c.releasedAt > completedSerial);
      for (const c of list) {
        if (c.releasedAt <= completedSerial) {
          freed += c.buffer.size;
          c.buffer.destroy();
        }
      }
      if (keep.length) this.free.set(size, keep);
      else this.free.delete(size);
    }
    this.stats.reservedBytes -= freed;
    return freed;
  }
}
