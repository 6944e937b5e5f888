// Element type conversions between f32 and packed f16, working on raw 32-bit words.
//   to_f16: a thread per output word: two f32s rounded to nearest even (f16_bits); the upper half of an
//           odd-sized tensor's last word is padding (0).
//   to_f32: a thread per output element: one half widened (exact).
struct Params {
  n: u32,        // elements
  groups_x: u32, // workgroups along x of the folded 2-D grid
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn to_f16(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
  let e = 2u * i;
  if (e >= p.n) {
    return;
  }
  var hi = 0u;
  if (e + 1u < p.n) {
    hi = f16_bits(x[e + 1u]);
  }
  y[i] = f16_bits(x[e]) | (hi << 16u);
}

@compute @workgroup_size(256)
fn to_f32(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (i < p.n) {
    y[i] = bitcast<u32>(unpack2x16float(x[i >> 1u])[i & 1u]);
  }
}
