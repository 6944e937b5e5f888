// MSE loss: mean and per-sample forward (one- and two-level reductions), backward with a scalar or [B]
// dloss, f32 and f16 inputs, finite differences, determinism, bad inputs.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { readWords, withGridLimit } from './ops-util.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { mseChunks, mseLoss, mseLossBackward, type LossReduction } from '../engine/ops/loss.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
/** Per-sample means of (p − t)² over samples of m consecutive elements (one sample: the plain mean). */
function refMse(p: ArrayLike<number>, t: ArrayLike<number>, samples: number): Float64Array {
  const m = p.length / samples;
  const y = new Float64Array(samples);
  for (let i = 0; i < p.length; i++) y[Math.floor(i / m)]! += (p[i]! - t[i]!) ** 2;
  return y.map((v) => v / m);
}
/** dpred[i] = 2·(p − t)/m · dloss[sample of i]. */
function refMseBackward(p: ArrayLike<number>, t: ArrayLike<number>, dloss: ArrayLike<number>): Float64Array {
  const m = p.length / dloss.length;
  return Float64Array.from(p, (v, i) => ((2 * (v - t[i]!)) / m) * dloss[Math.floor(i / m)]!);
}
// ------------------------------------------------------------------------------------------------------

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const seen = (v: ArrayLike<number>, dtype: DType) => (dtype === 'f16' ? roundToF16(v) : Float64Array.from(v));

async function check({ gpu, rng }: Ctx, shape: number[], dtype: DType, reduction: LossReduction) {
  const n = numel(shape);
  const p0 = rng.normal(n);
  const t0 = rng.normal(n);
  const samples = reduction === 'mean' ? 1 : shape[0]!;
  const d0 = rng.normal(samples);
  const pred = gpu.upload(p0, shape, dtype, 'pred');
  const target = gpu.upload(t0, shape, dtype, 'target');
  const dloss = gpu.upload(d0, reduction === 'mean' ? [] : [samples], 'f32', 'dloss');
  const loss = mseLoss(gpu, pred, target, { reduction });
  const dpred = mseLossBackward(gpu, pred, target, dloss, { reduction });
  const want = reduction === 'mean' ? [] : [samples];
  if (loss.dtype !== 'f32' || loss.shape.join() !== want.join() || dpred.dtype !== dtype || dpred.shape.join() !== shape.join()) throw new Error(`mse: outputs ${loss}, ${dpred}`);
  const [ps, ts] = [seen(p0, dtype), seen(t0, dtype)];
  const what = `mse ${reduction} ${dtype} [${shape}]`;
  assertClose(await loss.read(), refMse(ps, ts, samples), { rtol: 1e-5, what: `${what} forward` });
  const ref = refMseBackward(ps, ts, d0);
  assertClose(await dpred.read(), dtype === 'f16' ? roundToF16(ref) : ref, { rtol: dtype === 'f16' ? 1e-2 : 1e-5, what: `${what} backward` });
  if (dtype === 'f16' && n % 2 && (await readWords(gpu, dpred)).at(-1)! >>> 16 !== 0) throw new Error(`${what}: padding half not 0`);
  for (const t of [pred, target, dloss, loss, dpred]) t.release();
}

// Small (one level), ragged, and large enough for chunked two-level sums (≥ 2 × 2048 per sample).
const SHAPES: number[][] = [[1], [7], [3, 5], [2, 4, 3, 9, 9], [4, 3001], [1, 70001], [3, 4, 2, 25, 25], [150001]];

const s = suite('loss');

for (const dtype of ['f32', 'f16'] as const) {
  for (const reduction of ['mean', 'per-sample'] as const) {
    s.test(`mse ${reduction}, ${dtype}`, async (ctx) => {
      for (const shape of SHAPES) await check(ctx, shape, dtype, reduction);
    });
  }
}

s.test('chunk plan: two levels, bounded second level', () => {
  const cases: [number, number][] = [[1, 7], [1, 150001], [4, 3001], [8, 16 * 4 * 32 * 32], [1, 4 * 16 * 4 * 64 * 64], [64, 100]];
  for (const [b, m] of cases) {
    const { chunk, chunks } = mseChunks(b, m);
    if (chunk * chunks < m || chunk * (chunks - 1) >= m || chunks > Math.max(1, Math.ceil(1024 / b)) || (chunks > 1 && chunk < 2048)) {
      throw new Error(`mseChunks(${b}, ${m}) = ${JSON.stringify({ chunk, chunks })}`);
    }
  }
  if (mseChunks(1, 150001).chunks < 2) throw new Error('150001 elements should take two levels');
});

