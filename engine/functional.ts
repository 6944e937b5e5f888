// Differentiable functions over Vars: each runs engine kernels forward and records on the tape how to
// compute its inputs' gradients. Models are written with these (models/*.ts), never with raw kernels.
// Activations may be f32 or f16 (mixed precision); Params hand out the copy matching the activation dtype,
// and their gradients are f32. Products go through matmulAtPrecision: f32 ones follow gpu.matmulPrecision.
import { type Tape, type Var } from './autograd.js';
import { ShapeError, shapeStr } from './errors.js';
import { adalnModulate as adalnOp, adalnModulateBackward, gatedResidual as gatedOp, gatedResidualBackward } from './ops/adaln.js';
import { activationBackward, activation as activationOp } from './ops/activation.js';
import { attention as attentionOp, attentionBackward } from './ops/attention.js';
import { attentionMatmul, attentionMatmulBackward, matmulAttentionApplies } from './ops/attention_matmul.js';
import { cast } from './ops/cast.js';
import { add as addOp } from './ops/elementwise.js';
import { layernorm as layernormOp, layernormBackward } from './ops/layernorm.js';
import { matmulAtPrecision as matmulOp, MaxAbsCache } from './ops/matmul_f16x3.js';
import { patchify as patchifyOp, patchifyBackward, unpatchify as unpatchifyOp, unpatchifyBackward, type Patch3 } from './ops/patchify.js';
import { permute as permuteOp } from './ops/permute.js';
import { sum } from './ops/reduce.js';
import { numel, type Tensor } from './tensor.js';

/** Sum of g over its leading dims down to `shape` (the gradient of a broadcast), in `dtype`. */
function reduceTo(tape: Tape, g: Tensor, shape: readonly number[], dtype: Tensor['dtype']): Tensor {
  const n = numel(shape);
  const g2 = g.reshape([g.size / n, n]);
  const s = sum(tape.gpu, g2, 0);
  g2.release();
  const r = s.reshape(shape);
  s.release();
  if (dtype === r.dtype) return r;
  const c = cast(tape.gpu, r, dtype);
  r.release();
  return c;
}

/**
 * y = x·wᵀ + b for x [..., K], w [N, K] (nn.Linear's layout; a Conv weight [N, ...] is flattened to
 * [N, K], as a patch embedding needs), b [N].
 */
export function linear(tape: Tape, x: Var, w: Var, b?: Var): Var {
  const gpu = tape.gpu;
  const K = x.shape.at(-1)!;
  const N = w.shape[0]!;
  if (w.shape.length < 2 || w.value.size !== N * K) throw new ShapeError(`linear: weight ${w} must be [out, ${K}] for input ${x}`);
  if (b && (b.shape.length !== 1 || b.shape[0] !== N)) throw new ShapeError(`linear: bias ${b} must be [${N}]`);
  const M = x.value.size / K;
  const x2 = x.value.reshape([M, K]);
  const w2 = w.data(x.dtype).reshape([N, K]);
  // max|x|, max|W| of the f16x3 products at 'high' precision: x's is kept for the weight gradient, and the
  // output gradient's is taken once for both gradient products
  const fwdMax = new MaxAbsCache(gpu);
  const y2 = matmulOp(gpu, x2, w2, { transB: true, bias: b?.data(x.dtype), maxes: fwdMax });
  const inputs = b ? [x, w, b] : [x, w];
  const xMaxT = tape.needsGrad(...inputs) ? fwdMax.take(x2) : null;
  fwdMax.release();
  x2.release();
  w2.release();
  const y = tape.result(y2.reshape([...x.shape.slice(0, -1), N]), `linear(${w.name})`, true);
  y2.release();
  const xMax = xMaxT ? tape.result(xMaxT, `max|${x.name}|`, false) : null;
  tape.record('linear', inputs, [y], xMax ? [x, xMax] : [x], ([g]) => {
    const g2 = g!.reshape([M, N]);
    const xs = x.value.reshape([M, K]);
    const wk = w.data(x.dtype).reshape([N, K]);
    const maxes = new MaxAbsCache(gpu);
    if (xMax) maxes.put(xs, xMax.value);
    const dx = x.requiresGrad ? matmulOp(gpu, g2, wk, { maxes }) : null; // [M, K]
    const dw = w.requiresGrad ? matmulOp(gpu, g2, xs, { transA: true, outDtype: 'f32', maxes }) : null; // [N, K]
    maxes.release();
    const db = b?.requiresGrad ? sum(gpu, g2, 0) : null;
    for (const t of [xs, g2, wk]) t.release();
    const dxv = dx ? dx.reshape(x.shape) : null;
    const dwv = dw ? dw.reshape(w.shape) : null;
    dx?.release();
    dw?.release();
    return b ? [dxv, dwv, db] : [dxv, dwv];
  });
  return y;
}

