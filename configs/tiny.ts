// The embedded default: a small STDiT on the built-in synthetic dataset, 8 frames of 32×32 pixels, identity
// "VAE" (the 3 RGB channels are the latents, no downsampling) and the small built-in text encoder (64-dim
// captions, 16 tokens). 8×16×16 = 2048 tokens per sample. The defaults are the embedded checkpoint's recipe:
// batch 64, lr 3e-4, v-prediction, the temporal position embedding added to every token (temporal_pos
// 'input'); it was trained from scratch for 8 813 steps (13 min on an H200 at 88 ms a step; 250 epochs of the
// 4096-clip dataset would be 16 000). With upstream's ε-prediction and first-block temporal embedding the
// model ignored the motion word (README, "Embedded default"). Tests shrink it to run on software WebGPU.
import type { TrainConfig } from './types.js';

export function tiny(): TrainConfig {
  return {
    name: 'tiny',
    num_frames: 8,
    frame_interval: 1,
    image_size: [32, 32],
    dataset: { type: 'synthetic', data_path: '', root: '', num_samples: 4096, num_workers: 0 },
    model: {
      type: 'STDiT-tiny',
      arch: 'STDiT',
      hidden_size: 128,
      depth: 4,
      num_heads: 4,
      mlp_ratio: 4,
      patch_size: [1, 2, 2],
      space_scale: 1.0,
      time_scale: 1.0,
      class_dropout_prob: 0.1,
      pred_sigma: true,
      drop_path: 0,
      enable_flashattn: true,
      grad_checkpoint: false,
      temporal_pos: 'input',
      from_pretrained: '',
    },
    text_encoder: { type: 'tiny', from_pretrained: '', model_max_length: 16, caption_channels: 64 },
    vae: { type: 'identity', from_pretrained: '', latent_channels: 3, downsample: [1, 1, 1], scaling_factor: 1 },
    scheduler: { type: 'iddpm', num_timesteps: 1000, noise_schedule: 'linear', timestep_respacing: '', learn_sigma: true, loss_weighting: 'uniform', prediction: 'v' },
    dtype: 'f32',
    matmul_precision: 'highest',
    sp_size: 1,
    batch_size: 64,
    lr: 3e-4,
    weight_decay: 0,
    adam_betas: [0.9, 0.999],
    adam_eps: 1e-8,
    grad_clip: 1.0,
    ema_decay: 0.999,
    epochs: 250,
    log_every: 50,
    ckpt_every: 1000,
    keep_ckpts: 3,
    seed: 42,
    outputs: 'outputs',
    load: '',
  };
}
