// Mean-squared-error loss, as diffusion training uses it: the mean of (pred − target)² over all elements
// (a scalar, shape []), or per sample over all but the first dim (shape [B], e.g. to weight samples by
// timestep); and its backward dpred = 2·(pred − target)/count · dloss. pred and target are f32 or f16 (math
// and the loss in f32). The forward is a deterministic two-level reduction: workgroups sum fixed chunks,
// then one workgroup per sample sums the chunks in order.
import lossWgsl from '../../shaders/loss.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import { ShapeError, shapeStr } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, expectSameDType, grid, output, sameShape, words } from './common.js';

const SHADER = { name: 'loss', template: lossWgsl + f16Wgsl };

/** 'mean': one scalar over all elements; 'per-sample': the mean over all but the first dim, shape [B]. */
export type LossReduction = 'mean' | 'per-sample';

export interface MseOptions {
  reduction?: LossReduction;
  out?: Tensor;
}

// Split each sample while there are fewer than TARGET partial workgroups, keeping ≥ MIN_CHUNK elements each;
// a sample then has at most ceil(TARGET / B) partials for the second level.
const TARGET = 1024;
const MIN_CHUNK = 2048;
// Samples of at most SMALL elements are summed by one thread each instead of a workgroup each.
const SMALL = 32;

/** Elements per first-level workgroup and how many such chunks each sample of m elements has. */
export function mseChunks(samples: number, m: number): { chunk: number; chunks: number } {
  const want = Math.max(1, Math.min(Math.ceil(TARGET / samples), Math.floor(m / MIN_CHUNK)));
  const chunk = Math.ceil(m / want);
  return { chunk, chunks: Math.ceil(m / chunk) };
}

function check(op: string, pred: Tensor, target: Tensor, reduction: LossReduction): { samples: number; m: number } {
  expectLive(op, pred, target);
  expectDType(op, pred, ['f32', 'f16']);
  expectSameDType(op, pred, target);
  if (!sameShape(pred.shape, target.shape)) throw new ShapeError(`${op}: target ${target} must have the shape of pred ${pred}`);
  if (reduction !== 'mean' && reduction !== 'per-sample') throw new ShapeError(`${op}: unknown reduction "${reduction as string}"; use 'mean' or 'per-sample'`);
  if (pred.size === 0) throw new ShapeError(`${op}: pred ${pred} is empty; the mean of no elements is undefined`);
  if (reduction === 'mean') return { samples: 1, m: pred.size };
  if (pred.rank < 1) throw new ShapeError(`${op}: reduction 'per-sample' needs a leading batch dim, but pred ${pred} is a scalar; use reduction 'mean'`);
  return { samples: pred.shape[0]!, m: pred.size / pred.shape[0]! };
}

const wordType = (t: Tensor) => (t.dtype === 'f16' ? 'u32' : 'f32');

/** mean((pred − target)²): shape [] for reduction 'mean' (default), [B] for 'per-sample'; always f32. */
export function mseLoss(gpu: Gpu, pred: Tensor, target: Tensor, opts: MseOptions = {}): Tensor {
  const op = 'mseLoss';
  const reduction = opts.reduction ?? 'mean';
  const { samples, m } = check(op, pred, target, reduction);
  const y = output(gpu, op, reduction === 'mean' ? [] : [samples], 'f32', opts.out);
  const { chunk, chunks } = mseChunks(samples, m);
  const f16 = pred.dtype === 'f16';
  const defines = { WORD: wordType(pred), F16: f16, FINISH: false, BACKWARD: false, PER_SAMPLE: false };
  if (m <= SMALL) {
    const g = grid(gpu, samples, 256);
    gpu.dispatch(gpu.kernel(SHADER, 'per_thread', defines), [pred, target, y], [m, m, 1, samples, g.groupsX, 0, { f32: 1 / m }], g.workgroups);
    return y;
  }
  const twoLevel = chunks > 1;
  const part = twoLevel ? gpu.tensor([samples * chunks], 'f32', 'mseLoss.partial') : y;
  const total = samples * chunks;
  const g1 = grid(gpu, total, 1);
  gpu.dispatch(gpu.kernel(SHADER, 'partial', defines), [pred, target, part], [m, chunk, chunks, total, g1.groupsX, 0, { f32: twoLevel ? 1 : 1 / m }], g1.workgroups);
  if (twoLevel) {
    const g2 = grid(gpu, samples, 1);
    const finish = gpu.kernel(SHADER, 'partial', { ...defines, FINISH: true });
    gpu.dispatch(finish, [part, y], [chunks, chunks, 1, samples, g2.groupsX, 0, { f32: 1 / m }], g2.workgroups);
    part.release();
  }
  return y;
}

/**
 * dpred = 2·(pred − target)/count · dloss, with pred's shape and dtype. For reduction 'mean' (default)
 * count is pred.size and dloss holds one value (shape [] or [1]); for 'per-sample' count is the elements
 * per sample and dloss is [B].
 */
export function mseLossBackward(gpu: Gpu, pred: Tensor, target: Tensor, dloss: Tensor, opts: MseOptions = {}): Tensor {
  const op = 'mseLossBackward';
  const reduction = opts.reduction ?? 'mean';
  const { samples, m } = check(op, pred, target, reduction);
  expectLive(op, dloss);
  expectDType(op, dloss, ['f32']);
  if (reduction === 'mean' && dloss.size !== 1) {
    throw new ShapeError(`${op}: dloss ${dloss} must hold one value for reduction 'mean'; pass reduction 'per-sample' for a [B] gradient`);
  }
  if (reduction === 'per-sample' && !sameShape(dloss.shape, [samples])) {
    throw new ShapeError(`${op}: dloss ${dloss} must be ${shapeStr([samples])} (one value per sample of pred ${pred}) for reduction 'per-sample'`);
  }
  const dpred = output(gpu, op, pred.shape, pred.dtype, opts.out);
  const n = words(pred.size, pred.dtype);
  const kernel = gpu.kernel(SHADER, 'backward', { WORD: wordType(pred), F16: pred.dtype === 'f16', FINISH: false, BACKWARD: true, PER_SAMPLE: reduction === 'per-sample' });
  const { workgroups, groupsX } = grid(gpu, n, 256);
  gpu.dispatch(kernel, [pred, target, dloss, dpred], [m, 0, 0, pred.size, groupsX, n, { f32: 1 / m }], workgroups);
  return dpred;
}
