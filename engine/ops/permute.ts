// permute: reorder a tensor's axes (rank ≤ 6, any dtype) into a new contiguous tensor; transpose2d swaps the
// last two. Size-1 axes are dropped and axes that stay neighbours in the same order are merged first, so
// the kernel walks as few dims as possible (and an order-preserving permute is a plain copy).
import permuteWgsl from '../../shaders/permute.wgsl';
import { ShapeError, shapeStr } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectLive, expectRank, grid, output, words } from './common.js';

const SHADER = { name: 'permute', template: permuteWgsl };
const MAX_RANK = 6;

/** y's dims and x's matching strides, after dropping size-1 axes and merging runs of consecutive x axes. */
export function permutePlan(shape: readonly number[], dims: readonly number[]): { shape: number[]; stride: number[] } {
  const kept = shape.flatMap((d, i) => (d === 1 ? [] : [i])); // x's axes of size > 1
  const xs = kept.map((i) => shape[i]!);
  const stride = xs.map((_, i) => xs.slice(i + 1).reduce((a, b) => a * b, 1));
  const outShape: number[] = [];
  const outStride: number[] = [];
  let prev = -2;
  for (const d of dims.filter((d) => shape[d] !== 1).map((d) => kept.indexOf(d))) {
    if (d === prev + 1) {
      outShape[outShape.length - 1]! *= xs[d]!; // continues the previous axis in x: merge
      outStride[outStride.length - 1] = stride[d]!;
    } else {
      outShape.push(xs[d]!);
      outStride.push(stride[d]!);
    }
    prev = d;
  }
  return { shape: outShape, stride: outStride };
}

/** y[i0, …] = x[…] with y's axis k being x's axis dims[k]; e.g. [B, N, H, D] with [0, 2, 1, 3] → [B, H, N, D]. */
export function permute(gpu: Gpu, x: Tensor, dims: readonly number[], out?: Tensor): Tensor {
  const op = 'permute';
  expectLive(op, x);
  expectRank(op, x, 0, MAX_RANK);
  const isPerm = dims.length === x.rank && [...dims].sort((a, b) => a - b).every((d, i) => d === i);
  if (!isPerm) {
    throw new ShapeError(`${op}: dims ${shapeStr(dims)} is not a permutation of 0..${x.rank - 1} for ${x}; list each axis of x once`);
  }
  const y = output(gpu, op, dims.map((d) => x.shape[d]!), x.dtype, out);
  if (x.size === 0) return y;
  const plan = permutePlan(x.shape, dims);
  if (plan.shape.length <= 1) {
    gpu.copy(x, y); // the order of elements is unchanged
    return y;
  }
  const pad = (v: number[]) => [...v, ...Array<number>(8 - v.length).fill(0)];
  // Whole 16- or 8-byte units when the last axis stays last (H100: the model's head permutes 1 → ~2.5 TB/s).
  const elemBytes = x.dtype === 'f16' ? 2 : 4;
  const last = plan.shape.at(-1)!;
  const unitWords = plan.stride.at(-1) === 1 ? [4, 2].find((w) => (last * elemBytes) % (4 * w) === 0) : undefined;
  if (unitWords) {
    const per = (unitWords * 4) / elemBytes; // elements per unit; every other stride is a multiple of `last`
    const shape = [...plan.shape.slice(0, -1), last / per];
    const stride = plan.stride.map((s, i) => (i === plan.stride.length - 1 ? 1 : s / per));
    const units = x.size / per;
    const kernel = gpu.kernel(SHADER, 'main', { F16: false, UNIT: unitWords === 4 ? 'vec4<u32>' : 'vec2<u32>' });
    const { workgroups, groupsX } = grid(gpu, units, 256);
    gpu.dispatch(kernel, [x, y], [units, groupsX, shape.length, 0, ...pad(shape), ...pad(stride)], workgroups);
    return y;
  }
  const kernel = gpu.kernel(SHADER, 'main', { F16: x.dtype === 'f16', UNIT: 'u32' });
  const { workgroups, groupsX } = grid(gpu, words(x.size, x.dtype), 256);
  gpu.dispatch(kernel, [x, y], [x.size, groupsX, plan.shape.length, 0, ...pad(plan.shape), ...pad(plan.stride)], workgroups);
  return y;
}

/** Swaps the last two axes: [..., M, N] → [..., N, M]. */
export function transpose2d(gpu: Gpu, x: Tensor, out?: Tensor): Tensor {
  expectRank('transpose2d', x, 2, MAX_RANK);
  const dims = x.shape.map((_, i) => i);
  dims.splice(-2, 2, x.rank - 1, x.rank - 2);
  return permute(gpu, x, dims, out);
}
