// LayerNorm over the last dim and its backward: with and without weight/bias, f32 and f16 (vec4, pair and
// odd-length rows), subgroups on and off, ragged blocks of the weight-gradient pass, rows far from zero
// mean, finite differences, determinism, folded grid, bad inputs.
import { suite, assertClose, assertThrows, type Ctx, type Rng } from './harness.js';
import { readWords, withGridLimit } from './ops-util.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { layernorm, layernormBackward, rowPlan, blockPlan, slotsFor, unitLayout, packedPlan, packedLayout, type LayerNormOptions, type NormBackwardVariant } from '../engine/ops/layernorm.js';
import type { Gpu } from '../engine/gpu.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
interface Ref {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}
/** y = (x − mean)·rstd (·w + b) per row of length C; rstd = 1/sqrt(var + eps) with the biased variance. */
function refLayerNorm(x: ArrayLike<number>, C: number, eps: number, w?: ArrayLike<number>, b?: ArrayLike<number>): Ref {
  const rows = x.length / C;
  const y = new Float64Array(x.length);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < C; j++) m += x[r * C + j]!;
    m /= C;
    let v = 0;
    for (let j = 0; j < C; j++) v += (x[r * C + j]! - m) ** 2;
    const rs = 1 / Math.sqrt(v / C + eps);
    mean[r] = m;
    rstd[r] = rs;
    for (let j = 0; j < C; j++) y[r * C + j] = (x[r * C + j]! - m) * rs * (w ? w[j]! : 1) + (b ? b[j]! : 0);
  }
  return { y, mean, rstd };
}
/** dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·w, x̂ = (x − mean)·rstd; dw = Σ_rows dy·x̂, db = Σ_rows dy. */
function refLayerNormBackward(dy: ArrayLike<number>, x: ArrayLike<number>, C: number, stats: { mean: ArrayLike<number>; rstd: ArrayLike<number> }, w?: ArrayLike<number>) {
  const { mean, rstd } = stats;
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  for (let r = 0; r < x.length / C; r++) {
    let sg = 0;
    let sgx = 0;
    for (let j = 0; j < C; j++) {
      const xh = (x[r * C + j]! - mean[r]!) * rstd[r]!;
      const g = dy[r * C + j]! * (w ? w[j]! : 1);
      sg += g;
      sgx += g * xh;
      dw[j]! += dy[r * C + j]! * xh;
      db[j]! += dy[r * C + j]!;
    }
    for (let j = 0; j < C; j++) {
      const xh = (x[r * C + j]! - mean[r]!) * rstd[r]!;
      const g = dy[r * C + j]! * (w ? w[j]! : 1);
      dx[r * C + j] = rstd[r]! * (g - sg / C - (xh * sgx) / C);
    }
  }
  return { dx, dw, db };
}
// ------------------------------------------------------------------------------------------------------

const RTOL: Record<string, number> = { f32: 1e-5, f16: 1e-2 };
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const seen = (v: ArrayLike<number>, dtype: DType) => (dtype === 'f16' ? roundToF16(v) : Float64Array.from(v));

/** Random rows, each with its own mean in [offset − 2, offset + 2] (so centering matters) and std `std`. */
function rowsAround(rng: Rng, shape: readonly number[], offset = 1, std = 1.5): Float32Array {
  const C = shape.at(-1)!;
  const x = rng.normal(numel(shape), std);
  for (let i = 0; i < x.length; i++) if (i % C === 0) for (let j = 0, m = offset + 4 * rng.next() - 2; j < C; j++) x[i + j]! += m;
  return x;
}

interface CheckOpts extends Pick<LayerNormOptions, 'subgroups'>, NormBackwardVariant {
  affine?: boolean;
  rowsPerBlock?: number;
  offset?: number;
  eps?: number;
}

