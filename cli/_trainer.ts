// The training step of Open-Sora's train.py on our engine: caption encoding (with caption dropout to the
// model's null embedding), IDDPM noising at uniform timesteps, the STDiT forward/backward through the
// autograd tape, the MSE + VB loss, AdamW with clipping, dynamic loss scaling (f16) and EMA. Random numbers
// come from counter-based streams keyed by (seed, step), so a resumed run repeats the uninterrupted one
// exactly. The whole step is encoded without waiting; the loss is read back asynchronously.
import { Tape, type Param } from '../engine/autograd.js';
import * as F from '../engine/functional.js';
import type { Gpu } from '../engine/gpu.js';
import { AdamW } from '../engine/optimizer.js';
import { cast } from '../engine/ops/cast.js';
import { randCpu, randn } from '../engine/ops/random.js';
import type { Tensor } from '../engine/tensor.js';
import { latentShape, type TrainConfig } from '../configs/types.js';
import { createSchedule, type Schedule } from '../models/diffusion/schedule.js';
import { lossWeights, predictionGradient, predictionToEps, qSample, sampleTimesteps, trainingLosses, trainingLossesBackward } from '../models/diffusion/iddpm.js';
import { mul } from '../engine/ops/elementwise.js';
import { STDiT } from '../models/stdit.js';
import { loadStateDict, stateDict, trainableParams } from '../models/state.js';
import { createDefaultTextEncoder, MemoTextEncoder, type TextEncoder } from '../models/text_encoder/index.js';
import { loadModelWeights, type CheckpointData, type TensorMap } from './_checkpoint.js';

/** Seed of the small built-in text encoder (fixed: training and sampling must use the same weights). */
export const TEXT_ENCODER_SEED = 0;

export function buildModel(gpu: Gpu, c: TrainConfig, seed = c.seed): STDiT {
  const [C, T, H, W] = latentShape(c);
  const m = c.model;
  return new STDiT(
    gpu,
    {
      inputSize: [T, H, W],
      inChannels: C,
      patchSize: m.patch_size,
      hiddenSize: m.hidden_size,
      depth: m.depth,
      numHeads: m.num_heads,
      mlpRatio: m.mlp_ratio,
      captionChannels: c.text_encoder.caption_channels,
      modelMaxLength: c.text_encoder.model_max_length,
      predSigma: m.pred_sigma,
      spaceScale: m.space_scale,
      timeScale: m.time_scale,
      gradCheckpoint: m.grad_checkpoint,
      temporalPos: m.temporal_pos,
    },
    seed,
  );
}

export function buildTextEncoder(c: TrainConfig): TextEncoder {
  if (c.text_encoder.type !== 'tiny') {
    throw new Error(`text_encoder.type '${c.text_encoder.type}' is not available yet (real T5 comes later); use 'tiny'`);
  }
  return createDefaultTextEncoder({ captionChannels: c.text_encoder.caption_channels, maxLength: c.text_encoder.model_max_length, seed: TEXT_ENCODER_SEED });
}

/** Stream ids mixed into the seed: each random quantity of a step has its own stream. */
const STREAM = { noise: 1, timestep: 2, dropout: 3 } as const;
const streamSeed = (seed: number, step: number, stream: number) => ((seed * 1000003 + step) * 8 + stream) % Number.MAX_SAFE_INTEGER;

/** The diffusion timesteps of training step `step` (0-based) of a run with this seed. */
export function stepTimesteps(s: Schedule, seed: number, step: number, batch: number): Int32Array {
  return sampleTimesteps(s, batch, { seed: streamSeed(seed, step, STREAM.timestep) });
}

export interface TrainBatch {
  /** Latents [B, C, T, H, W] (the identity VAE: pixels in [-1, 1]). */
  latents: Float32Array;
  /** Captions, encoded by the trainer's text encoder; or, instead, `embeddings`. */
  captions?: readonly string[];
  /**
   * Precomputed caption embeddings (e.g. from an external encoder, or random ones for benchmarks): y
   * [B, 1, L, C] in the trainer's dtype and yLen [B] i32. The caller keeps them; the step works on a copy.
   */
  embeddings?: { y: Tensor; yLen: Tensor };
}

export interface StepResult {
  step: number;
  /** Mean loss of the batch (resolves when the GPU has finished the step). */
  loss: Promise<number>;
}

/** Caption embeddings on the GPU: y [B, 1, L, C] in `dtype`, and the valid lengths [B] i32. */
export function encodeCaptions(gpu: Gpu, enc: TextEncoder, captions: readonly string[], dtype: Tensor['dtype']): { y: Tensor; yLen: Tensor } {
  const e = enc.encode(captions);
  const y = gpu.upload(e.emb, [captions.length, 1, e.maxLength, e.captionChannels], dtype, 'y');
  const yLen = gpu.upload(Int32Array.from(e.lengths), [captions.length], 'i32', 'y_len');
  return { y, yLen };
}

