// Flash attention throughput: the tiled portable kernels (f32 math; f32 storage, plus f16 storage for the
// forward) and the tensor-core kernels (f16), forward and backward at B4 H16 N4096 D72 and the STDiT-XL/2
// 16×256 shapes (spatial: 64 sequences of 256 tokens; temporal: 1024 sequences of 16 tokens; H16, D72), beside
// PyTorch SDPA (f32 and f16) on the same GPU in the same run. FLOPs: 4·B·H·Nq·Nk·D forward, 2.5× that backward
// (FlashAttention's count). Where the f32 models' matmul precision 'high' would take the materialised-score path
// (ops/attention_matmul.ts: f16x3 tensor-core products), that path is timed too ('high' columns).
// --force-f16x3 times that path on a device without tensor cores too (tiled f16x3 products: for trying it).
//   node dist/bench/attention.mjs [--quick] [--sweep] [--no-torch] [--safe] [--force-f16x3] [--tc-only]
// --sweep first times the tiled forward's variants (prefetch, wideLoads, stageOutput, mixed dtypes) and tiles
// (each with and without prefetch) and the backward's tiles on the first case.
import { attention, attentionBackward, attentionFlops, chooseAttentionTile, type AttentionOptions, type AttentionTile, type AttentionVariant } from '../engine/ops/attention.js';
import { tensorcoreUnavailable } from '../engine/ops/matmul.js';
import { attentionMatmul, attentionMatmulBackward, matmulAttentionApplies } from '../engine/ops/attention_matmul.js';
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { best, checkClocks, copyCeiling, finish, openBenchGpu, table, time, torch } from './_harness.js';

type Case = [name: string, B: number, H: number, Nq: number, Nk: number, D: number];

const quick = process.argv.includes('--quick');
const cases: Case[] = quick
  ? [['N256 (quick)', 1, 2, 256, 256, 72], ['spatial (quick)', 4, 2, 256, 256, 72], ['temporal (quick)', 64, 2, 16, 16, 72]]
  : [['B4 H16 N4096', 4, 16, 4096, 4096, 72], ['spatial 64×256', 64, 16, 256, 256, 72], ['temporal 1024×16', 1024, 16, 16, 16, 72]];

interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  lse: Tensor;
  dO: Tensor;
  grads: { dq: Tensor; dk: Tensor; dv: Tensor };
}

function inputs(gpu: Gpu, c: Case, dtype: 'f32' | 'f16'): Inputs {
  const [, B, H, Nq, Nk, D] = c;
  const t = (n: number, name: string, value: number) => {
    const x = gpu.tensor([B, H, n, D], dtype, name);
    gpu.fill(x, value);
    return x;
  };
  const q = t(Nq, 'q', 0.05);
  const k = t(Nk, 'k', 0.03);
  const v = t(Nk, 'v', 0.5);
  const o = gpu.tensor([B, H, Nq, D], dtype, 'o');
  const lse = gpu.tensor([B, H, Nq], 'f32', 'lse');
  attention(gpu, q, k, v, { out: o, lse });
  return { q, k, v, o, lse, dO: t(Nq, 'dO', 0.1), grads: { dq: gpu.tensor(q.shape, dtype), dk: gpu.tensor(k.shape, dtype), dv: gpu.tensor(v.shape, dtype) } };
}

function release(x: Inputs): void {
  for (const t of [x.q, x.k, x.v, x.o, x.lse, x.dO, x.grads.dq, x.grads.dk, x.grads.dv]) t.release();
}

const iters = (flops: number) => Math.max(3, Math.min(30, Math.round(3e12 / flops)));

/** Forward TFLOP/s; opts picks the tiled kernel's tile and variants (prefetch, wideLoads, outDtype). */
async function forward(gpu: Gpu, c: Case, dtype: 'f32' | 'f16', opts: AttentionOptions = {}): Promise<number> {
  const x = inputs(gpu, c, dtype);
  const out = opts.outDtype && opts.outDtype !== dtype ? gpu.tensor(x.o.shape, opts.outDtype, 'o') : x.o;
  const flops = attentionFlops(c[1], c[2], c[3], c[4], c[5]);
  const ms = best(await time(gpu, () => attention(gpu, x.q, x.k, x.v, { variant: 'tiled', ...opts, out, lse: x.lse }), iters(flops)));
  if (out !== x.o) out.release();
  release(x);
  return flops / ms / 1e9;
}

async function backward(gpu: Gpu, c: Case, tiles?: { dkdv?: AttentionTile; dq?: AttentionTile }, dtype: 'f32' | 'f16' = 'f32', variant: AttentionVariant = 'tiled'): Promise<number> {
  const x = inputs(gpu, c, dtype);
  const flops = attentionFlops(c[1], c[2], c[3], c[4], c[5], true);
  const ms = best(await time(gpu, () => attentionBackward(gpu, x.q, x.k, x.v, x.o, x.lse, x.dO, { ...x.grads, tiles, variant }), iters(flops)));
  release(x);
  return flops / ms / 1e9;
}

