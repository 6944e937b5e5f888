// IDDPM diffusion: schedule and respacing (f64) against the upstream fixture, the GPU kernels (q_sample,
// loss forward/backward, p_sample, DDIM, DPM-Solver++ 2M, classifier-free guidance) against the fixture
// and f64 CPU references on fresh random inputs, the loss gradient against finite differences, bad inputs.
import { suite, assertClose, assertThrows, type Rng } from './harness.js';
import { readSafetensors } from '../engine/safetensors-file.js';
import { toFloat64 } from '../engine/safetensors.js';
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { randnCpu } from '../engine/ops/random.js';
import { cfgCombine, ddimStep, iddpmLoss, pSampleStep } from '../engine/ops/diffusion.js';
import { createSchedule, spaceTimesteps, type Schedule } from '../models/diffusion/schedule.js';
import { coefRows, lossWeights, predictionGradient, predictionToEps, qSample, trainingLosses, trainingLossesBackward } from '../models/diffusion/iddpm.js';
import { cfgDoubledBatch, classifierFreeGuidance, ddimCoefRow, pSampleCoefRow, sample, type Denoiser } from '../models/diffusion/samplers.js';

const s = suite('diffusion');
const FIX = readSafetensors('tests/fixtures/iddpm.safetensors');
const fx = (k: string): Float64Array => {
  const t = FIX.tensors.get(k);
  if (!t) throw new Error(`fixture key ${k} missing`);
  return toFloat64(t);
};
const fshape = (k: string) => FIX.tensors.get(k)!.shape;
const up = (gpu: Gpu, k: string) => gpu.upload(Float32Array.from(fx(k)), fshape(k), 'f32', k);
const f32 = (a: ArrayLike<number>) => Float64Array.from(Float32Array.from(a));
const RTOL = 1e-5;

// ---- f64 CPU references (upstream formulas) ------------------------------------------------------
const LN2 = Math.log(2);
const cdf = (x: number) => 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/**
 * Per-sample {loss, mse, vb} of upstream training_losses (learned range, eps prediction). VB reads eps from
 * `frozen` (default mo): upstream detaches it there, so finite differences pass the unperturbed output.
 */
function refLoss(sc: Schedule, x0: ArrayLike<number>, xt: ArrayLike<number>, noise: ArrayLike<number>, mo: ArrayLike<number>, t: number[], frozen: ArrayLike<number> = mo) {
  const B = t.length;
  const M = x0.length / B;
  const loss = [], mse = [], vb = [];
  for (let b = 0; b < B; b++) {
    const tb = t[b]!;
    let se = 0, v = 0;
    for (let j = 0; j < M; j++) {
      const i = b * M + j;
      const eps = mo[b * 2 * M + j]!;
      const frac = (mo[b * 2 * M + M + j]! + 1) / 2;
      se += (eps - noise[i]!) ** 2;
      const px = sc.sqrtRecipAlphasCumprod[tb]! * xt[i]! - sc.sqrtRecipm1AlphasCumprod[tb]! * frozen[b * 2 * M + j]!;
      const mean2 = sc.posteriorMeanCoef1[tb]! * px + sc.posteriorMeanCoef2[tb]! * xt[i]!;
      const lv2 = frac * sc.logBetas[tb]! + (1 - frac) * sc.posteriorLogVarianceClipped[tb]!;
      if (tb > 0) {
        const mean1 = sc.posteriorMeanCoef1[tb]! * x0[i]! + sc.posteriorMeanCoef2[tb]! * xt[i]!;
        const lv1 = sc.posteriorLogVarianceClipped[tb]!;
        v += (0.5 * (-1 + lv2 - lv1 + Math.exp(lv1 - lv2) + (mean1 - mean2) ** 2 * Math.exp(-lv2))) / LN2;
      } else {
        const x = x0[i]!;
        const inv = Math.exp(-0.5 * lv2);
        const cp = cdf(inv * (x - mean2 + 1 / 255));
        const cm = cdf(inv * (x - mean2 - 1 / 255));
        const lp = x < -0.999 ? Math.log(Math.max(cp, 1e-12)) : x > 0.999 ? Math.log(Math.max(1 - cm, 1e-12)) : Math.log(Math.max(cp - cm, 1e-12));
        v += -lp / LN2;
      }
    }
    mse.push(se / M);
    vb.push(v / M);
    loss.push(se / M + v / M);
  }
  return { loss, mse, vb };
}
// ------------------------------------------------------------------------------------------------------

