// Elementwise y = alpha*a + beta*b (add, axpby, scale without b) or y = a*b (mul), f32 or packed f16.
// b has a's size, or broadcasts along leading dims (b's shape is a trailing suffix of a's): b[i % bn].
// Math is f32; f16 threads each produce one whole output word (two halves).
struct Params {
  n: u32,        // elements of a and y
  bn: u32,       // elements of b
  groups_x: u32, // workgroups along x of the folded 2-D grid
  alpha: f32,
  beta: f32,
}

@group(0) @binding(0) var<storage, read> a: array<${WORD}>;
#if ${HAS_B}
@group(0) @binding(1) var<storage, read> b: array<${WORD}>;
#endif
@group(0) @binding(2) var<storage, read_write> y: array<${WORD}>;
@group(0) @binding(3) var<uniform> p: Params;

// Element i of b as f32 (0 when there is no b); halves are read one at a time since, when b broadcasts,
// its pairs need not line up with a's.
fn b_at(i: u32) -> f32 {
#if ${HAS_B}
#if ${BCAST}
  let j = i % p.bn;
#else
  let j = i;
#endif
#if ${F16}
  return unpack2x16float(b[j >> 1u])[j & 1u];
#else
  return b[j];
#endif
#else
  return 0.0;
#endif
}

fn op(x: f32, v: f32) -> f32 {
#if ${MUL}
  return x * v;
#else
  return p.alpha * x + p.beta * v;
#endif
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
#if ${F16}
  // Word i holds elements 2i and 2i+1; the upper half of an odd-sized tensor's last word is padding (0).
  let e = 2u * i;
  if (e >= p.n) {
    return;
  }
  let x = unpack2x16float(a[i]);
  let lo = op(x.x, b_at(e));
  var hi = 0.0;
  if (e + 1u < p.n) {
    hi = op(x.y, b_at(e + 1u));
  }
  y[i] = pack_f16(lo, hi);
#else
  if (i < p.n) {
    y[i] = op(a[i], b_at(i));
  }
#endif
}
