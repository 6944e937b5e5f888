// matmulF16x3 (f32 from three f16 products): the max-abs pass, the hi/lo split, and whole products against
// the f64 reference at f32 tolerance, for operands of very different magnitudes (the per-tensor scaling),
// every layout, batching and odd sizes; on tensor cores where the device has them.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { matmulF16x3, maxAbsInto, splitF16 } from '../engine/ops/matmul_f16x3.js';
import { tensorcoreUnavailable } from '../engine/ops/matmul.js';
import { matmulRef } from './ref/matmul.js';

const s = suite('matmul_f16x3');

s.test('max|x| over a tensor (several partial workgroups, negative maximum, odd size)', async ({ gpu, rng }) => {
  for (const n of [1, 7, 2048 * 3 + 5]) {
    const x = rng.normal(n, 3);
    x[Math.floor(rng.next() * n)] = -50 - rng.next(); // the largest magnitude is negative
    const amax = gpu.upload([Number.NaN, Number.NaN], [2], 'f32', 'amax');
    maxAbsInto(gpu, gpu.upload(x, [n], 'f32', 'x'), amax, 1);
    const got = await amax.read();
    const want = Math.fround(x.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
    if (got[1] !== want || !Number.isNaN(got[0]!)) throw new Error(`n ${n}: amax ${Array.from(got)}, expected [NaN, ${want}]`);
  }
});

s.test('split: hi + lo·2^-11 carries x·2^e to ~22 bits, the largest element lands in [2^13, 2^14)', async ({ gpu, rng }) => {
  for (const scale of [1, 3e-7, 2e4]) {
    const n = 999; // odd: the last word's upper half is padding
    const x = rng.normal(n, scale);
    const xt = gpu.upload(x, [n], 'f32', 'x');
    const amax = gpu.tensor([2], 'f32', 'amax');
    maxAbsInto(gpu, xt, amax, 0);
    const [hi, lo] = splitF16(gpu, xt, amax, 0);
    const [h, l] = [await hi.read(), await lo.read()];
    const m = x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    const e = 13 - Math.floor(Math.log2(Math.fround(m)));
    const back = Array.from(h, (v, i) => (v + l[i]! / 2048) / 2 ** e);
    // against the uploaded f32 values; bound 2^-22 (lo's f16 rounding)
    assertClose(back, Array.from(x, Math.fround), { rtol: 3e-7, what: `split of normal(${scale})` });
    const top = Math.max(...Array.from(h, Math.abs));
    if (!(top >= 2 ** 13 && top < 2 ** 14)) throw new Error(`scale ${scale}: largest hi ${top}, expected in [2^13, 2^14)`);
  }
});

interface Case {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  batch?: number;
  sharedB?: boolean;
  scaleA?: number;
  scaleB?: number;
}

async function check({ gpu, rng }: Ctx, c: Case, variant: 'tiled' | 'tensorcore', rtol: number): Promise<void> {
  const nb = c.batch ?? 1;
  const batch = c.batch ? [c.batch] : [];
  const aData = rng.normal(nb * c.M * c.K, c.scaleA ?? 1);
  const bData = rng.normal((c.sharedB ? 1 : nb) * c.K * c.N, (c.scaleB ?? 1) / Math.sqrt(c.K));
  const a = gpu.upload(aData, [...batch, ...(c.transA ? [c.K, c.M] : [c.M, c.K])], 'f32', 'A');
  const b = gpu.upload(bData, [...(c.sharedB ? [] : batch), ...(c.transB ? [c.N, c.K] : [c.K, c.N])], 'f32', 'B');
  const out = gpu.tensor([...batch, c.M, c.N], 'f32', 'C'); // poisoned with NaN by the test device
  matmulF16x3(gpu, a, b, { transA: c.transA, transB: c.transB, out, variant });
  const want = matmulRef(aData, bData, { batch: nb, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, sharedB: c.sharedB });
  assertClose(await out.read(), want, { rtol, what: `matmulF16x3 ${variant} ${JSON.stringify(c)}` });
  for (const t of [a, b, out]) t.release();
}

const CASES: Case[] = [
  { M: 33, N: 17, K: 40 },
  { M: 16, N: 24, K: 35, transA: true },
  { M: 9, N: 31, K: 64, transB: true, scaleA: 2e-7, scaleB: 5e3 },
  { M: 20, N: 12, K: 19, transA: true, transB: true, scaleA: 1e5, scaleB: 1e-6 },
  { M: 7, N: 10, K: 24, batch: 3 },
  { M: 12, N: 9, K: 30, batch: 2, sharedB: true, scaleA: 1e-9 },
];

s.test('f32 accuracy from f16 products on the tiled kernel: layouts, batches, magnitudes 1e-9 … 1e5', async (ctx) => {
  for (const c of CASES) await check(ctx, c, 'tiled', 1e-5);
});

s.gpuTest('f32 accuracy from f16 products on tensor cores (K up to 1152)', (gpu) => tensorcoreUnavailable(gpu), async (ctx) => {
  for (const c of [...CASES, { M: 128, N: 96, K: 1152 }, { M: 70, N: 64, K: 1152, transA: true, scaleA: 1e-6 }]) await check(ctx, c, 'tensorcore', 1e-5);
});

s.test('errors: f16 operands, epilogue options', async ({ gpu }) => {
  const a = gpu.tensor([4, 4], 'f32', 'a');
  const h = gpu.tensor([4, 4], 'f16', 'h');
  gpu.fill(a, 1);
  gpu.fill(h, 1);
  await assertThrows(() => matmulF16x3(gpu, h, a), /matmulF16x3: .*f16/, 'f16 A');
  await assertThrows(() => matmulF16x3(gpu, a, a, { bias: a } as never), /matmulF16x3: option "bias" is not supported/, 'bias');
  await assertThrows(() => matmulF16x3(gpu, a, gpu.tensor([5, 4], 'f32')), /inner dimensions differ/, 'shapes');
});

s.run();
