// y = x with its axes reordered. The op passes y's shape (at most 6 dims after merging axes) and, for each
// of y's axes, the stride of the x axis it comes from; every thread gathers by decomposing its output index.
// 32-bit dtypes move whole words; f16 threads build one output word from two individually-read halves.
// UNIT: when the last axis stays last and its length is a multiple of the unit, every thread moves one
// vec2/vec4 of words (the op divides the last extent and all strides by the unit), as the model's head
// splits and merges do; otherwise UNIT is u32.
struct Params {
  n: u32,        // elements of y
  groups_x: u32, // workgroups along x of the folded 2-D grid
  rank: u32,
  _pad: u32,
  shape: array<vec4u, 2>,  // y's dims, shape[d / 4][d % 4]
  stride: array<vec4u, 2>, // x's element stride for each of y's dims
}

@group(0) @binding(0) var<storage, read> x: array<${UNIT}>;
@group(0) @binding(1) var<storage, read_write> y: array<${UNIT}>;
@group(0) @binding(2) var<uniform> p: Params;

// x's element index for y's element i.
fn source(i: u32) -> u32 {
  var rest = i;
  var src = 0u;
  for (var d = p.rank; d > 0u; d--) {
    let ext = p.shape[(d - 1u) / 4u][(d - 1u) % 4u];
    src += (rest % ext) * p.stride[(d - 1u) / 4u][(d - 1u) % 4u];
    rest /= ext;
  }
  return src;
}

#if ${F16}
fn half_at(i: u32) -> u32 {
  return (x[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
}
#endif

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
#if ${F16}
  // Word i holds elements 2i and 2i+1; the upper half of an odd-sized tensor's last word is padding (0).
  let e = 2u * i;
  if (e >= p.n) {
    return;
  }
  var hi = 0u;
  if (e + 1u < p.n) {
    hi = half_at(source(e + 1u));
  }
  y[i] = half_at(source(e)) | (hi << 16u);
#else
  if (i < p.n) {
    y[i] = x[source(i)];
  }
#endif
}
