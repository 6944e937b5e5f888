// STDiT (Open-Sora v1.0, opensora/models/stdit/stdit.py): a DiT over video latents whose blocks alternate
// spatial attention (each frame's S tokens), temporal attention (each position's T tokens) and masked
// cross-attention to caption tokens, modulated by adaLN-single (one shared t_block; per-block tables).
// Parameter names equal upstream's state_dict keys.
import { Param, type Tape, type Var } from '../engine/autograd.js';
import * as F from '../engine/functional.js';
import type { Gpu } from '../engine/gpu.js';
import { posEmbed1d, posEmbed2d } from '../engine/ops/embedding.js';
import type { Tensor } from '../engine/tensor.js';
import { ShapeError } from '../engine/errors.js';
import { Attention, Buffer, CrossAttention, Init, Linear, Mlp, Module, TimestepEmbedder } from './nn.js';

export interface STDiTConfig {
  /** Latent size [T, H, W]. */
  inputSize: [number, number, number];
  inChannels: number;
  patchSize: [number, number, number];
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  captionChannels: number;
  modelMaxLength: number;
  /** Learned sigma: twice the input channels out. */
  predSigma: boolean;
  spaceScale: number;
  timeScale: number;
  /** Recompute each block's forward in backward instead of keeping its activations. */
  gradCheckpoint: boolean;
  /**
   * Where the temporal position embedding goes: 'first-block' (Open-Sora v1.0: added to the input of block 0's
   * temporal attention only, so frame order reaches the residual stream only through what that attention
   * learns to pass on) or 'input' (added to every token with the spatial one, as Latte does; not upstream,
   * same parameters — an option for small models that must learn motion direction quickly).
   */
  temporalPos: 'first-block' | 'input';
}

/** Named sizes of the STDiT family (patch 1x2x2), as Open-Sora's registry. */
export const STDIT_SIZES = {
  'STDiT-XL/2': { hiddenSize: 1152, depth: 28, numHeads: 16 },
  'STDiT-L/2': { hiddenSize: 1024, depth: 24, numHeads: 16 },
  'STDiT-B/2': { hiddenSize: 768, depth: 12, numHeads: 12 },
  'STDiT-S/2': { hiddenSize: 384, depth: 12, numHeads: 6 },
} as const;

export const STDIT_DEFAULTS: STDiTConfig = {
  inputSize: [16, 32, 32],
  inChannels: 4,
  patchSize: [1, 2, 2],
  ...STDIT_SIZES['STDiT-XL/2'],
  mlpRatio: 4,
  captionChannels: 4096,
  modelMaxLength: 120,
  predSigma: true,
  spaceScale: 1,
  timeScale: 1,
  gradCheckpoint: false,
  temporalPos: 'first-block',
};

/** Conv3d(kernel = stride = patch) as patchify + linear on the flattened kernel. */
class PatchEmbed3D extends Module {
  proj: Linear;
  constructor(init: Init, c: STDiTConfig) {
    super();
    const [pt, ph, pw] = c.patchSize;
    this.proj = new Linear(init, 'x_embedder.proj', c.inChannels * pt * ph * pw, c.hiddenSize);
    this.proj.weight = init.xavier('x_embedder.proj.weight', [c.hiddenSize, c.inChannels, pt, ph, pw]);
  }
  forward(tape: Tape, x: Var, patch: [number, number, number]): Var {
    return this.proj.forward(tape, F.patchify(tape, x, patch));
  }
}

/** Caption tokens → hidden size (Mlp with GELU tanh); y_embedding is the learned-free null caption. */
class CaptionEmbedder extends Module {
  y_proj: Mlp;
  y_embedding: Buffer;
  constructor(init: Init, c: STDiTConfig) {
    super();
    this.y_proj = new Mlp(init, 'y_embedder.y_proj', c.captionChannels, c.hiddenSize, c.hiddenSize, 0.02);
    const nul = init.normal('y_embedder.y_embedding', [c.modelMaxLength, c.captionChannels], 1 / Math.sqrt(c.captionChannels));
    this.y_embedding = new Buffer(nul.value, 'y_embedder.y_embedding');
  }
  forward(tape: Tape, y: Var): Var {
    return this.y_proj.forward(tape, y);
  }
}

