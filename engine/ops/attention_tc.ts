// Flash attention on tensor cores: forward (shaders/attention_tc.wgsl: entry main, O in subgroup-matrix
// accumulators with a lazily raised reference max; entry packed for sequences of ≤ 16) and backward
// (shaders/attention_tc_backward.wgsl; (lse, Δ) pairs from shaders/attention_delta.wgsl); f16 q/k/v, f32 softmax/accumulation.
// Called by the attention op for variant 'tensorcore'; shapes are checked there.
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import type { Defines, Kernel } from '../shader.js';
import { ShapeError } from '../errors.js';
import attentionTcWgsl from '../../shaders/attention_tc.wgsl';
import attentionTcBackwardWgsl from '../../shaders/attention_tc_backward.wgsl';
import attentionTcBackwardPackedWgsl from '../../shaders/attention_tc_backward_packed.wgsl';
import attentionDeltaWgsl from '../../shaders/attention_delta.wgsl';
import stagingWgsl from '../../shaders/attention_tc_staging.wgsl';
import backwardInputsWgsl from '../../shaders/attention_tc_backward_inputs.wgsl';
import commonWgsl from '../../shaders/attention_tc_common.wgsl';

// Both forward entries (main, packed) render from one source: the packed one stages its tiles through the same
// chunk fetches (seq_chunk → fetch_chunk) and packs with pack4.
const SHADER = { name: 'attention_tc', template: attentionTcWgsl + stagingWgsl + commonWgsl };
// Both backward kernels bind their inputs (q, k, v, dO, (lse, Δ) pairs) through one snippet.
const BACKWARD = { name: 'attention_tc_backward', template: attentionTcBackwardWgsl + backwardInputsWgsl + stagingWgsl + commonWgsl };
const PACKED_BACKWARD = { name: 'attention_tc_backward_packed', template: attentionTcBackwardPackedWgsl + backwardInputsWgsl + stagingWgsl + commonWgsl };
const DELTA = { name: 'attention_delta', template: attentionDeltaWgsl };

export interface AttentionTcArgs {
  q: Tensor; // [B, H, Nq, D] f16
  k: Tensor; // [B, H, Nk, D] f16
  v: Tensor;
  o: Tensor; // [B, H, Nq, D] f16 or f32
  lse: Tensor; // [B, H, Nq] f32
  kvLen?: Tensor; // [B] u32/i32
  scale: number;
  /** Scalar Q/K/V loads and O stores even when D allows 16-byte words (tests compare both). */
  noVec?: boolean;
  /** Use the general kernel even for sequences short enough to pack four per workgroup. */
  noPack?: boolean;
  /** Stage O (rescales, epilogue) through a 64-wide area in several passes even when a D-wide one fits (tests). */
  narrowStaging?: boolean;
}

/**
 * Workgroup memory the general kernel needs for head dim D and score-staging row stride SW (f16 K/V/P tiles, f32
 * staging, wg_nk and the wg_raise flags); the packed one needs 16 bytes less.
 */
export function attentionTcSharedBytes(D: number, SW = 68): number {
  const DP = Math.ceil(D / 16) * 16;
  return 2 * 64 * (Math.max(DP, 64) + 8) * 2 + 4 * 16 * SW * 4 + 4 + 16;
}

/**
 * The general kernel's Ss row strides (floats), widest first: D wide (all O fragments staged in one pass) and
 * 64 wide, each + 4 and rounded up to 8 (mod 16), i.e. 8 or 24 (mod 32), where each quarter-warp's 16-byte
 * score reads fall on distinct banks; then 68 (2-way conflicts on those reads, still exact) for head dims where
 * 72 does not fit (97–112 in 48 KiB).
 */
export function stagingWidths(DP: number): number[] {
  const conflictFree = (w: number) => Math.ceil((w - 8) / 16) * 16 + 8;
  return [...new Set([conflictFree(Math.max(64, DP) + 4), 72, 68])];
}

/** The widest Ss stride that fits the device (the narrowest two only with `narrow`). */
function stagingWidth(gpu: Gpu, D: number, narrow?: boolean): number {
  const widths = stagingWidths(Math.ceil(D / 16) * 16);
  const fits = (narrow ? widths.slice(-2) : widths).filter((w) => attentionTcSharedBytes(D, w) <= gpu.info.limits.maxComputeWorkgroupStorageSize);
  return fits[0] ?? 68;
}

/** F2..F8: which of the kernels' named, unrolled 16-wide D fragments exist for D padded to DP. */
function fragmentFlags(DP: number): Defines {
  const flags: Defines = {};
  for (let i = 2; i <= 8; i++) flags[`F${i}`] = DP / 16 >= i;
  return flags;
}

/** Variant of a forward kernel: DP = D padded to 16, SW the Ss row stride (stagingWidth; 68 when packed). */
export interface AttentionTcForwardVariant {
  DP: number;
  outF16: boolean;
  mask: boolean;
  vec: boolean;
  SW: number;
  /** Entry packed (four sequences of ≤ 16 per workgroup, VEC off) instead of the general entry main. */
  pack?: boolean;
}

