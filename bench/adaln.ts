// adaLN bandwidth at the STDiT-XL/2 block size [4, 4096, 1152]: modulate (LN + scale/shift) and the gated
// residual, forward and backward, f32 and f16 storage, against the copy ceiling measured in the same run.
// Bytes counted are those each call must move: modulate x + y / x + dy + dx (+ mean/rstd); gated residual
// x + y + out / dout + y + dy (dx is dout itself). Per-sample vectors and gradient partials are overhead.
// f16 runs the modulate twice in the default run: the packed-row kernel (the f16 default, forward and, since
// session 8, backward: 45.4 vs 39.8 % of copy on the H200; shaders/layernorm-packed.wgsl) and the unit kernel
// ({packed: false}), plus a few block/slot settings of the packed kernel; the lines after the table compare
// the two in % of copy16.
// --sweep adds the modulate's kernel variants (ops/layernorm.ts NormBackwardVariant: row slots, 16-byte f16
// units, hardware f16 packing, the fused column sum) and tokens per block of the per-sample gradients.
// --subgroup-rows sweeps one row per subgroup (NormVariant.subgroupRows); --profile prints the kernels of one
// modulate backward call (row kernel vs scale/shift gradient sum).
// Last: PyTorch eager modulate at the same size in the same run (bench/torch_norm.py; --no-torch skips it).
// --wgrad sweeps the modulate backward's tokens per block (f16 packed and f32).
// --gated sweeps the f16 gated residual's unit width, packing, row slots, column sum and tokens per block.
//   node dist/bench/adaln.mjs [--quick] [--sweep] [--wgrad] [--gated] [--subgroup-rows] [--profile] [--safe]
import { adalnModulate, adalnModulateBackward, gatedResidual, gatedResidualBackward } from '../engine/ops/adaln.js';
import { subgroupRowsUnavailable, unitLayout } from '../engine/ops/layernorm.js';
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { checkClocks, copyCeiling, finish, openBenchGpu, printBreakdown, time } from './_harness.js';
import { forwardVariant, normRow, PACKED_SETTINGS, printNormTable, printPackedVsUnit, printVsTorch, variantTag, type NormBenchVariant, type NormRow } from './_norm.js';

const quick = process.argv.includes('--quick');
const [B, N, C] = quick ? [2, 512, 1152] : [4, 4096, 1152];

async function bench(gpu: Gpu, dtype: 'f32' | 'f16', v: NormBenchVariant = {}): Promise<NormRow[]> {
  const fv = forwardVariant(v);
  const { rowsPerBlock } = v;
  const eb = dtype === 'f32' ? 4 : 2;
  const shape = [B, N, C];
  const [x, y, d, o] = ['x', 'y', 'dy', 'out'].map((n) => gpu.tensor(shape, dtype, n)) as [Tensor, Tensor, Tensor, Tensor];
  const [shift, scale, gate] = ['shift', 'scale', 'gate'].map((n) => gpu.tensor([B, C], 'f32', n)) as [Tensor, Tensor, Tensor];
  for (const [t, v] of [[x, 0.5], [y, 0.75], [d, 0.25], [shift, 0.1], [scale, 0.2], [gate, 0.3]] as const) gpu.fill(t, v);
  const stats = adalnModulate(gpu, x, shift, scale, { out: o, ...fv });
  const iters = quick ? 5 : 50;
  const modF = await time(gpu, () => {
    const r = adalnModulate(gpu, x, shift, scale, { out: o, ...fv });
    r.mean.release();
    r.rstd.release();
  }, iters, true);
  const modB = await time(gpu, () => {
    const g = adalnModulateBackward(gpu, d, x, stats.mean, stats.rstd, scale, { out: o, ...v });
    g.dscale.release();
    g.dshift.release();
  }, iters, true);
  const units = { wideF16: v.wideF16, fastPack: v.fastPack };
  const gatF = await time(gpu, () => gatedResidual(gpu, x, gate, y, o, units), iters, true);
  const gv = { rowsPerBlock, slots: v.slots, finalSum: v.finalSum, ...units };
  const gatB = await time(gpu, () => gatedResidualBackward(gpu, d, gate, y, { out: o, ...gv }).dgate.release(), iters, true);
  for (const t of [x, y, d, o, shift, scale, gate, stats.mean, stats.rstd]) t.release();
  const S = B * N * C * eb;
  const st = 8 * B * N;
  const tag = variantTag(v);
  const ftag = variantTag(fv);
  return [
    normRow(`modulate forward${ftag}`, dtype, modF, 2 * S + st),
    normRow(`modulate backward${tag}`, dtype, modB, 3 * S + st),
    normRow(`gated residual forward${variantTag(units)}`, dtype, gatF, 3 * S),
    normRow(`gated residual backward${variantTag(gv)}`, dtype, gatB, 3 * S),
  ];
}

