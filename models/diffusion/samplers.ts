// Samplers over the IDDPM schedule, one model call per step, latent math on the GPU:
//   'iddpm'      ancestral p_sample over the respaced schedule (upstream p_sample_loop; 100 steps default)
//   'ddim'       DDIM over the same respaced schedule (eta 0 default: deterministic)
//   'dpm-solver' DPM-Solver++(2M) (Lu et al. 2022), data prediction from eps, on the 1000-step discrete
//                schedule at the timesteps round(linspace(999, 0, steps + 1)); the last time is index 0,
//                which it returns (as Lu et al.'s solver without denoise_to_zero); 20 steps default
// and classifier-free guidance as a Denoiser wrapper. The model sees ORIGINAL (1000-step) timesteps, as
// upstream's _WrappedModel maps respaced indices through timestep_map.
import type { Gpu } from '../../engine/gpu.js';
import type { Tensor } from '../../engine/tensor.js';
import { cfgCombine, COEFS, ddimStep, dpmSolverStep, pSampleStep } from '../../engine/ops/diffusion.js';
import { randn } from '../../engine/ops/random.js';
import { coefRows, predictionToEps } from './iddpm.js';
import { createSchedule, TRAIN_STEPS, type Schedule } from './schedule.js';
import type { Prediction } from '../../configs/types.js';

/** The model: x [B, C, ...], t [B] f32 original timesteps → [B, 2C, ...] (learned sigma) or [B, C, ...]. */
export type Denoiser = (x: Tensor, t: Tensor) => Tensor | Promise<Tensor>;

export type SamplerKind = 'iddpm' | 'ddim' | 'dpm-solver';
export const SAMPLERS: readonly SamplerKind[] = ['iddpm', 'ddim', 'dpm-solver'];
export const DEFAULT_STEPS: Record<SamplerKind, number> = { iddpm: 100, ddim: 100, 'dpm-solver': 20 };

export interface SampleOptions {
  sampler?: SamplerKind;
  /** Model calls (default DEFAULT_STEPS[sampler]); 1..1000 (dpm-solver: 1..999). */
  steps?: number;
  /** iddpm/ddim: upstream respacing string instead of `steps` (e.g. "ddim50", "10,20,30"). */
  respacing?: string;
  /** Seed of the noise stream (initial noise unless given, then the per-step noise). Default 0. */
  seed?: number;
  /** First element of the stream to use (default 0): initial noise at offset, step i's at offset + (i+1)·numel. */
  offset?: number;
  /** Initial noise x_T [B, C, ...]; drawn from (seed, offset) when absent (then `shape` is needed). */
  noise?: Tensor;
  shape?: readonly number[];
  /** DDIM eta (default 0). */
  eta?: number;
  /** Clamp pred_xstart to [−1, 1] (upstream clip_denoised; default false as DiT/Open-Sora sample). */
  clipDenoised?: boolean;
  /** Called after every step with (step done, total). */
  progress?: (step: number, total: number) => void;
  /** What the model predicts (default 'eps'); 'v' outputs are converted to eps at each call (iddpm.ts predictionToEps). */
  prediction?: Prediction;
}

/** Validated sampler, step count and numel; throws clear errors for bad options. */
function plan(opts: SampleOptions): { kind: SamplerKind; steps: number } {
  const kind = opts.sampler ?? 'iddpm';
  if (!SAMPLERS.includes(kind)) throw new RangeError(`sample: unknown sampler "${String(kind)}"; use one of ${SAMPLERS.join(', ')}`);
  const steps = opts.steps ?? DEFAULT_STEPS[kind];
  const max = kind === 'dpm-solver' ? TRAIN_STEPS - 1 : TRAIN_STEPS;
  if (!Number.isInteger(steps) || steps < 1 || steps > max) throw new RangeError(`sample: steps ${steps} must be an integer in 1..${max} for sampler '${kind}'`);
  if (opts.eta !== undefined && !(opts.eta >= 0)) throw new RangeError(`sample: eta ${opts.eta} must be ≥ 0`);
  return { kind, steps };
}

/** Coefficient rows of one IDDPM p_sample step at respaced index t. */
export function pSampleCoefRow(s: Schedule, t: number): number[] {
  return [
    s.sqrtRecipAlphasCumprod[t]!, s.sqrtRecipm1AlphasCumprod[t]!, s.posteriorMeanCoef1[t]!, s.posteriorMeanCoef2[t]!,
    s.posteriorLogVarianceClipped[t]!, s.logBetas[t]!, t === 0 ? 0 : 1, s.fixedLargeLogVariance[t]!,
  ];
}

