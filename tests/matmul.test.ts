// matmul: both kernels against an f64 CPU reference, every operand layout, batching, bias, GELU, f16.
import * as assert from 'uvu/assert';
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { matmul, splitKFor, tensorcoreUnavailable, TILED_LARGE, TC_DEFAULT, type MatmulOptions } from '../engine/ops/matmul.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { Gpu } from '../engine/gpu.js';
import { matmulRef } from './ref/matmul.js';
import { GpuError } from '../engine/errors.js';

// ---- cases -------------------------------------------------------------------------------------------

interface Case {
  batch?: number[];
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  sharedB?: boolean;
  bias?: DType;
  gelu?: boolean;
  aType?: DType;
  bType?: DType;
  outDtype?: DType;
  tile?: MatmulOptions['tile'];
  tcTile?: MatmulOptions['tcTile'];
  splitK?: number;
}

async function check({ gpu, rng }: Ctx, c: Case, variant: 'tiled' | 'tensorcore', rtol: number): Promise<void> {
  const batch = c.batch ?? [];
  const nb = batch.reduce((x, y) => x * y, 1);
  const aType = c.aType ?? 'f32';
  const bType = c.bType ?? 'f32';
  const aShape = [...batch, ...(c.transA ? [c.K, c.M] : [c.M, c.K])];
  const bShape = [...(c.sharedB ? [] : batch), ...(c.transB ? [c.N, c.K] : [c.K, c.N])];
  const aData = rng.normal(nb * c.M * c.K);
  const bData = rng.normal((c.sharedB ? 1 : nb) * c.K * c.N, 1 / Math.sqrt(c.K));
  const biasData = c.bias ? rng.normal(c.N) : undefined;
  const a = gpu.upload(aData, aShape, aType, 'A');
  const b = gpu.upload(bData, bShape, bType, 'B');
  const bias = c.bias && biasData ? gpu.upload(biasData, [c.N], c.bias, 'bias') : undefined;
  const outDtype = c.outDtype ?? 'f32';
  const out = gpu.tensor([...batch, c.M, c.N], outDtype, 'C'); // poisoned with NaN by the test device
  matmul(gpu, a, b, { transA: c.transA, transB: c.transB, bias, activation: c.gelu ? 'gelu' : 'none', outDtype, out, variant, tile: c.tile, tcTile: c.tcTile, splitK: c.splitK });
  const got = await out.read();
  const want = matmulRef(aType === 'f16' ? roundToF16(aData) : aData, bType === 'f16' ? roundToF16(bData) : bData, {
    batch: nb, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, sharedB: c.sharedB,
    bias: biasData && c.bias === 'f16' ? roundToF16(biasData) : biasData, gelu: c.gelu,
  });
  const name = `${variant} ${JSON.stringify(c)}`;
  assertClose(got, want, { rtol: outDtype === 'f16' ? 1e-2 : rtol, what: name });
  for (const t of [a, b, out, bias]) t?.release();
}

const layouts = [
  {},
  { transA: true },
  { transB: true },
  { transA: true, transB: true },
];

const s = suite('matmul');

s.test('tiled f32: tiny and ragged shapes, all operand layouts', async (ctx) => {
  for (const l of layouts) {
    for (const [M, N, K] of [[1, 1, 1], [7, 13, 5], [65, 33, 17], [3, 70, 129], [36, 44, 24], [66, 52, 20]] as const) {
      await check(ctx, { M, N, K, ...l }, 'tiled', 1e-5);
    }
  }
});

s.test('tiled f32: large tile config on a ragged multi-tile shape', async (ctx) => {
  for (const l of layouts) {
    await check(ctx, { M: 150, N: 140, K: 37, tile: TILED_LARGE, ...l }, 'tiled', 1e-5);
    await check(ctx, { M: 132, N: 136, K: 40, tile: TILED_LARGE, ...l }, 'tiled', 1e-5); // 16-byte staging path
  }
});

s.test('tiled f32: batched, per-batch and shared B', async (ctx) => {
  await check(ctx, { batch: [2, 3], M: 9, N: 20, K: 11 }, 'tiled', 1e-5);
  await check(ctx, { batch: [4], M: 17, N: 6, K: 10, sharedB: true, transB: true }, 'tiled', 1e-5);
  await check(ctx, { batch: [3], M: 12, N: 9, K: 30, transA: true }, 'tiled', 1e-5);
});

s.test('tiled: bias and GELU epilogues (f32 and f16 bias)', async (ctx) => {
  await check(ctx, { M: 33, N: 47, K: 19, bias: 'f32' }, 'tiled', 1e-5);
  await check(ctx, { M: 33, N: 48, K: 19, bias: 'f16', gelu: true }, 'tiled', 1e-5);
  await check(ctx, { batch: [2], M: 20, N: 30, K: 8, gelu: true, transB: true, sharedB: true }, 'tiled', 1e-5);
});

