// Sinusoidal embeddings of DiT / OpenSora STDiT, computed on the GPU:
//   timestepEmbedding: TimestepEmbedder.timestep_embedding: t [B] → [B, dim] = [cos(t·f), sin(t·f)] with
//     f_i = exp(−ln(maxPeriod)·i/half), half = ⌊dim/2⌋, and a zero column when dim is odd
//   posEmbed2d: get_2d_sincos_pos_embed: [H·W, D] for grid token n = h·W + w; dims [0, D/2) embed the column
//     coordinate (grid[0], numpy meshgrid puts w first) and [D/2, D) the row coordinate, each with the 1-D
//     embedding of D/2 dims; OpenSora's options: coordinate = index / scale · (baseSize / size)
//   posEmbed1d: get_1d_sincos_pos_embed: [L, D] for positions l / scale
// 1-D embedding of dim E at position p: [sin(p·ω), cos(p·ω)], ω_i = 10000^(−i/(E/2)), i < E/2.
// Frequencies (and positions) are made in f64 on the host and passed as f32 (hi, lo) pairs, so the kernel
// can reduce the phase accurately (see shaders/embedding.wgsl): results are within ~1e-6 of the f64
// formulas for phases below 6400 (timesteps up to 1000 included), unlike a plain f32 evaluation.
import embeddingWgsl from '../../shaders/embedding.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, expectRank, grid, output, words } from './common.js';

const SHADER = { name: 'embedding', template: embeddingWgsl + f16Wgsl };

export interface EmbeddingOptions {
  /** Output dtype (default f32). */
  dtype?: 'f32' | 'f16';
  out?: Tensor;
}

export interface TimestepOptions extends EmbeddingOptions {
  /** Controls the lowest frequency (default 10000). */
  maxPeriod?: number;
}

export interface PosEmbedOptions extends EmbeddingOptions {
  /** Positions are divided by scale (OpenSora's space_scale / time_scale; default 1). */
  scale?: number;
  /** 2-D only: positions are multiplied by baseSize / size along each axis (OpenSora's base_size). */
  baseSize?: number;
}

/** x as (hi, lo) f32s with hi + lo ≈ x to ~2^-48 relative. */
const split = (x: number): [number, number] => {
  const hi = Math.fround(x);
  return [hi, Math.fround(x - hi)];
};

/** x truncated to its top `bits` significant bits. */
const truncBits = (x: number, bits: number): number => {
  const q = 2 ** (Math.floor(Math.log2(Math.abs(x))) - bits + 1);
  return Math.trunc(x / q) * q;
};

// π/2 = C1 + C2 + C3, C1 and C2 of 12 significant bits.
const C1 = truncBits(Math.PI / 2, 12);
const C2 = truncBits(Math.PI / 2 - C1, 12);
const C3 = Math.fround(Math.PI / 2 - C1 - C2);

// Frequency tables, made once per device and (half, period).
const freqCache = new WeakMap<Gpu, Map<string, Tensor>>();
function freqTable(gpu: Gpu, half: number, period: number): Tensor {
  let cache = freqCache.get(gpu);
  if (!cache) freqCache.set(gpu, (cache = new Map()));
  const key = `${half}|${period}`;
  let t = cache.get(key);
  if (!t || t.released) {
    const data = new Float32Array(2 * Math.max(1, half));
    for (let i = 0; i < half; i++) data.set(split(Math.exp((-Math.log(period) * i) / half)), 2 * i);
    t = gpu.upload(data, [Math.max(1, half), 2], 'f32', `embedding.freq${half}`);
    cache.set(key, t);
  }
  return t;
}

interface Layout {
  rows: number;
  dim: number;
  half: number;
  seg: number;
  width: number;
  cosFirst: boolean;
}

function run(gpu: Gpu, op: string, pos: Tensor, pairs: boolean, l: Layout, period: number, opts: EmbeddingOptions): Tensor {
  const dtype = opts.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new ShapeError(`${op}: dtype ${dtype as string} is not supported; use 'f32' or 'f16'`);
  const y = output(gpu, op, [l.rows, l.dim], dtype, opts.out);
  const total = l.rows * l.dim;
  if (total === 0) return y;
  const n = words(total, dtype);
  const kernel = gpu.kernel(SHADER, 'main', { WORD: dtype === 'f16' ? 'u32' : 'f32', F16: dtype === 'f16', PAIRS: pairs });
  const { workgroups, groupsX } = grid(gpu, n, 256);
  const params = [l.rows, l.dim, l.half, l.seg, l.width, l.cosFirst ? 1 : 0, total, n, groupsX, { f32: C1 }, { f32: C2 }, { f32: C3 }, { f32: 2 / Math.PI }];
  gpu.dispatch(kernel, [pos, freqTable(gpu, l.half, period), y], params, workgroups);
  return y;
}

