// Helpers shared by the op tests (not a test file itself).
import type { Gpu, MatmulPrecision } from '../engine/gpu.js';
import { Tensor } from '../engine/tensor.js';

/**
 * Runs `fn` with maxComputeWorkgroupsPerDimension lowered to `max`, so small tensors already need a folded
 * 2-D grid (wid.y > 0), the path that otherwise needs over 16M threads. Restores the real limit afterwards.
 */
export async function withGridLimit<T>(gpu: Gpu, max: number, fn: () => Promise<T>): Promise<T> {
  const limits = gpu.info.limits as { maxComputeWorkgroupsPerDimension: number };
  const real = limits.maxComputeWorkgroupsPerDimension;
  limits.maxComputeWorkgroupsPerDimension = max;
  try {
    return await fn();
  } finally {
    limits.maxComputeWorkgroupsPerDimension = real;
  }
}

/** The raw 32-bit words of a tensor's buffer, the last word's padding included (f16 halves unpacked by the caller). */
export async function readWords(gpu: Gpu, t: Tensor): Promise<Uint32Array> {
  const view = new Tensor(gpu, [Math.max(1, Math.ceil(t.byteLength / 4))], 'u32', t.buffer, `${t.name}.words`);
  view.isView = true;
  return (await view.read()) as Uint32Array;
}

/**
 * Runs `fn` with the Gpu's matmul precision, the tests-only f16x3 forcing (everywhere: matmulF16x3 even
 * without tensor cores) and, if given, the matmul attention's score thresholds set; restores them all after.
 */
export async function withPrecision<T>(
  gpu: Gpu,
  o: { precision: MatmulPrecision; everywhere?: boolean; attentionMinScores?: number; attentionMaxScoreBytes?: number },
  fn: () => Promise<T>,
): Promise<T> {
  const saved = [gpu.matmulPrecision, gpu.matmulF16x3Everywhere, gpu.matmulAttentionMinScores, gpu.matmulAttentionMaxScoreBytes] as const;
  gpu.matmulPrecision = o.precision;
  gpu.matmulF16x3Everywhere = o.everywhere ?? false;
  gpu.matmulAttentionMinScores = o.attentionMinScores ?? saved[2];
  gpu.matmulAttentionMaxScoreBytes = o.attentionMaxScoreBytes ?? saved[3];
  try {
    return await fn();
  } finally {
    [gpu.matmulPrecision, gpu.matmulF16x3Everywhere, gpu.matmulAttentionMinScores, gpu.matmulAttentionMaxScoreBytes] = saved;
  }
}
