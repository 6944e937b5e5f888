// adaLN: modulate y = LN(x)·(1 + scale) + shift and the gated residual out = x + gate·y, forward and
// backward, for batches > 1 with per-sample vectors of [B, C] and [B, 1, C], token counts that no block
// divides, f32 and f16 (odd C too), subgroups on and off, finite differences, bad inputs.
import { suite, assertClose, assertThrows, type Ctx, type Rng } from './harness.js';
import { readWords } from './ops-util.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { adalnModulate, adalnModulateBackward, gatedResidual, gatedResidualBackward } from '../engine/ops/adaln.js';
import type { NormBackwardVariant } from '../engine/ops/layernorm.js';
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';

// ---- f64 CPU reference (x, y: [B, N, C]; shift, scale, gate: [B, C]) --------------------------------
type A = ArrayLike<number>;
/** y = (x − mean)·rstd·(1 + scale[b]) + shift[b] per token row; rstd = 1/sqrt(biased var + eps). */
function refModulate(x: A, B: number, N: number, C: number, shift: A, scale: A, eps: number) {
  const y = new Float64Array(x.length);
  const mean = new Float64Array(B * N);
  const rstd = new Float64Array(B * N);
  for (let r = 0; r < B * N; r++) {
    const b = Math.floor(r / N);
    let m = 0;
    for (let j = 0; j < C; j++) m += x[r * C + j]!;
    m /= C;
    let v = 0;
    for (let j = 0; j < C; j++) v += (x[r * C + j]! - m) ** 2;
    const rs = 1 / Math.sqrt(v / C + eps);
    mean[r] = m;
    rstd[r] = rs;
    for (let j = 0; j < C; j++) y[r * C + j] = (x[r * C + j]! - m) * rs * (1 + scale[b * C + j]!) + shift[b * C + j]!;
  }
  return { y, mean, rstd };
}
/** dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·(1 + scale[b]); dscale[b] = Σ_n dy·x̂, dshift[b] = Σ_n dy. */
function refModulateBackward(dy: A, x: A, B: number, N: number, C: number, scale: A, mean: A, rstd: A) {
  const dx = new Float64Array(x.length);
  const dscale = new Float64Array(B * C);
  const dshift = new Float64Array(B * C);
  for (let r = 0; r < B * N; r++) {
    const b = Math.floor(r / N);
    const xh = (j: number) => (x[r * C + j]! - mean[r]!) * rstd[r]!;
    const g = (j: number) => dy[r * C + j]! * (1 + scale[b * C + j]!);
    let sg = 0;
    let sgx = 0;
    for (let j = 0; j < C; j++) {
      sg += g(j);
      sgx += g(j) * xh(j);
      dscale[b * C + j]! += dy[r * C + j]! * xh(j);
      dshift[b * C + j]! += dy[r * C + j]!;
    }
    for (let j = 0; j < C; j++) dx[r * C + j] = rstd[r]! * (g(j) - sg / C - (xh(j) * sgx) / C);
  }
  return { dx, dscale, dshift };
}
/** out = x + gate[b]·y. */
function refGated(x: A, gate: A, y: A, N: number, C: number): Float64Array {
  return Float64Array.from(x, (v, i) => v + gate[Math.floor(i / (N * C)) * C + (i % C)]! * y[i]!);
}
/** dy = gate[b]·dout, dgate[b] = Σ_n dout·y. */
function refGatedBackward(dout: A, gate: A, y: A, B: number, N: number, C: number) {
  const dy = Float64Array.from(dout, (v, i) => gate[Math.floor(i / (N * C)) * C + (i % C)]! * v);
  const dgate = new Float64Array(B * C);
  for (let i = 0; i < dout.length; i++) dgate[Math.floor(i / (N * C)) * C + (i % C)]! += dout[i]! * y[i]!;
  return { dy, dgate };
}
// ------------------------------------------------------------------------------------------------------

const RTOL: Record<string, number> = { f32: 1e-5, f16: 1e-2 };
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const seen = (v: A, dtype: DType) => (dtype === 'f16' ? roundToF16(v) : Float64Array.from(v));

/** Random token rows with means in [−1, 3] (so centering matters). */
function tokens(rng: Rng, n: number, C: number): Float32Array {
  const x = rng.normal(n, 1.5);
  for (let i = 0; i < n; i += C) for (let j = 0, m = 1 + 4 * rng.next() - 2; j < C && i + j < n; j++) x[i + j]! += m;
  return x;
}