/** Coefficient rows of one DDIM step at respaced index t (upstream ddim_sample). */
export function ddimCoefRow(s: Schedule, t: number, eta: number): number[] {
  const ab = s.alphasCumprod[t]!;
  const abp = s.alphasCumprodPrev[t]!;
  const sigma = eta * Math.sqrt((1 - abp) / (1 - ab)) * Math.sqrt(1 - ab / abp);
  return [s.sqrtRecipAlphasCumprod[t]!, s.sqrtRecipm1AlphasCumprod[t]!, Math.sqrt(abp), Math.sqrt(1 - abp - sigma * sigma), t === 0 ? 0 : sigma];
}

/** DPM-Solver++ time points: schedule indices round(linspace(T−1, 0, steps + 1)). */
export function dpmTimesteps(numTimesteps: number, steps: number): number[] {
  return Array.from({ length: steps + 1 }, (_, i) => Math.round(((numTimesteps - 1) * (steps - i)) / steps));
}

/**
 * Coefficient rows of DPM-Solver++(2M) step i (from times[i] to times[i+1]), on the VP schedule
 * α = sqrt(ᾱ), σ = sqrt(1 − ᾱ), λ = log(α/σ): x' = (σ_t/σ_s)·x − α_t·expm1(−h)·D, h = λ_t − λ_s, with
 * D = d_i (first order: step 0, and the last step when steps < 10) or (1 + 1/2r)·d_i − (1/2r)·d_{i−1},
 * r = h_{i−1}/h. Returns the row and whether d_{i−1} is used.
 */
export function dpmCoefRow(s: Schedule, times: readonly number[], i: number): { row: number[]; second: boolean } {
  const alpha = (t: number) => Math.sqrt(s.alphasCumprod[t]!);
  const sigma = (t: number) => Math.sqrt(1 - s.alphasCumprod[t]!);
  const lambda = (t: number) => 0.5 * Math.log(s.alphasCumprod[t]!) - 0.5 * Math.log1p(-s.alphasCumprod[t]!);
  const [ts, tt] = [times[i]!, times[i + 1]!];
  const h = lambda(tt) - lambda(ts);
  const steps = times.length - 1;
  const second = i > 0 && !(steps < 10 && i === steps - 1);
  let c0 = 1;
  let c1 = 0;
  if (second) {
    const r = (lambda(ts) - lambda(times[i - 1]!)) / h;
    c0 = 1 + 1 / (2 * r);
    c1 = -1 / (2 * r);
  }
  const row = [s.sqrtRecipAlphasCumprod[ts]!, s.sqrtRecipm1AlphasCumprod[ts]!, sigma(tt) / sigma(ts), -alpha(tt) * Math.expm1(-h), c0, c1];
  return { row, second };
}

/** Runs the sampler from noise to a sample [B, C, ...] (a new tensor; the caller's noise is kept). */
export async function sample(gpu: Gpu, model: Denoiser, opts: SampleOptions = {}): Promise<Tensor> {
  const { kind, steps } = plan(opts);
  const seed = opts.seed ?? 0;
  const offset = opts.offset ?? 0;
  let x: Tensor;
  if (opts.noise) x = opts.noise;
  else if (opts.shape) x = randn(gpu, opts.shape, { seed, offset });
  else throw new RangeError('sample: give the initial noise (noise) or its shape (shape)');
  if (x.rank < 2 || x.dtype !== 'f32') throw new RangeError(`sample: the noise ${x} must be f32 [B, C, ...]`);
  const batch = x.shape[0]!;
  const numel = x.size;
  const own = (t: Tensor) => t !== opts.noise;
  const swap = (next: Tensor) => {
    if (own(x)) x.release();
    x = next;
  };
  const base = createSchedule(); // the 1000-step schedule: `original` indexes it
  const call = async (original: number): Promise<Tensor> => {
    const t = gpu.upload(new Float32Array(batch).fill(original), [batch], 'f32', 'sample.t');
    const raw = await model(x, t);
    t.release();
    const out = predictionToEps(gpu, base, opts.prediction ?? 'eps', x, new Array<number>(batch).fill(original), raw);
    if (out !== raw) raw.release();
    return out;
  };
  const coefs = (row: number[], k: number) => gpu.upload(coefRows(new Array(batch).fill(0), () => row), [batch, k], 'f32', 'sample.coefs');

  if (kind === 'dpm-solver') {
    const times = dpmTimesteps(base.numTimesteps, steps);
    let dPrev: Tensor | null = null;
    for (let i = 0; i < steps; i++) {
      const out = await call(base.timestepMap[times[i]!]!);
      const { row, second } = dpmCoefRow(base, times, i);
      const c = coefs(row, COEFS.dpm.length);
      const r = dpmSolverStep(gpu, { x, modelOutput: out, coefs: c, dPrev: second ? dPrev : null });
      for (const t of [out, c, dPrev]) t?.release();
      dPrev = r.d;
      swap(r.xNext);
      opts.progress?.(i + 1, steps);
    }
    dPrev?.release();
    return x;
  }

  const s = createSchedule(opts.respacing ?? String(steps));
  const eta = opts.eta ?? 0;
  const total = s.numTimesteps;
  for (let k = 0; k < total; k++) {
    const t = total - 1 - k;
    const out = await call(s.timestepMap[t]!);
    const needsNoise = t > 0 && (kind === 'iddpm' || eta > 0);
    const noise = needsNoise ? randn(gpu, x.shape, { seed, offset: offset + (k + 1) * numel }) : undefined;
    let next: Tensor;
    if (kind === 'iddpm') {
      const c = coefs(pSampleCoefRow(s, t), COEFS.pSample.length);
      next = pSampleStep(gpu, { x, modelOutput: out, coefs: c, noise, clip: opts.clipDenoised }).xPrev;
      c.release();
    } else {
      const c = coefs(ddimCoefRow(s, t, eta), COEFS.ddim.length);
      next = ddimStep(gpu, { x, modelOutput: out, coefs: c, noise, clip: opts.clipDenoised });
      c.release();
    }
    out.release();
    noise?.release();
    swap(next);
    opts.progress?.(k + 1, total);
  }
  return x;
}

