// Elementwise ops: add / mul (same shape and broadcast), scale, axpby; f32 and packed f16.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { withGridLimit } from './ops-util.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { add, axpby, mul, scale } from '../engine/ops/elementwise.js';
import type { Gpu } from '../engine/gpu.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
type Fn = (x: number, v: number) => number;
/** y[i] = f(a[i], b[i % b.length]): b broadcasts along a's leading dims (or has a's size). */
function refBinary(a: ArrayLike<number>, b: ArrayLike<number>, f: Fn): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = f(a[i]!, b[i % b.length]!);
  return y;
}
const numel = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);
// ------------------------------------------------------------------------------------------------------

const RTOL: Record<string, number> = { f32: 1e-5, f16: 1e-2 };

/** Uploads random a (and b) and returns them with the values the GPU sees (f16-rounded for f16). */
function inputs(gpu: Gpu, rng: Ctx['rng'], aShape: number[], bShape: number[], dtype: DType) {
  const a0 = rng.normal(numel(aShape));
  const b0 = rng.normal(numel(bShape));
  const a = gpu.upload(a0, aShape, dtype, 'a');
  const b = gpu.upload(b0, bShape, dtype, 'b');
  const r = (v: Float32Array) => (dtype === 'f16' ? roundToF16(v) : Float64Array.from(v));
  return { a, b, av: r(a0), bv: r(b0) };
}

const s = suite('elementwise');

const SAME: number[][] = [[1], [7], [256], [1000], [3, 37, 11], [40000], [2, 3, 4, 5, 6]];

for (const dtype of ['f32', 'f16'] as const) {
  s.test(`add and mul, same shape, ${dtype}`, async ({ gpu, rng }) => {
    for (const shape of SAME) {
      const { a, b, av, bv } = inputs(gpu, rng, shape, shape, dtype);
      const sumT = add(gpu, a, b);
      const prodT = mul(gpu, a, b);
      if (sumT.dtype !== dtype || sumT.shape.join() !== shape.join()) throw new Error(`add output is ${sumT}`);
      assertClose(await sumT.read(), refBinary(av, bv, (x, v) => x + v), { rtol: RTOL[dtype]!, what: `add ${dtype} [${shape}]` });
      assertClose(await prodT.read(), refBinary(av, bv, (x, v) => x * v), { rtol: RTOL[dtype]!, what: `mul ${dtype} [${shape}]` });
      for (const t of [a, b, sumT, prodT]) t.release();
    }
  });

  s.test(`add and mul broadcast b along leading dims, ${dtype}`, async ({ gpu, rng }) => {
    const cases: [number[], number[]][] = [[[33, 37], [37]], [[5, 7, 9], [7, 9]], [[300, 129], [129]], [[11, 13], [1]], [[4, 3], [1, 1]], [[2, 3, 5], [1, 1, 5]], [[2, 3, 5], [1, 3, 5]], [[999], [999]]];
    for (const [aShape, bShape] of cases) {
      const { a, b, av, bv } = inputs(gpu, rng, aShape, bShape, dtype);
      const out = gpu.tensor(aShape, dtype, 'out');
      add(gpu, a, b, out);
      assertClose(await out.read(), refBinary(av, bv, (x, v) => x + v), { rtol: RTOL[dtype]!, what: `add ${dtype} [${aShape}] + [${bShape}]` });
      mul(gpu, a, b, out);
      assertClose(await out.read(), refBinary(av, bv, (x, v) => x * v), { rtol: RTOL[dtype]!, what: `mul ${dtype} [${aShape}] * [${bShape}]` });
      for (const t of [a, b, out]) t.release();
    }
  });

  s.test(`scale and axpby, ${dtype}`, async ({ gpu, rng }) => {
    for (const shape of [[1], [5], [255], [17, 61], [70001]]) {
      const { a, b, av, bv } = inputs(gpu, rng, shape, shape, dtype);
      const alpha = rng.uniform(1, -3, 3)[0]!;
      const beta = rng.uniform(1, -3, 3)[0]!;
      const y1 = scale(gpu, a, alpha);
      const y2 = gpu.tensor(shape, dtype, 'out');
      axpby(gpu, a, b, alpha, beta, y2);
      assertClose(await y1.read(), refBinary(av, bv, (x) => Math.fround(alpha) * x), { rtol: RTOL[dtype]!, what: `scale ${dtype} [${shape}]` });
      const want = refBinary(av, bv, (x, v) => Math.fround(alpha) * x + Math.fround(beta) * v);
      assertClose(await y2.read(), want, { rtol: RTOL[dtype]!, what: `axpby ${dtype} [${shape}]` });
      for (const t of [a, b, y1, y2]) t.release();
    }
  });

  s.test(`folded 2-D grid (more than one row of workgroups), ${dtype}`, async ({ gpu, rng }) => {
    const { a, b, av, bv } = inputs(gpu, rng, [150, 129], [129], dtype);
    const { b: c, bv: cv } = inputs(gpu, rng, [1], [150, 129], dtype);
    await withGridLimit(gpu, 16, async () => {
      const y = add(gpu, a, b);
      const z = axpby(gpu, a, c, 0.5, -2);
      assertClose(await y.read(), refBinary(av, bv, (x, v) => x + v), { rtol: RTOL[dtype]!, what: `add ${dtype} folded` });
      assertClose(await z.read(), refBinary(av, cv, (x, v) => 0.5 * x - 2 * v), { rtol: RTOL[dtype]!, what: `axpby ${dtype} folded` });
    });
  });
}

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const a = gpu.tensor([4, 6]);
  const h = gpu.tensor([4, 6], 'f16');
  await assertThrows(() => add(gpu, a, gpu.tensor([4])), /add: b .*\[4\].* does not fit a .*\[4, 6\].*trailing part/, 'add non-suffix shape');
  await assertThrows(() => mul(gpu, a, gpu.tensor([2, 4, 6])), /mul: b .* does not fit/, 'mul b larger than a');
  await assertThrows(() => mul(gpu, a, gpu.tensor([4, 1])), /mul: b .* does not fit/, 'mul b broadcasting along a trailing dim');
  await assertThrows(() => axpby(gpu, a, gpu.tensor([6]), 1, 1), /axpby: b .*\[6\].* must be \[4, 6\]/, 'axpby no broadcast');
  await assertThrows(() => add(gpu, a, h), /add: .*f16.* cast one of them first/, 'mixed dtypes');
  await assertThrows(() => scale(gpu, gpu.tensor([3], 'i32'), 2), /scale: .* dtype i32; expected f32 or f16/, 'i32 input');
  await assertThrows(() => add(gpu, a, a, gpu.tensor([6, 4])), /add: output .* must be \[4, 6\] f32/, 'wrong out shape');
  await assertThrows(() => scale(gpu, a, 2, h), /scale: output .* must be \[4, 6\] f32/, 'wrong out dtype');
  await assertThrows(() => add(gpu, a, a, a), /aliases input/, 'in-place output');
  await gpu.sync();
});

s.run();
