// LayerNorm over the last dim (rows = all leading dims), with or without an affine weight/bias, and its
// backward. x/y/dy/dx are f32 or f16 storage; math, mean/rstd and the weight gradients are f32. The row
// machinery (normForward/normBackward) is shared with adaLN's modulate (ops/adaln.ts), whose weight and
// bias are per sample. See shaders/layernorm.wgsl for the kernels; f16 rows of even C take
// shaders/layernorm-packed.wgsl by default (NormVariant.packed: halves packed in registers, 16-byte words;
// layernorm.wgsl's unit kernel held f16 as f32 registers, so f16 moved half the bytes of f32 per register and
// per row step and ran at 31–56 % of copy on the H200 where f32 ran at 73–88 %).
import layernormWgsl from '../../shaders/layernorm.wgsl';
import colsumWgsl from '../../shaders/layernorm-colsum.wgsl';
import packedWgsl from '../../shaders/layernorm-packed.wgsl';
import rowBlockWgsl from '../../shaders/row_block.wgsl';
import normUnitsWgsl from '../../shaders/norm_units.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import type { DType } from '../dtype.js';
import { ShapeError, shapeStr } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, expectSameDType, grid, output, sameShape } from './common.js';
import { sum } from './reduce.js';

const SHADER = { name: 'layernorm', template: layernormWgsl + normUnitsWgsl + f16Wgsl + rowBlockWgsl };
const COLSUM = { name: 'layernorm-colsum', template: colsumWgsl };
const PACKED = { name: 'layernorm-packed', template: packedWgsl + f16Wgsl + rowBlockWgsl };

/** Most units (E-element vectors, see unitLayout) a row may have: 256 threads × 32 register slots. */
export const NORM_MAX_UNITS = 256 * 32;
/** Backward: aim for about this many workgroups (blocks of rows) in all, so the partials stay small. */
const BLOCK_TARGET = 1024;

/**
 * Kernel variants of the LayerNorm/adaLN-modulate row kernels (defaults: the first of each), all giving the
 * same results up to f32 rounding (fastPack: up to the f16 rounding of out-of-range values).
 */
export interface NormVariant {
  /**
   * Rows in flight per workgroup (row slots of one workgroup, each of the row's thread count; default 1).
   * Lowered where the workgroup would exceed the device's invocation or shared-memory limits. With
   * subgroups, used only where the subgroup size divides the slot's threads (else shared-memory sums).
   */
  slots?: number;
  /** f16 storage with C % 8 == 0: 16-byte units of 8 halves instead of 8-byte units of 4 (default false). */
  wideF16?: boolean;
  /** f16 storage: write halves with pack2x16float, the hardware conversion (default false: exact software rounding). */
  fastPack?: boolean;
  /**
   * One row per subgroup: a row slot is one subgroup, its sums are a subgroupAdd alone (no shared memory, no
   * barrier per row), each thread holding ⌈units / subgroup size⌉ units. Needs subgroups of one fixed size
   * (NVIDIA: 32) and rows of at most 32 units a thread; slots default to 256 threads' worth. Default false.
   */
  subgroupRows?: boolean;
  /**
   * f16 storage of even C: the packed-row kernel (shaders/layernorm-packed.wgsl: halves kept packed in
   * registers, 16-byte words where C % 8 == 0, several rows per workgroup, one barrier a row). Default true
   * for f16 rows of even C unless an option of the unit kernel (wideF16, lean, subgroupRows) is given; false
   * selects the unit kernel (layernorm.wgsl), the f16 path before. f32 rows always take the unit kernel.
   */
  packed?: boolean;
  /**
   * Packed kernel, forward: rows per workgroup (default 4 per slot; affine and adaLN 8 per slot, which load the
   * weight/bias or scale/shift registers once a block: H200 f16 [16384, 1152] 30.2 vs 32.5 µs, 87.5 vs 81.3 % of
   * the same-size copy; 16 per slot 79 %).
   */
  forwardRowsPerBlock?: number;
  /**
   * Units (unit kernel) or words (packed kernel) each thread holds of a row; the row's threads follow (a
   * multiple of 32, or of 16 for the packed kernel, at most 256). Default: rowPlan / packedPlan.
   */
  perThread?: number;
}

