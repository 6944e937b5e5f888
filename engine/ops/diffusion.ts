// Kernels of Gaussian diffusion (IDDPM training loss, sampler steps, classifier-free guidance), f32.
// Latent-sized math runs here; the per-sample coefficients (functions of each sample's timestep) are
// computed in f64 by models/diffusion and passed as a coef tensor [B, K] f32, columns as named below.
// x-like tensors are [B, ...] with M elements per sample; the model output is [B, 2C, ...] (eps, then the
// learned-range variance values v) or [B, C, ...] (eps only, fixed variance). Per-sample loss sums are
// deterministic (the `sum` op). See shaders/diffusion.wgsl for the formulas.
import diffusionWgsl from '../../shaders/diffusion.wgsl';
import { ShapeError, shapeStr } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, grid, output, sameShape } from './common.js';
import { sum } from './reduce.js';

const SHADER = { name: 'diffusion', template: diffusionWgsl };

/** Column order of the coef tensor of each kernel. */
export const COEFS = {
  qSample: ['sqrtAlphasCumprod', 'sqrtOneMinusAlphasCumprod'],
  loss: ['sqrtRecipAlphasCumprod', 'sqrtRecipm1AlphasCumprod', 'posteriorMeanCoef1', 'posteriorMeanCoef2', 'minLog', 'maxLog', 'isT0', 'mseWeight'],
  vToEps: ['sqrtAlphasCumprod', 'sqrtOneMinusAlphasCumprod'],
  pSample: ['sqrtRecipAlphasCumprod', 'sqrtRecipm1AlphasCumprod', 'posteriorMeanCoef1', 'posteriorMeanCoef2', 'minLog', 'maxLog', 'nonzero', 'fixedLogVariance'],
  ddim: ['sqrtRecipAlphasCumprod', 'sqrtRecipm1AlphasCumprod', 'sqrtAlphasCumprodPrev', 'dirCoef', 'sigma'],
  dpm: ['sqrtRecipAlphasCumprod', 'sqrtRecipm1AlphasCumprod', 'a', 'b', 'c0', 'c1'],
} as const;

const FLAGS = ['AXPBY', 'FINISH', 'CFG', 'LOSS', 'BACKWARD', 'PSAMPLE', 'DDIM', 'DPM', 'VTOEPS'] as const;
type Flag = (typeof FLAGS)[number];

function kernel(gpu: Gpu, which: Flag, opts: { learned?: boolean; clip?: boolean; extras?: boolean; hasPrev?: boolean } = {}) {
  const defines: Record<string, boolean> = Object.fromEntries(FLAGS.map((f) => [f, f === which]));
  Object.assign(defines, {
    LOSS_OR_BACKWARD: which === 'LOSS' || which === 'BACKWARD',
    LEARNED: !!opts.learned,
    CLIP: !!opts.clip,
    EXTRAS: !!opts.extras,
    HAS_PREV: !!opts.hasPrev,
  });
  return gpu.kernel(SHADER, 'main', defines);
}

function run(gpu: Gpu, which: Flag, tensors: Tensor[], n: number, m: number, k: number, extra: { guided?: number; s0?: number; learned?: boolean; clip?: boolean; extras?: boolean; hasPrev?: boolean } = {}): void {
  if (n === 0) return;
  const { workgroups, groupsX } = grid(gpu, n, 256);
  gpu.dispatch(kernel(gpu, which, extra), tensors, [n, m, k, groupsX, extra.guided ?? 0, { f32: extra.s0 ?? 0 }], workgroups);
}

/** Checks an x-like tensor (f32, rank ≥ 2, live) and returns its batch and per-sample size. */
function batchOf(op: string, x: Tensor, what: string): { batch: number; m: number } {
  expectLive(op, x);
  expectDType(op, x, ['f32']);
  if (x.rank < 2) throw new ShapeError(`${op}: ${what} ${x} must be [B, C, ...] (rank ≥ 2)`);
  return { batch: x.shape[0]!, m: x.size / x.shape[0]! };
}

