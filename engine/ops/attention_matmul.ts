// Attention through materialised scores, for f32 at matmul precision 'high': S = (scale·q)·kᵀ, P = softmax(S),
// o = P·v, every product a matmulF16x3 (f32 accuracy from f16 tensor-core products), the row softmax and its
// backward the memory-bound kernels of ops/softmax.ts. The backward recomputes S and P (nothing N×N is kept
// between forward and backward, as in the flash kernels) and runs dv = Pᵀ·do, dp = do·vᵀ,
// ds = P ⊙ (dp − Σ dp⊙P), dq = scale·ds·k, dk = dsᵀ·(scale·q). The same FLOPs as ops/attention.ts's flash
// kernels, but on tensor cores: for the f32 models' moderate sequences (STDiT's 256-token spatial attention)
// the portable f32 flash kernels run at 8–15 TFLOP/s while these products run at ~50 f32-equivalent.
// Self-attention without key masks only; the N×N scores of all heads live for the length of one call.
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive } from './common.js';
import { scale as scaleOp } from './elementwise.js';
import { highPrecisionUnavailable, matmulF16x3 } from './matmul_f16x3.js';
import { softmax, softmaxBackward } from './softmax.js';

/** Largest N×N score tensor (all batches and heads, f32 bytes) the matmul path materialises. */
export const MATMUL_ATTENTION_MAX_SCORE_BYTES = 1 << 30;
/** Shortest key sequence it takes (shorter ones: many tiny products, where the flash kernels are better). */
export const MATMUL_ATTENTION_MIN_KEYS = 128;

/**
 * Whether ops/attention's f32 inputs q [.., Nq, D], k/v [.., Nk, D] (no key mask) go through the matmul path:
 * the Gpu's matmul precision is 'high' and runs on tensor cores, and the scores are long enough and fit.
 */
export function matmulAttentionApplies(gpu: Gpu, q: Tensor, k: Tensor, masked: boolean): boolean {
  if (gpu.matmulPrecision !== 'high' || highPrecisionUnavailable(gpu) || masked) return false;
  if (q.dtype !== 'f32' || k.dtype !== 'f32') return false;
  const nq = q.shape[q.rank - 2]!;
  const nk = k.shape[k.rank - 2]!;
  const heads = q.size / (nq * q.shape[q.rank - 1]!);
  return nk >= MATMUL_ATTENTION_MIN_KEYS && heads * nq * nk * 4 <= MATMUL_ATTENTION_MAX_SCORE_BYTES;
}

function check(op: string, ...ts: Tensor[]): void {
  expectLive(op, ...ts);
  for (const t of ts) expectDType(op, t, ['f32']);
}

/** P = softmax((scale·q)·kᵀ) [.., Nq, Nk], and the scaled q it used (the caller releases both). */
function probabilities(gpu: Gpu, q: Tensor, k: Tensor, scale: number): { p: Tensor; qs: Tensor } {
  const qs = scaleOp(gpu, q, scale);
  const s = matmulF16x3(gpu, qs, k, { transB: true });
  const p = softmax(gpu, s);
  s.release();
  return { p, qs };
}

/** o = softmax(scale·q·kᵀ)·v for f32 q [.., Nq, D], k and v [.., Nk, D] (same leading dims). */
export function attentionMatmul(gpu: Gpu, q: Tensor, k: Tensor, v: Tensor, scale: number, out?: Tensor): Tensor {
  check('attentionMatmul', q, k, v);
  const { p, qs } = probabilities(gpu, q, k, scale);
  const o = matmulF16x3(gpu, p, v, { out });
  p.release();
  qs.release();
  return o;
}

/** dq, dk, dv of attentionMatmul from do (the forward's inputs, recomputing the scores). */
export function attentionMatmulBackward(gpu: Gpu, q: Tensor, k: Tensor, v: Tensor, dout: Tensor, scale: number): { dq: Tensor; dk: Tensor; dv: Tensor } {
  check('attentionMatmulBackward', q, k, v, dout);
  const { p, qs } = probabilities(gpu, q, k, scale);
  const dv = matmulF16x3(gpu, p, dout, { transA: true });
  const dp = matmulF16x3(gpu, dout, v, { transB: true });
  const ds = softmaxBackward(gpu, p, dp);
  p.release();
  dp.release();
  const dk = matmulF16x3(gpu, ds, qs, { transA: true });
  qs.release();
  const dqRaw = matmulF16x3(gpu, ds, k);
  ds.release();
  const dq = scaleOp(gpu, dqRaw, scale);
  dqRaw.release();
  return { dq, dk, dv };
}
