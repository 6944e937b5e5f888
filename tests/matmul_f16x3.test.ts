// matmulF16x3 (f32 from three f16 products): the max-abs pass, the hi/lo split, and whole products against
// the f64 reference at f32 tolerance, for operands of very different magnitudes (the per-tensor scaling),
// every layout, batching and odd sizes, with a bias; on tensor cores where the device has them. Then the
// f32 matmul precision switch (gpu.matmulPrecision 'high'): engine/functional.ts's linear and matmul, forward
// and gradients, against the f64 reference at f32 tolerance, through matmulF16x3 (forced on the tiled
// kernel here; on tensor cores as a GPU test), and the fallback to the exact kernels where there are no
// tensor cores (counted, with its reason).
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { withPrecision } from './ops-util.js';
import { Param, Tape } from '../engine/autograd.js';
import * as F from '../engine/functional.js';
import { highPrecisionUnavailable, matmulF16x3, MaxAbsCache, maxAbsInto, splitF16 } from '../engine/ops/matmul_f16x3.js';
import { tensorcoreUnavailable } from '../engine/ops/matmul.js';
import { matmulRef } from './ref/matmul.js';

const s = suite('matmul_f16x3');

s.test('max|x| over a tensor folded into its slot (several workgroups, strided blocks, negative maximum, odd size, a larger prior value)', async ({ gpu, rng }) => {
  // 2^21 + …: more blocks of 2048 than the pass's 1024 workgroups, with the maximum in a second-stride block
  for (const n of [1, 7, 2048 * 3 + 5, 2 ** 21 + 2048 * 5 + 3]) {
    const x = rng.normal(n, 3);
    const at = n > 2 ** 21 ? n - 1 - Math.floor(rng.next() * 5000) : Math.floor(rng.next() * n);
    x[at] = -50 - rng.next(); // the largest magnitude is negative
    const amax = gpu.upload([Number.NaN, 0], [2], 'f32', 'amax');
    maxAbsInto(gpu, gpu.upload(x, [n], 'f32', 'x'), amax, 1);
    const got = await amax.read();
    const want = Math.fround(x.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
    if (got[1] !== want || !Number.isNaN(got[0]!)) throw new Error(`n ${n}: amax ${Array.from(got)}, expected [NaN, ${want}] (slot 0 untouched)`);
    const prior = gpu.upload([0, 1000], [2], 'f32', 'amax');
    maxAbsInto(gpu, gpu.upload(x, [n], 'f32', 'x'), prior, 1);
    const kept = await prior.read();
    if (kept[1] !== 1000 || kept[0] !== 0) throw new Error(`n ${n}: a larger prior maximum must stay: ${Array.from(kept)}`);
  }
});

s.test('split: hi + lo·2^-11 carries x·2^e to ~22 bits, the largest element lands in [2^13, 2^14)', async ({ gpu, rng }) => {
  for (const scale of [1, 3e-7, 2e4]) {
    const n = 999; // odd: the last word's upper half is padding
    const x = rng.normal(n, scale);
    const xt = gpu.upload(x, [n], 'f32', 'x');
    const amax = gpu.tensor([2], 'f32', 'amax');
    gpu.fill(amax, 0);
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

s.test('MaxAbsCache: one max-abs pass per buffer (reshapes share it), lent bounds stay the lender\'s, take, forget and bounds', async ({ gpu, rng }) => {
  const xd = rng.normal(300, 2);
  const yd = rng.normal(64, 0.1);
  const x = gpu.upload(xd, [30, 10], 'f32', 'x');
  const y = gpu.upload(yd, [64], 'f32', 'y');
  const one = gpu.upload([1], [1], 'f32', 'one');
  const cache = new MaxAbsCache(gpu);
  const m1 = cache.get(x);
  const flat = x.reshape([300]);
  if (cache.get(flat) !== m1) throw new Error('a reshape of x must reuse its maximum');
  const want = (d: ArrayLike<number>) => Math.fround(Array.from(d).reduce((a, v) => Math.max(a, Math.abs(v)), 0));
  if ((await m1.read())[0] !== want(xd)) throw new Error(`max|x| ${(await m1.read())[0]}, expected ${want(xd)}`);
  cache.put(y, one);
  if (cache.get(y) !== one) throw new Error('a lent bound must be returned as lent');
  if (cache.take(y) !== null) throw new Error('take must not hand over a lent tensor');
  if (cache.take(x) !== m1) throw new Error('take must hand over the computed maximum');
  cache.forget(y);
  const my = cache.get(y); // computed now
  if (my === one || (await my.read())[0] !== want(yd)) throw new Error(`after forget, max|y| must be computed: ${(await my.read())[0]} vs ${want(yd)}`);
  const z = gpu.upload(rng.normal(16, 0.1), [16], 'f32', 'z');
  cache.bound(z, 1); // a bound instead of a pass: probabilities
  if ((await cache.get(z).read())[0] !== 1) throw new Error('a bound must be returned as the maximum');
  cache.release();
  if ((await one.read())[0] !== 1 || (await m1.read())[0] !== want(xd)) throw new Error('release must leave lent and taken tensors alone');
  for (const t of [x, flat, y, z, one, m1]) t.release();
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
  bias?: boolean;
}

/** The K-runs of A and B are even: the single-product 'concat' form applies. */
const concatFits = (c: Case) => (c.transA ? c.K * c.M : c.K) % 2 === 0 && (c.transB ? c.K : c.K * c.N) % 2 === 0;

async function check({ gpu, rng }: Ctx, c: Case, variant: 'tiled' | 'tensorcore', rtol: number, form?: 'fused' | 'concat' | 'three'): Promise<void> {
  const nb = c.batch ?? 1;
  const batch = c.batch ? [c.batch] : [];
  const aData = rng.normal(nb * c.M * c.K, c.scaleA ?? 1);
  const bData = rng.normal((c.sharedB ? 1 : nb) * c.K * c.N, (c.scaleB ?? 1) / Math.sqrt(c.K));
  const a = gpu.upload(aData, [...batch, ...(c.transA ? [c.K, c.M] : [c.M, c.K])], 'f32', 'A');
  const b = gpu.upload(bData, [...(c.sharedB ? [] : batch), ...(c.transB ? [c.N, c.K] : [c.K, c.N])], 'f32', 'B');
  const biasData = c.bias ? rng.normal(c.N, 0.5 * (c.scaleA ?? 1) * (c.scaleB ?? 1)) : undefined;
  const bias = biasData ? gpu.upload(biasData, [c.N], 'f32', 'bias') : undefined;
  const out = gpu.tensor([...batch, c.M, c.N], 'f32', 'C'); // poisoned with NaN by the test device
  matmulF16x3(gpu, a, b, { transA: c.transA, transB: c.transB, bias, out, variant, form });
  const want = matmulRef(aData, bData, { batch: nb, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, sharedB: c.sharedB, bias: biasData });
  assertClose(await out.read(), want, { rtol, what: `matmulF16x3 ${variant} ${form ?? 'auto'} ${JSON.stringify(c)}` });
  for (const t of [a, b, out, ...(bias ? [bias] : [])]) t.release();
}

const CASES: Case[] = [
  { M: 33, N: 17, K: 40 },
  { M: 16, N: 24, K: 35, transA: true },
  { M: 9, N: 31, K: 64, transB: true, scaleA: 2e-7, scaleB: 5e3 },
  { M: 20, N: 12, K: 19, transA: true, transB: true, scaleA: 1e5, scaleB: 1e-6 },
  { M: 7, N: 10, K: 24, batch: 3 },
  { M: 12, N: 9, K: 30, batch: 2, sharedB: true, scaleA: 1e-9 },
  { M: 21, N: 13, K: 33, transB: true, bias: true },
  { M: 8, N: 15, K: 20, transA: true, batch: 2, bias: true, scaleA: 3e3 },
  { M: 5, N: 6, K: 0, bias: true }, // no products: every row is the bias
];

s.test('f32 accuracy from f16 products on the tiled kernel, both forms: layouts, batches, magnitudes 1e-9 … 1e5', async (ctx) => {
  if (CASES.filter(concatFits).length < 5 || CASES.every(concatFits)) throw new Error('CASES must mix even and odd K-runs');
  for (const c of CASES) {
    await check(ctx, c, 'tiled', 1e-5, 'three');
    if (concatFits(c)) await check(ctx, c, 'tiled', 1e-5, 'concat');
    else await assertThrows(() => check(ctx, c, 'tiled', 1e-5, 'concat'), /form 'concat' needs even K-runs/, `concat on ${JSON.stringify(c)}`);
  }
});

s.test('both forms: elements 1e3 below the largest (which sets the scale, on a zero row of B) keep f32 accuracy', async (ctx) => {
  // A's rows hold one element ~1e3 in column 0 and the rest ~1; B's row 0 is zero, so the product comes
  // from the small elements only, whose residuals are ~2^-10 of f16's scaled range
  const { gpu, rng } = ctx;
  const [M, N, K] = [24, 20, 48];
  const aData = rng.normal(M * K);
  for (let m = 0; m < M; m++) aData[m * K] = 1e3 * (1 + rng.next());
  const bData = rng.normal(K * N);
  bData.fill(0, 0, N);
  const want = matmulRef(aData, bData, { batch: 1, M, N, K });
  for (const form of ['concat', 'three'] as const) {
    const a = gpu.upload(aData, [M, K], 'f32', 'A');
    const b = gpu.upload(bData, [K, N], 'f32', 'B');
    const out = gpu.tensor([M, N], 'f32', 'C');
    matmulF16x3(gpu, a, b, { out, variant: 'tiled', form });
    assertClose(await out.read(), want, { rtol: 1e-5, what: `${form}: product of the small elements` });
    for (const t of [a, b, out]) t.release();
  }
});

/** A's and B's rows are multiples of 8 elements: the 'fused' form (split inside the tensor-core kernel) applies. */
const fusedFits = (c: Case) => (c.transA ? c.M : c.K) % 8 === 0 && (c.transB ? c.K : c.N) % 8 === 0;

/**
 * Tolerance of f16x3 on tensor cores: 1e-5, widened for long K. The tensor cores' f32 accumulation truncates
 * (rounds toward zero; Fasi et al., "Numerical behavior of NVIDIA tensor cores", 2021) at each of the 3·K/16
 * accumulating steps, a bias of up to one f32 ulp of the running sum per step: measured on the H200, M128 N96
 * K1152 with unit-scale outputs reached 1.04e-5 of (|ref| + rms) where the split itself is good to ~1e-7.
 */
function tensorcoreTolerance(c: Case): number {
  return Math.max(1e-5, 1.6e-8 * c.K);
}

const TC_CASES: Case[] = [
  ...CASES,
  { M: 128, N: 96, K: 1152 },
  { M: 70, N: 64, K: 1152, transA: true, scaleA: 1e-6 },
  { M: 200, N: 136, K: 72, transB: true, scaleB: 3e-4 }, // attention scores: K not a multiple of the K step
  { M: 64, N: 48, K: 4096, transA: true }, // a weight gradient: split over K
  { M: 33, N: 40, K: 64, bias: true, scaleA: 2e4 },
  { M: 20, N: 16, K: 24, batch: 3, sharedB: true, scaleB: 1e-7 },
  { M: 16, N: 24, K: 40, transA: true, transB: true, batch: 2, bias: true },
  { M: 300, N: 264, K: 136 }, // several tiles, ragged edges
];

s.gpuTest('f32 accuracy from f16 products on tensor cores, every form (K up to 4096)', (gpu) => tensorcoreUnavailable(gpu), async (ctx) => {
  if (TC_CASES.filter(fusedFits).length < 8) throw new Error('TC_CASES must hold fused-form cases');
  for (const c of TC_CASES) {
    const tol = tensorcoreTolerance(c);
    await check(ctx, c, 'tensorcore', tol, 'three');
    if (concatFits(c)) await check(ctx, c, 'tensorcore', tol, 'concat');
    if (fusedFits(c)) {
      await check(ctx, c, 'tensorcore', tol, 'fused');
    } else await assertThrows(() => check(ctx, c, 'tensorcore', tol, 'fused'), /form 'fused' needs tensor cores and rows of multiples of 8/, `fused on ${JSON.stringify(c)}`);
    await check(ctx, c, 'tensorcore', tol); // the default form
  }
});

s.test('errors: f16 operands, activation, f16 output, bad bias', async ({ gpu }) => {
  const a = gpu.tensor([4, 4], 'f32', 'a');
  const h = gpu.tensor([4, 4], 'f16', 'h');
  gpu.fill(a, 1);
  gpu.fill(h, 1);
  await assertThrows(() => matmulF16x3(gpu, h, a), /matmulF16x3: .*f16/, 'f16 A');
  await assertThrows(() => matmulF16x3(gpu, a, a, { activation: 'gelu' } as never), /matmulF16x3: option "activation" is not supported/, 'activation');
  await assertThrows(() => matmulF16x3(gpu, a, a, { outDtype: 'f16' } as never), /matmulF16x3: outDtype f16 is not supported/, 'f16 output');
  await assertThrows(() => matmulF16x3(gpu, a, a, { bias: gpu.tensor([5], 'f32', 'b5') }), /matmulF16x3: bias .* must have 4 elements/, 'bias size');
  await assertThrows(() => matmulF16x3(gpu, a, a, { bias: gpu.tensor([4], 'f16', 'b16') }), /matmulF16x3: .*f16/, 'f16 bias');
  await assertThrows(() => matmulF16x3(gpu, a, gpu.tensor([5, 4], 'f32')), /inner dimensions differ/, 'shapes');
});

// ---------------------------------------------------------------- the precision switch (gpu.matmulPrecision)

interface LinearShape {
  B: number;
  T: number;
  K: number;
  N: number;
}

/**
 * F.linear (x [B, T, K], w [N, K], b [N]) forward and backward, and F.matmul (a [B, T, K] · shared w2 [K, N])
 * forward and backward, against the f64 reference at `rtol`; returns how many f32 products took each path.
 */
async function functionalProducts({ gpu, rng }: Ctx, sh: LinearShape, rtol: number): Promise<{ f16x3: number; exact: number }> {
  const { B, T, K, N } = sh;
  const M = B * T;
  const before = { ...gpu.f32MatmulStats };
  const xData = rng.normal(M * K);
  const wData = rng.normal(N * K, 1 / Math.sqrt(K));
  const bData = rng.normal(N, 0.3);
  const gData = rng.normal(M * N);
  const tape = new Tape(gpu);
  const x = tape.input(gpu.upload(xData, [B, T, K], 'f32', 'x'), 'x', true);
  const w = new Param(gpu.upload(wData, [N, K], 'f32', 'w'), 'w');
  const b = new Param(gpu.upload(bData, [N], 'f32', 'b'), 'b');
  const y = F.linear(tape, x, w, b);
  assertClose(await y.value.read(), matmulRef(xData, wData, { batch: 1, M, N, K, transB: true, bias: bData }), { rtol, what: `linear ${JSON.stringify(sh)} output` });
  tape.backward(y, gpu.upload(gData, [B, T, N], 'f32', 'dy'));
  assertClose(await x.grad!.read(), matmulRef(gData, wData, { batch: 1, M, N: K, K: N }), { rtol, what: 'linear dx' });
  assertClose(await w.grad!.read(), matmulRef(gData, xData, { batch: 1, M: N, N: K, K: M, transA: true }), { rtol, what: 'linear dw' });
  const db = Array.from({ length: N }, (_, n) => Array.from({ length: M }, (_, m) => gData[m * N + n]!).reduce((s2, v) => s2 + v, 0));
  assertClose(await b.grad!.read(), db, { rtol, what: 'linear db' });
  tape.release();

  const t2 = new Tape(gpu);
  const a = t2.input(gpu.upload(xData, [B, T, K], 'f32', 'a'), 'a', true);
  const w2Data = rng.normal(K * N, 2 / Math.sqrt(K));
  const w2 = new Param(gpu.upload(w2Data, [K, N], 'f32', 'w2'), 'w2');
  const z = F.matmul(t2, a, w2);
  assertClose(await z.value.read(), matmulRef(xData, w2Data, { batch: B, M: T, N, K, sharedB: true }), { rtol, what: 'matmul output' });
  t2.backward(z, gpu.upload(gData, [B, T, N], 'f32', 'dz'));
  assertClose(await a.grad!.read(), matmulRef(gData, w2Data, { batch: B, M: T, N: K, K: N, transB: true, sharedB: true }), { rtol, what: 'matmul da' });
  assertClose(await w2.grad!.read(), matmulRef(xData, gData, { batch: 1, M: K, N, K: M, transA: true }), { rtol, what: 'matmul db' });
  t2.release();
  for (const t of [x.value, x.grad, w.value, w.grad, b.value, b.grad, a.value, a.grad, w2.value, w2.grad]) t?.release();
  return { f16x3: gpu.f32MatmulStats.f16x3 - before.f16x3, exact: gpu.f32MatmulStats.exact - before.exact };
}

const SMALL: LinearShape = { B: 3, T: 11, K: 40, N: 24 };

s.test("matmulPrecision 'high' forced through f16x3 (tiled): linear and matmul, forward and gradients at f32 tolerance", async (ctx) => {
  const got = await withPrecision(ctx.gpu, { precision: 'high', everywhere: true }, () => functionalProducts(ctx, SMALL, 1e-5));
  if (got.f16x3 !== 6 || got.exact !== 0) throw new Error(`f32 products: ${got.f16x3} through f16x3, ${got.exact} exact; expected all 6 through f16x3`);
});

s.test("matmulPrecision on this device: 'highest' is exact; 'high' is f16x3 with tensor cores, else exact with a reason", async (ctx) => {
  const highest = await withPrecision(ctx.gpu, { precision: 'highest', everywhere: false }, () => functionalProducts(ctx, SMALL, 1e-5));
  if (highest.f16x3 !== 0 || highest.exact !== 6) throw new Error(`'highest': ${highest.f16x3} products through f16x3, ${highest.exact} exact; expected 6 exact`);
  const why = highPrecisionUnavailable(ctx.gpu);
  const tc = tensorcoreUnavailable(ctx.gpu);
  if (tc ? !why || !why.includes(tc) : why !== null) throw new Error(`highPrecisionUnavailable says ${JSON.stringify(why)} where tensorcoreUnavailable says ${JSON.stringify(tc)}`);
  const high = await withPrecision(ctx.gpu, { precision: 'high', everywhere: false }, () => functionalProducts(ctx, SMALL, 1e-5));
  const want = why ? { f16x3: 0, exact: 6 } : { f16x3: 6, exact: 0 };
  if (high.f16x3 !== want.f16x3 || high.exact !== want.exact) {
    throw new Error(`'high' (${why ?? 'tensor cores available'}): ${high.f16x3} products through f16x3, ${high.exact} exact; expected ${JSON.stringify(want)}`);
  }
});

s.gpuTest("matmulPrecision 'high' on tensor cores: linear and matmul at f32 tolerance (K 1152)", (gpu) => highPrecisionUnavailable(gpu), async (ctx) => {
  for (const sh of [SMALL, { B: 2, T: 100, K: 1152, N: 96 }]) {
    const got = await withPrecision(ctx.gpu, { precision: 'high', everywhere: false }, () => functionalProducts(ctx, sh, 1e-5));
    if (got.f16x3 !== 6) throw new Error(`${JSON.stringify(sh)}: ${got.f16x3} of 6 products through f16x3`);
  }
});

s.run();
