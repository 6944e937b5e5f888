// Optimizer kernels: fused AdamW (f32/f16 grads, state-driven grad_scale / skip / t, f16 weight copy),
// global gradient norm with clipping, dynamic loss scaling (skip on inf/NaN, backoff, growth), EMA.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { readWords, withGridLimit } from './ops-util.js';
import { roundToF16, toF16Bits, type DType } from '../engine/dtype.js';
import { adamw, clipGradNorm, emaUpdate, optimState, readOptimState, type AdamWParam } from '../engine/ops/optim.js';
import { Tensor } from '../engine/tensor.js';
import type { Gpu } from '../engine/gpu.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  wd: number;
}

/** One torch.optim.AdamW step (single-tensor path) on f64 copies; g already multiplied by the grad scale. */
function refAdamW(p: ArrayLike<number>, m: ArrayLike<number>, v: ArrayLike<number>, g: ArrayLike<number>, h: Hyper, t: number) {
  const n = p.length;
  const [P, M, Vv] = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  const bc1 = 1 - h.beta1 ** t;
  const bc2Sqrt = Math.sqrt(1 - h.beta2 ** t);
  const stepSize = h.lr / bc1;
  for (let i = 0; i < n; i++) {
    const gi = g[i]!;
    M[i] = m[i]! + (1 - h.beta1) * (gi - m[i]!);
    Vv[i] = v[i]! * h.beta2 + (1 - h.beta2) * gi * gi;
    P[i] = p[i]! * (1 - h.lr * h.wd) - (stepSize * M[i]!) / (Math.sqrt(Vv[i]!) / bc2Sqrt + h.eps);
  }
  return { p: P, m: M, v: Vv };
}

/** sqrt(Σ g²) over several arrays. */
function refNorm(gs: ArrayLike<number>[]): number {
  let s = 0;
  for (const g of gs) for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
  return Math.sqrt(s);
}

/** The clip factor torch.nn.utils.clip_grad_norm_ applies. */
const refClip = (norm: number, maxNorm: number) => Math.min(1, maxNorm / (norm + 1e-6));

function refEma(e: ArrayLike<number>, p: ArrayLike<number>, decay: number): Float64Array {
  return Float64Array.from(e, (x, i) => decay * x + (1 - decay) * p[i]!);
}
// ------------------------------------------------------------------------------------------------------

// eps is large enough that where it is added (after dividing sqrt(v) by sqrt(bc2), like torch) matters.
const HYPER: Hyper = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-3, wd: 0.1 };
// vec4 sizes (64, 4100) and pair sizes (7, 1001, 1 and 2), ragged against the 256-thread workgroups.
const SIZES = [7, 64, 1001, 4100, 1, 2];

const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const diff = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (x, i) => x - b[i]!);

interface Slot {
  t: AdamWParam;
  n: number;
}

/** Params with random weights and moments (v > 0, as after earlier steps), f32 or f16 grads, optional f16 copy. */
function makeParams(gpu: Gpu, rng: Ctx['rng'], sizes: number[], gradDType: DType, half: boolean): Slot[] {
  return sizes.map((n) => ({
    n,
    t: {
      param: gpu.upload(rng.uniform(n), [n], 'f32', 'p'),
      m: gpu.upload(rng.normal(n, 0.1), [n], 'f32', 'm'),
      v: gpu.upload(rng.uniform(n, 1e-4, 1e-2), [n], 'f32', 'v'),
      grad: gpu.tensor([n], gradDType, 'g'),
      half: half ? gpu.tensor([n], 'f16', 'p16') : undefined,
    },
  }));
}

async function snapshot(slots: Slot[]) {
  return Promise.all(slots.map(async ({ t }) => ({ p: f64(await t.param.read()), m: f64(await t.m.read()), v: f64(await t.v.read()) })));
}

/** Writes fresh random grads (scaled by `mult`) and returns the values the GPU holds (f16-rounded for f16). */
function newGrads(gpu: Gpu, rng: Ctx['rng'], slots: Slot[], mult = 1): Float64Array[] {
  return slots.map(({ t, n }) => {
    const g = rng.normal(n).map((x) => x * mult);
    gpu.write(t.grad, g);
    return t.grad.dtype === 'f16' ? roundToF16(g) : f64(g);
  });
}

