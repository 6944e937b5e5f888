// Typed training configuration with Open-Sora's field names (configs/opensora/train/*.py of Open-Sora v1.0),
// plus the few things the upstream config leaves to train.py (EMA decay, AdamW betas/eps/weight decay).
// Every field has a concrete value of a fixed type (no null: an empty string means "none"), so CLI
// overrides can be type-checked against the existing value (configs/index.ts applyOverrides).
// Pure data and arithmetic: no Node or GPU imports (usable from the browser bundle).

/** Training precision: 'f32', or 'f16' mixed precision (f32 master weights, f16 activations, loss scaling). */
export type Precision = 'f32' | 'f16';

export interface ModelConfig {
  /** Display name, e.g. 'STDiT-XL/2' (upstream `type`); the architecture is `arch`. */
  type: string;
  arch: 'STDiT';
  hidden_size: number;
  depth: number;
  num_heads: number;
  mlp_ratio: number;
  /** [t, h, w] patch size in latent pixels. */
  patch_size: [number, number, number];
  /** Scales of the spatial / temporal sin-cos position embeddings (upstream space_scale, time_scale). */
  space_scale: number;
  time_scale: number;
  /** Caption dropout probability during training (classifier-free guidance); upstream 0.1. */
  class_dropout_prob: number;
  /** Predict the variance too (learned sigma): output channels = 2 × latent channels. */
  pred_sigma: boolean;
  drop_path: number;
  /** Fused/flash attention kernels (upstream enable_flashattn). */
  enable_flashattn: boolean;
  /** Recompute block activations in the backward pass (upstream grad_checkpoint). */
  grad_checkpoint: boolean;
  /** 'first-block' (upstream STDiT v1.0) or 'input' (temporal position embedding added to every token; see models/stdit.ts). */
  temporal_pos: 'first-block' | 'input';
  /** Weights to start from (a safetensors file; '' = random init). */
  from_pretrained: string;
}

export interface TextEncoderConfig {
  /** 't5' (T5 v1.1 encoder weights) or 'tiny' (a small built-in encoder for the synthetic data). */
  type: 't5' | 'tiny';
  from_pretrained: string;
  /** Caption length in tokens (padded / truncated). */
  model_max_length: number;
  /** Width of the caption embeddings fed to the model (T5 XXL: 4096). */
  caption_channels: number;
}

export interface VaeConfig {
  /** 'sd-vae' (Stable Diffusion VAE, per frame) or 'identity' (pixels are the latents). */
  type: 'sd-vae' | 'identity';
  from_pretrained: string;
  latent_channels: number;
  /** [t, h, w] downsampling from pixels to latents. */
  downsample: [number, number, number];
  /** Latents are multiplied by this after encoding (SD-VAE: 0.18215). */
  scaling_factor: number;
}

export interface SchedulerConfig {
  type: 'iddpm';
  num_timesteps: number;
  noise_schedule: 'linear';
  /** '' = all steps (training); e.g. '100' or 'ddim50' for sampling. */
  timestep_respacing: string;
  learn_sigma: boolean;
  /**
   * Per-sample weight of the training loss by timestep: 'uniform' (upstream), 'p2' (perception-prioritized
   * weighting, Choi et al. 2022, k = 1, γ = 1: 1 / (1 + SNR(t)), which favours the noisy steps where layout
   * and motion are decided over the nearly clean ones) or 'v' (min(1/ᾱ_t, 100): the v-prediction loss of the
   * same output, capped; weighs those noisy steps much more). Applied to the whole per-sample loss (mse + vb).
   */
  loss_weighting: LossWeighting;
  /**
   * What the model's first C output channels predict: 'eps' (the noise, upstream) or 'v'
   * (sqrt(ᾱ)·eps − sqrt(1 − ᾱ)·x0, Salimans & Ho 2022), trained with the v-MSE. eps prediction leaves the
   * noisy steps' x0 (layout, motion) a vanishing part of the output; v keeps it O(1) at every t.
   */
  prediction: Prediction;
}