s.test('tiled: f16 storage (inputs, mixed, f16 output)', async (ctx) => {
  await check(ctx, { M: 31, N: 42, K: 27, aType: 'f16', bType: 'f16' }, 'tiled', 1e-5);
  await check(ctx, { M: 31, N: 42, K: 27, aType: 'f16', transA: true }, 'tiled', 1e-5);
  await check(ctx, { M: 19, N: 22, K: 23, bType: 'f16', transB: true, outDtype: 'f16', bias: 'f16', gelu: true }, 'tiled', 1e-5);
  await check(ctx, { batch: [3], M: 5, N: 10, K: 7, aType: 'f16', bType: 'f16', outDtype: 'f16' }, 'tiled', 1e-5);
});

s.test('split-K weight gradients (transA, long K): forced splits, the automatic choice, f16 inputs', async (ctx) => {
  assert.equal(splitKFor(4, 131072), 64); // the tiny model's dW: 4 tiles, 128k tokens
  assert.equal(splitKFor(100, 16384), 4);
  assert.equal(splitKFor(162, 16384), 1); // more than one wave already
  assert.equal(splitKFor(4, 1000), 1); // K too short to slice
  assert.equal(splitKFor(4, 2 * 1025), 2); // only powers of two dividing K
  assert.equal(splitKFor(4, 3 * 1024), 4); // slices keep ≥ 512
  for (const S of [2, 4, 8]) await check(ctx, { M: 20, N: 36, K: 8 * 48, transA: true, splitK: S }, 'tiled', 1e-5);
  await check(ctx, { M: 9, N: 12, K: 4096, transA: true }, 'tiled', 1e-5); // automatic: 8 slices of 512
  for (const l of layouts) await check(ctx, { M: 9, N: 12, K: 4096, ...l }, 'tiled', 1e-5); // no automatic split
  await check(ctx, { M: 24, N: 16, K: 2048, transA: true, aType: 'f16', bType: 'f16', splitK: 4 }, 'tiled', 1e-5);
});

s.test('bad shapes and dtypes are clear errors', async ({ gpu }) => {
  const a = gpu.tensor([4, 5]);
  const b = gpu.tensor([6, 3]);
  await assertThrows(() => matmul(gpu, a, b), /inner dimensions differ: op\(A\) is 4×5 .* op\(B\) is 6×3/, 'K mismatch');
  const b2 = gpu.tensor([2, 5, 3]);
  await assertThrows(() => matmul(gpu, gpu.tensor([3, 4, 5]), b2), /batch dims of A \[3\] and B \[2\] differ/, 'batch mismatch');
  await assertThrows(() => matmul(gpu, a, gpu.tensor([5, 3]), { bias: gpu.tensor([4]) }), /bias .* must have 3 elements/, 'bias size');
  await assertThrows(() => matmul(gpu, gpu.tensor([4, 5], 'i32'), gpu.tensor([5, 3])), /dtype i32; expected f32 or f16/, 'int input');
  await assertThrows(() => matmul(gpu, a, gpu.tensor([5, 3]), { out: gpu.tensor([3, 4]) }), /output .* must be \[4, 3\] f32/, 'out shape');
  await assertThrows(() => matmul(gpu, a, gpu.tensor([5, 3]), { outDtype: 'f16', variant: 'tiled' }), /needs an even N/, 'odd f16 N');
  if (tensorcoreUnavailable(gpu)) {
    await assertThrows(() => matmul(gpu, gpu.tensor([4, 8], 'f16'), gpu.tensor([8, 8], 'f16'), { variant: 'tensorcore' }), /tensorcore variant cannot run/, 'no tensor cores');
  }
  await assertThrows(() => matmul(gpu, a, gpu.tensor([5, 3]), { variant: 'tensorcore' }), /tensorcore variant takes f16/, 'tc needs f16');
  await assertThrows(() => matmul(gpu, gpu.tensor([6, 4]), gpu.tensor([6, 3]), { transA: true, splitK: 4 }), /splitK 4 must be a positive integer dividing K = 6/, 'split not dividing K');
  await assertThrows(() => matmul(gpu, gpu.tensor([8, 4]), gpu.tensor([8, 3]), { transA: true, splitK: 2, bias: gpu.tensor([3]) }), /splitK needs an unbatched product/, 'split with bias');
  await assertThrows(() => matmul(gpu, a, gpu.tensor([5, 4]), { splitK: 5 }), /splitK is implemented for transA/, 'split without transA');
  if (!tensorcoreUnavailable(gpu)) {
    const big = { SG_M: 4, SG_N: 4, BK: 128 };
    await assertThrows(() => matmul(gpu, gpu.tensor([8, 8], 'f16'), gpu.tensor([8, 8], 'f16'), { tcTile: big }), /needs \d+ bytes of workgroup memory/, 'tile too big');
  }
  await gpu.sync();
});