/**
 * The step itself, new − old, within 1e-5 of the reference step (relative to |Δ| + rms(Δ)) plus the one
 * rounding of the new f32 weight (an ulp of |p|), which no f32 kernel can avoid.
 */
function checkDelta(got: Float64Array, old: Float64Array, want: Float64Array, what: string) {
  const d = diff(want, old);
  const rms = Math.sqrt(d.reduce((s, x) => s + x * x, 0) / d.length);
  for (let i = 0; i < d.length; i++) {
    const err = Math.abs(got[i]! - old[i]! - d[i]!);
    const tol = 1e-5 * (Math.abs(d[i]!) + rms) + 2 ** -23 * Math.abs(want[i]!);
    if (!(err <= tol)) throw new Error(`${what}: element ${i} moved by ${got[i]! - old[i]!}, reference ${d[i]}; error ${err.toExponential(2)} > ${tol.toExponential(2)}`);
  }
}

/** Checks one step's p, m, v (and the step Δp, and the f16 copy) against the reference from the state before it. */
async function checkStep(slots: Slot[], before: Awaited<ReturnType<typeof snapshot>>, grads: Float64Array[], gs: number, t: number, what: string) {
  const after = await snapshot(slots);
  for (const [k, { t: e, n }] of slots.entries()) {
    const b = before[k]!;
    const ref = refAdamW(b.p, b.m, b.v, grads[k]!.map((x) => x * gs), HYPER, t);
    const w = `${what} t=${t} n=${n}`;
    assertClose(after[k]!.m, ref.m, { rtol: 1e-5, what: `${w} m` });
    assertClose(after[k]!.v, ref.v, { rtol: 1e-5, what: `${w} v` });
    assertClose(after[k]!.p, ref.p, { rtol: 1e-5, what: `${w} p` });
    checkDelta(after[k]!.p, b.p, ref.p, `${w} Δp`);
    if (e.half) {
      const half = await e.half.read();
      assertClose(half, ref.p, { rtol: 1e-2, what: `${w} f16 copy` });
      const words = await readWords(e.param.gpu, e.half);
      const want = toF16Bits(after[k]!.p);
      for (let i = 0; i < n; i++) {
        const bits = (words[i >> 1]! >>> (16 * (i & 1))) & 0xffff;
        if (bits !== want[i]) throw new Error(`${w} f16 copy: element ${i} has bits ${bits.toString(16)}, expected round(p) = ${want[i]!.toString(16)}`);
      }
    }
  }
}

function release(slots: Slot[]) {
  for (const { t } of slots) for (const x of [t.param, t.m, t.v, t.grad, t.half]) x?.release();
}

/** Raw words of every tensor, for bit-identity checks. */
async function bits(ts: Tensor[]): Promise<Uint32Array[]> {
  return Promise.all(ts.map((t) => readWords(t.gpu, t)));
}

function sameBits(a: Uint32Array[], b: Uint32Array[], what: string) {
  a.forEach((x, k) => {
    const i = x.findIndex((w, j) => w !== b[k]![j]);
    if (i >= 0) throw new Error(`${what}: tensor ${k} word ${i} changed (${x[i]!.toString(16)} → ${b[k]![i]!.toString(16)})`);
  });
}

const s = suite('optim');

for (const gradDType of ['f32', 'f16'] as const) {
  s.test(`adamw, t = 1, 2, 3 and 1000 given by the caller, ${gradDType} grads, f16 copy`, async ({ gpu, rng }) => {
    const slots = makeParams(gpu, rng, SIZES, gradDType, true);
    for (const t of [1, 2, 3, 1000]) {
      const grads = newGrads(gpu, rng, slots);
      const before = await snapshot(slots);
      const h = HYPER;
      adamw(gpu, slots.map((x) => x.t), { lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.wd, step: t });
      await checkStep(slots, before, grads, 1, t, `adamw ${gradDType}`);
    }
    release(slots);
  });
}

