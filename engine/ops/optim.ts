// Optimizer kernels for mixed-precision training, all on the GPU with no readback in the step:
//   optimState   a 16-word u32 state tensor: grad_scale, skip flag, loss scale, step counter, … (OPTIM_STATE)
//   clipGradNorm global L2 norm of all gradients (two-level deterministic reduction), inf/NaN detection,
//                clip factor and 1/loss_scale folded into state.grad_scale, GradScaler-style scale update
//   adamw        fused torch.optim.AdamW step per parameter tensor (f32 p/m/v, f32 or f16 grads, optional
//                f16 copy of the new weights and optional EMA of them in the same pass), reading
//                grad_scale / skip / t from the state when given
//   emaUpdate    ema = decay·ema + (1 − decay)·p (standalone; what adamw's fused EMA equals bit for bit)
//
// One training step with loss scaling and clipping:
//   backward with the loss multiplied by state.lossScale (word OPTIM_STATE.lossScale, read on the GPU)
//   clipGradNorm(gpu, grads, state, { maxNorm: 1 })   → skip flag, grad_scale = clip/scale, t += 1 unless skipped
//   adamw(gpu, params, { lr, state })                 → a no-op for every tensor when skipped
//   emaUpdate(gpu, emaPairs, 0.9999, state)           → likewise
// Step counter: with a state, t is the state's count of applied steps (like torch, where GradScaler skips
// optimizer.step() and state['step'] does not advance); clipGradNorm advances it, adamw only reads it, so
// several adamw calls (parameter groups) between two clipGradNorm calls share one t. Without a state the
// caller passes t (opts.step) and grads are used as they are.
// Each tensor is one dispatch; many tiny tensors are best kept in one flat arena tensor by the model.
import adamwWgsl from '../../shaders/adamw.wgsl';
import emaWgsl from '../../shaders/ema.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import gradnormWgsl from '../../shaders/gradnorm.wgsl';
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, grid, sameShape } from './common.js';

const ADAMW = { name: 'adamw', template: adamwWgsl + f16Wgsl };
const GRADNORM = { name: 'gradnorm', template: gradnormWgsl };
const EMA = { name: 'ema', template: emaWgsl };

/** Word indices of the optimizer state tensor (u32 [16]; f32 fields hold float bits). */
export const OPTIM_STATE = {
  gradScale: 0, // f32: gradient multiplier AdamW applies, clip / lossScale
  skip: 1, // u32: 1 when this step's gradients were not finite
  lossScale: 2, // f32: loss scale for the next backward
  goodSteps: 3, // u32: finite steps since the last scale change
  gradNorm: 4, // f32: L2 norm of the unscaled gradients before clipping (NaN when skipped)
  step: 5, // u32: AdamW steps applied (t)
  skipped: 6, // u32: steps skipped so far
  growthFactor: 8, // f32
  backoffFactor: 9, // f32
  growthInterval: 10, // u32
  dynamic: 11, // u32: 0 keeps the loss scale fixed
} as const;
export const OPTIM_STATE_WORDS = 16;

export interface OptimStateOptions {
  /** Initial loss scale (default 65536, torch's GradScaler; use 1 with dynamic: false for clipping only). */
  lossScale?: number;
  /** Adjust the scale: ×backoffFactor on inf/NaN, ×growthFactor after growthInterval finite steps (default true). */
  dynamic?: boolean;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
  /** Steps already applied (resuming); the next step has t = step + 1. */
  step?: number;
}

export interface OptimStateValues {
  gradScale: number;
  skip: boolean;
  lossScale: number;
  goodSteps: number;
  gradNorm: number;
  step: number;
  skipped: number;
}

function positive(op: string, name: string, x: number, integer = false): void {
  if (!Number.isFinite(x) || x <= 0 || (integer && !Number.isInteger(x))) {
    throw new RangeError(`${op}: ${name} = ${x}; it must be a positive finite ${integer ? 'integer' : 'number'}`);
  }
}

