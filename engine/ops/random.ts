// Reproducible random numbers on the GPU from (seed, offset): Philox4x32-10, counter-based, so element e of a
// seed's stream is the same whatever the draw it falls in (a draw of n at offset k equals elements k..k+n−1
// of any longer draw from 0). Training resume only needs the seed and how many elements were drawn.
// The CPU functions compute the identical stream (bit-exact words; normals in f64, the GPU's f32 log/cos
// differ in the last bits) for small things such as timesteps, and as the tests' reference.
import randomWgsl from '../../shaders/random.wgsl';
import type { DType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { grid, output } from './common.js';

const SHADER = { name: 'random', template: randomWgsl };

export interface RandomOptions {
  /** Integer in 0..2^53−1: the stream. */
  seed: number;
  /** Integer in 0..2^53−1: the first element of the stream to take (default 0). */
  offset?: number;
  /** rand / randn: the values become v·scale + shift (default 1 and 0), e.g. U(−a, a) = rand·2a − a. */
  scale?: number;
  shift?: number;
  out?: Tensor;
}

type Kind = 'normal' | 'uniform' | 'bits';
const TWO32 = 4294967296;

function checkStream(op: string, n: number, o: { seed: number; offset?: number }): { seed: number; offset: number } {
  const offset = o.offset ?? 0;
  for (const [name, v] of [['seed', o.seed], ['offset', offset]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new ShapeError(`${op}: ${name} ${v} must be an integer in 0..2^53−1`);
  }
  if (!Number.isSafeInteger(offset + n)) throw new ShapeError(`${op}: offset ${offset} + ${n} elements runs past 2^53; start a new seed`);
  return { seed: o.seed, offset };
}

function draw(gpu: Gpu, op: string, kind: Kind, shape: readonly number[], opts: RandomOptions): Tensor {
  const [scale, shift] = [opts.scale ?? 1, opts.shift ?? 0];
  if (kind === 'bits' && (scale !== 1 || shift !== 0)) throw new ShapeError(`${op}: scale and shift apply to rand and randn, not to raw bits`);
  if (!Number.isFinite(scale) || !Number.isFinite(shift)) throw new ShapeError(`${op}: scale ${scale} and shift ${shift} must be finite`);
  const dtype: DType = kind === 'bits' ? 'u32' : 'f32';
  const y = output(gpu, op, shape, dtype, opts.out);
  const { seed, offset } = checkStream(op, y.size, opts);
  if (y.size === 0) return y;
  const phase = offset % 4;
  const ctr = Math.floor(offset / 4);
  const threads = Math.ceil((phase + y.size) / 4);
  const { workgroups, groupsX } = grid(gpu, threads, 256);
  const kernel = gpu.kernel(SHADER, 'main', { OUT: kind === 'bits' ? 'u32' : 'f32', BITS: kind === 'bits', UNIFORM: kind === 'uniform' });
  const params = [y.size, phase, ctr % TWO32, Math.floor(ctr / TWO32), seed % TWO32, Math.floor(seed / TWO32), groupsX, threads, { f32: scale }, { f32: shift }];
  gpu.dispatch(kernel, [y], params, workgroups);
  return y;
}

/** Standard normal samples (f32) of `shape`: elements offset.. of the stream of `seed`. */
export function randn(gpu: Gpu, shape: readonly number[], opts: RandomOptions): Tensor {
  return draw(gpu, 'randn', 'normal', shape, opts);
}

/** Uniform samples in [0, 1) (f32, 24-bit resolution) of `shape`. */
export function rand(gpu: Gpu, shape: readonly number[], opts: RandomOptions): Tensor {
  return draw(gpu, 'rand', 'uniform', shape, opts);
}

/** The raw 32-bit Philox words (u32) of `shape`. */
export function randomBits(gpu: Gpu, shape: readonly number[], opts: RandomOptions): Tensor {
  return draw(gpu, 'randomBits', 'bits', shape, opts);
}

// ---- CPU: the same stream --------------------------------------------------------------------------

/** [hi, lo] words of the 64-bit product of two u32 (exact in f64 through 16-bit halves). */
function mulhilo(a: number, b: number): [number, number] {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl;
  const mid = Math.floor(ll / 65536) + (lh & 0xffff) + (hl & 0xffff);
  const hi = ah * bh + Math.floor(lh / 65536) + Math.floor(hl / 65536) + Math.floor(mid / 65536);
  return [hi >>> 0, Math.imul(a, b) >>> 0];
}

/** Philox4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1): four u32 words. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number, number, number] {
  let c = [c0 >>> 0, c1 >>> 0, c2 >>> 0, c3 >>> 0];
  for (let r = 0; r < 10; r++) {
    const [h0, l0] = mulhilo(0xd2511f53, c[0]!);
    const [h1, l1] = mulhilo(0xcd9e8d57, c[2]!);
    c = [(h1 ^ c[1]! ^ k0) >>> 0, l1, (h0 ^ c[3]! ^ k1) >>> 0, l0];
    k0 = (k0 + 0x9e3779b9) >>> 0;
    k1 = (k1 + 0xbb67ae85) >>> 0;
  }
  return c as [number, number, number, number];
}

function cpuDraw(op: string, kind: Kind, n: number, opts: { seed: number; offset?: number }): Float64Array {
  const { seed, offset } = checkStream(op, n, opts);
  const out = new Float64Array(n);
  let w: number[] = [];
  let at = -1;
  for (let i = 0; i < n; i++) {
    const e = offset + i;
    const ctr = Math.floor(e / 4);
    if (ctr !== at) {
      w = philox4x32(ctr % TWO32, Math.floor(ctr / TWO32), 0, 0, seed % TWO32, Math.floor(seed / TWO32));
      at = ctr;
    }
    const j = e % 4;
    if (kind === 'bits') out[i] = w[j]!;
    else if (kind === 'uniform') out[i] = (w[j]! >>> 8) * 2 ** -24;
    else {
      const u1 = ((w[j & 2]! >>> 8) + 1) * 2 ** -24;
      const theta = 2 * Math.PI * (w[(j & 2) + 1]! >>> 8) * 2 ** -24;
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = j % 2 === 0 ? r * Math.cos(theta) : r * Math.sin(theta);
    }
  }
  return out;
}

/** randn's stream on the CPU in f64. */
export const randnCpu = (n: number, opts: { seed: number; offset?: number }) => cpuDraw('randnCpu', 'normal', n, opts);
/** rand's stream on the CPU. */
export const randCpu = (n: number, opts: { seed: number; offset?: number }) => cpuDraw('randCpu', 'uniform', n, opts);
/** randomBits' stream on the CPU. */
export const randomBitsCpu = (n: number, opts: { seed: number; offset?: number }) => cpuDraw('randomBitsCpu', 'bits', n, opts);

/** n integers in lo..hi (inclusive) from the words of the stream: floor(word · (hi − lo + 1) / 2^32) + lo. */
export function randint(n: number, lo: number, hi: number, opts: { seed: number; offset?: number }): Int32Array {
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi < lo || hi - lo >= 2 ** 21) {
    throw new ShapeError(`randint: range ${lo}..${hi} must be integers with lo ≤ hi and fewer than 2^21 values`);
  }
  const bits = cpuDraw('randint', 'bits', n, opts);
  return Int32Array.from(bits, (b) => lo + Math.floor((b * (hi - lo + 1)) / TWO32));
}
