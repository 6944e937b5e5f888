// GELU (tanh approximation) and SiLU, forward and backward: f32 and f16, vector and scalar word paths,
// large |x| (no overflow or NaN), finite differences, the folded grid, bad inputs.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { readWords, withGridLimit } from './ops-util.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { activation, activationBackward, gelu, geluBackward, silu, siluBackward, type Activation } from '../engine/ops/activation.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
const K0 = Math.sqrt(2 / Math.PI);
const K1 = 0.044715;
const REF: Record<Activation, { f: (x: number) => number; df: (x: number) => number }> = {
  gelu: {
    f: (x) => 0.5 * x * (1 + Math.tanh(K0 * (x + K1 * x ** 3))),
    df: (x) => {
      const th = Math.tanh(K0 * (x + K1 * x ** 3));
      return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * K0 * (1 + 3 * K1 * x * x);
    },
  },
  silu: {
    f: (x) => x / (1 + Math.exp(-x)),
    df: (x) => {
      const s = 1 / (1 + Math.exp(-x));
      return s * (1 + x * (1 - s));
    },
  },
};
const refForward = (kind: Activation, x: ArrayLike<number>) => Float64Array.from(x, REF[kind].f);
const refBackward = (kind: Activation, x: ArrayLike<number>, dy: ArrayLike<number>) => Float64Array.from(x, (v, i) => dy[i]! * REF[kind].df(v));
// ------------------------------------------------------------------------------------------------------

const RTOL: Record<string, number> = { f32: 1e-5, f16: 1e-2 };
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const seen = (v: Float32Array, dtype: DType) => (dtype === 'f16' ? roundToF16(v) : Float64Array.from(v));

/** Random x spread over the interesting range (normal · 3), a few far-out values, and dy. */
function sample(rng: Ctx['rng'], n: number) {
  const x = rng.normal(n, 3);
  for (let i = 0; i < n; i += 97) x[i] = [-40, 40, -9.5, 12, -85, 100][(i / 97) % 6]!;
  return { x, dy: rng.normal(n) };
}

async function check({ gpu, rng }: Ctx, kind: Activation, shape: number[], dtype: DType) {
  const { x: x0, dy: dy0 } = sample(rng, numel(shape));
  const x = gpu.upload(x0, shape, dtype, 'x');
  const dy = gpu.upload(dy0, shape, dtype, 'dy');
  const y = activation(gpu, kind, x);
  const dx = activationBackward(gpu, kind, x, dy);
  if (y.dtype !== dtype || y.shape.join() !== shape.join() || dx.shape.join() !== shape.join()) throw new Error(`${kind}: outputs ${y}, ${dx}`);
  const xs = seen(x0, dtype);
  const stored = (v: Float64Array) => (dtype === 'f16' ? roundToF16(v) : v); // what an exact kernel would store
  const what = `${kind} ${dtype} [${shape}]`;
  assertClose(await y.read(), stored(refForward(kind, xs)), { rtol: RTOL[dtype]!, what: `${what} forward` });
  assertClose(await dx.read(), stored(refBackward(kind, xs, seen(dy0, dtype))), { rtol: RTOL[dtype]!, what: `${what} backward` });
  if (dtype === 'f16' && x.size % 2) {
    const last = (await readWords(gpu, dx)).at(-1)!;
    if (last >>> 16 !== 0) throw new Error(`${what}: padding half of the last word is ${(last >>> 16).toString(16)}, expected 0`);
  }
  for (const t of [x, dy, y, dx]) t.release();
}

// Multiples of 4 / 8 take the vector path; the rest the scalar one (odd sizes leave an f16 padding half).
const SHAPES: number[][] = [[1], [7], [8], [256], [3, 37, 11], [40, 100], [4099], [2, 3, 5, 7]];

const s = suite('activation');

for (const kind of ['gelu', 'silu'] as const) {
  for (const dtype of ['f32', 'f16'] as const) {
    s.test(`${kind} forward and backward, ${dtype}`, async (ctx) => {
      for (const shape of SHAPES) await check(ctx, kind, shape, dtype);
    });
  }

  s.test(`${kind} backward matches central differences of the forward`, async ({ gpu, rng }) => {
    const n = 203;
    const x0 = rng.normal(n, 2);
    const dy0 = rng.normal(n);
    const h = 1e-3;
    const f = REF[kind].f;
    const fd = Float64Array.from(x0, (v, i) => (dy0[i]! * (f(v + h) - f(v - h))) / (2 * h));
    const dx = activationBackward(gpu, kind, gpu.upload(x0, [n]), gpu.upload(dy0, [n]));
    assertClose(await dx.read(), fd, { rtol: 1e-3, what: `${kind} backward vs finite differences` });
  });
}

s.test('named wrappers, out tensors and the folded 2-D grid', async ({ gpu, rng }) => {
  const shape = [150, 129];
  const { x: x0, dy: dy0 } = sample(rng, numel(shape));
  const x = gpu.upload(x0, shape);
  const dy = gpu.upload(dy0, shape);
  const out = gpu.tensor(shape, 'f32', 'out');
  await withGridLimit(gpu, 16, async () => {
    const xs = Float64Array.from(x0);
    gelu(gpu, x, out);
    assertClose(await out.read(), refForward('gelu', xs), { rtol: 1e-5, what: 'gelu (folded grid)' });
    geluBackward(gpu, x, dy, out);
    assertClose(await out.read(), refBackward('gelu', xs, dy0), { rtol: 1e-5, what: 'geluBackward (folded grid)' });
    silu(gpu, x, out);
    assertClose(await out.read(), refForward('silu', xs), { rtol: 1e-5, what: 'silu (folded grid)' });
    siluBackward(gpu, x, dy, out);
    assertClose(await out.read(), refBackward('silu', xs, dy0), { rtol: 1e-5, what: 'siluBackward (folded grid)' });
  });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const x = gpu.tensor([4, 6]);
  await assertThrows(() => geluBackward(gpu, x, gpu.tensor([6, 4])), /geluBackward: dy .* must have the shape of x/, 'dy shape');
  await assertThrows(() => siluBackward(gpu, x, gpu.tensor([4, 6], 'f16')), /siluBackward: .* dtype f16 but .* is f32/, 'dy dtype');
  await assertThrows(() => gelu(gpu, gpu.tensor([4], 'i32')), /gelu: .* dtype i32; expected f32 or f16/, 'i32 input');
  await assertThrows(() => silu(gpu, x, gpu.tensor([4, 6], 'f16')), /silu: output .* must be \[4, 6\] f32/, 'wrong out dtype');
  await assertThrows(() => activation(gpu, 'relu' as Activation, x), /unknown kind "relu"/, 'unknown activation');
  await gpu.sync();
});

s.run();