export interface NormBackwardVariant extends NormVariant {
  /** Backward: fewer registers a thread (more threads per SM): no prefetch of the next row, weights re-read every row (default false). */
  lean?: boolean;
  /**
   * How the weight-gradient partials are added over blocks: 'colsum' (one fused pass for both gradients;
   * layernormBackward's default) or 'reduce' (reduce.ts's sum, one call each).
   */
  finalSum?: 'colsum' | 'reduce';
  /** 'colsum': column units a workgroup sums (16, 8, 4, 2 or 1; default: see colsum). */
  colsumTile?: number;
}

export interface Plan {
  wg: number;
  per: number;
}

/**
 * Workgroup size (a multiple of 32, ≤ 256) and register slots per thread for rows of `units` units: the
 * fewest slots that fit in 256 threads, or up to 3 more when that wastes fewer idle slots (288 units:
 * 96 threads × 3 rather than 160 × 2).
 */
export function rowPlan(units: number): Plan {
  const min = Math.max(1, Math.ceil(units / 256));
  let best: Plan & { waste: number } = { wg: 0, per: 0, waste: Infinity };
  for (let per = min; per <= min + 3; per++) {
    const wg = Math.min(256, Math.max(32, 32 * Math.ceil(units / per / 32)));
    const waste = wg * per - units;
    if (wg * per >= units && waste < best.waste) best = { wg, per, waste };
  }
  return { wg: best.wg, per: best.per };
}

/**
 * The plan for a requested perThread (NormVariant.perThread): the fewest threads, a multiple of `step`, that
 * hold `units` at `per` a thread; an error naming the fix past 256 threads.
 */
export function planWithPer(op: string, units: number, per: number, step: number): Plan {
  const wg = Math.max(step, step * Math.ceil(units / per / step));
  if (wg > 256) throw new ShapeError(`${op}: perThread ${per} needs ${wg} threads for rows of ${units} units (at most 256); use a perThread of at least ${Math.ceil(units / 256)}`);
  return { wg, per };
}

/** How a row of C elements is cut into units, and the WGSL types that hold them. */
/** Tuned defaults under the caller's options (keys the caller leaves undefined keep the default). */
export function withDefaults<T extends object>(defaults: Partial<T>, opts: T): T {
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(opts)) if (v !== undefined) out[k] = v;
  return out as T;
}

export function unitLayout(dtype: DType, C: number, wideF16 = false) {
  const f16 = dtype === 'f16';
  const e = f16 && wideF16 && C % 8 === 0 ? 8 : C % 4 === 0 ? 4 : f16 && C % 2 === 0 ? 2 : 1;
  const odd = f16 && C % 2 === 1;
  const V = e === 8 ? 'mat2x4<f32>' : e === 4 ? 'vec4<f32>' : e === 2 ? 'vec2<f32>' : 'f32';
  const XW = !f16 ? V : e === 8 ? 'vec4<u32>' : e === 4 ? 'vec2<u32>' : 'u32';
  return { e, units: C / e, defines: { F16: f16, ODD: odd, E8: e === 8, E4: e === 4, E2: e === 2, V, XW } };
}

function checkSubgroups(gpu: Gpu, op: string, subgroups: boolean | undefined): boolean {
  const on = subgroups ?? gpu.info.subgroups;
  if (on && !gpu.info.subgroups) {
    throw new ShapeError(`${op}: {subgroups: true} needs the subgroups feature, which ${gpu.info.adapter} lacks; leave the option unset`);
  }
  return on;
}

function checkRow(op: string, x: Tensor): { rows: number; C: number } {
  expectDType(op, x, ['f32', 'f16']);
  if (x.rank < 1) throw new ShapeError(`${op}: ${x} has rank 0; expected at least one dim (the normalized last dim)`);
  const C = x.shape.at(-1)!;
  if (C === 0) throw new ShapeError(`${op}: ${x} has an empty last dim; LayerNorm needs at least one element per row`);
  const { units } = unitLayout(x.dtype, C);
  if (units > NORM_MAX_UNITS) {
    throw new ShapeError(`${op}: rows of ${x} have ${C} elements, over what this kernel holds in registers (${NORM_MAX_UNITS} units, ${NORM_MAX_UNITS * 4} elements when C % 4 == 0); split the last dim`);
  }
  return { rows: x.size / C, C };
}