async function check({ gpu, rng }: Ctx, shape: number[], dtype: DType, o: CheckOpts = {}) {
  const C = shape.at(-1)!;
  const eps = o.eps ?? 1e-6;
  const x0 = rowsAround(rng, shape, o.offset);
  const dy0 = rng.normal(numel(shape));
  const w0 = o.affine ? rng.normal(C, 0.5).map((v) => v + 1) : undefined;
  const b0 = o.affine ? rng.normal(C) : undefined;
  const x = gpu.upload(x0, shape, dtype, 'x');
  const dy = gpu.upload(dy0, shape, dtype, 'dy');
  const weight = w0 && gpu.upload(w0, [C], 'f32', 'weight');
  const bias = b0 && gpu.upload(b0, [C], 'f32', 'bias');
  const variant = { slots: o.slots, wideF16: o.wideF16, fastPack: o.fastPack, subgroupRows: o.subgroupRows, packed: o.packed, forwardRowsPerBlock: o.forwardRowsPerBlock, perThread: o.perThread };
  const { y, mean, rstd } = layernorm(gpu, x, { weight, bias, eps: o.eps, subgroups: o.subgroups, ...variant });
  const g = layernormBackward(gpu, dy, x, mean, rstd, { weight, subgroups: o.subgroups, rowsPerBlock: o.rowsPerBlock, ...variant, finalSum: o.finalSum, lean: o.lean });
  const vs = Object.entries({ ...variant, finalSum: o.finalSum, lean: o.lean }).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k} ${v}`).join('');
  const what = `layernorm ${dtype} [${shape}] affine ${!!o.affine} subgroups ${o.subgroups ?? 'default'}${o.rowsPerBlock ? ` rowsPerBlock ${o.rowsPerBlock}` : ''}${vs}`;
  if (y.dtype !== dtype || y.shape.join() !== shape.join() || g.dx.shape.join() !== shape.join() || mean.size !== numel(shape) / C) {
    throw new Error(`${what}: outputs ${y}, ${g.dx}, ${mean}`);
  }
  if (!!g.dweight !== !!o.affine || (g.dweight && g.dweight.shape.join() !== `${C}`)) throw new Error(`${what}: dweight ${g.dweight}`);
  const xs = seen(x0, dtype);
  const ref = refLayerNorm(xs, C, eps, w0, b0);
  const tol = RTOL[dtype]!;
  assertClose(await y.read(), ref.y, { rtol: tol, what: `${what} y` });
  // the statistics are f32 of the (rounded) stored input, so f32-accurate for both storage types
  const stats = { mean: await mean.read(), rstd: await rstd.read() };
  assertClose(stats.mean, ref.mean, { rtol: 1e-5, what: `${what} mean` });
  assertClose(stats.rstd, ref.rstd, { rtol: 1e-5, what: `${what} rstd` });
  // the backward from the statistics the GPU saved, so the check isolates the backward kernel (an f32 mean
  // of rows far from zero is off by up to half an ulp of the mean, which shifts every x̂ of the row)
  const refB = refLayerNormBackward(seen(dy0, dtype), xs, C, stats, w0);
  assertClose(await g.dx.read(), refB.dx, { rtol: tol, what: `${what} dx` });
  if (g.dweight) {
    assertClose(await g.dweight.read(), refB.dw, { rtol: 1e-5, what: `${what} dweight` });
    assertClose(await g.dbias!.read(), refB.db, { rtol: 1e-5, what: `${what} dbias` });
  }
  if (dtype === 'f16' && x.size % 2) {
    for (const t of [y, g.dx]) {
      const last = (await readWords(gpu, t)).at(-1)!;
      if (last >>> 16 !== 0) throw new Error(`${what}: padding half of ${t.name}'s last word is ${(last >>> 16).toString(16)}, expected 0`);
    }
  }
  for (const t of [x, dy, y, mean, rstd, g.dx, weight, bias, g.dweight, g.dbias]) t?.release();
}

// Rows of 1 element, tiny, odd (f16 rows then share words), even but not multiples of 4 (f16 pairs),
// multiples of 4 (vec4 units) that do not fill the workgroup, and the DiT width 1152 (shapes are chosen so
// they share kernel variants: compiling is what costs time on a software device).
const F32: [number[], boolean][] = [[[1, 1, 1], true], [[3, 7], false], [[3, 7], true], [[2, 5, 72], true], [[4, 33, 1152], false], [[4, 33, 1152], true]];
const F16: [number[], boolean][] = [[[1, 1, 1], false], [[3, 7], true], [[3, 9, 13], false], [[5, 6], false], [[2, 5, 72], false], [[4, 33, 1152], true]];

const s = suite('layernorm');

