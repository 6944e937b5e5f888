// Flash attention (scaled dot-product attention that never materialises the N×N scores), forward and backward.
//   q: [B, H, Nq, D], k and v: [B, H, Nk, D], head-major and contiguous (a model with [B, N, H·D] activations
//   permutes to this layout first); o: [B, H, Nq, D]; lse: [B, H, Nq] f32, the row log-sum-exp
//   ln Σ_k exp(scale · q·k), saved for the backward pass. scale defaults to 1/√D; D ≤ 128, any value.
//   kvLen (optional, i32 or u32 [B]): keys at positions ≥ kvLen[b] get zero weight and zero gradient
//   (cross-attention to padded captions); kvLen[b] must be ≥ 1 (0 gives o = 0).
// Variants: 'tiled' (portable, f32 math, q/k/v/o stored f32 or packed f16: shaders/attention.wgsl and
// shaders/attention_backward.wgsl); 'tensorcore' (f16 q/k/v on subgroup matrices, engine/ops/attention_tc.ts,
// only when asked for); 'auto' picks tensor cores for f16 with more than 16 keys or short unmasked sequences (≤ 16
// queries and keys, the packed kernels: temporal attention). The tiled forward's options prefetch (K/V a tile ahead in
// registers), wideLoads (16-byte f16 loads) and stageOutput (o stored in whole units) default on, qRegisters (Q
// vec4s held in registers) to 8 (TR 2) or 4; benchmarks change them to compare.
// The backward is FlashAttention-2: Dr = rowsum(dO∘O), then one kernel per key tile (dK, dV) and one per
// query tile (dQ), each recomputing the scores from q, k and lse; deterministic (no atomics).
import type { DType } from '../dtype.js';
import { ShapeError, shapeStr } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Defines } from '../shader.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, output, sameShape } from './common.js';
import { attentionBackwardTc, attentionForwardTc, attentionTcFits, packable } from './attention_tc.js';
import { tensorcoreUnavailable } from './matmul.js';
import attentionWgsl from '../../shaders/attention.wgsl';
import attentionBackwardWgsl from '../../shaders/attention_backward.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';

const FORWARD = { name: 'attention', template: attentionWgsl + f16Wgsl };
const BACKWARD = { name: 'attention_backward', template: attentionBackwardWgsl + f16Wgsl };

export type AttentionVariant = 'auto' | 'tiled' | 'tensorcore';
export type AttentionKernel = 'forward' | 'dkdv' | 'dq';

/**
 * Thread layout of a tiled kernel: a workgroup of TX·TY threads owns BR = TR·TY tile rows (queries; keys for
 * dkdv) and streams BC = TC·TX columns (keys; queries for dkdv) per step. TX also splits the head dim
 * (each thread owns ⌈D/4/TX⌉ vec4 columns); by default it is chosen from D.
 */
export interface AttentionTile {
  TR: 2 | 4;
  TY: number;
  TC: number;
  TX?: number;
}

export const MAX_HEAD_DIM = 128;

/** Preferred tiles per kernel, tried in order until one fits the device's workgroup memory. */
const PREFERRED: Record<AttentionKernel, AttentionTile[]> = {
  forward: [{ TR: 2, TY: 32, TC: 4 }, { TR: 4, TY: 16, TC: 4 }, { TR: 2, TY: 16, TC: 4 }, { TR: 2, TY: 16, TC: 2 }, { TR: 2, TY: 8, TC: 2 }, { TR: 2, TY: 8, TC: 1 }],
  dkdv: [{ TR: 2, TY: 16, TC: 4 }, { TR: 2, TY: 16, TC: 2 }, { TR: 2, TY: 8, TC: 2 }, { TR: 2, TY: 8, TC: 1 }],
  dq: [{ TR: 2, TY: 16, TC: 4 }, { TR: 2, TY: 16, TC: 2 }, { TR: 2, TY: 8, TC: 2 }, { TR: 2, TY: 8, TC: 1 }],
};

/**
 * Threads along the head dim for D: no padding of D/4 to a multiple of TX if possible, then 2–4 vec4s per
 * thread, an even TX, TX near 8 (D 72 → 6 × 3 vec4s, D 64 → 8 × 2, D 128 → 8 × 4).
 */