/** A new optimizer state tensor (u32 [16]) for clipGradNorm / adamw / emaUpdate. */
export function optimState(gpu: Gpu, opts: OptimStateOptions = {}): Tensor {
  const op = 'optimState';
  const o = { lossScale: 65536, dynamic: true, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, step: 0, ...opts };
  positive(op, 'lossScale', o.lossScale);
  positive(op, 'growthFactor', o.growthFactor);
  positive(op, 'backoffFactor', o.backoffFactor);
  positive(op, 'growthInterval', o.growthInterval, true);
  if (!Number.isInteger(o.step) || o.step < 0) throw new RangeError(`${op}: step = ${o.step}; it must be a non-negative integer`);
  const view = new DataView(new ArrayBuffer(OPTIM_STATE_WORDS * 4));
  const f32 = (i: number, x: number) => view.setFloat32(i * 4, x, true);
  const u32 = (i: number, x: number) => view.setUint32(i * 4, x, true);
  f32(OPTIM_STATE.gradScale, 1 / o.lossScale);
  f32(OPTIM_STATE.lossScale, o.lossScale);
  f32(OPTIM_STATE.gradNorm, NaN);
  u32(OPTIM_STATE.step, o.step);
  f32(OPTIM_STATE.growthFactor, o.growthFactor);
  f32(OPTIM_STATE.backoffFactor, o.backoffFactor);
  u32(OPTIM_STATE.growthInterval, o.growthInterval);
  u32(OPTIM_STATE.dynamic, o.dynamic ? 1 : 0);
  return gpu.upload(new Uint32Array(view.buffer), [OPTIM_STATE_WORDS], 'u32', 'optim.state');
}

/** Reads the state back (one readback; for logging the norm and the scale). */
export async function readOptimState(state: Tensor): Promise<OptimStateValues> {
  const words = (await state.read()) as Uint32Array;
  const view = new DataView(words.buffer, words.byteOffset, words.byteLength);
  const f32 = (i: number) => view.getFloat32(i * 4, true);
  const u32 = (i: number) => view.getUint32(i * 4, true);
  return {
    gradScale: f32(OPTIM_STATE.gradScale),
    skip: u32(OPTIM_STATE.skip) !== 0,
    lossScale: f32(OPTIM_STATE.lossScale),
    goodSteps: u32(OPTIM_STATE.goodSteps),
    gradNorm: f32(OPTIM_STATE.gradNorm),
    step: u32(OPTIM_STATE.step),
    skipped: u32(OPTIM_STATE.skipped),
  };
}

function expectState(op: string, state: Tensor): void {
  expectLive(op, state);
  if (state.dtype !== 'u32' || state.size !== OPTIM_STATE_WORDS) {
    throw new ShapeError(`${op}: state ${state} must be u32 [${OPTIM_STATE_WORDS}]; create it with optimState(gpu)`);
  }
}

// ---- global gradient norm, clipping, loss scaling ---------------------------------------------------

/** Workgroups of the norm's partial pass over a tensor: ~4 loads per thread, at most 1024 (one partial each). */
const NORM_MAX_GROUPS = 1024;

export interface ClipOptions {
  /** Clip the global norm of the unscaled gradients to this (default: no clipping). */
  maxNorm?: number;
}

/**
 * Global L2 norm of `grads` (f32 or f16, any sizes) on the GPU, and the step's scaling decision in `state`:
 * non-finite gradients (or an overflowing Σ g²) set skip and back the loss scale off; otherwise
 * grad_scale = min(1, maxNorm / (norm + 1e-6)) / lossScale, t advances, and the scale grows after
 * growthInterval finite steps. norm is that of the unscaled gradients, sqrt(Σ g²) / lossScale.
 */