for (const subgroups of [false, true]) {
  const needs = (gpu: Gpu) => (subgroups && !gpu.info.subgroups ? 'device has no subgroups' : null);
  s.gpuTest(`forward and backward, f32, plain and affine, subgroups ${subgroups}`, needs, async (ctx) => {
    for (const [shape, affine] of F32) await check(ctx, shape, 'f32', { subgroups, affine });
  });
  s.gpuTest(`forward and backward, f16 storage, plain and affine, subgroups ${subgroups}`, needs, async (ctx) => {
    for (const [shape, affine] of F16) await check(ctx, shape, 'f16', { subgroups, affine });
  });
}

// Row slots (several rows in flight per workgroup; the device may allow fewer than asked): rows that do not
// fill the last forward workgroup, blocks whose rows do not fill the slots evenly, fewer rows than slots;
// 16-byte f16 units; hardware f16 packing; the fused column sum of the partials (several groups: adaln tests).
// Default subgroups: the slots' shared-memory sums run on llvmpipe (no subgroups).
s.test('variants: row slots, 16-byte f16 units, fast packing, fused column sum', async (ctx) => {
  await check(ctx, [3, 11, 1152], 'f32', { affine: true, slots: 4, rowsPerBlock: 5, finalSum: 'colsum' });
  await check(ctx, [10, 20], 'f32', { affine: true, slots: 8, rowsPerBlock: 3, finalSum: 'colsum' });
  await check(ctx, [3, 11, 1152], 'f32', { affine: true, slots: 4, rowsPerBlock: 9, lean: true });
  await check(ctx, [37, 1152], 'f16', { affine: true, slots: 4, rowsPerBlock: 7, wideF16: true, fastPack: true, finalSum: 'colsum' });
  await check(ctx, [3, 9, 13], 'f16', { affine: true, slots: 3, rowsPerBlock: 4 });
  await check(ctx, [3, 11, 1152], 'f32', { affine: true, slots: 2, rowsPerBlock: 5, finalSum: 'reduce' });
  // many blocks (300) of few columns: each colsum lane adds several blocks
  await check(ctx, [300, 40], 'f32', { affine: true, rowsPerBlock: 1, finalSum: 'colsum' });
  await check(ctx, [299, 7], 'f32', { affine: true, rowsPerBlock: 1, finalSum: 'colsum' });
  await check(ctx, [3, 5, 72], 'f16', { wideF16: true, slots: 2 });
});

// One row per subgroup (subgroup sums alone, no barrier per row): units that do not fill the subgroup's
// registers evenly, ragged blocks, odd f16 rows, 16-byte f16 units. Devices without one fixed subgroup size
// refuse the option with an error naming it.
s.test('variant: one row per subgroup', async (ctx) => {
  const { min, max } = ctx.gpu.info.subgroupSize;
  if (!(ctx.gpu.info.subgroups && min > 0 && min === max)) {
    const x = ctx.gpu.upload(ctx.rng.normal(40), [4, 10]);
    await assertThrows(() => layernorm(ctx.gpu, x, { subgroupRows: true }), /layernorm: \{subgroupRows: true\} needs subgroups of one fixed size/, 'subgroupRows without fixed subgroups');
    return;
  }
  await check(ctx, [3, 11, 72], 'f32', { affine: true, subgroupRows: true });
  await check(ctx, [10, 20], 'f32', { affine: true, subgroupRows: true, rowsPerBlock: 3, finalSum: 'colsum' });
  await check(ctx, [5, 7, 36], 'f32', { affine: false, subgroupRows: true, slots: 3 });
  await check(ctx, [3, 11, 72], 'f32', { affine: true, subgroupRows: true, lean: true, rowsPerBlock: 7 });
  await check(ctx, [3, 9, 13], 'f16', { affine: true, subgroupRows: true, rowsPerBlock: 4 });
  await check(ctx, [37, 120], 'f16', { affine: true, subgroupRows: true, wideF16: true, fastPack: true, slots: 4, rowsPerBlock: 5, finalSum: 'colsum' });
  const x = ctx.gpu.upload(ctx.rng.normal(2 * max * 33 * 4), [2, max * 33 * 4]);
  await assertThrows(() => layernorm(ctx.gpu, x, { subgroupRows: true }), /units a thread .* leave the option unset/, 'subgroupRows on too long rows');
});

