// adaLN (DiT): the fused modulate y = LN(x)·(1 + scale) + shift (LayerNorm without affine, eps 1e-6) and the
// gated residual out = x + gate·y, for x of [B, N, C] and per-sample shift/scale/gate of [B, C] or [B, 1, C]
// (f32), with their backwards. x/y/dy are f32 or f16 storage; statistics and per-sample gradients are f32.
// The modulate runs layernorm.wgsl's kernels with per-sample weights; the gated residual is shaders/adaln.wgsl.
import adalnWgsl from '../../shaders/adaln.wgsl';
import rowBlockWgsl from '../../shaders/row_block.wgsl';
import normUnitsWgsl from '../../shaders/norm_units.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, expectRank, expectSameDType, grid, output, sameShape } from './common.js';
import { blockPlan, colsum, expectParam, normBackward, normForward, rowPlan, slotsFor, unitLayout, withDefaults, type NormBackwardVariant, type NormVariant } from './layernorm.js';
import { sum } from './reduce.js';

const SHADER = { name: 'adaln', template: adalnWgsl + normUnitsWgsl + f16Wgsl + rowBlockWgsl };

/** [B, N, C] of x, checked (f32/f16, rank 3). */
function dims(op: string, x: Tensor): [number, number, number] {
  expectLive(op, x);
  expectDType(op, x, ['f32', 'f16']);
  expectRank(op, x, 3);
  return x.shape as [number, number, number];
}

/** A per-sample vector for x [B, N, C]: f32 [B, C] or [B, 1, C]. */
function expectPerSample(op: string, t: Tensor, name: string, x: Tensor): void {
  const [B, , C] = x.shape as [number, number, number];
  expectParam(op, t, name, [[B, C], [B, 1, C]], `one row of C per sample of x ${x}`);
}

// ---- modulate ------------------------------------------------------------------------------------

/** Kernel variants (slots, wideF16, fastPack): see NormVariant in ops/layernorm.ts. */
export interface AdalnOptions extends NormVariant {
  /** Default 1e-6. */
  eps?: number;
  out?: Tensor;
  /** Row reductions through subgroupAdd (default: when the device has subgroups). */
  subgroups?: boolean;
}

/**
 * y = LayerNorm(x)·(1 + scale) + shift over the last dim (no affine of its own), x [B, N, C], shift and
 * scale per sample; y has x's shape and dtype; mean and rstd ([B·N] f32) are saved for the backward.
 */
export function adalnModulate(gpu: Gpu, x: Tensor, shift: Tensor, scale: Tensor, opts: AdalnOptions = {}): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const op = 'adalnModulate';
  const [, N] = dims(op, x);
  expectPerSample(op, shift, 'shift', x);
  expectPerSample(op, scale, 'scale', x);
  const eps = opts.eps ?? 1e-6;
  if (!(eps >= 0 && Number.isFinite(eps))) throw new ShapeError(`${op}: eps ${eps} must be a finite number ≥ 0 (default 1e-6)`);
  // H100 sweep (bench/adaln.ts --sweep): hardware f16 packing 42 → 61 % of copy for f16 rows.
  const variant = withDefaults(x.dtype === 'f16' ? { fastPack: true } : {}, opts);
  return normForward(gpu, { op, x, weight: scale, bias: shift, wOffset: 1, groupRows: Math.max(1, N), eps, out: opts.out, subgroups: opts.subgroups, variant });
}

/** Kernel variants (slots, wideF16, fastPack, finalSum): see NormBackwardVariant in ops/layernorm.ts. */
export interface AdalnBackwardOptions extends NormBackwardVariant {
  /** dx output. */
  out?: Tensor;
  subgroups?: boolean;
  /** Tokens each workgroup handles for dscale/dshift (default: about 1024 workgroups in all). */
  rowsPerBlock?: number;
}

/**
 * Gradients of adalnModulate from dy, the forward's x, mean, rstd and scale: dx, dscale[b] = Σ_n dy·x̂ and
 * dshift[b] = Σ_n dy (f32, shaped like scale; deterministic two-pass sums over the tokens).
 */