s.test('schedule arrays match upstream (1000 steps and respaced "100") in f64', () => {
  const check = (sc: Schedule, prefix: string) => {
    const pairs: [string, Float64Array][] = [
      ['betas', sc.betas], ['alphas_cumprod', sc.alphasCumprod], ['posterior_variance', sc.posteriorVariance],
      ['posterior_log_variance_clipped', sc.posteriorLogVarianceClipped], ['posterior_mean_coef1', sc.posteriorMeanCoef1], ['posterior_mean_coef2', sc.posteriorMeanCoef2],
    ];
    for (const [k, got] of pairs) assertClose(got, fx(`${prefix}.${k}`), { rtol: 1e-12, what: `${prefix}.${k}` });
  };
  check(createSchedule(), 'train');
  const s100 = createSchedule('100');
  check(s100, 'sample100');
  const map = fx('sample100.timestep_map');
  if (s100.timestepMap.join() !== Array.from(map).join()) throw new Error(`timestep_map ${s100.timestepMap.slice(0, 8)}… differs from upstream ${map.slice(0, 8)}…`);
});

s.test('space_timesteps: sections, ddim strides, errors', async () => {
  const eq = (got: number[], want: number[], what: string) => {
    if (got.join() !== want.join()) throw new Error(`${what}: ${got} expected ${want}`);
  };
  eq(spaceTimesteps(100, '10'), [0, 11, 22, 33, 44, 55, 66, 77, 88, 99], '"10" of 100');
  eq(spaceTimesteps(300, '2,3,1'), [0, 99, 100, 150, 199, 200], '"2,3,1" of 300');
  eq(spaceTimesteps(6, '5'), [0, 1, 2, 4, 5], '"5" of 6 (Python rounds 2.5 to 2)');
  eq(spaceTimesteps(1000, 'ddim4'), [0, 250, 500, 750], 'ddim4');
  if (spaceTimesteps(1000, 'ddim50').length !== 50) throw new Error('ddim50 does not give 50 steps');
  eq(Array.from(createSchedule('ddim4').timestepMap), [0, 250, 500, 750], 'ddim4 timestep map');
  await assertThrows(() => spaceTimesteps(1000, 'ddim999'), /exactly 999 steps/, 'ddim999');
  await assertThrows(() => spaceTimesteps(1000, '1001'), /cannot divide a section of 1000 steps into 1001/, 'too many steps');
  await assertThrows(() => spaceTimesteps(1000, 'ten'), /not a step count/, 'garbage');
});

s.test('q_sample and training loss {loss, mse, vb} match the upstream fixture', async ({ gpu }) => {
  const sc = createSchedule();
  const t = Array.from(fx('train.t'));
  const [x0, noise, mo] = [up(gpu, 'train.x_start'), up(gpu, 'train.noise'), up(gpu, 'train.model_output')];
  const xt = qSample(gpu, sc, x0, t, noise);
  assertClose(await xt.read(), fx('train.x_t'), { rtol: RTOL, what: 'x_t' });
  const r = trainingLosses(gpu, sc, { xStart: x0, xT: xt, noise, t, modelOutput: mo });
  for (const k of ['loss', 'mse', 'vb'] as const) assertClose(await r[k].read(), fx(`train.${k}`), { rtol: RTOL, what: k });
  for (const x of [x0, noise, mo, xt, r.loss, r.mse, r.vb]) x.release();
});

/** Random training inputs: B samples [C, H, W], the given timesteps, eps near noise and v in (−1.2, 1.2). */
function lossInputs(gpu: Gpu, rng: Rng, shape: number[], t: number[]) {
  const sc = createSchedule();
  const [B, C, ...rest] = shape as [number, number, ...number[]];
  const M = shape.reduce((a, b) => a * b, 1) / B;
  const x0 = f32(rng.normal(B * M));
  const noise = f32(rng.normal(B * M));
  const xt = f32(Array.from(x0, (_, i) => sc.sqrtAlphasCumprod[t[Math.floor(i / M)]!]! * x0[i]! + sc.sqrtOneMinusAlphasCumprod[t[Math.floor(i / M)]!]! * noise[i]!));
  const mo = new Float64Array(2 * B * M);
  const pert = rng.normal(B * M, 0.5);
  const v = rng.uniform(B * M, -1.2, 1.2);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < M; j++) {
      mo[b * 2 * M + j] = noise[b * M + j]! + pert[b * M + j]!;
      mo[b * 2 * M + M + j] = v[b * M + j]!;
    }
  }
  const mo32 = f32(mo);
  const g = (a: Float64Array, sh: number[], n: string) => gpu.upload(a, sh, 'f32', n);
  return {
    sc, B, M, x0, noise, xt, mo: mo32,
    gx0: g(x0, shape, 'x0'), gnoise: g(noise, shape, 'noise'), gxt: g(xt, shape, 'xt'), gmo: g(mo32, [B, 2 * C, ...rest], 'mo'),
  };
}