s.test('weight gradients over blocks of rows: ragged last block, one row per block', async (ctx) => {
  await check(ctx, [4, 33, 1152], 'f32', { affine: true, rowsPerBlock: 5 });
  await check(ctx, [37, 1152], 'f16', { affine: true, rowsPerBlock: 4 });
  await check(ctx, [9, 13], 'f16', { affine: true, rowsPerBlock: 2 });
  await check(ctx, [10, 20], 'f32', { affine: true, rowsPerBlock: 1 });
  await check(ctx, [10, 20], 'f32', { affine: true, rowsPerBlock: 100 });
});

s.test('rows far from zero mean, larger eps', async (ctx) => {
  await check(ctx, [6, 1152], 'f32', { affine: true, offset: 1000 });
  await check(ctx, [6, 7], 'f32', { offset: -300, eps: 1e-3 });
  // a constant row: zero variance, so y = bias
  const { gpu } = ctx;
  const b = gpu.upload([1, 2, 3], [3]);
  const { y, rstd } = layernorm(gpu, gpu.upload([5, 5, 5], [1, 3]), { weight: gpu.upload([2, 2, 2], [3]), bias: b });
  assertClose(await y.read(), [1, 2, 3], { rtol: 1e-6, what: 'constant row' });
  assertClose(await rstd.read(), [1000], { rtol: 1e-6, what: 'rstd of a constant row' });
});

s.test('backward matches central differences of the forward', async ({ gpu, rng }) => {
  for (const dtype of ['f32', 'f16'] as const) {
    const shape = [3, 5];
    const [rows, C] = shape as [number, number];
    // f16 storage: the forward sees the rounded x, so the differences are taken around it
    const x0 = seen(rowsAround(rng, shape), dtype);
    const r0 = Float64Array.from(rng.normal(rows * C));
    const w0 = Float64Array.from(rng.normal(C, 0.5), (v) => v + 1);
    const b0 = Float64Array.from(rng.normal(C));
    // L = Σ r · y(x, w, b) in f64; dL/dθ by central differences
    const loss = (x: Float64Array, w: Float64Array, b: Float64Array) => refLayerNorm(x, C, 1e-6, w, b).y.reduce((acc, v, i) => acc + v * r0[i]!, 0);
    const h = 1e-3;
    const fd = (v: Float64Array, f: (p: Float64Array) => number) =>
      Float64Array.from(v, (_, i) => {
        const p = v.slice();
        const m = v.slice();
        p[i]! += h;
        m[i]! -= h;
        return (f(p) - f(m)) / (2 * h);
      });
    const x = gpu.upload(x0, shape, dtype);
    const weight = gpu.upload(w0, [C]);
    const { mean, rstd } = layernorm(gpu, x, { weight, bias: gpu.upload(b0, [C]) });
    for (const v of [{}, { slots: 2, rowsPerBlock: 2, finalSum: 'colsum' } as const, { slots: 2, lean: true } as const]) {
      const g = layernormBackward(gpu, gpu.upload(r0, shape, dtype), x, mean, rstd, { weight, ...v });
      const vs = JSON.stringify(v);
      // f16 dy and dx are rounded to half: compare those with the f16 tolerance
      const dyTol = dtype === 'f16' ? 1e-2 : 1e-3;
      assertClose(await g.dx.read(), fd(x0, (p) => loss(p, w0, b0)), { rtol: dyTol, what: `${dtype} ${vs} dx vs finite differences` });
      if (dtype === 'f32') {
        assertClose(await g.dweight!.read(), fd(w0, (p) => loss(x0, p, b0)), { rtol: 1e-3, what: `${vs} dweight vs finite differences` });
        assertClose(await g.dbias!.read(), fd(b0, (p) => loss(x0, w0, p)), { rtol: 1e-3, what: `${vs} dbias vs finite differences` });
      }
    }
  }
});