const gpu = await openBenchGpu();
const ceiling = await copyCeiling(gpu, quick ? 64 : 1024);
const results: NormRow[] = [];
results.push(...(await bench(gpu, 'f32')));
// f16: the packed kernel beside the unit kernel, then packed block/slot settings
results.push(...(await bench(gpu, 'f16', { packed: true })));
results.push(...(await bench(gpu, 'f16', { packed: false })).filter((r) => r.name.startsWith('modulate')));
for (const v of PACKED_SETTINGS) results.push(...(await bench(gpu, 'f16', v)).filter((r) => r.name.startsWith('modulate')));
if (process.argv.includes('--wgrad')) {
  // modulate backward: tokens per block (f16 packed: 4 samples × ⌈4096 / rows⌉ workgroups; 41 rows → 400 is past
  // one wave on an H200, see PACKED_BLOCK_TARGET in ops/layernorm.ts), f32
  const modB = (r: NormRow) => r.name.startsWith('modulate backward');
  for (const rowsPerBlock of [41, 42, 44, 64]) results.push(...(await bench(gpu, 'f16', { packed: true, rowsPerBlock })).filter(modB));
  for (const rowsPerBlock of [28, 32]) results.push(...(await bench(gpu, 'f32', { rowsPerBlock })).filter(modB));
}
if (process.argv.includes('--gated')) {
  // f16 gated residual: 16-byte units, hardware packing, row slots, the fused column sum, tokens per block
  const gated = (r: NormRow) => r.name.startsWith('gated');
  const f16: NormBenchVariant[] = [
    { fastPack: true },
    { wideF16: true },
    { wideF16: true, fastPack: true },
    { wideF16: true, fastPack: true, finalSum: 'colsum' },
    ...[2, 4].flatMap((slots) => [undefined, 16, 32].map((rowsPerBlock): NormBenchVariant => ({ wideF16: true, fastPack: true, slots, rowsPerBlock, finalSum: 'colsum' }))),
    { fastPack: true, slots: 4, finalSum: 'colsum' },
  ];
  for (const v of f16) results.push(...(await bench(gpu, 'f16', v)).filter(gated));
}
if (process.argv.includes('--sweep')) {
  for (const rowsPerBlock of [4, 8, 32, 64]) results.push(...(await bench(gpu, 'f32', { rowsPerBlock })).filter((r) => r.name.includes('backward')));
  // modulate variants
  const mod: ['f32' | 'f16', NormBenchVariant][] = [
    ['f32', { slots: 2, finalSum: 'colsum' }],
    ['f32', { slots: 4, finalSum: 'colsum' }],
    ['f32', { slots: 4, rowsPerBlock: 32, finalSum: 'colsum' }],
    ['f32', { slots: 4, rowsPerBlock: 128, finalSum: 'colsum' }],
    ['f32', { slots: 8, finalSum: 'colsum' }],
    ['f32', { slots: 8, rowsPerBlock: 128, finalSum: 'colsum' }],
    ['f32', { rowsPerBlock: 64, finalSum: 'colsum' }],
    ['f32', { finalSum: 'colsum' }],
    ['f32', { rowsPerBlock: 32, finalSum: 'colsum' }],
    ['f32', { slots: 2, rowsPerBlock: 16, finalSum: 'colsum' }],
    ['f32', { slots: 4, lean: true, finalSum: 'colsum' }],
    ['f32', { slots: 8, lean: true, finalSum: 'colsum' }],
    ['f16', { wideF16: true, fastPack: true, slots: 4, lean: true, finalSum: 'colsum' }],
    ['f16', { wideF16: true, fastPack: true }],
    ['f16', { wideF16: true, fastPack: true, slots: 4, finalSum: 'colsum' }],
    ['f16', { wideF16: true, fastPack: true, slots: 4, rowsPerBlock: 128, finalSum: 'colsum' }],
    ['f16', { wideF16: true, fastPack: true, slots: 4, rowsPerBlock: 8, lean: true, finalSum: 'colsum' }],
    ['f16', { wideF16: true, fastPack: true, lean: true, finalSum: 'colsum' }],
    ['f16', { fastPack: true, slots: 4, finalSum: 'colsum' }],
    ['f16', { fastPack: true, slots: 8, finalSum: 'colsum' }],
  ];
  // the unit kernel's variants (f16: {packed: false}; the packed kernel's settings are in the default run)
  for (const [dtype, v] of mod) results.push(...(await bench(gpu, dtype, dtype === 'f16' ? { packed: false, ...v } : v)).filter((r) => r.name.startsWith('modulate')));
  // gated residual backward: row slots and the fused column sum of dgate
  const gat: ['f32' | 'f16', NormBenchVariant][] = [
    ['f32', { slots: 4, finalSum: 'colsum' }],
    ['f32', { slots: 4, rowsPerBlock: 64, finalSum: 'colsum' }],
    ['f32', { slots: 8, finalSum: 'colsum' }],
    ['f16', { slots: 4, finalSum: 'colsum' }],
  ];
  for (const [dtype, v] of gat) results.push(...(await bench(gpu, dtype, v)).filter((r) => r.name.startsWith('gated residual backward')));
}