s.test('training loss on fresh inputs (t = 0 decoder NLL, small and large t) matches the f64 reference', async ({ gpu, rng }) => {
  const t = [0, 0, 1, rng.int(2, 998), 999, rng.int(2, 998)];
  const d = lossInputs(gpu, rng, [6, 4, 5, 7], t);
  const r = trainingLosses(gpu, d.sc, { xStart: d.gx0, xT: d.gxt, noise: d.gnoise, t, modelOutput: d.gmo });
  const want = refLoss(d.sc, d.x0, d.xt, d.noise, d.mo, t);
  for (const k of ['loss', 'mse', 'vb'] as const) assertClose(await r[k].read(), want[k], { rtol: RTOL, what: `${k} at t ${t}` });
  // the same through the op with a [B, C] (fixed-variance) output: vb is 0 and loss = mse
  const eps = gpu.tensor([6, 4, 5, 7], 'f32', 'eps');
  for (let b = 0; b < 6; b++) gpu.copyRange(d.gmo, b * 2 * d.M, eps, b * d.M, d.M);
  const r2 = trainingLosses(gpu, d.sc, { xStart: d.gx0, xT: d.gxt, noise: d.gnoise, t, modelOutput: eps });
  assertClose(await r2.loss.read(), want.mse, { rtol: RTOL, what: 'fixed-variance loss = mse' });
  const vb2 = await r2.vb.read();
  if (vb2.some((v) => v !== 0)) throw new Error(`fixed-variance vb ${vb2} should be 0`);
});

s.test('loss backward equals finite differences of the f64 loss (eps and variance channels, t = 0 included)', async ({ gpu, rng }) => {
  const t = [0, rng.int(1, 50), rng.int(51, 999)];
  const shape = [3, 2, 2, 3];
  const d = lossInputs(gpu, rng, shape, t);
  const w = f32(rng.uniform(3, 0.5, 1.5));
  const dloss = gpu.upload(w, [3], 'f32', 'dloss');
  const grad = await trainingLossesBackward(gpu, d.sc, { xStart: d.gx0, xT: d.gxt, noise: d.gnoise, t, modelOutput: d.gmo }, dloss).read();
  const total = (mo: Float64Array) => refLoss(d.sc, d.x0, d.xt, d.noise, mo, t, d.mo).loss.reduce((a, l, b) => a + w[b]! * l, 0);
  const fd = new Float64Array(d.mo.length);
  const h = 1e-6;
  for (let i = 0; i < d.mo.length; i++) {
    const p = Float64Array.from(d.mo);
    p[i] = d.mo[i]! + h;
    const lp = total(p);
    p[i] = d.mo[i]! - h;
    fd[i] = (lp - total(p)) / (2 * h);
  }
  assertClose(grad, fd, { rtol: 1e-4, what: 'd loss / d model_output vs finite differences' });
});