/**
 * The forward kernel for one variant (exported so that the null-backend test compiles every variant). F2..F8 say
 * which of main's (named, unrolled) 16-wide D fragments exist; the packed render leaves them out but the
 * template names them.
 */
export function attentionTcForwardKernel(gpu: Gpu, v: AttentionTcForwardVariant): Kernel {
  const { DP, SW } = v;
  const defines: Defines = { DP, OUT_F16: v.outF16, MASK: v.mask, VEC: v.vec, PACK: !!v.pack, SW, ...fragmentFlags(DP) };
  return gpu.kernel(SHADER, v.pack ? 'packed' : 'main', defines);
}

export function attentionForwardTc(gpu: Gpu, a: AttentionTcArgs): void {
  const [B, H, Nq, D] = a.q.shape as [number, number, number, number];
  const need = attentionTcSharedBytes(D, 68); // the narrowest staging (wider is chosen only when it fits)
  if (need > gpu.info.limits.maxComputeWorkgroupStorageSize && gpu.info.backend !== 'null') {
    throw new ShapeError(`attention: the tensor-core kernel needs ${need} bytes of workgroup memory for head dim ${D}, over this device's ${gpu.info.limits.maxComputeWorkgroupStorageSize}; use variant 'tiled' (head dims up to 112 fit in 48 KiB)`);
  }
  const Nk = a.k.shape[2]!;
  const DP = Math.ceil(D / 16) * 16;
  const tensors = [a.q, a.k, a.v, a.o, a.lse, ...(a.kvLen ? [a.kvLen] : [])];
  const pack = packable(Nq, Nk) && !a.noPack;
  const outF16 = a.o.dtype === 'f16';
  const mask = !!a.kvLen;
  if (pack) {
    // short sequences (temporal attention): four (b, h) per workgroup, one per subgroup
    const grid = gpu.grid1d(Math.ceil((B * H) / 4));
    const kernel = attentionTcForwardKernel(gpu, { DP, outF16, mask, vec: D % 8 === 0 && !a.noVec, SW: 68, pack: true });
    gpu.dispatch(kernel, tensors, [Nq, Nk, D, H, { f32: a.scale * Math.LOG2E }, B * H, grid[0]], grid);
    return;
  }
  const vec = D % 8 === 0 && !a.noVec;
  const kernel = attentionTcForwardKernel(gpu, { DP, outF16, mask, vec, SW: stagingWidth(gpu, D, a.narrowStaging) });
  gpu.dispatch(kernel, tensors, [Nq, Nk, D, H, { f32: a.scale * Math.LOG2E }, B * H, 0], [Math.ceil(Nq / 64), B * H, 1]);
}

export interface AttentionTcBackwardArgs {
  q: Tensor; // [B, H, Nq, D] f16
  k: Tensor; // [B, H, Nk, D] f16
  v: Tensor;
  o: Tensor; // forward output [B, H, Nq, D] (f16 or f32)
  dout: Tensor; // [B, H, Nq, D] f16
  lse: Tensor; // [B, H, Nq] f32 from the forward
  dq: Tensor; // [B, H, Nq, D] f16 or f32 (all three the same dtype)
  dk: Tensor; // [B, H, Nk, D]
  dv: Tensor;
  kvLen?: Tensor;
  scale: number;
  /** Scalar tile loads and dQ/dK/dV stores even when D allows 16-byte words (tests compare both). */
  noVec?: boolean;
  /** Use the general kernels even for sequences short enough for the packed one. */
  noPack?: boolean;
}

/**
 * Sequences short enough for the packed kernels (one sequence a subgroup, its own 16 × 16 blocks): ≤ 16 queries
 * and keys. The packed forward also takes a key mask; the packed backward does not (masked: the general kernels).
 */
export function packable(Nq: number, Nk: number): boolean {
  return Nq <= 16 && Nk <= 16;
}

/** Workgroup memory of the general backward (dkdv / dq): tiles, Ss, Ps, wg_nk, lse_t / delta_t. */
function generalBackwardBytes(DP: number): number {
  return 2 * 64 * (Math.max(DP, 64) + 8) * 2 + 4 * 16 * 64 * 4 + 4 * 16 * 72 * 2 + 4 + 2 * 64 * 4;
}

/**
 * Whether the tensor-core kernels for this shape fit the device's workgroup memory (what the ops would otherwise
 * reject with "use variant 'tiled'"): the forward up to head dim 112 in 48 KiB, the general backward up to 80,
 * the packed backward (≤ 16 queries and keys, unmasked) up to 128. Variant 'auto' asks this first.
 */
export function attentionTcFits(gpu: Gpu, pass: 'forward' | 'backward', D: number, Nq: number, Nk: number, masked: boolean): boolean {
  const DP = Math.ceil(D / 16) * 16;
  const limit = gpu.info.limits.maxComputeWorkgroupStorageSize;
  if (pass === 'forward') return attentionTcSharedBytes(D, 68) <= limit;
  return (packable(Nq, Nk) && !masked ? packedBackwardBytes(DP) : generalBackwardBytes(DP)) <= limit;
}