const noSgRows = subgroupRowsUnavailable(gpu, unitLayout('f32', C).units);
if (process.argv.includes('--subgroup-rows') && noSgRows) console.log(`# --subgroup-rows: skipped (one row per subgroup ${noSgRows})`);
if (process.argv.includes('--subgroup-rows') && !noSgRows) {
  // one row per subgroup (no barrier per row): rows in flight, rows per block, lean loop
  for (const dtype of ['f32', 'f16'] as const) {
    const f16 = dtype === 'f16' ? { wideF16: true, fastPack: true } : {};
    for (const slots of [4, 8, 16]) {
      for (const rowsPerBlock of [32, 64, 128, 256]) {
        for (const lean of [false, true]) results.push(...(await bench(gpu, dtype, { subgroupRows: true, slots, rowsPerBlock, lean, finalSum: 'colsum', ...f16 })).filter((r) => r.name.startsWith('modulate')));
      }
    }
  }
}

if (process.argv.includes('--profile')) {
  // where the modulate backward's time goes: the row kernel vs the per-sample scale/shift gradient sum
  for (const dtype of ['f32', 'f16'] as const) {
    const [x, d] = ['x', 'dy'].map((n) => gpu.tensor([B, N, C], dtype, n)) as [Tensor, Tensor];
    const [shift, scale] = ['shift', 'scale'].map((n) => gpu.tensor([B, C], 'f32', n)) as [Tensor, Tensor];
    for (const [t, v] of [[x, 0.5], [d, 0.25], [shift, 0.1], [scale, 0.2]] as const) gpu.fill(t, v);
    const st = adalnModulate(gpu, x, shift, scale);
    for (const packed of dtype === 'f16' ? [true, false] : [undefined]) {
      await printBreakdown(gpu, `modulate backward ${dtype} (default${packed === undefined ? '' : packed ? ', packed' : ', unit {packed: false}'}): kernels of one call`, () => {
        const g = adalnModulateBackward(gpu, d, x, st.mean, st.rstd, scale, { packed });
        for (const t of [g.dx, g.dscale, g.dshift]) t.release();
      });
    }
    for (const t of [x, d, shift, scale, st.y, st.mean, st.rstd]) t.release();
  }
}

await printNormTable(gpu, 'adaLN', [B, N, C], results, ceiling);
printPackedVsUnit(`f16 modulate [${B}, ${N}, ${C}], % of copy16 — packed kernel ({packed: true}; the default) vs unit kernel ({packed: false}):`, results, ceiling.copy16, ['modulate backward', 'modulate forward']);
printVsTorch(`modulate [${B}, ${N}, ${C}] beside PyTorch's eager LN·(1 + scale) + shift (same GPU, same run, same bytes counted):`, results, B * N, C, B, [
  ['f32', 'modulate forward', 'modulate', 'fwd'],
  ['f32', 'modulate backward', 'modulate', 'bwd'],
  ['f16', 'modulate forward packed', 'modulate', 'fwd'],
  ['f16', 'modulate backward packed', 'modulate', 'bwd'],
]);
await checkClocks(gpu);
finish();
