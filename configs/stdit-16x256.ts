// Open-Sora v1.0 training config configs/opensora/train/16x256x256.py: STDiT-XL/2 on 16 frames of 256×256
// (frame interval 3), T5 v1.1 XXL captions (120 tokens, 4096 channels), SD-VAE latents (4 channels, 8×
// spatial downsampling → 16×32×32 latents, 4096 tokens), IDDPM with 1000 steps, batch 8, lr 2e-5, grad clip
// 1.0, EMA 0.9999 (train.py). Differences: dtype 'f16' mixed precision (upstream bf16, which WebGPU lacks);
// `from_pretrained` fields are local safetensors paths, empty here (upstream: PixArt-XL-2-512x512.pth,
// stabilityai/sd-vae-ft-ema, DeepFloyd/t5-v1_1-xxl), so weights must be converted and named on the CLI.
import type { TrainConfig } from './types.js';

export function stdit16x256(): TrainConfig {
  return {
    name: 'stdit-16x256',
    num_frames: 16,
    frame_interval: 3,
    image_size: [256, 256],
    dataset: { type: 'csv', data_path: '', root: '', num_samples: 0, num_workers: 4 },
    model: {
      type: 'STDiT-XL/2',
      arch: 'STDiT',
      hidden_size: 1152,
      depth: 28,
      num_heads: 16,
      mlp_ratio: 4,
      patch_size: [1, 2, 2],
      space_scale: 0.5,
      time_scale: 1.0,
      class_dropout_prob: 0.1,
      pred_sigma: true,
      drop_path: 0,
      enable_flashattn: true,
      grad_checkpoint: true,
      temporal_pos: 'first-block',
      from_pretrained: '',
    },
    text_encoder: { type: 't5', from_pretrained: '', model_max_length: 120, caption_channels: 4096 },
    vae: { type: 'sd-vae', from_pretrained: '', latent_channels: 4, downsample: [1, 8, 8], scaling_factor: 0.18215 },
    scheduler: { type: 'iddpm', num_timesteps: 1000, noise_schedule: 'linear', timestep_respacing: '', learn_sigma: true, loss_weighting: 'uniform', prediction: 'eps' },
    dtype: 'f16',
    matmul_precision: 'highest',
    sp_size: 1,
    batch_size: 8,
    lr: 2e-5,
    weight_decay: 0,
    adam_betas: [0.9, 0.999],
    adam_eps: 1e-8,
    grad_clip: 1.0,
    ema_decay: 0.9999,
    epochs: 1000,
    log_every: 10,
    ckpt_every: 1000,
    keep_ckpts: 0,
    seed: 42,
    outputs: 'outputs',
    load: '',
  };
}