function checkVariant(op: string, v: NormBackwardVariant): void {
  if (v.slots !== undefined && !(Number.isInteger(v.slots) && v.slots >= 1)) throw new ShapeError(`${op}: slots ${v.slots} must be a positive integer (rows in flight per workgroup)`);
  if (v.forwardRowsPerBlock !== undefined && !(Number.isInteger(v.forwardRowsPerBlock) && v.forwardRowsPerBlock >= 1)) throw new ShapeError(`${op}: forwardRowsPerBlock ${v.forwardRowsPerBlock} must be a positive integer`);
  if (v.perThread !== undefined && !(Number.isInteger(v.perThread) && v.perThread >= 1)) throw new ShapeError(`${op}: perThread ${v.perThread} must be a positive integer (units or words a thread holds)`);
  if (v.finalSum !== undefined && v.finalSum !== 'colsum' && v.finalSum !== 'reduce') throw new ShapeError(`${op}: finalSum '${v.finalSum}' must be 'colsum' or 'reduce'`);
  if (v.colsumTile !== undefined && ![1, 2, 4, 8, 16].includes(v.colsumTile)) throw new ShapeError(`${op}: colsumTile ${v.colsumTile} must be 1, 2, 4, 8 or 16 (column units a workgroup sums)`);
}

/**
 * Row slots per workgroup that fit the device: ≤ the requested count, WG·slots invocations and the shared
 * memory of the slot sums (8 bytes a thread) and, for the weight gradients, of slots 1.. (4·E bytes a thread).
 */
export function slotsFor(gpu: Gpu, wg: number, e: number, affineBackward: boolean, want = 1): number {
  const { maxComputeInvocationsPerWorkgroup: inv, maxComputeWorkgroupStorageSize: mem } = gpu.info.limits;
  let s = want;
  while (s > 1 && (wg * s > inv || 8 * wg * s + (affineBackward ? 4 * e * wg * (s - 1) : 0) > mem)) s--;
  return s;
}

/**
 * Why rows of `units` units cannot be one subgroup each (NormVariant.subgroupRows) on this device, or null
 * when they can: it needs subgroups of one fixed size and at most 32 units a thread.
 */
export function subgroupRowsUnavailable(gpu: Gpu, units: number, subgroups = gpu.info.subgroups): string | null {
  const { min, max } = gpu.info.subgroupSize;
  if (!subgroups || !(min > 0 && min === max)) return `needs subgroups of one fixed size (${gpu.info.adapter}: subgroups ${gpu.info.subgroups}, sizes ${min}..${max})`;
  const per = Math.ceil(units / max);
  if (per > 32) return `would hold ${per} units a thread for rows of ${units} units (at most 32 with subgroups of ${max})`;
  return null;
}

/** Threads per row and units per thread when a row is one subgroup (NormVariant.subgroupRows), or an error naming the fix. */
function subgroupRowPlan(gpu: Gpu, op: string, units: number, subgroups: boolean): Plan {
  const why = subgroupRowsUnavailable(gpu, units, subgroups);
  if (why) throw new ShapeError(`${op}: {subgroupRows: true} ${why}; leave the option unset`);
  const wg = gpu.info.subgroupSize.max;
  return { wg, per: Math.ceil(units / wg) };
}

function kernelFor(gpu: Gpu, op: string, dtype: DType, C: number, backward: boolean, affine: boolean, subgroups: boolean, v: NormBackwardVariant = {}) {
  const lay = unitLayout(dtype, C, v.wideF16);
  const sgRows = !!v.subgroupRows;
  const { wg, per } = sgRows ? subgroupRowPlan(gpu, op, lay.units, subgroups) : v.perThread ? planWithPer(op, lay.units, v.perThread, 32) : rowPlan(lay.units);
  const tree = 2 ** Math.ceil(Math.log2(wg)) / 2;
  const slots = slotsFor(gpu, wg, lay.e, backward && affine, v.slots ?? (sgRows ? Math.max(1, Math.floor(256 / wg)) : 1));
  // Several slots with subgroups need whole subgroups per slot: the subgroup size must divide WG.
  const { min, max } = gpu.info.subgroupSize;
  const sg = subgroups && (slots === 1 || (min > 0 && max > 0 && wg % max === 0));
  const defines = { ...lay.defines, WG: wg, PER: per, TREE: tree, SLOTS: slots, CW: Math.max(1, (slots - 1) * wg), AFFINE: affine, BACKWARD: backward, SUBGROUPS: sg, SGROW: sgRows, FASTPACK: !!v.fastPack, LEAN: !!v.lean };
  return { kernel: gpu.kernel(SHADER, backward ? 'backward' : 'forward', defines), units: lay.units, slots };
}

