// A/B of tiled (portable, f32 math) attention forward variants in one process: the production kernel
// (shaders/attention.wgsl through ops/attention.ts) beside edited copies of that file, read at run time and built
// with the production defines (tiledForwardPlan), on the same random f32 inputs (D 72), rounds interleaved, with
// each variant's max |Δ| of O against production (--no-diff skips the readbacks; timing-only ablations differ).
//   node dist/bench/attention_tiled_ab.mjs [--quick] [--no-diff] [--no-prefetch] [--q N] [--tile TR,TY,TC[,TX]] [variant.wgsl[:TR,TY,TC[,TX]] ...]
// --no-prefetch turns off the K/V register prefetch (AttentionOptions.prefetch) for all; --q sets qRegisters for all.
// --tile sets production's tile (and the variants' unless a variant names its own; `base:TR,TY,TC` runs production
// at another tile). Shapes: B4 H16 N4096 and STDiT spatial (1024 sequences of 256).
import { readFileSync } from 'node:fs';
import { attention, tiledForwardPlan, type AttentionTile } from '../engine/ops/attention.js';
import { randn } from '../engine/ops/random.js';
import type { Kernel } from '../engine/shader.js';
import f16Wgsl from '../shaders/f16.wgsl';
import { abCompare, finish, openBenchGpu } from './_harness.js';

const gpu = await openBenchGpu();
const D = 72;
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const parseTile = (s: string | undefined): AttentionTile | undefined => {
  if (!s) return undefined;
  const [TR, TY, TC, TX] = s.split(',').map(Number) as [2 | 4, number, number, number | undefined];
  return { TR, TY, TC, ...(TX ? { TX } : {}) };
};
const baseTile = parseTile(arg('--tile'));
const prefetch = !process.argv.includes('--no-prefetch');
const qRegisters = arg('--q') ? Number(arg('--q')) : undefined;
const args = process.argv.slice(2);
const files = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--tile' && args[i - 1] !== '--q');
const specs = ['base', ...files];

type Shape = [name: string, bh: number, nq: number, nk: number];
const shapes: Shape[] = process.argv.includes('--quick') ? [['N512 (quick)', 2, 512, 512], ['spatial (quick)', 8, 256, 256]] : [['B4 H16 N4096', 64, 4096, 4096], ['spatial 64×256', 1024, 256, 256]];
const lines: string[] = [];
let seed = 1;
for (const [name, bh, nq, nk] of shapes) {
  const variants = specs.map((spec) => {
    const [file, t] = spec.split(':');
    const tile = parseTile(t) ?? baseTile;
    const { defines, rowTiles } = tiledForwardPlan(gpu, 'f32', 'f32', D, nq, nk, { tile, prefetch, qRegisters });
    const kernel: Kernel | null = file === 'base' ? null : gpu.kernel({ name: `tiled-ab:${spec}`, template: readFileSync(file!, 'utf8') + f16Wgsl }, 'main', defines);
    return { spec, tile, kernel, rowTiles };
  });
  const [q, k, v] = [randn(gpu, [1, bh, nq, D], { seed: seed++ }), randn(gpu, [1, bh, nk, D], { seed: seed++ }), randn(gpu, [1, bh, nk, D], { seed: seed++ })];
  const outs = variants.map(() => gpu.tensor([1, bh, nq, D], 'f32'));
  const lse = gpu.tensor([1, bh, nq], 'f32');
  const flops = 4 * bh * nq * nk * D;
  const scale2 = Math.LOG2E / Math.sqrt(D);
  const run = (i: number) => {
    const x = variants[i]!;
    if (!x.kernel) {
      attention(gpu, q, k, v, { variant: 'tiled', tile: x.tile, prefetch, qRegisters, out: outs[i], lse });
      return;
    }
    const total = x.rowTiles * bh;
    const groups = gpu.grid1d(total);
    gpu.dispatch(x.kernel, [q, k, v, outs[i]!, lse], [nq, nk, 1, x.rowTiles, groups[0], total, { f32: scale2 }], groups);
  };
  const iters = Math.max(3, Math.min(20, Math.round(2e11 / flops)));
  const { ms, diffs } = await abCompare(gpu, variants.length, run, iters, outs);
  const cells = variants.map((x, i) => `${x.spec} ${(ms[i]! * 1e3).toFixed(0)} µs ${(flops / ms[i]! / 1e9).toFixed(2)} TF/s${i && diffs.length ? ` |Δ| ${diffs[i - 1]}` : ''}`);
  const line = `${name.padEnd(15)} | ${cells.join(' | ')}`;
  console.log(line);
  lines.push(line);
  for (const t of [q, k, v, lse, ...outs]) t.release();
}
console.log(`\n${lines.join('\n')}`);
finish();
