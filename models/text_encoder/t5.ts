// T5 v1.1 encoder (the text tower Open-Sora conditions STDiT on), on the CPU in plain JS: f32 weights,
// f64 activations. Read top-down like the model:
//   x = shared[ids]                                          (token embedding, no scaling)
//   per layer:  x += o(attn(RMS(x)))                         (self-attention, relative position bias)
//               x += wo(gelu_new(wi_0(RMS(x))) · wi_1(RMS(x)))  (gated-GELU feed-forward)
//   out = RMS(x)                                             (final norm)
// RMS(x) = w · x / sqrt(mean(x²) + eps): no mean subtraction, no bias. Attention scores are q·k with no
// 1/sqrt(d) scaling, plus a learned bias per head indexed by a bucket of the relative position (k − q):
// bidirectional, numBuckets 32 split between the two directions, exact up to 8 then logarithmic up to
// maxDistance 128. Only layer 0 owns the bias table; every layer reuses it. Padding positions are masked
// out of the keys only: every position (padding too) gets an output, as Hugging Face computes it.
// Weights use the Hugging Face key names (see t5TensorShapes); loading checks every name and shape.
import { toFloat64, type StFile, type StTensor } from '../../engine/safetensors.js';

export interface T5Config {
  vocabSize: number;
  dModel: number;
  /** Per-head width of q, k, v. */
  dKv: number;
  numHeads: number;
  /** Hidden width of the gated feed-forward. */
  dFf: number;
  numLayers: number;
  /** relative_attention_num_buckets (32). */
  numBuckets: number;
  /** relative_attention_max_distance (128). */
  maxDistance: number;
  /** layer_norm_epsilon (1e-6). */
  eps: number;
}

export interface T5LayerWeights {
  /** layer.0.layer_norm.weight [dModel] */
  attnNorm: Float32Array;
  /** SelfAttention.{q,k,v}.weight [numHeads·dKv, dModel] (torch Linear: out × in) */
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** SelfAttention.o.weight [dModel, numHeads·dKv] */
  o: Float32Array;
  /** layer.1.layer_norm.weight [dModel] */
  ffNorm: Float32Array;
  /** DenseReluDense.wi_0.weight (gated, through gelu_new) and wi_1.weight (linear) [dFf, dModel] */
  wi0: Float32Array;
  wi1: Float32Array;
  /** DenseReluDense.wo.weight [dModel, dFf] */
  wo: Float32Array;
}

export interface T5Weights {
  /** shared.weight [vocabSize, dModel] */
  shared: Float32Array;
  /** encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight [numBuckets, numHeads] */
  relativeBias: Float32Array;
  layers: T5LayerWeights[];
  /** encoder.final_layer_norm.weight [dModel] */
  finalNorm: Float32Array;
}

/** Hugging Face name → shape of every tensor a T5 v1.1 encoder has (and nothing else). */
export function t5TensorShapes(c: T5Config): Map<string, number[]> {
  const inner = c.numHeads * c.dKv;
  const m = new Map<string, number[]>();
  m.set('shared.weight', [c.vocabSize, c.dModel]);
  for (let i = 0; i < c.numLayers; i++) {
    const a = `encoder.block.${i}.layer.0.`;
    for (const p of ['q', 'k', 'v']) m.set(`${a}SelfAttention.${p}.weight`, [inner, c.dModel]);
    m.set(`${a}SelfAttention.o.weight`, [c.dModel, inner]);
    if (i === 0) m.set(`${a}SelfAttention.relative_attention_bias.weight`, [c.numBuckets, c.numHeads]);
    m.set(`${a}layer_norm.weight`, [c.dModel]);
    const f = `encoder.block.${i}.layer.1.`;
    m.set(`${f}DenseReluDense.wi_0.weight`, [c.dFf, c.dModel]);
    m.set(`${f}DenseReluDense.wi_1.weight`, [c.dFf, c.dModel]);
    m.set(`${f}DenseReluDense.wo.weight`, [c.dModel, c.dFf]);
    m.set(`${f}layer_norm.weight`, [c.dModel]);
  }
  m.set('encoder.final_layer_norm.weight', [c.dModel]);
  return m;
}

