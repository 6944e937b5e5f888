// A/B of tensor-core attention forward variants in one process: the production kernel (shaders/attention_tc.wgsl,
// entry main) beside edited copies of that file, read at run time, on the same random f16 inputs (D 72), rounds
// interleaved, with each variant's max |Δ| of O against production (--no-diff skips the readbacks).
//   node dist/bench/attention_ab.mjs [--sweep] [--no-diff] [variant.wgsl[:SW[:U]] ...]
// SW overrides the Ss row stride (floats; production's choice otherwise; `base:SW` runs production at another SW);
// U (default 1) is a variant's UNITS define: it takes U consecutive 64-query blocks a workgroup (grid x ÷ U);
// U = pG dispatches a persistent variant on a 1-D grid of G workgroups, at most one a query block (it walks the
// (b·h, query block) units).
// Default shapes: B4 H16 N4096, STDiT spatial (1024 sequences of 256), and 256 sequences of 1024; --sweep adds
// 1024 sequences with 256 queries and 64–1024 keys and 64–1024 queries with 256 keys (fixed cost per workgroup).
// Session 12 found its spatial prologue change and the ablations in the README this way.
import { readFileSync } from 'node:fs';
import { randn } from '../engine/ops/random.js';
import { cast } from '../engine/ops/cast.js';
import { attentionTcForwardKernel, stagingWidths } from '../engine/ops/attention_tc.js';
import { tensorcoreUnavailable } from '../engine/ops/matmul.js';
import type { Kernel } from '../engine/shader.js';
import staging from '../shaders/attention_tc_staging.wgsl';
import common from '../shaders/attention_tc_common.wgsl';
import { abCompare, finish, openBenchGpu } from './_harness.js';

const gpu = await openBenchGpu();
if (tensorcoreUnavailable(gpu)) {
  console.log(`# skipped: ${tensorcoreUnavailable(gpu)}`);
  finish();
}
const D = 72;
const DP = 80;
const specs = ['base', ...process.argv.slice(2).filter((a) => !a.startsWith('--'))];
const kernels: { name: string; kernel: Kernel; units: number; persistent?: number }[] = specs.map((spec) => {
  const [file, sw, u] = spec.split(':');
  const SW = sw ? Number(sw) : stagingWidths(DP)[0]!;
  const persistent = u?.startsWith('p') ? Number(u.slice(1)) : undefined;
  const units = u && !persistent ? Number(u) : 1;
  if (file === 'base') return { name: spec, units, kernel: attentionTcForwardKernel(gpu, { DP, outF16: true, mask: false, vec: true, SW }) };
  const defines: Record<string, number | boolean> = { DP, OUT_F16: true, MASK: false, VEC: true, PACK: false, SW, UNITS: units };
  for (let i = 2; i <= 8; i++) defines[`F${i}`] = DP / 16 >= i;
  return { name: spec, units, persistent, kernel: gpu.kernel({ name: `ab:${spec}`, template: readFileSync(file!, 'utf8') + staging + common }, 'main', defines) };
});

const grid = (kn: (typeof kernels)[number], nq: number, bh: number): [number, number, number] =>
  kn.persistent ? [Math.min(kn.persistent, Math.ceil(nq / 64) * bh), 1, 1] : [Math.ceil(Math.ceil(nq / 64) / kn.units), bh, 1];
type Shape = [name: string, bh: number, nq: number, nk: number];
const shapes: Shape[] = [['B4 H16 N4096', 64, 4096, 4096], ['spatial 64×256', 1024, 256, 256], ['256 × 1024', 256, 1024, 1024]];
if (process.argv.includes('--sweep')) {
  for (const nk of [64, 128, 512, 1024]) shapes.push([`1024 × q256 k${nk}`, 1024, 256, nk]);
  for (const nq of [64, 128, 512, 1024]) shapes.push([`1024 × q${nq} k256`, 1024, nq, 256]);
}
let seed = 1;
const random = (shape: number[]) => {
  const x = randn(gpu, shape, { seed: seed++ });
  const y = cast(gpu, x, 'f16');
  x.release();
  return y;
};
const lines: string[] = [];
for (const [name, bh, nq, nk] of shapes) {
  const [q, k, v] = [random([1, bh, nq, D]), random([1, bh, nk, D]), random([1, bh, nk, D])];
  const outs = kernels.map(() => gpu.tensor([1, bh, nq, D], 'f16'));
  const lse = gpu.tensor([1, bh, nq], 'f32');
  const flops = 4 * bh * nq * nk * D;
  const run = (i: number) => gpu.dispatch(kernels[i]!.kernel, [q, k, v, outs[i]!, lse], [nq, nk, D, bh, { f32: Math.LOG2E / Math.sqrt(D) }, bh, 0], grid(kernels[i]!, nq, bh));
  const iters = Math.max(5, Math.min(40, Math.round(2e12 / flops)));
  const { ms, diffs } = await abCompare(gpu, kernels.length, run, iters, outs);
  const cells = kernels.map((kn, i) => `${kn.name} ${(ms[i]! * 1e3).toFixed(1)} µs ${(flops / ms[i]! / 1e9).toFixed(1)} TF/s${i && diffs.length ? ` |Δ| ${diffs[i - 1]}` : ''}`);
  const line = `${name.padEnd(18)} ${Math.ceil(nq / 64) * bh} workgroups × ${Math.ceil(nk / 64)} key tiles | ${cells.join(' | ')}`;
  console.log(line);
  lines.push(line);
  for (const t of [q, k, v, lse, ...outs]) t.release();
}
console.log(`\n${lines.join('\n')}`);
finish();