/** Sequences (one a subgroup) a workgroup of the packed backward takes. */
const PACKED_BACKWARD_SEQS = 2;

/** The packed backward kernel for one variant (exported so that the null-backend test compiles every variant). */
export function attentionTcBackwardPackedKernel(gpu: Gpu, v: { DP: number; outF16: boolean; vec: boolean }): Kernel {
  return gpu.kernel(PACKED_BACKWARD, 'packed', { DP: v.DP, NS: PACKED_BACKWARD_SEQS, OUT_F16: v.outF16, VEC: v.vec });
}

/** Workgroup memory of the packed backward (attention_tc_backward_packed.wgsl): 4 tiles, Ss, Ps. */
function packedBackwardBytes(DP: number): number {
  const rows = 16 * PACKED_BACKWARD_SEQS;
  return 4 * rows * (DP + 8) * 2 + rows * 68 * 4 + rows * 40 * 2;
}

/**
 * (lse_i · log2 e, Δ_i = Σ_d dO_id · O_id) pairs ([B, H, Nq, 2] f32) for the tensor-core backward kernels (one
 * binding for both keeps them at 8 storage buffers).
 */
export function attentionDelta(gpu: Gpu, o: Tensor, dout: Tensor, lse: Tensor, lseDelta: Tensor): void {
  const D = o.shape[o.rank - 1]!;
  const rows = o.size / D;
  if (o.dtype !== dout.dtype) throw new ShapeError(`attention backward: o (${o.dtype}) and dout (${dout.dtype}) must share a dtype for the Δ kernel`);
  const g = gpu.grid1d(Math.ceil(rows / 64));
  gpu.dispatch(gpu.kernel(DELTA, 'main', { F16: o.dtype === 'f16' }), [o, dout, lseDelta, lse], [rows, D, g[0]], g);
}

/** dQ, dK, dV on tensor cores, recomputing the scores from q, k and lse (no N×N matrix). */
export function attentionBackwardTc(gpu: Gpu, a: AttentionTcBackwardArgs): void {
  const [B, H, Nq, D] = a.q.shape as [number, number, number, number];
  const Nk = a.k.shape[2]!;
  const DP = Math.ceil(D / 16) * 16;
  const limit = gpu.info.limits.maxComputeWorkgroupStorageSize;
  const packed = packable(Nq, Nk) && !a.kvLen && !a.noPack && packedBackwardBytes(DP) <= limit;
  const need = generalBackwardBytes(DP);
  if (!packed && need > limit && gpu.info.backend !== 'null') {
    throw new ShapeError(`attention backward: the tensor-core kernel needs ${need} bytes of workgroup memory for head dim ${D}, over this device's ${limit}; use variant 'tiled'`);
  }
  const dout = a.dout;
  if (a.o.dtype !== dout.dtype) throw new ShapeError(`attention backward: o (${a.o.dtype}) and dout (${dout.dtype}) must share a dtype`);
  const vec = D % 8 === 0 && !a.noVec;
  // (lse · log2 e, Δ) pairs a query row: one binding for both keeps every backward kernel at 8 storage buffers
  const lseDelta = gpu.tensor([B, H, Nq, 2], 'f32', 'attention lse·log2e, delta'); // only once the inputs are checked
  attentionDelta(gpu, a.o, dout, a.lse, lseDelta);
  if (packed) {
    // short sequences (temporal attention): dQ, dK, dV in one pass, one sequence a subgroup
    const grid = gpu.grid1d(Math.ceil((B * H) / PACKED_BACKWARD_SEQS));
    const kernel = attentionTcBackwardPackedKernel(gpu, { DP, outF16: a.dq.dtype === 'f16', vec });
    gpu.dispatch(kernel, [a.q, a.k, a.v, dout, lseDelta, a.dq, a.dk, a.dv], [Nq, Nk, D, { f32: a.scale }, { f32: a.scale * Math.LOG2E }, B * H, grid[0]], grid);
  } else {
    const mask = a.kvLen ? [a.kvLen] : [];
    const defines: Defines = { DP, OUT_F16: a.dq.dtype === 'f16', MASK: !!a.kvLen, VEC: vec, ...fragmentFlags(DP) };
    const params = [Nq, Nk, D, H, { f32: a.scale }, { f32: a.scale * Math.LOG2E }];
    gpu.dispatch(gpu.kernel(BACKWARD, 'dkdv', defines), [a.q, a.k, a.v, dout, lseDelta, a.dk, a.dv, ...mask], params, [Math.ceil(Nk / 64), B * H, 1]);
    // dq writes only its first gradient binding; dv fills the second slot of the shared layout.
    gpu.dispatch(gpu.kernel(BACKWARD, 'dq', defines), [a.q, a.k, a.v, dout, lseDelta, a.dq, a.dv, ...mask], params, [Math.ceil(Nq / 64), B * H, 1]);
  }
  lseDelta.release();
}