s.test('deterministic: the same inputs give the same bits', async ({ gpu, rng }) => {
  const shape = [64, 1152];
  const x = gpu.upload(rowsAround(rng, shape), shape);
  const dy = gpu.upload(rng.normal(numel(shape)), shape);
  const weight = gpu.upload(rng.normal(1152), [1152]);
  const bias = gpu.upload(rng.normal(1152), [1152]);
  const run = async (v: NormBackwardVariant) => {
    const f = layernorm(gpu, x, { weight, bias, slots: v.slots });
    const g = layernormBackward(gpu, dy, x, f.mean, f.rstd, { weight, rowsPerBlock: 3, ...v });
    return [await f.y.read(), await g.dx.read(), await g.dweight!.read(), await g.dbias!.read()];
  };
  for (const v of [{}, { slots: 4, finalSum: 'colsum' } as const]) {
    const a = await run(v);
    const b = await run(v);
    a.forEach((o, i) => {
      if (!o.every((e, j) => Object.is(e, b[i]![j]))) throw new Error(`${JSON.stringify(v)}: output ${i} differs between runs`);
    });
  }
});

// The packed f16 kernel (default for f16 rows of even C): 16-byte words (C % 8 == 0) of 1152 and of 4104
// halves (513 words: the last thread's words run past the row), 8-byte words (C % 8 == 4), 4-byte words
// (C % 4 == 2); rows that fill neither the slots nor the blocks; one row per block; forward blocks of 1 and 3
// rows; 3 slots (48 threads: not whole subgroups of 32 on NVIDIA); subgroup and shared-memory sums; and the unit
// kernel it replaced ({packed: false}) on the same shapes.
s.test('packed f16 kernel: word widths, ragged rows and blocks, slots, the unit kernel beside it', async (ctx) => {
  const sub = ctx.gpu.info.subgroups ? [false, true] : [false];
  for (const subgroups of sub) {
    await check(ctx, [37, 1152], 'f16', { affine: true, packed: true, rowsPerBlock: 7, subgroups });
    await check(ctx, [3, 11, 36], 'f16', { affine: true, packed: true, rowsPerBlock: 5, forwardRowsPerBlock: 3, subgroups });
    await check(ctx, [13, 38], 'f16', { affine: true, packed: true, slots: 3, rowsPerBlock: 4, subgroups });
    await check(ctx, [9, 38], 'f16', { affine: false, packed: true, slots: 2, rowsPerBlock: 5, forwardRowsPerBlock: 1, subgroups });
  }
  await check(ctx, [5, 4104], 'f16', { affine: true, packed: true, rowsPerBlock: 2 });
  await check(ctx, [21, 72], 'f16', { affine: true, packed: true, rowsPerBlock: 1, slots: 1, finalSum: 'colsum' });
  await check(ctx, [6, 1152], 'f16', { affine: true, packed: true, fastPack: false, finalSum: 'reduce' });
  await check(ctx, [37, 1152], 'f16', { affine: true, packed: false, rowsPerBlock: 7, fastPack: true, finalSum: 'colsum' });
  await check(ctx, [13, 38], 'f16', { affine: false, packed: false });
  // threads per row chosen through perThread (1 word a thread: 144 threads; 2: 80 threads, eight of them with
  // a second word past the row), and the unit kernel's (1 unit a thread: 288 threads is over 256: an error)
  await check(ctx, [9, 1152], 'f16', { affine: true, packed: true, perThread: 1, slots: 1, rowsPerBlock: 4 });
  await check(ctx, [9, 1152], 'f16', { affine: true, packed: true, perThread: 2, slots: 2, rowsPerBlock: 3 });
  await check(ctx, [7, 1152], 'f32', { affine: true, perThread: 2, slots: 2, rowsPerBlock: 3 });
  await assertThrows(() => check(ctx, [2, 1152], 'f32', { affine: true, perThread: 1 }), /perThread 1 needs 288 threads .* use a perThread of at least 2/, 'perThread 1 on 288 units');
});

s.test('packed f16 kernel: the f16 default, deterministic', async ({ gpu, rng }) => {
  const shape = [45, 1152];
  const x = gpu.upload(rowsAround(rng, shape), shape, 'f16');
  const dy = gpu.upload(rng.normal(numel(shape)), shape, 'f16');
  const weight = gpu.upload(rng.normal(1152), [1152]);
  const bias = gpu.upload(rng.normal(1152), [1152]);
  const run = async (v: NormBackwardVariant) => {
    const f = layernorm(gpu, x, { weight, bias, ...v });
    const g = layernormBackward(gpu, dy, x, f.mean, f.rstd, { weight, rowsPerBlock: 4, ...v });
    return [await f.y.read(), await f.rstd.read(), await g.dx.read(), await g.dweight!.read(), await g.dbias!.read()];
  };
  const a = await run({});
  for (const v of [{}, { packed: true }]) {
    const b = await run(v);
    a.forEach((o, i) => {
      if (!o.every((e, j) => Object.is(e, b[i]![j]))) throw new Error(`${JSON.stringify(v)}: output ${i} differs from the f16 default's`);
    });
  }
});

