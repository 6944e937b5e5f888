// Counter-based random numbers: Philox4x32-10 (Salmon et al. 2011). Element e of the stream of `seed` comes
// from the 128-bit counter (e / 4, 0) under the key (seed_lo, seed_hi), word e % 4 — so any element depends
// only on (seed, e): a draw at offset k is exactly the tail of a longer draw from 0.
//   BITS:    the raw word.
//   UNIFORM: (word >> 8) · 2^-24 in [0, 1).
//   NORMAL:  Box–Muller on the word pairs (0,1) and (2,3): u1 = ((w_a >> 8) + 1) · 2^-24 in (0, 1],
//            θ = 2π (w_b >> 8) · 2^-24, r = sqrt(−2 ln u1); even words take r cos θ, odd words r sin θ.
// UNIFORM and NORMAL values are then mapped to v·scale + shift (parameter initialisers: U(−a, a), N(0, std²)).
// One thread per counter writes its (up to) four elements of [offset, offset + n).
struct Params {
  n: u32,        // elements to write
  phase: u32,    // offset % 4: the first counter's words before the offset are skipped
  ctr_lo: u32,   // offset / 4, the first counter (64 bits)
  ctr_hi: u32,
  seed_lo: u32,
  seed_hi: u32,
  groups_x: u32, // workgroups along x of the folded 2-D grid
  threads: u32,  // counters to run
  scale: f32,    // UNIFORM / NORMAL: v·scale + shift
  shift: f32,
}

@group(0) @binding(0) var<storage, read_write> y: array<${OUT}>;
@group(0) @binding(1) var<uniform> p: Params;

// High and low words of the 64-bit product a·b, from 16-bit halves (WGSL has no 64-bit integers).
fn mulhilo(a: u32, b: u32) -> vec2u {
  let al = a & 0xffffu;
  let ah = a >> 16u;
  let bl = b & 0xffffu;
  let bh = b >> 16u;
  let ll = al * bl;
  let lh = al * bh;
  let hl = ah * bl;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  let hi = ah * bh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
  return vec2u(hi, a * b);
}

fn philox(ctr: vec4u, key0: vec2u) -> vec4u {
  var c = ctr;
  var k = key0;
  for (var r = 0u; r < 10u; r++) {
    let p0 = mulhilo(0xD2511F53u, c.x);
    let p1 = mulhilo(0xCD9E8D57u, c.z);
    c = vec4u(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    k += vec2u(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}

// (cos θ, sin θ) for θ = 2π·b·2^-24 (b < 2^24): the top two bits pick the quadrant exactly and Taylor
// polynomials (error < 1e-9 on [0, π/2)) do the rest, so no device's sin/cos argument reduction is involved.
fn cos_sin(b: u32) -> vec2f {
  let phi = f32(b & 0x3fffffu) * (1.5707963267948966 / 4194304.0);
  let x = phi * phi;
  let s = phi * (1.0 - x / 6.0 * (1.0 - x / 20.0 * (1.0 - x / 42.0 * (1.0 - x / 72.0 * (1.0 - x / 110.0 * (1.0 - x / 156.0))))));
  let c = 1.0 - x / 2.0 * (1.0 - x / 12.0 * (1.0 - x / 30.0 * (1.0 - x / 56.0 * (1.0 - x / 90.0 * (1.0 - x / 132.0 * (1.0 - x / 182.0))))));
  switch (b >> 22u) {
    case 0u: { return vec2f(c, s); }
    case 1u: { return vec2f(-s, c); }
    case 2u: { return vec2f(-c, -s); }
    default: { return vec2f(s, -c); }
  }
}

fn value(w: vec4u, j: u32) -> ${OUT} {
#if ${BITS}
  return w[j];
#elif ${UNIFORM}
  return f32(w[j] >> 8u) * 5.9604644775390625e-8 * p.scale + p.shift;
#else
  let u1 = f32((w[j & 2u] >> 8u) + 1u) * 5.9604644775390625e-8;
  let r = sqrt(-2.0 * log(u1));
  return r * cos_sin(w[(j & 2u) + 1u] >> 8u)[j & 1u] * p.scale + p.shift;
#endif
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let k = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (k >= p.threads) {
    return;
  }
  let lo = p.ctr_lo + k;
  let hi = p.ctr_hi + select(0u, 1u, lo < k); // carry
  let w = philox(vec4u(lo, hi, 0u, 0u), vec2u(p.seed_lo, p.seed_hi));
  for (var j = 0u; j < 4u; j++) {
    let e = k * 4u + j; // element e − phase of this draw
    if (e >= p.phase && e - p.phase < p.n) {
      y[e - p.phase] = value(w, j);
    }
  }
}