export class Trainer {
  readonly model: STDiT;
  readonly params: Map<string, Param>;
  readonly optimizer: AdamW;
  readonly schedule: Schedule;
  readonly textEncoder: TextEncoder;
  readonly dtype: Tensor['dtype'];
  /** Optimizer steps taken (the next step's index). */
  step: number;

  constructor(
    readonly gpu: Gpu,
    readonly config: TrainConfig,
  ) {
    this.dtype = config.dtype;
    gpu.matmulPrecision = config.matmul_precision;
    if (this.dtype === 'f16' && !gpu.info.f16) throw new Error(`dtype 'f16' needs shader-f16, which ${gpu.info.adapter} lacks; train with --dtype f32`);
    this.model = buildModel(gpu, config);
    this.textEncoder = new MemoTextEncoder(buildTextEncoder(config)); // captions repeat across steps
    this.schedule = createSchedule();
    this.step = 0;
    if (config.model.from_pretrained) {
      // initial weights: an inference file, a training checkpoint's model weights, or upstream weights
      const path = config.model.from_pretrained;
      const shapes = new Map([...stateDict(this.model)].map(([k, p]) => [k, p.shape]));
      loadStateDict(this.model, loadModelWeights(path, shapes), { source: path });
    }
    if (this.dtype === 'f16') this.model.useHalf();
    this.params = trainableParams(this.model);
    this.optimizer = new AdamW(gpu, this.params, {
      lr: config.lr,
      betas: config.adam_betas,
      eps: config.adam_eps,
      weightDecay: config.weight_decay,
      gradClip: config.grad_clip > 0 ? config.grad_clip : undefined,
      lossScale: this.dtype === 'f16' ? 'dynamic' : 1,
      emaDecay: config.ema_decay,
      halfCopies: this.dtype === 'f16',
    });
  }

  /** Names and shapes of the model group (parameters and buffers) and of the trainable parameters (EMA, moments). */
  checkpointShapes(): { all: Map<string, readonly number[]>; trainable: Map<string, readonly number[]> } {
    return {
      all: new Map([...stateDict(this.model)].map(([k, p]) => [k, p.shape])),
      trainable: new Map([...this.params].map(([k, p]) => [k, p.shape])),
    };
  }

  /** Continues from a training checkpoint: weights, AdamW moments, EMA, loss-scale counters and the step. */
  restore(r: Pick<CheckpointData, 'params' | 'ema' | 'm' | 'v' | 'step' | 'lossScale' | 'rng'>): void {
    loadStateDict(this.model, r.params, { source: 'the checkpoint' });
    this.step = r.step;
    const put = (dst: Map<string, Tensor> | null, src: TensorMap | undefined, what: string) => {
      if (!src || !dst) return;
      for (const [name, t] of dst) {
        const h = src.get(name);
        if (!h) throw new Error(`checkpoint: ${what} has no tensor ${name}`);
        this.gpu.write(t, h.data);
      }
    };
    put(this.optimizer.m, r.m, 'optim.m');
    put(this.optimizer.v, r.v, 'optim.v');
    put(this.optimizer.ema, r.ema, 'ema');
    // a checkpoint without EMA: the EMA starts from the restored weights, as a fresh run's starts from its own
    if (!r.ema && this.optimizer.ema) for (const [name, t] of this.optimizer.ema) this.gpu.copy(this.params.get(name)!.value, t);
    this.optimizer.restoreState({ step: r.step, lossScale: r.lossScale, goodSteps: r.rng.counters.good_steps ?? 0, skipped: r.rng.counters.skipped ?? 0 });
  }

  private copyEmbeddings(e: { y: Tensor; yLen: Tensor }, B: number): { y: Tensor; yLen: Tensor } {
    const { text_encoder: te } = this.config;
    const want = [B, 1, te.model_max_length, te.caption_channels];
    if (e.y.dtype !== this.dtype || e.y.shape.join() !== want.join()) throw new Error(`trainStep: caption embeddings y ${e.y} must be [${want.join(', ')}] ${this.dtype} (the config's text_encoder sizes and dtype)`);
    if (e.yLen.dtype !== 'i32' || e.yLen.shape.join() !== `${B}`) throw new Error(`trainStep: caption lengths yLen ${e.yLen} must be [${B}] i32`);
    const y = this.gpu.tensor(e.y.shape, e.y.dtype, 'y');
    const yLen = this.gpu.tensor(e.yLen.shape, 'i32', 'y_len');
    this.gpu.copy(e.y, y);
    this.gpu.copy(e.yLen, yLen);
    return { y, yLen };
  }