// v prediction: the model's eps channels hold v̂; predictionToEps makes them eps = sqrt(ᾱ)·v̂ + sqrt(1 − ᾱ)·x_t,
// the loss's MSE term is then the v-MSE and its gradient by v̂ is 2(v̂ − v)/M per sample (f32 cancellation in
// eps − noise at t = 999, where sqrt(ᾱ) ≈ 0.0065, costs a few 1e-5: rtol 1e-4 there).
s.test('v prediction: conversion to eps, v-MSE loss and its gradient by v̂ match the f64 reference', async ({ gpu, rng }) => {
  const t = [0, rng.int(1, 300), rng.int(301, 700), rng.int(701, 998), 999];
  const shape = [5, 2, 3, 4];
  const d = lossInputs(gpu, rng, shape, t);
  const { sc, B, M } = d;
  const a = (b: number) => sc.sqrtAlphasCumprod[t[b]!]!;
  const r1 = (b: number) => sc.sqrtOneMinusAlphasCumprod[t[b]!]!;
  const epsOut = predictionToEps(gpu, sc, 'v', d.gxt, t, d.gmo);
  const want = Float64Array.from(d.mo);
  for (let b = 0; b < B; b++) for (let j = 0; j < M; j++) want[b * 2 * M + j] = a(b) * d.mo[b * 2 * M + j]! + r1(b) * d.xt[b * M + j]!;
  const got = await epsOut.read();
  assertClose(got, want, { rtol: 1e-5, what: 'v → eps (variance channels copied)' });
  const inputs = { xStart: d.gx0, xT: d.gxt, noise: d.gnoise, t, modelOutput: epsOut };
  const r = trainingLosses(gpu, sc, { ...inputs, prediction: 'v' });
  const vMse = Array.from({ length: B }, (_, b) => {
    let e = 0;
    for (let j = 0; j < M; j++) e += (d.mo[b * 2 * M + j]! - (a(b) * d.noise[b * M + j]! - r1(b) * d.x0[b * M + j]!)) ** 2;
    return e / M;
  });
  assertClose(await r.mse.read(), vMse, { rtol: 1e-4, what: 'mse = v-MSE' });
  assertClose(await r.vb.read(), refLoss(sc, d.x0, d.xt, d.noise, f32(got), t).vb, { rtol: 1e-4, what: 'vb of the converted output' });
  const w = f32(rng.uniform(B, 0.5, 1.5));
  const dloss = gpu.upload(w, [B], 'f32', 'dloss');
  const dEps = trainingLossesBackward(gpu, sc, { ...inputs, prediction: 'v' }, dloss);
  const dv = await predictionGradient(gpu, sc, 'v', d.gxt, t, dEps).read();
  const dVar = await trainingLossesBackward(gpu, sc, inputs, dloss).read(); // its variance channels: VB only
  const wantG = new Float64Array(2 * B * M);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < M; j++) {
      const v = a(b) * d.noise[b * M + j]! - r1(b) * d.x0[b * M + j]!;
      wantG[b * 2 * M + j] = (2 * (d.mo[b * 2 * M + j]! - v) / M) * w[b]!;
      wantG[b * 2 * M + M + j] = dVar[b * 2 * M + M + j]!;
    }
  }
  assertClose(dv, wantG, { rtol: 1e-4, what: 'd loss / d model output (v̂ channels: 2(v̂ − v)/M)' });
  assertClose(await predictionToEps(gpu, sc, 'eps', d.gxt, t, d.gmo).read(), d.mo, { rtol: 0, what: "'eps' passes the output through" });
});

s.test('loss weights: uniform is 1, p2 is 1 / (1 + SNR(t)), v is min(1/ᾱ, 100) from the f64 betas, bad timesteps are errors', async ({ rng }) => {
  const sc = createSchedule();
  const t = Array.from({ length: 12 }, () => Math.floor(rng.next() * 1000)).concat([0, 999]);
  const u = lossWeights(sc, t, 'uniform');
  if (u.some((v) => v !== 1)) throw new Error(`uniform weights ${u}`);
  // ᾱ_t from the linear betas directly (upstream: np.linspace(1e-4, 0.02, 1000), cumprod of 1 − β)
  let ac = 1;
  const acs: number[] = [];
  for (let i = 0; i < 1000; i++) acs.push((ac *= 1 - (1e-4 + ((0.02 - 1e-4) * i) / 999)));
  assertClose(lossWeights(sc, t, 'p2'), t.map((ti) => 1 - acs[ti]!), { rtol: 1e-6, what: 'p2 weights (1/(1+SNR) = 1 − ᾱ)' });
  assertClose(lossWeights(sc, t, 'v'), t.map((ti) => Math.min(1 / acs[ti]!, 100)), { rtol: 1e-6, what: "'v' weights (min(1/ᾱ, 100))" });
  const v = lossWeights(sc, [0, 300, 600, 999], 'v');
  if (!(v[0]! >= 1 && v[0]! < v[1]! && v[1]! < v[2]! && v[2]! < 100 && v[3] === 100)) throw new Error(`'v' weights must grow from 1 with t up to the cap 100: ${v}`);
  const w = lossWeights(sc, [0, 100, 500, 999], 'p2');
  if (!(w[0]! < w[1]! && w[1]! < w[2]! && w[2]! < w[3]!)) throw new Error(`p2 weights must grow with t: ${w}`);
  await assertThrows(() => lossWeights(sc, [1000], 'p2'), /lossWeights: timestep 1000 \(sample 0\) must be an integer in 0..999/, 'timestep out of range');
});