s.test('adamw with a state: t from its counter, grads × clip / loss scale, f16 grads and copy', async ({ gpu, rng }) => {
  const S = 1024;
  const slots = makeParams(gpu, rng, SIZES, 'f16', true);
  const f32Slots = makeParams(gpu, rng, [1000, 12], 'f32', false);
  const all = [...slots, ...f32Slots];
  const state = optimState(gpu, { lossScale: S, growthInterval: 1000 });
  for (const t of [1, 2, 3]) {
    const grads = newGrads(gpu, rng, all, S); // scaled grads, as after a backward with loss × S
    const before = await snapshot(all);
    const maxNorm = 5;
    clipGradNorm(gpu, all.map((x) => x.t.grad), state, { maxNorm });
    adamw(gpu, all.map((x) => x.t), { lr: HYPER.lr, beta1: HYPER.beta1, beta2: HYPER.beta2, eps: HYPER.eps, weightDecay: HYPER.wd, state });
    const st = await readOptimState(state);
    const norm = refNorm(grads) / S;
    if (st.skip || st.step !== t || st.lossScale !== S || st.goodSteps !== t) throw new Error(`state after step ${t}: ${JSON.stringify(st)}`);
    assertClose([st.gradNorm], [norm], { rtol: 1e-5, what: 'grad norm' });
    const gs = refClip(norm, maxNorm) / S;
    if (refClip(norm, maxNorm) > 0.9) throw new Error(`test setup: norm ${norm} should be clipped`);
    assertClose([st.gradScale], [gs], { rtol: 1e-5, what: 'grad scale' });
    await checkStep(all, before, grads, gs, t, 'adamw state');
  }
  release(all);
  state.release();
});

s.test('adamw in a folded 2-D grid', async ({ gpu, rng }) => {
  const slots = makeParams(gpu, rng, [256 * 4 * 6 + 4, 256 * 2 * 5 + 1], 'f32', true);
  const grads = newGrads(gpu, rng, slots);
  const before = await snapshot(slots);
  // 1537 and 1281 threads' worth of work: 7 and 6 workgroups, folded into 4 × 2 grids
  await withGridLimit(gpu, 4, async () => {
    adamw(gpu, slots.map((x) => x.t), { lr: HYPER.lr, beta1: HYPER.beta1, beta2: HYPER.beta2, eps: HYPER.eps, weightDecay: HYPER.wd, step: 2 });
    await gpu.sync();
  });
  await checkStep(slots, before, grads, 1, 2, 'adamw folded');
  release(slots);
});

s.test('global grad norm over ragged f32 and f16 tensors; clip factor; deterministic', async ({ gpu, rng }) => {
  const specs: [number, DType][] = [[1, 'f32'], [3, 'f16'], [8, 'f16'], [1000, 'f32'], [4097, 'f32'], [70001, 'f16'], [65536, 'f32'], [4104, 'f16']];
  const vals = specs.map(([n, d]) => (d === 'f16' ? roundToF16(rng.normal(n)) : f64(rng.normal(n))));
  const grads = specs.map(([n, d], k) => gpu.upload(vals[k]!, [n], d, 'g'));
  // A NaN in the padding half of an odd-sized f16 tensor's last word must be ignored.
  const odd = grads[1]!;
  const view = new Tensor(gpu, [2], 'u32', odd.buffer, 'g.words');
  view.isView = true;
  const w = await readWords(gpu, odd);
  gpu.write(view, [w[0]!, (w[1]! & 0xffff) | (0x7e00 << 16)]);
  const norm = refNorm(vals);
  const state = optimState(gpu, { lossScale: 1, dynamic: false });
  clipGradNorm(gpu, grads, state);
  const a = await readOptimState(state);
  assertClose([a.gradNorm], [norm], { rtol: 1e-5, what: 'norm' });
  if (a.gradScale !== 1 || a.skip || a.step !== 1 || a.lossScale !== 1) throw new Error(`unclipped state: ${JSON.stringify(a)}`);
  clipGradNorm(gpu, grads, state);
  const b = await readOptimState(state);
  if (!Object.is(a.gradNorm, b.gradNorm)) throw new Error(`norm differs between runs: ${a.gradNorm} vs ${b.gradNorm}`);
  for (const maxNorm of [norm / 7, norm * 2]) {
    clipGradNorm(gpu, grads, state, { maxNorm });
    const c = await readOptimState(state);
    assertClose([c.gradScale], [refClip(norm, maxNorm)], { rtol: 1e-5, what: `clip factor, maxNorm ${maxNorm}` });
  }
  // With a loss scale: the norm is that of the unscaled grads, and grad_scale folds 1/scale in.
  const scaled = optimState(gpu, { lossScale: 256 });
  clipGradNorm(gpu, grads, scaled, { maxNorm: norm / 1024 });
  const d = await readOptimState(scaled);
  assertClose([d.gradNorm, d.gradScale], [norm / 256, refClip(norm / 256, norm / 1024) / 256], { rtol: 1e-5, what: 'scaled norm, grad scale' });
  for (const t of [...grads, state, scaled]) t.release();
});