// ---- the packed f16 kernel ---------------------------------------------------------------------------

/** Words of halves the packed kernel holds a row in: 8 halves (16 bytes) when C % 8 == 0, else 4 or 2. */
export function packedLayout(C: number): { nh: number; words: number } {
  const nh = C % 8 === 0 ? 8 : C % 4 === 0 ? 4 : 2;
  return { nh, words: C / nh };
}

/** Most words a packed thread holds (registers: 8 f32 of w, Σdy·x̂, Σdy and 2 packed rows per 8-half word). */
const PACKED_MAX_PER = 4;

/**
 * Threads per row slot (a multiple of 16, ≤ 256) and words per thread for rows of `words` words: the fewest
 * idle word slots, ties to more words a thread (more bytes in flight a thread, fewer partial sums a row).
 * 1152 halves = 144 words: 48 threads × 3.
 */
export function packedPlan(words: number): Plan | null {
  let best: (Plan & { waste: number }) | null = null;
  for (let per = 1; per <= PACKED_MAX_PER; per++) {
    const wg = Math.max(16, 16 * Math.ceil(words / per / 16));
    if (wg > 256 || wg * per < words) continue;
    const waste = wg * per - words;
    if (!best || waste <= best.waste) best = { wg, per, waste };
  }
  return best && { wg: best.wg, per: best.per };
}

/** Whether this call takes the packed kernel (see NormVariant.packed). */
function usePacked(op: string, dtype: DType, C: number, v: NormVariant & { lean?: boolean }): boolean {
  const can = dtype === 'f16' && C % 2 === 0 && packedPlan(packedLayout(C).words) !== null;
  if (v.packed === true && !can) {
    throw new ShapeError(`${op}: {packed: true} needs f16 rows of even length ≤ ${256 * PACKED_MAX_PER * 8} (got ${dtype} rows of ${C}); leave the option unset`);
  }
  return v.packed ?? (can && !v.wideF16 && !v.lean && !v.subgroupRows);
}

/**
 * Backward with weight gradients: workgroups in all the packed kernel's block plan aims for: one wave at 3
 * workgroups an SM on a 132-SM H100/H200 (396; the kernel's registers allow 3 of its 288-thread workgroups). H200,
 * f16 [16384, 1152] (bench/layernorm.mjs --wgrad, session 13): 42–44-row blocks (391–373 workgroups) 48.6–50.7 %
 * of the 1 GiB copy, 41-row blocks (400: a second wave) 39.7 %, 64-row blocks (256, the target before) 45.5–46.5 %;
 * adaLN [4, 4096, 1152] the same (49.7 vs 45.3 %). Other GPUs: their own cliff where the blocks pass one wave
 * (rowsPerBlock sets it).
 */
const PACKED_BLOCK_TARGET = 384;

/** Default row slots of the packed kernel: 4 (192 threads for 1152-half rows), fewer where 4 do not fit. */
const PACKED_SLOTS = 4;

/**
 * Backward with weight gradients (LayerNorm affine, adaLN): one word a thread and 2 row slots by default where
 * a row has ≤ 256 words. H200, f16 [16384, 1152]: 45 % of copy against 35 % with packedPlan's 48 threads × 3
 * words and 4 slots (the Σdy·x̂, Σdy registers of 3 words a thread cost occupancy).
 */
const WGRAD_PACKED = { perThread: 1, slots: 2 };

