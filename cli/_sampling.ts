// Text-to-video sampling with a trained STDiT: captions → text encoder, classifier-free guidance against the
// model's null caption (one doubled batch, as upstream), an IDDPM / DDIM / DPM-Solver++ sampler, and the
// identity "VAE" (latents are pixels in [-1, 1]) → RGB frames. Also the inference checkpoint: the EMA
// weights and the config in one small safetensors file (the embedded default is one of these).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tape } from '../engine/autograd.js';
import * as F from '../engine/functional.js';
import type { Gpu } from '../engine/gpu.js';
import { writeSafetensors } from '../engine/safetensors-file.js';
import type { Tensor } from '../engine/tensor.js';
import { configFromStored } from '../configs/index.js';
import { latentShape, type TrainConfig } from '../configs/types.js';
import { cfgDoubledBatch, sample, type CfgOptions, type Denoiser, type SamplerKind } from '../models/diffusion/samplers.js';
import type { STDiT } from '../models/stdit.js';
import { loadStateDict, stateDict } from '../models/state.js';
import type { TextEncoder } from '../models/text_encoder/index.js';
import { loadModelWeights } from './_checkpoint.js';
import { withSafetensors } from './_safetensors-io.js';
import { buildModel, buildTextEncoder, encodeCaptions } from './_trainer.js';

/** The embedded default model, shipped in the repository (trained on the built-in synthetic dataset). */
export function embeddedCheckpoint(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const root of [resolve(here, '..'), resolve(here, '..', '..')]) {
    const p = join(root, 'checkpoints', 'tiny.safetensors');
    if (existsSync(p)) return p;
  }
  throw new Error('the embedded default checkpoint checkpoints/tiny.safetensors is missing from this checkout; pass --ckpt <file>');
}

export const INFERENCE_FORMAT = 'webgpu-dit-weights/1';

/** Writes model weights (f16 or f32) + config as a plain safetensors file for sampling. */
export function saveInferenceWeights(path: string, weights: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, config: TrainConfig, dtype: 'F16' | 'F32' = 'F16', extra: Record<string, string> = {}): void {
  const entries = [...weights].map(([name, t]) => ({ name, dtype, shape: t.shape, data: t.data }));
  writeSafetensors(path, entries, { format: INFERENCE_FORMAT, config: JSON.stringify(config), ...extra });
}

export interface LoadedModel {
  model: STDiT;
  config: TrainConfig;
  textEncoder: TextEncoder;
}

/**
 * A model for sampling from an inference file (saveInferenceWeights) or a training checkpoint (its EMA
 * weights unless `weights` is 'model'). `size` may change the number of frames / image size: the sin-cos
 * position embeddings are then recomputed for the new grid.
 */
export function loadForSampling(gpu: Gpu, path: string, opts: { weights?: 'ema' | 'model'; numFrames?: number; imageSize?: [number, number] } = {}): LoadedModel {
  const meta = withSafetensors(path, (r) => r.metadata);
  if (!meta.config) throw new Error(`${path}: no "config" in the file metadata; it is not a checkpoint of this project (plain upstream weights need a config: use the train command with --model.from_pretrained)`);
  // keys the file predates take the values it was trained with (STORED_CONFIG_DEFAULTS), not today's defaults
  const config = configFromStored(JSON.parse(meta.config), `${path} metadata config`);
  const trained = { frames: config.num_frames, size: [...config.image_size] };
  if (opts.numFrames) config.num_frames = opts.numFrames;
  if (opts.imageSize) config.image_size = opts.imageSize;
  const model = buildModel(gpu, config);
  const all = stateDict(model);
  const resized = config.num_frames !== trained.frames || config.image_size.join() !== trained.size.join();
  const positional = ['pos_embed', 'pos_embed_temporal'];
  const expected = new Map([...all].filter(([k]) => !(resized && positional.includes(k))).map(([k, p]) => [k, p.shape]));
  const prefix = meta.format === INFERENCE_FORMAT ? '' : opts.weights === 'model' ? 'model.' : 'ema.';
  // EMA groups hold only trainable tensors: buffers come from the model group
  const buffers = [...all].filter(([, p]) => !p.requiresGrad).map(([k]) => k);
  const main = loadModelWeights(path, new Map([...expected].filter(([k]) => prefix !== 'ema.' || !buffers.includes(k))), { prefix, ignore: (k) => positional.includes(k) });
  if (prefix === 'ema.') {
    const bufs = loadModelWeights(path, new Map([...expected].filter(([k]) => buffers.includes(k))), { prefix: 'model.', ignore: () => true });
    for (const [k, v] of bufs) main.set(k, v);
  }
  loadStateDict(model, main, { source: path, optional: resized ? positional : [] });
  return { model, config, textEncoder: buildTextEncoder(config) };
}

