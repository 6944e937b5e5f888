// Standalone GELU (tanh approximation, as nn.GELU(approximate='tanh')) and SiLU, forward and backward, on
// f32 or f16 tensors of any shape (math in f32). The same GELU is fused as a matmul epilogue; this op is for
// the places it is not (and for its backward). Backward takes the forward's input x and the output gradient.
import activationWgsl from '../../shaders/activation.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, expectSameDType, grid, output, sameShape } from './common.js';

const SHADER = { name: 'activation', template: activationWgsl + f16Wgsl };

export type Activation = 'gelu' | 'silu';

function run(gpu: Gpu, kind: Activation, x: Tensor, dy: Tensor | null, out?: Tensor): Tensor {
  const op = `${kind}${dy ? 'Backward' : ''}`;
  if (kind !== 'gelu' && kind !== 'silu') throw new ShapeError(`activation: unknown kind "${kind as string}"; use 'gelu' or 'silu'`);
  expectLive(op, x, ...(dy ? [dy] : []));
  expectDType(op, x, ['f32', 'f16']);
  if (dy) {
    expectSameDType(op, x, dy);
    if (!sameShape(x.shape, dy.shape)) throw new ShapeError(`${op}: dy ${dy} must have the shape of x ${x}; pass the gradient of the forward's output`);
  }
  const y = output(gpu, op, x.shape, x.dtype, out);
  if (x.size === 0) return y;
  const f16 = x.dtype === 'f16';
  const vec4 = x.size % (f16 ? 8 : 4) === 0;
  const perWord = (f16 ? 2 : 1) * (vec4 ? 4 : 1);
  const nWords = Math.ceil(x.size / perWord);
  const kernel = gpu.kernel(SHADER, 'main', {
    WORD: `${vec4 ? 'vec4<' : ''}${f16 ? 'u32' : 'f32'}${vec4 ? '>' : ''}`,
    V: f16 ? (vec4 ? 'vec4<f32>' : 'vec2<f32>') : vec4 ? 'vec4<f32>' : 'f32',
    F16: f16,
    VEC4: vec4,
    GELU: kind === 'gelu',
    BACKWARD: !!dy,
  });
  const { workgroups, groupsX } = grid(gpu, nWords, 256);
  gpu.dispatch(kernel, dy ? [x, dy, y] : [x, y], [x.size, nWords, groupsX], workgroups);
  return y;
}

/** f(x) elementwise for f = GELU (tanh approximation) or SiLU; output has x's shape and dtype. */
export function activation(gpu: Gpu, kind: Activation, x: Tensor, out?: Tensor): Tensor {
  return run(gpu, kind, x, null, out);
}

/** dx = dy · f'(x), given the forward's input x and dy of x's shape and dtype. */
export function activationBackward(gpu: Gpu, kind: Activation, x: Tensor, dy: Tensor, out?: Tensor): Tensor {
  return run(gpu, kind, x, dy, out);
}

/** GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export const gelu = (gpu: Gpu, x: Tensor, out?: Tensor): Tensor => run(gpu, 'gelu', x, null, out);
export const geluBackward = (gpu: Gpu, x: Tensor, dy: Tensor, out?: Tensor): Tensor => run(gpu, 'gelu', x, dy, out);
/** SiLU (swish): x·σ(x). */
export const silu = (gpu: Gpu, x: Tensor, out?: Tensor): Tensor => run(gpu, 'silu', x, null, out);
export const siluBackward = (gpu: Gpu, x: Tensor, dy: Tensor, out?: Tensor): Tensor => run(gpu, 'silu', x, dy, out);
