// Benchmark helpers: open the device in fast mode, time recorded work with GPU timestamps (and wall clock),
// measure the copy ceiling in the same run, run PyTorch beside us when it is installed, print a table.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Gpu } from '../engine/gpu.js';
import { copy16 } from '../engine/ops/copy.js';
import { Profiler, type KernelTime } from '../engine/profiler.js';
import type { Tensor } from '../engine/tensor.js';

export async function openBenchGpu(): Promise<Gpu> {
  const gpu = await Gpu.open({ fast: !process.argv.includes('--safe') });
  const i = gpu.info;
  console.log(`# ${i.backend}: ${i.adapter} | f16 ${i.f16} subgroups ${i.subgroups} subgroup-matrix ${i.subgroupMatrix.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}x${c.N}x${c.K}`).join(', ') || 'none'} | fast toggles ${i.fast}`);
  return gpu;
}

export interface Timing {
  /** Median GPU time of one call from timestamps (ms); NaN without timestamp-query. */
  gpuMs: number;
  /** Wall-clock time per call over one submit of all iterations (ms). */
  wallMs: number;
  /**
   * GPU time per call with all iterations back to back in one timed compute pass (ms; the best of 3; NaN without
   * timestamp-query or unless asked for): a stream of kernels as a training step runs them, without a pass and
   * timestamps per dispatch.
   */
  passMs: number;
}

/** Per-kernel GPU times of one call of `record` (each dispatch in its own timed pass), slowest first. */
export async function profileOnce(gpu: Gpu, record: () => void): Promise<KernelTime[]> {
  gpu.profiler.reset();
  gpu.profiler.enable();
  record();
  await gpu.sync();
  const rows = await gpu.profiler.report();
  gpu.profiler.enable(false);
  gpu.profiler.reset();
  return rows;
}

/** When the harness last had the GPU busy (performance.now() ms). */
let lastBusy = -Infinity;

/**
 * Keeps the GPU at its working clocks before a measurement. Measured on the H200 (nvidia-smi beside an attention
 * kernel): after about 2 s without work the SM clock falls from 1980 to 345 MHz (throttle reason: GPU idle), and a
 * timing loop with readbacks between its samples does not bring it back — the kernel then times 5× slower and the
 * copy kernel at 40 % bandwidth. A CPU-heavy step between measurements (uploading random data, PyTorch in a
 * subprocess) is enough to get there. 0.3 s of back-to-back work restores 1980 MHz, so after any pause of more
 * than half a second `record` runs back to back for `ms` first.
 */
async function warmClocks(gpu: Gpu, record: () => void, ms = 300): Promise<void> {
  if (performance.now() - lastBusy < 500) return;
  const end = performance.now() + ms;
  let batch = 1;
  while (performance.now() < end) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) record();
    await gpu.sync();
    if (performance.now() - t0 < 20) batch *= 2; // submit ≥ 20 ms at a time: no gaps for the clocks to see
  }
}

/**
 * Times `record` (which records one call's dispatches): clocks warmed, one more call, then `iters` calls; with
 * `pass`, also `iters` calls back to back in one timed pass (passMs).
 */
export async function time(gpu: Gpu, record: () => void, iters = 20, pass = false): Promise<Timing> {
  await warmClocks(gpu, record);
  record();
  await gpu.sync();
  let gpuMs = NaN;
  let passMs = gpu.info.timestamps && pass ? Infinity : NaN;
  if (gpu.info.timestamps) {
    const samples: number[] = [];
    for (let i = 0; i < Math.min(iters, 10); i++) samples.push((await profileOnce(gpu, record)).reduce((s, r) => s + r.totalMs, 0));
    samples.sort((a, b) => a - b);
    gpuMs = samples[samples.length >> 1]!;
    for (let round = 0; pass && round < 3; round++) {
      const ms = (await gpu.timePass(() => {
        for (let i = 0; i < iters; i++) record();
      })) / iters;
      passMs = Math.min(passMs, ms);
    }
  }
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) record();
  await gpu.sync();
  const wallMs = (performance.now() - t0) / iters;
  lastBusy = performance.now();
  return { gpuMs, wallMs, passMs };
}

/**
 * A/B of `count` variants whose call i `run(i)` records: the best of 3 interleaved rounds of `time` (ms a call) and,
 * unless --no-diff, each variant's max |Δ| of outs[i] against outs[0] (the baseline), as text.
 */
export async function abCompare(gpu: Gpu, count: number, run: (i: number) => void, iters: number, outs: readonly Tensor[]): Promise<{ ms: number[]; diffs: string[] }> {
  const ms = Array.from({ length: count }, () => Infinity);
  for (let round = 0; round < 3; round++) for (let i = 0; i < count; i++) ms[i] = Math.min(ms[i]!, best(await time(gpu, () => run(i), iters)));
  const diffs: string[] = [];
  if (!process.argv.includes('--no-diff')) {
    const ref = await outs[0]!.read();
    for (const o of outs.slice(1)) {
      const x = await o.read();
      let m = 0;
      for (let j = 0; j < x.length; j++) m = Math.max(m, Math.abs(x[j]! - ref[j]!));
      diffs.push(m.toExponential(1));
    }
  }
  return { ms, diffs };
}

/** Prints the kernels of one call of `record` (after a warm-up call) under a title, or why there are none. */
export async function printBreakdown(gpu: Gpu, title: string, record: () => void): Promise<void> {
  console.log(`\n${title}`);
  if (!gpu.info.timestamps) {
    console.log('  (no timestamp queries on this device)');
    return;
  }
  record();
  await gpu.sync();
  console.log(Profiler.format(await profileOnce(gpu, record)));
}

/** Best time: GPU timestamps when available, else wall clock. */
export const best = (t: Timing): number => (Number.isFinite(t.gpuMs) ? Math.min(t.gpuMs, t.wallMs) : t.wallMs);

/** The run's first copyCeiling (size and 16-byte copy GB/s), measured again by checkClocks at the end. */
let firstCeiling: { mib: number; copy16: number } | null = null;

/**
 * Device-memory bandwidth of the 16-byte copy kernel over `mib` MiB (GB/s, read + write counted): timed per
 * dispatch (copy16) and back to back in one pass (copy16Pass, NaN without timestamps).
 */
export async function copyCeiling(gpu: Gpu, mib = 1024): Promise<{ copy16: number; copy16Pass: number; copyBuffer: number }> {
  const bytesMax = Math.min(mib << 20, gpu.info.limits.maxStorageBufferBindingSize);
  const n = Math.floor(bytesMax / 16) * 4;
  const src = gpu.tensor([n], 'f32', 'copy src');
  const dst = gpu.tensor([n], 'f32', 'copy dst');
  gpu.fill(src, 1.5);
  const bytes = 2 * n * 4;
  const t = await time(gpu, () => copy16(gpu, src, dst, 4 * 1024), 20, true);
  const k = best(t);
  const c = (await time(gpu, () => gpu.copy(src, dst))).wallMs;
  src.release();
  dst.release();
  const rate = bytes / k / 1e6;
  firstCeiling ??= { mib, copy16: rate };
  return { copy16: rate, copy16Pass: bytes / t.passMs / 1e6, copyBuffer: bytes / c / 1e6 };
}

/**
 * Measures the run's first copy ceiling again and says whether the GPU slowed down during the run. On the H200 it
 * twice did so mid-run in session 13 despite warmClocks (every later row 2–3× slower, the copy at the end at 40 %):
 * a drop of more than 20 % is printed as a warning to run the benchmark again.
 */
export async function checkClocks(gpu: Gpu): Promise<void> {
  if (!firstCeiling) return;
  const { mib, copy16: first } = firstCeiling;
  const now = (await copyCeiling(gpu, mib)).copy16;
  const ratio = now / first;
  const line = `copy ceiling at the end ${now.toFixed(0)} GB/s vs ${first.toFixed(0)} at the start (${(100 * ratio).toFixed(0)} %)`;
  console.log(ratio < 0.8 ? `\n# WARNING: the GPU slowed down during this run: ${line}; rows measured after the slowdown are not comparable, run again` : `# ${line}`);
}

/** Runs a PyTorch script from bench/ and returns its JSON lines, or null when python/torch is missing. */
export function torch(script: string, args: string[] = []): Record<string, unknown>[] | null {
  if (process.argv.includes('--no-torch')) return null;
  const path = new URL(`../bench/${script}`, import.meta.url).pathname;
  const file = existsSync(path) ? path : `bench/${script}`;
  const r = spawnSync('python3', [file, ...args], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    console.log(`# PyTorch reference not run (${(r.stderr || r.error?.message || '').trim().split('\n').pop()})`);
    return null;
  }
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? (Number.isFinite(c) ? (Math.abs(c) >= 100 ? c.toFixed(0) : c.toFixed(2)) : '-') : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  const line = (r: (string | number)[]) => r.map((c, i) => String(c).padStart(widths[i]!)).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function finish(code = 0): never {
  process.exit(code);
}