s.test('backward matches central differences of the forward', async ({ gpu, rng }) => {
  const shape = [3, 2, 5];
  const n = numel(shape);
  const p0 = Float64Array.from(rng.normal(n));
  const t0 = Float64Array.from(rng.normal(n));
  const w = Float64Array.from(rng.normal(3));
  const h = 1e-3;
  const fd = (loss: (p: Float64Array) => number) =>
    Float64Array.from(p0, (_, i) => {
      const [pp, pm] = [p0.slice(), p0.slice()];
      pp[i]! += h;
      pm[i]! -= h;
      return (loss(pp) - loss(pm)) / (2 * h);
    });
  const pred = gpu.upload(p0, shape);
  const target = gpu.upload(t0, shape);
  const mean = mseLossBackward(gpu, pred, target, gpu.upload([1], [1]));
  assertClose(await mean.read(), fd((p) => refMse(p, t0, 1)[0]!), { rtol: 1e-3, what: 'mean backward vs finite differences' });
  // L = Σ_b w_b · loss_b: the per-sample gradient with dloss = w
  const perSample = mseLossBackward(gpu, pred, target, gpu.upload(w, [3]), { reduction: 'per-sample' });
  assertClose(await perSample.read(), fd((p) => refMse(p, t0, 3).reduce((a, v, b) => a + w[b]! * v, 0)), { rtol: 1e-3, what: 'per-sample backward vs finite differences' });
});

s.test('deterministic; folded grids; out tensors', async ({ gpu, rng }) => {
  const shape = [5, 30011];
  const pred = gpu.upload(rng.normal(numel(shape)), shape);
  const target = gpu.upload(rng.normal(numel(shape)), shape);
  const a = await mseLoss(gpu, pred, target, { reduction: 'per-sample' }).read();
  const out = gpu.tensor([5], 'f32', 'out');
  await withGridLimit(gpu, 32, async () => {
    mseLoss(gpu, pred, target, { reduction: 'per-sample', out });
    const b = await out.read();
    if (!a.every((v, i) => Object.is(v, b[i]))) throw new Error(`per-sample loss differs between runs: ${a} vs ${b}`);
    const d = gpu.upload([0.5, -1, 2, 3, 1], [5]);
    const got = await mseLossBackward(gpu, pred, target, d, { reduction: 'per-sample' }).read();
    assertClose(got, refMseBackward(await pred.read(), await target.read(), [0.5, -1, 2, 3, 1]), { rtol: 1e-5, what: 'backward in a folded grid' });
  });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const p = gpu.tensor([4, 6]);
  await assertThrows(() => mseLoss(gpu, p, gpu.tensor([4, 5])), /mseLoss: target .* must have the shape of pred/, 'shape mismatch');
  await assertThrows(() => mseLoss(gpu, p, gpu.tensor([4, 6], 'f16')), /mseLoss: .* dtype f16 but .* is f32/, 'dtype mismatch');
  await assertThrows(() => mseLoss(gpu, gpu.tensor([0, 3]), gpu.tensor([0, 3])), /mseLoss: pred .* is empty/, 'empty');
  await assertThrows(() => mseLoss(gpu, p, p, { out: gpu.tensor([1]) }), /mseLoss: output .* must be \[\] f32/, 'wrong out shape');
  await assertThrows(() => mseLossBackward(gpu, p, p, gpu.tensor([4])), /mseLossBackward: dloss .* must hold one value for reduction 'mean'/, '[B] dloss for mean');
  await assertThrows(() => mseLossBackward(gpu, p, p, gpu.tensor([]), { reduction: 'per-sample' }), /mseLossBackward: dloss .* must be \[4\]/, 'scalar dloss for per-sample');
  await assertThrows(() => mseLossBackward(gpu, p, p, gpu.tensor([], 'f16')), /mseLossBackward: .* dtype f16; expected f32/, 'f16 dloss');
  await assertThrows(() => mseLoss(gpu, gpu.tensor([]), gpu.tensor([]), { reduction: 'per-sample' }), /per-sample' needs a leading batch dim/, 'scalar per-sample');
  await gpu.sync();
});

s.run();
