// IDDPM training (DiT / Open-Sora `create_diffusion`): epsilon prediction, learned-range sigma, loss = MSE +
// VB. q_sample, the per-sample loss {loss, mse, vb} and its gradient by the model output run on the GPU;
// the per-sample coefficients at each sample's t come from the f64 schedule.
//   x_t  = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε
//   mse  = mean over the sample of (ε_θ − ε)²
//   vb   = mean of KL(q(x_{t−1} | x_t, x0) ‖ p_θ(x_{t−1} | x_t)) / ln 2 (t > 0), or the discretized Gaussian
//          decoder NLL / ln 2 at t = 0; ε_θ is detached there, so vb trains only the variance channels.
//   loss = mse + vbScale·vb (vbScale 1: upstream's num_timesteps / 1000 for the 1000-step schedule)
import type { Gpu } from '../../engine/gpu.js';
import type { Tensor } from '../../engine/tensor.js';
import { COEFS, iddpmLoss, iddpmLossBackward, sampleAxpby, vToEps } from '../../engine/ops/diffusion.js';
import { randint } from '../../engine/ops/random.js';
import type { Schedule } from './schedule.js';
import type { LossWeighting, Prediction } from '../../configs/types.js';

/** Checks that t holds `batch` integer timesteps of the schedule. */
export function checkTimesteps(what: string, s: Schedule, t: ArrayLike<number>, batch: number): void {
  if (t.length !== batch) throw new RangeError(`${what}: ${t.length} timesteps for a batch of ${batch}; give one per sample`);
  for (let i = 0; i < t.length; i++) {
    const v = t[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= s.numTimesteps) throw new RangeError(`${what}: timestep ${v} (sample ${i}) must be an integer in 0..${s.numTimesteps - 1}`);
  }
}

/** [B, K] f32 rows: the named schedule columns at each t (row-major), for the coef tensors of the kernels. */
export function coefRows(t: ArrayLike<number>, row: (t: number) => number[]): Float32Array {
  const rows = Array.from(t, (v) => row(v));
  return Float32Array.from(rows.flat());
}

/** Coefficients of COEFS.loss at t; the MSE weight is 1/ᾱ_t for v prediction (the v-MSE), else 1. */
export function lossCoefRow(s: Schedule, t: number, prediction: Prediction = 'eps'): number[] {
  return [
    s.sqrtRecipAlphasCumprod[t]!,
    s.sqrtRecipm1AlphasCumprod[t]!,
    s.posteriorMeanCoef1[t]!,
    s.posteriorMeanCoef2[t]!,
    s.posteriorLogVarianceClipped[t]!,
    s.logBetas[t]!,
    t === 0 ? 1 : 0,
    prediction === 'v' ? 1 / s.alphasCumprod[t]! : 1,
  ];
}

function uploadCoefs(gpu: Gpu, t: ArrayLike<number>, row: (t: number) => number[], k: number, name: string): Tensor {
  return gpu.upload(coefRows(t, row), [t.length, k], 'f32', name);
}

/** x_t = sqrt(ᾱ_t)·xStart + sqrt(1 − ᾱ_t)·noise per sample (t: one schedule index per sample). */
export function qSample(gpu: Gpu, s: Schedule, xStart: Tensor, t: ArrayLike<number>, noise: Tensor): Tensor {
  checkTimesteps('qSample', s, t, xStart.shape[0] ?? 0);
  const coefs = uploadCoefs(gpu, t, (v) => [s.sqrtAlphasCumprod[v]!, s.sqrtOneMinusAlphasCumprod[v]!], COEFS.qSample.length, 'qSample.coefs');
  const y = sampleAxpby(gpu, xStart, noise, coefs);
  coefs.release();
  return y;
}

export interface LossInputs {
  xStart: Tensor;
  /** q_sample(xStart, t, noise), the model's input. */
  xT: Tensor;
  noise: Tensor;
  /** One schedule index per sample. */
  t: ArrayLike<number>;
  /** The model's output at (xT, t): [B, 2C, ...] (learned sigma) or [B, C, ...]. */
  modelOutput: Tensor;
  /** Factor of vb (default numTimesteps / 1000, upstream's RESCALED_MSE; 1 for the 1000-step schedule). */
  vbScale?: number;
  /**
   * What the model predicted ('eps' default). For 'v', pass modelOutput already converted with
   * predictionToEps: the MSE term becomes the v-MSE (eps-MSE / ᾱ_t); the VB term is unchanged.
   */
  prediction?: Prediction;
}