function packedKernelFor(gpu: Gpu, op: string, C: number, backward: boolean, affine: boolean, subgroups: boolean, v: NormBackwardVariant) {
  const { nh, words } = packedLayout(C);
  // the weight-gradient defaults apply when the caller picks no perThread
  const wgradPlan = backward && affine && v.perThread === undefined && words <= 256;
  const perThread = v.perThread ?? (wgradPlan ? WGRAD_PACKED.perThread : undefined);
  const { wg, per } = perThread ? planWithPer(op, words, perThread, 16) : packedPlan(words)!;
  const nw = nh / 2;
  const { maxComputeInvocationsPerWorkgroup: inv, maxComputeWorkgroupStorageSize: mem } = gpu.info.limits;
  // shared memory: two buffers of per-slot sums (8 bytes each, ≤ WG a slot), slots 1..'s weight-gradient sums of one word
  let slots = v.slots ?? (wgradPlan ? WGRAD_PACKED.slots : PACKED_SLOTS);
  while (slots > 1 && (wg * slots > inv || 16 * wg * slots + (backward && affine ? 16 * nw * wg * (slots - 1) : 0) > mem)) slots--;
  // Subgroup sums need whole subgroups of one known size: lanes f = subgroup · size + lane number the threads.
  const { min, max } = gpu.info.subgroupSize;
  const sg = subgroups && min > 0 && min === max && (wg * slots) % max === 0;
  const pow2 = wg & -wg; // the largest power of two dividing WG
  const cl = sg ? Math.min(pow2, max, 32) : 1;
  const defines = {
    W: nw === 4 ? 'vec4<u32>' : nw === 2 ? 'vec2<u32>' : 'u32', NW: nw, NW1: nw === 1, NW2: nw === 2,
    WG: wg, SLOTS: slots, PER: per, CL: cl, NP: sg ? wg / cl : wg, TREE: 2 ** Math.ceil(Math.log2(wg)) / 2,
    CW: Math.max(1, (slots - 1) * wg * 2 * nw), AFFINE: affine, BACKWARD: backward, SUBGROUPS: sg, FASTPACK: v.fastPack ?? true,
  };
  return { kernel: gpu.kernel(PACKED, backward ? 'backward' : 'forward', defines), units: words, slots };
}

/** Workgroups colsum aims for (a few per SM on current GPUs). */
const COLSUM_TARGET = 256;

/**
 * dw[g] = Σ_blk pw[g, blk] (and db from pb): [groups, blocks, C] f32 partials → [groups, C], in one pass
 * (fixed order: deterministic). H200, LayerNorm [16384, 1152] (1024 blocks, 2 × 288 column units): 16-unit
 * tiles (36 workgroups) 19.5 µs; 4-unit tiles (144) 14.4 µs; two passes (chunks of 64 blocks, then the
 * chunks) 10.7 + 8.6 µs, so one pass with the widest tile that still gives COLSUM_TARGET workgroups.
 */
export function colsum(gpu: Gpu, pw: Tensor, pb: Tensor | undefined, dw: Tensor, db: Tensor | undefined, groups: number, blocks: number, C: number, tile?: number): void {
  const vec = C % 4 === 0;
  const units = vec ? C / 4 : C;
  const pair = !!pb && !!db;
  const arrays = pair ? 2 : 1;
  const CT = tile ?? [16, 8, 4].find((ct) => groups * arrays * Math.ceil(units / ct) >= COLSUM_TARGET) ?? 4;
  const tiles = Math.ceil(units / CT);
  const kernel = gpu.kernel(COLSUM, 'colsum', { CT, CV: vec ? 'vec4<f32>' : 'f32', PAIR: pair });
  const { workgroups, groupsX } = grid(gpu, groups * arrays * tiles, 1);
  gpu.dispatch(kernel, pair ? [pw, pb!, dw, db!] : [pw, dw], [units, blocks, tiles, groupsX], workgroups);
}

// ---- shared with adaLN ---------------------------------------------------------------------------

export interface NormForwardSpec {
  op: string;
  x: Tensor;
  /** [groups · C] f32 (any shape of that size): row r uses weight row ⌊r / groupRows⌋. */
  weight?: Tensor;
  bias?: Tensor;
  /** Added to every weight (1 for adaLN's 1 + scale). */
  wOffset: number;
  groupRows: number;
  eps: number;
  out?: Tensor;
  subgroups?: boolean;
  variant?: NormVariant;
}

