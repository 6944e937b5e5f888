// softmax over the last dim and its backward: row lengths 1..8192 (ragged, odd), f32 and f16 (odd rows
// share words), with and without subgroups, large logits, finite differences, folded grid, bad inputs.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { readWords, withGridLimit } from './ops-util.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { softmax, softmaxBackward, softmaxPlan, type SoftmaxOptions } from '../engine/ops/softmax.js';
import type { Gpu } from '../engine/gpu.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
/** y[r, :] = exp(x[r, :] − max) / Σ exp(x[r, :] − max) for rows of length len. */
function refSoftmax(x: ArrayLike<number>, len: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / len; r++) {
    let m = -Infinity;
    for (let j = 0; j < len; j++) m = Math.max(m, x[r * len + j]!);
    let s = 0;
    for (let j = 0; j < len; j++) s += y[r * len + j] = Math.exp(x[r * len + j]! - m);
    for (let j = 0; j < len; j++) y[r * len + j]! /= s;
  }
  return y;
}
/** dx[r, :] = y · (dy − Σ_j dy·y) per row. */
function refSoftmaxBackward(y: ArrayLike<number>, dy: ArrayLike<number>, len: number): Float64Array {
  const dx = new Float64Array(y.length);
  for (let r = 0; r < y.length / len; r++) {
    let dot = 0;
    for (let j = 0; j < len; j++) dot += y[r * len + j]! * dy[r * len + j]!;
    for (let j = 0; j < len; j++) dx[r * len + j] = y[r * len + j]! * (dy[r * len + j]! - dot);
  }
  return dx;
}
// ------------------------------------------------------------------------------------------------------

const RTOL: Record<string, number> = { f32: 1e-5, f16: 1e-2 };
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const seen = (v: ArrayLike<number>, dtype: DType) => (dtype === 'f16' ? roundToF16(v) : Float64Array.from(v));

async function check({ gpu, rng }: Ctx, shape: number[], dtype: DType, opts: SoftmaxOptions = {}, std = 3) {
  const len = shape.at(-1)!;
  const x0 = rng.normal(numel(shape), std);
  const dy0 = rng.normal(numel(shape));
  const x = gpu.upload(x0, shape, dtype, 'x');
  const dy = gpu.upload(dy0, shape, dtype, 'dy');
  const y = softmax(gpu, x, undefined, opts);
  const dx = softmaxBackward(gpu, y, dy, undefined, opts);
  if (y.dtype !== dtype || y.shape.join() !== shape.join() || dx.shape.join() !== shape.join()) throw new Error(`softmax: outputs ${y}, ${dx}`);
  const what = `softmax ${dtype} [${shape}] subgroups ${opts.subgroups ?? 'default'}`;
  const yGot = await y.read();
  assertClose(yGot, refSoftmax(seen(x0, dtype), len), { rtol: RTOL[dtype]!, what: `${what} forward` });
  // backward from the y the GPU produced, so the check isolates the backward kernel. Nearly one-hot rows
  // (large logits) lose dy − Σ dy·y to cancellation in f32 (as in any f32 implementation): check them
  // against the scale of dy instead.
  const dxGot = await dx.read();
  const dxRef = refSoftmaxBackward(yGot, seen(dy0, dtype), len);
  if (std <= 10) assertClose(dxGot, dxRef, { rtol: RTOL[dtype]!, what: `${what} backward` });
  else dxGot.forEach((v, i) => {
    if (!(Math.abs(v - dxRef[i]!) <= 1e-6)) throw new Error(`${what} backward: element ${i} = ${v}, reference ${dxRef[i]}`);
  });
  if (dtype === 'f16' && x.size % 2) {
    for (const t of [y, dx]) {
      const last = (await readWords(gpu, t)).at(-1)!;
      if (last >>> 16 !== 0) throw new Error(`${what}: padding half of ${t.name}'s last word is ${(last >>> 16).toString(16)}, expected 0`);
    }
  }
  for (const t of [x, dy, y, dx]) t.release();
}

