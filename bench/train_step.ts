// End-to-end training-step throughput: STDiT-XL/2 (Open-Sora) and DiT-XL/2 (class-conditional), the full step
// as in training — IDDPM noising at uniform timesteps, forward/backward on the autograd tape, MSE + VB loss,
// AdamW (clipping, dynamic loss scale for f16, EMA) — beside the PyTorch reference
// (/work/shared/refs/torch_reference_bench.py, run separately; pass its output with --torch).
// STDiT goes through cli/_trainer.ts's Trainer with random caption embeddings uploaded directly (the text
// encoder is not part of the timed step, as in the torch script); DiT has its own step here.
//   node dist/bench/train_step.mjs [--case stdit-f16,stdit-f32,dit-f16,dit-f32,stdit64x512 (default) | tiny-f32,tiny-f16,
//        stdit-f32-high,dit-f32-high] [--steps N] [--torch torch_output.log] [--small] [--force-f32] [--safe]
// The -high cases are the f32 ones with matmul_precision 'high' (f32 matmuls from three f16 products on tensor
// cores, engine/ops/matmul_f16x3.ts); skipped where that falls back to the exact kernels. Their torch ratio is
// against torch's plain float32 row (torch's own default precision, 'highest'). --force-f16x3 runs them on a
// device without tensor cores too (f16x3 on the tiled kernel: slower than the exact one; for trying the path).
// --attention-min-scores N: the fewest scores per head from which f32 'high' attention takes the materialised
//   f16x3 path (gpu.matmulAttentionMinScores; 1e12 keeps every attention on the flash kernels, to compare).
// --small: tiny shapes (hidden 64, depth 2, small latents) for trying it on a software device, e.g.
//   WEBGPU_DEVICE=swiftshader node dist/bench/train_step.mjs --small --steps 1
// --force-f32: run the f16 cases in f32 (to exercise their code paths, e.g. gradient checkpointing, on a
//   device without shader-f16; the numbers are then not the f16 ones and no torch ratio is shown).
// Per case: 2 warm-up steps, then N timed steps (default 5, or $TRAIN_STEP_STEPS), each ended by
// `await gpu.sync()`; the table shows the median step, the median CPU time to encode one (encode ms), and
// the mean step when N more steps are encoded back to back (pipelined ms: the CPU encodes the next step
// while the GPU runs this one, as in training; max(encode, GPU) rather than their sum). Peak memory is the engine pool's peak in-use bytes
// during the case (reserved = bytes the pool held at the end, cached included).
// With several cases each runs in its own child process (this script with --case <one> --child), so one case's
// GPU memory is surely returned before the next: two STDiT-XL f32 cases in one process ran out of memory on a
// 141 GB H200 (73 GiB each; Dawn had not yet reclaimed the first case's destroyed buffers).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Tape, type Param } from '../engine/autograd.js';
import * as F from '../engine/functional.js';
import type { Gpu, MatmulPrecision } from '../engine/gpu.js';
import { highPrecisionUnavailable } from '../engine/ops/matmul_f16x3.js';
import { AdamW } from '../engine/optimizer.js';
import { cast } from '../engine/ops/cast.js';
import { randCpu, randn, randint } from '../engine/ops/random.js';
import type { Tensor } from '../engine/tensor.js';
import { stdit16x256 } from '../configs/stdit-16x256.js';
import { tiny } from '../configs/tiny.js';
import { latentShape, tokensPerSample, type TrainConfig } from '../configs/types.js';
import { Trainer } from '../cli/_trainer.js';
import { DiT, DIT_DEFAULTS, type DiTConfig } from '../models/dit.js';
import type { Module } from '../models/nn.js';
import { trainableParams } from '../models/state.js';
import { createSchedule } from '../models/diffusion/schedule.js';
import { qSample, sampleTimesteps, trainingLosses, trainingLossesBackward } from '../models/diffusion/iddpm.js';
import { finish, openBenchGpu, profileOnce, table } from './_harness.js';

// ---------------------------------------------------------------- flags

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}

