// Attention through materialised scores, for f32 at matmul precision 'high': S = (scale·q)·kᵀ, P = softmax(S),
// o = P·v, every product a matmulF16x3 (f32 accuracy from f16 tensor-core products), the row softmax and its
// backward the memory-bound kernels of ops/softmax.ts. The backward recomputes S and P (nothing N×N is kept
// between forward and backward, as in the flash kernels) and runs dv = Pᵀ·do, dp = do·vᵀ,
// ds = P ⊙ (dp − Σ dp⊙P), dq = scale·ds·k, dk = dsᵀ·(scale·q). The same FLOPs as ops/attention.ts's flash
// kernels, but on tensor cores: for the f32 models' moderate sequences (STDiT's 256-token spatial attention)
// the portable f32 flash kernels run at 8–15 TFLOP/s; this path at 12–19 (H200: spatial 64×256 forward 12.1,
// backward 13.4; B4 H16 N4096 17.7 / 18.8; bench/attention.ts times it beside them).
// Max-abs passes (for the f16x3 scaling) are shared through a MaxAbsCache per call; P's is bounded by 1.
// Key masks (per-sample key lengths, cross-attention's captions) go to the softmax: masked keys get
// probability 0, so their gradients are 0 too. The Nq×Nk scores of all heads live for the length of one call;
// where all samples' scores exceed gpu.matmulAttentionMaxScoreBytes, the call runs over groups of samples
// (copies of their q, k, v rows in, of their results out).
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, output } from './common.js';
import { scale as scaleOp } from './elementwise.js';
import { highPrecisionUnavailable, matmulF16x3, MaxAbsCache } from './matmul_f16x3.js';
import { softmax, softmaxBackward } from './softmax.js';

/** f32 bytes of one sample's scores (all heads) for q [B, H, Nq, D] and k [B, H, Nk, D]. */
const scoreBytesPerSample = (q: Tensor, k: Tensor) => q.shape[1]! * q.shape[2]! * k.shape[2]! * 4;

/**
 * Whether attention's f32 inputs q [B, H, Nq, D], k/v [B, H, Nk, D] go through the matmul path: the Gpu's
 * matmul precision is 'high' and runs on tensor cores, and each head has enough scores, which all fit.
 */
export function matmulAttentionApplies(gpu: Gpu, q: Tensor, k: Tensor): boolean {
  if (gpu.matmulPrecision !== 'high' || highPrecisionUnavailable(gpu)) return false;
  if (q.dtype !== 'f32' || k.dtype !== 'f32' || q.rank !== 4) return false;
  const [B, , nq] = q.shape as [number, number, number, number];
  // fewer scores per head (gpu.matmulAttentionMinScores): many tiny products, where the flash kernels are better
  return B > 0 && nq * k.shape[2]! >= gpu.matmulAttentionMinScores && scoreBytesPerSample(q, k) <= gpu.matmulAttentionMaxScoreBytes;
}

/** Samples per call whose scores (samples·H·Nq·Nk f32) fit gpu.matmulAttentionMaxScoreBytes (at least 1). */
function samplesPerCall(gpu: Gpu, q: Tensor, k: Tensor): number {
  return Math.max(1, Math.min(q.shape[0]!, Math.floor(gpu.matmulAttentionMaxScoreBytes / scoreBytesPerSample(q, k))));
}

/**
 * Runs fn over groups of `per` samples: copies of the inputs' (and kvLen's) rows of those samples in, fn's
 * results (one per tensor of outs, same sample-major layout) copied into outs' rows.
 */
function bySamples(gpu: Gpu, ins: Tensor[], kvLen: Tensor | undefined, per: number, outs: Tensor[], fn: (ins: Tensor[], kvLen?: Tensor) => Tensor[]): void {
  const B = ins[0]!.shape[0]!;
  for (let b0 = 0; b0 < B; b0 += per) {
    const n = Math.min(per, B - b0);
    const rows = (t: Tensor) => {
      const each = t.size / B;
      const part = gpu.tensor([n, ...t.shape.slice(1)], t.dtype, `${t.name}[${b0}:${b0 + n}]`);
      gpu.copyRange(t, b0 * each, part, 0, n * each);
      return part;
    };
    const parts = ins.map(rows);
    const len = kvLen ? rows(kvLen) : undefined;
    fn(parts, len).forEach((r, i) => {
      const each = outs[i]!.size / B;
      gpu.copyRange(r, 0, outs[i]!, b0 * each, n * each);
      r.release();
    });
    for (const t of [...parts, ...(len ? [len] : [])]) t.release();
  }
}

