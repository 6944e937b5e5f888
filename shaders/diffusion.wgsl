// IDDPM diffusion kernels (Gaussian diffusion with epsilon prediction, learned-range or fixed variance).
// Tensors x, x0, noise, ... are [B, M] (M = C·rest elements per sample); the model output is [B, 2M] when
// sigma is learned (eps = first M, variance values v = last M of each sample) and [B, M] otherwise. Per-sample
// scalars come in coef [B, K] (f32, computed in f64 on the CPU from each sample's t; column order is given
// per entry below and in engine/ops/diffusion.ts). One thread per element of x; no reductions here (loss
// sums run through the deterministic `sum` op, then loss_finish).
//   AXPBY:    y = coef[b,0]·x + coef[b,1]·z                                   (q_sample)
//   LOSS:     terms [B, 2, M]: (eps − noise)², and the VB term in bits: KL(q ‖ p) / ln 2, or at t = 0 the
//             discretized Gaussian decoder NLL / ln 2.  coef: sra, srm1, coef1, coef2, min_log, max_log, is_t0
//   FINISH:   sums [B, 2] → mse = s0/M, vb = s1/M·vb_scale, loss = mse + vb (one thread per sample)
//   BACKWARD: d model_output: eps part 2(eps − noise)/M·dloss[b]; variance part d vb/d v·dloss[b] (the VB
//             term sees eps detached, as upstream's frozen_out).  coef: as LOSS
//   PSAMPLE:  p_sample: pred_x0 = sra·x − srm1·eps (clipped to [−1, 1] with CLIP), mean = coef1·pred_x0 +
//             coef2·x, log_var = learned range or fixed, x_prev = mean + nonzero·exp(½ log_var)·noise.
//             coef: sra, srm1, coef1, coef2, min_log, max_log, nonzero, fixed_log_var
//   DDIM:     pred_x0 as above; eps' = eps (or re-derived from the clipped pred_x0); x_prev = sqrt(ᾱ_prev)·pred_x0
//             + dir·eps' + sigma·noise.  coef: sra, srm1, sqrt_abar_prev, dir, sigma (0 at t = 0)
//   DPM:      DPM-Solver++ (data prediction): d = sra·x − srm1·eps; x_next = a·x + b·(c0·d + c1·d_prev).
//             coef: sra, srm1, a, b, c0, c1; writes d for the next step
//   CFG:      out = uncond + scale·(cond − uncond) on the first `guided` channels of each sample, cond elsewhere.
//   VTOEPS:   a v-prediction output as an eps one: eps = sqrt(ᾱ)·v + sqrt(1 − ᾱ)·x_t on the first M values of
//             each sample, the learned variance values (LEARNED) copied. With coef (sqrt(ᾱ), 0) and the eps
//             gradient as `mo` it is the backward (d v = sqrt(ᾱ)·d eps).  coef: sqrtAlphasCumprod, sqrtOneMinus
//   LOSS and BACKWARD weigh the MSE term by coef column 7 (1 for eps prediction, 1/ᾱ for v prediction: the
//             v-MSE, since eps − epŝ = sqrt(ᾱ)·(v − v̂)).
struct Params {
  n: u32,        // threads: elements of x (B·M); FINISH: samples
  m: u32,        // elements per sample of x (CFG: elements per channel)
  k: u32,        // coefficients per sample (CFG: channels per sample)
  groups_x: u32, // workgroups along x of the folded 2-D grid
  guided: u32,   // CFG: guided channels
  s0: f32,       // CFG: scale; FINISH: vb_scale
}

