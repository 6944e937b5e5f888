// Building blocks shared by DiT and STDiT, named and initialised as in the upstream PyTorch code
// (timm's Mlp and Attention, DiT's TimestepEmbedder, Open-Sora's cross-attention), so that parameter names
// equal upstream's state_dict keys: a module's fields are its children, in upstream order.
import { Param, type Tape, type Var } from '../engine/autograd.js';
import * as F from '../engine/functional.js';
import type { Gpu } from '../engine/gpu.js';
import { timestepEmbedding } from '../engine/ops/embedding.js';
import { numel, type Tensor } from '../engine/tensor.js';
import { rand, randn } from '../engine/ops/random.js';
import { ShapeError } from '../engine/errors.js';

/**
 * Seeded initialiser: draws on the GPU from the engine's counter-based stream (engine/ops/random.ts), each
 * parameter taking the next elements of the seed's stream, so a model's initial weights depend only on the
 * seed and the declaration order. (Drawing STDiT-XL's 760 M values on the CPU took ~100 s.)
 */
export class Init {
  /** Elements of the (seed) stream used so far. */
  private offset = 0;
  constructor(
    readonly gpu: Gpu,
    readonly seed = 0,
  ) {}
  private draw(name: string, shape: number[], kind: 'uniform' | 'normal', scale: number, shift: number): Param {
    const opts = { seed: this.seed, offset: this.offset, scale, shift, out: this.gpu.tensor(shape, 'f32', name) };
    this.offset += numel(shape);
    return new Param(kind === 'uniform' ? rand(this.gpu, shape, opts) : randn(this.gpu, shape, opts), name);
  }
  buffer(name: string, t: Tensor): Buffer {
    return new Buffer(t, name);
  }
  zeros(name: string, shape: number[]): Param {
    const t = this.gpu.tensor(shape, 'f32', name);
    this.gpu.fill(t, 0);
    return new Param(t, name);
  }
  normal(name: string, shape: number[], std: number): Param {
    return this.draw(name, shape, 'normal', std, 0);
  }
  /** xavier_uniform_ on the weight viewed as [out, in·…] (torch's fan for Linear and for flattened convs). */
  xavier(name: string, shape: number[]): Param {
    const fanOut = shape[0]!;
    const fanIn = numel(shape) / fanOut;
    const a = Math.sqrt(6 / (fanIn + fanOut));
    return this.draw(name, shape, 'uniform', 2 * a, -a);
  }
}

/** A non-trainable tensor of the state dict (upstream register_buffer: position embeddings, null captions). */
export class Buffer extends Param {
  constructor(value: Tensor, name: string) {
    super(value, name, false);
  }
}

/** A module: Param fields are its parameters, Module fields (and arrays / records of them) its children. */
export abstract class Module {
  /** Parameters by upstream name (e.g. "blocks.0.attn.qkv.weight"), in declaration order. */
  namedParams(prefix = ''): Map<string, Param> {
    const out = new Map<string, Param>();
    const visit = (value: unknown, name: string) => {
      if (value instanceof Param) out.set(name, value);
      else if (value instanceof Module) for (const [k, p] of value.namedParams(`${name}.`)) out.set(k, p);
      else if (Array.isArray(value)) value.forEach((v, i) => visit(v, `${name}.${i}`));
      else if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
        for (const [k, v] of Object.entries(value)) visit(v, `${name}.${k}`);
      }
    };
    for (const [k, v] of Object.entries(this)) visit(v, `${prefix}${k}`);
    return out;
  }

  /** Makes (or refreshes) f16 copies of every parameter and buffer, for an f16 (mixed-precision) forward. */
  useHalf(): void {
    for (const p of this.namedParams().values()) p.refreshHalf(p.value.gpu);
  }
}

export class Linear extends Module {
  weight: Param;
  bias?: Param;
  constructor(init: Init, name: string, inFeatures: number, outFeatures: number, opts: { bias?: boolean; std?: number; zero?: boolean } = {}) {
    super();
    const shape = [outFeatures, inFeatures];
    this.weight = opts.zero ? init.zeros(`${name}.weight`, shape) : opts.std ? init.normal(`${name}.weight`, shape, opts.std) : init.xavier(`${name}.weight`, shape);
    if (opts.bias !== false) this.bias = init.zeros(`${name}.bias`, [outFeatures]);
  }
  forward(tape: Tape, x: Var): Var {
    return F.linear(tape, x, this.weight, this.bias);
  }
}