// Row lengths: 1, tiny, odd (f16 rows then share words), not multiples of the workgroup, and the 8192 limit.
const SHAPES: number[][] = [[1, 1], [3, 1], [5, 7], [4, 33], [2, 3, 100], [3, 257], [2, 1152], [1, 4608], [9, 1001], [1, 8192], [2, 8191], [13]];
// The other reduction path, on fewer shapes (every row length is a pipeline to compile; SwiftShader is slow at it).
const SHAPES_SG: number[][] = [[1, 1], [5, 7], [3, 257], [9, 1001], [2, 8191]];

const s = suite('softmax');

for (const subgroups of [false, true]) {
  const needs = (gpu: Gpu) => (subgroups && !gpu.info.subgroups ? 'device has no subgroups' : null);
  s.gpuTest(`forward and backward, f32, subgroups ${subgroups}`, needs, async (ctx) => {
    for (const shape of subgroups ? SHAPES_SG : SHAPES) await check(ctx, shape, 'f32', { subgroups });
  });
  s.gpuTest(`forward and backward, f16 (odd rows share words), subgroups ${subgroups}`, needs, async (ctx) => {
    for (const shape of subgroups ? SHAPES_SG : SHAPES) await check(ctx, shape, 'f16', { subgroups });
  });
}

s.test('keyLen: rows use only their item\'s first keys (0 elsewhere; no keys: all 0), f32 and f16 (odd rows)', async ({ gpu, rng }) => {
  for (const [dtype, items, per, len, ltype] of [['f32', 3, 4, 37, 'i32'], ['f16', 4, 3, 9, 'u32'], ['f32', 2, 2, 300, 'u32']] as const) {
    const lens = Array.from({ length: items }, (_, b) => [0, 1, len, 2 + Math.floor(rng.next() * (len - 2))][b % 4]!);
    const x0 = rng.normal(items * per * len, 3);
    const x = gpu.upload(x0, [items, per, len], dtype, 'x');
    const kl = gpu.upload(ltype === 'i32' ? Int32Array.from(lens) : Uint32Array.from(lens), [items], ltype, 'key_len');
    for (const subgroups of gpu.info.subgroups ? [false, true] : [false]) {
      const y = await softmax(gpu, x, undefined, { subgroups, keyLen: { len: kl, rowsPerItem: per } }).read();
      const xs = seen(x0, dtype);
      const want = new Float64Array(xs.length);
      for (let r = 0; r < items * per; r++) {
        const n = lens[Math.floor(r / per)]!;
        if (n > 0) refSoftmax(xs.subarray(r * len, r * len + n), n).forEach((v, j) => (want[r * len + j] = v));
      }
      assertClose(y, want, { rtol: RTOL[dtype]!, what: `softmax keyLen ${dtype} lens ${lens} subgroups ${subgroups}` });
      for (let i = 0; i < want.length; i++) if (want[i] === 0 && y[i] !== 0) throw new Error(`${dtype}: masked element ${i} is ${y[i]}, expected exactly 0`);
    }
    x.release();
    kl.release();
  }
  const x = gpu.upload(rng.normal(12), [2, 2, 3], 'f32', 'x');
  const kl = gpu.upload(Int32Array.from([1, 2]), [2], 'i32', 'kl');
  await assertThrows(() => softmax(gpu, x, undefined, { keyLen: { len: kl, rowsPerItem: 3 } }), /must cover the 4 rows/, 'rowsPerItem');
  await assertThrows(() => softmaxBackward(gpu, x, x, undefined, { keyLen: { len: kl, rowsPerItem: 2 } }), /forward only/, 'backward');
  await assertThrows(() => softmax(gpu, x, undefined, { keyLen: { len: x, rowsPerItem: 1 } }), /i32|u32/, 'f32 lengths');
  x.release();
  kl.release();
});

