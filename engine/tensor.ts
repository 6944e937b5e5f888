// GPU tensors: a contiguous row-major buffer with a shape and an element type.
// Lifetime is explicit: release() hands the buffer back to the pool (see pool.ts for when it is reused).
import { DTYPE_BYTES, type DType, type HostArray } from './dtype.js';
import { ShapeError, shapeStr } from './errors.js';
import type { Gpu } from './gpu.js';

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: readonly number[], what: string): number[] {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`${what}: shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
  }
  return [...shape];
}

/** Bytes a tensor's buffer needs: element bytes rounded up to whole 32-bit words (f16 is packed in pairs). */
export function tensorBytes(shape: readonly number[], dtype: DType): number {
  return Math.max(4, Math.ceil((numel(shape) * DTYPE_BYTES[dtype]) / 4) * 4);
}

export class Tensor {
  readonly size: number;
  private _buffer: GPUBuffer | null;

  constructor(
    readonly gpu: Gpu,
    readonly shape: readonly number[],
    readonly dtype: DType,
    buffer: GPUBuffer,
    readonly name: string,
  ) {
    this.size = numel(shape);
    this._buffer = buffer;
  }

  get buffer(): GPUBuffer {
    if (!this._buffer) throw new Error(`tensor "${this.name}" ${shapeStr(this.shape)} was used after release()`);
    return this._buffer;
  }

  get released(): boolean {
    return this._buffer === null;
  }

  /** Bytes of element data (without the word padding of odd-sized f16 tensors). */
  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name} ${shapeStr(this.shape)} ${this.dtype}`;
  }

  /**
   * Drops this handle. The buffer goes back to the pool when its owner and every view of it are released
   * (views count as references). Work already encoded that reads the tensor still sees its data.
   */
  release(): void {
    if (!this._buffer) return;
    const buffer = this._buffer;
    this._buffer = null;
    if (this.isView) return;
    const owner = this.base ?? this;
    if (--owner.refs === 0) this.gpu.releaseBuffer(buffer);
  }

  /** Downloads the contents (f16 decoded to f32). Flushes pending work. */
  read(): Promise<HostArray> {
    return this.gpu.read(this);
  }

  /**
   * Same data, new shape (no copy). The view holds a reference: the buffer stays allocated until both the
   * view and the tensor it came from are released.
   */
  reshape(shape: readonly number[]): Tensor {
    const s = checkShape(shape, `reshape of ${this}`);
    if (numel(s) !== this.size) throw new ShapeError(`reshape of ${this} to ${shapeStr(s)}: element counts differ (${this.size} vs ${numel(s)})`);
    const owner = this.base ?? this;
    if (owner.isView) throw new Error(`reshape of ${this}: the tensor is an unowned alias (isView); reshape the tensor it aliases`);
    const view = new Tensor(this.gpu, s, this.dtype, this.buffer, `${this.name}.view`);
    view.base = owner;
    owner.refs++;
    return view;
  }

  /** A reshape view: the tensor it shares its buffer with (null for the owner). */
  private base: Tensor | null = null;
  /** Live handles (owner + views) on the buffer; 0 returns it to the pool. */
  private refs = 1;
  /** An unowned alias of another tensor's buffer (test helpers): release() never frees the buffer. */
  isView = false;
}