s.test('plans: workgroup size, register slots, blocks', () => {
  const cases: [number, number, number][] = [[1, 32, 1], [2, 32, 1], [72, 96, 1], [288, 96, 3], [1152, 192, 6], [8192, 256, 32]];
  for (const [units, wg, per] of cases) {
    const p = rowPlan(units);
    if (p.wg !== wg || p.per !== per) throw new Error(`rowPlan(${units}) = ${JSON.stringify(p)}, expected wg ${wg} per ${per}`);
  }
  const b = blockPlan(1, 16384);
  if (b.blockRows !== 16 || b.blocks !== 1024) throw new Error(`blockPlan(1, 16384) = ${JSON.stringify(b)}`);
  const a = blockPlan(4, 33, 5);
  if (a.blockRows !== 5 || a.blocks !== 7) throw new Error(`blockPlan(4, 33, 5) = ${JSON.stringify(a)}`);
  const c = blockPlan(1, 16384, undefined, 4);
  if (c.blockRows !== 64 || c.blocks !== 256) throw new Error(`blockPlan(1, 16384, -, 4) = ${JSON.stringify(c)}`);
  const d = blockPlan(1, 16384, undefined, 1, 512); // layernormBackward's f32 target
  if (d.blockRows !== 32 || d.blocks !== 512) throw new Error(`blockPlan(1, 16384, -, 1, 512) = ${JSON.stringify(d)}`);
  for (const [C, nh, wg, per] of [[1152, 8, 48, 3], [4104, 8, 176, 3], [36, 4, 16, 1], [38, 2, 16, 2], [8192, 8, 256, 4]] as const) {
    const l = packedLayout(C);
    const q = packedPlan(l.words);
    if (l.nh !== nh || q?.wg !== wg || q.per !== per) throw new Error(`packed plan of ${C} halves: ${JSON.stringify({ ...l, ...q })}, expected ${nh} halves a word, wg ${wg} per ${per}`);
  }
  if (packedPlan(1025) !== null) throw new Error('packedPlan(1025 words) should refuse');
  const w = unitLayout('f16', 1152, true);
  if (w.e !== 8 || w.units !== 144 || unitLayout('f16', 1156, true).e !== 4 || unitLayout('f32', 1152, true).e !== 4) throw new Error(`unitLayout wideF16: ${JSON.stringify(w)}`);
});

s.test('row slots fit the device limits', ({ gpu }) => {
  const { maxComputeInvocationsPerWorkgroup: inv, maxComputeWorkgroupStorageSize: mem } = gpu.info.limits;
  for (const [wg, e] of [[96, 4], [160, 8], [256, 4], [256, 8]] as const) {
    const sl = slotsFor(gpu, wg, e, true, 64);
    if (sl < 1 || wg * sl > inv || 8 * wg * sl + 4 * e * wg * (sl - 1) > mem) throw new Error(`slotsFor(${wg}, ${e}) = ${sl} over the limits (${inv} invocations, ${mem} bytes)`);
  }
  if (slotsFor(gpu, 96, 4, true, 1) !== 1) throw new Error('slotsFor with one slot asked');
});

