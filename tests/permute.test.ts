// permute / transpose2d: rank ≤ 6, every dtype (32-bit words and packed f16), merged and size-1 axes.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { withGridLimit } from './ops-util.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { permute, permutePlan, transpose2d } from '../engine/ops/permute.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
/** y = x with axes reordered: y's axis k is x's axis dims[k]. */
function refPermute(x: ArrayLike<number>, shape: readonly number[], dims: readonly number[]): Float64Array {
  const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const outShape = dims.map((d) => shape[d]!);
  const y = new Float64Array(x.length);
  const idx = new Array<number>(dims.length).fill(0);
  for (let i = 0; i < y.length; i++) {
    let src = 0;
    for (let k = 0; k < dims.length; k++) src += idx[k]! * stride[dims[k]!]!;
    y[i] = x[src]!;
    for (let k = dims.length - 1; k >= 0 && ++idx[k]! === outShape[k]; k--) idx[k] = 0; // next output index
  }
  return y;
}
// ------------------------------------------------------------------------------------------------------

/** Random values the dtype holds exactly (so every dtype must come back bit-exact). */
function values(rng: Ctx['rng'], n: number, dtype: DType): Float64Array {
  if (dtype === 'f16') return roundToF16(rng.normal(n));
  if (dtype === 'f32') return Float64Array.from(rng.normal(n));
  const lo = dtype === 'i32' ? -2e9 : 0;
  return Float64Array.from(rng.uniform(n, lo, 4e9 + lo), Math.floor);
}

async function check({ gpu, rng }: Ctx, shape: number[], dims: number[], dtype: DType) {
  const data = values(rng, shape.reduce((a, b) => a * b, 1), dtype);
  const x = gpu.upload(data, shape, dtype, 'x');
  const y = permute(gpu, x, dims);
  const want = dims.map((d) => shape[d]);
  if (y.dtype !== dtype || y.shape.join() !== want.join()) throw new Error(`permute [${shape}] by [${dims}]: output ${y}, expected [${want}] ${dtype}`);
  assertClose(await y.read(), refPermute(data, shape, dims), { rtol: 0, what: `permute ${dtype} [${shape}] by [${dims}]` });
  x.release();
  y.release();
}

/** A random permutation of 0..n-1. */
function shuffle(rng: Ctx['rng'], n: number): number[] {
  const p = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

const s = suite('permute');

s.test('attention layouts: [B,T,S,H,D] → [B,S,T,H,D] and [B,N,H,D] → [B,H,N,D], f32 and f16', async (ctx) => {
  for (const dtype of ['f32', 'f16'] as const) {
    await check(ctx, [2, 3, 5, 4, 7], [0, 2, 1, 3, 4], dtype);
    await check(ctx, [2, 9, 3, 5], [0, 2, 1, 3], dtype);
    await check(ctx, [3, 33, 4, 17], [0, 2, 1, 3], dtype);
  }
});

s.test('whole-unit path (last axis kept, 8/16-byte rows): qkv split, head merge, temporal swap', async (ctx) => {
  for (const dtype of ['f32', 'f16'] as const) {
    await check(ctx, [2, 5, 3, 4, 72], [2, 0, 3, 1, 4], dtype); // [B, N, 3, H, D] → [3, B, H, N, D], 16-byte units
    await check(ctx, [2, 4, 5, 72], [0, 2, 1, 3], dtype);
    await check(ctx, [2, 3, 5, 8], [0, 2, 1, 3], dtype);
    await check(ctx, [3, 2, 6, 4], [1, 0, 2, 3], dtype); // f16: 8-byte units
    await check(ctx, [2, 3, 2, 6], [2, 0, 1, 3], dtype); // f16 rows of 12 bytes: element path
  }
});

s.test('random permutations of rank 1..6, every dtype, odd sizes', async (ctx) => {
  const dtypes: DType[] = ['f32', 'f16', 'i32', 'u32'];
  for (let rank = 1; rank <= 6; rank++) {
    for (const dtype of dtypes) {
      const shape = Array.from({ length: rank }, () => ctx.rng.int(1, rank > 4 ? 5 : 9));
      await check(ctx, shape, shuffle(ctx.rng, rank), dtype);
    }
  }
  await check(ctx, [3, 1, 5, 1, 7], [4, 3, 0, 1, 2], 'f16'); // size-1 axes are dropped
  await check(ctx, [3, 1, 5, 7], [1, 0, 2, 3], 'f32'); // order kept: a plain copy
  await check(ctx, [40000], [0], 'f16');
});

s.test('transpose2d of matrices and batches, f32 and f16', async ({ gpu, rng }) => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const shape of [[1, 1], [37, 61], [256, 3], [3, 33, 17], [2, 1, 9, 4]]) {
      const data = values(rng, shape.reduce((a, b) => a * b, 1), dtype);
      const x = gpu.upload(data, shape, dtype);
      const out = gpu.tensor([...shape.slice(0, -2), shape.at(-1)!, shape.at(-2)!], dtype, 'out');
      transpose2d(gpu, x, out);
      const dims = shape.map((_, i) => i);
      dims.splice(-2, 2, shape.length - 1, shape.length - 2);
      assertClose(await out.read(), refPermute(data, shape, dims), { rtol: 0, what: `transpose2d ${dtype} [${shape}]` });
    }
  }
});

s.test('folded 2-D grid, f32 and f16', async (ctx) => {
  await withGridLimit(ctx.gpu, 16, async () => {
    await check(ctx, [7, 50, 61], [2, 0, 1], 'f32');
    await check(ctx, [7, 50, 61], [1, 2, 0], 'f16');
  });
});

s.test('axis merging keeps the kernel rank small', () => {
  const p = permutePlan([2, 3, 1, 5, 7], [0, 3, 4, 2, 1]); // [B, T, 1, H, D] → [B, H, D, 1, T]: B | H·D | T
  if (p.shape.join() !== '2,35,3' || p.stride.join() !== '105,1,35') throw new Error(`plan ${JSON.stringify(p)}`);
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const x = gpu.tensor([2, 3, 4]);
  await assertThrows(() => permute(gpu, x, [0, 1]), /permute: dims \[0, 1\] is not a permutation of 0\.\.2/, 'too few dims');
  await assertThrows(() => permute(gpu, x, [0, 1, 1]), /not a permutation/, 'repeated dim');
  await assertThrows(() => permute(gpu, x, [0, 1, 3]), /not a permutation/, 'dim out of range');
  await assertThrows(() => permute(gpu, gpu.tensor([1, 1, 1, 1, 1, 1, 2]), [0, 1, 2, 3, 4, 5, 6]), /permute: .* rank 7; expected rank 0\.\.6/, 'rank 7');
  await assertThrows(() => permute(gpu, x, [2, 1, 0], gpu.tensor([2, 3, 4])), /permute: output .* must be \[4, 3, 2\] f32/, 'wrong out shape');
  await assertThrows(() => transpose2d(gpu, x, gpu.tensor([2, 4, 3], 'f16')), /permute: output .* must be \[2, 4, 3\] f32/, 'wrong out dtype');
  await assertThrows(() => transpose2d(gpu, gpu.tensor([5])), /transpose2d: .* rank 1; expected rank 2\.\.6/, 'rank 1');
  await gpu.sync();
});

s.run();