#if ${AXPBY}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> coef: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#elif ${FINISH}
@group(0) @binding(0) var<storage, read> sums: array<f32>;
@group(0) @binding(1) var<storage, read_write> loss: array<f32>;
@group(0) @binding(2) var<storage, read_write> mse: array<f32>;
@group(0) @binding(3) var<storage, read_write> vb: array<f32>;
#elif ${CFG}
@group(0) @binding(0) var<storage, read> cond: array<f32>;
@group(0) @binding(1) var<storage, read> uncond: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#elif ${VTOEPS}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> mo: array<f32>;
@group(0) @binding(2) var<storage, read> coef: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#else
@group(0) @binding(0) var<storage, read> x: array<f32>;  // LOSS/BACKWARD: x_t
@group(0) @binding(1) var<storage, read> mo: array<f32>; // model output
@group(0) @binding(2) var<storage, read> coef: array<f32>;
#if ${LOSS}
@group(0) @binding(3) var<storage, read> x0: array<f32>;
@group(0) @binding(4) var<storage, read> noise: array<f32>;
@group(0) @binding(5) var<storage, read_write> terms: array<f32>;
#elif ${BACKWARD}
@group(0) @binding(3) var<storage, read> x0: array<f32>;
@group(0) @binding(4) var<storage, read> noise: array<f32>;
@group(0) @binding(5) var<storage, read> dloss: array<f32>;
@group(0) @binding(6) var<storage, read_write> dmo: array<f32>;
#elif ${PSAMPLE}
@group(0) @binding(3) var<storage, read> noise: array<f32>;
@group(0) @binding(4) var<storage, read_write> x_prev: array<f32>;
#if ${EXTRAS}
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> logvar_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> x0_out: array<f32>;
#endif
#elif ${DDIM}
@group(0) @binding(3) var<storage, read> noise: array<f32>;
@group(0) @binding(4) var<storage, read_write> x_prev: array<f32>;
#elif ${DPM}
#if ${HAS_PREV}
@group(0) @binding(3) var<storage, read> d_prev: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> x_next: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_out: array<f32>;
#endif
#endif
@group(0) @binding(8) var<uniform> p: Params;

const LN2 = 0.6931471805599453;
const LOG_MIN = -27.631021115928547; // log(1e-12): upstream clamps probabilities at 1e-12
const GELU_K = 0.7978845608028654;   // sqrt(2/π), the tanh approximation of the normal CDF
const GELU_A = 0.044715;

fn softplus(v: f32) -> f32 {
  return max(v, 0.0) + log(1.0 + exp(-abs(v)));
}

fn logcosh(u: f32) -> f32 {
  return abs(u) + log(1.0 + exp(-2.0 * abs(u))) - LN2;
}

fn sigmoid(v: f32) -> f32 {
  return 1.0 / (1.0 + exp(-v));
}

#if ${LOSS_OR_BACKWARD}
// The VB term of one element in nats and its derivative by the variance value v: (term, d term / d v).
// x0, x_t, eps (detached) and v; coefficients of the sample b.
fn vb_elem(b: u32, x0v: f32, xt: f32, eps: f32, v: f32) -> vec2f {
  let c = b * p.k;
  let min_log = coef[c + 4u];
  let max_log = coef[c + 5u];
  let frac = 0.5 * (v + 1.0);
  let lv2 = frac * max_log + (1.0 - frac) * min_log; // model log variance
  let dlv = 0.5 * (max_log - min_log);                // d lv2 / d v
  let pred_x0 = coef[c] * xt - coef[c + 1u] * eps;
  if (coef[c + 6u] == 0.0) {
    // KL(N(m1, e^lv1) ‖ N(m2, e^lv2)) with lv1 = min_log (the true posterior's clipped log variance)
    // and m1 − m2 = coef1·(x0 − pred_x0) (the coef2·x_t parts cancel).
    let dm = coef[c + 2u] * (x0v - pred_x0);
    let r = exp(frac * (min_log - max_log)); // exp(lv1 − lv2)
    let q = dm * dm * exp(-lv2);
    let kl = 0.5 * (-1.0 - frac * (min_log - max_log) + r + q);
    return vec2f(kl, 0.5 * (1.0 - r - q) * dlv);
  }
  // −log of the probability of x0's 1/127.5-wide bin under N(mean, e^lv2), with the tanh CDF
  // cdf(z) = σ(2u), u = k(z + a z³), computed in log space (stable where upstream's f64 saturates).
  let mean = coef[c + 2u] * pred_x0 + coef[c + 3u] * xt;
  let inv = exp(-0.5 * lv2);
  let zp = inv * (x0v - mean + 1.0 / 255.0);
  let zm = inv * (x0v - mean - 1.0 / 255.0);
  let up = GELU_K * (zp + GELU_A * zp * zp * zp);
  let um = GELU_K * (zm + GELU_A * zm * zm * zm);
  var lp: f32;     // log probability
  var dup = 0.0;   // d lp / d up
  var dum = 0.0;   // d lp / d um
  if (x0v < -0.999) {
    lp = -softplus(-2.0 * up);
    dup = 2.0 * sigmoid(-2.0 * up);
  } else if (x0v > 0.999) {
    lp = -softplus(2.0 * um);
    dum = -2.0 * sigmoid(2.0 * um);
  } else {
    // σ(2up) − σ(2um) = ½ sinh(up − um) / (cosh up · cosh um); up − um from the difference of the cubics
    let dz = zp - zm;
    let d = GELU_K * dz * (1.0 + GELU_A * (zp * zp + zp * zm + zm * zm));
    var logsinh: f32;
    if (d < 1e-3) {
      logsinh = log(d) + d * d / 6.0;
    } else {
      logsinh = d + log(1.0 - exp(-2.0 * d)) - LN2;
    }
    lp = logsinh - LN2 - logcosh(up) - logcosh(um);
    // d/du log(σ(2u) − ...) = ½ sech²(u) / Δ
    dup = exp(-LN2 - 2.0 * logcosh(up) - lp);
    dum = -exp(-LN2 - 2.0 * logcosh(um) - lp);
  }
  if (lp < LOG_MIN) {
    return vec2f(-LOG_MIN, 0.0); // clamped: constant, no gradient
  }
  // d z / d log_scale = −z, log_scale = ½ lv2
  let dls = -(dup * GELU_K * (1.0 + 3.0 * GELU_A * zp * zp) * zp + dum * GELU_K * (1.0 + 3.0 * GELU_A * zm * zm) * zm);
  return vec2f(-lp, -dls * 0.5 * dlv);
}
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (i >= p.n) {
    return;
  }