function expectLike(op: string, ref: Tensor, t: Tensor, what: string): void {
  expectLive(op, t);
  expectDType(op, t, ['f32']);
  if (!sameShape(ref.shape, t.shape)) throw new ShapeError(`${op}: ${what} ${t} must have the shape of x ${ref}`);
}

/** Whether the model output [B, 2C, ...] (true) or [B, C, ...] (false) of x [B, C, ...] carries learned variance. */
export function learnedSigma(op: string, x: Tensor, modelOutput: Tensor): boolean {
  expectLive(op, modelOutput);
  expectDType(op, modelOutput, ['f32']);
  const [b, c, ...rest] = x.shape;
  const sameRest = modelOutput.rank === x.rank && modelOutput.shape[0] === b && sameShape(modelOutput.shape.slice(2), rest);
  if (sameRest && modelOutput.shape[1] === 2 * c!) return true;
  if (sameRest && modelOutput.shape[1] === c) return false;
  throw new ShapeError(`${op}: model output ${modelOutput} must be ${shapeStr([b!, 2 * c!, ...rest])} (eps and learned variance) or ${shapeStr(x.shape)} (eps only) for x ${x}`);
}

function expectCoefs(op: string, coefs: Tensor, batch: number, names: readonly string[]): void {
  expectLive(op, coefs);
  expectDType(op, coefs, ['f32']);
  if (!sameShape(coefs.shape, [batch, names.length])) {
    throw new ShapeError(`${op}: coefs ${coefs} must be ${shapeStr([batch, names.length])} (per sample: ${names.join(', ')})`);
  }
}

/** y = coefs[b, 0]·x + coefs[b, 1]·z per sample b; with coefs (sqrt ᾱ_t, sqrt(1 − ᾱ_t)) this is q_sample. */
export function sampleAxpby(gpu: Gpu, x: Tensor, z: Tensor, coefs: Tensor, out?: Tensor): Tensor {
  const op = 'sampleAxpby';
  const { batch, m } = batchOf(op, x, 'x');
  expectLike(op, x, z, 'z');
  expectCoefs(op, coefs, batch, COEFS.qSample);
  const y = output(gpu, op, x.shape, 'f32', out);
  run(gpu, 'AXPBY', [x, z, coefs, y], x.size, m, 2);
  return y;
}

export interface IddpmLossInputs {
  /** [B, 2C, ...] or [B, C, ...] (then vb is 0). */
  modelOutput: Tensor;
  xStart: Tensor;
  xT: Tensor;
  noise: Tensor;
  /** [B, 8]: COEFS.loss at each sample's t. */
  coefs: Tensor;
  /** Factor of the VB term (upstream RESCALED_MSE: num_timesteps / 1000; default 1). */
  vbScale?: number;
}

function checkLoss(op: string, a: IddpmLossInputs) {
  const { batch, m } = batchOf(op, a.xT, 'xT');
  expectLike(op, a.xT, a.xStart, 'xStart');
  expectLike(op, a.xT, a.noise, 'noise');
  const learned = learnedSigma(op, a.xT, a.modelOutput);
  expectCoefs(op, a.coefs, batch, COEFS.loss);
  const vbScale = a.vbScale ?? 1;
  if (!Number.isFinite(vbScale)) throw new ShapeError(`${op}: vbScale ${vbScale} must be a finite number`);
  return { batch, m, learned, vbScale };
}