/**
 * T5's bidirectional relative-position bucket of `rel` = key position − query position: half the buckets
 * for rel > 0; within a half, |rel| < n/4 maps to itself, larger |rel| logarithmically up to maxDistance
 * (clamped to the last bucket). The log step runs in f32, as Hugging Face computes it (`.float()`).
 */
export function relativePositionBucket(rel: number, numBuckets: number, maxDistance: number): number {
  const half = numBuckets >> 1;
  let bucket = rel > 0 ? half : 0;
  const n = Math.abs(rel);
  const maxExact = half >> 1;
  if (n < maxExact) return bucket + n;
  const f = Math.fround;
  const scaled = f(f(f(Math.log(f(f(n) / maxExact))) / f(Math.log(maxDistance / maxExact))) * (half - maxExact));
  bucket += Math.min(maxExact + Math.trunc(scaled), half - 1);
  return bucket;
}

/** gelu_new: the tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluNew(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/**
 * out[r, o] = Σ_i x[r, i] · w[o, i] for r < rows (torch Linear, no bias). Blocks of four rows walk each
 * weight row once, with four accumulators, so both operands stream contiguously.
 */
export function linear(x: Float64Array, rows: number, din: number, w: Float32Array, dout: number): Float64Array {
  const out = new Float64Array(rows * dout);
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const x0 = r * din;
    const x1 = x0 + din;
    const x2 = x1 + din;
    const x3 = x2 + din;
    for (let o = 0; o < dout; o++) {
      const wo = o * din;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let i = 0; i < din; i++) {
        const wv = w[wo + i]!;
        s0 += x[x0 + i]! * wv;
        s1 += x[x1 + i]! * wv;
        s2 += x[x2 + i]! * wv;
        s3 += x[x3 + i]! * wv;
      }
      out[r * dout + o] = s0;
      out[(r + 1) * dout + o] = s1;
      out[(r + 2) * dout + o] = s2;
      out[(r + 3) * dout + o] = s3;
    }
  }
  for (; r < rows; r++) {
    const xo = r * din;
    for (let o = 0; o < dout; o++) {
      const wo = o * din;
      let s = 0;
      for (let i = 0; i < din; i++) s += x[xo + i]! * w[wo + i]!;
      out[r * dout + o] = s;
    }
  }
  return out;
}

/** T5 RMS norm of each row: w · x / sqrt(mean(x²) + eps). */
function rmsNorm(x: Float64Array, rows: number, d: number, w: Float32Array, eps: number): Float64Array {
  const out = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[r * d + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) out[r * d + i] = w[i]! * x[r * d + i]! * inv;
  }
  return out;
}

export class T5Encoder {
  readonly config: Readonly<T5Config>;
  readonly weights: T5Weights;
  private biasCache = new Map<number, Float64Array>();

  constructor(config: T5Config, weights: T5Weights) {
    validateConfig(config);
    const c = config;
    const inner = c.numHeads * c.dKv;
    const check = (what: string, a: Float32Array, n: number) => {
      if (!(a instanceof Float32Array) || a.length !== n) throw new Error(`T5Encoder: ${what} has ${a?.length} values, needs ${n} for this config`);
    };
    check('shared', weights.shared, c.vocabSize * c.dModel);
    check('relativeBias', weights.relativeBias, c.numBuckets * c.numHeads);
    check('finalNorm', weights.finalNorm, c.dModel);
    if (weights.layers.length !== c.numLayers) throw new Error(`T5Encoder: ${weights.layers.length} layers of weights for numLayers ${c.numLayers}`);
    weights.layers.forEach((l, i) => {
      check(`layers[${i}].attnNorm`, l.attnNorm, c.dModel);
      for (const p of ['q', 'k', 'v', 'o'] as const) check(`layers[${i}].${p}`, l[p], inner * c.dModel);
      check(`layers[${i}].ffNorm`, l.ffNorm, c.dModel);
      for (const p of ['wi0', 'wi1', 'wo'] as const) check(`layers[${i}].${p}`, l[p], c.dFf * c.dModel);
    });
    this.config = Object.freeze({ ...c });
    this.weights = weights;
  }

