// Standalone activations, forward y = f(x) and backward dx = dy · f'(x), for GELU (tanh approximation) and
// SiLU, on f32 or packed f16 storage with f32 math. One thread per storage word: a word is one f32, four
// f32 (VEC4), one u32 of two halves, or four u32 of eight halves (F16 and VEC4); the op picks VEC4 when the
// element count fills whole vectors.
//   GELU: g(x) = 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³), written as x·σ(2u) (no overflow)
//         g'(x) = σ(2u) + 2·x·σ(2u)·(1 − σ(2u))·u'
//   SiLU: s(x) = x·σ(x),  s'(x) = σ(x)·(1 + x·(1 − σ(x)))
// With e = exp(−z) and σ(z) = 1/(1 + e), 1 − σ(z) = e·σ(z) keeps its precision when σ(z) is near 1; the
// derivatives clamp x to where e stays finite (outside it f' is exactly 1 or below 1e-33).
struct Params {
  n: u32,        // elements
  words: u32,    // storage words (threads)
  groups_x: u32, // workgroups along x of the folded 2-D grid
}

alias V = ${V};

@group(0) @binding(0) var<storage, read> x: array<${WORD}>;
#if ${BACKWARD}
@group(0) @binding(1) var<storage, read> dy: array<${WORD}>;
#endif
@group(0) @binding(2) var<storage, read_write> y: array<${WORD}>;
@group(0) @binding(3) var<uniform> p: Params;

const K0 = 0.7978845608028654; // √(2/π)
const K1 = 0.044715;

fn act(x: V) -> V {
#if ${GELU}
  let u = K0 * (x + K1 * x * x * x);
  return x / (1.0 + exp(-2.0 * u));
#else
  return x / (1.0 + exp(-x));
#endif
}

fn dact(x0: V) -> V {
#if ${GELU}
  let x = clamp(x0, V(-10.0), V(10.0));
  let u = K0 * (x + K1 * x * x * x);
  let e = exp(-2.0 * u);
  let s = 1.0 / (1.0 + e);
  return s + 2.0 * x * s * (e * s) * K0 * (1.0 + 3.0 * K1 * x * x);
#else
  let x = clamp(x0, V(-80.0), V(80.0));
  let e = exp(-x);
  let s = 1.0 / (1.0 + e);
  return s * (1.0 + x * (e * s));
#endif
}

// The op on one group of values: f(x) forward, g · f'(x) backward.
fn apply(xv: V, gv: V) -> V {
#if ${BACKWARD}
  return gv * dact(xv);
#else
  return act(xv);
#endif
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (i >= p.words) {
    return;
  }
  let xw = x[i];
#if ${BACKWARD}
  let gw = dy[i];
#else
  let gw = xw;
#endif
#if ${F16}
#if ${VEC4}
  // Eight halves: elements 8i .. 8i+7 (the op only picks VEC4 when n is a multiple of 8).
  let lo = apply(vec4f(unpack2x16float(xw.x), unpack2x16float(xw.y)), vec4f(unpack2x16float(gw.x), unpack2x16float(gw.y)));
  let hi = apply(vec4f(unpack2x16float(xw.z), unpack2x16float(xw.w)), vec4f(unpack2x16float(gw.z), unpack2x16float(gw.w)));
  y[i] = vec4u(pack_f16(lo.x, lo.y), pack_f16(lo.z, lo.w), pack_f16(hi.x, hi.y), pack_f16(hi.z, hi.w));
#else
  // Two halves; the upper half of an odd-sized tensor's last word is padding and is written as 0.
  let r = apply(unpack2x16float(xw), unpack2x16float(gw));
  y[i] = pack_f16(r.x, select(0.0, r.y, 2u * i + 1u < p.n));
#endif
#else
  y[i] = apply(xw, gw);
#endif
}
