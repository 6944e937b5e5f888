// Memory-bound small ops at STDiT-XL/2 shapes (16384 tokens; MLP width 4608, hidden 1152): GELU forward and
// backward, softmax forward and backward, f32 and f16 storage, as GB/s (bytes read + written once) beside
// the copy ceiling measured in the same run.
//   node dist/bench/activation.mjs [--quick] [--safe]
import { gelu, geluBackward } from '../engine/ops/activation.js';
import { softmax, softmaxBackward } from '../engine/ops/softmax.js';
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { best, checkClocks, copyCeiling, finish, openBenchGpu, table, time } from './_harness.js';

const quick = process.argv.includes('--quick');
const ROWS = quick ? 256 : 16384;

type Op = 'gelu' | 'geluBackward' | 'softmax' | 'softmaxBackward';
const TENSORS: Record<Op, number> = { gelu: 2, geluBackward: 3, softmax: 2, softmaxBackward: 3 }; // tensors moved once each

async function run(gpu: Gpu, op: Op, cols: number, dtype: 'f32' | 'f16'): Promise<{ ms: number; gbs: number }> {
  const shape = [ROWS, cols];
  const a = gpu.tensor(shape, dtype, 'a');
  const b = gpu.tensor(shape, dtype, 'b');
  const out = gpu.tensor(shape, dtype, 'out');
  gpu.fill(a, 0.25);
  gpu.fill(b, 0.5);
  const record: Record<Op, () => Tensor> = {
    gelu: () => gelu(gpu, a, out),
    geluBackward: () => geluBackward(gpu, a, b, out),
    softmax: () => softmax(gpu, a, out),
    softmaxBackward: () => softmaxBackward(gpu, a, b, out),
  };
  const ms = best(await time(gpu, () => void record[op](), quick ? 5 : 30));
  for (const t of [a, b, out]) t.release();
  const bytes = TENSORS[op] * ROWS * cols * (dtype === 'f16' ? 2 : 4);
  return { ms, gbs: bytes / ms / 1e6 };
}

const gpu = await openBenchGpu();
const ceiling = await copyCeiling(gpu, quick ? 64 : 1024);
const rows: (string | number)[][] = [];
for (const op of ['gelu', 'geluBackward', 'softmax', 'softmaxBackward'] as const) {
  for (const cols of [4608, 1152]) {
    for (const dtype of ['f32', 'f16'] as const) {
      const r = await run(gpu, op, cols, dtype);
      console.log(`${op} [${ROWS}, ${cols}] ${dtype}: ${r.ms.toFixed(3)} ms, ${r.gbs.toFixed(0)} GB/s`);
      rows.push([op, `${ROWS}x${cols}`, dtype, r.ms, r.gbs, (100 * r.gbs) / ceiling.copy16]);
    }
  }
}
console.log(`\ncopy ceiling: ${ceiling.copy16.toFixed(0)} GB/s (16-byte copy kernel), ${ceiling.copyBuffer.toFixed(0)} GB/s (copyBufferToBuffer)`);
console.log(table(['op', 'shape', 'dtype', 'ms', 'GB/s', '% of copy16'], rows));
await checkClocks(gpu);
finish();