export interface SampleVideoOptions {
  sampler?: SamplerKind;
  steps?: number;
  /** Guidance scale (default 7; 1 = no guidance). */
  cfg?: number;
  /** 'all' channels (default) or 'upstream' (the first 3, as Open-Sora). */
  cfgChannels?: CfgOptions['guided'];
  seed?: number;
  dtype?: 'f32' | 'f16';
  progress?: (step: number, total: number) => void;
}

/** Samples one clip per prompt; returns [B, C, T, H, W] latents (f32, host). */
export async function sampleVideos(gpu: Gpu, m: LoadedModel, prompts: readonly string[], opts: SampleVideoOptions = {}): Promise<Float32Array> {
  const { model, config, textEncoder } = m;
  const dtype = opts.dtype ?? 'f32';
  if (dtype === 'f16') model.useHalf();
  const B = prompts.length;
  const [C, T, H, W] = latentShape(config);
  const { y, yLen } = encodeCaptions(gpu, textEncoder, prompts, dtype);
  const forward = (x: Tensor, t: Tensor, yy: Tensor, lens: Tensor): Tensor => {
    const tape = new Tape(gpu, false);
    const xin = dtype === 'f16' ? F.toDtype(tape, tape.input(x), 'f16') : tape.input(x);
    const out = F.toDtype(tape, model.forward(tape, { x: xin, timestep: t, y: tape.input(yy), yLen: lens }), 'f32');
    const value = tape.take(out);
    tape.release();
    return value;
  };
  const cfg = opts.cfg ?? 7;
  const keep: Tensor[] = [y, yLen];
  let denoiser: Denoiser = (x, t) => forward(x, t, y, yLen);
  if (cfg !== 1) {
    // [cond; uncond]: the null caption is the model's y_embedding, with the caption's mask (as upstream)
    const L = config.text_encoder.model_max_length;
    const Cc = config.text_encoder.caption_channels;
    const y2 = gpu.tensor([2 * B, 1, L, Cc], dtype, 'y2');
    gpu.copyRange(y, 0, y2, 0, y.size);
    const nul = model.y_embedder.y_embedding;
    for (let b = 0; b < B; b++) gpu.copyRange(dtype === 'f16' ? nul.half! : nul.value, 0, y2, y.size + b * L * Cc, L * Cc);
    const yLen2 = gpu.tensor([2 * B], 'i32', 'y_len2');
    gpu.copyRange(yLen, 0, yLen2, 0, B);
    gpu.copyRange(yLen, 0, yLen2, B, B);
    keep.push(y2, yLen2);
    denoiser = cfgDoubledBatch(gpu, (x2, t2) => forward(x2, t2, y2, yLen2), { scale: cfg, guided: opts.cfgChannels ?? 'all' });
  }
  const x = await sample(gpu, denoiser, { sampler: opts.sampler ?? 'iddpm', steps: opts.steps, seed: opts.seed ?? 0, shape: [B, C, T, H, W], progress: opts.progress, prediction: config.scheduler.prediction });
  const out = (await x.read()) as Float32Array;
  for (const t of [x, ...keep]) t.release();
  return out;
}

/** Sample b of [B, 3, T, H, W] latents in [-1, 1] → T RGB24 frames. */
export function toFrames(latents: Float32Array, shape: readonly [number, number, number, number, number], b: number): Uint8Array[] {
  const [, C, T, H, W] = shape;
  if (C !== 3) throw new Error(`toFrames: ${C} latent channels; the identity VAE needs 3 (RGB)`);
  const frames: Uint8Array[] = [];
  const plane = H * W;
  const base = b * C * T * plane;
  for (let t = 0; t < T; t++) {
    const f = new Uint8Array(plane * 3);
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) {
        const v = latents[base + (c * T + t) * plane + i]!;
        f[i * 3 + c] = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
      }
    }
    frames.push(f);
  }
  return frames;
}