s.test('inf/NaN gradients: the step is skipped bit-for-bit, the scale halves, t stays', async ({ gpu, rng }) => {
  for (const [dtype, bad] of [['f16', Infinity], ['f32', NaN], ['f32', -Infinity]] as const) {
    const slots = makeParams(gpu, rng, [1001, 64, 40], dtype, true);
    const emas = slots.map(({ n }) => gpu.upload(rng.uniform(n), [n], 'f32', 'ema'));
    const state = optimState(gpu, { lossScale: 4096, growthInterval: 2 });
    const step = () => {
      clipGradNorm(gpu, slots.map((x) => x.t.grad), state, { maxNorm: 1 });
      adamw(gpu, slots.map((x) => x.t), { lr: 0.01, state });
      emaUpdate(gpu, slots.map((x, k) => ({ ema: emas[k]!, param: x.t.param })), 0.99, state);
    };
    newGrads(gpu, rng, slots, 100);
    step(); // one good step, so the counters are non-zero
    const good = await readOptimState(state);
    if (good.skip || good.step !== 1 || good.goodSteps !== 1) throw new Error(`after a finite step: ${JSON.stringify(good)}`);
    const watched = [...slots.flatMap((x) => [x.t.param, x.t.m, x.t.v, x.t.half!]), ...emas];
    const before = await bits(watched);
    const g = rng.normal(1001).map((x) => x * 100);
    g[777] = bad;
    gpu.write(slots[0]!.t.grad, g);
    step();
    sameBits(before, await bits(watched), `${dtype} grads with ${bad}`);
    const st = await readOptimState(state);
    const want = { skip: true, step: 1, lossScale: 2048, goodSteps: 0, skipped: 1 };
    for (const [k, v] of Object.entries(want)) {
      if (st[k as keyof typeof want] !== v) throw new Error(`${dtype} ${bad}: state.${k} = ${st[k as keyof typeof want]}, expected ${v} (${JSON.stringify(st)})`);
    }
    if (!Number.isNaN(st.gradNorm)) throw new Error(`skipped step reports norm ${st.gradNorm}`);
    newGrads(gpu, rng, slots, 100);
    step(); // finite again: t advances to 2 and the weights move
    const after = await readOptimState(state);
    if (after.skip || after.step !== 2 || after.goodSteps !== 1 || after.lossScale !== 2048) throw new Error(`recovery step: ${JSON.stringify(after)}`);
    const moved = await bits(watched);
    if (moved.every((x, k) => x.every((w, j) => w === before[k]![j]))) throw new Error('a finite step after the skip left the weights unchanged');
    release(slots);
    for (const t of [...emas, state]) t.release();
  }
});