export function normForward(gpu: Gpu, s: NormForwardSpec): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const { op, x } = s;
  const { rows, C } = checkRow(op, x);
  const subgroups = checkSubgroups(gpu, op, s.subgroups);
  checkVariant(op, s.variant ?? {});
  const y = output(gpu, op, x.shape, x.dtype, s.out);
  const mean = gpu.tensor([rows], 'f32', `${op}.mean`);
  const rstd = gpu.tensor([rows], 'f32', `${op}.rstd`);
  if (rows === 0) return { y, mean, rstd };
  const affine = !!s.weight;
  const v = s.variant ?? {};
  if (usePacked(op, x.dtype, C, v)) {
    // blocks of rows inside one weight group, the weights held in registers over the block
    const { kernel, units, slots } = packedKernelFor(gpu, op, C, false, affine, subgroups, v);
    const groups = rows / s.groupRows;
    const blockRows = Math.min(v.forwardRowsPerBlock ?? (affine ? 8 : 4) * slots, s.groupRows);
    const blocks = Math.ceil(s.groupRows / blockRows);
    const { workgroups, groupsX } = grid(gpu, groups * blocks, 1);
    const params = [rows, C, units, groupsX, { f32: s.eps }, { f32: s.wOffset }, s.groupRows, blockRows, blocks, x.size];
    gpu.dispatch(kernel, affine ? [x, s.weight!, s.bias!, mean, rstd, y] : [x, mean, rstd, y], params, workgroups);
    return { y, mean, rstd };
  }
  const { kernel, units, slots } = kernelFor(gpu, op, x.dtype, C, false, affine, subgroups, s.variant);
  const { workgroups, groupsX } = grid(gpu, rows, slots);
  const params = [rows, C, units, groupsX, { f32: s.eps }, { f32: s.wOffset }, s.groupRows, 1, 1, x.size];
  gpu.dispatch(kernel, affine ? [x, s.weight!, s.bias!, mean, rstd, y] : [x, mean, rstd, y], params, workgroups);
  return { y, mean, rstd };
}

export interface NormBackwardSpec {
  op: string;
  dy: Tensor;
  x: Tensor;
  mean: Tensor;
  rstd: Tensor;
  weight?: Tensor;
  wOffset: number;
  groupRows: number;
  /** Shape of the weight gradients (groups · C elements). */
  gradShape: readonly number[];
  out?: Tensor;
  subgroups?: boolean;
  rowsPerBlock?: number;
  /** Workgroups in all the default block plan aims for (default BLOCK_TARGET; see blockPlan). */
  blockTarget?: number;
  variant?: NormBackwardVariant;
}

/**
 * Rows per workgroup and workgroups per group for the backward: by default about target / slots workgroups
 * in all (the same threads in flight as one-slot workgroups, `slots` times fewer partials).
 */
export function blockPlan(groups: number, groupRows: number, rowsPerBlock?: number, slots = 1, target = BLOCK_TARGET): { blockRows: number; blocks: number } {
  const want = rowsPerBlock ?? Math.ceil(groupRows / Math.max(1, Math.ceil(target / slots / groups)));
  const blockRows = Math.max(1, Math.min(want, groupRows));
  return { blockRows, blocks: Math.max(1, Math.ceil(groupRows / blockRows)) };
}