  /** Position bias [numHeads, L, L] (query i, key j) for sequences of length L. */
  positionBias(L: number): Float64Array {
    let b = this.biasCache.get(L);
    if (b) return b;
    const { numHeads: H, numBuckets, maxDistance } = this.config;
    b = new Float64Array(H * L * L);
    const table = this.weights.relativeBias;
    for (let i = 0; i < L; i++) {
      for (let j = 0; j < L; j++) {
        const bucket = relativePositionBucket(j - i, numBuckets, maxDistance);
        for (let h = 0; h < H; h++) b[(h * L + i) * L + j] = table[bucket * H + h]!;
      }
    }
    this.biasCache.set(L, b);
    return b;
  }

  /**
   * Last hidden state [batch, seqLen, dModel] (f64) of ids [batch, seqLen]. `mask` [batch, seqLen] (1 valid,
   * 0 padding; null: all valid) removes padding keys from attention; a sample with no valid key attends to
   * all keys (what a large negative additive mask amounts to).
   */
  forward(ids: ArrayLike<number>, mask: ArrayLike<number> | null, batch: number, seqLen: number): Float64Array {
    const c = this.config;
    const { dModel: D, dKv, numHeads: H, dFf, eps } = c;
    const inner = H * dKv;
    const L = seqLen;
    if (ids.length !== batch * L) throw new Error(`T5Encoder.forward: ${ids.length} ids for [batch ${batch}, seqLen ${L}] (needs ${batch * L})`);
    if (mask && mask.length !== batch * L) throw new Error(`T5Encoder.forward: mask has ${mask.length} values for [batch ${batch}, seqLen ${L}] (needs ${batch * L})`);
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= c.vocabSize) throw new Error(`T5Encoder.forward: token id ${t} at index ${i} is outside the vocabulary [0, ${c.vocabSize})`);
    }
    const bias = this.positionBias(L);
    const out = new Float64Array(batch * L * D);
    const scores = new Float64Array(L);
    const valid = new Uint8Array(L);
    for (let b = 0; b < batch; b++) {
      let anyValid = false;
      for (let j = 0; j < L; j++) {
        valid[j] = !mask || mask[b * L + j] ? 1 : 0;
        anyValid ||= valid[j] === 1;
      }
      if (!anyValid) valid.fill(1);
      // token embedding
      let x: Float64Array = new Float64Array(L * D);
      for (let i = 0; i < L; i++) {
        const row = ids[b * L + i]! * D;
        for (let d = 0; d < D; d++) x[i * D + d] = this.weights.shared[row + d]!;
      }
      for (const lw of this.weights.layers) {
        // self-attention
        const h = rmsNorm(x, L, D, lw.attnNorm, eps);
        const q = linear(h, L, D, lw.q, inner);
        const k = linear(h, L, D, lw.k, inner);
        const v = linear(h, L, D, lw.v, inner);
        const ctx = new Float64Array(L * inner);
        for (let hd = 0; hd < H; hd++) {
          const off = hd * dKv;
          for (let i = 0; i < L; i++) {
            let max = -Infinity;
            for (let j = 0; j < L; j++) {
              if (!valid[j]) continue;
              let s = bias[(hd * L + i) * L + j]!;
              for (let d = 0; d < dKv; d++) s += q[i * inner + off + d]! * k[j * inner + off + d]!;
              scores[j] = s;
              if (s > max) max = s;
            }
            let sum = 0;
            for (let j = 0; j < L; j++) {
              if (!valid[j]) continue;
              scores[j] = Math.exp(scores[j]! - max);
              sum += scores[j]!;
            }
            for (let j = 0; j < L; j++) {
              if (!valid[j]) continue;
              const p = scores[j]! / sum;
              for (let d = 0; d < dKv; d++) ctx[i * inner + off + d]! += p * v[j * inner + off + d]!;
            }
          }
        }
        const att = linear(ctx, L, inner, lw.o, D);
        for (let i = 0; i < x.length; i++) x[i]! += att[i]!;
        // gated-GELU feed-forward
        const g = rmsNorm(x, L, D, lw.ffNorm, eps);
        const a = linear(g, L, D, lw.wi0, dFf);
        const lin = linear(g, L, D, lw.wi1, dFf);
        for (let i = 0; i < a.length; i++) a[i] = geluNew(a[i]!) * lin[i]!;
        const ff = linear(a, L, dFf, lw.wo, D);
        for (let i = 0; i < x.length; i++) x[i]! += ff[i]!;
      }
      x = rmsNorm(x, L, D, this.weights.finalNorm, eps);
      out.set(x, b * L * D);
    }
    return out;
  }
}