// ---- tensor cores: run on a GPU; compile-checked on Dawn's null backend everywhere ----------------------

const tcCases: Case[] = [
  { M: 128, N: 128, K: 64 },
  { M: 256, N: 384, K: 96 },
  { M: 100, N: 72, K: 40 },
  { M: 131, N: 136, K: 48 },
  { M: 64, N: 200, K: 24, transA: true },
  { M: 136, N: 96, K: 56, transB: true },
  { M: 37, N: 50, K: 45, transA: true, transB: true },
  { batch: [3], M: 40, N: 264, K: 72, transB: true, sharedB: true, bias: 'f32', gelu: true },
  { batch: [2], M: 128, N: 128, K: 32, outDtype: 'f16', bias: 'f16' },
  { M: 70, N: 200, K: 96, tcTile: { SG_M: 4, SG_N: 2, BK: 64 } },
  { M: 300, N: 260, K: 64, transB: true, tcTile: { SG_M: 8, SG_N: 2, BK: 32 } },
  { M: 65, N: 33, K: 17, outDtype: 'f16', gelu: true },
  { batch: [2], M: 128, N: 256, K: 32, transA: true, transB: true, tcTile: TC_DEFAULT, bias: 'f32' },
  { M: 64, N: 64, K: 80, transB: true, tcTile: { SG_M: 2, SG_N: 2, BK: 16 } },
  // f32 outputs under one 16×16 tile (< 1024 bytes: Dawn rejects a direct subgroup-matrix store there)
  { M: 2, N: 64, K: 32, transB: true },
  { M: 3, N: 5, K: 16 },
  // split-K weight gradients: forced, and the automatic choice on a few-tile, long-K product
  { M: 128, N: 24, K: 4 * 96, transA: true, splitK: 4 },
  { M: 128, N: 12, K: 16384, transA: true },
  // the default 128×256 tile (16 subgroups), every layout
  ...layouts.flatMap((l) => [
    { M: 256, N: 512, K: 64, ...l, tcTile: TC_DEFAULT },
    { M: 200, N: 300, K: 40, ...l, tcTile: TC_DEFAULT, bias: 'f32' as DType },
  ]),
].map((c) => ({ aType: 'f16', bType: 'f16', ...c }) as Case);

s.gpuTest('tensorcore f16→f32: layouts, ragged, batched, epilogues', (gpu) => tensorcoreUnavailable(gpu), async (ctx) => {
  const failures: string[] = []; // every failing case is listed: GPU runs are scarce
  for (const c of tcCases) {
    try {
      await check(ctx, c, 'tensorcore', 1e-3);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  if (failures.length) throw new Error(`${failures.length} of ${tcCases.length} cases failed:\n${failures.join('\n')}`);
});

s.test('tensorcore kernels compile on Dawn null backend (all variants)', async () => {
  let nullGpu: Gpu;
  try {
    nullGpu = await Gpu.open({ device: 'null' });
  } catch (e) {
    throw new Error(`Dawn's null backend did not open: ${(e as Error).message}`);
  }
  const why = tensorcoreUnavailable(nullGpu);
  if (why) throw new Error(`null backend lacks tensor-core features: ${why}`);
  // The null adapter allows only 16 KiB of workgroup memory and 256 invocations (H100: 48 KiB, 1024), so
  // pipeline creation may report exactly those limits; any other error (WGSL, uniformity, bindings) fails.
  const limitOnly = /total use of workgroup storage \(\d+ bytes\) is larger than the maximum allowed \(16384 bytes\)|workgroup_size\(\d+, 1, 1\) that exceeds the maximum allowed \(256, 256, 64\)/;
  for (const c of tcCases) {
    const batch = c.batch ?? [];
    const a = nullGpu.tensor([...batch, ...(c.transA ? [c.K, c.M] : [c.M, c.K])], 'f16');
    const b = nullGpu.tensor([...(c.sharedB ? [] : batch), ...(c.transB ? [c.N, c.K] : [c.K, c.N])], 'f16');
    const bias = c.bias ? nullGpu.tensor([c.N], c.bias) : undefined;
    try {
      matmul(nullGpu, a, b, { transA: c.transA, transB: c.transB, bias, activation: c.gelu ? 'gelu' : 'none', outDtype: c.outDtype, variant: 'tensorcore', tcTile: c.tcTile });
      await nullGpu.sync(); // throws with the WGSL line on a compile error
    } catch (e) {
      if (!(e instanceof GpuError && e.kind === 'validation' && limitOnly.test(e.message))) throw e;
    }
  }
  await nullGpu.destroy();
});

s.run();
