// LayerNorm bandwidth at the STDiT-XL/2 activation size (16384 tokens × 1152), forward and backward, f32 and
// f16 storage, against the copy ceiling measured in the same run. Bytes counted are those each call must
// move: forward x + y (+ mean/rstd), backward x + dy + dx (+ mean/rstd); weight-gradient partials and the
// parameter vectors are overhead the GB/s figure has to absorb.
//   node dist/bench/layernorm.mjs [--quick] [--sweep] [--safe]
import { layernorm, layernormBackward } from '../engine/ops/layernorm.js';
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { best, copyCeiling, finish, openBenchGpu, table, time } from './_harness.js';

const quick = process.argv.includes('--quick');
const rows = quick ? 1024 : 16384;
const C = 1152;

interface Row {
  name: string;
  dtype: string;
  ms: number;
  gbs: number;
}

async function bench(gpu: Gpu, dtype: 'f32' | 'f16', affine: boolean, subgroups: boolean, rowsPerBlock?: number): Promise<Row[]> {
  const eb = dtype === 'f32' ? 4 : 2;
  const x = gpu.tensor([rows, C], dtype, 'x');
  const dy = gpu.tensor([rows, C], dtype, 'dy');
  const y = gpu.tensor([rows, C], dtype, 'y');
  const dx = gpu.tensor([rows, C], dtype, 'dx');
  gpu.fill(x, 0.5);
  gpu.fill(dy, 0.25);
  const weight = affine ? gpu.tensor([C], 'f32', 'weight') : undefined;
  const bias = affine ? gpu.tensor([C], 'f32', 'bias') : undefined;
  if (weight) gpu.fill(weight, 1);
  if (bias) gpu.fill(bias, 0);
  const stats = layernorm(gpu, x, { weight, bias, out: y, subgroups });
  const release = (...ts: (Tensor | undefined)[]) => ts.forEach((t) => t?.release());
  const iters = quick ? 5 : 50;
  const fwd = best(await time(gpu, () => {
    const r = layernorm(gpu, x, { weight, bias, out: y, subgroups });
    release(r.mean, r.rstd);
  }, iters));
  const bwd = best(await time(gpu, () => {
    const g = layernormBackward(gpu, dy, x, stats.mean, stats.rstd, { weight, out: dx, subgroups, rowsPerBlock });
    release(g.dweight, g.dbias);
  }, iters));
  release(x, dy, y, dx, weight, bias, stats.mean, stats.rstd);
  const S = rows * C * eb;
  const tag = `${affine ? 'affine' : 'plain'}${subgroups ? '' : ' no-sg'}${rowsPerBlock ? ` rpb ${rowsPerBlock}` : ''}`;
  return [
    { name: `forward ${tag}`, dtype, ms: fwd, gbs: (2 * S + 8 * rows) / fwd / 1e6 },
    { name: `backward ${tag}`, dtype, ms: bwd, gbs: (3 * S + 8 * rows) / bwd / 1e6 },
  ];
}

const gpu = await openBenchGpu();
const ceiling = await copyCeiling(gpu, quick ? 64 : 1024);
const sg = gpu.info.subgroups;
const results: Row[] = [];
for (const dtype of ['f32', 'f16'] as const) {
  results.push(...(await bench(gpu, dtype, true, sg)));
  results.push(...(await bench(gpu, dtype, false, sg)));
  if (sg) results.push(...(await bench(gpu, dtype, true, false)));
}
if (process.argv.includes('--sweep')) {
  for (const rpb of [4, 8, 32, 64]) results.push(...(await bench(gpu, 'f32', true, sg, rpb)).slice(1));
}

console.log(`\nlayernorm [${rows}, ${C}]; copy ceiling: ${ceiling.copy16.toFixed(0)} GB/s (16-byte copy kernel), ${ceiling.copyBuffer.toFixed(0)} GB/s (copyBufferToBuffer)`);
console.log(table(['case', 'dtype', 'ms', 'GB/s', '% copy16'], results.map((r) => [r.name, r.dtype, r.ms, r.gbs, (100 * r.gbs) / ceiling.copy16])));
finish();
