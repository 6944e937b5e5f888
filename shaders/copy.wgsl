// Bandwidth reference: copies 16-byte vectors, grid-stride. Its GB/s is the ceiling that memory-bound
// kernels (layernorm, adaLN, AdamW) are measured against.
struct Params {
  vec4s: u32,
  stride: u32, // threads in the grid
}

@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  for (var i = gid.x; i < p.vec4s; i += p.stride) {
    dst[i] = src[i];
  }
}
