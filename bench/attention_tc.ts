// Tensor-core flash attention forward throughput (4·B·H·Nq·Nk·D flops), STDiT-XL/2 shapes.
import { attentionForwardTc } from '../engine/ops/attention_tc.js';
import { best, finish, openBenchGpu, table, time } from './_harness.js';

const gpu = await openBenchGpu();
const shapes: [string, number, number, number, number][] = [
  ['B4 H16 N4096 D72', 4, 16, 4096, 72],
  ['spatial 64×256 H16 D72', 64, 16, 256, 72],
  ['temporal 1024×16 H16 D72', 1024, 16, 16, 72],
  ['B4 H16 N4096 D64', 4, 16, 4096, 64],
];
const rows: (string | number)[][] = [];
for (const [name, B, H, N, D] of shapes) {
  const q = gpu.tensor([B, H, N, D], 'f16');
  const k = gpu.tensor([B, H, N, D], 'f16');
  const v = gpu.tensor([B, H, N, D], 'f16');
  for (const t of [q, k, v]) gpu.fill(t, 0.05);
  const o = gpu.tensor([B, H, N, D], 'f16');
  const lse = gpu.tensor([B, H, N]);
  const ms = best(await time(gpu, () => attentionForwardTc(gpu, { q, k, v, o, lse, scale: 1 / Math.sqrt(D) }), 10));
  rows.push([name, ms, (4 * B * H * N * N * D) / ms / 1e9]);
  for (const t of [q, k, v, o, lse]) t.release();
}
console.log(table(['shape', 'ms', 'TFLOP/s'], rows));
finish();