s.test('loss scale grows after growthInterval finite steps; overflowing growth is refused', async ({ gpu, rng }) => {
  const g = gpu.upload(rng.normal(300), [300], 'f16', 'g');
  const state = optimState(gpu, { lossScale: 8, growthInterval: 3, growthFactor: 2, backoffFactor: 0.25 });
  const seen: number[] = [];
  for (let i = 0; i < 7; i++) {
    clipGradNorm(gpu, [g], state);
    const st = await readOptimState(state);
    seen.push(st.lossScale, st.goodSteps);
  }
  // 3 steps → 16, 3 more → 32; goodSteps counts 1, 2, 0, 1, 2, 0, 1.
  const want = [8, 1, 8, 2, 16, 0, 16, 1, 16, 2, 32, 0, 32, 1];
  if (seen.join() !== want.join()) throw new Error(`scale, goodSteps per step: ${seen.join()}; expected ${want.join()}`);
  const big = optimState(gpu, { lossScale: 3e38, growthInterval: 1 });
  clipGradNorm(gpu, [g], big);
  const st = await readOptimState(big);
  if (Math.abs(st.lossScale - 3e38) > 1e32 || st.goodSteps !== 0 || st.skip) throw new Error(`growth to inf should be refused: ${JSON.stringify(st)}`);
  const fixed = optimState(gpu, { lossScale: 8, growthInterval: 1, dynamic: false });
  clipGradNorm(gpu, [g], fixed);
  if ((await readOptimState(fixed)).lossScale !== 8) throw new Error('dynamic: false must keep the scale');
  for (const t of [g, state, big, fixed]) t.release();
});

s.test('EMA update, vec4 and odd sizes, default decay and 0.9', async ({ gpu, rng }) => {
  for (const n of [1, 7, 1000, 4099, 65540]) {
    for (const decay of [undefined, 0.9]) {
      const e0 = rng.uniform(n);
      const p0 = rng.uniform(n);
      const e = gpu.upload(e0, [n], 'f32', 'ema');
      const p = gpu.upload(p0, [n], 'f32', 'p');
      emaUpdate(gpu, [{ ema: e, param: p }], decay);
      const ref = refEma(e0, p0, decay ?? 0.9999);
      assertClose(await e.read(), ref, { rtol: 1e-5, what: `ema n=${n} decay ${decay}` });
      checkDelta(f64(await e.read()), f64(e0), ref, `ema change n=${n} decay ${decay}`);
      e.release();
      p.release();
    }
  }
});