const CASE_NAMES = ['stdit-f16', 'stdit-f32', 'stdit-f32-high', 'dit-f16', 'dit-f32', 'dit-f32-high', 'stdit64x512', 'tiny-f32', 'tiny-f16'] as const;
/** Cases run when --case is not given (the tiny ones, the embedded default's config, are asked for by name). */
const DEFAULT_CASES: readonly CaseName[] = ['stdit-f16', 'stdit-f32', 'dit-f16', 'dit-f32', 'stdit64x512'];
type CaseName = (typeof CASE_NAMES)[number];

const small = process.argv.includes('--small');
/** --profile [N]: after timing, profile one step per case and print the N (default 25) slowest kernels. */
const profile = process.argv.includes('--profile');
const profileTop = Number(flag('--profile-top') ?? 25);
const forceF32 = process.argv.includes('--force-f32');
const forceF16x3 = process.argv.includes('--force-f16x3');
/** --attention-min-scores N: scores per head from which f32 'high' attention runs as f16x3 products (default gpu's). */
const attentionMinScores = flag('--attention-min-scores');
const steps = Number(flag('--steps') ?? process.env.TRAIN_STEP_STEPS ?? 5);
if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer (got ${flag('--steps') ?? process.env.TRAIN_STEP_STEPS})`);
const WARMUP = 2;
const selected = (flag('--case') ?? DEFAULT_CASES.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
for (const c of selected) {
  if (!(CASE_NAMES as readonly string[]).includes(c)) throw new Error(`--case: unknown case "${c}"; cases: ${CASE_NAMES.join(', ')}`);
}
const torchLog = flag('--torch');

// ---------------------------------------------------------------- the PyTorch reference's output

/** Names and dtypes the torch script prints (json lines: {"name", "dtype", "samples_s", ...} or {"oom": true}). */
const TORCH_KEY: Record<CaseName, { name: string; dtypes: string[] }> = {
  'stdit-f16': { name: 'STDiT-XL/2 16x256', dtypes: ['float16', 'bfloat16'] },
  'stdit-f32': { name: 'STDiT-XL/2 16x256', dtypes: ['float32'] },
  'stdit-f32-high': { name: 'STDiT-XL/2 16x256', dtypes: ['float32'] },
  'dit-f16': { name: 'DiT-XL/2 256px', dtypes: ['float16', 'bfloat16'] },
  'dit-f32': { name: 'DiT-XL/2 256px', dtypes: ['float32'] },
  'dit-f32-high': { name: 'DiT-XL/2 256px', dtypes: ['float32'] },
  stdit64x512: { name: 'STDiT-XL/2 64x512 GC', dtypes: ['float16', 'bfloat16'] },
  'tiny-f32': { name: 'STDiT-tiny', dtypes: ['float32'] },
  'tiny-f16': { name: 'STDiT-tiny', dtypes: ['float16', 'bfloat16'] },
};

interface TorchRow {
  name?: string;
  dtype?: string;
  samples_s?: number;
  oom?: boolean;
}

function readTorch(path: string): TorchRow[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as TorchRow];
      } catch {
        return [];
      }
    })
    .filter((r) => typeof r.name === 'string')
    .map((r) => ({ ...r, dtype: String(r.dtype ?? '').replace(/^torch\./, '') }));
}

/** The torch samples/s for a case (number), 'OOM', or undefined when the log has no such row. */
function torchFor(rows: TorchRow[], c: CaseName): { value: number | 'OOM'; dtype: string } | undefined {
  const key = TORCH_KEY[c];
  for (const dtype of key.dtypes) {
    const r = rows.find((x) => x.name === key.name && x.dtype === dtype);
    if (r) return { value: r.oom ? 'OOM' : Number(r.samples_s), dtype };
  }
  return undefined;
}

// ---------------------------------------------------------------- cases

interface Runner {
  /** Samples per step and tokens per sample (what the transformer sees). */
  batch: number;
  tokens: number;
  params: number;
  /** Encodes one training step (does not wait for the GPU). */
  step(): void;
  release(): void;
}

interface CaseDef {
  label: string;
  dtype: 'f16' | 'f32';
  /** matmul_precision of the case (default 'highest'). */
  precision?: MatmulPrecision;
  make(gpu: Gpu, dtype: 'f16' | 'f32', precision: MatmulPrecision): Runner;
}

function releaseModel(model: Module, opt: AdamW | null): void {
  const drop = (t: Tensor | null | undefined) => {
    if (t && !t.released) t.release();
  };
  for (const p of model.namedParams().values()) {
    drop(p.value);
    drop(p.half);
    drop(p.grad);
    p.half = null;
    p.grad = null;
  }
  if (opt) {
    for (const m of [opt.m, opt.v, opt.ema ?? new Map<string, Tensor>()]) for (const t of m.values()) drop(t);
    drop(opt.state);
  }
}

const countParams = (ps: ReadonlyMap<string, Param>) => [...ps.values()].reduce((n, p) => n + p.value.size, 0);

/** A config of the Trainer: Open-Sora's 16x256 STDiT-XL/2 (or a tiny one), at `frames`×`size` pixels. */
function stditConfig(dtype: 'f16' | 'f32', frames: number, size: number, batch: number, gradCheckpoint: boolean): TrainConfig {
  const c = stdit16x256();
  const base: TrainConfig = {
    ...c,
    num_frames: frames,
    image_size: [size, size],
    dtype,
    batch_size: batch,
    model: { ...c.model, grad_checkpoint: gradCheckpoint },
    // the text encoder is not run (random embeddings are passed in); 'tiny' keeps the Trainer constructible
    text_encoder: { ...c.text_encoder, type: 'tiny' },
  };
  if (!small) return base;
  return {
    ...base,
    num_frames: Math.min(frames, gradCheckpoint ? 8 : 4),
    image_size: [gradCheckpoint ? 128 : 64, gradCheckpoint ? 128 : 64],
    batch_size: Math.min(batch, 2),
    model: { ...base.model, hidden_size: 64, depth: 2, num_heads: 4 },
    text_encoder: { ...base.text_encoder, caption_channels: 32, model_max_length: 8 },
  };
}

/** The embedded default's config (configs/tiny.ts) at `batch`. */
function tinyConfig(dtype: 'f16' | 'f32', batch: number): TrainConfig {
  return { ...tiny(), dtype, batch_size: small ? Math.min(batch, 2) : batch };
}

function stditCase(cfg: (dtype: 'f16' | 'f32') => TrainConfig): CaseDef['make'] {
  return (gpu, dtype, precision) => {
    const c = { ...cfg(dtype), matmul_precision: precision }; // the Trainer sets gpu.matmulPrecision from it
    const trainer = new Trainer(gpu, c);
    const [C, T, H, W] = latentShape(c);
    const B = c.batch_size;
    const L = c.text_encoder.model_max_length;
    const D = c.text_encoder.caption_channels;
    const latents = Float32Array.from(randCpu(B * C * T * H * W, { seed: 11 }), (u) => 2 * u - 1);
    const y = randn(gpu, [B, 1, L, D], { seed: 12 });
    const yIn = c.dtype === 'f16' ? cast(gpu, y, 'f16') : y;
    if (yIn !== y) y.release();
    const yLen = gpu.upload(Int32Array.from({ length: B }, (_, b) => L - ((b * 37) % Math.max(1, L >> 2))), [B], 'i32', 'y_len');
    return {
      batch: B,
      tokens: tokensPerSample(c),
      params: countParams(trainer.params),
      step: () => void trainer.trainStep({ latents, embeddings: { y: yIn, yLen } }),
      release: () => {
        yIn.release();
        yLen.release();
        releaseModel(trainer.model, trainer.optimizer);
      },
    };
  };
}

/** DiT's training step (facebookresearch/DiT train.py): label dropout to the null class, IDDPM loss, AdamW + EMA. */
function ditCase(batch: number): CaseDef['make'] {
  return (gpu, dtype, precision) => {
    gpu.matmulPrecision = precision;
    const cfg: DiTConfig = small ? { ...DIT_DEFAULTS, inputSize: 8, hiddenSize: 64, depth: 2, numHeads: 4, numClasses: 10 } : { ...DIT_DEFAULTS };
    const B = small ? Math.min(batch, 4) : batch;
    if (dtype === 'f16' && !gpu.info.f16) throw new Error('no shader-f16');
    const model = new DiT(gpu, cfg, 0);
    if (dtype === 'f16') model.useHalf();
    const params = trainableParams(model);
    const opt = new AdamW(gpu, params, { lr: 1e-4, weightDecay: 0, lossScale: dtype === 'f16' ? 'dynamic' : 1, emaDecay: 0.9999, halfCopies: dtype === 'f16' });
    const s = createSchedule();
    const [C, N] = [cfg.inChannels, cfg.inputSize];
    const latents = Float32Array.from(randCpu(B * C * N * N, { seed: 21 }), (u) => 2 * u - 1);
    let k = 0;
    return {
      batch: B,
      tokens: (N / cfg.patchSize) ** 2,
      params: countParams(params),
      step: () => {
        const seed = 1000 + k++;
        const labels = Array.from(randint(B, 0, cfg.numClasses - 1, { seed, offset: 0 }));
        randCpu(B, { seed, offset: 1 << 20 }).forEach((u, b) => {
          if (u < cfg.classDropoutProb) labels[b] = cfg.numClasses;
        });
        const xStart = gpu.upload(latents, [B, C, N, N], 'f32', 'x_start');
        const t = sampleTimesteps(s, B, { seed, offset: 2 << 20 });
        const noise = randn(gpu, [B, C, N, N], { seed: seed + 7919 });
        const xT = qSample(gpu, s, xStart, t, noise);
        const timestep = gpu.upload(Float32Array.from(t), [B], 'f32', 'timestep');
        const tape = new Tape(gpu);
        const xIn = tape.input(dtype === 'f16' ? cast(gpu, xT, 'f16') : xT, 'x_t');
        const out = F.toDtype(tape, model.forward(tape, { x: xIn, t: timestep, y: labels }), 'f32');
        const inputs = { xStart, xT, noise, t, modelOutput: out.value };
        const { loss, mse, vb } = trainingLosses(gpu, s, inputs);
        const seedGrad = opt.seed(B, 1 / B);
        const dOut = trainingLossesBackward(gpu, s, inputs, seedGrad);
        seedGrad.release();
        tape.backward(out, dOut);
        dOut.release();
        tape.release();
        opt.step();
        for (const x of [xStart, noise, xT, timestep, loss, mse, vb]) x.release();
        if (xIn.value !== xT) xIn.value.release();
        gpu.flush();
      },
      release: () => releaseModel(model, opt),
    };
  };
}

const CASES: Record<CaseName, CaseDef> = {
  'stdit-f16': { label: 'STDiT-XL/2 16x256 B4 f16', dtype: 'f16', make: stditCase((d) => stditConfig(d, 16, 256, 4, false)) },
  'stdit-f32': { label: 'STDiT-XL/2 16x256 B4 f32', dtype: 'f32', make: stditCase((d) => stditConfig(d, 16, 256, 4, false)) },
  'stdit-f32-high': { label: 'STDiT-XL/2 16x256 B4 f32 high', dtype: 'f32', precision: 'high', make: stditCase((d) => stditConfig(d, 16, 256, 4, false)) },
  'dit-f16': { label: 'DiT-XL/2 256px B64 f16', dtype: 'f16', make: ditCase(64) },
  'dit-f32': { label: 'DiT-XL/2 256px B64 f32', dtype: 'f32', make: ditCase(64) },
  'dit-f32-high': { label: 'DiT-XL/2 256px B64 f32 high', dtype: 'f32', precision: 'high', make: ditCase(64) },
  stdit64x512: { label: 'STDiT-XL/2 64x512 B1 GC f16', dtype: 'f16', make: stditCase((d) => stditConfig(d, 64, 512, 1, true)) },
  'tiny-f32': { label: 'STDiT-tiny 8x32 B64 f32', dtype: 'f32', make: stditCase((d) => tinyConfig(d, 64)) },
  'tiny-f16': { label: 'STDiT-tiny 8x32 B64 f16', dtype: 'f16', make: stditCase((d) => tinyConfig(d, 64)) },
};

// ---------------------------------------------------------------- run

interface Result {
  name: CaseName;
  label: string;
  stepMs?: number;
  /** Median CPU time to encode a step, and the mean step time with steps encoded back to back. */
  encodeMs?: number;
  pipelinedMs?: number;
  meanMs?: number;
  samplesS?: number;
  tokensS?: number;
  peakGiB?: number;
  reservedGiB?: number;
  error?: string;
}

const GiB = 2 ** 30;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const mem = (gib: number) => (gib >= 1 ? `${gib.toFixed(2)} GiB` : `${(gib * 1024).toFixed(1)} MiB`);
const errText = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 160);

async function runCase(gpu: Gpu, name: CaseName): Promise<Result> {
  const def = CASES[name];
  const forced = forceF32 && def.dtype === 'f16';
  const label = `${small ? `${name} small` : def.label}${forced ? ' as f32' : ''}`;
  if (def.dtype === 'f16' && !gpu.info.f16 && !forced) return { name, label, error: 'skipped: no shader-f16' };
  const precision = def.precision ?? 'highest';
  const noHigh = precision === 'high' ? highPrecisionUnavailable(gpu) : null;
  if (noHigh) return { name, label, error: `skipped: matmul_precision 'high' would run the exact kernels here (${noHigh})` };
  await gpu.trim();
  const stats = gpu.pool.stats;
  stats.peakInUseBytes = stats.inUseBytes;
  const base = stats.inUseBytes;
  let runner: Runner | null = null;
  try {
    // progress on stderr as it happens, so a run cut short by a time limit still shows how far it got
    const c0 = performance.now();
    const progress = (what: string) => console.error(`# ${label}: ${what} after ${((performance.now() - c0) / 1000).toFixed(1)} s`);
    runner = def.make(gpu, forced ? 'f32' : def.dtype, precision);
    progress('model and data built');
    const routed = { ...gpu.f32MatmulStats };
    for (let i = 0; i < WARMUP; i++) {
      runner.step();
      await gpu.sync();
      progress(`warm-up step ${i + 1} done`);
    }
    const times: number[] = [];
    const encodes: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const s0 = performance.now();
      runner.step();
      encodes.push(performance.now() - s0);
      await gpu.sync();
      times.push(performance.now() - s0);
    }
    const meanMs = (performance.now() - t0) / steps;
    // the same steps back to back, as the training loop runs them: the CPU encodes step k+1 while the GPU
    // runs step k, so this is max(encode, GPU) per step rather than their sum
    const p0 = performance.now();
    for (let i = 0; i < steps; i++) runner.step();
    await gpu.sync();
    const pipelinedMs = (performance.now() - p0) / steps;
    if (profile && gpu.info.timestamps) {
      // one more step with per-kernel timestamps (each dispatch in its own pass: slower, but the split is right)
      const r0 = runner;
      const rows = await profileOnce(gpu, () => r0.step());
      const total = rows.reduce((a, r) => a + r.totalMs, 0);
      console.log(`${label}: profile of one step: ${total.toFixed(1)} ms of kernel time in ${rows.reduce((a, r) => a + r.count, 0)} dispatches; top kernels:`);
      for (const r of rows.slice(0, profileTop)) console.log(`  ${r.totalMs.toFixed(2).padStart(9)} ms ${String(r.count).padStart(6)}× ${(r.meanUs).toFixed(1).padStart(9)} µs  ${r.kernel}`);
    }
    const [f16x3, exact, attn] = [gpu.f32MatmulStats.f16x3 - routed.f16x3, gpu.f32MatmulStats.exact - routed.exact, gpu.f32MatmulStats.attention - routed.attention];
    if (precision === 'high') console.log(`${label}: f32 matmuls: ${f16x3} from three f16 products, ${exact} exact; ${attn} attentions as f16x3 products; in all the steps of this case`);
    const stepMs = median(times);
    const samplesS = (runner.batch * 1000) / stepMs;
    const r: Result = { name, label, stepMs, meanMs, encodeMs: median(encodes), pipelinedMs, samplesS, tokensS: samplesS * runner.tokens, peakGiB: (stats.peakInUseBytes - base) / GiB, reservedGiB: stats.reservedBytes / GiB };
    console.log(
      `${label}: ${(runner.params / 1e6).toFixed(1)}M params, ${runner.tokens} tokens/sample, step median ${stepMs.toFixed(1)} ms (mean ${meanMs.toFixed(1)}, ` +
        `steps ${times.map((t) => t.toFixed(0)).join(' ')}), ${samplesS.toFixed(2)} samples/s, batch ${runner.batch}, peak ${mem(r.peakGiB!)}, reserved ${mem(r.reservedGiB!)}`,
    );
    return r;
  } catch (e) {
    const error = errText(e);
    console.log(`${label}: FAILED: ${error}`);
    return { name, label, error, peakGiB: (stats.peakInUseBytes - base) / GiB };
  } finally {
    gpu.matmulPrecision = 'highest';
    try {
      runner?.release();
      await gpu.trim();
    } catch (e) {
      console.log(`${label}: cleanup failed: ${errText(e)}`);
    }
  }
}