export function headSplit(D: number): { TX: number; TD4: number } {
  const D4 = Math.ceil(D / 4);
  let bestScore = Infinity;
  let best = { TX: 1, TD4: D4 };
  for (let TX = 1; TX <= 16; TX++) {
    const TD4 = Math.ceil(D4 / TX);
    const score = (TX * TD4 - D4) * 100 + (TX < 4 ? (4 - TX) * 5 : 0) + (TD4 > 4 ? 50 : 0) + (TD4 < 2 ? 3 : 0) + (TX % 2) * 2 + Math.abs(TX - 8) * 0.5;
    if (score < bestScore) {
      bestScore = score;
      best = { TX, TD4 };
    }
  }
  return best;
}

interface Layout {
  TR: number;
  TY: number;
  TC: number;
  TX: number;
  TD4: number;
  D4: number;
  RS: number;
}

function layout(D: number, t: AttentionTile): Layout {
  const D4 = Math.ceil(D / 4);
  const TX = t.TX ?? headSplit(D).TX;
  const TD4 = Math.ceil(D4 / TX);
  const D4P = TX * TD4;
  return { TR: t.TR, TY: t.TY, TC: t.TC, TX, TD4, D4, RS: D4P % 2 ? D4P : D4P + 1 };
}

/** Workgroup memory (bytes) of one tiled kernel for head dim D. */
export function attentionSharedBytes(kernel: AttentionKernel, D: number, tile: AttentionTile): number {
  const { TR, TY, TC, TX, TD4, RS } = layout(D, tile);
  const BR = TR * TY;
  const BC = TC * TX;
  const rv = 4 * TR * BC * TY; // one [column][ty] array of vec<TR>
  if (kernel === 'forward') return 16 * (BR * RS + BC * RS + BC * TX * TD4) + rv + 4 * BR * TX + 4;
  if (kernel === 'dkdv') return 16 * 2 * (BR + BC) * RS + 2 * rv + 8 * BC + 4;
  return 16 * 2 * (BR + BC) * RS + rv + 4;
}

/** The tile a kernel uses for `rows` tile rows and `cols` streamed columns per sequence on this device. */
export function chooseAttentionTile(gpu: Gpu, kernel: AttentionKernel, D: number, rows: number, cols: number): AttentionTile {
  const { TX } = headSplit(D);
  const limit = gpu.info.limits.maxComputeWorkgroupStorageSize;
  const candidates = PREFERRED[kernel].filter((t) => rows > 32 || t.TR === 2);
  for (const c of candidates) {
    // Shrink to short sequences: no more rows or columns than the sequence has (many tiny sequences stay cheap).
    const t: AttentionTile = { TR: c.TR, TY: Math.min(c.TY, Math.max(1, Math.ceil(rows / c.TR))), TC: Math.min(c.TC, Math.max(1, Math.ceil(cols / TX))) };
    if (attentionSharedBytes(kernel, D, t) <= limit) return t;
  }
  return { TR: 2, TY: 4, TC: 1 };
}

function checkTile(gpu: Gpu, op: string, kernel: AttentionKernel, D: number, t: AttentionTile): Layout {
  const l = layout(D, t);
  const threads = l.TX * l.TY;
  if ((t.TR !== 2 && t.TR !== 4) || !Number.isInteger(t.TY) || t.TY < 1 || !Number.isInteger(t.TC) || t.TC < 1 || !Number.isInteger(l.TX) || l.TX < 1) {
    throw new ShapeError(`${op}: ${kernel} tile ${JSON.stringify(t)} is invalid; TR must be 2 or 4 and TY, TC, TX positive integers`);
  }
  if (threads > gpu.info.limits.maxComputeInvocationsPerWorkgroup) {
    throw new ShapeError(`${op}: ${kernel} tile ${JSON.stringify(t)} needs ${threads} threads (TX ${l.TX} × TY ${l.TY}), over this device's ${gpu.info.limits.maxComputeInvocationsPerWorkgroup}; use a smaller TY`);
  }
  const bytes = attentionSharedBytes(kernel, D, t);
  if (bytes > gpu.info.limits.maxComputeWorkgroupStorageSize) {
    throw new ShapeError(`${op}: ${kernel} tile ${JSON.stringify(t)} needs ${bytes} bytes of workgroup memory for head dim ${D}, over this device's ${gpu.info.limits.maxComputeWorkgroupStorageSize}; use a smaller TR, TY or TC`);
  }
  return l;
}