s.test('adamw with a fused EMA = adamw then emaUpdate, bit for bit (vec4 and odd sizes, f32/f16 grads, skipped steps)', async ({ gpu, rng }) => {
  for (const gradDType of ['f32', 'f16'] as const) {
    const sizes = [7, 64, 1001, 4100, 1, 2];
    const fused = makeParams(gpu, rng, sizes, gradDType, true);
    // an identical second set, stepped by adamw and then the separate EMA kernel
    const apart: Slot[] = fused.map(({ n, t }) => ({ n, t: { param: gpu.clone(t.param), m: gpu.clone(t.m), v: gpu.clone(t.v), grad: gpu.tensor([n], gradDType, 'g'), half: gpu.tensor([n], 'f16', 'p16') } }));
    const ema0 = sizes.map((n) => rng.uniform(n));
    const emaF = ema0.map((e, k) => gpu.upload(e, [sizes[k]!], 'f32', 'ema'));
    const emaA = ema0.map((e, k) => gpu.upload(e, [sizes[k]!], 'f32', 'ema'));
    const [stF, stA] = [0, 1].map(() => optimState(gpu, { lossScale: 64, growthInterval: 1000 }));
    const decay = 0.97;
    for (const bad of [false, false, true, false]) {
      const grads = sizes.map((n) => rng.normal(n).map((x) => x * 64));
      if (bad) grads[2]![500] = NaN;
      fused.forEach(({ t }, k) => gpu.write(t.grad, grads[k]!));
      apart.forEach(({ t }, k) => gpu.write(t.grad, grads[k]!));
      clipGradNorm(gpu, fused.map((x) => x.t.grad), stF!, { maxNorm: 10 });
      adamw(gpu, fused.map((x, k) => ({ ...x.t, ema: emaF[k] })), { lr: 0.01, weightDecay: 0.1, state: stF, emaDecay: decay });
      clipGradNorm(gpu, apart.map((x) => x.t.grad), stA!, { maxNorm: 10 });
      adamw(gpu, apart.map((x) => x.t), { lr: 0.01, weightDecay: 0.1, state: stA });
      emaUpdate(gpu, apart.map((x, k) => ({ ema: emaA[k]!, param: x.t.param })), decay, stA);
      const watch = (slots: Slot[], emas: Tensor[]) => [...slots.flatMap((x) => [x.t.param, x.t.m, x.t.v, x.t.half!]), ...emas];
      sameBits(await bits(watch(apart, emaA)), await bits(watch(fused, emaF)), `${gradDType} fused EMA${bad ? ' (skipped step)' : ''}`);
    }
    const e = await emaF[3]!.read();
    if (e.every((x, i) => x === Math.fround(ema0[3]![i]!))) throw new Error('the fused EMA never moved');
    release(fused);
    release(apart);
    for (const t of [...emaF, ...emaA, stF!, stA!]) t.release();
  }
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const p = gpu.tensor([10]);
  const ok = { param: p, grad: gpu.tensor([10], 'f16'), m: gpu.tensor([10]), v: gpu.tensor([10]) };
  const state = optimState(gpu);
  await assertThrows(() => adamw(gpu, [{ ...ok, m: gpu.tensor([11]) }], { lr: 1, step: 1 }), /adamw: params\[0\]: m .*must be f32 with the shape of param/, 'm shape');
  await assertThrows(() => adamw(gpu, [{ ...ok, v: gpu.tensor([10], 'f16') }], { lr: 1, step: 1 }), /adamw: params\[0\]: v .*must be f32/, 'v dtype');
  await assertThrows(() => adamw(gpu, [{ ...ok, grad: gpu.tensor([10], 'i32') }], { lr: 1, step: 1 }), /adamw: params\[0\]: .* dtype i32; expected f32 or f16/, 'i32 grad');
  await assertThrows(() => adamw(gpu, [{ ...ok, half: gpu.tensor([10]) }], { lr: 1, step: 1 }), /adamw: params\[0\]: half .*must be f16/, 'f32 copy');
  await assertThrows(() => adamw(gpu, [{ ...ok, param: gpu.tensor([10], 'f16') }], { lr: 1, step: 1 }), /adamw: params\[0\]: .* expected f32/, 'f16 master');
  await assertThrows(() => adamw(gpu, [ok], { lr: 1 }), /adamw: step = undefined; without a state, pass the step number/, 'no step');
  await assertThrows(() => adamw(gpu, [ok], { lr: 1, step: 1, state }), /given with a state/, 'step and state');
  await assertThrows(() => adamw(gpu, [ok], { lr: 1, beta2: 1, step: 1 }), /adamw: beta2 = 1; it must be in \[0, 1\)/, 'beta2');
  await assertThrows(() => adamw(gpu, [{ ...ok, m: ok.v }], { lr: 1, step: 1 }), /aliases/, 'm and v the same tensor');
  await assertThrows(() => adamw(gpu, [{ ...ok, ema: gpu.tensor([9]) }], { lr: 1, step: 1 }), /adamw: params\[0\]: ema .*must be f32 with the shape of param/, 'ema shape');
  await assertThrows(() => adamw(gpu, [ok], { lr: 1, step: 1, emaDecay: 1.5 }), /adamw: emaDecay = 1.5; it must be in \[0, 1\]/, 'ema decay');
  await assertThrows(() => clipGradNorm(gpu, [ok.grad], gpu.tensor([16]), {}), /clipGradNorm: state .* must be u32 \[16\]; create it with optimState/, 'bad state');
  await assertThrows(() => clipGradNorm(gpu, [gpu.tensor([3], 'u32')], state), /clipGradNorm: .* dtype u32; expected f32 or f16/, 'u32 grad');
  await assertThrows(() => clipGradNorm(gpu, [ok.grad], state, { maxNorm: 0 }), /maxNorm = 0/, 'maxNorm');
  await assertThrows(() => emaUpdate(gpu, [{ ema: gpu.tensor([9]), param: p }]), /emaUpdate: pairs\[0\]: ema .* must have the shape of param/, 'ema shape');
  await assertThrows(() => optimState(gpu, { growthInterval: 0.5 }), /growthInterval = 0.5/, 'interval');
  await gpu.sync();
});

s.run();