/** The f32 'high' matmul path's forward and backward TFLOP/s, NaN where the models would not take it. */
async function matmulPath(gpu: Gpu, c: Case): Promise<{ fwd: number; bwd: number }> {
  const x = inputs(gpu, c, 'f32');
  gpu.matmulPrecision = 'high';
  const applies = matmulAttentionApplies(gpu, x.q, x.k);
  gpu.matmulPrecision = 'highest';
  let r = { fwd: NaN, bwd: NaN };
  if (applies) {
    const scale = 1 / Math.sqrt(c[5]);
    const f = attentionFlops(c[1], c[2], c[3], c[4], c[5]);
    const fwdMs = best(await time(gpu, () => attentionMatmul(gpu, x.q, x.k, x.v, scale, undefined, x.o), iters(f)));
    const b = attentionFlops(c[1], c[2], c[3], c[4], c[5], true);
    const bwdMs = best(await time(gpu, () => { const g = attentionMatmulBackward(gpu, x.q, x.k, x.v, x.dO, scale); for (const t of [g.dq, g.dk, g.dv]) t.release(); }, iters(b)));
    r = { fwd: f / fwdMs / 1e9, bwd: b / bwdMs / 1e9 };
  }
  release(x);
  return r;
}

const gpu = await openBenchGpu();
const forceF16x3 = process.argv.includes('--force-f16x3');
gpu.matmulF16x3Everywhere = forceF16x3;
const ceiling = await copyCeiling(gpu, quick ? 64 : 1024);
const D = cases[0]![5];
for (const [kernel, rows, cols] of [['forward', cases[0]![3], cases[0]![4]], ['dkdv', cases[0]![4], cases[0]![3]], ['dq', cases[0]![3], cases[0]![4]]] as const) {
  console.log(`# ${kernel} tile for ${cases[0]![0]}: ${JSON.stringify(chooseAttentionTile(gpu, kernel, D, rows, cols))}`);
}

if (process.argv.includes('--sweep')) {
  const c = cases[0]!;
  const fits = (t: AttentionTile) => t.TY * (t.TX ?? 6) <= gpu.info.limits.maxComputeInvocationsPerWorkgroup;
  const tflops = (p: Promise<number>) => p.then((x) => `${x.toFixed(x < 1 ? 4 : 2)} TFLOP/s`, (e: Error) => `skipped: ${e.message.split('\n')[0]}`);
  // Forward kernel variants at the default tile: register prefetch of K/V (prefetch), 16-byte f16 loads
  // (wideLoads), o staged through workgroup memory (stageOutput), and mixed input/output dtypes (isolate
  // the cost of loading f16 from that of packing o).
  const old: AttentionOptions = { prefetch: false, wideLoads: false, stageOutput: false }; // the previous kernel
  const variants: [string, 'f32' | 'f16', AttentionOptions][] = [
    ['f32, all on (default)', 'f32', {}],
    ['f32, no prefetch', 'f32', { prefetch: false }],
    ['f32, no staged output', 'f32', { stageOutput: false }],
    ['f32, previous kernel', 'f32', old],
    ['f16 storage, all on (default)', 'f16', {}],
    ['f16 storage, no prefetch', 'f16', { prefetch: false }],
    ['f16 storage, 8-byte loads', 'f16', { wideLoads: false }],
    ['f16 storage, no staged output', 'f16', { stageOutput: false }],
    ['f16 storage, previous kernel', 'f16', old],
    ['f16 q/k/v, f32 o, all on', 'f16', { outDtype: 'f32' }],
    ['f16 q/k/v, f32 o, previous kernel', 'f16', { ...old, outDtype: 'f32' }],
    ['f32 q/k/v, f16 o, all on', 'f32', { outDtype: 'f16' }],
    ['f32 q/k/v, f16 o, previous kernel', 'f32', { ...old, outDtype: 'f16' }],
  ];
  for (const [name, dtype, opts] of variants) console.log(`sweep forward variant ${name}: ${await tflops(forward(gpu, c, dtype, opts))}`);
  // Tiles, with and without prefetch (prefetch holds the next tile in registers, so the best tile may move)
  const fwd: AttentionTile[] = [
    { TR: 4, TY: 16, TC: 4 }, { TR: 4, TY: 16, TC: 5 }, { TR: 4, TY: 16, TC: 3 }, { TR: 4, TY: 16, TC: 2 }, { TR: 4, TY: 8, TC: 4 }, { TR: 4, TY: 8, TC: 8 },
    { TR: 2, TY: 16, TC: 4 }, { TR: 2, TY: 32, TC: 4 }, { TR: 2, TY: 32, TC: 2 }, { TR: 4, TY: 16, TC: 4, TX: 3 }, { TR: 4, TY: 16, TC: 4, TX: 9 },
  ];
  for (const t of fwd.filter(fits)) {
    for (const prefetch of [true, false]) console.log(`sweep forward f32 ${JSON.stringify(t)} prefetch ${prefetch}: ${await tflops(forward(gpu, c, 'f32', { tile: t, prefetch }))}`);
  }
  for (const t of [{ TR: 4, TY: 16, TC: 4 }, { TR: 4, TY: 16, TC: 5 }, { TR: 2, TY: 32, TC: 4 }] as AttentionTile[]) {
    console.log(`sweep forward f16 storage ${JSON.stringify(t)}: ${await tflops(forward(gpu, c, 'f16', { tile: t }))}`);
  }
  const bwd: AttentionTile[] = [{ TR: 2, TY: 16, TC: 4 }, { TR: 2, TY: 16, TC: 2 }, { TR: 4, TY: 8, TC: 4 }, { TR: 4, TY: 16, TC: 2 }, { TR: 2, TY: 32, TC: 2 }, { TR: 4, TY: 8, TC: 2 }];
  for (const t of bwd.filter(fits)) {
    const r = await backward(gpu, c, { dkdv: t, dq: t }).then((x) => `${x.toFixed(2)} TFLOP/s`, (e: Error) => `skipped: ${e.message.split('\n')[0]}`);
    console.log(`sweep backward (dkdv = dq tile) ${JSON.stringify(t)}: ${r}`);
  }
}