function tileDefines(D: number, l: Layout): Defines {
  return { D, D4: l.D4, TD4: l.TD4, RS: l.RS, TR: l.TR, TY: l.TY, TX: l.TX, TC: l.TC };
}

export interface AttentionOptions {
  /** Softmax scale; default 1/√D. */
  scale?: number;
  /** Valid keys per sample, i32 or u32 [B]. */
  kvLen?: Tensor;
  variant?: AttentionVariant;
  /** dtype of o; defaults to q's. */
  outDtype?: 'f32' | 'f16';
  out?: Tensor;
  lse?: Tensor;
  /** Tile of the forward kernel (benchmarks sweep these); default chosen by shape and device. */
  tile?: AttentionTile;
  /**
   * Tiled forward: load the next K/V tile into registers while the current one is used from workgroup
   * memory (register prefetch; 3 barriers a tile instead of 4); default true (H100, B4 H16 N4096 D72 f32 before
   * qRegisters: 18.8 TFLOP/s without, 20.0 with).
   */
  prefetch?: boolean;
  /**
   * Tiled forward: vec4s of each of the thread's Q rows held in registers for the whole key loop (the rest read
   * from workgroup memory per key tile); default min(D/4, 8 for TR 2, 4 for TR 4). H100, D72: 8 → 21.2 TFLOP/s,
   * 6 → 20.7, 12 → 20.4, none → 20.0 (odd counts 3, 7, 9: 19.0–20.0).
   */
  qRegisters?: number;
  /** Tiled forward with f16 storage and D a multiple of 8: load 8 halves (16 bytes) at a time; default true. */
  wideLoads?: boolean;
  /**
   * Tiled forward: stage o through workgroup memory and store it in whole 16-byte units (8 halves or 4 floats)
   * by all threads, instead of each thread storing its own columns; default true.
   */
  stageOutput?: boolean;
}

export interface AttentionBackwardOptions {
  scale?: number;
  kvLen?: Tensor;
  variant?: AttentionVariant;
  dq?: Tensor;
  dk?: Tensor;
  dv?: Tensor;
  tiles?: { dkdv?: AttentionTile; dq?: AttentionTile };
}

interface Dims {
  B: number;
  H: number;
  Nq: number;
  Nk: number;
  D: number;
}

/** Validates q, k, v (and kvLen) and returns the dims. */
function checkQkv(op: string, q: Tensor, k: Tensor, v: Tensor, kvLen: Tensor | undefined, variant: AttentionVariant): Dims {
  expectLive(op, q, k, v, ...(kvLen ? [kvLen] : []));
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.rank !== 4) throw new ShapeError(`${op}: ${name} ${t} must be rank 4 [B, H, N, D] (head-major); permute [B, N, H, D] activations first`);
    expectDType(op, t, ['f32', 'f16']);
  }
  if (k.dtype !== q.dtype || v.dtype !== q.dtype) throw new ShapeError(`${op}: q, k and v must share a dtype (got ${q.dtype}, ${k.dtype}, ${v.dtype}); cast them first`);
  const [B, H, Nq, D] = q.shape as [number, number, number, number];
  const [kb, kh, Nk, kd] = k.shape as [number, number, number, number];
  if (kd !== D) throw new ShapeError(`${op}: k ${k} has head dim ${kd} but q ${q} has ${D}; q, k and v need the same D`);
  if (kb !== B || kh !== H) throw new ShapeError(`${op}: k ${k} must have q's batch and heads [${B}, ${H}, Nk, ${D}]`);
  if (!sameShape(v.shape, k.shape)) throw new ShapeError(`${op}: v ${v} must have k's shape ${shapeStr(k.shape)}`);
  if (D < 1 || D > MAX_HEAD_DIM) throw new ShapeError(`${op}: head dim ${D} is outside 1..${MAX_HEAD_DIM}; split the heads`);
  if (Nk < 1 && B * H * Nq > 0) throw new ShapeError(`${op}: k ${k} has no keys; attention needs Nk ≥ 1`);
  if (kvLen) {
    if (kvLen.dtype !== 'i32' && kvLen.dtype !== 'u32') throw new ShapeError(`${op}: kvLen ${kvLen} has dtype ${kvLen.dtype}; expected i32 or u32 (valid keys per sample)`);
    if (kvLen.rank !== 1 || kvLen.shape[0] !== B) throw new ShapeError(`${op}: kvLen ${kvLen} must be [${B}] (one length per batch item)`);
  }
  return { B, H, Nq, Nk, D };
}