/** Per-sample IDDPM loss (MSE to the noise + VB in bits), each [B] f32: {loss, mse, vb}. */
export function iddpmLoss(gpu: Gpu, a: IddpmLossInputs): { loss: Tensor; mse: Tensor; vb: Tensor } {
  const op = 'iddpmLoss';
  const { batch, m, learned, vbScale } = checkLoss(op, a);
  const terms = gpu.tensor([batch, 2, m], 'f32', `${op}.terms`);
  run(gpu, 'LOSS', [a.xT, a.modelOutput, a.coefs, a.xStart, a.noise, terms], a.xT.size, m, COEFS.loss.length, { learned });
  const sums = sum(gpu, terms, 2);
  terms.release();
  const [loss, mse, vb] = ['loss', 'mse', 'vb'].map((w) => gpu.tensor([batch], 'f32', `${op}.${w}`)) as [Tensor, Tensor, Tensor];
  run(gpu, 'FINISH', [sums, loss, mse, vb], batch, m, 0, { s0: vbScale });
  sums.release();
  return { loss, mse, vb };
}

/** d loss / d modelOutput for an upstream gradient dloss [B] of the per-sample loss (eps detached in VB). */
export function iddpmLossBackward(gpu: Gpu, a: IddpmLossInputs & { dloss: Tensor }, out?: Tensor): Tensor {
  const op = 'iddpmLossBackward';
  const { batch, m, learned, vbScale } = checkLoss(op, a);
  expectLive(op, a.dloss);
  expectDType(op, a.dloss, ['f32']);
  if (!sameShape(a.dloss.shape, [batch])) throw new ShapeError(`${op}: dloss ${a.dloss} must be ${shapeStr([batch])}, one value per sample`);
  const d = output(gpu, op, a.modelOutput.shape, 'f32', out);
  run(gpu, 'BACKWARD', [a.xT, a.modelOutput, a.coefs, a.xStart, a.noise, a.dloss, d], a.xT.size, m, COEFS.loss.length, { learned, s0: vbScale });
  return d;
}

/**
 * A v-prediction model output [B, 2C or C, ...] as the eps-prediction output of the same x_t:
 * eps = sqrt(ᾱ)·v + sqrt(1 − ᾱ)·x_t on the eps channels, learned variance values copied. coefs [B, 2]:
 * COEFS.vToEps at each sample's t. With coefs (sqrt(ᾱ), 0) and an eps-output gradient in place of the
 * output it gives the v-output gradient (see models/diffusion/iddpm.ts predictionGradient).
 */
export function vToEps(gpu: Gpu, x: Tensor, modelOutput: Tensor, coefs: Tensor, out?: Tensor): Tensor {
  const op = 'vToEps';
  const { batch, m } = batchOf(op, x, 'x');
  expectLive(op, modelOutput);
  expectDType(op, modelOutput, ['f32']);
  const learned = learnedSigma(op, x, modelOutput);
  expectCoefs(op, coefs, batch, COEFS.vToEps);
  const y = output(gpu, op, modelOutput.shape, 'f32', out);
  run(gpu, 'VTOEPS', [x, modelOutput, coefs, y], x.size, m, COEFS.vToEps.length, { learned });
  return y;
}

export interface StepInputs {
  x: Tensor;
  modelOutput: Tensor;
  coefs: Tensor;
  /** Fresh normal noise of x's shape (unused where the coefficient multiplying it is 0). */
  noise?: Tensor;
  /** Clamp pred_xstart to [−1, 1] (upstream clip_denoised; DiT/Open-Sora sample with it off). */
  clip?: boolean;
}

/** The checks every sampler step makes of (x, modelOutput, coefs): x's batch and per-sample size, learned sigma. */
function stepInputs(op: string, a: { x: Tensor; modelOutput: Tensor; coefs: Tensor }, coefNames: readonly string[]): { m: number; learned: boolean } {
  const { batch, m } = batchOf(op, a.x, 'x');
  const learned = learnedSigma(op, a.x, a.modelOutput);
  expectCoefs(op, a.coefs, batch, coefNames);
  return { m, learned };
}

