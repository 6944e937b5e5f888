// cast: f32 → f16 (round to nearest even, as engine/dtype.ts f32ToF16Bits), f16 → f32 (exact), and
// same-dtype copies of any dtype.
import castWgsl from '../../shaders/cast.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import { checkDType, type DType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectLive, grid, output, words } from './common.js';

const SHADER = { name: 'cast', template: castWgsl + f16Wgsl };

/** x converted to `dtype` (a new tensor, or `out`, which must not be x). */
export function cast(gpu: Gpu, x: Tensor, dtype: DType, out?: Tensor): Tensor {
  const op = 'cast';
  expectLive(op, x);
  checkDType(dtype, op);
  const entry = x.dtype === dtype ? null : x.dtype === 'f32' && dtype === 'f16' ? 'to_f16' : x.dtype === 'f16' && dtype === 'f32' ? 'to_f32' : undefined;
  if (entry === undefined) {
    throw new ShapeError(`cast: ${x} to ${dtype} is not supported; cast converts f32 ↔ f16 and copies a tensor to its own dtype`);
  }
  const y = output(gpu, op, x.shape, dtype, out);
  if (y.buffer === x.buffer) throw new ShapeError(`cast: output ${y} is the input ${x}; pass a separate output tensor`);
  if (x.size === 0) return y;
  if (!entry) {
    gpu.copy(x, y);
    return y;
  }
  const { workgroups, groupsX } = grid(gpu, words(x.size, dtype), 256);
  gpu.dispatch(gpu.kernel(SHADER, entry, {}), [x, y], [x.size, groupsX], workgroups);
  return y;
}