/**
 * Whether the tensor-core kernels run: variant 'tensorcore' (f16 q/k/v and the device features), or 'auto' for
 * f16 on such a device when there are more than 16 keys (H100: 19 vs 3.6 TFLOP/s forward at N4096) or when
 * queries and keys are both ≤ 16 without a key mask (the packed kernels, one sequence a subgroup; H200, temporal
 * 1024×16 D72: forward 8.85 vs 2.96 TFLOP/s for the tiled kernel on f16 storage, backward 6.25 vs 3.3 for the
 * tiled f32 one). Few keys for many queries, or masked short sequences, stay on the tiled kernels, and so does a
 * pass whose tensor-core kernel would not fit the device's workgroup memory (attentionTcFits: e.g. the general
 * backward past head dim 80 in 48 KiB; the forward and backward then may differ, which their outputs allow).
 */
function tensorcore(gpu: Gpu, op: string, q: Tensor, variant: AttentionVariant, Nk: number, masked: boolean, pass: 'forward' | 'backward'): boolean {
  if (variant === 'tiled') return false;
  const [Nq, D] = [q.shape[2]!, q.shape[3]!];
  if (variant === 'auto') return q.dtype === 'f16' && (Nk > 16 || (packable(Nq, Nk) && !masked)) && !tensorcoreUnavailable(gpu) && attentionTcFits(gpu, pass, D, Nq, Nk, masked);
  if (variant !== 'tensorcore') throw new ShapeError(`${op}: unknown variant "${variant}"; use 'auto', 'tiled' or 'tensorcore'`);
  if (q.dtype !== 'f16') throw new ShapeError(`${op}: the tensorcore variant takes f16 q, k and v (got ${q.dtype}); cast them or use variant 'tiled'`);
  const why = tensorcoreUnavailable(gpu);
  if (why) throw new ShapeError(`${op}: the tensorcore variant cannot run on ${gpu.info.adapter}: ${why}; use variant 'tiled'`);
  return true;
}

/** Workgroup grid for `total` workgroups and its x width. */
function grid(gpu: Gpu, total: number): { groups: [number, number, number]; gx: number } {
  const groups = gpu.grid1d(total);
  return { groups, gx: groups[0] };
}

/** o = softmax(scale · q·kᵀ (masked by kvLen)) · v and lse = the rows' log-sum-exp. */
export function attention(gpu: Gpu, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): { o: Tensor; lse: Tensor } {
  const op = 'attention';
  const { B, H, Nq, Nk, D } = checkQkv(op, q, k, v, opts.kvLen, opts.variant ?? 'auto');
  const outDtype: DType = opts.outDtype ?? q.dtype;
  if (outDtype !== 'f32' && outDtype !== 'f16') throw new ShapeError(`${op}: outDtype ${outDtype} must be f32 or f16`);
  if (outDtype === 'f16' && D % 2 !== 0) throw new ShapeError(`${op}: f16 output is written in pairs and needs an even head dim (got ${D}); use outDtype 'f32'`);
  const o = output(gpu, op, q.shape, outDtype, opts.out);
  const lse = output(gpu, op, [B, H, Nq], 'f32', opts.lse);
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const tc = tensorcore(gpu, op, q, opts.variant ?? 'auto', k.shape[2]!, !!opts.kvLen, 'forward');
  if (B * H * Nq === 0) return { o, lse };
  if (tc) {
    attentionForwardTc(gpu, { q, k, v, o, lse, kvLen: opts.kvLen, scale });
    return { o, lse };
  }
  const { defines, rowTiles } = tiledForwardPlan(gpu, q.dtype, outDtype, D, Nq, Nk, opts);
  const total = rowTiles * B * H;
  const { groups, gx } = grid(gpu, total);
  const tensors = [q, k, v, o, lse, ...(opts.kvLen ? [opts.kvLen] : [])];
  gpu.dispatch(gpu.kernel(FORWARD, 'main', defines), tensors, [Nq, Nk, H, rowTiles, gx, total, { f32: scale * Math.LOG2E }], groups);
  return { o, lse };
}

