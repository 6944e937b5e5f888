// matmul throughput on the GPU: the portable f32 kernel and the f16 tensor-core kernel, square sizes and
// STDiT-XL/2 shapes (16384 tokens = batch 4 × 16 frames × 256 patches, hidden 1152, MLP 4608) in their
// forward (x·Wᵀ), input-gradient (dY·W) and weight-gradient (dYᵀ·X) layouts, beside PyTorch in the same run.
// --f16x3: also f32 products computed from three f16 tensor-core products (ops/matmul_f16x3.ts; its 'concat'
//   single-product form and its 'three' form), whole-op
// throughput (max-abs, split and combine passes included) as f32-equivalent TFLOP/s beside the f32 kernel.
// --x3-sweep: the fused form's tensor-core tile configs on each STDiT shape.
//   node dist/bench/matmul.mjs [--quick] [--sweep] [--f16x3] [--x3-sweep] [--no-torch] [--safe]
import { matmul, TILED_LARGE, TC_DEFAULT, type TiledTile, type TensorcoreTile } from '../engine/ops/matmul.js';
import type { Gpu } from '../engine/gpu.js';
import { matmulF16x3, MaxAbsCache } from '../engine/ops/matmul_f16x3.js';
import type { Tensor } from '../engine/tensor.js';
import { best, checkClocks, copyCeiling, finish, openBenchGpu, table, time, torch } from './_harness.js';

type Case = [name: string, M: number, N: number, K: number, transA: boolean, transB: boolean];

const quick = process.argv.includes('--quick');
const T = 16384;
const cases: Case[] = [
  ['square 1024', 1024, 1024, 1024, false, false],
  ['square 2048', 2048, 2048, 2048, false, false],
  ['square 4096', 4096, 4096, 4096, false, false],
  ...(quick ? [] : ([['square 8192', 8192, 8192, 8192, false, false]] as Case[])),
  ['qkv  x·Wᵀ', T, 3456, 1152, false, true],
  ['fc1  x·Wᵀ', T, 4608, 1152, false, true],
  ['fc2  x·Wᵀ', T, 1152, 4608, false, true],
  ['proj x·Wᵀ', T, 1152, 1152, false, true],
  ['fc1  dY·W', T, 1152, 4608, false, false],
  ['fc1  dYᵀ·X', 4608, 1152, T, true, false],
];

/** Case c's operands (constants) in dtype, an f32 output, its FLOPs and iterations for ~2e13 FLOPs. */
function operands(gpu: Gpu, c: Case, dtype: 'f32' | 'f16') {
  const [, M, N, K, ta, tb] = c;
  const a = gpu.tensor(ta ? [K, M] : [M, K], dtype, 'A');
  const b = gpu.tensor(tb ? [N, K] : [K, N], dtype, 'B');
  gpu.fill(a, 0.01);
  gpu.fill(b, 0.02);
  const out = gpu.tensor([M, N], 'f32', 'C');
  const flops = 2 * M * N * K;
  const iters = Math.max(3, Math.min(30, Math.round(2e13 / flops)));
  return { a, b, out, flops, iters, transA: ta, transB: tb, release: () => [a, b, out].forEach((t) => t.release()) };
}

async function run(gpu: Gpu, c: Case, dtype: 'f32' | 'f16', tile?: TiledTile, tcTile?: TensorcoreTile, noPrefetch = false): Promise<number> {
  const { a, b, out, flops, iters, transA, transB, release } = operands(gpu, c, dtype);
  const variant = dtype === 'f16' ? 'tensorcore' : 'tiled';
  const ms = best(await time(gpu, () => matmul(gpu, a, b, { transA, transB, out, outDtype: 'f32', variant, tile, tcTile, noPrefetch }), iters));
  release();
  return flops / ms / 1e9;
}

const gpu = await openBenchGpu();
const ceiling = await copyCeiling(gpu);
const tc = gpu.info.subgroupMatrix.length > 0;

if (process.argv.includes('--sweep')) {
  const sq = cases[2]!;
  const tiles: TiledTile[] = [TILED_LARGE, { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 }, { BM: 64, BN: 128, BK: 8, TM: 4, TN: 8 }, { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 }, { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4 }, { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 }, { BM: 64, BN: 64, BK: 32, TM: 4, TN: 4 }];
  for (const t of tiles) console.log(`sweep f32 ${JSON.stringify(t)}: ${(await run(gpu, sq, 'f32', t)).toFixed(1)} TFLOP/s, without prefetch ${(await run(gpu, sq, 'f32', t, undefined, true)).toFixed(1)}`);
  if (tc) {
    const tcs: TensorcoreTile[] = [TC_DEFAULT, { SG_M: 4, SG_N: 2, BK: 64 }, { SG_M: 8, SG_N: 2, BK: 32 }, { SG_M: 2, SG_N: 2, BK: 32 }];
    for (const t of tcs) console.log(`sweep f16 ${JSON.stringify(t)}: ${(await run(gpu, sq, 'f16', undefined, t)).toFixed(1)} TFLOP/s, without prefetch ${(await run(gpu, sq, 'f16', undefined, t, true)).toFixed(1)}`);
  }
}

