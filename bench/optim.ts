// Optimizer step bandwidth: fused AdamW over ~760 M f32 master weights split into tensors below the binding
// limit (f32 grads; f16 grads with the state's grad_scale/skip and an f16 weight copy), the global gradient
// norm pass, EMA, and the whole mixed-precision step, as GB/s of bytes moved next to the 16-byte copy ceiling.
// Bytes per parameter: AdamW reads p, m, v, g and writes p, m, v (+ the f16 copy): 28 B with f32 grads,
// 14 + 14 B with f16 grads and the copy; norm reads g (2 or 4 B); EMA reads ema, p and writes ema (12 B).
//   node dist/bench/optim.mjs [--quick] [--safe]
import { adamw, clipGradNorm, emaUpdate, optimState, type AdamWParam } from '../engine/ops/optim.js';
import type { Tensor } from '../engine/tensor.js';
import { best, checkClocks, copyCeiling, finish, openBenchGpu, table, time } from './_harness.js';

const quick = process.argv.includes('--quick');
const TOTAL = quick ? 3_000_000 : 760_000_000;

const gpu = await openBenchGpu();
const ceiling = await copyCeiling(gpu, quick ? 64 : 1024);

// Tensors of at most 64 Mi parameters (256 MiB of f32), fewer where the binding limit is lower; the last is ragged.
const chunk = Math.min(1 << 26, Math.floor(gpu.info.limits.maxStorageBufferBindingSize / 4 / 1024) * 1024, quick ? 1 << 20 : Infinity);
const sizes: number[] = [];
for (let left = TOTAL; left > 0; left -= chunk) sizes.push(Math.min(chunk, left));
console.log(`# ${(TOTAL / 1e6).toFixed(0)} M parameters in ${sizes.length} tensors of ≤ ${(chunk / 2 ** 20).toFixed(0)} Mi`);

const make = (n: number, dtype: 'f32' | 'f16', name: string, value: number): Tensor => {
  const t = gpu.tensor([n], dtype, name);
  gpu.fill(t, value);
  return t;
};
const params = sizes.map((n) => make(n, 'f32', 'p', 0.01));
const ms = sizes.map((n) => make(n, 'f32', 'm', 0));
const vs = sizes.map((n) => make(n, 'f32', 'v', 0));
const g32 = sizes.map((n) => make(n, 'f32', 'g32', 1e-3));
const g16 = sizes.map((n) => make(n, 'f16', 'g16', 1e-3));
const half = sizes.map((n) => make(n, 'f16', 'p16', 0));
const emas = sizes.map((n) => make(n, 'f32', 'ema', 0.01));
const state = optimState(gpu, { lossScale: 1 });
await gpu.sync();

const f32List: AdamWParam[] = sizes.map((_, k) => ({ param: params[k]!, grad: g32[k]!, m: ms[k]!, v: vs[k]! }));
const f16List: AdamWParam[] = sizes.map((_, k) => ({ param: params[k]!, grad: g16[k]!, m: ms[k]!, v: vs[k]!, half: half[k]! }));
const emaPairs = sizes.map((_, k) => ({ ema: emas[k]!, param: params[k]! }));
const iters = quick ? 3 : 10;

interface Case {
  name: string;
  bytesPerParam: number;
  record: () => void;
}
const cases: Case[] = [
  { name: 'adamw f32 grads', bytesPerParam: 28, record: () => adamw(gpu, f32List, { lr: 1e-4, step: 10 }) },
  { name: 'adamw f16 grads + f16 copy, state', bytesPerParam: 28, record: () => adamw(gpu, f16List, { lr: 1e-4, state }) },
  { name: 'grad norm f32', bytesPerParam: 4, record: () => clipGradNorm(gpu, g32, state, { maxNorm: 1 }) },
  { name: 'grad norm f16', bytesPerParam: 2, record: () => clipGradNorm(gpu, g16, state, { maxNorm: 1 }) },
  { name: 'ema', bytesPerParam: 12, record: () => emaUpdate(gpu, emaPairs, 0.9999, state) },
  {
    name: 'step: norm + adamw f16 + copy',
    bytesPerParam: 30,
    record: () => {
      clipGradNorm(gpu, g16, state, { maxNorm: 1 });
      adamw(gpu, f16List, { lr: 1e-4, state });
    },
  },
];

const rows: (string | number)[][] = [];
for (const c of cases) {
  const t = best(await time(gpu, c.record, iters));
  const gbs = (c.bytesPerParam * TOTAL) / t / 1e6;
  rows.push([c.name, c.bytesPerParam, t, gbs, (100 * gbs) / ceiling.copy16]);
  console.log(`${c.name}: ${t.toFixed(3)} ms, ${gbs.toFixed(0)} GB/s`);
}

console.log(`\ncopy ceiling: ${ceiling.copy16.toFixed(0)} GB/s (16-byte copy kernel), ${ceiling.copyBuffer.toFixed(0)} GB/s (copyBufferToBuffer)`);
console.log(table(['case', 'B/param', 'ms', 'GB/s', '% of copy16'], rows));
await checkClocks(gpu);
finish();