export function adalnModulateBackward(
  gpu: Gpu,
  dy: Tensor,
  x: Tensor,
  mean: Tensor,
  rstd: Tensor,
  scale: Tensor,
  opts: AdalnBackwardOptions = {},
): { dx: Tensor; dscale: Tensor; dshift: Tensor } {
  const op = 'adalnModulateBackward';
  const [, N, C] = dims(op, x);
  expectPerSample(op, scale, 'scale', x);
  // H100 sweep: f32 53 → 68 % with 64-row blocks and the fused column sum; f16 22 → 49 % with 4 row slots,
  // 16-byte units, hardware packing, the lean loop and the column sum. H200 sweep after colsum's per-call
  // tile (bench/adaln.ts --sweep, [4, 4096, 1152]): f32 rows per block 64 → 32: 62 → 74 % of copy.
  // f16 of even C: the packed-row kernel (NormVariant.packed; its affine backward holds one word a thread since
  // session 8): 45.4 % of copy on the H200 against 39.8 % for the unit kernel's tuned variant (the default before,
  // when the packed kernel measured 35.0 %), which {packed: false} and odd C keep.
  const tuned: NormBackwardVariant & { rowsPerBlock?: number } =
    x.dtype === 'f32' ? { rowsPerBlock: 32, finalSum: 'colsum' }
    : opts.packed === false || C % 2 === 1 ? { slots: 4, wideF16: true, fastPack: true, lean: true, finalSum: 'colsum' }
    : { fastPack: true, finalSum: 'colsum' };
  const variant = withDefaults(tuned, opts);
  const r = normBackward(gpu, { op, dy, x, mean, rstd, weight: scale, wOffset: 1, groupRows: Math.max(1, N), gradShape: scale.shape, out: opts.out, subgroups: opts.subgroups, rowsPerBlock: opts.rowsPerBlock ?? tuned.rowsPerBlock, variant });
  return { dx: r.dx, dscale: r.dw!, dshift: r.db! };
}

// ---- gated residual ------------------------------------------------------------------------------

function gatedCheck(op: string, x: Tensor, gate: Tensor, y: Tensor, xName: string): [number, number, number] {
  const d = dims(op, x);
  expectLive(op, y);
  expectSameDType(op, x, y);
  if (!sameShape(x.shape, y.shape)) throw new ShapeError(`${op}: y ${y} must have the shape of ${xName} ${x}`);
  expectPerSample(op, gate, 'gate', x);
  return d;
}

/** f16 storage: 16-byte units of 8 halves where C % 8 == 0 (wideF16) and hardware f16 packing (fastPack); see NormVariant. */
export interface GatedResidualOptions {
  wideF16?: boolean;
  fastPack?: boolean;
}

/** The gated residual's kernel for x's dtype and width; the backward takes v.slots row slots (default 1). */
function gatedKernel(gpu: Gpu, x: Tensor, backward: boolean, v: GatedResidualOptions & { slots?: number }) {
  const C = x.shape[2]!;
  const lay = unitLayout(x.dtype, C, v.wideF16);
  const { wg, per } = rowPlan(lay.units);
  const slots = backward ? slotsFor(gpu, wg, lay.e, true, v.slots) : 1;
  const defines = { ...lay.defines, WG: wg, PER: per, SLOTS: slots, CW: Math.max(1, (slots - 1) * wg), BACKWARD: backward, FASTPACK: !!v.fastPack };
  return { kernel: gpu.kernel(SHADER, backward ? 'backward' : 'forward', defines), units: lay.units, slots };
}

/**
 * f16 defaults of the gated residual: 16-byte units and hardware packing. H200 [4, 4096, 1152] (bench/adaln.mjs
 * --gated, session 13), % of the 1 GiB copy: forward 54.1 → 78.5 (fastPack alone 71.1, wideF16 alone 58.0);
 * backward with the fused column sum 34.1 → 59.6 (without colsum 48.4; 2 slots 59.8, 16/32-token blocks 57–58).
 */
const GATED_F16: GatedResidualOptions = { wideF16: true, fastPack: true };