s.test('p_sample step (learned range) and DDIM eta 0 match the upstream fixture at respaced t', async ({ gpu }) => {
  const sc = createSchedule('100');
  const t = Array.from(fx('sample100.t'));
  const [x, mo, noise] = [up(gpu, 'sample100.x_t'), up(gpu, 'sample100.model_output'), up(gpu, 'sample100.noise')];
  const coefs = gpu.upload(coefRows(t, (v) => pSampleCoefRow(sc, v)), [t.length, 8], 'f32', 'coefs');
  const r = pSampleStep(gpu, { x, modelOutput: mo, coefs, noise, extras: true });
  assertClose(await r.mean!.read(), fx('sample100.mean'), { rtol: RTOL, what: 'mean' });
  assertClose(await r.logVariance!.read(), fx('sample100.log_variance'), { rtol: RTOL, what: 'log_variance' });
  assertClose(await r.predXstart!.read(), fx('sample100.pred_xstart'), { rtol: RTOL, what: 'pred_xstart' });
  assertClose(await r.xPrev.read(), fx('sample100.x_prev'), { rtol: RTOL, what: 'x_prev' });
  const dc = gpu.upload(coefRows(t, (v) => ddimCoefRow(sc, v, 0)), [t.length, 5], 'f32', 'ddim.coefs');
  assertClose(await ddimStep(gpu, { x, modelOutput: mo, coefs: dc }).read(), fx('sample100.ddim_x_prev_eta0'), { rtol: RTOL, what: 'ddim x_prev' });
});

s.test('clip_denoised: p_sample and DDIM clamp pred_xstart to [-1, 1] (DDIM re-derives eps from it)', async ({ gpu }) => {
  const sc = createSchedule('100');
  const t = Array.from(fx('sample100.t'));
  const [x, mo, noise] = [up(gpu, 'sample100.x_t'), up(gpu, 'sample100.model_output'), up(gpu, 'sample100.noise')];
  const xv = f32(fx('sample100.x_t'));
  const nv = f32(fx('sample100.noise'));
  const lv = fx('sample100.log_variance');
  const pc = fx('sample100.pred_xstart').map((v) => Math.min(1, Math.max(-1, v)));
  const M = xv.length / 2;
  const mean = pc.map((v, i) => sc.posteriorMeanCoef1[t[Math.floor(i / M)]!]! * v + sc.posteriorMeanCoef2[t[Math.floor(i / M)]!]! * xv[i]!);
  const coefs = gpu.upload(coefRows(t, (v) => pSampleCoefRow(sc, v)), [2, 8], 'f32', 'coefs');
  const r = pSampleStep(gpu, { x, modelOutput: mo, coefs, noise, clip: true, extras: true });
  assertClose(await r.predXstart!.read(), pc, { rtol: RTOL, what: 'clipped pred_xstart' });
  assertClose(await r.xPrev.read(), mean.map((m, i) => m + Math.exp(0.5 * lv[i]!) * nv[i]!), { rtol: RTOL, what: 'clipped x_prev' });
  const dc = gpu.upload(coefRows(t, (v) => ddimCoefRow(sc, v, 0)), [2, 5], 'f32', 'ddim.coefs');
  const want = pc.map((p, i) => {
    const tb = t[Math.floor(i / M)]!;
    const eps = (sc.sqrtRecipAlphasCumprod[tb]! * xv[i]! - p) / sc.sqrtRecipm1AlphasCumprod[tb]!;
    return p * Math.sqrt(sc.alphasCumprodPrev[tb]!) + Math.sqrt(1 - sc.alphasCumprodPrev[tb]!) * eps;
  });
  assertClose(await ddimStep(gpu, { x, modelOutput: mo, coefs: dc, clip: true }).read(), want, { rtol: RTOL, what: 'clipped ddim x_prev' });
});

// ---- sampler loops against f64 CPU loops ------------------------------------------------------------
/** A test model (on the CPU, f32 output): eps = 0.6·x + 0.2·sin(i + t/100), v = tanh(0.3·x + cos i). */
function modelRef(x: ArrayLike<number>, t: number, B: number, learned: boolean): Float64Array {
  const M = x.length / B;
  const K = learned ? 2 : 1;
  const out = new Float64Array(K * x.length);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < M; j++) {
      const xv = x[b * M + j]!;
      out[b * K * M + j] = 0.6 * xv + 0.2 * Math.sin(j + t / 100);
      if (learned) out[b * K * M + M + j] = Math.tanh(0.3 * xv + Math.cos(j));
    }
  }
  return out;
}

