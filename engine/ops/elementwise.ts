// Elementwise arithmetic on f32 or f16 tensors: add, mul (b may broadcast along leading dims), scale, axpby.
// Broadcasting b reads b[i % b.size], so b's dims (after any leading 1s) must be a trailing part of a's.
// Outputs have a's shape and dtype; math runs in f32 (f16 is read and written packed, two halves a word).
import elementwiseWgsl from '../../shaders/elementwise.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import { ShapeError, shapeStr } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, expectSameDType, grid, output, sameShape, words } from './common.js';

const SHADER = { name: 'elementwise', template: elementwiseWgsl + f16Wgsl };

/** b's shape, less leading 1s, equals a trailing part of a's (e.g. [C] or [1, C] for [N, C]), or b has one element. */
function broadcasts(b: readonly number[], a: readonly number[]): boolean {
  let lead = 0;
  while (lead < b.length && b[lead] === 1) lead++;
  const core = b.slice(lead);
  return core.length <= a.length && core.every((d, i) => d === a[a.length - core.length + i]);
}

interface Spec {
  op: string;
  a: Tensor;
  b: Tensor | null;
  mul: boolean;
  alpha: number;
  beta: number;
  broadcast: boolean;
  out?: Tensor;
}

function run(gpu: Gpu, s: Spec): Tensor {
  const { op, a, b } = s;
  expectLive(op, a, ...(b ? [b] : []));
  expectDType(op, a, ['f32', 'f16']);
  if (b) {
    expectSameDType(op, a, b);
    const ok = s.broadcast ? broadcasts(b.shape, a.shape) : sameShape(a.shape, b.shape);
    if (!ok) {
      const allowed = s.broadcast ? `${shapeStr(a.shape)}, a trailing part of it (e.g. [${a.shape.at(-1) ?? 1}]), or a single element` : shapeStr(a.shape);
      throw new ShapeError(`${op}: b ${b} does not fit a ${a}; b must be ${allowed}`);
    }
  }
  const y = output(gpu, op, a.shape, a.dtype, s.out);
  const f16 = a.dtype === 'f16';
  const kernel = gpu.kernel(SHADER, 'main', {
    WORD: f16 ? 'u32' : 'f32',
    F16: f16,
    HAS_B: !!b,
    BCAST: !!b && b.size !== a.size,
    MUL: s.mul,
  });
  const { workgroups, groupsX } = grid(gpu, words(a.size, a.dtype), 256);
  const params = [a.size, b?.size ?? 1, groupsX, { f32: s.alpha }, { f32: s.beta }];
  gpu.dispatch(kernel, b ? [a, b, y] : [a, y], params, workgroups);
  return y;
}

/** a + b; b is a's shape, a trailing part of it (bias [C] or [1, C] over [N, C]) or a single element. */
export function add(gpu: Gpu, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return run(gpu, { op: 'add', a, b, mul: false, alpha: 1, beta: 1, broadcast: true, out });
}

/** a · b elementwise; b broadcasts like add's. */
export function mul(gpu: Gpu, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return run(gpu, { op: 'mul', a, b, mul: true, alpha: 1, beta: 0, broadcast: true, out });
}

/** alpha · a. */
export function scale(gpu: Gpu, a: Tensor, alpha: number, out?: Tensor): Tensor {
  return run(gpu, { op: 'scale', a, b: null, mul: false, alpha, beta: 0, broadcast: false, out });
}

/** alpha · a + beta · b, a and b of the same shape. */
export function axpby(gpu: Gpu, a: Tensor, b: Tensor, alpha: number, beta: number, out?: Tensor): Tensor {
  return run(gpu, { op: 'axpby', a, b, mul: false, alpha, beta, broadcast: false, out });
}