export class STDiTBlock extends Module {
  attn: Attention;
  cross_attn: CrossAttention;
  mlp: Mlp;
  scale_shift_table: Param;
  attn_temp: Attention;
  constructor(init: Init, name: string, c: STDiTConfig) {
    super();
    const C = c.hiddenSize;
    this.attn = new Attention(init, `${name}.attn`, C, c.numHeads);
    this.cross_attn = new CrossAttention(init, `${name}.cross_attn`, C, c.numHeads);
    this.mlp = new Mlp(init, `${name}.mlp`, C, Math.round(C * c.mlpRatio));
    this.scale_shift_table = init.normal(`${name}.scale_shift_table`, [6, C], 1 / Math.sqrt(C));
    this.attn_temp = new Attention(init, `${name}.attn_temp`, C, c.numHeads);
  }

  /** x [B, T·S, C]; y [B, L, C] caption tokens with kvLen[b] valid; t0 [B, 6C]; tpe [1, T, C] (block 0 only). */
  forward(tape: Tape, x: Var, y: Var, t0: Var, kvLen: Tensor, T: number, S: number, tpe: Var | null): Var {
    const [B, , C] = x.shape as [number, number, number];
    const mod = F.add(tape, F.reshape(tape, t0, [B, 6, C]), this.scale_shift_table);
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = F.split(tape, F.permute(tape, mod, [1, 0, 2]), 6) as Var[];

    // spatial attention over each frame's S tokens, on the modulated input
    const xm = F.adalnModulate(tape, x, shiftMsa!, scaleMsa!);
    const xs = this.attn.forward(tape, F.reshape(tape, xm, [B * T, S, C]));
    x = F.gatedResidual(tape, x, gateMsa!, F.reshape(tape, xs, [B, T * S, C]));

    // temporal attention over each position's T tokens, on the updated x
    let xt = F.reshape(tape, F.permute(tape, F.reshape(tape, x, [B, T, S, C]), [0, 2, 1, 3]), [B * S, T, C]);
    if (tpe) xt = F.add(tape, xt, tpe);
    xt = this.attn_temp.forward(tape, xt);
    xt = F.reshape(tape, F.permute(tape, F.reshape(tape, xt, [B, S, T, C]), [0, 2, 1, 3]), [B, T * S, C]);
    x = F.gatedResidual(tape, x, gateMsa!, xt);

    // cross-attention to the caption (no gate)
    x = F.add(tape, x, this.cross_attn.forward(tape, x, y, kvLen));

    // MLP on the modulated input
    const h = this.mlp.forward(tape, F.adalnModulate(tape, x, shiftMlp!, scaleMlp!));
    return F.gatedResidual(tape, x, gateMlp!, h);
  }
}

/** T2IFinalLayer: LN, modulation by scale_shift_table + t, linear to patch · out channels. */
class T2IFinalLayer extends Module {
  linear: Linear;
  scale_shift_table: Param;
  constructor(init: Init, c: STDiTConfig, outChannels: number) {
    super();
    const [pt, ph, pw] = c.patchSize;
    this.linear = new Linear(init, 'final_layer.linear', c.hiddenSize, pt * ph * pw * outChannels, { zero: true });
    this.scale_shift_table = init.normal('final_layer.scale_shift_table', [2, c.hiddenSize], 1 / Math.sqrt(c.hiddenSize));
  }
  forward(tape: Tape, x: Var, t: Var): Var {
    const [shiftT, scaleT] = F.split(tape, this.scale_shift_table, 2) as [Var, Var];
    const shift = F.add(tape, t, shiftT);
    const scale = F.add(tape, t, scaleT);
    return this.linear.forward(tape, F.adalnModulate(tape, x, shift, scale));
  }
}

export interface STDiTInputs {
  /** Latents [B, C, T, H, W]. */
  x: Var;
  /** Diffusion timesteps, f32 [B]. */
  timestep: Tensor;
  /** Caption token embeddings [B, 1, L, caption_channels]. */
  y: Var;
  /** Valid caption tokens per sample, i32 [B] (the mask's row sums). */
  yLen: Tensor;
}

export class STDiT extends Module {
  readonly config: STDiTConfig;
  readonly outChannels: number;
  pos_embed: Buffer;
  pos_embed_temporal: Buffer;
  x_embedder: PatchEmbed3D;
  t_embedder: TimestepEmbedder;
  t_block: { 1: Linear };
  y_embedder: CaptionEmbedder;
  blocks: STDiTBlock[];
  final_layer: T2IFinalLayer;