function check(op: string, ...ts: Tensor[]): void {
  expectLive(op, ...ts);
  for (const t of ts) expectDType(op, t, ['f32']);
}

/** P = softmax((scale·q)·kᵀ) [B, H, Nq, Nk] over each sample's first kvLen[b] keys, and the scaled q (the caller releases both). */
function probabilities(gpu: Gpu, q: Tensor, k: Tensor, scale: number, kvLen: Tensor | undefined, maxes: MaxAbsCache): { p: Tensor; qs: Tensor } {
  const qs = scaleOp(gpu, q, scale);
  const s = matmulF16x3(gpu, qs, k, { transB: true, maxes });
  const p = softmax(gpu, s, undefined, kvLen ? { keyLen: { len: kvLen, rowsPerItem: q.shape[1]! * q.shape[2]! } } : {});
  s.release();
  return { p, qs };
}

/** o = softmax(scale·q·kᵀ)·v for f32 q [B, H, Nq, D], k and v [B, H, Nk, D]; kvLen [B] (i32/u32) masks keys. */
export function attentionMatmul(gpu: Gpu, q: Tensor, k: Tensor, v: Tensor, scale: number, kvLen?: Tensor, out?: Tensor): Tensor {
  check('attentionMatmul', q, k, v);
  const per = samplesPerCall(gpu, q, k);
  if (per < q.shape[0]!) {
    const o = output(gpu, 'attentionMatmul', [...q.shape.slice(0, 3), v.shape[3]!], 'f32', out);
    bySamples(gpu, [q, k, v], kvLen, per, [o], ([qc, kc, vc], len) => [attentionMatmul(gpu, qc!, kc!, vc!, scale, len)]);
    return o;
  }
  const maxes = new MaxAbsCache(gpu);
  const { p, qs } = probabilities(gpu, q, k, scale, kvLen, maxes);
  maxes.bound(p, 1);
  const o = matmulF16x3(gpu, p, v, { out, maxes });
  maxes.release();
  for (const t of [p, qs]) t.release();
  return o;
}

/** dq, dk, dv of attentionMatmul from do (the forward's inputs, recomputing the scores). */
export function attentionMatmulBackward(gpu: Gpu, q: Tensor, k: Tensor, v: Tensor, dout: Tensor, scale: number, kvLen?: Tensor): { dq: Tensor; dk: Tensor; dv: Tensor } {
  check('attentionMatmulBackward', q, k, v, dout);
  const per = samplesPerCall(gpu, q, k);
  if (per < q.shape[0]!) {
    const [dq, dk, dv] = [q, k, v].map((t) => gpu.tensor(t.shape, 'f32', `d${t.name}`)) as [Tensor, Tensor, Tensor];
    bySamples(gpu, [q, k, v, dout], kvLen, per, [dq, dk, dv], ([qc, kc, vc, dc], len) => {
      const d = attentionMatmulBackward(gpu, qc!, kc!, vc!, dc!, scale, len);
      return [d.dq, d.dk, d.dv];
    });
    return { dq, dk, dv };
  }
  const maxes = new MaxAbsCache(gpu);
  const { p, qs } = probabilities(gpu, q, k, scale, kvLen, maxes);
  maxes.bound(p, 1);
  const dv = matmulF16x3(gpu, p, dout, { transA: true, maxes });
  const dp = matmulF16x3(gpu, dout, v, { transB: true, maxes });
  const ds = softmaxBackward(gpu, p, dp);
  for (const t of [p, dp]) {
    maxes.forget(t); // their buffers may come back as later results
    t.release();
  }
  const dk = matmulF16x3(gpu, ds, qs, { transA: true, maxes });
  maxes.forget(qs);
  qs.release();
  const dqRaw = matmulF16x3(gpu, ds, k, { maxes });
  maxes.release();
  ds.release();
  const dq = scaleOp(gpu, dqRaw, scale);
  dqRaw.release();
  return { dq, dk, dv };
}
