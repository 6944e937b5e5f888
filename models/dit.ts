// DiT (facebookresearch/DiT models.py): a class-conditional Transformer over image latents with adaLN-Zero
// blocks (per-block SiLU → Linear to six modulation vectors from c = t + y). Parameter names equal upstream.
import { Param, type Tape, type Var } from '../engine/autograd.js';
import * as F from '../engine/functional.js';
import type { Gpu } from '../engine/gpu.js';
import { posEmbed2d } from '../engine/ops/embedding.js';
import type { Tensor } from '../engine/tensor.js';
import { ShapeError } from '../engine/errors.js';
import { Attention, Buffer, Init, Linear, Mlp, Module, TimestepEmbedder } from './nn.js';

export interface DiTConfig {
  inputSize: number;
  patchSize: number;
  inChannels: number;
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  /** Class-label dropout for classifier-free guidance; > 0 adds the null class (index numClasses). */
  classDropoutProb: number;
  numClasses: number;
  learnSigma: boolean;
  gradCheckpoint: boolean;
}

/** DiT-{XL,L,B,S}/2 sizes (patch 2). */
export const DIT_SIZES = {
  'DiT-XL/2': { hiddenSize: 1152, depth: 28, numHeads: 16 },
  'DiT-L/2': { hiddenSize: 1024, depth: 24, numHeads: 16 },
  'DiT-B/2': { hiddenSize: 768, depth: 12, numHeads: 12 },
  'DiT-S/2': { hiddenSize: 384, depth: 12, numHeads: 6 },
} as const;

export const DIT_DEFAULTS: DiTConfig = {
  inputSize: 32,
  patchSize: 2,
  inChannels: 4,
  ...DIT_SIZES['DiT-XL/2'],
  mlpRatio: 4,
  classDropoutProb: 0.1,
  numClasses: 1000,
  learnSigma: true,
  gradCheckpoint: false,
};

/** Two-layer adaLN modulation head: SiLU → Linear(C, n·C); upstream Sequential, so the linear is ".1". */
function adaLN(init: Init, name: string, C: number, n: number): { 1: Linear } {
  return { 1: new Linear(init, `${name}.adaLN_modulation.1`, C, n * C, { zero: true }) };
}

export class DiTBlock extends Module {
  attn: Attention;
  mlp: Mlp;
  adaLN_modulation: { 1: Linear };
  constructor(init: Init, name: string, c: DiTConfig) {
    super();
    const C = c.hiddenSize;
    this.attn = new Attention(init, `${name}.attn`, C, c.numHeads);
    this.mlp = new Mlp(init, `${name}.mlp`, C, Math.round(C * c.mlpRatio));
    this.adaLN_modulation = adaLN(init, name, C, 6);
  }
  /** x [B, N, C], c [B, C]. */
  forward(tape: Tape, x: Var, c: Var): Var {
    const mod = this.adaLN_modulation[1].forward(tape, F.silu(tape, c));
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = F.chunk(tape, mod, 6) as Var[];
    x = F.gatedResidual(tape, x, gateMsa!, this.attn.forward(tape, F.adalnModulate(tape, x, shiftMsa!, scaleMsa!)));
    return F.gatedResidual(tape, x, gateMlp!, this.mlp.forward(tape, F.adalnModulate(tape, x, shiftMlp!, scaleMlp!)));
  }
}

class FinalLayer extends Module {
  linear: Linear;
  adaLN_modulation: { 1: Linear };
  constructor(init: Init, c: DiTConfig, outChannels: number) {
    super();
    const C = c.hiddenSize;
    this.linear = new Linear(init, 'final_layer.linear', C, c.patchSize * c.patchSize * outChannels, { zero: true });
    this.adaLN_modulation = adaLN(init, 'final_layer', C, 2);
  }
  forward(tape: Tape, x: Var, c: Var): Var {
    const [shift, scale] = F.chunk(tape, this.adaLN_modulation[1].forward(tape, F.silu(tape, c)), 2) as [Var, Var];
    return this.linear.forward(tape, F.adalnModulate(tape, x, shift, scale));
  }
}

