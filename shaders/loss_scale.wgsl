// The backward seed of a loss-scaled step: out[i] = loss_scale · value, with the loss scale read on the GPU
// from the optimizer state (word 2, OPTIM_STATE.lossScale), so no readback is needed between steps.
struct Params {
  n: u32,
  value: f32,
}

@group(0) @binding(0) var<storage, read> state: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < p.n) {
    out[gid.x] = bitcast<f32>(state[2]) * p.value;
  }
}
