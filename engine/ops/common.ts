// Checks and helpers shared by the ops. Every op validates shapes and dtypes synchronously and throws a
// ShapeError naming the op, the tensor and the fix, before anything is recorded.
import type { DType } from '../dtype.js';
import { ShapeError, shapeStr } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function expectDType(op: string, t: Tensor, allowed: readonly DType[]): void {
  if (!allowed.includes(t.dtype)) throw new ShapeError(`${op}: ${t} has dtype ${t.dtype}; expected ${allowed.join(' or ')}`);
}

export function expectRank(op: string, t: Tensor, min: number, max = min): void {
  if (t.rank < min || t.rank > max) {
    const want = min === max ? `${min}` : `${min}..${max}`;
    throw new ShapeError(`${op}: ${t} has rank ${t.rank}; expected rank ${want}`);
  }
}

export function expectLive(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.released) throw new ShapeError(`${op}: ${t.name} was used after release()`);
}

/** The caller's output tensor (checked) or a new one. */
export function output(gpu: Gpu, op: string, shape: readonly number[], dtype: DType, out?: Tensor): Tensor {
  if (!out) return gpu.tensor(shape, dtype, op);
  expectLive(op, out);
  if (!sameShape(out.shape, shape) || out.dtype !== dtype) {
    throw new ShapeError(`${op}: output ${out} must be ${shapeStr(shape)} ${dtype}`);
  }
  return out;
}

/** Workgroups for `n` items handled `perGroup` at a time, as a (possibly 2-D folded) grid, and its x width. */
export function grid(gpu: Gpu, n: number, perGroup: number): { workgroups: [number, number, number]; groupsX: number } {
  const workgroups = gpu.grid1d(Math.ceil(n / perGroup));
  return { workgroups, groupsX: workgroups[0] };
}

export function expectSameDType(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) throw new ShapeError(`${op}: ${b} has dtype ${b.dtype} but ${a} is ${a.dtype}; cast one of them first`);
}

/** An axis in -rank..rank-1 as a non-negative index (negative axes count from the end). */
export function normAxis(op: string, t: Tensor, axis: number): number {
  if (!Number.isInteger(axis) || axis < -t.rank || axis >= t.rank) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for ${t} (rank ${t.rank}); use -${t.rank}..${t.rank - 1}`);
  }
  return axis < 0 ? axis + t.rank : axis;
}

/** 32-bit words holding `n` elements of `dtype` (f16 packs two per word). */
export function words(n: number, dtype: DType): number {
  return dtype === 'f16' ? Math.ceil(n / 2) : n;
}
