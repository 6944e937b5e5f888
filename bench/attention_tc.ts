// Tensor-core flash attention throughput, STDiT-XL/2 shapes: forward counts 4·B·H·Nq·Nk·D flops, backward
// 2.5× that (FlashAttention's convention).
import { attentionForwardTc, attentionBackwardTc } from '../engine/ops/attention_tc.js';
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
  const scale = 1 / Math.sqrt(D);
  const ms = best(await time(gpu, () => attentionForwardTc(gpu, { q, k, v, o, lse, scale }), 10));
  const dout = gpu.tensor([B, H, N, D], 'f16');
  gpu.fill(dout, 0.01);
  const grads = [0, 1, 2].map(() => gpu.tensor([B, H, N, D], 'f16'));
  const bms = best(await time(gpu, () => attentionBackwardTc(gpu, { q, k, v, o, dout, lse, scale, dq: grads[0]!, dk: grads[1]!, dv: grads[2]! }), 5));
  const flops = 4 * B * H * N * N * D;
  rows.push([name, ms, flops / ms / 1e9, bms, (2.5 * flops) / bms / 1e9]);
  for (const t of [q, k, v, o, lse, dout, ...grads]) t.release();
}
console.log(table(['shape', 'fwd ms', 'fwd TFLOP/s', 'bwd ms', 'bwd TFLOP/s'], rows));
finish();