  constructor(gpu: Gpu, config: Partial<STDiTConfig> = {}, seed = 0) {
    super();
    const c = (this.config = { ...STDIT_DEFAULTS, ...config });
    if (c.temporalPos !== 'first-block' && c.temporalPos !== 'input') throw new ShapeError(`STDiT: temporalPos "${String(c.temporalPos)}" must be 'first-block' or 'input'`);
    const [T, H, W] = c.inputSize;
    const [pt, ph, pw] = c.patchSize;
    if (T % pt || H % ph || W % pw) throw new ShapeError(`STDiT: input size [${c.inputSize}] is not divisible by the patch [${c.patchSize}]`);
    const init = new Init(gpu, seed);
    this.outChannels = c.predSigma ? 2 * c.inChannels : c.inChannels;
    const S = (H / ph) * (W / pw);
    const baseSize = Math.round(Math.sqrt(S));
    this.pos_embed = new Buffer(posEmbed2d(gpu, c.hiddenSize, H / ph, W / pw, { scale: c.spaceScale, baseSize }).reshape([1, S, c.hiddenSize]), 'pos_embed');
    this.pos_embed_temporal = new Buffer(posEmbed1d(gpu, c.hiddenSize, T / pt, { scale: c.timeScale }).reshape([1, T / pt, c.hiddenSize]), 'pos_embed_temporal');
    this.x_embedder = new PatchEmbed3D(init, c);
    this.t_embedder = new TimestepEmbedder(init, 't_embedder', c.hiddenSize);
    this.t_block = { 1: new Linear(init, 't_block.1', c.hiddenSize, 6 * c.hiddenSize, { std: 0.02 }) };
    this.y_embedder = new CaptionEmbedder(init, c);
    this.blocks = Array.from({ length: c.depth }, (_, i) => new STDiTBlock(init, `blocks.${i}`, c));
    this.final_layer = new T2IFinalLayer(init, c, this.outChannels);
  }

  /** The noise prediction (and learned sigma) [B, out_channels, T, H, W]. */
  forward(tape: Tape, inp: STDiTInputs): Var {
    const c = this.config;
    const [B, Cin, T, H, W] = inp.x.shape as [number, number, number, number, number];
    if (Cin !== c.inChannels || T !== c.inputSize[0] || H !== c.inputSize[1] || W !== c.inputSize[2]) {
      throw new ShapeError(`STDiT: x ${inp.x} must be [B, ${c.inChannels}, ${c.inputSize.join(', ')}] (the model's in_channels and input_size)`);
    }
    const [pt, ph, pw] = c.patchSize;
    const [Tp, S, C] = [T / pt, (H / ph) * (W / pw), c.hiddenSize];
    const L = inp.y.shape[2]!;

    let x = this.x_embedder.forward(tape, inp.x, c.patchSize);
    x = F.reshape(tape, F.add(tape, F.reshape(tape, x, [B * Tp, S, C]), this.pos_embed), [B, Tp * S, C]);
    if (c.temporalPos === 'input') {
      const xt = F.permute(tape, F.reshape(tape, x, [B, Tp, S, C]), [0, 2, 1, 3]); // [B, S, Tp, C]
      const withT = F.add(tape, xt, F.reshape(tape, this.pos_embed_temporal, [Tp, C]));
      x = F.reshape(tape, F.permute(tape, withT, [0, 2, 1, 3]), [B, Tp * S, C]);
    }
    const t = this.t_embedder.forward(tape, inp.timestep);
    const t0 = this.t_block[1].forward(tape, F.silu(tape, t));
    const y = F.reshape(tape, this.y_embedder.forward(tape, inp.y), [B, L, C]);

    this.blocks.forEach((block, i) => {
      const tpe = i === 0 && c.temporalPos === 'first-block' ? this.pos_embed_temporal : null;
      const run = (tp: Tape, xb: Var, yb: Var, tb: Var) => block.forward(tp, xb, yb, tb, inp.yLen, Tp, S, tpe);
      x = c.gradCheckpoint ? tape.checkpoint(`blocks.${i}`, run, [x, y, t0]) : tape.scope(() => run(tape, x, y, t0));
    });

    x = this.final_layer.forward(tape, x, t);
    return F.unpatchify(tape, x, [T, H, W], c.patchSize);
  }
}