/** See SchedulerConfig.loss_weighting. */
export type LossWeighting = 'uniform' | 'p2' | 'v';

/** See SchedulerConfig.prediction. */
export type Prediction = 'eps' | 'v';

export interface DatasetConfig {
  /** 'synthetic' (built-in, deterministic moving shapes with captions) or 'csv' (video paths + captions). */
  type: 'synthetic' | 'csv';
  data_path: string;
  root: string;
  /** Number of synthetic samples per epoch. */
  num_samples: number;
  num_workers: number;
}

export interface TrainConfig {
  /** Registry name of this config (informational). */
  name: string;
  num_frames: number;
  frame_interval: number;
  /** [height, width] in pixels. */
  image_size: [number, number];
  dataset: DatasetConfig;
  model: ModelConfig;
  text_encoder: TextEncoderConfig;
  vae: VaeConfig;
  scheduler: SchedulerConfig;
  dtype: Precision;
  /**
   * Precision of the f32 matmuls (torch.set_float32_matmul_precision): 'highest' (default) = exact f32
   * kernels; 'high' = three f16 products on tensor cores (engine/ops/matmul_f16x3.ts, ~f32 accuracy, faster
   * on GPUs with subgroup matrices; elsewhere the exact kernels). Affects dtype 'f32' only (f16 mixed
   * precision's products are f16 already).
   */
  matmul_precision: 'highest' | 'high';
  /** Sequence-parallel group size (1 = off). */
  sp_size: number;
  batch_size: number;
  lr: number;
  weight_decay: number;
  adam_betas: [number, number];
  adam_eps: number;
  /** Global gradient-norm clip (0 = off). */
  grad_clip: number;
  ema_decay: number;
  epochs: number;
  log_every: number;
  ckpt_every: number;
  /** Training checkpoints kept per run (older ones pruned; 0 = keep all). */
  keep_ckpts: number;
  seed: number;
  outputs: string;
  /** Checkpoint (or run folder) to resume from; '' = start fresh. */
  load: string;
}

/** Latent video shape [C, T, H, W] of one sample. */
export function latentShape(c: TrainConfig): [number, number, number, number] {
  const [dt, dh, dw] = c.vae.downsample;
  return [c.vae.latent_channels, c.num_frames / dt, c.image_size[0] / dh, c.image_size[1] / dw];
}

/** Tokens per sample seen by the transformer: (T/pt)·(H/ph)·(W/pw). */
export function tokensPerSample(c: TrainConfig): number {
  const [, t, h, w] = latentShape(c);
  const [pt, ph, pw] = c.model.patch_size;
  return (t / pt) * (h / ph) * (w / pw);
}

/**
 * Checks the config's internal consistency (divisibility, positive sizes, ranges). Returns it unchanged, or
 * throws one error listing every problem with the field names to change.
 */