export function normBackward(gpu: Gpu, s: NormBackwardSpec): { dx: Tensor; dw?: Tensor; db?: Tensor } {
  const { op, dy, x, mean, rstd } = s;
  expectLive(op, dy, x, mean, rstd, ...(s.weight ? [s.weight] : []));
  const { rows, C } = checkRow(op, x);
  expectSameDType(op, x, dy);
  if (!sameShape(dy.shape, x.shape)) throw new ShapeError(`${op}: dy ${dy} must have the shape of x ${x}; pass the gradient of the forward's output`);
  for (const t of [mean, rstd]) {
    if (t.dtype !== 'f32' || t.size !== rows) throw new ShapeError(`${op}: ${t} must be the forward's f32 ${t === mean ? 'mean' : 'rstd'} with one value per row (${rows})`);
  }
  if (s.rowsPerBlock !== undefined && !(Number.isInteger(s.rowsPerBlock) && s.rowsPerBlock >= 1)) {
    throw new ShapeError(`${op}: rowsPerBlock ${s.rowsPerBlock} must be a positive integer`);
  }
  const subgroups = checkSubgroups(gpu, op, s.subgroups);
  const v = s.variant ?? {};
  checkVariant(op, v);
  const dx = output(gpu, op, x.shape, x.dtype, s.out);
  const affine = !!s.weight;
  const groups = rows === 0 ? 0 : rows / s.groupRows;
  const dw = affine ? gpu.tensor(s.gradShape, 'f32', `${op}.dweight`) : undefined;
  const db = affine ? gpu.tensor(s.gradShape, 'f32', `${op}.dbias`) : undefined;
  if (rows === 0) {
    if (dw) gpu.fill(dw, 0);
    if (db) gpu.fill(db, 0);
    return { dx, dw, db };
  }
  const packed = usePacked(op, x.dtype, C, v);
  const { kernel, units, slots } = packed ? packedKernelFor(gpu, op, C, true, affine, subgroups, v) : kernelFor(gpu, op, x.dtype, C, true, affine, subgroups, v);
  // Without weight gradients every workgroup can take `slots` rows (one per slot; packed: 4 per slot). The
  // packed kernel's blocks: about PACKED_BLOCK_TARGET in all (one wave on an H200).
  const plainRows = packed ? Math.min(s.groupRows, s.rowsPerBlock ?? 4 * slots) : slots;
  const { blockRows, blocks } = affine
    ? blockPlan(groups, s.groupRows, s.rowsPerBlock, packed ? 1 : slots, s.blockTarget ?? (packed ? PACKED_BLOCK_TARGET : BLOCK_TARGET))
    : { blockRows: plainRows, blocks: Math.ceil(s.groupRows / plainRows) };
  const { workgroups, groupsX } = grid(gpu, groups * blocks, 1);
  const params = [rows, C, units, groupsX, { f32: 0 }, { f32: s.wOffset }, s.groupRows, blockRows, blocks, x.size];
  if (!affine) {
    gpu.dispatch(kernel, [x, dy, mean, rstd, dx], params, workgroups);
    return { dx };
  }
  // One block per group writes the gradients directly; otherwise [groups, blocks, C] partials are summed.
  const direct = blocks === 1;
  const pw = direct ? dw! : gpu.tensor([groups, blocks, C], 'f32', `${op}.dweight.partial`);
  const pb = direct ? db! : gpu.tensor([groups, blocks, C], 'f32', `${op}.dbias.partial`);
  gpu.dispatch(kernel, [x, s.weight!, dy, mean, rstd, dx, pw, pb], params, workgroups);
  if (!direct) {
    if (v.finalSum === 'colsum') {
      colsum(gpu, pw, pb, dw!, db!, groups, blocks, C, v.colsumTile);
    } else {
      const [dwv, dbv] = [dw!.reshape([groups, C]), db!.reshape([groups, C])];
      sum(gpu, pw, 1, dwv, { subgroups });
      sum(gpu, pb, 1, dbv, { subgroups });
      dwv.release();
      dbv.release();
    }
    pw.release();
    pb.release();
  }
  return { dx, dw, db };
}

/** A weight-like f32 tensor of exactly `shape`, or a ShapeError naming it and the fix. */
export function expectParam(op: string, t: Tensor, name: string, shapes: (readonly number[])[], hint: string): void {
  expectLive(op, t);
  if (!shapes.some((sh) => sameShape(t.shape, sh))) {
    throw new ShapeError(`${op}: ${name} ${t} must be ${shapes.map(shapeStr).join(' or ')}; ${hint}`);
  }
  if (t.dtype !== 'f32') throw new ShapeError(`${op}: ${name} ${t} must be f32 (got ${t.dtype}); cast it with cast(gpu, ${name}, 'f32')`);
}

// ---- LayerNorm ---------------------------------------------------------------------------------------

export interface LayerNormOptions extends NormVariant {
  /** [C] f32 weight (γ); pass bias with it. */
  weight?: Tensor;
  /** [C] f32 bias (β); pass weight with it. */
  bias?: Tensor;
  /** Default 1e-6. */
  eps?: number;
  out?: Tensor;
  /** Row reductions through subgroupAdd (default: when the device has subgroups). */
  subgroups?: boolean;
}

