// Fills a buffer with one 32-bit pattern (a float, an int, or a pair of halves). Used for zeroing and for
// the NaN poisoning that tests apply to every output before a kernel runs.
struct Params {
  words: u32,
  value: u32,
  groups_x: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (i < p.words) {
    out[i] = p.value;
  }
}