const tc = !tensorcoreUnavailable(gpu);
const tcOnly = tc && process.argv.includes('--tc-only'); // for A/B runs of the tensor-core kernels
const ours: { fwd: number; fwd16: number; bwd: number; tcFwd: number; tcBwd: number; highFwd: number; highBwd: number }[] = [];
for (const c of cases) {
  const high = (tc || forceF16x3) && !tcOnly ? await matmulPath(gpu, c) : { fwd: NaN, bwd: NaN };
  const r = {
    fwd: tcOnly ? NaN : await forward(gpu, c, 'f32'),
    fwd16: tcOnly ? NaN : await forward(gpu, c, 'f16'),
    bwd: tcOnly ? NaN : await backward(gpu, c),
    tcFwd: tc ? await forward(gpu, c, 'f16', { variant: 'tensorcore' }) : NaN,
    tcBwd: tc ? await backward(gpu, c, undefined, 'f16', 'tensorcore') : NaN,
    highFwd: high.fwd,
    highBwd: high.bwd,
  };
  ours.push(r);
  console.log(
    `${c[0]}: tiled forward ${r.fwd.toFixed(3)} (f16 storage ${r.fwd16.toFixed(3)}), backward ${r.bwd.toFixed(3)}; f32 'high' matmul path forward ${r.highFwd.toFixed(3)}, ` +
      `backward ${r.highBwd.toFixed(3)}; tensor cores forward ${r.tcFwd.toFixed(3)}, backward ${r.tcBwd.toFixed(3)} TFLOP/s`,
  );
}
const ref = torch('torch_attention.py', [JSON.stringify(cases)]);
const tf = (name: string, key: string, dtype = 'float32') => Number(ref?.find((r) => r.name === name && r.dtype === dtype)?.[key] ?? NaN);

console.log(`\ncopy ceiling: ${ceiling.copy16.toFixed(0)} GB/s (16-byte copy kernel), ${ceiling.copyBuffer.toFixed(0)} GB/s (copyBufferToBuffer)`);
console.log("tiled kernels (f32) and the f32 'high' matmul path (where the models take it) vs SDPA f32:");
console.log(
  table(
    ['case', 'fwd TF/s', 'f16-storage fwd', 'high fwd', 'torch fwd', 'ratio', 'bwd TF/s', 'high bwd', 'torch bwd', 'ratio'],
    cases.map((c, i) => {
      const o = ours[i]!;
      const [tfw, tbw] = [tf(c[0], 'fwd_tflops'), tf(c[0], 'bwd_tflops')];
      return [c[0], o.fwd, o.fwd16, o.highFwd, tfw, o.fwd / tfw, o.bwd, o.highBwd, tbw, o.bwd / tbw];
    }),
  ),
);
console.log('tensor-core kernels (f16) vs SDPA f16 / bf16:');
console.log(
  table(
    ['case', 'fwd TF/s', 'torch f16', 'torch bf16', 'ratio f16', 'bwd TF/s', 'torch f16', 'ratio f16', 'bwd/fwd'],
    cases.map((c, i) => {
      const o = ours[i]!;
      const [f16f, bf16f, f16b] = [tf(c[0], 'fwd_tflops', 'float16'), tf(c[0], 'fwd_tflops', 'bfloat16'), tf(c[0], 'bwd_tflops', 'float16')];
      return [c[0], o.tcFwd, f16f, bf16f, o.tcFwd / f16f, o.tcBwd, f16b, o.tcBwd / f16b, o.tcBwd / o.tcFwd];
    }),
  ),
);
await checkClocks(gpu);
finish();
