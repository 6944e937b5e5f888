// LayerNorm bandwidth at the STDiT-XL/2 activation size (16384 tokens × 1152), forward and backward, f32 and
// f16 storage, against the copy ceiling measured in the same run. Bytes counted are those each call must
// move: forward x + y (+ mean/rstd), backward x + dy + dx (+ mean/rstd); weight-gradient partials and the
// parameter vectors are overhead the GB/s figure has to absorb.
// f16 rows run twice in the default run: the packed-row kernel (the f16 default, shaders/layernorm-packed.wgsl)
// and the unit kernel it replaced ({packed: false}), plus a few block/slot settings of the packed kernel; the
// lines after the table compare the two in % of copy16. A second column compares each row with the same copy
// kernel over one tensor of its size (launch and tail costs included on both sides).
// --sweep adds the kernel variants (ops/layernorm.ts NormBackwardVariant: row slots, 16-byte f16 units, hardware
// f16 packing, the fused column sum) and rows per block of the weight-gradient pass.
// --subgroup-rows sweeps one row per subgroup (NormVariant.subgroupRows); --profile prints the kernels of one
// f32 backward call per variant and of the f16 packed and unit backward (row kernel vs weight-gradient sum).
// --per sweeps threads per row against units (f32) or words (f16 packed) a thread (NormVariant.perThread), with slots.
// Last: PyTorch F.layer_norm at the same size in the same run (bench/torch_norm.py; --no-torch skips it).
// --wgrad sweeps the affine backward's rows per block (f16 packed; f32) and times the column sum alone.
//   node dist/bench/layernorm.mjs [--quick] [--sweep] [--wgrad] [--per] [--subgroup-rows] [--profile] [--safe]
import { colsum, layernorm, layernormBackward, subgroupRowsUnavailable, unitLayout, type LayerNormBackwardOptions } from '../engine/ops/layernorm.js';
import { cast } from '../engine/ops/cast.js';
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { best, checkClocks, copyCeiling, finish, openBenchGpu, printBreakdown, time } from './_harness.js';
import { forwardVariant, normRow, PACKED_SETTINGS, printNormTable, printPackedVsUnit, printVsTorch, variantTag, type NormBenchVariant, type NormRow, type TorchPair } from './_norm.js';

const quick = process.argv.includes('--quick');
const rows = quick ? 1024 : 16384;
const C = 1152;

async function bench(gpu: Gpu, dtype: 'f32' | 'f16', affine: boolean, subgroups: boolean, v: NormBenchVariant = {}): Promise<NormRow[]> {
  const fv = forwardVariant(v);
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
  const stats = layernorm(gpu, x, { weight, bias, out: y, subgroups, ...fv });
  const release = (...ts: (Tensor | undefined)[]) => ts.forEach((t) => t?.release());
  const iters = quick ? 5 : 50;
  const fwd = await time(gpu, () => {
    const r = layernorm(gpu, x, { weight, bias, out: y, subgroups, ...fv });
    release(r.mean, r.rstd);
  }, iters, true);
  const bwd = await time(gpu, () => {
    const g = layernormBackward(gpu, dy, x, stats.mean, stats.rstd, { weight, out: dx, subgroups, ...v });
    release(g.dweight, g.dbias);
  }, iters, true);
  release(x, dy, y, dx, weight, bias, stats.mean, stats.rstd);
  const S = rows * C * eb;
  const tag = `${affine ? 'affine' : 'plain'}${subgroups ? '' : ' no-sg'}${variantTag(v)}`;
  return [
    normRow(`forward ${tag}`, dtype, fwd, 2 * S + 8 * rows),
    normRow(`backward ${tag}`, dtype, bwd, 3 * S + 8 * rows),
  ];
}