/** out = x + gate·y for x, y [B, N, C] (same dtype) and gate [B, C] or [B, 1, C] f32. */
export function gatedResidual(gpu: Gpu, x: Tensor, gate: Tensor, y: Tensor, out?: Tensor, opts: GatedResidualOptions = {}): Tensor {
  const op = 'gatedResidual';
  const [B, N, C] = gatedCheck(op, x, gate, y, 'x');
  const o = output(gpu, op, x.shape, x.dtype, out);
  if (x.size === 0) return o;
  const { kernel, units } = gatedKernel(gpu, x, false, withDefaults(x.dtype === 'f16' ? GATED_F16 : {}, opts));
  const { workgroups, groupsX } = grid(gpu, B * N * units, 256);
  gpu.dispatch(kernel, [x, gate, y, o], [B * N, C, units, groupsX, N, 1, 1, x.size], workgroups);
  return o;
}

export interface GatedResidualBackwardOptions extends GatedResidualOptions {
  /** dy output. */
  out?: Tensor;
  /** Tokens each workgroup handles for dgate (default: about 1024 / slots workgroups in all). */
  rowsPerBlock?: number;
  /** Rows in flight per workgroup (row slots, default 1; lowered to fit the device's limits). */
  slots?: number;
  /** How the dgate partials are added over blocks: see NormBackwardVariant.finalSum (default 'colsum'). */
  finalSum?: 'colsum' | 'reduce';
}

/**
 * Gradients of gatedResidual from dout: dx = dout (the same tensor, not a copy), dy = gate·dout (y's dtype)
 * and dgate[b] = Σ_n dout·y (f32, shaped like gate), dy and dgate from one pass over dout and y.
 */
export function gatedResidualBackward(
  gpu: Gpu,
  dout: Tensor,
  gate: Tensor,
  y: Tensor,
  opts: GatedResidualBackwardOptions = {},
): { dx: Tensor; dy: Tensor; dgate: Tensor } {
  const op = 'gatedResidualBackward';
  const [B, N, C] = gatedCheck(op, dout, gate, y, 'dout');
  if (opts.rowsPerBlock !== undefined && !(Number.isInteger(opts.rowsPerBlock) && opts.rowsPerBlock >= 1)) {
    throw new ShapeError(`${op}: rowsPerBlock ${opts.rowsPerBlock} must be a positive integer`);
  }
  if (opts.finalSum !== undefined && opts.finalSum !== 'colsum' && opts.finalSum !== 'reduce') throw new ShapeError(`${op}: finalSum '${opts.finalSum}' must be 'colsum' or 'reduce'`);
  if (opts.slots !== undefined && !(Number.isInteger(opts.slots) && opts.slots >= 1)) throw new ShapeError(`${op}: slots ${opts.slots} must be a positive integer (rows in flight per workgroup)`);
  const dy = output(gpu, op, y.shape, y.dtype, opts.out);
  const dgate = gpu.tensor(gate.shape, 'f32', `${op}.dgate`);
  if (B * C === 0) return { dx: dout, dy, dgate };
  if (N === 0) {
    gpu.fill(dgate, 0);
    return { dx: dout, dy, dgate };
  }
  // H100 sweep: for f32, 4 row slots with the fused column sum 67 → 78 % of copy; f16: see GATED_F16.
  const tuned: GatedResidualBackwardOptions = dout.dtype === 'f32' ? { slots: 4, finalSum: 'colsum' } : { ...GATED_F16, finalSum: 'colsum' };
  opts = withDefaults(tuned, opts);
  const { kernel, units, slots } = gatedKernel(gpu, dout, true, opts);
  const { blockRows, blocks } = blockPlan(B, N, opts.rowsPerBlock, slots);
  const { workgroups, groupsX } = grid(gpu, B * blocks, 1);
  const direct = blocks === 1;
  const pg = direct ? dgate : gpu.tensor([B, blocks, C], 'f32', `${op}.dgate.partial`);
  gpu.dispatch(kernel, [dout, gate, y, dy, pg], [B * N, C, units, groupsX, N, blockRows, blocks, dout.size], workgroups);
  if (!direct) {
    if (opts.finalSum === 'colsum') colsum(gpu, pg, undefined, dgate, undefined, B, blocks, C);
    else {
      const view = dgate.reshape([B, C]);
      sum(gpu, pg, 1, view);
      view.release();
    }
    pg.release();
  }
  return { dx: dout, dy, dgate };
}
