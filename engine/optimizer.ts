// AdamW over a model's Params for training: f32 master weights and moments, f16 copies written in the same
// pass (mixed precision), global gradient clipping, dynamic loss scaling (non-finite gradients skip the
// step and back the scale off, all decided on the GPU), EMA of the weights. Gradients are consumed
// (released) by step(). See ops/optim.ts for the kernels.
import type { Param } from './autograd.js';
import type { Gpu } from './gpu.js';
import { adamw, adamwMoments, clipGradNorm, OPTIM_STATE, optimState, readOptimState, type OptimStateValues } from './ops/optim.js';
import type { Tensor } from './tensor.js';
import lossScaleWgsl from '../shaders/loss_scale.wgsl';

const LOSS_SCALE = { name: 'loss_scale', template: lossScaleWgsl };

export interface OptimizerOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  /** Decoupled weight decay (Open-Sora trains with 0). */
  weightDecay?: number;
  /** Clip the global gradient norm to this (default: no clipping). */
  gradClip?: number;
  /** 'dynamic' (start 65536, halve on overflow, double after 2000 good steps) or a fixed scale (1: none). */
  lossScale?: 'dynamic' | number;
  /** Keep an EMA of the weights with this decay (e.g. 0.9999). */
  emaDecay?: number;
  /** Write f16 copies of the weights for f16 kernels. */
  halfCopies?: boolean;
  /** Steps already taken (resume). */
  step?: number;
}

export class AdamW {
  readonly state: Tensor;
  readonly m = new Map<string, Tensor>();
  readonly v = new Map<string, Tensor>();
  readonly ema: Map<string, Tensor> | null;

  constructor(
    readonly gpu: Gpu,
    readonly params: ReadonlyMap<string, Param>,
    readonly opts: OptimizerOptions,
  ) {
    const scale = opts.lossScale ?? 1;
    const dynamic = scale === 'dynamic';
    this.state = optimState(gpu, { lossScale: scale === 'dynamic' ? 65536 : scale, dynamic, step: opts.step ?? 0 });
    for (const [name, p] of params) {
      const { m, v } = adamwMoments(gpu, p.value);
      this.m.set(name, m);
      this.v.set(name, v);
      if (opts.halfCopies) p.refreshHalf(gpu);
    }
    this.ema = opts.emaDecay === undefined ? null : new Map([...params].map(([name, p]) => [name, gpu.clone(p.value, `${name}.ema`)]));
  }

  /** An f32 [n] seed for backward: loss_scale · value (e.g. value = 1/B for a mean over B samples). */
  seed(n: number, value: number): Tensor {
    const out = this.gpu.tensor([n], 'f32', 'loss.seed');
    this.gpu.dispatch(this.gpu.kernel(LOSS_SCALE, 'main', {}), [this.state, out], [n, { f32: value }], [Math.ceil(n / 64)]);
    return out;
  }

  /** Clips, updates every parameter with a gradient (skipped on overflow), updates the EMA, releases the gradients. */
  step(lr = this.opts.lr): void {
    const { gpu, opts } = this;
    const live = [...this.params].filter(([, p]) => p.grad);
    clipGradNorm(gpu, live.map(([, p]) => p.grad!), this.state, { maxNorm: opts.gradClip ?? Infinity });
    adamw(
      gpu,
      live.map(([name, p]) => ({
        param: p.value,
        grad: p.grad!,
        m: this.m.get(name)!,
        v: this.v.get(name)!,
        half: opts.halfCopies ? (p.half ?? undefined) : undefined,
        ema: this.ema?.get(name), // the EMA update rides in the AdamW pass
      })),
      { lr, beta1: opts.betas?.[0], beta2: opts.betas?.[1], eps: opts.eps, weightDecay: opts.weightDecay ?? 0, state: this.state, emaDecay: opts.emaDecay },
    );
    for (const [, p] of live) {
      p.grad!.release();
      p.grad = null;
    }
  }

  /** Restores a checkpoint's step count and loss-scaling counters. */
  restoreState(r: { step: number; lossScale: number; goodSteps: number; skipped: number }): void {
    const dynamic = this.opts.lossScale === 'dynamic';
    const fresh = optimState(this.gpu, { lossScale: r.lossScale, dynamic, step: r.step });
    this.gpu.copy(fresh, this.state);
    fresh.release();
    const words = new Uint32Array([r.goodSteps, 0, 0, r.skipped]);
    const counters = this.gpu.upload(words, [4], 'u32', 'optim.counters');
    this.gpu.copyRange(counters, 0, this.state, OPTIM_STATE.goodSteps, 1);
    this.gpu.copyRange(counters, 3, this.state, OPTIM_STATE.skipped, 1);
    counters.release();
  }

  /** Loss scale, gradient norm, skip flag and step count (one readback). */
  stats(): Promise<OptimStateValues> {
    return readOptimState(this.state);
  }
}