/** y = a·b for a [..., M, K] and b [K, N] (a matrix shared by the batch). */
export function matmul(tape: Tape, a: Var, b: Var): Var {
  const gpu = tape.gpu;
  const y = tape.result(matmulOp(gpu, a.data(a.dtype), b.data(a.dtype)), 'matmul', true);
  const [K, N] = b.shape as [number, number];
  tape.record('matmul', [a, b], [y], [a, b], ([g]) => {
    const da = a.requiresGrad ? matmulOp(gpu, g!, b.data(a.dtype), { transB: true }) : null;
    let db: Tensor | null = null;
    if (b.requiresGrad) {
      const M = a.value.size / K;
      const [a2, g2] = [a.value.reshape([M, K]), g!.reshape([M, N])];
      db = matmulOp(gpu, a2, g2, { transA: true, outDtype: 'f32' });
      a2.release();
      g2.release();
    }
    return [da, db];
  });
  return y;
}

function activation(tape: Tape, kind: 'gelu' | 'silu', x: Var): Var {
  const y = tape.result(activationOp(tape.gpu, kind, x.value), kind, true);
  tape.record(kind, [x], [y], [x], ([g]) => [activationBackward(tape.gpu, kind, x.value, g!)]);
  return y;
}
/** GELU, tanh approximation. */
export const gelu = (tape: Tape, x: Var): Var => activation(tape, 'gelu', x);
export const silu = (tape: Tape, x: Var): Var => activation(tape, 'silu', x);

/** a + b, b of a's shape or broadcast over a's leading dims (e.g. a bias or a position embedding). */
export function add(tape: Tape, a: Var, b: Var): Var {
  const gpu = tape.gpu;
  const y = tape.result(addOp(gpu, a.value, b.data(a.dtype)), 'add', true);
  // the tape copies a gradient handed to two inputs
  tape.record('add', [a, b], [y], [], ([g]) => {
    const db = !b.requiresGrad ? null : b.value.size === g!.size ? g!.reshape(b.shape) : reduceTo(tape, g!, b.shape, b.dtype);
    return [a.requiresGrad ? g! : null, db];
  });
  return y;
}

/** Same values, new shape (a view; no copy). */
export function reshape(tape: Tape, x: Var, shape: readonly number[]): Var {
  if (numel(shape) !== x.value.size) throw new ShapeError(`reshape: ${x} cannot be viewed as ${shapeStr(shape)}`);
  const y = tape.result(x.value.reshape(shape), `${x.name}.view`, true);
  tape.record('reshape', [x], [y], [], ([g]) => [g!.reshape(x.shape)]);
  return y;
}

/** Reorders dims (out dim i = in dim dims[i]). */
export function permute(tape: Tape, x: Var, dims: readonly number[]): Var {
  const y = tape.result(permuteOp(tape.gpu, x.value, dims), 'permute', true);
  const inverse = dims.map((_, i) => dims.indexOf(i));
  tape.record('permute', [x], [y], [], ([g]) => [permuteOp(tape.gpu, g!, inverse)]);
  return y;
}

/** Splits x [n, ...] into n Vars of shape [...] (copies). */
export function split(tape: Tape, x: Var, n: number): Var[] {
  const gpu = tape.gpu;
  if (x.shape[0] !== n) throw new ShapeError(`split: ${x} must have ${n} as its first dim`);
  const shape = x.shape.slice(1);
  const m = numel(shape);
  const outs = Array.from({ length: n }, (_, i) => {
    const t = gpu.tensor(shape, x.dtype, `${x.name}[${i}]`);
    gpu.copyRange(x.value, i * m, t, 0, m);
    return tape.result(t, `${x.name}[${i}]`, true);
  });
  tape.record('split', [x], outs, [], (gs) => {
    const dx = gpu.tensor(x.shape, x.dtype, `d${x.name}`);
    gs.forEach((g, i) => {
      if (g) gpu.copyRange(g, 0, dx, i * m, m);
      else zeroRange(tape, dx, i * m, m);
    });
    return [dx];
  });
  return outs;
}

function zeroRange(tape: Tape, t: Tensor, at: number, n: number): void {
  const z = tape.gpu.tensor([n], t.dtype, 'zeros');
  tape.gpu.fill(z, 0);
  tape.gpu.copyRange(z, 0, t, at, n);
  z.release();
}

/** x [B, n·C] (or [B, n, C]) → n Vars [B, C]: torch's x.chunk(n, dim=-1) of a per-sample vector. */
export function chunk(tape: Tape, x: Var, n: number): Var[] {
  const B = x.shape[0]!;
  const C = x.value.size / B / n;
  if (!Number.isInteger(C)) throw new ShapeError(`chunk: ${x} does not split into ${n} equal parts per sample`);
  const v = reshape(tape, x, [B, n, C]);
  return split(tape, permute(tape, v, [1, 0, 2]), n);
}