if (process.argv.includes('--f16x3') && tc) {
  for (const c of cases.filter((x) => x[1] * x[2] * x[3] < 8192 ** 3)) {
    const { a, b, out, flops, iters, transA, transB, release } = operands(gpu, c, 'f32');
    const tf = async (form: 'fused' | 'concat' | 'three') => flops / best(await time(gpu, () => matmulF16x3(gpu, a, b, { transA, transB, out, form }), iters)) / 1e9;
    const [fused, concat, three] = [await tf('fused'), await tf('concat'), await tf('three')];
    release();
    console.log(`${c[0]}: f32 from 3×f16 fused ${fused.toFixed(1)}, concat ${concat.toFixed(1)}, three ${three.toFixed(1)} TFLOP/s (f32 kernel: ${(await run(gpu, c, 'f32')).toFixed(1)})`);
  }
}

if (process.argv.includes('--x3-sweep') && tc) {
  const tiles: TensorcoreTile[] = [
    { SG_M: 4, SG_N: 2, BK: 32 }, { SG_M: 2, SG_N: 2, BK: 32 }, { SG_M: 4, SG_N: 2, BK: 16 }, { SG_M: 2, SG_N: 2, BK: 16 },
    { SG_M: 4, SG_N: 4, BK: 16 }, { SG_M: 8, SG_N: 1, BK: 16 }, { SG_M: 2, SG_N: 4, BK: 16 }, { SG_M: 4, SG_N: 1, BK: 32 },
  ];
  for (const c of cases.filter((x) => x[1] * x[2] * x[3] < 8192 ** 3)) {
    const { a, b, out, flops, iters, transA, transB, release } = operands(gpu, c, 'f32');
    const maxes = new MaxAbsCache(gpu);
    const x3Max: [Tensor, Tensor] = [maxes.get(a), maxes.get(b)];
    const row: string[] = [];
    for (const t of tiles) {
      let tf = NaN;
      try {
        tf = flops / best(await time(gpu, () => matmul(gpu, a, b, { transA, transB, out, x3Max, tcTile: t }), iters)) / 1e9;
      } catch {
        /* tile over the workgroup-memory limit for this layout */
      }
      row.push(`${t.SG_M}x${t.SG_N}/${t.BK} ${tf.toFixed(1)}`);
    }
    maxes.release();
    release();
    console.log(`${c[0]}: fused tiles (kernel only) ${row.join(', ')}`);
  }
}

const ours: { f32: number; f16: number }[] = [];
for (const c of cases) {
  const f32 = c[1] * c[2] * c[3] >= 8192 ** 3 ? NaN : await run(gpu, c, 'f32');
  const f16 = tc ? await run(gpu, c, 'f16') : NaN;
  ours.push({ f32, f16 });
  console.log(`${c[0]}: f32 ${f32.toFixed(1)}  f16-tc ${f16.toFixed(1)} TFLOP/s`);
}
const ref = torch('torch_matmul.py', [JSON.stringify(cases)]);
const tf = (name: string, dtype: string) => Number(ref?.find((r) => r.name === name && r.dtype === dtype)?.tflops ?? NaN);

console.log(`\ncopy ceiling: ${ceiling.copy16.toFixed(0)} GB/s (16-byte copy kernel), ${ceiling.copyBuffer.toFixed(0)} GB/s (copyBufferToBuffer)`);
console.log(
  table(
    ['case', 'M', 'N', 'K', 'f32 TF/s', 'torch f32', 'ratio', 'f16-tc TF/s', 'torch f16', 'torch bf16', 'ratio f16'],
    cases.map((c, i) => {
      const o = ours[i]!;
      const t32 = tf(c[0], 'float32');
      const t16 = tf(c[0], 'float16');
      return [c[0], c[1], c[2], c[3], o.f32, t32, o.f32 / t32, o.f16, t16, tf(c[0], 'bfloat16'), o.f16 / t16];
    }),
  ),
);
await checkClocks(gpu);
finish();
