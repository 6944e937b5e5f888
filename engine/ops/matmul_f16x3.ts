// f32 matmul from three f16 products (shaders/matmul_f16x3.wgsl): per-tensor power-of-two scaling from
// max|X| (on the GPU, no readback), an f16 split of each operand into hi and residual, and the products
// A_hi·B_hi + A_hi·B_r + A_r·B_hi through ops/matmul.ts (the tensor-core kernel where the device has it, else
// the tiled kernel on f16 storage). On tensor cores with rows of multiples of 8 elements, by default
// 'fused': the tensor-core kernel reads the f32 operands and splits them itself (matmul_tc.wgsl's X3: no
// split or scaling passes, only the max-abs pass). Else as ONE product over 3K of concatenated parts
// ([A_hi|A_hi|A_r]·[B_hi;B_r;B_hi], 'concat') followed by a pass that undoes the scaling; else ('three': odd
// K-runs, or on request) as three products that a pass adds and un-scales. About 22 significant bits per
// operand, so close to f32 results where the product kernel accumulates in f32 with rounding to nearest; on
// tensor cores the accumulation's own rounding decides (tested at 1e-5 on the H200). Made to trade the f32
// FMA limit for tensor-core throughput. The models use it through matmulAtPrecision (engine/functional.ts's
// linear and matmul) when the Gpu's matmulPrecision is 'high' (the training config's matmul_precision).
import wgslSrc from '../../shaders/matmul_f16x3.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import f16x3ExponentWgsl from '../../shaders/f16x3_exponent.wgsl';
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, grid, output, words } from './common.js';
import { matmul, matmulShape, tensorcoreUnavailable, type MatmulOptions, type MatmulVariant } from './matmul.js';

const SHADER = { name: 'matmul_f16x3', template: wgslSrc + f16Wgsl + f16x3ExponentWgsl };
const WG = 256;
const PER = 8; // elements a thread folds in amax_partial per block
/** Most workgroups of the max-abs pass (about one wave of 256-thread groups on a 132-SM GPU). */
const AMAX_GROUPS = 1024;

type Entry = 'amax_partial' | 'split' | 'combine';

function kernel(gpu: Gpu, entry: Entry, bias = false, cat = false) {
  const d = { AMAX_PARTIAL: entry === 'amax_partial', SPLIT: entry === 'split', COMBINE: entry === 'combine' };
  return gpu.kernel(SHADER, entry, { ...d, BIAS: bias, CAT: cat });
}

/**
 * amax[slot] = max(amax[slot], max|x|) over all of x (f32), in one pass (each workgroup folds its maximum in
 * with an atomic max on the float bits). amax[slot] must hold 0 (or a lower bound) before.
 */
export function maxAbsInto(gpu: Gpu, x: Tensor, amax: Tensor, slot: number): void {
  expectDType('maxAbsInto', x, ['f32']);
  if (x.size === 0) return;
  const groups = Math.min(Math.ceil(x.size / (WG * PER)), AMAX_GROUPS);
  gpu.dispatch(kernel(gpu, 'amax_partial'), [x, amax], [x.size, groups, slot, 0, 0], [groups, 1, 1]);
}

/**
 * max|x| of f32 operands as 1-element f32 tensors, kept by buffer so that a tensor used by several products
 * (a linear's output gradient: dX = dY·W and dW = dYᵀ·X) is read for it once. Only for tensors that do not
 * change while the cache lives: forget() a tensor before releasing or overwriting it. `put` lends a known
 * maximum or an upper bound (1 for probabilities); release() frees what the cache computed.
 */
export class MaxAbsCache {
  private entries = new Map<GPUBuffer, { max: Tensor; owned: boolean }>();

  constructor(private readonly gpu: Gpu) {}

  /** [max|x|], computed on first request. */
  get(x: Tensor): Tensor {
    const e = this.entries.get(x.buffer);
    if (e) return e.max;
    const max = this.gpu.tensor([1], 'f32', `${x.name}.maxabs`);
    this.gpu.fill(max, 0);
    maxAbsInto(this.gpu, x, max, 0);
    this.entries.set(x.buffer, { max, owned: true });
    return max;
  }

  /** Lends [max|x|] (or an upper bound) for x; the caller keeps ownership. */
  put(x: Tensor, max: Tensor): void {
    this.forget(x);
    this.entries.set(x.buffer, { max, owned: false });
  }

  /** Takes `bound` (≥ max|x|, e.g. 1 for probabilities) as x's maximum instead of a pass over x. */
  bound(x: Tensor, bound: number): void {
    this.forget(x);
    const max = this.gpu.tensor([1], 'f32', `${x.name}.bound`);
    this.gpu.fill(max, bound);
    this.entries.set(x.buffer, { max, owned: true });
  }

  /** Hands x's computed maximum to the caller (null if none was computed here). */
  take(x: Tensor): Tensor | null {
    const e = this.entries.get(x.buffer);
    if (!e || !e.owned) return null;
    this.entries.delete(x.buffer);
    return e.max;
  }