/**
 * The tiled forward's defines (shaders/attention.wgsl) and query tiles per sequence for these dtypes, dims and
 * options: the tile (opts.tile or the device's choice) checked against the device. bench/attention_tiled_ab
 * builds edited copies of the shader from them.
 */
export function tiledForwardPlan(gpu: Gpu, qDtype: DType, outDtype: DType, D: number, Nq: number, Nk: number, opts: AttentionOptions = {}): { defines: Defines; rowTiles: number } {
  const tile = opts.tile ?? chooseAttentionTile(gpu, 'forward', D, Nq, Nk);
  const l = checkTile(gpu, 'attention', 'forward', D, tile);
  const qRegisters = opts.qRegisters ?? Math.min(l.D4, l.TR === 2 ? 8 : 4);
  if (!Number.isInteger(qRegisters) || qRegisters < 1 || qRegisters > l.D4) {
    throw new ShapeError(`attention: qRegisters ${opts.qRegisters} must be an integer in 1..${l.D4} (vec4s of a Q row at head dim ${D})`);
  }
  const vec8 = qDtype === 'f16' && D % 8 === 0 && opts.wideLoads !== false;
  const stage = opts.stageOutput !== false;
  const ovec = stage && D % (outDtype === 'f16' ? 8 : 4) === 0;
  const defines: Defines = {
    ...tileDefines(D, l),
    QKV_F16: qDtype === 'f16',
    O_F16: outDtype === 'f16',
    VEC: D % 4 === 0,
    VEC8: vec8,
    UV: vec8 ? 2 : 1,
    PREFETCH: opts.prefetch !== false,
    QK: qRegisters,
    STAGE_O: stage,
    OVEC: ovec,
    UO: ovec ? D / (outDtype === 'f16' ? 8 : 4) : outDtype === 'f16' ? D / 2 : D,
    MASK: !!opts.kvLen,
    KVT: opts.kvLen?.dtype ?? 'u32',
  };
  return { defines, rowTiles: Math.ceil(Nq / (l.TR * l.TY)) };
}

/**
 * Gradients of attention with respect to q, k and v, given the forward's o and lse and the output gradient
 * dO (o's shape and dtype). Gradients have q's dtype; pass the forward's scale and kvLen.
 */