s.test('large logits do not overflow; rows are stable', async (ctx) => {
  await check(ctx, [6, 300], 'f32', {}, 200);
  const { gpu } = ctx;
  const x = gpu.upload([1000, 1001, 1002, -1e30, 88.7, 90], [2, 3]);
  assertClose(await softmax(gpu, x).read(), refSoftmax([1000, 1001, 1002, -1e30, 88.7, 90], 3), { rtol: 1e-5, what: 'softmax of large logits' });
});

s.test('backward matches central differences of the forward', async ({ gpu, rng }) => {
  const len = 37;
  const rows = 3;
  const x0 = Float64Array.from(rng.normal(rows * len, 2));
  const dy0 = rng.normal(rows * len);
  // L(x) = Σ dy · softmax(x); dL/dx_i by central differences of the f64 forward
  const loss = (x: Float64Array) => refSoftmax(x, len).reduce((acc, v, i) => acc + v * dy0[i]!, 0);
  const h = 1e-3;
  const fd = Float64Array.from(x0, (_, i) => {
    const xp = x0.slice();
    const xm = x0.slice();
    xp[i]! += h;
    xm[i]! -= h;
    return (loss(xp) - loss(xm)) / (2 * h);
  });
  const y = softmax(gpu, gpu.upload(x0, [rows, len]));
  const dx = softmaxBackward(gpu, y, gpu.upload(dy0, [rows, len]));
  assertClose(await dx.read(), fd, { rtol: 1e-3, what: 'softmaxBackward vs finite differences' });
});

s.test('plan: workgroup size and register slots', () => {
  const cases: [number, number, number][] = [[1, 32, 1], [16, 32, 1], [256, 64, 4], [1152, 256, 5], [4608, 256, 18], [8192, 256, 32]];
  for (const [units, wg, per] of cases) {
    const p = softmaxPlan(units);
    if (p.wg !== wg || p.per !== per || p.wg * p.per < units) throw new Error(`softmaxPlan(${units}) = ${JSON.stringify(p)}, expected wg ${wg} per ${per}`);
  }
});

s.test('rows in a folded 2-D grid; out tensors', async (ctx) => {
  await withGridLimit(ctx.gpu, 4, () => check(ctx, [13, 70], 'f32'));
  await withGridLimit(ctx.gpu, 4, () => check(ctx, [11, 9], 'f16'));
  const { gpu, rng } = ctx;
  const x0 = rng.normal(40);
  const out = gpu.tensor([8, 5], 'f32', 'out');
  softmax(gpu, gpu.upload(x0, [8, 5]), out);
  assertClose(await out.read(), refSoftmax(x0, 5), { rtol: 1e-5, what: 'softmax into out' });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const x = gpu.tensor([4, 6]);
  await assertThrows(() => softmax(gpu, gpu.tensor([2, 8193])), /softmax: rows of .* 8193 elements, over the 8192 .* split the last dim/, 'row too long');
  await assertThrows(() => softmaxBackward(gpu, x, gpu.tensor([4, 5])), /softmaxBackward: dy .* must have the shape of y/, 'dy shape');
  await assertThrows(() => softmax(gpu, gpu.tensor([], 'f32')), /softmax: .* rank 0; expected rank 1\.\.8/, 'scalar');
  await assertThrows(() => softmax(gpu, gpu.tensor([4], 'u32')), /softmax: .* dtype u32; expected f32 or f16/, 'u32 input');
  await assertThrows(() => softmax(gpu, x, gpu.tensor([4, 6], 'f16')), /softmax: output .* must be \[4, 6\] f32/, 'wrong out dtype');
  if (!gpu.info.subgroups) await assertThrows(() => softmax(gpu, x, undefined, { subgroups: true }), /subgroups feature/, 'subgroups without the feature');
  await gpu.sync();
});

s.run();
