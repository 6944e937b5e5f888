// Δ_i = Σ_d dO_id · O_id for every query row (the attention backward's per-row correction term), written beside
// lse_i · log2 e as one (lse, Δ) pair a row: the tensor-core backward kernels read both through one binding.
// o / dout: f32 or f16 storage (packed words read with unpack2x16float); one thread per row.
struct Params {
  rows: u32,
  d: u32,
  groups_x: u32,
}

#if ${F16}
@group(0) @binding(0) var<storage, read> o: array<u32>;
@group(0) @binding(1) var<storage, read> dout: array<u32>;
#else
@group(0) @binding(0) var<storage, read> o: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
#endif
@group(0) @binding(2) var<storage, read_write> lse_delta: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn at(i: u32) -> vec2<f32> {
  // (o[i], dout[i])
#if ${F16}
  return vec2<f32>(unpack2x16float(o[i >> 1u])[i & 1u], unpack2x16float(dout[i >> 1u])[i & 1u]);
#else
  return vec2<f32>(o[i], dout[i]);
#endif
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * p.groups_x) * 64u + lid;
  if (row >= p.rows) { return; }
  var acc = 0.0;
  for (var c = 0u; c < p.d; c++) {
    let x = at(row * p.d + c);
    acc += x.x * x.y;
  }
  lse_delta[row] = vec2<f32>(lse[row] * 1.4426950408889634, acc);
}