const gpu = await openBenchGpu();
const ceiling = await copyCeiling(gpu, quick ? 64 : 1024);
const sg = gpu.info.subgroups;
const noSgRows = subgroupRowsUnavailable(gpu, unitLayout('f32', C).units);
const results: NormRow[] = [];
results.push(...(await bench(gpu, 'f32', true, sg)));
results.push(...(await bench(gpu, 'f32', false, sg)));
if (sg) results.push(...(await bench(gpu, 'f32', true, false)));
// f16: the packed kernel (default) beside the unit kernel it replaced, then packed block/slot settings
const pk: NormBenchVariant = { packed: true };
const unit: NormBenchVariant = { packed: false };
for (const v of [pk, unit]) {
  results.push(...(await bench(gpu, 'f16', true, sg, v)));
  results.push(...(await bench(gpu, 'f16', false, sg, v)));
}
if (sg) for (const v of [pk, unit]) results.push(...(await bench(gpu, 'f16', true, false, v)));
for (const v of PACKED_SETTINGS) results.push(...(await bench(gpu, 'f16', true, sg, v)));
if (process.argv.includes('--per')) {
  // threads per row vs units (f32: 288 vec4 units of 1152) or words (f16 packed: 144 words) a thread, with slots
  for (const perThread of [1, 2, 3, 4]) {
    for (const slots of [1, 2, 4]) {
      if (perThread > 1) results.push(...(await bench(gpu, 'f32', true, sg, { perThread, slots })));
      results.push(...(await bench(gpu, 'f16', true, sg, { packed: true, perThread, slots })));
    }
  }
}
if (process.argv.includes('--wgrad')) {
  // f16 affine backward (packed kernel): rows per block (workgroups = 16384 / rows per block; an H200 has 132
  // SMs, 3 of these workgroups each: 41 rows → 400 workgroups is past one wave)
  for (const rowsPerBlock of [32, 41, 42, 44, 46, 64]) results.push(...(await bench(gpu, 'f16', true, sg, { packed: true, rowsPerBlock })).slice(1));
  for (const rowsPerBlock of [28, 32]) results.push(...(await bench(gpu, 'f32', true, sg, { rowsPerBlock })).slice(1));
  // the column sum alone over [blocks, C] partials (its time inside the backward may include the row kernel's tail)
  for (const blocks of [256, 1024]) {
    const [pw, pb] = ['pw', 'pb'].map((n) => gpu.tensor([1, blocks, C], 'f32', n)) as [Tensor, Tensor];
    const [dw, db] = ['dw', 'db'].map((n) => gpu.tensor([C], 'f32', n)) as [Tensor, Tensor];
    gpu.fill(pw, 0.5);
    gpu.fill(pb, 0.25);
    const ms = best(await time(gpu, () => colsum(gpu, pw, pb, dw, db, 1, blocks, C), 50));
    console.log(`# colsum alone, ${blocks} blocks × ${C}: ${(ms * 1000).toFixed(1)} µs`);
    for (const t of [pw, pb, dw, db]) t.release();
  }
}
if (process.argv.includes('--sweep')) {
  // forward (and backward) variants
  const both: ['f32' | 'f16', NormBenchVariant][] = [
    ['f32', { slots: 2 }],
    ['f32', { slots: 4 }],
    ['f16', { wideF16: true }],
    ['f16', { fastPack: true }],
    ['f16', { wideF16: true, fastPack: true }],
    ['f16', { wideF16: true, fastPack: true, slots: 2 }],
    ['f16', { wideF16: true, fastPack: true, slots: 4 }],
    ['f16', { fastPack: true, slots: 4 }],
  ];
  // the unit kernel's variants (f16: {packed: false}; the packed kernel's settings are in the default run)
  const unitOf = (dtype: string, v: NormBenchVariant): NormBenchVariant => (dtype === 'f16' ? { packed: false, ...v } : v);
  for (const [dtype, v] of both) results.push(...(await bench(gpu, dtype, true, sg, unitOf(dtype, v))));
  results.push(...(await bench(gpu, 'f16', false, sg, { packed: false, wideF16: true, fastPack: true, slots: 4 })));
  // weight-gradient pass: rows per block, final sum, row slots
  const bwd: ['f32' | 'f16', NormBenchVariant][] = [
    ...[4, 8, 16, 32, 64].map((rowsPerBlock) => ['f32', { rowsPerBlock }] as ['f32', NormBenchVariant]),
    ['f32', { rowsPerBlock: 64, finalSum: 'colsum' }],
    ...[2, 4, 8].flatMap((slots) => [undefined, 32, 64, 128].map((rowsPerBlock) => ['f32', { slots, rowsPerBlock, finalSum: 'colsum' }] as ['f32', NormBenchVariant])),
    ['f32', { slots: 4, finalSum: 'reduce' }],
    ...[2, 4, 8].flatMap((slots) => [undefined, 64].map((rowsPerBlock) => ['f32', { slots, lean: true, rowsPerBlock, finalSum: 'colsum' }] as ['f32', NormBenchVariant])),
    ['f16', { slots: 4, wideF16: true, fastPack: true, lean: true, finalSum: 'colsum' }],
    ['f16', { slots: 4, wideF16: true, fastPack: true, finalSum: 'colsum' }],
    ['f16', { slots: 4, wideF16: true, fastPack: true, rowsPerBlock: 128, finalSum: 'colsum' }],
    ['f16', { slots: 8, fastPack: true, finalSum: 'colsum' }],
    // the column sum's tile (column units a workgroup; default 4 here): H200 session 11, 1 and 2 were slower
    ...[1, 2, 8].map((colsumTile) => ['f32', { colsumTile }] as ['f32', NormBenchVariant]),
    ...[1, 2, 8].map((colsumTile) => ['f16', { packed: true, colsumTile }] as ['f16', NormBenchVariant]),
  ];
  for (const [dtype, v] of bwd) results.push(...(await bench(gpu, dtype, true, sg, unitOf(dtype, v))).slice(1));
}