function gpuModel(gpu: Gpu, learned: boolean, seen: number[]): Denoiser {
  return async (x: Tensor, t: Tensor) => {
    const tv = (await t.read())[0]!;
    seen.push(tv);
    const out = modelRef(await x.read(), tv, x.shape[0]!, learned);
    return gpu.upload(out, [x.shape[0]!, (learned ? 2 : 1) * x.shape[1]!, ...x.shape.slice(2)], 'f32', 'model.out');
  };
}

function refSampler(kind: 'iddpm' | 'ddim' | 'dpm-solver', steps: number, x0: Float64Array, B: number, seed: number, learned: boolean, eta = 0): Float64Array {
  let x = Float64Array.from(x0);
  const n = x.length;
  const M = n / B;
  const K = learned ? 2 : 1;
  if (kind === 'dpm-solver') {
    const sc = createSchedule();
    const times = Array.from({ length: steps + 1 }, (_, i) => Math.round((999 * (steps - i)) / steps));
    const al = (t: number) => Math.sqrt(sc.alphasCumprod[t]!);
    const sg = (t: number) => Math.sqrt(1 - sc.alphasCumprod[t]!);
    const lam = (t: number) => Math.log(al(t) / sg(t));
    let prev: Float64Array | null = null;
    for (let i = 0; i < steps; i++) {
      const [ts, tt] = [times[i]!, times[i + 1]!];
      const out = modelRef(x, ts, B, learned);
      const d = x.map((xv, e) => (xv - sg(ts) * out[Math.floor(e / M) * K * M + (e % M)]!) / al(ts));
      const h = lam(tt) - lam(ts);
      let D = d;
      if (prev && !(steps < 10 && i === steps - 1)) {
        const r = (lam(ts) - lam(times[i - 1]!)) / h;
        D = d.map((v, e) => v + (0.5 / r) * (v - prev![e]!));
      }
      x = x.map((xv, e) => (sg(tt) / sg(ts)) * xv - al(tt) * (Math.exp(-h) - 1) * D[e]!);
      prev = d;
    }
    return x;
  }
  const sc = createSchedule(String(steps));
  for (let k = 0; k < steps; k++) {
    const t = steps - 1 - k;
    const out = modelRef(x, sc.timestepMap[t]!, B, learned);
    const z = randnCpu(n, { seed, offset: (k + 1) * n });
    x = x.map((xv, e) => {
      const b = Math.floor(e / M);
      const eps = out[b * K * M + (e % M)]!;
      const px = sc.sqrtRecipAlphasCumprod[t]! * xv - sc.sqrtRecipm1AlphasCumprod[t]! * eps;
      if (kind === 'ddim') {
        const ab = sc.alphasCumprod[t]!, abp = sc.alphasCumprodPrev[t]!;
        const sigma = eta * Math.sqrt((1 - abp) / (1 - ab)) * Math.sqrt(1 - ab / abp);
        return px * Math.sqrt(abp) + Math.sqrt(1 - abp - sigma ** 2) * eps + (t > 0 ? sigma * z[e]! : 0);
      }
      const mean = sc.posteriorMeanCoef1[t]! * px + sc.posteriorMeanCoef2[t]! * xv;
      let lv: number;
      if (learned) {
        const frac = (out[b * K * M + M + (e % M)]! + 1) / 2;
        lv = frac * Math.log(sc.betas[t]!) + (1 - frac) * sc.posteriorLogVarianceClipped[t]!;
      } else lv = Math.log(t === 0 ? sc.posteriorVariance[1]! : sc.betas[t]!);
      return mean + (t > 0 ? Math.exp(0.5 * lv) * z[e]! : 0);
    });
  }
  return x;
}

const CASES = [
  { kind: 'iddpm', steps: 10, learned: true, eta: 0 },
  { kind: 'iddpm', steps: 7, learned: false, eta: 0 },
  { kind: 'ddim', steps: 10, learned: true, eta: 0 },
  { kind: 'ddim', steps: 6, learned: false, eta: 0.5 },
  { kind: 'dpm-solver', steps: 12, learned: true, eta: 0 },
  { kind: 'dpm-solver', steps: 5, learned: false, eta: 0 },
] as const;

