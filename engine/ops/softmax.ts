// Softmax over the last dim (rows of length 1..8192), numerically stable (the row max is subtracted), and
// its backward dx = y·(dy − Σ dy·y) from the forward's output y. f32 or f16 storage, f32 math; one workgroup
// per row reads the row once into registers and writes the result once.
import softmaxWgsl from '../../shaders/softmax.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, expectRank, expectSameDType, grid, output, sameShape } from './common.js';

const SHADER = { name: 'softmax', template: softmaxWgsl + f16Wgsl };

/** Longest row: 256 threads × 32 register slots. */
export const SOFTMAX_MAX_LEN = 8192;

export interface SoftmaxOptions {
  /** Row reductions through subgroupMax/subgroupAdd (default: when the device has subgroups). */
  subgroups?: boolean;
  /**
   * Forward only: per-item key lengths (i32 or u32 [items]); row r uses only its first keyLen[r / rowsPerItem]
   * elements (clamped to 0..L), the rest get probability 0 and a row with none is all 0 (attention's masks).
   */
  keyLen?: { len: Tensor; rowsPerItem: number };
}

/** Workgroup size and register slots per thread for rows of `units` units (f32 elements or f16 words). */
export function softmaxPlan(units: number): { wg: number; per: number } {
  const wg = Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(units / 4))))));
  return { wg, per: Math.ceil(units / wg) };
}

function run(gpu: Gpu, op: string, a: Tensor, dy: Tensor | null, out: Tensor | undefined, opts: SoftmaxOptions): Tensor {
  expectLive(op, a, ...(dy ? [dy] : []));
  expectDType(op, a, ['f32', 'f16']);
  expectRank(op, a, 1, 8);
  if (dy) {
    expectSameDType(op, a, dy);
    if (!sameShape(a.shape, dy.shape)) throw new ShapeError(`${op}: dy ${dy} must have the shape of y ${a}; pass the gradient of the softmax output`);
  }
  const len = a.shape.at(-1)!;
  if (len > SOFTMAX_MAX_LEN) {
    throw new ShapeError(`${op}: rows of ${a} have ${len} elements, over the ${SOFTMAX_MAX_LEN} this kernel holds in registers; split the last dim`);
  }
  const subgroups = opts.subgroups ?? gpu.info.subgroups;
  const kl = opts.keyLen;
  if (kl) {
    if (dy) throw new ShapeError(`${op}: keyLen applies to the forward only (the backward of masked probabilities is already 0 there)`);
    expectLive(op, kl.len);
    expectDType(op, kl.len, ['i32', 'u32']);
    const rows = len === 0 ? 0 : a.size / len;
    if (!Number.isInteger(kl.rowsPerItem) || kl.rowsPerItem < 1 || kl.rowsPerItem * kl.len.size !== rows) {
      throw new ShapeError(`${op}: keyLen ${kl.len} × rowsPerItem ${kl.rowsPerItem} must cover the ${rows} rows of ${a}`);
    }
  }
  if (subgroups && !gpu.info.subgroups) {
    throw new ShapeError(`${op}: {subgroups: true} needs the subgroups feature, which ${gpu.info.adapter} lacks; leave the option unset`);
  }
  const y = output(gpu, op, a.shape, a.dtype, out);
  if (a.size === 0) return y;
  const f16 = a.dtype === 'f16';
  const rows = a.size / len;
  const { wg, per } = softmaxPlan(f16 ? Math.ceil(len / 2) : len);
  const kernel = gpu.kernel(SHADER, 'main', {
    WORD: f16 ? 'u32' : 'f32',
    V: f16 ? 'vec2<f32>' : 'f32',
    F16: f16,
    ODD: f16 && len % 2 === 1,
    BACKWARD: !!dy,
    SUBGROUPS: subgroups,
    WG: wg,
    PER: per,
    KEYLEN: !!kl,
    KLT: kl?.len.dtype ?? 'u32',
  });
  const { workgroups, groupsX } = grid(gpu, rows, 1);
  gpu.dispatch(kernel, dy ? [a, dy, y] : kl ? [a, y, kl.len] : [a, y], [rows, len, groupsX, a.size, kl?.rowsPerItem ?? 1], workgroups);
  return y;
}

/** softmax(x) over the last dim; output has x's shape and dtype. */
export function softmax(gpu: Gpu, x: Tensor, out?: Tensor, opts: SoftmaxOptions = {}): Tensor {
  return run(gpu, 'softmax', x, null, out, opts);
}

/** dx = y · (dy − Σ_lastdim dy·y), from the forward's output y and dy of its shape and dtype. */
export function softmaxBackward(gpu: Gpu, y: Tensor, dy: Tensor, out?: Tensor, opts: SoftmaxOptions = {}): Tensor {
  return run(gpu, 'softmaxBackward', y, dy, out, opts);
}