export interface DiTInputs {
  /** Latents [B, C, H, W]. */
  x: Var;
  /** Diffusion timesteps, f32 [B]. */
  t: Tensor;
  /** Class labels (numClasses = the null class). */
  y: readonly number[];
}

export class DiT extends Module {
  readonly config: DiTConfig;
  readonly outChannels: number;
  pos_embed: Buffer;
  x_embedder: { proj: Linear };
  t_embedder: TimestepEmbedder;
  y_embedder: { embedding_table: { weight: Param } };
  blocks: DiTBlock[];
  final_layer: FinalLayer;

  constructor(gpu: Gpu, config: Partial<DiTConfig> = {}, seed = 0) {
    super();
    const c = (this.config = { ...DIT_DEFAULTS, ...config });
    if (c.inputSize % c.patchSize) throw new ShapeError(`DiT: input size ${c.inputSize} is not divisible by the patch ${c.patchSize}`);
    const init = new Init(gpu, seed);
    const C = c.hiddenSize;
    const grid = c.inputSize / c.patchSize;
    this.outChannels = c.learnSigma ? 2 * c.inChannels : c.inChannels;
    this.pos_embed = new Buffer(posEmbed2d(gpu, C, grid, grid).reshape([1, grid * grid, C]), 'pos_embed');
    const proj = new Linear(init, 'x_embedder.proj', c.inChannels * c.patchSize ** 2, C);
    proj.weight = init.xavier('x_embedder.proj.weight', [C, c.inChannels, c.patchSize, c.patchSize]);
    this.x_embedder = { proj };
    this.t_embedder = new TimestepEmbedder(init, 't_embedder', C);
    const classes = c.numClasses + (c.classDropoutProb > 0 ? 1 : 0);
    this.y_embedder = { embedding_table: { weight: init.normal('y_embedder.embedding_table.weight', [classes, C], 0.02) } };
    this.blocks = Array.from({ length: c.depth }, (_, i) => new DiTBlock(init, `blocks.${i}`, c));
    this.final_layer = new FinalLayer(init, c, this.outChannels);
  }

  /** Noise prediction (and learned sigma) [B, out_channels, H, W]. */
  forward(tape: Tape, inp: DiTInputs): Var {
    const c = this.config;
    const [B, Cin, H, W] = inp.x.shape as [number, number, number, number];
    if (Cin !== c.inChannels || H !== c.inputSize || W !== c.inputSize) throw new ShapeError(`DiT: x ${inp.x} must be [B, ${c.inChannels}, ${c.inputSize}, ${c.inputSize}]`);
    const table = this.y_embedder.embedding_table.weight;
    const classes = table.shape[0]!;
    if (inp.y.length !== B || inp.y.some((l) => !Number.isInteger(l) || l < 0 || l >= classes)) {
      throw new ShapeError(`DiT: labels [${inp.y.join(', ')}] must be ${B} integers in 0..${classes - 1} (${c.numClasses} is the null class)`);
    }
    const p: [number, number, number] = [1, c.patchSize, c.patchSize];

    let x = this.x_embedder.proj.forward(tape, F.patchify(tape, F.reshape(tape, inp.x, [B, Cin, 1, H, W]), p));
    x = F.add(tape, x, this.pos_embed);
    const t = this.t_embedder.forward(tape, inp.t);
    const onehot = new Float32Array(B * classes);
    inp.y.forEach((l, b) => (onehot[b * classes + l] = 1));
    const y = F.matmul(tape, tape.result(tape.gpu.upload(onehot, [B, classes], 'f32', 'labels.onehot'), 'labels', false), table);
    const cond = F.add(tape, t, y);

    this.blocks.forEach((block, i) => {
      const run = (tp: Tape, xb: Var, cb: Var) => block.forward(tp, xb, cb);
      x = c.gradCheckpoint ? tape.checkpoint(`blocks.${i}`, run, [x, cond]) : tape.scope(() => run(tape, x, cond));
    });

    x = this.final_layer.forward(tape, x, cond);
    return F.reshape(tape, F.unpatchify(tape, x, [1, H, W], p), [B, this.outChannels, H, W]);
  }
}