for (const c of CASES) {
  s.test(`sampler ${c.kind}, ${c.steps} steps${c.learned ? ', learned sigma' : ''}${c.eta ? `, eta ${c.eta}` : ''}: GPU loop = f64 CPU loop, original timesteps to the model`, async ({ gpu, rng }) => {
    const seed = rng.int(0, 2 ** 30);
    const shape = [2, 3, 4, 5];
    const n = 120;
    const x0 = randnCpu(n, { seed });
    const seen: number[] = [];
    const progress: number[] = [];
    const out = await sample(gpu, gpuModel(gpu, c.learned, seen), { sampler: c.kind, steps: c.steps, seed, shape, eta: c.eta, progress: (i, total) => progress.push(i / total) });
    const want = refSampler(c.kind, c.steps, x0, 2, seed, c.learned, c.eta);
    assertClose(await out.read(), want, { rtol: 1e-4, what: `${c.kind} sample` });
    const times = c.kind === 'dpm-solver' ? Array.from({ length: c.steps }, (_, i) => Math.round((999 * (c.steps - i)) / c.steps)) : Array.from(createSchedule(String(c.steps)).timestepMap).reverse();
    if (seen.join() !== times.join()) throw new Error(`model saw timesteps ${seen}, expected ${times}`);
    if (progress.length !== c.steps || progress.at(-1) !== 1) throw new Error(`progress calls ${progress}`);
  });
}

s.test('sampler with given noise keeps it and is reproducible from the seed', async ({ gpu, rng }) => {
  const noise = gpu.upload(rng.normal(60), [1, 3, 4, 5], 'f32', 'x_T');
  const model = gpuModel(gpu, true, []);
  const a = await (await sample(gpu, model, { noise, steps: 4, seed: 3 })).read();
  const b = await (await sample(gpu, model, { noise, steps: 4, seed: 3 })).read();
  const c = await (await sample(gpu, model, { noise, steps: 4, seed: 4 })).read();
  if (a.some((v, i) => v !== b[i])) throw new Error('the same seed gave different samples');
  if (!a.some((v, i) => v !== c[i])) throw new Error('another seed gave the same sample');
  if (noise.released) throw new Error("the caller's noise was released");
});

// An oracle that knows x0 and answers in v (prediction 'v'): DDIM (eta 0) and IDDPM end at x0 (DPM-Solver stops at t > 0). (Its
// answers read as eps also drift back to x0 at the last, nearly clean steps, where v ≈ eps: no check of that.)
s.test("samplers with prediction 'v' convert the model's v to eps (oracle model ends at x0)", async ({ gpu, rng }) => {
  const base = createSchedule();
  const shape = [2, 3, 2, 5];
  const x0 = f32(rng.uniform(60, -1, 1));
  const oracle: Denoiser = async (x, t) => {
    const [xv, tv] = [await x.read(), await t.read()];
    const v = new Float32Array(xv.length);
    for (let i = 0; i < xv.length; i++) {
      const ti = tv[Math.floor(i / 30)]!;
      const [a, r] = [base.sqrtAlphasCumprod[ti]!, base.sqrtOneMinusAlphasCumprod[ti]!];
      const eps = (xv[i]! - a * x0[i]!) / r;
      v[i] = a * eps - r * x0[i]!;
    }
    return gpu.upload(v, shape, 'f32', 'v');
  };
  for (const sampler of ['ddim', 'iddpm'] as const) {
    const out = await (await sample(gpu, oracle, { sampler, steps: 10, seed: 1, shape, prediction: 'v' })).read();
    assertClose(out, x0, { rtol: 1e-3, what: `${sampler} with a v oracle` });
  }
});