if (process.argv.includes('--subgroup-rows') && noSgRows) console.log(`# --subgroup-rows: skipped (one row per subgroup ${noSgRows})`);
if (process.argv.includes('--subgroup-rows') && !noSgRows) {
  // one row per subgroup (no barrier per row): rows in flight, rows per block, lean loop
  for (const dtype of ['f32', 'f16'] as const) {
    const f16 = dtype === 'f16' ? { wideF16: true, fastPack: true } : {};
    results.push(...(await bench(gpu, dtype, false, sg, { subgroupRows: true, ...f16 })));
    for (const slots of [4, 8, 16]) {
      for (const rowsPerBlock of [32, 64, 128, 256]) {
        for (const lean of [false, true]) results.push(...(await bench(gpu, dtype, true, sg, { subgroupRows: true, slots, rowsPerBlock, lean, finalSum: 'colsum', ...f16 })));
      }
    }
  }
}

if (process.argv.includes('--profile')) {
  // where the affine backward's time goes: the row kernel vs the weight-gradient sum, per variant
  const x = gpu.tensor([rows, C], 'f32', 'x');
  const dy = gpu.tensor([rows, C], 'f32', 'dy');
  const w = gpu.tensor([C], 'f32', 'weight');
  const b = gpu.tensor([C], 'f32', 'bias');
  for (const [t, v] of [[x, 0.5], [dy, 0.25], [w, 1], [b, 0]] as const) gpu.fill(t, v);
  const st = layernorm(gpu, x, { weight: w, bias: b });
  const variants: NormBenchVariant[] = [{}, { finalSum: 'colsum' }, ...(noSgRows ? [] : [{ subgroupRows: true, slots: 8, rowsPerBlock: 128, finalSum: 'colsum' } as NormBenchVariant])];
  const cases: [string, LayerNormBackwardOptions][] = [['plain', {}], ...variants.map((v): [string, LayerNormBackwardOptions] => [`affine${variantTag(v) || ' (default)'}`, { weight: w, ...v }])];
  for (const [label, opts] of cases) {
    await printBreakdown(gpu, `backward f32 ${label}: kernels of one call`, () => {
      const g = layernormBackward(gpu, dy, x, st.mean, st.rstd, opts);
      for (const t of [g.dx, g.dweight, g.dbias]) t?.release();
    });
  }
  // f16: the packed kernel vs the unit kernel (row kernel vs weight-gradient sum)
  const [xh, dyh] = [x, dy].map((t) => cast(gpu, t, 'f16'));
  const sth = layernorm(gpu, xh!, { weight: w, bias: b });
  for (const packed of [true, false]) {
    await printBreakdown(gpu, `backward f16 affine ${packed ? 'packed' : 'unit'} (default settings): kernels of one call`, () => {
      const g = layernormBackward(gpu, dyh!, xh!, sth.mean, sth.rstd, { weight: w, packed });
      for (const t of [g.dx, g.dweight, g.dbias]) t?.release();
    });
  }
}

await printNormTable(gpu, 'layernorm', [rows, C], results, ceiling);
printPackedVsUnit(`f16 [${rows}, ${C}], % of copy16 — packed kernel (the default) vs unit kernel ({packed: false}, the previous default):`, results, ceiling.copy16, ['backward affine', 'backward plain', 'forward affine', 'forward plain']);
const vsTorch: TorchPair[] = (['affine', 'plain'] as const).flatMap((a) =>
  (['forward', 'backward'] as const).flatMap((d): TorchPair[] => [
    ['f32', `${d} ${a}`, `layernorm ${a}`, d === 'forward' ? 'fwd' : 'bwd'],
    ['f16', `${d} ${a} packed`, `layernorm ${a}`, d === 'forward' ? 'fwd' : 'bwd'],
  ]));
printVsTorch(`layernorm [${rows}, ${C}] beside PyTorch F.layer_norm (same GPU, same run, same bytes counted):`, results, rows, C, 4, vsTorch);
await checkClocks(gpu);
finish();
