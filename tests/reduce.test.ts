// sum over an axis: row kernel (inner == 1, with and without subgroups), column kernel, multi-pass long axes.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { withGridLimit } from './ops-util.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { sum, sumPasses, type SumOptions } from '../engine/ops/reduce.js';
import type { Gpu } from '../engine/gpu.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
/** Sum of x (row-major, `shape`) over `axis`: out[o, j] = Σ_k x[o, k, j] for x viewed as [outer, len, inner]. */
function refSum(x: ArrayLike<number>, shape: readonly number[], axis: number): Float64Array {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const len = shape[axis]!;
  const y = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < len; k++)
      for (let j = 0; j < inner; j++) y[o * inner + j]! += x[(o * len + k) * inner + j]!;
  return y;
}
// ------------------------------------------------------------------------------------------------------

const RTOL: Record<string, number> = { f32: 1e-5, f16: 1e-2 };

/** Sums a fresh random tensor with the GPU and checks it against the reference. */
async function check(ctx: Ctx, shape: number[], axis: number, dtype: DType, opts: SumOptions = {}, gpu: Gpu = ctx.gpu) {
  const data = ctx.rng.normal(shape.reduce((a, b) => a * b, 1));
  const x = gpu.upload(data, shape, dtype, 'x');
  const y = sum(gpu, x, axis, undefined, opts);
  const ax = axis < 0 ? axis + shape.length : axis;
  const want = opts.keepdim ? shape.map((d, i) => (i === ax ? 1 : d)) : shape.filter((_, i) => i !== ax);
  if (y.dtype !== 'f32' || y.shape.join() !== want.join()) throw new Error(`sum of [${shape}] over ${axis}: output ${y}, expected [${want}] f32`);
  const ref = refSum(dtype === 'f16' ? roundToF16(data) : data, shape, ax);
  assertClose(await y.read(), ref, { rtol: RTOL[dtype]!, what: `sum ${dtype} [${shape}] axis ${axis}${opts.subgroups === undefined ? '' : ` subgroups ${opts.subgroups}`}` });
  x.release();
  y.release();
}

// Rows (the summed axis is innermost): short, odd, not a multiple of 256, many rows, and long rows (two passes).
const ROWS: [number[], number][] = [[[1, 1], 1], [[5, 1000], 1], [[3, 7, 257], -1], [[70, 33], 1], [[2, 50001], 1], [[7], 0], [[4, 9, 1], 1]];

const s = suite('reduce');

for (const subgroups of [false, true]) {
  const needs = (gpu: Gpu) => (subgroups && !gpu.info.subgroups ? 'device has no subgroups' : null);
  s.gpuTest(`rows (inner == 1), subgroups ${subgroups}, f32 and f16`, needs, async (ctx) => {
    for (const [shape, axis] of ROWS) await check(ctx, shape, axis, 'f32', { subgroups });
    for (const [shape, axis] of ROWS.slice(0, 5)) await check(ctx, shape, axis, 'f16', { subgroups });
  });

  s.gpuTest(`rows in a folded 2-D grid, subgroups ${subgroups}`, needs, async (ctx) => {
    await withGridLimit(ctx.gpu, 4, () => check(ctx, [13, 300], 1, 'f32', { subgroups }));
  });
}

s.test('columns (inner > 1), any axis, keepdim, f32 and f16', async (ctx) => {
  const cases: [number[], number][] = [[[3, 5, 7], 1], [[2, 300, 9], 1], [[17, 33], 0], [[5, 6, 7, 8], 0], [[5, 6, 7, 8], -3], [[1, 1000, 3], 1]];
  for (const [shape, axis] of cases) await check(ctx, shape, axis, 'f32');
  for (const [shape, axis] of cases) await check(ctx, shape, axis, 'f16');
  await check(ctx, [4, 5, 6], 1, 'f32', { keepdim: true });
  await check(ctx, [4, 5, 6], 2, 'f16', { keepdim: true });
});

s.test('long axis: [4096, 40] over axis 0 takes parallel passes', async (ctx) => {
  const passes = sumPasses(1, 4096, 40);
  if (passes.length < 2 || passes[0]!.chunks < 16) throw new Error(`expected a chunked first pass, got ${JSON.stringify(passes)}`);
  await check(ctx, [4096, 40], 0, 'f32');
  await check(ctx, [2, 4096, 6], 1, 'f16');
  // The plan for [16384, 1152] (too big to run here): ≥ 65536 threads in the first pass, each adding ≤ 512.
  const big = sumPasses(1, 16384, 1152);
  if (big[0]!.chunks * 1152 < 65536 || big[0]!.chunk > 512 || big.at(-1)!.chunks !== 1) throw new Error(`[16384, 1152]: ${JSON.stringify(big)}`);
});

s.test('columns in a folded 2-D grid', async (ctx) => {
  await withGridLimit(ctx.gpu, 16, () => check(ctx, [3, 61, 200], 0, 'f32'));
});

s.test('deterministic: the same input sums to the same bits', async ({ gpu, rng }) => {
  const x = gpu.upload(rng.normal(4096 * 40), [4096, 40]);
  const r = gpu.upload(rng.normal(3 * 40000), [3, 40000]);
  const a = [await sum(gpu, x, 0).read(), await sum(gpu, r, 1).read()];
  const b = [await sum(gpu, x, 0).read(), await sum(gpu, r, 1).read()];
  a.forEach((v, i) => {
    if (!v.every((e, j) => Object.is(e, b[i]![j]))) throw new Error(`sum ${i} differs between runs`);
  });
});

s.test('empty axis sums to zero; an out tensor is filled', async ({ gpu }) => {
  const y = sum(gpu, gpu.tensor([3, 0, 2]), 1);
  assertClose(await y.read(), new Float32Array(6), { rtol: 0, what: 'empty axis' });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const x = gpu.tensor([4, 6]);
  await assertThrows(() => sum(gpu, x, 2), /sum: axis 2 is out of range .*use -2\.\.1/, 'axis too large');
  await assertThrows(() => sum(gpu, x, -3), /sum: axis -3 is out of range/, 'axis too negative');
  await assertThrows(() => sum(gpu, x, 0.5), /sum: axis 0\.5/, 'fractional axis');
  await assertThrows(() => sum(gpu, gpu.tensor([4], 'i32'), 0), /sum: .* dtype i32; expected f32 or f16/, 'i32 input');
  await assertThrows(() => sum(gpu, x, 0, gpu.tensor([4])), /sum: output .* must be \[6\] f32/, 'wrong out shape');
  await assertThrows(() => sum(gpu, gpu.tensor([4, 6], 'f16'), 1, gpu.tensor([4], 'f16')), /sum: output .* must be \[4\] f32/, 'f16 out');
  if (!gpu.info.subgroups) await assertThrows(() => sum(gpu, x, 1, undefined, { subgroups: true }), /subgroups feature/, 'subgroups without the feature');
  await gpu.sync();
});

s.run();