// ---- classifier-free guidance ---------------------------------------------------------------------
s.test('cfg combine: all channels, upstream first 3, eps half; doubled-batch wrapper', async ({ gpu, rng }) => {
  const shape = [2, 8, 3, 5];
  const n = 240;
  const cv = f32(rng.normal(n));
  const uv = f32(rng.normal(n));
  const scale = 1 + 8 * rng.next();
  const cond = gpu.upload(cv, shape, 'f32', 'cond');
  const uncond = gpu.upload(uv, shape, 'f32', 'uncond');
  const ref = (g: number) => cv.map((c, i) => (Math.floor(i / 15) % 8 < g ? uv[i]! + scale * (c - uv[i]!) : c));
  for (const g of [8, 3, 4, 0]) assertClose(await cfgCombine(gpu, cond, uncond, scale, g).read(), ref(g), { rtol: RTOL, what: `cfg guided ${g}` });
  const x = gpu.upload(rng.normal(120), [2, 4, 3, 5], 'f32', 'x');
  const t = gpu.upload([500, 500], [2], 'f32', 't');
  const fixed = (v: Float64Array): Denoiser => () => gpu.upload(v, shape, 'f32', 'out');
  for (const [guided, g] of [[undefined, 8], ['upstream', 3], ['eps', 4]] as const) {
    const y = await classifierFreeGuidance(gpu, fixed(cv), fixed(uv), { scale, guided })(x, t);
    assertClose(await y.read(), ref(g), { rtol: RTOL, what: `classifierFreeGuidance ${guided}` });
  }
  // doubled batch: the model gets [x; x] and answers cond for the first half, uncond for the second
  const model2: Denoiser = async (x2, t2) => {
    const xs = await x2.read();
    const ts = await t2.read();
    if (x2.shape[0] !== 4 || xs.slice(0, 120).some((v, i) => v !== xs[120 + i]) || ts.join() !== '500,500,500,500') throw new Error(`doubled batch input is wrong: ${x2}, t ${ts}`);
    const both = new Float64Array(2 * n);
    both.set(cv);
    both.set(uv, n);
    return gpu.upload(both, [4, 8, 3, 5], 'f32', 'out2');
  };
  const y2 = await cfgDoubledBatch(gpu, model2, { scale, guided: 'upstream' })(x, t);
  assertClose(await y2.read(), ref(3), { rtol: RTOL, what: 'cfgDoubledBatch upstream' });
  const y7 = await cfgDoubledBatch(gpu, model2)(x, t);
  assertClose(await y7.read(), cv.map((c, i) => uv[i]! + 7 * (c - uv[i]!)), { rtol: RTOL, what: 'cfgDoubledBatch default scale 7, all channels' });
});

s.test('bad inputs give clear errors', async ({ gpu }) => {
  const sc = createSchedule();
  const x = gpu.upload(new Float32Array(24).fill(0.5), [2, 3, 4], 'f32', 'x');
  const bad = gpu.upload(new Float32Array(40).fill(0.5), [2, 5, 4], 'f32', 'bad');
  const model = gpuModel(gpu, true, []);
  await assertThrows(() => sample(gpu, model, { noise: x, sampler: 'euler' as 'ddim' }), /unknown sampler "euler"; use one of iddpm, ddim, dpm-solver/, 'sampler name');
  await assertThrows(() => sample(gpu, model, { noise: x, steps: 1001 }), /steps 1001 must be an integer in 1..1000/, 'steps > 1000');
  await assertThrows(() => sample(gpu, model, { noise: x, sampler: 'dpm-solver', steps: 1000 }), /1..999 for sampler 'dpm-solver'/, 'dpm steps');
  await assertThrows(() => sample(gpu, model, {}), /give the initial noise/, 'no noise');
  await assertThrows(() => qSample(gpu, sc, x, [0, 1000], x), /timestep 1000 \(sample 1\) must be an integer in 0..999/, 't out of range');
  await assertThrows(() => qSample(gpu, sc, x, [0], x), /1 timesteps for a batch of 2/, 't count');
  await assertThrows(() => trainingLosses(gpu, sc, { xStart: x, xT: x, noise: x, t: [1, 2], modelOutput: bad }), /model output .*\[2, 5, 4\].*must be \[2, 6, 4\].*or \[2, 3, 4\]/, 'model output channels');
  await assertThrows(() => trainingLosses(gpu, sc, { xStart: bad, xT: x, noise: x, t: [1, 2], modelOutput: x }), /xStart .* must have the shape of x/, 'xStart shape');
  await assertThrows(() => pSampleStep(gpu, { x, modelOutput: x, coefs: gpu.upload([1, 2], [2, 1], 'f32', 'c') }), /coefs .* must be \[2, 8\]/, 'coef shape');
  await assertThrows(() => cfgCombine(gpu, x, x, 2, 4), /guided channels 4 must be an integer in 0..3/, 'cfg guided');
  await assertThrows(() => iddpmLoss(gpu, { modelOutput: x, xStart: x, xT: x, noise: x, coefs: gpu.upload(new Float32Array(16), [2, 8], 'f32', 'c'), vbScale: NaN }), /vbScale NaN/, 'vbScale');
});

s.run();