/** timm Mlp: fc1 → GELU (tanh approximation) → fc2. */
export class Mlp extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(init: Init, name: string, inFeatures: number, hidden: number, outFeatures = inFeatures, std?: number) {
    super();
    this.fc1 = new Linear(init, `${name}.fc1`, inFeatures, hidden, { std });
    this.fc2 = new Linear(init, `${name}.fc2`, hidden, outFeatures, { std });
  }
  forward(tape: Tape, x: Var): Var {
    return this.fc2.forward(tape, F.gelu(tape, this.fc1.forward(tape, x)));
  }
}

/** [B, N, C] → [B, H, N, D] per head (a copy). */
function heads(tape: Tape, x: Var, H: number): Var {
  const [B, N, C] = x.shape as [number, number, number];
  return F.permute(tape, F.reshape(tape, x, [B, N, H, C / H]), [0, 2, 1, 3]);
}

/** [B, H, N, D] → [B, N, H·D]. */
function merge(tape: Tape, o: Var): Var {
  const [B, H, N, D] = o.shape as [number, number, number, number];
  return F.reshape(tape, F.permute(tape, o, [0, 2, 1, 3]), [B, N, H * D]);
}

/** Multi-head self-attention (timm / Open-Sora Attention with qkv bias), on x [B, N, C]. */
export class Attention extends Module {
  qkv: Linear;
  proj: Linear;
  constructor(
    init: Init,
    name: string,
    dim: number,
    readonly numHeads: number,
  ) {
    super();
    if (dim % numHeads !== 0) throw new ShapeError(`${name}: hidden size ${dim} is not divisible by ${numHeads} heads`);
    this.qkv = new Linear(init, `${name}.qkv`, dim, 3 * dim);
    this.proj = new Linear(init, `${name}.proj`, dim, dim);
  }
  forward(tape: Tape, x: Var): Var {
    const [B, N, C] = x.shape as [number, number, number];
    const H = this.numHeads;
    const qkv = F.reshape(tape, this.qkv.forward(tape, x), [B, N, 3, H, C / H]);
    const [q, k, v] = F.split(tape, F.permute(tape, qkv, [2, 0, 3, 1, 4]), 3) as [Var, Var, Var];
    return this.proj.forward(tape, merge(tape, F.attention(tape, q, k, v)));
  }
}

/** Open-Sora MultiHeadCrossAttention: queries from x [B, N, C], keys/values from cond [B, L, C], masked to kvLen[b]. */
export class CrossAttention extends Module {
  q_linear: Linear;
  kv_linear: Linear;
  proj: Linear;
  constructor(
    init: Init,
    name: string,
    dim: number,
    readonly numHeads: number,
  ) {
    super();
    this.q_linear = new Linear(init, `${name}.q_linear`, dim, dim);
    this.kv_linear = new Linear(init, `${name}.kv_linear`, dim, 2 * dim);
    this.proj = new Linear(init, `${name}.proj`, dim, dim, { zero: true });
  }
  forward(tape: Tape, x: Var, cond: Var, kvLen: Tensor): Var {
    const [B, L, C] = cond.shape as [number, number, number];
    const H = this.numHeads;
    const q = heads(tape, this.q_linear.forward(tape, x), H);
    const kv = F.reshape(tape, this.kv_linear.forward(tape, cond), [B, L, 2, H, C / H]);
    const [k, v] = F.split(tape, F.permute(tape, kv, [2, 0, 3, 1, 4]), 2) as [Var, Var];
    return this.proj.forward(tape, merge(tape, F.attention(tape, q, k, v, kvLen)));
  }
}

/** DiT TimestepEmbedder: sinusoidal features of t (256) → Linear → SiLU → Linear; fields named mlp.0, mlp.2. */
export class TimestepEmbedder extends Module {
  mlp: { 0: Linear; 2: Linear };
  constructor(
    init: Init,
    name: string,
    hidden: number,
    readonly frequencySize = 256,
  ) {
    super();
    this.mlp = {
      0: new Linear(init, `${name}.mlp.0`, frequencySize, hidden, { std: 0.02 }),
      2: new Linear(init, `${name}.mlp.2`, hidden, hidden, { std: 0.02 }),
    };
  }
  /** t: f32 [B] timesteps (may be fractional). */
  forward(tape: Tape, t: Tensor): Var {
    const freq = tape.result(timestepEmbedding(tape.gpu, t, this.frequencySize), 't_freq', false);
    return this.mlp[2].forward(tape, F.silu(tape, this.mlp[0].forward(tape, freq)));
  }
}
