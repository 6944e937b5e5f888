// Engine demo: opens the best device (GPU, else software), multiplies two random matrices with the fastest
// matmul variant available, checks a few entries against the CPU, and prints the per-kernel GPU profile.
//   node dist/examples/engine-demo.mjs [--device gpu|swiftshader|llvmpipe] [--size 512]
import { Gpu } from '../engine/gpu.js';
import { matmul, tensorcoreUnavailable } from '../engine/ops/matmul.js';
import { cast } from '../engine/ops/cast.js';
import { Profiler } from '../engine/profiler.js';
import type { DeviceChoice } from '../engine/device.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const n = Number(arg('size', '512'));
if (!Number.isInteger(n) || n < 1 || n > 8192) {
  console.error(`--size must be an integer in 1..8192 (got ${arg('size', '')})`);
  process.exit(2);
}
try {
  const gpu = await Gpu.open({ device: arg('device', process.env.WEBGPU_DEVICE ?? 'auto') as DeviceChoice });
  const i = gpu.info;
  console.log(`device: ${i.backend} — ${i.adapter}`);
  console.log(`features: f16 ${i.f16}, subgroups ${i.subgroups}, timestamps ${i.timestamps}, subgroup matrices ${i.subgroupMatrix.length ? 'yes' : 'no'}`);
  const a = Float32Array.from({ length: n * n }, (_, k) => Math.sin(k * 0.37));
  const b = Float32Array.from({ length: n * n }, (_, k) => Math.cos(k * 0.11) / Math.sqrt(n));
  const A = gpu.upload(a, [n, n]);
  const B = gpu.upload(b, [n, n]);
  const tc = !tensorcoreUnavailable(gpu);
  if (i.timestamps) gpu.profiler.enable();
  const C = tc ? matmul(gpu, cast(gpu, A, 'f16'), cast(gpu, B, 'f16'), { outDtype: 'f32' }) : matmul(gpu, A, B);
  const c = await C.read();
  let worst = 0;
  for (const [r, col] of [[0, 0], [n - 1, n - 1], [n >> 1, n >> 2]] as const) {
    let s = 0;
    for (let k = 0; k < n; k++) s += a[r * n + k]! * b[k * n + col]!;
    worst = Math.max(worst, Math.abs(s - c[r * n + col]!) / (Math.abs(s) + 1));
  }
  console.log(`${n}×${n}×${n} matmul (${tc ? 'f16 tensor cores' : 'f32 tiled'}): max relative error at 3 probes ${worst.toExponential(2)}`);
  if (i.timestamps) console.log(Profiler.format(await gpu.profiler.report()));
  await gpu.destroy();
  process.exit(worst < (tc ? 1e-2 : 1e-4) ? 0 : 1);
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