#if ${AXPBY}
  let b = i / p.m;
  y[i] = coef[b * p.k] * x[i] + coef[b * p.k + 1u] * z[i];
#elif ${FINISH}
  let ms = sums[2u * i] / f32(p.m);
  let vs = sums[2u * i + 1u] / f32(p.m) * p.s0;
  mse[i] = ms;
  vb[i] = vs;
  loss[i] = ms + vs;
#elif ${VTOEPS}
  let b = i / p.m;
  let j = i % p.m;
#if ${LEARNED}
  let o = 2u * b * p.m + j;
  y[o + p.m] = mo[o + p.m];
#else
  let o = i;
#endif
  y[o] = coef[b * p.k] * mo[o] + coef[b * p.k + 1u] * x[i];
#elif ${CFG}
  let ch = (i / p.m) % p.k;
  let c = cond[i];
  if (ch < p.guided) {
    let u = uncond[i];
    y[i] = u + p.s0 * (c - u);
  } else {
    y[i] = c;
  }
#else
  let b = i / p.m;
  let j = i % p.m;
  let c = b * p.k;
  let xv = x[i];
#if ${LEARNED}
  let eps = mo[2u * b * p.m + j];
  let v = mo[2u * b * p.m + p.m + j];
#else
  let eps = mo[i];
#endif
#if ${LOSS}
  let e = eps - noise[i];
  terms[2u * b * p.m + j] = e * e * coef[c + 7u];
#if ${LEARNED}
  terms[2u * b * p.m + p.m + j] = vb_elem(b, x0[i], xv, eps, v).x / LN2;
#else
  terms[2u * b * p.m + p.m + j] = 0.0;
#endif
#elif ${BACKWARD}
  let g = dloss[b];
  let ge = 2.0 * (eps - noise[i]) / f32(p.m) * g * coef[c + 7u];
#if ${LEARNED}
  dmo[2u * b * p.m + j] = ge;
  dmo[2u * b * p.m + p.m + j] = vb_elem(b, x0[i], xv, eps, v).y / (LN2 * f32(p.m)) * p.s0 * g;
#else
  dmo[i] = ge;
#endif
#elif ${DPM}
  let d = coef[c] * xv - coef[c + 1u] * eps;
#if ${HAS_PREV}
  let dd = coef[c + 4u] * d + coef[c + 5u] * d_prev[i];
#else
  let dd = d;
#endif
  x_next[i] = coef[c + 2u] * xv + coef[c + 3u] * dd;
  d_out[i] = d;
#else
  var pred_x0 = coef[c] * xv - coef[c + 1u] * eps;
#if ${CLIP}
  pred_x0 = clamp(pred_x0, -1.0, 1.0);
#endif
#if ${PSAMPLE}
  let mean = coef[c + 2u] * pred_x0 + coef[c + 3u] * xv;
#if ${LEARNED}
  let frac = 0.5 * (v + 1.0);
  let lv = frac * coef[c + 5u] + (1.0 - frac) * coef[c + 4u];
#else
  let lv = coef[c + 7u];
#endif
  x_prev[i] = mean + coef[c + 6u] * exp(0.5 * lv) * noise[i];
#if ${EXTRAS}
  mean_out[i] = mean;
  logvar_out[i] = lv;
  x0_out[i] = pred_x0;
#endif
#elif ${DDIM}
#if ${CLIP}
  let e2 = (coef[c] * xv - pred_x0) / coef[c + 1u];
#else
  let e2 = eps;
#endif
  x_prev[i] = coef[c + 2u] * pred_x0 + coef[c + 3u] * e2 + coef[c + 4u] * noise[i];
#endif
#endif
#endif
}