function checkDim(op: string, dim: number, multiple: number) {
  if (!Number.isInteger(dim) || dim < 1 || dim % multiple !== 0) {
    throw new ShapeError(`${op}: embedding dim ${dim} must be a positive integer${multiple > 1 ? ` divisible by ${multiple}` : ''}`);
  }
}

function checkScale(op: string, opts: PosEmbedOptions) {
  const { scale = 1, baseSize } = opts;
  if (!(scale > 0) || !Number.isFinite(scale)) throw new ShapeError(`${op}: scale ${scale} must be a positive number`);
  if (baseSize !== undefined && !(baseSize > 0)) throw new ShapeError(`${op}: baseSize ${baseSize} must be a positive number (or left out)`);
}

/** DiT's timestep embedding of t [B] (f32, may be fractional): [B, dim] = [cos(t·f), sin(t·f)] (+ a zero column if dim is odd). */
export function timestepEmbedding(gpu: Gpu, t: Tensor, dim: number, opts: TimestepOptions = {}): Tensor {
  const op = 'timestepEmbedding';
  expectLive(op, t);
  expectDType(op, t, ['f32']);
  expectRank(op, t, 1);
  checkDim(op, dim, 1);
  const period = opts.maxPeriod ?? 10000;
  if (!(period > 1)) throw new ShapeError(`${op}: maxPeriod ${period} must be greater than 1`);
  const rows = t.shape[0]!;
  return run(gpu, op, t, false, { rows, dim, half: Math.floor(dim / 2), seg: dim, width: Math.max(1, rows), cosFirst: true }, period, opts);
}

/** Uploads positions as (hi, lo) pairs, runs the kernel, releases them. */
function withPositions(gpu: Gpu, positions: number[], f: (pos: Tensor) => Tensor): Tensor {
  const data = new Float32Array(2 * positions.length);
  positions.forEach((v, i) => data.set(split(v), 2 * i));
  const pos = gpu.upload(data, [data.length], 'f32', 'embedding.positions');
  const y = f(pos);
  pos.release();
  return y;
}

/** get_2d_sincos_pos_embed (DiT; OpenSora's scale / baseSize options): [gridH·gridW, dim], dim divisible by 4. */
export function posEmbed2d(gpu: Gpu, dim: number, gridH: number, gridW: number, opts: PosEmbedOptions = {}): Tensor {
  const op = 'posEmbed2d';
  checkDim(op, dim, 4);
  checkScale(op, opts);
  for (const [name, v] of [['gridH', gridH], ['gridW', gridW]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError(`${op}: ${name} ${v} must be a positive integer`);
  }
  const { scale = 1, baseSize } = opts;
  const coords = (size: number) => Array.from({ length: size }, (_, i) => (i / scale) * (baseSize === undefined ? 1 : baseSize / size));
  const layout = { rows: gridH * gridW, dim, half: dim / 4, seg: dim / 2, width: gridW, cosFirst: false };
  return withPositions(gpu, [...coords(gridW), ...coords(gridH)], (pos) => run(gpu, op, pos, true, layout, 10000, opts));
}

/** get_1d_sincos_pos_embed (OpenSora's temporal embedding): [length, dim] for positions l / scale, dim even. */
export function posEmbed1d(gpu: Gpu, dim: number, length: number, opts: PosEmbedOptions = {}): Tensor {
  const op = 'posEmbed1d';
  checkDim(op, dim, 2);
  checkScale(op, opts);
  if (!Number.isInteger(length) || length < 1) throw new ShapeError(`${op}: length ${length} must be a positive integer`);
  const { scale = 1 } = opts;
  const layout = { rows: length, dim, half: dim / 2, seg: dim, width: length, cosFirst: false };
  return withPositions(gpu, Array.from({ length }, (_, i) => i / scale), (pos) => run(gpu, op, pos, true, layout, 10000, opts));
}