s.test('rows in a folded 2-D grid; out tensors; empty rows', async (ctx) => {
  await withGridLimit(ctx.gpu, 4, () => check(ctx, [13, 72], 'f32', { affine: true, rowsPerBlock: 1 }));
  await withGridLimit(ctx.gpu, 4, () => check(ctx, [11, 9], 'f16', { affine: true, rowsPerBlock: 2 }));
  const { gpu, rng } = ctx;
  const x0 = rowsAround(rng, [8, 5]);
  const out = gpu.tensor([8, 5], 'f32', 'out');
  const { y } = layernorm(gpu, gpu.upload(x0, [8, 5]), { out });
  if (y !== out) throw new Error('layernorm did not return its out tensor');
  assertClose(await out.read(), refLayerNorm(x0, 5, 1e-6).y, { rtol: 1e-5, what: 'layernorm into out' });
  const e = gpu.tensor([0, 4]);
  const f = layernorm(gpu, e);
  const g = layernormBackward(gpu, e, e, f.mean, f.rstd, { weight: gpu.upload([1, 2, 3, 4], [4]) });
  assertClose(await g.dweight!.read(), [0, 0, 0, 0], { rtol: 0, what: 'dweight of no rows' });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const x = gpu.tensor([4, 6]);
  const w = gpu.tensor([6]);
  const st = layernorm(gpu, x);
  await assertThrows(() => layernorm(gpu, x, { weight: gpu.tensor([5]), bias: w }), /layernorm: weight .* must be \[6\]; one value per element of the last dim/, 'weight shape');
  await assertThrows(() => layernorm(gpu, x, { weight: w }), /layernorm: pass both weight and bias/, 'weight without bias');
  await assertThrows(() => layernorm(gpu, x, { weight: w, bias: gpu.tensor([6], 'f16') }), /layernorm: bias .* must be f32 .*cast/, 'f16 bias');
  await assertThrows(() => layernorm(gpu, x, { eps: -1 }), /layernorm: eps -1 must be/, 'negative eps');
  await assertThrows(() => layernorm(gpu, gpu.tensor([4], 'i32')), /layernorm: .* dtype i32; expected f32 or f16/, 'i32 input');
  await assertThrows(() => layernorm(gpu, gpu.tensor([])), /layernorm: .* rank 0/, 'scalar');
  await assertThrows(() => layernorm(gpu, gpu.tensor([3, 0])), /layernorm: .* empty last dim/, 'empty rows');
  await assertThrows(() => layernorm(gpu, gpu.tensor([1, 32769])), /layernorm: rows of .* 32769 elements, over .* split the last dim/, 'row too long');
  await assertThrows(() => layernorm(gpu, x, { out: gpu.tensor([4, 6], 'f16') }), /layernorm: output .* must be \[4, 6\] f32/, 'wrong out dtype');
  await assertThrows(() => layernormBackward(gpu, gpu.tensor([4, 5]), x, st.mean, st.rstd), /layernormBackward: dy .* must have the shape of x/, 'dy shape');
  await assertThrows(() => layernormBackward(gpu, x, x, gpu.tensor([3]), st.rstd), /layernormBackward: .* must be the forward's f32 mean with one value per row \(4\)/, 'mean size');
  await assertThrows(() => layernormBackward(gpu, x, x, st.mean, st.rstd, { weight: gpu.tensor([4]) }), /layernormBackward: weight .* must be \[6\]/, 'backward weight');
  await assertThrows(() => layernormBackward(gpu, x, x, st.mean, st.rstd, { weight: w, rowsPerBlock: 0 }), /rowsPerBlock 0 must be a positive integer/, 'rowsPerBlock');
  await assertThrows(() => layernorm(gpu, x, { slots: 0 }), /layernorm: slots 0 must be a positive integer/, 'slots');
  await assertThrows(() => layernormBackward(gpu, x, x, st.mean, st.rstd, { weight: w, finalSum: 'tree' as 'colsum' }), /layernormBackward: finalSum 'tree' must be 'colsum' or 'reduce'/, 'finalSum');
  await assertThrows(() => layernorm(gpu, x, { packed: true }), /layernorm: \{packed: true\} needs f16 rows of even length/, 'packed f32');
  await assertThrows(() => layernorm(gpu, gpu.tensor([2, 5], 'f16'), { packed: true }), /layernorm: \{packed: true\} needs f16 rows of even length/, 'packed odd rows');
  await assertThrows(() => layernorm(gpu, gpu.tensor([2, 6], 'f16'), { forwardRowsPerBlock: 0 }), /forwardRowsPerBlock 0 must be a positive integer/, 'forwardRowsPerBlock');
  if (!gpu.info.subgroups) await assertThrows(() => layernorm(gpu, x, { subgroups: true }), /subgroups feature/, 'subgroups without the feature');
  await gpu.sync();
});

s.run();