  /** One optimizer step on a batch; returns without waiting for the GPU. */
  trainStep(batch: TrainBatch): StepResult {
    const { gpu, config: c, schedule: s, dtype } = this;
    const [C, T, H, W] = latentShape(c);
    if (!batch.captions === !batch.embeddings) throw new Error('trainStep: pass either captions or precomputed caption embeddings (y, yLen), not both or neither');
    const B = batch.captions ? batch.captions.length : batch.embeddings!.y.shape[0]!;
    if (batch.latents.length !== B * C * T * H * W) throw new Error(`trainStep: latents hold ${batch.latents.length} values; expected ${B}×${C}×${T}×${H}×${W}`);
    const step = this.step;
    const seed = c.seed;

    const xStart = gpu.upload(batch.latents, [B, C, T, H, W], 'f32', 'x_start');
    const { y, yLen } = batch.captions ? encodeCaptions(gpu, this.textEncoder, batch.captions, dtype) : this.copyEmbeddings(batch.embeddings!, B);
    // caption dropout: the model's null caption embedding replaces y (upstream keeps the caption's mask)
    const drop = randCpu(B, { seed: streamSeed(seed, step, STREAM.dropout) });
    const nul = this.model.y_embedder.y_embedding;
    const nulData = dtype === 'f16' ? nul.half! : nul.value;
    drop.forEach((u, b) => {
      if (u < c.model.class_dropout_prob) gpu.copyRange(nulData, 0, y, b * nul.value.size, nul.value.size);
    });
    const t = stepTimesteps(s, seed, step, B);
    const noise = randn(gpu, [B, C, T, H, W], { seed: streamSeed(seed, step, STREAM.noise) });
    const xT = qSample(gpu, s, xStart, t, noise);
    const timestep = gpu.upload(Float32Array.from(t), [B], 'f32', 'timestep');

    const tape = new Tape(gpu);
    const xIn = tape.input(dtype === 'f16' ? cast(gpu, xT, 'f16') : xT, 'x_t');
    const out = F.toDtype(tape, this.model.forward(tape, { x: xIn, timestep, y: tape.input(y, 'y'), yLen }), 'f32');
    const prediction = c.scheduler.prediction;
    const epsOut = predictionToEps(gpu, s, prediction, xT, t, out.value); // out.value itself for eps prediction
    const inputs = { xStart, xT, noise, t, modelOutput: epsOut, prediction };
    const { loss, mse, vb } = trainingLosses(gpu, s, inputs);
    const lossValues = loss.read();
    let seedGrad = this.optimizer.seed(B, 1 / B);
    if (c.scheduler.loss_weighting !== 'uniform') {
      const w = gpu.upload(lossWeights(s, t, c.scheduler.loss_weighting), [B], 'f32', 'loss_weight');
      const weighted = mul(gpu, seedGrad, w);
      for (const x of [seedGrad, w]) x.release();
      seedGrad = weighted;
    }
    const dEps = trainingLossesBackward(gpu, s, inputs, seedGrad);
    seedGrad.release();
    const dOut = predictionGradient(gpu, s, prediction, xT, t, dEps);
    if (epsOut !== out.value) {
      epsOut.release();
      dEps.release();
    }
    tape.backward(out, dOut);
    dOut.release();
    tape.release();
    this.optimizer.step();
    for (const x of [xStart, y, yLen, noise, xT, timestep, loss, mse, vb]) x.release();
    if (xIn.value !== xT) xIn.value.release();
    this.step++;
    gpu.flush();
    return { step: step + 1, loss: lossValues.then((v) => Array.from(v).reduce((a, b) => a + b, 0) / B) };
  }

  /** Everything a checkpoint needs (reads the GPU). */
  async checkpointData(extra: { epoch: number; batchInEpoch: number }): Promise<CheckpointData> {
    const readAll = async (m: ReadonlyMap<string, Tensor>) => {
      const out: TensorMap = new Map();
      for (const [k, t] of m) out.set(k, { shape: [...t.shape], data: (await t.read()) as Float32Array });
      return out;
    };
    const params = await readAll(new Map([...stateDict(this.model)].map(([k, p]) => [k, p.value])));
    const stats = await this.optimizer.stats();
    return {
      params,
      ema: this.optimizer.ema ? await readAll(this.optimizer.ema) : undefined,
      m: await readAll(this.optimizer.m),
      v: await readAll(this.optimizer.v),
      step: this.step,
      epoch: extra.epoch,
      batchInEpoch: extra.batchInEpoch,
      lossScale: stats.lossScale,
      rng: { seed: this.config.seed, counters: { step: this.step, good_steps: stats.goodSteps, skipped: stats.skipped } },
      config: this.config,
    };
  }
}


