// Flash attention forward on tensor cores (shaders/attention_tc.wgsl): f16 q/k/v, f32 softmax/accumulation.
// Called by the attention op for variant 'tensorcore'; shapes are checked there.
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import type { Defines } from '../shader.js';
import { ShapeError } from '../errors.js';
import attentionTcWgsl from '../../shaders/attention_tc.wgsl';

const SHADER = { name: 'attention_tc', template: attentionTcWgsl };

export interface AttentionTcArgs {
  q: Tensor; // [B, H, Nq, D] f16
  k: Tensor; // [B, H, Nk, D] f16
  v: Tensor;
  o: Tensor; // [B, H, Nq, D] f16 or f32
  lse: Tensor; // [B, H, Nq] f32
  kvLen?: Tensor; // [B] u32/i32
  scale: number;
  /** Stage K/V with scalar loads and no prefetch even when D allows 16-byte chunks (tests compare both). */
  noVec?: boolean;
}

/** Workgroup memory the kernel needs for head dim D (K, V, P tiles in f16 and the f32 score staging). */
export function attentionTcSharedBytes(D: number): number {
  const DP = Math.ceil(D / 16) * 16;
  return 2 * 64 * (Math.max(DP, 64) + 8) * 2 + 4 * 16 * 64 * 4 + 4;
}

export function attentionForwardTc(gpu: Gpu, a: AttentionTcArgs): void {
  const [B, H, Nq, D] = a.q.shape as [number, number, number, number];
  const need = attentionTcSharedBytes(D);
  if (need > gpu.info.limits.maxComputeWorkgroupStorageSize && gpu.info.backend !== 'null') {
    throw new ShapeError(`attention: the tensor-core kernel needs ${need} bytes of workgroup memory for head dim ${D}, over this device's ${gpu.info.limits.maxComputeWorkgroupStorageSize}; use variant 'tiled' (head dims up to 112 fit in 48 KiB)`);
  }
  const Nk = a.k.shape[2]!;
  const DP = Math.ceil(D / 16) * 16;
  const defines: Defines = { DP, OUT_F16: a.o.dtype === 'f16', MASK: !!a.kvLen, VEC: D % 8 === 0 && !a.noVec };
  const kernel = gpu.kernel(SHADER, 'main', defines);
  const tensors = [a.q, a.k, a.v, a.o, a.lse, ...(a.kvLen ? [a.kvLen] : [])];
  gpu.dispatch(kernel, tensors, [Nq, Nk, D, H, { f32: a.scale * Math.LOG2E }], [Math.ceil(Nq / 64), B * H, 1]);
}