/** One IDDPM p_sample step; with `extras`, also the mean, log variance and pred_xstart. */
export function pSampleStep(gpu: Gpu, a: StepInputs & { extras?: boolean }): { xPrev: Tensor; mean?: Tensor; logVariance?: Tensor; predXstart?: Tensor } {
  const op = 'pSampleStep';
  const { m, learned } = stepInputs(op, a, COEFS.pSample);
  if (a.noise) expectLike(op, a.x, a.noise, 'noise');
  const xPrev = gpu.tensor(a.x.shape, 'f32', `${op}.xPrev`);
  const extras = a.extras ? (['mean', 'logVariance', 'predXstart'].map((w) => gpu.tensor(a.x.shape, 'f32', `${op}.${w}`)) as [Tensor, Tensor, Tensor]) : null;
  run(gpu, 'PSAMPLE', [a.x, a.modelOutput, a.coefs, a.noise ?? a.x, xPrev, ...(extras ?? [])], a.x.size, m, COEFS.pSample.length, { learned, clip: a.clip, extras: !!extras });
  return extras ? { xPrev, mean: extras[0], logVariance: extras[1], predXstart: extras[2] } : { xPrev };
}

/** One DDIM step (the variance channels of a learned-sigma output are ignored). */
export function ddimStep(gpu: Gpu, a: StepInputs, out?: Tensor): Tensor {
  const op = 'ddimStep';
  const { m, learned } = stepInputs(op, a, COEFS.ddim);
  if (a.noise) expectLike(op, a.x, a.noise, 'noise');
  const y = output(gpu, op, a.x.shape, 'f32', out);
  run(gpu, 'DDIM', [a.x, a.modelOutput, a.coefs, a.noise ?? a.x, y], a.x.size, m, COEFS.ddim.length, { learned, clip: a.clip });
  return y;
}

/** One DPM-Solver++ multistep update; returns x at the next time and this step's data prediction d. */
export function dpmSolverStep(gpu: Gpu, a: { x: Tensor; modelOutput: Tensor; coefs: Tensor; dPrev?: Tensor | null }): { xNext: Tensor; d: Tensor } {
  const op = 'dpmSolverStep';
  const { m, learned } = stepInputs(op, a, COEFS.dpm);
  if (a.dPrev) expectLike(op, a.x, a.dPrev, 'dPrev');
  const xNext = gpu.tensor(a.x.shape, 'f32', `${op}.xNext`);
  const d = gpu.tensor(a.x.shape, 'f32', `${op}.d`);
  const ts = a.dPrev ? [a.x, a.modelOutput, a.coefs, a.dPrev, xNext, d] : [a.x, a.modelOutput, a.coefs, xNext, d];
  run(gpu, 'DPM', ts, a.x.size, m, COEFS.dpm.length, { learned, hasPrev: !!a.dPrev });
  return { xNext, d };
}

/**
 * Classifier-free guidance: uncond + scale·(cond − uncond) on the first `guided` channels (dim 1) of each
 * sample, cond's values on the rest (upstream DiT/Open-Sora guide 3 channels: forward_with_cfg's eps = out[:, :3]).
 */
export function cfgCombine(gpu: Gpu, cond: Tensor, uncond: Tensor, scale: number, guided?: number, out?: Tensor): Tensor {
  const op = 'cfgCombine';
  batchOf(op, cond, 'cond');
  expectLike(op, cond, uncond, 'uncond');
  const channels = cond.shape[1]!;
  const g = guided ?? channels;
  if (!Number.isInteger(g) || g < 0 || g > channels) throw new ShapeError(`${op}: guided channels ${g} must be an integer in 0..${channels} (cond ${cond})`);
  if (!Number.isFinite(scale)) throw new ShapeError(`${op}: scale ${scale} must be a finite number`);
  const y = output(gpu, op, cond.shape, 'f32', out);
  run(gpu, 'CFG', [cond, uncond, y], cond.size, cond.size / cond.shape[0]! / channels, channels, { guided: g, s0: scale });
  return y;
}