async function expectPaddingZero(gpu: Gpu, what: string, ...ts: Tensor[]) {
  for (const t of ts) {
    if (t.dtype !== 'f16' || t.size % 2 === 0) continue;
    const last = (await readWords(gpu, t)).at(-1)!;
    if (last >>> 16 !== 0) throw new Error(`${what}: padding half of ${t.name}'s last word is ${(last >>> 16).toString(16)}, expected 0`);
  }
}

interface Opts extends NormBackwardVariant {
  subgroups?: boolean;
  rowsPerBlock?: number;
  /** Per-sample vectors as [B, 1, C] instead of [B, C]. */
  mid?: boolean;
}

async function checkModulate({ gpu, rng }: Ctx, shape: [number, number, number], dtype: DType, o: Opts = {}) {
  const [B, N, C] = shape;
  const vshape = o.mid ? [B, 1, C] : [B, C];
  const x0 = tokens(rng, numel(shape), C);
  const dy0 = rng.normal(numel(shape));
  const shift0 = rng.normal(B * C);
  const scale0 = rng.normal(B * C, 0.5);
  const x = gpu.upload(x0, shape, dtype, 'x');
  const dy = gpu.upload(dy0, shape, dtype, 'dy');
  const shift = gpu.upload(shift0, vshape, 'f32', 'shift');
  const scale = gpu.upload(scale0, vshape, 'f32', 'scale');
  const variant = { slots: o.slots, wideF16: o.wideF16, fastPack: o.fastPack, subgroupRows: o.subgroupRows, packed: o.packed, forwardRowsPerBlock: o.forwardRowsPerBlock };
  const vs = Object.entries({ ...variant, finalSum: o.finalSum, lean: o.lean }).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k} ${v}`).join('');
  const what = `adalnModulate ${dtype} [${shape}] vectors [${vshape}] subgroups ${o.subgroups ?? 'default'}${o.rowsPerBlock ? ` rowsPerBlock ${o.rowsPerBlock}` : ''}${vs}`;
  const { y, mean, rstd } = adalnModulate(gpu, x, shift, scale, { subgroups: o.subgroups, ...variant });
  const g = adalnModulateBackward(gpu, dy, x, mean, rstd, scale, { subgroups: o.subgroups, rowsPerBlock: o.rowsPerBlock, ...variant, finalSum: o.finalSum, lean: o.lean });
  if (y.shape.join() !== shape.join() || y.dtype !== dtype || g.dscale.shape.join() !== vshape.join() || g.dshift.shape.join() !== vshape.join()) {
    throw new Error(`${what}: outputs ${y}, ${g.dscale}, ${g.dshift}`);
  }
  const xs = seen(x0, dtype);
  const ref = refModulate(xs, B, N, C, shift0, scale0, 1e-6);
  const tol = RTOL[dtype]!;
  assertClose(await y.read(), ref.y, { rtol: tol, what: `${what} y` });
  const m = await mean.read();
  const rs = await rstd.read();
  assertClose(m, ref.mean, { rtol: 1e-5, what: `${what} mean` });
  assertClose(rs, ref.rstd, { rtol: 1e-5, what: `${what} rstd` });
  // backward from the GPU's statistics, so the check isolates the backward kernel
  const refB = refModulateBackward(seen(dy0, dtype), xs, B, N, C, scale0, m, rs);
  assertClose(await g.dx.read(), refB.dx, { rtol: tol, what: `${what} dx` });
  assertClose(await g.dscale.read(), refB.dscale, { rtol: 1e-5, what: `${what} dscale` });
  assertClose(await g.dshift.read(), refB.dshift, { rtol: 1e-5, what: `${what} dshift` });
  await expectPaddingZero(gpu, what, y, g.dx);
  for (const t of [x, dy, shift, scale, y, mean, rstd, g.dx, g.dscale, g.dshift]) t.release();
}

async function checkGated({ gpu, rng }: Ctx, shape: [number, number, number], dtype: DType, o: Opts = {}) {
  const [B, N, C] = shape;
  const vshape = o.mid ? [B, 1, C] : [B, C];
  const x0 = rng.normal(numel(shape));
  const y0 = rng.normal(numel(shape));
  const d0 = rng.normal(numel(shape));
  const gate0 = rng.normal(B * C);
  const x = gpu.upload(x0, shape, dtype, 'x');
  const y = gpu.upload(y0, shape, dtype, 'y');
  const dout = gpu.upload(d0, shape, dtype, 'dout');
  const gate = gpu.upload(gate0, vshape, 'f32', 'gate');
  const units = { wideF16: o.wideF16, fastPack: o.fastPack };
  const what = `gatedResidual ${dtype} [${shape}] gate [${vshape}]${o.rowsPerBlock ? ` rowsPerBlock ${o.rowsPerBlock}` : ''}${o.slots ? ` slots ${o.slots}` : ''}${o.finalSum ? ` ${o.finalSum}` : ''}${o.wideF16 ? ' wideF16' : ''}${o.fastPack ? ' fastPack' : ''}`;
  const out = gatedResidual(gpu, x, gate, y, undefined, units);
  const g = gatedResidualBackward(gpu, dout, gate, y, { rowsPerBlock: o.rowsPerBlock, slots: o.slots, finalSum: o.finalSum, ...units });
  if (out.shape.join() !== shape.join() || out.dtype !== dtype || g.dx !== dout || g.dgate.shape.join() !== vshape.join()) throw new Error(`${what}: outputs ${out}, ${g.dgate}`);
  const tol = RTOL[dtype]!;
  assertClose(await out.read(), refGated(seen(x0, dtype), gate0, seen(y0, dtype), N, C), { rtol: tol, what: `${what} out` });
  const refB = refGatedBackward(seen(d0, dtype), gate0, seen(y0, dtype), B, N, C);
  assertClose(await g.dy.read(), refB.dy, { rtol: tol, what: `${what} dy` });
  assertClose(await g.dgate.read(), refB.dgate, { rtol: 1e-5, what: `${what} dgate` });
  await expectPaddingZero(gpu, what, out, g.dy);
  for (const t of [x, y, dout, gate, out, g.dy, g.dgate]) t.release();
}

// Batches > 1, token counts 1, 5, 7, 33 (no block divides them), widths 1 (single elements), 9 (odd: f16
// rows share words), 6 (f16 pairs), 72 and 1152 (vec4 units).
const SHAPES: [number, number, number][] = [[1, 1, 1], [3, 7, 9], [2, 5, 72], [2, 3, 6], [4, 33, 1152]];

const s = suite('adaln');

for (const subgroups of [false, true]) {
  const needs = (gpu: Gpu) => (subgroups && !gpu.info.subgroups ? 'device has no subgroups' : null);
  s.gpuTest(`modulate forward and backward, f32 and f16, subgroups ${subgroups}`, needs, async (ctx) => {
    for (const [i, shape] of SHAPES.entries()) await checkModulate(ctx, shape, 'f32', { subgroups, mid: i % 2 === 1 });
    for (const [i, shape] of SHAPES.entries()) await checkModulate(ctx, shape, 'f16', { subgroups, mid: i % 2 === 0 });
  });
}

s.test('modulate: per-sample gradients over blocks of tokens (ragged last block)', async (ctx) => {
  await checkModulate(ctx, [4, 33, 1152], 'f32', { rowsPerBlock: 5 });
  await checkModulate(ctx, [3, 7, 9], 'f16', { rowsPerBlock: 3, mid: true });
  await checkModulate(ctx, [2, 5, 72], 'f32', { rowsPerBlock: 2 });
});

// Row slots over tokens of several samples (no block or slot count divides them), 16-byte f16 units,
// hardware f16 packing and the fused column sum of the per-sample partials.
s.test('modulate variants: row slots, 16-byte f16 units, fused column sum', async (ctx) => {
  await checkModulate(ctx, [4, 33, 1152], 'f32', { slots: 4, rowsPerBlock: 5, finalSum: 'colsum' });
  // 16 samples: enough column tiles for colsum's widest tile (16 units) as well as the 8-unit one above
  await checkModulate(ctx, [16, 5, 1152], 'f32', { rowsPerBlock: 2, finalSum: 'colsum' });
  await checkModulate(ctx, [3, 7, 9], 'f16', { slots: 3, rowsPerBlock: 3, finalSum: 'colsum', mid: true });
  await checkModulate(ctx, [2, 5, 72], 'f16', { slots: 3, rowsPerBlock: 2, wideF16: true, fastPack: true, finalSum: 'colsum' });
});

s.test('modulate variant: one row per subgroup', async (ctx) => {
  const { min, max } = ctx.gpu.info.subgroupSize;
  if (!(ctx.gpu.info.subgroups && min > 0 && min === max)) {
    const x = ctx.gpu.upload(ctx.rng.normal(40), [2, 2, 10]);
    const v = ctx.gpu.upload(ctx.rng.normal(20), [2, 10]);
    await assertThrows(() => adalnModulate(ctx.gpu, x, v, v, { subgroupRows: true }), /adalnModulate: \{subgroupRows: true\} needs subgroups of one fixed size/, 'subgroupRows without fixed subgroups');
    return;
  }
  await checkModulate(ctx, [4, 33, 72], 'f32', { subgroupRows: true, rowsPerBlock: 5, finalSum: 'colsum' });
  await checkModulate(ctx, [3, 7, 9], 'f16', { subgroupRows: true, slots: 3, rowsPerBlock: 3, mid: true });
  await checkModulate(ctx, [2, 5, 72], 'f16', { subgroupRows: true, rowsPerBlock: 2, wideF16: true, fastPack: true, lean: true, finalSum: 'colsum' });
});

// The packed f16 kernel (the f16 default for even C): per-sample weights over blocks of tokens that do not
// divide the token count, forward blocks that straddle no sample, 16-, 8- and 4-byte words, subgroup and
// shared-memory sums, and the unit kernel it replaced ({packed: false}).
s.test('modulate: packed f16 kernel, batches, ragged blocks, the unit kernel beside it', async (ctx) => {
  const sub = ctx.gpu.info.subgroups ? [false, true] : [false];
  for (const subgroups of sub) {
    await checkModulate(ctx, [3, 37, 1152], 'f16', { packed: true, rowsPerBlock: 6, forwardRowsPerBlock: 5, subgroups, finalSum: 'colsum' });
    await checkModulate(ctx, [4, 9, 36], 'f16', { packed: true, rowsPerBlock: 4, slots: 3, mid: true, subgroups });
    await checkModulate(ctx, [2, 11, 38], 'f16', { packed: true, forwardRowsPerBlock: 2, subgroups });
  }
  await checkModulate(ctx, [3, 5, 72], 'f16', { packed: true, rowsPerBlock: 1, slots: 1, finalSum: 'reduce' });
  await checkModulate(ctx, [3, 37, 1152], 'f16', { packed: false, rowsPerBlock: 6 });
  await checkModulate(ctx, [2, 11, 38], 'f16', { packed: false, mid: true });
});

s.test('modulate variants: deterministic', async ({ gpu, rng }) => {
  const [B, N, C] = [3, 37, 72];
  // f32 (unit kernel, 4 slots) and f16 (packed kernel, its default slots)
  for (const dtype of ['f32', 'f16'] as const) {
    const x = gpu.upload(tokens(rng, B * N * C, C), [B, N, C], dtype);
    const dy = gpu.upload(rng.normal(B * N * C), [B, N, C], dtype);
    const shift = gpu.upload(rng.normal(B * C), [B, C]);
    const scale = gpu.upload(rng.normal(B * C, 0.5), [B, C]);
    const slots = dtype === 'f32' ? 4 : undefined;
    const run = async () => {
      const f = adalnModulate(gpu, x, shift, scale, { slots });
      const g = adalnModulateBackward(gpu, dy, x, f.mean, f.rstd, scale, { slots, rowsPerBlock: 6, finalSum: 'colsum' });
      return [await f.y.read(), await g.dx.read(), await g.dscale.read(), await g.dshift.read()];
    };
    const a = await run();
    const b = await run();
    a.forEach((o, i) => {
      if (!o.every((e, j) => Object.is(e, b[i]![j]))) throw new Error(`${dtype}: output ${i} differs between runs`);
    });
  }
});

s.test('gated residual forward and backward, f32 and f16, blocks of tokens', async (ctx) => {
  for (const [i, shape] of SHAPES.entries()) await checkGated(ctx, shape, 'f32', { mid: i % 2 === 1 });
  for (const [i, shape] of SHAPES.entries()) await checkGated(ctx, shape, 'f16', { mid: i % 2 === 0 });
  await checkGated(ctx, [4, 33, 1152], 'f32', { rowsPerBlock: 5 });
  await checkGated(ctx, [3, 7, 9], 'f16', { rowsPerBlock: 2 });
  await checkGated(ctx, [2, 5, 72], 'f16', { rowsPerBlock: 3, mid: true });
  // row slots (fewer rows than slots in some blocks) and the fused column sum
  await checkGated(ctx, [4, 33, 1152], 'f32', { rowsPerBlock: 5, slots: 4, finalSum: 'colsum' });
  await checkGated(ctx, [3, 7, 9], 'f16', { rowsPerBlock: 2, slots: 3, finalSum: 'colsum' });
  await checkGated(ctx, [2, 5, 72], 'f32', { slots: 2 });
  // f16 (defaults: 16-byte units of 8 halves where C % 8 == 0, hardware packing): asked for explicitly; 36 falls
  // back to 8-byte units
  await checkGated(ctx, [4, 33, 1152], 'f16', { rowsPerBlock: 5, slots: 4, wideF16: true, fastPack: true, finalSum: 'colsum' });
  await checkGated(ctx, [2, 5, 72], 'f16', { rowsPerBlock: 2, wideF16: true, mid: true });
  await checkGated(ctx, [3, 4, 36], 'f16', { wideF16: true, fastPack: true });
  // the f16 path before those defaults: 8-byte units, exact software rounding, two-pass sum
  await checkGated(ctx, [2, 5, 72], 'f16', { wideF16: false, fastPack: false, finalSum: 'reduce' });
  // many blocks a sample (≥ 256) and few columns through colsum
  await checkGated(ctx, [2, 300, 12], 'f32', { rowsPerBlock: 1, finalSum: 'colsum' });
  await checkModulate(ctx, [2, 260, 8], 'f32', { rowsPerBlock: 1, finalSum: 'colsum' });
});

s.test('backwards match central differences of the forwards', async ({ gpu, rng }) => {
  const [B, N, C] = [2, 3, 5];
  const shape = [B, N, C];
  const h = 1e-3;
  const fd = (v: Float64Array, f: (p: Float64Array) => number) =>
    Float64Array.from(v, (_, i) => {
      const p = v.slice();
      const m = v.slice();
      p[i]! += h;
      m[i]! -= h;
      return (f(p) - f(m)) / (2 * h);
    });
  const dot = (a: A, b: A) => Array.from(a).reduce((acc, v, i) => acc + v * b[i]!, 0);
  const x0 = Float64Array.from(tokens(rng, B * N * C, C));
  const r0 = Float64Array.from(rng.normal(B * N * C));
  const shift0 = Float64Array.from(rng.normal(B * C));
  const scale0 = Float64Array.from(rng.normal(B * C, 0.5));
  // L = Σ r · modulate(x, shift, scale)
  const lm = (x: A, sh: A, sc: A) => dot(refModulate(x, B, N, C, sh, sc, 1e-6).y, r0);
  const x = gpu.upload(x0, shape);
  const scale = gpu.upload(scale0, [B, C]);
  const f = adalnModulate(gpu, x, gpu.upload(shift0, [B, C]), scale);
  const g = adalnModulateBackward(gpu, gpu.upload(r0, shape), x, f.mean, f.rstd, scale);
  assertClose(await g.dx.read(), fd(x0, (p) => lm(p, shift0, scale0)), { rtol: 1e-3, what: 'modulate dx vs finite differences' });
  assertClose(await g.dscale.read(), fd(scale0, (p) => lm(x0, shift0, p)), { rtol: 1e-3, what: 'modulate dscale vs finite differences' });
  assertClose(await g.dshift.read(), fd(shift0, (p) => lm(x0, p, scale0)), { rtol: 1e-3, what: 'modulate dshift vs finite differences' });
  // L = Σ r · gatedResidual(x, gate, y)
  const y0 = Float64Array.from(rng.normal(B * N * C));
  const gate0 = Float64Array.from(rng.normal(B * C));
  const lg = (gt: A, y: A) => dot(refGated(x0, gt, y, N, C), r0);
  const gr = gatedResidualBackward(gpu, gpu.upload(r0, shape), gpu.upload(gate0, [B, 1, C]), gpu.upload(y0, shape));
  assertClose(await gr.dy.read(), fd(y0, (p) => lg(gate0, p)), { rtol: 1e-3, what: 'gated dy vs finite differences' });
  assertClose(await gr.dgate.read(), fd(gate0, (p) => lg(p, y0)), { rtol: 1e-3, what: 'gated dgate vs finite differences' });
  assertClose(await gr.dx.read(), fd(x0, (p) => dot(refGated(p, gate0, y0, N, C), r0)), { rtol: 1e-3, what: 'gated dx vs finite differences' });
});

s.test('out tensors; no tokens', async ({ gpu, rng }) => {
  const x0 = tokens(rng, 2 * 3 * 8, 8);
  const sh = gpu.upload(rng.normal(16), [2, 8]);
  const sc = gpu.upload(rng.normal(16), [2, 8]);
  const out = gpu.tensor([2, 3, 8], 'f32', 'out');
  const { y } = adalnModulate(gpu, gpu.upload(x0, [2, 3, 8]), sh, sc, { out });
  if (y !== out) throw new Error('adalnModulate did not return its out tensor');
  assertClose(await out.read(), refModulate(x0, 2, 3, 8, await sh.read(), await sc.read(), 1e-6).y, { rtol: 1e-5, what: 'adalnModulate into out' });
  const e = gpu.tensor([2, 0, 8]);
  const m = adalnModulate(gpu, e, sh, sc);
  const g = adalnModulateBackward(gpu, e, e, m.mean, m.rstd, sc);
  const gr = gatedResidualBackward(gpu, e, sc, e);
  assertClose(await g.dscale.read(), new Float32Array(16), { rtol: 0, what: 'dscale of no tokens' });
  assertClose(await gr.dgate.read(), new Float32Array(16), { rtol: 0, what: 'dgate of no tokens' });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const x = gpu.tensor([2, 3, 8]);
  const v = gpu.tensor([2, 8]);
  const st = adalnModulate(gpu, x, v, v);
  await assertThrows(() => adalnModulate(gpu, gpu.tensor([6, 8]), v, v), /adalnModulate: .* rank 2; expected rank 3/, 'rank 2 x');
  await assertThrows(() => adalnModulate(gpu, x, gpu.tensor([1, 8]), v), /adalnModulate: shift .* must be \[2, 8\] or \[2, 1, 8\]; one row of C per sample/, 'shift batch');
  await assertThrows(() => adalnModulate(gpu, x, v, gpu.tensor([2, 8], 'f16')), /adalnModulate: scale .* must be f32/, 'f16 scale');
  await assertThrows(() => adalnModulate(gpu, x, v, v, { eps: NaN }), /adalnModulate: eps NaN must be/, 'NaN eps');
  await assertThrows(() => adalnModulateBackward(gpu, gpu.tensor([2, 3, 8], 'f16'), x, st.mean, st.rstd, v), /adalnModulateBackward: .* dtype f16 but .* is f32/, 'dy dtype');
  await assertThrows(() => adalnModulateBackward(gpu, x, x, st.mean, gpu.tensor([5]), v), /adalnModulateBackward: .* must be the forward's f32 rstd/, 'rstd size');
  await assertThrows(() => gatedResidual(gpu, x, v, gpu.tensor([2, 3, 7])), /gatedResidual: y .* must have the shape of x/, 'y shape');
  await assertThrows(() => gatedResidual(gpu, x, gpu.tensor([2, 7]), x), /gatedResidual: gate .* must be \[2, 8\] or \[2, 1, 8\]/, 'gate shape');
  await assertThrows(() => gatedResidual(gpu, x, v, x, gpu.tensor([2, 3, 8], 'f16')), /gatedResidual: output .* must be \[2, 3, 8\] f32/, 'out dtype');
  await assertThrows(() => gatedResidual(gpu, x, v, x, x), /aliases input/, 'out aliasing x');
  await assertThrows(() => gatedResidualBackward(gpu, x, v, x, { slots: -1 }), /gatedResidualBackward: slots -1 must be a positive integer/, 'slots');
  await assertThrows(() => adalnModulateBackward(gpu, x, x, st.mean, st.rstd, v, { finalSum: 'x' as 'colsum' }), /adalnModulateBackward: finalSum 'x' must be/, 'finalSum');
  await assertThrows(() => gatedResidualBackward(gpu, x, v, x, { rowsPerBlock: 1.5 }), /gatedResidualBackward: rowsPerBlock 1\.5 must be a positive integer/, 'rowsPerBlock');
  await gpu.sync();
});

s.run();