export interface CfgOptions {
  /** Guidance scale (default 7.0). */
  scale?: number;
  /**
   * Output channels guided: 'all' (default), 'eps' (the first C of a [B, 2C] output), 'upstream' (the
   * first 3, as DiT/Open-Sora forward_with_cfg), or a count. The others take the conditional output.
   */
  guided?: 'all' | 'eps' | 'upstream' | number;
}

function guidedChannels(x: Tensor, out: Tensor, g: CfgOptions['guided']): number {
  const k = out.shape[1]!;
  if (g === undefined || g === 'all') return k;
  if (g === 'eps') return x.shape[1]!;
  if (g === 'upstream') return 3;
  if (typeof g === 'number') return g;
  throw new RangeError(`classifierFreeGuidance: guided "${String(g)}" must be 'all', 'eps', 'upstream' or a channel count`);
}

function checkScale(scale: number): number {
  if (!Number.isFinite(scale)) throw new RangeError(`classifierFreeGuidance: scale ${scale} must be a finite number`);
  return scale;
}

/** A Denoiser guiding `cond` away from `uncond`: uncond + scale·(cond − uncond) on the guided channels. */
export function classifierFreeGuidance(gpu: Gpu, cond: Denoiser, uncond: Denoiser, opts: CfgOptions = {}): Denoiser {
  const scale = checkScale(opts.scale ?? 7);
  return async (x, t) => {
    const c = await cond(x, t);
    const u = await uncond(x, t);
    const y = cfgCombine(gpu, c, u, scale, guidedChannels(x, c, opts.guided));
    c.release();
    u.release();
    return y;
  };
}

/**
 * Classifier-free guidance through one doubled batch, as upstream: `model2` gets [x; x] and [t; t] (its
 * conditioning puts the null label/caption on the second half) and returns [cond; uncond] outputs.
 */
export function cfgDoubledBatch(gpu: Gpu, model2: Denoiser, opts: CfgOptions = {}): Denoiser {
  const scale = checkScale(opts.scale ?? 7);
  return async (x, t) => {
    const n = x.size;
    const b = x.shape[0]!;
    const x2 = gpu.tensor([2 * b, ...x.shape.slice(1)], 'f32', 'cfg.x2');
    gpu.copyRange(x, 0, x2, 0, n);
    gpu.copyRange(x, 0, x2, n, n);
    const t2 = gpu.tensor([2 * b], 'f32', 'cfg.t2');
    gpu.copyRange(t, 0, t2, 0, b);
    gpu.copyRange(t, 0, t2, b, b);
    const out2 = await model2(x2, t2);
    x2.release();
    t2.release();
    if (out2.shape[0] !== 2 * b) throw new RangeError(`cfgDoubledBatch: the model returned ${out2} for a doubled batch of ${2 * b}`);
    const half = [b, ...out2.shape.slice(1)];
    const m = out2.size / 2;
    const c = gpu.tensor(half, 'f32', 'cfg.cond');
    const u = gpu.tensor(half, 'f32', 'cfg.uncond');
    gpu.copyRange(out2, 0, c, 0, m);
    gpu.copyRange(out2, m, u, 0, m);
    out2.release();
    const y = cfgCombine(gpu, c, u, scale, guidedChannels(x, c, opts.guided));
    c.release();
    u.release();
    return y;
  };
}
