// Text encoders: captions → per-token embeddings + mask, the caption input of STDiT.
// STDiT (Open-Sora) takes y [B, 1, L, C] (L = model_max_length tokens of C = caption_channels each) and a
// mask [B, L]; it drops the padding tokens and cross-attends each sample to its first lengths[b] tokens.
// TextEncoding.emb is laid out [B, L, C], which is y's memory as-is (the 1 is a singleton axis):
//   gpu.upload(enc.emb, [B, 1, L, C]) and gpu.upload(Int32Array.from(enc.lengths), [B], 'i32') (kvLen).
// The unconditional (null) caption for caption dropout and classifier-free guidance is not the encoder's:
// in Open-Sora it is STDiT's learned y_embedder.y_embedding [L, C]; an encoder may offer one of its own.
import type { StFile } from '../../engine/safetensors.js';
import { linear, loadT5Weights, randomT5, type LoadT5WeightsOptions, type T5Config, type T5Encoder, seededNormals } from './t5.js';
import { HashTokenizer, type Tokenized } from './tokenizer.js';

export { T5Encoder, loadT5Weights, randomT5, relativePositionBucket, t5TensorShapes, geluNew, type T5Config, type T5Weights, type T5LayerWeights, type LoadT5WeightsOptions } from './t5.js';
export { MemoTextEncoder } from './memo.js';
export { HashTokenizer, PAD_ID, EOS_ID, UNK_ID, RESERVED_IDS, fnv1a32, type Tokenized, type TokenizerOptions } from './tokenizer.js';

export interface TextEncoding {
  /** [batch, maxLength, captionChannels] token embeddings (padding positions too); STDiT's y as [B, 1, L, C]. */
  emb: Float32Array;
  /** [batch, maxLength]: 1 valid token, 0 padding; valid tokens are a prefix of each row. */
  mask: Int32Array;
  /** Valid tokens per caption (the mask's row sums), ≥ 1. */
  lengths: number[];
  batch: number;
  maxLength: number;
  captionChannels: number;
}

export interface TextEncoder {
  /** C: channels per token (Open-Sora: 4096 from T5 v1.1 XXL). */
  readonly captionChannels: number;
  /** L: tokens per caption after padding/truncation (Open-Sora: 120). */
  readonly maxLength: number;
  /** Deterministic: the same captions give the same embeddings, bit for bit. */
  encode(captions: readonly string[]): TextEncoding;
  /** An encoder-owned unconditional embedding for `batch` samples, if it has one (Open-Sora's lives in STDiT). */
  nullEmbedding?(batch: number): TextEncoding;
}

/** Tokenizer contract the T5 text encoder needs (the hash tokenizer now; SentencePiece with real T5). */
export interface CaptionTokenizer {
  readonly maxLength: number;
  encode(captions: readonly string[]): Tokenized;
}

/**
 * A T5 encoder behind the TextEncoder interface: tokenize, run the encoder over all maxLength positions
 * (padding keys masked), and optionally project d_model → captionChannels with a fixed matrix (not part of
 * T5; lets a small default encoder feed a model built for wider captions).
 */
export class T5TextEncoder implements TextEncoder {
  readonly captionChannels: number;
  readonly maxLength: number;

  constructor(
    readonly model: T5Encoder,
    readonly tokenizer: CaptionTokenizer,
    /** [captionChannels, dModel] row-major, or null for captionChannels = dModel. */
    readonly projection: Float32Array | null = null,
  ) {
    const D = model.config.dModel;
    if (projection && projection.length % D !== 0) throw new Error(`T5TextEncoder: projection has ${projection.length} values, not a multiple of d_model ${D}`);
    this.captionChannels = projection ? projection.length / D : D;
    this.maxLength = tokenizer.maxLength;
  }

  encode(captions: readonly string[]): TextEncoding {
    const tok = this.tokenizer.encode(captions);
    const { batch, maxLength: L } = tok;
    const h = this.model.forward(tok.ids, tok.mask, batch, L);
    const D = this.model.config.dModel;
    const C = this.captionChannels;
    const emb = Float32Array.from(this.projection ? linear(h, batch * L, D, this.projection, C) : h);
    return { emb, mask: tok.mask, lengths: tok.lengths, batch, maxLength: L, captionChannels: C };
  }
}

export interface DefaultTextEncoderOptions {
  /** Weight seed (default 0): the same seed gives the same encoder everywhere. */
  seed?: number;
  /** Encoder width (default: captionChannels when ≤ 256, else 64 with a fixed projection to captionChannels). */
  dModel?: number;
  numHeads?: number;
  dKv?: number;
  dFf?: number;
  numLayers?: number;
  vocabSize?: number;
  /** Output channels per token (STDiT caption_channels). */
  captionChannels: number;
  /** Tokens per caption (STDiT model_max_length). */
  maxLength: number;
}

/**
 * A small T5 v1.1 encoder with fixed random weights from `seed` and the hash tokenizer: different captions
 * give clearly different embeddings (per-token RMS ≈ 1), the same caption the same embedding. Defaults:
 * 2 layers, 4 heads, dKv dModel/4, dFf 2·dModel, vocab 8192. A stand-in until real T5-XXL weights load.
 */
export function createDefaultTextEncoder(opts: DefaultTextEncoderOptions): T5TextEncoder {
  const { captionChannels: C, maxLength } = opts;
  if (!Number.isInteger(C) || C < 1) throw new Error(`createDefaultTextEncoder: captionChannels ${C} must be a positive integer`);
  const seed = opts.seed ?? 0;
  const dModel = opts.dModel ?? (C <= 256 ? C : 64);
  const numHeads = opts.numHeads ?? (dModel % 4 === 0 ? 4 : 1);
  const config: T5Config = {
    vocabSize: opts.vocabSize ?? 8192,
    dModel,
    numHeads,
    dKv: opts.dKv ?? Math.max(1, Math.floor(dModel / numHeads)),
    dFf: opts.dFf ?? 2 * dModel,
    numLayers: opts.numLayers ?? 2,
    numBuckets: 32,
    maxDistance: 128,
    eps: 1e-6,
  };
  const model = randomT5(config, seed);
  const tokenizer = new HashTokenizer({ vocabSize: config.vocabSize, maxLength });
  // Projection N(0, 1/dModel): unit-RMS tokens stay unit-RMS. Its own seeded stream keeps T5's weights independent of C.
  const projection = C === dModel ? null : seededNormals((seed + 0x9e3779b9) >>> 0)(C * dModel, dModel ** -0.5);
  return new T5TextEncoder(model, tokenizer, projection);
}

export interface LoadT5Options extends LoadT5WeightsOptions {
  /** Tokens per caption (default 120, as Open-Sora). */
  maxLength?: number;
  /** Tokenizer (default: the hash tokenizer over the checkpoint's vocabulary; real T5 needs its SentencePiece). */
  tokenizer?: CaptionTokenizer;
}

/** A T5 text encoder from safetensors with Hugging Face names (see loadT5Weights for the checks). */
export function loadT5(files: StFile | readonly StFile[], opts: LoadT5Options = {}): T5TextEncoder {
  const model = loadT5Weights(files, opts);
  const tokenizer = opts.tokenizer ?? new HashTokenizer({ vocabSize: model.config.vocabSize, maxLength: opts.maxLength ?? 120 });
  if (opts.tokenizer && opts.maxLength !== undefined && opts.tokenizer.maxLength !== opts.maxLength) {
    throw new Error(`loadT5: maxLength ${opts.maxLength} differs from the tokenizer's ${opts.tokenizer.maxLength}; pass one of them`);
  }
  return new T5TextEncoder(model, tokenizer);
}
