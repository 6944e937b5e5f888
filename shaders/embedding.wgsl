// Sinusoidal embeddings: y[r, c] = sin or cos of pos · freq[k], one thread per storage word (one f32, or
// two halves when F16). The row's dims are split in segments (one, or two for the 2-D grid embedding):
//   segment s, index j < 2·half:  k = j mod half;  cos when (j < half) == cos_first, else sin
//   j ≥ 2·half (odd timestep dims): 0
//   position: row r (1-D: width = rows), or for the 2-D grid s = 0 → pos[r mod width] (the column
//   coordinate), s = 1 → pos[width + r / width] (the row coordinate)
// Accuracy: pos · freq reaches 1e3 (timesteps), where one f32 rounding of the product is already 6e-5,
// so the phase is computed exactly enough to be reduced: freq (and, with PAIRS, pos) come from the host as
// f32 (hi, lo) pairs of the f64 value; hi parts are split by bit masks into 12-bit halves whose products
// are exact; the exact main product is reduced by k·π/2 with π/2 = c1 + c2 + c3 (c1, c2 of 12 bits, so
// k·c1 and k·c2 are exact for |k| < 4096, i.e. |phase| < 6400), and sin/cos come from Taylor polynomials on
// [−π/4, π/4] and the quadrant k mod 4 (error ~1e-7, not the 2^-11 WGSL allows its sin/cos).
struct Params {
  rows: u32,
  dim: u32,
  half: u32,      // frequencies per segment
  seg: u32,       // dims per segment
  width: u32,     // 2-D: grid width; 1-D: rows
  cos_first: u32, // 1: [cos, sin] (timesteps), 0: [sin, cos] (positions)
  total: u32,     // rows · dim
  words: u32,     // storage words (threads)
  groups_x: u32,  // workgroups along x of the folded 2-D grid
  c1: f32,
  c2: f32,
  c3: f32,
  two_over_pi: f32,
}

@group(0) @binding(0) var<storage, read> pos: array<f32>;    // positions, or (hi, lo) pairs with PAIRS
@group(0) @binding(1) var<storage, read> freq: array<vec2f>; // (hi, lo) per frequency
@group(0) @binding(2) var<storage, read_write> y: array<${WORD}>;
@group(0) @binding(3) var<uniform> p: Params;

// The top 12 significant bits of x (x minus it is exact and also fits in 12 bits).
fn hi12(x: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(x) & 0xfffff000u);
}

// (sin, cos) of (ph + pl) · (wh + wl).
fn sincos(ph: f32, pl: f32, wh: f32, wl: f32) -> vec2f {
  let p1 = hi12(ph);
  let p2 = ph - p1;
  let w1 = hi12(wh);
  let w2 = wh - w1;
  let big = p1 * w1; // exact
  let small = (p1 * w2 + p2 * w1) + (p2 * w2 + (ph * wl + pl * (wh + wl)));
  let k = round((big + small) * p.two_over_pi);
  let r = ((big - k * p.c1) - k * p.c2) + (small - k * p.c3); // |r| ≤ π/4 (+ rounding)
  let r2 = r * r;
  let s = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0)))));
  let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
  switch (i32(k) & 3) {
    case 0: { return vec2f(s, c); }
    case 1: { return vec2f(c, -s); }
    case 2: { return vec2f(-s, -c); }
    default: { return vec2f(-c, s); }
  }
}

fn value(e: u32) -> f32 {
  let r = e / p.dim;
  let col = e % p.dim;
  let s = col / p.seg;
  let j = col % p.seg;
  if (j >= 2u * p.half) {
    return 0.0;
  }
  let first = j < p.half;
  let w = freq[j % p.half];
  let i = select(p.width + r / p.width, r % p.width, s == 0u);
#if ${PAIRS}
  let sc = sincos(pos[2u * i], pos[2u * i + 1u], w.x, w.y);
#else
  let sc = sincos(pos[i], 0.0, w.x, w.y);
#endif
  return select(sc.x, sc.y, first == (p.cos_first == 1u));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (i >= p.words) {
    return;
  }
#if ${F16}
  var hi = 0.0; // the upper half of an odd-sized tensor's last word is padding (0)
  if (2u * i + 1u < p.total) {
    hi = value(2u * i + 1u);
  }
  y[i] = pack_f16(value(2u * i), hi);
#else
  y[i] = value(i);
#endif
}