/** LayerNorm over the last dim without affine (eps 1e-6), as DiT's norm1/norm2/norm_final. */
export function layernorm(tape: Tape, x: Var, eps = 1e-6): Var {
  const gpu = tape.gpu;
  const r = layernormOp(gpu, x.value, { eps });
  const y = tape.result(r.y, 'layernorm', true);
  const stats = [tape.result(r.mean, 'ln.mean', false), tape.result(r.rstd, 'ln.rstd', false)];
  tape.record('layernorm', [x], [y], [x, ...stats], ([g]) => [layernormBackward(gpu, g!, x.value, r.mean, r.rstd).dx]);
  return y;
}

/** modulate(LN(x), shift, scale) = LN(x)·(1 + scale) + shift for x [B, N, C] and f32 [B, C] shift/scale. */
export function adalnModulate(tape: Tape, x: Var, shift: Var, scale: Var): Var {
  const gpu = tape.gpu;
  const r = adalnOp(gpu, x.value, shift.value, scale.value);
  const y = tape.result(r.y, 'modulate', true);
  const stats = [tape.result(r.mean, 'ln.mean', false), tape.result(r.rstd, 'ln.rstd', false)];
  tape.record('adalnModulate', [x, shift, scale], [y], [x, scale, ...stats], ([g]) => {
    const d = adalnModulateBackward(gpu, g!, x.value, r.mean, r.rstd, scale.value);
    return [d.dx, d.dshift, d.dscale];
  });
  return y;
}

/** x + gate·y for x, y [B, N, C] and an f32 per-sample gate [B, C]. */
export function gatedResidual(tape: Tape, x: Var, gate: Var, y: Var): Var {
  const gpu = tape.gpu;
  const out = tape.result(gatedOp(gpu, x.value, gate.value, y.value), 'residual', true);
  tape.record('gatedResidual', [x, gate, y], [out], [gate, y], ([g]) => {
    const d = gatedResidualBackward(gpu, g!, gate.value, y.value);
    return [d.dx, d.dgate, d.dy];
  });
  return out;
}

/**
 * Multi-head attention on q, k, v [B, H, N, D]; kvLen [B] (i32) masks keys per sample. f32 attention at matmul
 * precision 'high' with enough scores per head runs as tensor-core products (ops/attention_matmul.ts).
 */
export function attention(tape: Tape, q: Var, k: Var, v: Var, kvLen?: Tensor): Var {
  const gpu = tape.gpu;
  if (matmulAttentionApplies(gpu, q.value, k.value)) {
    gpu.f32MatmulStats.attention++;
    const scale = 1 / Math.sqrt(q.shape[3]!);
    const o = tape.result(attentionMatmul(gpu, q.value, k.value, v.value, scale, kvLen), 'attention', true);
    tape.record('attention', [q, k, v], [o], [q, k, v], ([g]) => {
      const d = attentionMatmulBackward(gpu, q.value, k.value, v.value, g!, scale, kvLen);
      return [d.dq, d.dk, d.dv];
    });
    return o;
  }
  const r = attentionOp(gpu, q.value, k.value, v.value, { kvLen });
  const o = tape.result(r.o, 'attention', true);
  const lse = tape.result(r.lse, 'attention.lse', false);
  tape.record('attention', [q, k, v], [o], [q, k, v, o, lse], ([g]) => {
    const d = attentionBackward(gpu, q.value, k.value, v.value, r.o, r.lse, g!, { kvLen });
    return [d.dq, d.dk, d.dv];
  });
  return o;
}

/** Video [B, C, T, H, W] → tokens [B, N, C·pt·ph·pw] (Conv3d patch embedding's input order). */
export function patchify(tape: Tape, x: Var, patch: Patch3): Var {
  const gpu = tape.gpu;
  const size = x.shape.slice(2) as [number, number, number];
  const y = tape.result(patchifyOp(gpu, x.value, { patch }), 'patchify', true);
  tape.record('patchify', [x], [y], [], ([g]) => [patchifyBackward(gpu, g!, size, { patch })]);
  return y;
}

/** Tokens [B, N, pt·ph·pw·C] → video [B, C, T, H, W] (Open-Sora's unpatchify order). */
export function unpatchify(tape: Tape, x: Var, size: readonly [number, number, number], patch: Patch3): Var {
  const gpu = tape.gpu;
  const y = tape.result(unpatchifyOp(gpu, x.value, size, { patch }), 'unpatchify', true);
  tape.record('unpatchify', [x], [y], [], ([g]) => [unpatchifyBackward(gpu, g!, { patch })]);
  return y;
}

/** Changes the dtype (mixed precision boundaries); the gradient is cast back. */
export function toDtype(tape: Tape, x: Var, dtype: Tensor['dtype']): Var {
  if (x.dtype === dtype) return x;
  const y = tape.result(cast(tape.gpu, x.value, dtype), `${x.name}.${dtype}`, true);
  tape.record('cast', [x], [y], [], ([g]) => [cast(tape.gpu, g!, x.dtype)]);
  return y;
}
