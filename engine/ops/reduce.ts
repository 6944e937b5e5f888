// sum over one axis: x viewed as [outer, len, inner] → [outer, inner] in f32 (x is f32 or f16).
// Deterministic: every pass adds in a fixed order. A long axis is split into chunks summed in parallel,
// and the [outer, chunks, inner] partials are summed again by the next pass.
import reduceWgsl from '../../shaders/reduce.wgsl';
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, grid, normAxis, output } from './common.js';

const SHADER = { name: 'reduce', template: reduceWgsl };

// rows (inner == 1): a workgroup per (row, chunk); split rows while there are fewer than ROW_TARGET
// workgroups, keeping at least ROW_MIN_CHUNK elements per workgroup.
const ROW_TARGET = 1024;
const ROW_MIN_CHUNK = 2048;
// cols (inner > 1): a thread per (outer, chunk, column); split while there are fewer than COL_TARGET threads.
const COL_TARGET = 65536;
const COL_MIN_CHUNK = 64;

export interface SumPass {
  kernel: 'rows' | 'cols';
  outer: number;
  len: number;
  inner: number;
  /** Axis elements each workgroup (rows) or thread (cols) adds, and how many such chunks the axis has. */
  chunk: number;
  chunks: number;
}

/** The passes that sum [outer, len, inner] over len: each but the last leaves len = chunks for the next. */
export function sumPasses(outer: number, len: number, inner: number): SumPass[] {
  const passes: SumPass[] = [];
  for (;;) {
    const kernel = inner === 1 ? 'rows' : 'cols';
    const [parallel, target, min] = kernel === 'rows' ? [outer, ROW_TARGET, ROW_MIN_CHUNK] : [outer * inner, COL_TARGET, COL_MIN_CHUNK];
    let chunks = Math.max(1, Math.min(Math.ceil(target / parallel), Math.floor(len / min)));
    const chunk = Math.ceil(len / chunks);
    chunks = Math.ceil(len / chunk);
    passes.push({ kernel, outer, len, inner, chunk, chunks });
    if (chunks === 1) return passes;
    len = chunks;
  }
}

export interface SumOptions {
  /** Keep the summed axis as a dim of size 1. */
  keepdim?: boolean;
  /** Row reductions through subgroupAdd (default: when the device has subgroups). */
  subgroups?: boolean;
}

/** Sum of x (f32 or f16) over `axis` (negative counts from the end), in f32. */
export function sum(gpu: Gpu, x: Tensor, axis: number, out?: Tensor, opts: SumOptions = {}): Tensor {
  const op = 'sum';
  expectLive(op, x);
  expectDType(op, x, ['f32', 'f16']);
  const ax = normAxis(op, x, axis);
  const subgroups = opts.subgroups ?? gpu.info.subgroups;
  if (subgroups && !gpu.info.subgroups) {
    throw new ShapeError(`${op}: {subgroups: true} needs the subgroups feature, which ${gpu.info.adapter} lacks; leave the option unset`);
  }
  const shape = opts.keepdim ? x.shape.map((d, i) => (i === ax ? 1 : d)) : x.shape.filter((_, i) => i !== ax);
  const y = output(gpu, op, shape, 'f32', out);
  const outer = x.shape.slice(0, ax).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  const len = x.shape[ax]!;
  if (y.size === 0) return y;
  if (len === 0) {
    gpu.fill(y, 0);
    return y;
  }
  let src = x;
  const passes = sumPasses(outer, len, inner);
  passes.forEach((pass, i) => {
    const total = pass.outer * pass.chunks * pass.inner;
    const dst = i === passes.length - 1 ? y : gpu.tensor([total], 'f32', 'sum.partial');
    const rows = pass.kernel === 'rows';
    const kernel = gpu.kernel(SHADER, pass.kernel, {
      WORD: src.dtype === 'f16' ? 'u32' : 'f32',
      F16: src.dtype === 'f16',
      SUBGROUPS: rows && subgroups,
    });
    const { workgroups, groupsX } = grid(gpu, total, rows ? 1 : 256);
    gpu.dispatch(kernel, [src, dst], [pass.len, pass.inner, pass.chunk, pass.chunks, total, groupsX], workgroups);
    if (src !== x) src.release();
    src = dst;
  });
  return y;
}