  /** Drops x's entry (before x is released or written). */
  forget(x: Tensor): void {
    const e = this.entries.get(x.buffer);
    if (e?.owned) e.max.release();
    this.entries.delete(x.buffer);
  }

  release(): void {
    for (const e of this.entries.values()) if (e.owned) e.max.release();
    this.entries.clear();
  }
}

/** The scaled f16 halves (hi, lo) of x, with the scale exponent from amax[slot]. */
export function splitF16(gpu: Gpu, x: Tensor, amax: Tensor, slot: number): [Tensor, Tensor] {
  expectDType('splitF16', x, ['f32']);
  const hi = gpu.tensor(x.shape, 'f16', `${x.name}.hi`);
  const lo = gpu.tensor(x.shape, 'f16', `${x.name}.lo`);
  if (x.size > 0) {
    const { workgroups, groupsX } = grid(gpu, words(x.size, 'f16'), WG);
    gpu.dispatch(kernel(gpu, 'split'), [x, amax, hi, lo], [x.size, groupsX, slot, 0, 0], workgroups);
  }
  return [hi, lo];
}

/**
 * x as one f16 operand of the single-product form: its K-runs of `inner` elements (K for a K-last operand,
 * K·rows for a K-first one) tripled into [hi, hi, r] (role 'a') or [hi, r, hi] (role 'b') segments, r the
 * unscaled f16 residual; shape `catShape` (x's shape with K tripled).
 */
export function splitF16Cat(gpu: Gpu, x: Tensor, amax: Tensor, slot: number, inner: number, role: 'a' | 'b', catShape: number[]): Tensor {
  expectDType('splitF16Cat', x, ['f32']);
  if (inner % 2 !== 0 || x.size % inner !== 0) throw new ShapeError(`splitF16Cat: K-run of ${inner} elements must be even and divide ${x}`);
  const cat = gpu.tensor(catShape, 'f16', `${x.name}.cat`);
  if (x.size > 0) {
    const { workgroups, groupsX } = grid(gpu, x.size / 2, WG);
    gpu.dispatch(kernel(gpu, 'split', false, true), [x, amax, cat], [x.size, groupsX, slot, 0, 0, inner, role === 'a' ? 0 : 1], workgroups);
  }
  return cat;
}

export interface MatmulF16x3Options {
  transA?: boolean;
  transB?: boolean;
  /** f32 [N], added to the result (after the three products are combined and un-scaled). */
  bias?: Tensor;
  /** Only 'f32' (the result is an f32 product); accepted so matmul's options pass through. */
  outDtype?: 'f32';
  out?: Tensor;
  /** Kernel of the three f16 products (default: tensor cores where available). */
  variant?: MatmulVariant;
  /**
   * 'fused' (the default on tensor cores where A's and B's rows are multiples of 8 elements): one
   * tensor-core kernel splits the f32 operands as it stages them; 'concat' (the default elsewhere where both
   * operands' K-runs are even): one f16 matmul over 3K of concatenated parts and a scaling pass; 'three':
   * three f16 matmuls (lo parts scaled by 2^11) and a pass that adds them.
   */
  form?: 'fused' | 'concat' | 'three';
  /** max|A|, max|B| from (and into) this cache instead of fresh max-abs passes. */
  maxes?: MaxAbsCache;
}