function lossArgs(gpu: Gpu, what: string, s: Schedule, a: LossInputs) {
  checkTimesteps(what, s, a.t, a.xT.shape[0] ?? 0);
  const coefs = uploadCoefs(gpu, a.t, (v) => lossCoefRow(s, v, a.prediction), COEFS.loss.length, `${what}.coefs`);
  return { modelOutput: a.modelOutput, xStart: a.xStart, xT: a.xT, noise: a.noise, coefs, vbScale: a.vbScale ?? s.numTimesteps / 1000 };
}

/** upstream training_losses: per-sample {loss, mse, vb}, each [B] f32. */
export function trainingLosses(gpu: Gpu, s: Schedule, a: LossInputs): { loss: Tensor; mse: Tensor; vb: Tensor } {
  const args = lossArgs(gpu, 'trainingLosses', s, a);
  const out = iddpmLoss(gpu, args);
  args.coefs.release();
  return out;
}

/** Gradient of Σ_b dloss[b]·loss[b] by the model output (dloss [B] f32; for the batch mean, 1/B each). */
export function trainingLossesBackward(gpu: Gpu, s: Schedule, a: LossInputs, dloss: Tensor): Tensor {
  const args = lossArgs(gpu, 'trainingLossesBackward', s, a);
  const d = iddpmLossBackward(gpu, { ...args, dloss });
  args.coefs.release();
  return d;
}

/**
 * The model output as an eps-prediction output: unchanged for 'eps'; for 'v' (the model predicts
 * v = sqrt(ᾱ)·eps − sqrt(1 − ᾱ)·x0, Salimans & Ho 2022) a new tensor with eps = sqrt(ᾱ_t)·v + sqrt(1 − ᾱ_t)·x_t
 * on the eps channels (learned variance values kept). Losses and samplers then work on eps as upstream.
 */
export function predictionToEps(gpu: Gpu, s: Schedule, prediction: Prediction, xT: Tensor, t: ArrayLike<number>, modelOutput: Tensor): Tensor {
  return prediction === 'eps' ? modelOutput : vToEpsAt(gpu, s, 'predictionToEps', xT, t, modelOutput, true);
}

/** The gradient by the model's own output from the gradient by its predictionToEps form (for 'v': sqrt(ᾱ_t)·d eps). */
export function predictionGradient(gpu: Gpu, s: Schedule, prediction: Prediction, xT: Tensor, t: ArrayLike<number>, dEps: Tensor): Tensor {
  return prediction === 'eps' ? dEps : vToEpsAt(gpu, s, 'predictionGradient', xT, t, dEps, false);
}

/** vToEps of y with each sample's coefficients (sqrt(ᾱ_t), sqrt(1 − ᾱ_t) with the x_t term, else 0). */
function vToEpsAt(gpu: Gpu, s: Schedule, what: string, xT: Tensor, t: ArrayLike<number>, y: Tensor, withX: boolean): Tensor {
  checkTimesteps(what, s, t, xT.shape[0] ?? 0);
  const coefs = uploadCoefs(gpu, t, (v) => [s.sqrtAlphasCumprod[v]!, withX ? s.sqrtOneMinusAlphasCumprod[v]! : 0], COEFS.vToEps.length, `${what}.coefs`);
  const out = vToEps(gpu, xT, y, coefs);
  coefs.release();
  return out;
}

/** Largest 'v' weight (1/ᾱ_t reaches it at t ≈ 670 of the linear schedule; at t = 999 it is ≈ 2.4e4). */
export const V_WEIGHT_CAP = 100;

/**
 * Per-sample loss weights of timesteps t: 1 ('uniform', upstream); 1 / (1 + SNR(t)) ('p2', k = 1, γ = 1),
 * which with SNR(t) = ᾱ_t / (1 − ᾱ_t) is 1 − ᾱ_t; or min(1 / ᾱ_t, V_WEIGHT_CAP) ('v'): the ε-MSE times
 * 1/ᾱ_t equals the v-prediction MSE (Salimans & Ho 2022) of the same output, i.e. an x0 error counts
 * (1 + SNR) times instead of SNR times, so the noisy steps' x0 (layout, motion) weigh as much as the clean
 * steps' detail; capped so the last steps do not swamp the rest.
 */
export function lossWeights(s: Schedule, t: ArrayLike<number>, kind: LossWeighting): Float32Array {
  checkTimesteps('lossWeights', s, t, t.length);
  const w = (a: number) => (kind === 'uniform' ? 1 : kind === 'p2' ? 1 - a : Math.min(1 / a, V_WEIGHT_CAP));
  return Float32Array.from(t, (ti) => w(s.alphasCumprod[ti]!));
}

/** Training timesteps, uniform over the schedule, from the counter-based stream (seed, offset). */
export function sampleTimesteps(s: Schedule, batch: number, opts: { seed: number; offset?: number }): Int32Array {
  return randint(batch, 0, s.numTimesteps - 1, opts);
}