export function clipGradNorm(gpu: Gpu, grads: readonly Tensor[], state: Tensor, opts: ClipOptions = {}): void {
  const op = 'clipGradNorm';
  expectState(op, state);
  grads.forEach((g) => {
    expectLive(op, g);
    expectDType(op, g, ['f32', 'f16']);
  });
  const maxNorm = opts.maxNorm ?? Infinity;
  if (!(maxNorm > 0)) throw new RangeError(`${op}: maxNorm = ${maxNorm}; it must be positive (or Infinity for no clipping)`);

  const plans = grads
    .filter((g) => g.size > 0)
    .map((g) => {
      const f16 = g.dtype === 'f16';
      const vec = g.size % (f16 ? 8 : 4) === 0;
      const units = vec ? g.size / (f16 ? 8 : 4) : f16 ? Math.ceil(g.size / 2) : g.size;
      return { g, f16, vec, units, groups: Math.min(NORM_MAX_GROUPS, Math.ceil(units / 1024)) };
    });
  const count = plans.reduce((s, p) => s + p.groups, 0);
  const partials = gpu.tensor([Math.max(1, count)], 'u32', `${op}.partials`);
  let offset = 0;
  for (const { g, f16, vec, units, groups } of plans) {
    const xt = f16 ? (vec ? 'vec4<u32>' : 'u32') : vec ? 'vec4<f32>' : 'f32';
    const kernel = gpu.kernel(GRADNORM, 'partial', { PARTIAL: true, F16: f16, VEC: vec, XT: xt });
    gpu.dispatch(kernel, [g, partials], [units, g.size, offset, groups * 256], [groups]);
    offset += groups;
  }
  const finish = gpu.kernel(GRADNORM, 'finish', { PARTIAL: false, F16: false, VEC: false, XT: 'f32' });
  const clip = Number.isFinite(maxNorm);
  gpu.dispatch(finish, [partials, state], [count, clip ? 1 : 0, { f32: clip ? maxNorm : 0 }], [1]);
  partials.release();
}

// ---- AdamW ------------------------------------------------------------------------------------------

export interface AdamWParam {
  /** f32 master weights, updated in place. */
  param: Tensor;
  /** Gradient, f32 or f16, param's shape. */
  grad: Tensor;
  /** First and second moments (f32, param's shape), updated in place; start at zero (adamwMoments). */
  m: Tensor;
  v: Tensor;
  /** Optional f16 tensor of param's shape that receives the new weights. */
  half?: Tensor;
  /** Optional f32 EMA of the weights (param's shape), updated in the same pass with AdamWOptions.emaDecay. */
  ema?: Tensor;
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0.01, torch's): p ← p·(1 − lr·wd) before the Adam update. */
  weightDecay?: number;
  /** t ≥ 1 of this step, when there is no state (with a state, t is the state's step counter). */
  step?: number;
  /** Optimizer state from optimState: grads are multiplied by its grad_scale; a skipped step changes nothing. */
  state?: Tensor;
  /** Decay of the fused EMA of params that have `ema` (default 0.9999): as emaUpdate after the step. */
  emaDecay?: number;
}

/** Zero-filled f32 moments (m, v) for a parameter. */
export function adamwMoments(gpu: Gpu, param: Tensor): { m: Tensor; v: Tensor } {
  const m = gpu.tensor(param.shape, 'f32', `${param.name}.adam_m`);
  const v = gpu.tensor(param.shape, 'f32', `${param.name}.adam_v`);
  gpu.fill(m, 0);
  gpu.fill(v, 0);
  return { m, v };
}