/** C = op(A)·op(B) for f32 A and B (batched like matmul), computed from three f16 products. */
export function matmulF16x3(gpu: Gpu, a: Tensor, b: Tensor, opts: MatmulF16x3Options = {}): Tensor {
  const op = 'matmulF16x3';
  expectLive(op, a, b);
  expectDType(op, a, ['f32']);
  expectDType(op, b, ['f32']);
  for (const k of Object.keys(opts)) {
    if (!['transA', 'transB', 'bias', 'outDtype', 'out', 'variant', 'form', 'maxes'].includes(k)) throw new ShapeError(`${op}: option "${k}" is not supported (activations and tile options: use matmul)`);
  }
  if (opts.outDtype !== undefined && opts.outDtype !== 'f32') throw new ShapeError(`${op}: outDtype ${String(opts.outDtype)} is not supported; the result is f32`);
  const { batch, M, N, K } = matmulShape(a, b, opts);
  const bias = opts.bias;
  if (bias) {
    expectLive(op, bias);
    expectDType(op, bias, ['f32']);
    if (bias.size !== N) throw new ShapeError(`${op}: bias ${bias} must have ${N} elements (the output's last dim)`);
  }
  const rows8 = (opts.transA ? M : K) % 8 === 0 && (opts.transB ? K : N) % 8 === 0;
  const fusable = rows8 && opts.variant !== 'tiled' && !tensorcoreUnavailable(gpu);
  if (opts.form === 'fused' && !fusable) throw new ShapeError(`${op}: form 'fused' needs tensor cores and rows of multiples of 8 elements (M ${M}, N ${N}, K ${K}); use form 'concat' or 'three'`);
  const c = output(gpu, op, [...batch, M, N], 'f32', opts.out);
  if (c.size === 0) return c;
  if (K === 0) {
    if (bias) return matmul(gpu, a, b, { transA: opts.transA, transB: opts.transB, bias, out: c, variant: 'tiled' }); // every row is the bias
    gpu.fill(c, 0);
    return c;
  }
  const maxes = opts.maxes ?? new MaxAbsCache(gpu);
  const [maxA, maxB] = [maxes.get(a), maxes.get(b)];
  const done = () => {
    if (!opts.maxes) maxes.release();
    return c;
  };
  if (opts.form === 'fused' || (opts.form === undefined && fusable)) {
    matmul(gpu, a, b, { transA: opts.transA, transB: opts.transB, bias, out: c, x3Max: [maxA, maxB] });
    return done();
  }
  const mo = { transA: opts.transA, transB: opts.transB, outDtype: 'f32' as const, variant: opts.variant };
  const { workgroups, groupsX } = grid(gpu, c.size, WG);
  // K-runs: A [.., M, K] has runs of K, A^T [.., K, M] one run per matrix; B [.., K, N] one per matrix, B^T runs of K
  const innerA = opts.transA ? K * M : K;
  const innerB = opts.transB ? K : K * N;
  if (opts.form === 'concat' && (innerA % 2 || innerB % 2)) throw new ShapeError(`${op}: form 'concat' needs even K-runs (K ${K}, M ${M}, N ${N}); use form 'three'`);
  if (opts.form !== 'three' && innerA % 2 === 0 && innerB % 2 === 0) {
    const tripled = (t: Tensor, kAxis: number) => t.shape.map((d, i) => (i === t.shape.length + kAxis ? 3 * d : d));
    const acat = splitF16Cat(gpu, a, maxA, 0, innerA, 'a', tripled(a, opts.transA ? -2 : -1));
    const bcat = splitF16Cat(gpu, b, maxB, 0, innerB, 'b', tripled(b, opts.transB ? -1 : -2));
    const prod = matmul(gpu, acat, bcat, mo);
    gpu.dispatch(kernel(gpu, 'combine', !!bias, true), [prod, maxA, ...(bias ? [bias] : []), c, maxB], [c.size, groupsX, 0, 0, N], workgroups);
    for (const t of [acat, bcat, prod]) t.release();
    return done();
  }
  const [ahi, alo] = splitF16(gpu, a, maxA, 0);
  const [bhi, blo] = splitF16(gpu, b, maxB, 0);
  const p1 = matmul(gpu, ahi, bhi, mo);
  const p2 = matmul(gpu, ahi, blo, mo);
  const p3 = matmul(gpu, alo, bhi, mo);
  gpu.dispatch(kernel(gpu, 'combine', !!bias), [p1, maxA, ...(bias ? [bias] : []), p2, p3, c, maxB], [c.size, groupsX, 0, 0, N], workgroups);
  for (const t of [ahi, alo, bhi, blo, p1, p2, p3]) t.release();
  return done();
}

/**
 * Why matmulPrecision 'high' falls back to the exact f32 kernels on this device, or null when it runs
 * matmulF16x3. It needs tensor cores: without them the three f16 products run on the tiled kernel, about
 * three times the exact kernel's work (gpu.matmulF16x3Everywhere forces that, for tests).
 */
export function highPrecisionUnavailable(gpu: Gpu): string | null {
  if (gpu.matmulF16x3Everywhere) return null;
  const why = tensorcoreUnavailable(gpu);
  return why ? `no tensor cores (${why})` : null;
}

/**
 * matmul for engine/functional.ts at the Gpu's matmulPrecision: with 'high', an f32 × f32 → f32 product
 * (bias allowed, no activation, no tile options) runs as matmulF16x3 where highPrecisionUnavailable is
 * null; everything else (f16 operands or output, 'highest', no tensor cores) runs matmul unchanged. Counts
 * f32 products by path in gpu.f32MatmulStats.
 */
export function matmulAtPrecision(gpu: Gpu, a: Tensor, b: Tensor, opts: MatmulOptions & { maxes?: MaxAbsCache } = {}): Tensor {
  const f32 = a.dtype === 'f32' && b.dtype === 'f32' && (opts.outDtype ?? 'f32') === 'f32';
  const plain = (opts.activation ?? 'none') === 'none' && (!opts.bias || opts.bias.dtype === 'f32') && opts.variant === undefined && opts.splitK === undefined && !opts.tile && !opts.tcTile;
  if (f32 && plain && gpu.matmulPrecision === 'high' && !highPrecisionUnavailable(gpu)) {
    gpu.f32MatmulStats.f16x3++;
    return matmulF16x3(gpu, a, b, { transA: opts.transA, transB: opts.transB, bias: opts.bias, out: opts.out, maxes: opts.maxes });
  }
  if (f32) gpu.f32MatmulStats.exact++;
  const { maxes: _unused, ...mo } = opts;
  return matmul(gpu, a, b, mo);
}