function validateConfig(c: T5Config): void {
  for (const key of ['vocabSize', 'dModel', 'dKv', 'numHeads', 'dFf', 'numLayers', 'numBuckets', 'maxDistance'] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new Error(`T5 config: ${key} ${c[key]} must be a positive integer`);
  }
  if (c.numBuckets < 4 || c.numBuckets % 4 !== 0) throw new Error(`T5 config: numBuckets ${c.numBuckets} must be a multiple of 4 (bidirectional halves, exact quarter); T5 uses 32`);
  if (!(c.eps > 0)) throw new Error(`T5 config: eps ${c.eps} must be positive (T5 uses 1e-6)`);
}

// ---- fixed random weights ------------------------------------------------------------------------------

/** Seeded standard normals (mulberry32 + Box–Muller): the same seed gives the same weights everywhere. */
export function seededNormals(seed: number): (n: number, std: number) => Float32Array {
  let state = seed >>> 0;
  const next = () => {
    let t = (state = (state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n, std) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next());
    return out;
  };
}

/**
 * A T5 encoder with fixed random weights from `seed`, scaled like T5's initialisation so activations stay
 * O(1): embeddings N(0, 1), q N(0, 1/(dModel·dKv)) (so unscaled q·k scores are O(1)), k, v, wi_0, wi_1
 * N(0, 1/dModel), o N(0, 1/(heads·dKv)), wo N(0, 1/dFf), relative bias N(0, 1/dModel), norms 1.
 */
export function randomT5(config: T5Config, seed: number): T5Encoder {
  validateConfig(config);
  const c = config;
  const normal = seededNormals(seed);
  const inner = c.numHeads * c.dKv;
  const ones = (n: number) => new Float32Array(n).fill(1);
  const shared = normal(c.vocabSize * c.dModel, 1);
  const relativeBias = normal(c.numBuckets * c.numHeads, c.dModel ** -0.5);
  const layers: T5LayerWeights[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    layers.push({
      attnNorm: ones(c.dModel),
      q: normal(inner * c.dModel, (c.dModel * c.dKv) ** -0.5),
      k: normal(inner * c.dModel, c.dModel ** -0.5),
      v: normal(inner * c.dModel, c.dModel ** -0.5),
      o: normal(c.dModel * inner, inner ** -0.5),
      ffNorm: ones(c.dModel),
      wi0: normal(c.dFf * c.dModel, c.dModel ** -0.5),
      wi1: normal(c.dFf * c.dModel, c.dModel ** -0.5),
      wo: normal(c.dModel * c.dFf, c.dFf ** -0.5),
    });
  }
  return new T5Encoder(c, { shared, relativeBias, layers, finalNorm: ones(c.dModel) });
}

// ---- loading Hugging Face weights ------------------------------------------------------------------------

export interface LoadT5WeightsOptions {
  /** Only tensors whose names start with this are read, with it removed (e.g. 'param.' for test fixtures). */
  prefix?: string;
  /** Names (after the prefix) that are not T5-encoder tensors but may be present; default: decoder.* and lm_head.* of a full T5ForConditionalGeneration checkpoint. */
  ignore?: RegExp;
  /** Config values that take priority over the `config` metadata and the shapes (e.g. maxDistance, eps when neither has them). */
  config?: Partial<T5Config>;
}