/** One AdamW step (torch.optim.AdamW semantics) for every tensor in `params`, one dispatch each (EMA included). */
export function adamw(gpu: Gpu, params: readonly AdamWParam[], opts: AdamWOptions): void {
  const op = 'adamw';
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01, step, state, emaDecay = 0.9999 } = opts;
  if (!(emaDecay >= 0 && emaDecay <= 1)) throw new RangeError(`${op}: emaDecay = ${emaDecay}; it must be in [0, 1]`);
  if (!Number.isFinite(lr) || lr < 0) throw new RangeError(`${op}: lr = ${lr}; it must be a finite number ≥ 0`);
  for (const [name, b] of [['beta1', beta1], ['beta2', beta2]] as const) {
    if (!(b >= 0 && b < 1)) throw new RangeError(`${op}: ${name} = ${b}; it must be in [0, 1)`);
  }
  if (!(eps >= 0) || !(weightDecay >= 0) || !Number.isFinite(eps) || !Number.isFinite(weightDecay)) {
    throw new RangeError(`${op}: eps = ${eps}, weightDecay = ${weightDecay}; both must be finite and ≥ 0`);
  }
  if (state) {
    expectState(op, state);
    if (step !== undefined) throw new RangeError(`${op}: step = ${step} was given with a state, whose own counter sets t; pass one of them`);
  } else if (step === undefined || !Number.isInteger(step) || step < 1 || step >= 2 ** 24) {
    throw new RangeError(`${op}: step = ${step}; without a state, pass the step number t (an integer from 1)`);
  }
  const lnb = (b: number) => Math.max(Math.log(b), -80); // b = 0: b^t = 0 for every t ≥ 1
  const uniform = [
    { f32: lr },
    { f32: beta1 },
    { f32: 1 - beta1 },
    { f32: beta2 },
    { f32: 1 - beta2 },
    { f32: lnb(beta1) },
    { f32: lnb(beta2) },
    { f32: eps },
    { f32: lr * weightDecay },
    { f32: 1 - emaDecay },
  ];
  for (const [k, e] of params.entries()) {
    const { param, grad, m, v, half, ema } = e;
    const what = `${op}: params[${k}]`;
    expectLive(what, param, grad, m, v, ...(half ? [half] : []), ...(ema ? [ema] : []));
    expectDType(what, param, ['f32']);
    expectDType(what, grad, ['f32', 'f16']);
    for (const [name, t, dtype] of [['grad', grad, grad.dtype], ['m', m, 'f32'], ['v', v, 'f32'], ['half', half, 'f16'], ['ema', ema, 'f32']] as const) {
      if (t && (!sameShape(t.shape, param.shape) || t.dtype !== dtype)) {
        throw new ShapeError(`${what}: ${name} ${t} must be ${dtype} with the shape of param ${param}`);
      }
    }
    const n = param.size;
    if (n === 0) continue;
    const vec4 = n % 4 === 0;
    const f16 = grad.dtype === 'f16';
    const kernel = gpu.kernel(ADAMW, 'main', {
      VEC4: vec4,
      F16: f16,
      STATE: !!state,
      HALF: !!half,
      EMA: !!ema,
      VT: vec4 ? 'vec4<f32>' : 'vec2<f32>',
      PT: vec4 ? 'vec4<f32>' : 'f32',
      GT: f16 ? (vec4 ? 'vec2<u32>' : 'u32') : vec4 ? 'vec4<f32>' : 'f32',
      HT: vec4 ? 'vec2<u32>' : 'u32',
    });
    const units = vec4 ? n / 4 : Math.ceil(n / 2);
    const { workgroups, groupsX } = grid(gpu, units, 256);
    const tensors = [param, m, v, grad, ...(state ? [state] : []), ...(half ? [half] : []), ...(ema ? [ema] : [])];
    gpu.dispatch(kernel, tensors, [n, units, groupsX, step ?? 0, ...uniform], workgroups);
  }
}

// ---- EMA --------------------------------------------------------------------------------------------

/** ema ← decay·ema + (1 − decay)·param for each pair (f32, same shapes); skipped steps skip it when `state` is given. */
export function emaUpdate(gpu: Gpu, pairs: readonly { ema: Tensor; param: Tensor }[], decay = 0.9999, state?: Tensor): void {
  const op = 'emaUpdate';
  if (!(decay >= 0 && decay <= 1)) throw new RangeError(`${op}: decay = ${decay}; it must be in [0, 1]`);
  if (state) expectState(op, state);
  for (const [k, { ema, param }] of pairs.entries()) {
    const what = `${op}: pairs[${k}]`;
    expectLive(what, ema, param);
    expectDType(what, ema, ['f32']);
    expectDType(what, param, ['f32']);
    if (!sameShape(ema.shape, param.shape)) throw new ShapeError(`${what}: ema ${ema} must have the shape of param ${param}`);
    if (param.size === 0) continue;
    const vec4 = param.size % 4 === 0;
    const units = vec4 ? param.size / 4 : param.size;
    const kernel = gpu.kernel(EMA, 'main', { T: vec4 ? 'vec4<f32>' : 'f32', STATE: !!state });
    const { workgroups, groupsX } = grid(gpu, units, 256);
    gpu.dispatch(kernel, state ? [ema, param, state] : [ema, param], [units, groupsX, { f32: 1 - decay }], workgroups);
  }
}