/** y = LayerNorm(x) over the last dim (y has x's shape and dtype); mean and rstd ([rows] f32) are saved for the backward. */
export function layernorm(gpu: Gpu, x: Tensor, opts: LayerNormOptions = {}): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const op = 'layernorm';
  expectLive(op, x);
  const eps = opts.eps ?? 1e-6;
  if (!(eps >= 0 && Number.isFinite(eps))) throw new ShapeError(`${op}: eps ${eps} must be a finite number ≥ 0 (default 1e-6)`);
  checkRow(op, x);
  const C = x.shape.at(-1)!;
  if (!!opts.weight !== !!opts.bias) throw new ShapeError(`${op}: pass both weight and bias (affine) or neither; for a weight without bias pass a zero bias`);
  if (opts.weight) expectParam(op, opts.weight, 'weight', [[C]], `one value per element of the last dim of ${x}`);
  if (opts.bias) expectParam(op, opts.bias, 'bias', [[C]], `one value per element of the last dim of ${x}`);
  // H100 sweep (bench/layernorm.ts --sweep): hardware f16 packing 46 → 66 % of copy for f16 rows.
  const variant = withDefaults(x.dtype === 'f16' ? { fastPack: true } : {}, opts);
  return normForward(gpu, { op, x, weight: opts.weight, bias: opts.bias, wOffset: 0, groupRows: Math.max(1, x.size / C), eps, out: opts.out, subgroups: opts.subgroups, variant });
}

export interface LayerNormBackwardOptions extends NormBackwardVariant {
  /** The forward's [C] f32 weight: also returns dweight and dbias. */
  weight?: Tensor;
  /** dx output. */
  out?: Tensor;
  subgroups?: boolean;
  /** Rows each workgroup handles for the weight gradients (default: about 1024 workgroups in all). */
  rowsPerBlock?: number;
}

/**
 * Gradients of layernorm from dy (x's shape and dtype), the forward's input x and its saved mean and rstd:
 * dx, and with weight, dweight = Σ_rows dy·x̂ and dbias = Σ_rows dy ([C] f32, deterministic).
 */
export function layernormBackward(
  gpu: Gpu,
  dy: Tensor,
  x: Tensor,
  mean: Tensor,
  rstd: Tensor,
  opts: LayerNormBackwardOptions = {},
): { dx: Tensor; dweight?: Tensor; dbias?: Tensor } {
  const op = 'layernormBackward';
  expectLive(op, x);
  checkRow(op, x);
  const C = x.shape.at(-1)!;
  if (opts.weight) expectParam(op, opts.weight, 'weight', [[C]], `pass the forward's weight`);
  const rows = x.size / C;
  // H100 sweep: f16 rows gain from hardware packing (22 → 28 %). H200 profile (bench/layernorm.ts --profile,
  // f32 [16384, 1152] affine): row kernel 77 µs, then the weight-gradient partials summed by four reduce.cols
  // passes 52 µs vs one colsum 19.5 µs (then fewer µs with colsum's per-call column tile), so colsum is the
  // default. The subgroup-row variant ({subgroupRows: true, slots: 8, rowsPerBlock: 128}) passes its GPU tests
  // but its row kernel took 103 µs: an option only.
  // f32: about 512 workgroups (32-row blocks at 16384 rows), as adaLN's sweep found best for the same row
  // kernel and shape (62 → 74 %); confirmed for LayerNorm on the H200 (bench/layernorm.mjs --sweep): 73 %
  // by default vs 66.7 % with 1024 blocks.
  // f16 of even C: the packed kernel (NormVariant.packed; {packed: false} for the unit kernel with these defaults).
  const variant = withDefaults(x.dtype === 'f16' ? { fastPack: true, finalSum: 'colsum' } : { finalSum: 'colsum' }, opts);
  const blockTarget = x.dtype === 'f32' ? 512 : undefined;
  const r = normBackward(gpu, { op, dy, x, mean, rstd, weight: opts.weight, wOffset: 0, groupRows: Math.max(1, rows), gradShape: [C], out: opts.out, subgroups: opts.subgroups, rowsPerBlock: opts.rowsPerBlock, blockTarget, variant });
  return r.dw ? { dx: r.dx, dweight: r.dw, dbias: r.db } : { dx: r.dx };
}