const RESULT = '#result ';
const child = process.argv.includes('--child');
const names = CASE_NAMES.filter((c) => selected.includes(c));
const torchRows = torchLog ? readTorch(torchLog) : [];
const results: Result[] = [];
if (!child) {
  if (torchLog) console.log(`# torch reference: ${torchRows.length} rows from ${torchLog}`);
  console.log(`# ${steps} timed steps per case after ${WARMUP} warm-up steps${small ? ' (--small shapes)' : ''}`);
}
if (names.length > 1) {
  // one process per case (see the header); its lines pass through, its result comes back as one JSON line
  const seen = new Set<string>();
  const rest = process.argv.slice(2).filter((a, i, all) => a !== '--case' && all[i - 1] !== '--case' && a !== '--torch' && all[i - 1] !== '--torch');
  for (const name of names) {
    const r = spawnSync(process.execPath, [process.argv[1]!, ...rest, '--case', name, '--child'], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20 });
    const lines = (r.stdout ?? '').split('\n');
    for (const line of lines) {
      if (!line || line.startsWith(RESULT) || (line.startsWith('# ') && seen.has(line))) continue; // the device line once
      seen.add(line);
      console.log(line);
    }
    const got = lines.find((l) => l.startsWith(RESULT));
    results.push(got ? (JSON.parse(got.slice(RESULT.length)) as Result) : { name, label: CASES[name].label, error: `child process ended (status ${r.status}, signal ${r.signal}) without a result` });
  }
} else {
  const gpu = await openBenchGpu();
  gpu.matmulF16x3Everywhere = forceF16x3;
  if (attentionMinScores !== undefined) gpu.matmulAttentionMinScores = Number(attentionMinScores);
  for (const name of names) results.push(await runCase(gpu, name));
  if (child) {
    console.log(RESULT + JSON.stringify(results[0]));
    finish(results[0]?.error && !results[0].error.startsWith('skipped') ? 1 : 0);
  }
}

const rows = results.map((r) => {
  const t = torchLog && !small && !(forceF32 && CASES[r.name].dtype === 'f16') ? torchFor(torchRows, r.name) : undefined;
  const tv = t?.value;
  const torchCell = tv === undefined ? '' : tv === 'OOM' ? 'OOM' : tv;
  const ratio = typeof tv === 'number' && r.samplesS !== undefined ? r.samplesS / tv : '';
  if (r.error) return [r.label, r.error, '', '', '', '', r.peakGiB !== undefined && r.peakGiB > 0 ? r.peakGiB : '', torchCell, ''];
  return [r.label, r.samplesS!, r.tokensS!, r.stepMs!, r.encodeMs!, r.pipelinedMs!, r.peakGiB!, torchCell, ratio];
});
console.log('');
console.log(table(['case', 'samples/s', 'tokens/s', 'step ms', 'encode ms', 'pipelined ms', 'peak GiB', 'torch samples/s', 'ratio'], rows));
if (torchLog && !small) console.log('(torch f16 rows: its float16 result if present, else bfloat16 autocast; torch steps are timed over a run, ours per step (median))');
finish(results.some((r) => r.error && !r.error.startsWith('skipped')) ? 1 : 0);