const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);
const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Builds a T5 encoder from safetensors (one file, or the shards of one checkpoint) with Hugging Face key
 * names. The config comes from opts.config, else the `config` JSON (Hugging Face T5Config) in the header
 * metadata, else the tensor shapes (heads from the bias table; max distance 128 and eps 1e-6 by default).
 * Any missing, unexpected or mis-shaped tensor is an error that names it.
 */
export function loadT5Weights(files: StFile | readonly StFile[], opts: LoadT5WeightsOptions = {}): T5Encoder {
  const list = Array.isArray(files) ? (files as readonly StFile[]) : [files as StFile];
  const prefix = opts.prefix ?? '';
  const ignore = opts.ignore ?? /^(decoder\.|lm_head\.)/;
  const tensors = new Map<string, StTensor>();
  let meta: Record<string, unknown> = {};
  for (const f of list) {
    for (const [name, t] of f.tensors) {
      if (!name.startsWith(prefix)) continue;
      const key = name.slice(prefix.length);
      if (tensors.has(key)) throw new Error(`loadT5: tensor "${name}" appears in more than one file`);
      tensors.set(key, t);
    }
    if (f.metadata?.config) {
      try {
        meta = { ...meta, ...(JSON.parse(f.metadata.config) as Record<string, unknown>) };
      } catch (e) {
        throw new Error(`loadT5: the "config" metadata is not valid JSON (${(e as Error).message})`);
      }
    }
  }
  // Tied embedding: T5 checkpoints may carry encoder.embed_tokens.weight beside (or instead of) shared.weight.
  const tied = tensors.get('encoder.embed_tokens.weight');
  if (tied) {
    if (!tensors.has('shared.weight')) tensors.set('shared.weight', tied);
    tensors.delete('encoder.embed_tokens.weight');
  }
  if (meta.feed_forward_proj !== undefined && !String(meta.feed_forward_proj).startsWith('gated-')) {
    throw new Error(`loadT5: feed_forward_proj "${String(meta.feed_forward_proj)}" in the config metadata; only T5 v1.1 gated-GELU encoders are supported (wi_0, wi_1, wo)`);
  }
  if (tensors.has('encoder.block.0.layer.1.DenseReluDense.wi.weight')) {
    throw new Error(`loadT5: ${prefix}encoder.block.0.layer.1.DenseReluDense.wi.weight is a T5 v1.0 (ReLU, one input projection) tensor; only T5 v1.1 gated-GELU encoders (wi_0, wi_1) are supported`);
  }

  // Config: shapes first, metadata and options as fallbacks / cross-checks.
  const num = (k: string): number | undefined => (typeof meta[k] === 'number' ? (meta[k] as number) : undefined);
  const shapeOf = (k: string) => tensors.get(k)?.shape;
  const missingFor = (k: string, why: string) => new Error(`loadT5: missing tensor "${prefix}${k}" (needed for ${why}); is this a Hugging Face T5 encoder checkpoint${prefix ? ` with names under "${prefix}"` : ''}?`);
  const layerIdx = new Set<number>();
  for (const k of tensors.keys()) {
    const m = /^encoder\.block\.(\d+)\./.exec(k);
    if (m) layerIdx.add(Number(m[1]));
  }
  const emb = shapeOf('shared.weight');
  const relB = shapeOf('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight');
  const qS = shapeOf('encoder.block.0.layer.0.SelfAttention.q.weight');
  const wiS = shapeOf('encoder.block.0.layer.1.DenseReluDense.wi_0.weight');
  const o = opts.config ?? {};
  // Priority: opts.config, then the config metadata, then shapes (so one mis-shaped tensor is named alone).
  const fin = shapeOf('encoder.final_layer_norm.weight');
  const numHeads = o.numHeads ?? num('num_heads') ?? (relB?.length === 2 ? relB[1] : undefined);
  if (numHeads === undefined) throw missingFor('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 'the number of heads');
  const vocabSize = o.vocabSize ?? num('vocab_size') ?? emb?.[0];
  if (vocabSize === undefined) throw missingFor('shared.weight', 'the vocabulary size');
  const dModel = o.dModel ?? num('d_model') ?? (fin?.length === 1 ? fin[0] : undefined) ?? emb?.[1];
  if (dModel === undefined) throw missingFor('encoder.final_layer_norm.weight', 'd_model');
  const inner = qS?.[0];
  const dKv = o.dKv ?? num('d_kv') ?? (inner !== undefined && inner % numHeads === 0 ? inner / numHeads : undefined);
  if (dKv === undefined) throw missingFor('encoder.block.0.layer.0.SelfAttention.q.weight', 'd_kv');
  const dFf = o.dFf ?? num('d_ff') ?? wiS?.[0];
  if (dFf === undefined) throw missingFor('encoder.block.0.layer.1.DenseReluDense.wi_0.weight', 'd_ff');
  const numLayers = o.numLayers ?? num('num_layers') ?? (layerIdx.size ? Math.max(...layerIdx) + 1 : 0);
  if (numLayers === 0) throw missingFor('encoder.block.0.layer.0.SelfAttention.q.weight', 'the number of layers');
  const config: T5Config = {
    vocabSize,
    dModel,
    dKv,
    numHeads,
    dFf,
    numLayers,
    numBuckets: o.numBuckets ?? num('relative_attention_num_buckets') ?? relB?.[0] ?? 32,
    maxDistance: o.maxDistance ?? num('relative_attention_max_distance') ?? 128,
    eps: o.eps ?? num('layer_norm_epsilon') ?? 1e-6,
  };
  validateConfig(config);
  const expected = t5TensorShapes(config);
  const problems: string[] = [];
  for (const [k, shape] of expected) {
    const t = tensors.get(k);
    if (!t) problems.push(`missing tensor "${prefix}${k}" ${shapeStr(shape)}`);
    else if (t.shape.length !== shape.length || t.shape.some((v, i) => v !== shape[i])) problems.push(`tensor "${prefix}${k}" has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`);
    else if (!FLOAT_DTYPES.has(t.dtype)) problems.push(`tensor "${prefix}${k}" has dtype ${t.dtype}, expected a float type (F32, F16, BF16, F64)`);
  }
  for (const k of tensors.keys()) {
    if (!expected.has(k) && !ignore.test(k)) problems.push(`unexpected tensor "${prefix}${k}" ${shapeStr(tensors.get(k)!.shape)} (not part of a ${config.numLayers}-layer T5 v1.1 encoder)`);
  }
  if (problems.length) {
    const shown = problems.slice(0, 12).join('; ');
    throw new Error(`loadT5: ${problems.length} problem(s) with the checkpoint: ${shown}${problems.length > 12 ? `; … ${problems.length - 12} more` : ''}`);
  }
  const get = (k: string) => Float32Array.from(toFloat64(tensors.get(k)!));
  const layers: T5LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const a = `encoder.block.${i}.layer.0.`;
    const f = `encoder.block.${i}.layer.1.`;
    layers.push({
      attnNorm: get(`${a}layer_norm.weight`),
      q: get(`${a}SelfAttention.q.weight`),
      k: get(`${a}SelfAttention.k.weight`),
      v: get(`${a}SelfAttention.v.weight`),
      o: get(`${a}SelfAttention.o.weight`),
      ffNorm: get(`${f}layer_norm.weight`),
      wi0: get(`${f}DenseReluDense.wi_0.weight`),
      wi1: get(`${f}DenseReluDense.wi_1.weight`),
      wo: get(`${f}DenseReluDense.wo.weight`),
    });
  }
  return new T5Encoder(config, {
    shared: get('shared.weight'),
    relativeBias: get('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'),
    layers,
    finalNorm: get('encoder.final_layer_norm.weight'),
  });
}
