// Fused AdamW step over f32 master weights w, torch.optim.AdamW semantics (decoupled weight decay):
//   g  = grad * grad_scale                      (grad_scale from the optimizer state when STATE, else 1)
//   m  = m + (1 - b1) * (g - m)                 (torch's lerp)
//   v  = v * b2 + (1 - b2) * g * g
//   w  = w - (lr*wd * w + (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)),   bc = 1 - b^t
// which is torch's w*(1 - lr*wd) followed by addcdiv, with one rounding of w instead of two.
// w, m, v are updated in place; g is f32 or packed f16; HALF also writes the new w as packed f16 to w16.
// VEC4: a thread owns 4 elements (16-byte loads of w, m, v and f32 g; 8-byte loads of f16 g), for sizes
// divisible by 4. Otherwise a thread owns the pair 2i, 2i+1 (one f16 word), the odd last one masked.
// STATE: t and grad_scale come from the optimizer state buffer (see gradnorm.wgsl), and a set skip flag
// (non-finite gradients) makes the whole dispatch a no-op.
// EMA: also ema = ema + (1 - decay) * (w_new - ema) from the new weights still in registers — what ema.wgsl
// computes after this kernel, bit for bit, without its dispatch and its second pass over w.

alias V = ${VT}; // vec4<f32> (VEC4) or vec2<f32> (pairs)

struct Params {
  n: u32,        // elements
  units: u32,    // threads with work: n/4 (VEC4) or ceil(n/2)
  groups_x: u32, // workgroups along x of the folded 2-D grid
  t: u32,        // step number (ignored with STATE)
  lr: f32,
  b1: f32,
  omb1: f32,     // 1 - b1, rounded once from f64
  b2: f32,
  omb2: f32,
  log_b1: f32,   // ln(b1), for the bias corrections
  log_b2: f32,
  eps: f32,
  lr_wd: f32,    // lr * wd
  ema_omd: f32,  // 1 - EMA decay (EMA only)
}

struct OptimState {
  grad_scale: f32,
  skip: u32,
  loss_scale: f32,
  good_steps: u32,
  grad_norm: f32,
  step: u32,
}

@group(0) @binding(0) var<storage, read_write> w: array<${PT}>;
@group(0) @binding(1) var<storage, read_write> m: array<${PT}>;
@group(0) @binding(2) var<storage, read_write> v: array<${PT}>;
@group(0) @binding(3) var<storage, read> g: array<${GT}>;
#if ${STATE}
@group(0) @binding(4) var<storage, read> st: OptimState;
#endif
#if ${HALF}
@group(0) @binding(5) var<storage, read_write> w16: array<${HT}>;
#endif
#if ${EMA}
@group(0) @binding(7) var<storage, read_write> ema: array<${PT}>;
#endif
@group(0) @binding(6) var<uniform> p: Params;

// 1 - exp(x) for x <= 0 without cancellation: x = t ln(b) is tiny for b2 = 0.999 and small t, where
// 1 - b^t would lose most of its bits, so near 0 it is -x (1 + x/2! + x^2/3! + ... + x^10/11!) (Horner,
// error far below f32's), and 1 - exp(x) beyond. Uniform across the dispatch: a few FMAs per thread.
fn one_minus_exp(x: f32) -> f32 {
  if (x < -0.5) {
    return 1.0 - exp(x);
  }
  var s = 1.0 / 39916800.0; // 1/11!
  s = fma(s, x, 1.0 / 3628800.0);
  s = fma(s, x, 1.0 / 362880.0);
  s = fma(s, x, 1.0 / 40320.0);
  s = fma(s, x, 1.0 / 5040.0);
  s = fma(s, x, 1.0 / 720.0);
  s = fma(s, x, 1.0 / 120.0);
  s = fma(s, x, 1.0 / 24.0);
  s = fma(s, x, 1.0 / 6.0);
  s = fma(s, x, 0.5);
  s = fma(s, x, 1.0);
  return -x * s;
}

// New w, m, v for one group of elements.
fn update(w0: V, m0: V, v0: V, g0: V, gs: f32, t: u32) -> array<V, 3> {
  let bc1 = one_minus_exp(p.log_b1 * f32(t));
  let bc2_sqrt = sqrt(one_minus_exp(p.log_b2 * f32(t)));
  let step_size = p.lr / bc1;
  let gr = g0 * gs;
  let m1 = m0 + p.omb1 * (gr - m0);
  let v1 = v0 * p.b2 + p.omb2 * gr * gr;
  let denom = sqrt(v1) / bc2_sqrt + p.eps;
  let w1 = w0 - (p.lr_wd * w0 + step_size * (m1 / denom));
  return array<V, 3>(w1, m1, v1);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (i >= p.units) {
    return;
  }
#if ${STATE}
  if (st.skip != 0u) {
    return; // non-finite gradients: w, m, v (and the f16 copy) stay as they are
  }
  let gs = st.grad_scale;
  let t = max(st.step, 1u);
#else
  let gs = 1.0;
  let t = p.t;
#endif

#if ${VEC4}
#if ${F16}
  let gw = g[i];
  let gv = vec4<f32>(unpack2x16float(gw.x), unpack2x16float(gw.y));
#else
  let gv = g[i];
#endif
  let r = update(w[i], m[i], v[i], gv, gs, t);
  w[i] = r[0];
  m[i] = r[1];
  v[i] = r[2];
#if ${HALF}
  w16[i] = vec2<u32>(pack_f16(r[0].x, r[0].y), pack_f16(r[0].z, r[0].w));
#endif
#if ${EMA}
  let e0 = ema[i];
  ema[i] = e0 + p.ema_omd * (r[0] - e0);
#endif

#else
  // Pair i: elements e and e + 1 (the second absent when n is odd and this is the last pair).
  let e = 2u * i;
  let two = e + 1u < p.n;
  var w0 = vec2<f32>(w[e], 0.0);
  var m0 = vec2<f32>(m[e], 0.0);
  var v0 = vec2<f32>(v[e], 0.0);
  if (two) {
    w0.y = w[e + 1u];
    m0.y = m[e + 1u];
    v0.y = v[e + 1u];
  }
#if ${F16}
  var gv = unpack2x16float(g[i]);
  if (!two) {
    gv.y = 0.0; // the padding half of an odd-sized tensor's last word
  }
#else
  var gv = vec2<f32>(g[e], 0.0);
  if (two) {
    gv.y = g[e + 1u];
  }
#endif
  let r = update(w0, m0, v0, gv, gs, t);
  w[e] = r[0].x;
  m[e] = r[1].x;
  v[e] = r[2].x;
  if (two) {
    w[e + 1u] = r[0].y;
    m[e + 1u] = r[1].y;
    v[e + 1u] = r[2].y;
  }
#if ${HALF}
  w16[i] = pack_f16(r[0].x, select(0.0, r[0].y, two));
#endif
#if ${EMA}
  let ea = ema[e];
  ema[e] = ea + p.ema_omd * (r[0].x - ea);
  if (two) {
    let eb = ema[e + 1u];
    ema[e + 1u] = eb + p.ema_omd * (r[0].y - eb);
  }
#endif
#endif
}