export function validateConfig(c: TrainConfig): TrainConfig {
  const bad: string[] = [];
  const posInt = (v: number, key: string) => {
    if (!Number.isInteger(v) || v < 1) bad.push(`${key} = ${v} must be a positive integer`);
  };
  const inRange = (v: number, key: string, lo: number, hi: number, hiOpen = false) => {
    if (!(v >= lo && (hiOpen ? v < hi : v <= hi))) bad.push(`${key} = ${v} must be in [${lo}, ${hi}${hiOpen ? ')' : ']'}`);
  };
  posInt(c.num_frames, 'num_frames');
  posInt(c.frame_interval, 'frame_interval');
  c.image_size.forEach((v, i) => posInt(v, `image_size[${i}]`));
  posInt(c.model.hidden_size, 'model.hidden_size');
  posInt(c.model.depth, 'model.depth');
  posInt(c.model.num_heads, 'model.num_heads');
  c.model.patch_size.forEach((v, i) => posInt(v, `model.patch_size[${i}]`));
  c.vae.downsample.forEach((v, i) => posInt(v, `vae.downsample[${i}]`));
  posInt(c.vae.latent_channels, 'vae.latent_channels');
  posInt(c.text_encoder.model_max_length, 'text_encoder.model_max_length');
  posInt(c.text_encoder.caption_channels, 'text_encoder.caption_channels');
  posInt(c.batch_size, 'batch_size');
  posInt(c.epochs, 'epochs');
  posInt(c.log_every, 'log_every');
  posInt(c.ckpt_every, 'ckpt_every');
  posInt(c.sp_size, 'sp_size');
  posInt(c.scheduler.num_timesteps, 'scheduler.num_timesteps');
  if (!Number.isInteger(c.keep_ckpts) || c.keep_ckpts < 0) bad.push(`keep_ckpts = ${c.keep_ckpts} must be an integer >= 0 (0 keeps all)`);
  if (!Number.isInteger(c.seed) || c.seed < 0) bad.push(`seed = ${c.seed} must be an integer >= 0`);
  if (c.model.hidden_size % c.model.num_heads) {
    bad.push(`model.hidden_size ${c.model.hidden_size} is not divisible by model.num_heads ${c.model.num_heads}`);
  }
  const dims: [number, string][] = [
    [c.num_frames, 'num_frames'],
    [c.image_size[0], 'image_size[0] (height)'],
    [c.image_size[1], 'image_size[1] (width)'],
  ];
  dims.forEach(([v, key], i) => {
    const f = c.vae.downsample[i]! * c.model.patch_size[i]!;
    if (v % f) bad.push(`${key} = ${v} is not divisible by vae.downsample[${i}] × model.patch_size[${i}] = ${f}`);
  });
  if (c.lr <= 0 || !Number.isFinite(c.lr)) bad.push(`lr = ${c.lr} must be a positive number`);
  inRange(c.ema_decay, 'ema_decay', 0, 1);
  inRange(c.model.class_dropout_prob, 'model.class_dropout_prob', 0, 1, true);
  inRange(c.model.drop_path, 'model.drop_path', 0, 1, true);
  c.adam_betas.forEach((b, i) => inRange(b, `adam_betas[${i}]`, 0, 1, true));
  if (!(c.adam_eps > 0)) bad.push(`adam_eps = ${c.adam_eps} must be > 0`);
  if (!(c.grad_clip >= 0)) bad.push(`grad_clip = ${c.grad_clip} must be >= 0 (0 = off)`);
  if (!(c.weight_decay >= 0)) bad.push(`weight_decay = ${c.weight_decay} must be >= 0`);
  if (c.model.pred_sigma !== c.scheduler.learn_sigma) {
    bad.push(`model.pred_sigma (${c.model.pred_sigma}) and scheduler.learn_sigma (${c.scheduler.learn_sigma}) must agree`);
  }
  if (c.dtype !== 'f32' && c.dtype !== 'f16') bad.push(`dtype = ${c.dtype} must be 'f32' or 'f16'`);
  if (c.scheduler.prediction !== 'eps' && c.scheduler.prediction !== 'v') bad.push(`scheduler.prediction = ${c.scheduler.prediction} must be 'eps' or 'v'`);
  if (c.scheduler.prediction === 'v' && c.scheduler.loss_weighting === 'v') {
    bad.push("scheduler.loss_weighting 'v' makes an eps-prediction loss like the v-MSE; with scheduler.prediction 'v' the MSE already is the v-MSE (weighting it again counts the noisiest steps up to 100× more): use loss_weighting 'uniform'");
  }
  if (c.matmul_precision !== 'highest' && c.matmul_precision !== 'high') bad.push(`matmul_precision = ${c.matmul_precision} must be 'highest' or 'high'`);
  if (c.vae.type === 'identity' && c.vae.downsample.some((d) => d !== 1)) bad.push(`vae.type 'identity' needs vae.downsample 1,1,1 (got ${c.vae.downsample})`);
  if (bad.length) throw new Error(`invalid config "${c.name}":\n  - ${bad.join('\n  - ')}`);
  return c;
}