export function attentionBackward(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: Tensor,
  lse: Tensor,
  dO: Tensor,
  opts: AttentionBackwardOptions = {},
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const op = 'attentionBackward';
  const { B, H, Nq, Nk, D } = checkQkv(op, q, k, v, opts.kvLen, opts.variant ?? 'auto');
  expectLive(op, o, lse, dO);
  expectDType(op, o, ['f32', 'f16']);
  if (!sameShape(o.shape, q.shape)) throw new ShapeError(`${op}: o ${o} must have q's shape ${shapeStr(q.shape)}`);
  if (!sameShape(dO.shape, q.shape) || dO.dtype !== o.dtype) throw new ShapeError(`${op}: dO ${dO} must be ${shapeStr(q.shape)} ${o.dtype} (o's shape and dtype)`);
  if (!sameShape(lse.shape, [B, H, Nq]) || lse.dtype !== 'f32') throw new ShapeError(`${op}: lse ${lse} must be [${B}, ${H}, ${Nq}] f32 (the forward's lse)`);
  if (q.dtype === 'f16' && D % 2 !== 0) throw new ShapeError(`${op}: f16 gradients are written in pairs and need an even head dim (got ${D}); use f32 inputs`);
  const dq = output(gpu, op, q.shape, q.dtype, opts.dq);
  const dk = output(gpu, op, k.shape, k.dtype, opts.dk);
  const dv = output(gpu, op, v.shape, v.dtype, opts.dv);
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const tc = tensorcore(gpu, op, q, opts.variant ?? 'auto', k.shape[2]!, !!opts.kvLen, 'backward');
  if (tc && dO.dtype !== 'f16') throw new ShapeError(`${op}: the tensorcore variant takes f16 dO and o (got ${dO.dtype}); use variant 'tiled'`);
  if (B * H * Nk === 0) return { dq, dk, dv };
  if (tc) {
    if (B * H * Nq === 0) {
      gpu.fill(dk, 0);
      gpu.fill(dv, 0);
    } else attentionBackwardTc(gpu, { q, k, v, o, dout: dO, lse, dq, dk, dv, kvLen: opts.kvLen, scale });
    return { dq, dk, dv };
  }
  const vec = D % 4 === 0;
  const word = (t: Tensor) => (t.dtype === 'f16' ? (vec ? 'vec2<u32>' : 'u32') : vec ? 'vec4<f32>' : 'f32');
  const base: Defines = {
    QW: word(q),
    OW: word(o),
    QKV_F16: q.dtype === 'f16',
    O_F16: o.dtype === 'f16',
    VEC: vec,
    KVT: opts.kvLen?.dtype ?? 'u32',
  };
  const mask = opts.kvLen ? [opts.kvLen] : [];
  const params = (rowTiles: number, gx: number, total: number) => [Nq, Nk, H, rowTiles, gx, total, { f32: scale }, { f32: scale * Math.LOG2E }];

  // Dr = rowsum(dO ∘ O): a thread per row
  const rows = B * H * Nq;
  const dr = gpu.tensor([B, H, Nq], 'f32', 'attention.dr');
  if (rows > 0) {
    const pre = gpu.kernel(BACKWARD, 'pre', { ...base, ...tileDefines(D, layout(D, { TR: 2, TY: 1, TC: 1 })), PRE: true, DKDV: false, DQ: false, MASK: false });
    const { groups, gx } = grid(gpu, Math.ceil(rows / 64));
    gpu.dispatch(pre, [o, dO, dr], params(0, gx, rows), groups);
  }

  // dK, dV: a workgroup per key tile
  const tk = checkTile(gpu, op, 'dkdv', D, opts.tiles?.dkdv ?? chooseAttentionTile(gpu, 'dkdv', D, Nk, Nq));
  const kTiles = Math.ceil(Nk / (tk.TR * tk.TY));
  const g1 = grid(gpu, kTiles * B * H);
  const dkdv = gpu.kernel(BACKWARD, 'dkdv', { ...base, ...tileDefines(D, tk), PRE: false, DKDV: true, DQ: false, MASK: !!opts.kvLen });
  gpu.dispatch(dkdv, [q, k, v, dO, lse, dr, dk, dv, ...mask], params(kTiles, g1.gx, kTiles * B * H), g1.groups);

  // dQ: a workgroup per query tile
  if (rows > 0) {
    const tq = checkTile(gpu, op, 'dq', D, opts.tiles?.dq ?? chooseAttentionTile(gpu, 'dq', D, Nq, Nk));
    const qTiles = Math.ceil(Nq / (tq.TR * tq.TY));
    const g2 = grid(gpu, qTiles * B * H);
    const dqk = gpu.kernel(BACKWARD, 'dq_main', { ...base, ...tileDefines(D, tq), PRE: false, DKDV: false, DQ: true, MASK: !!opts.kvLen });
    gpu.dispatch(dqk, [q, k, v, dO, lse, dr, dq, ...mask], params(qTiles, g2.gx, qTiles * B * H), g2.groups);
  }
  dr.release();
  return { dq, dk, dv };
}

/** FLOPs counted for throughput: 4·B·H·Nq·Nk·D forward (two matmuls), 2.5× that backward (as FlashAttention counts). */
export function attentionFlops(B: number, H: number, Nq: number, Nk: number, D: number, backward = false): number {
  const f = 4 * B * H * Nq * Nk * D;
  return backward ? 2.5 * f : f;
}
