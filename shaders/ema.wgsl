// Exponential moving average of f32 weights, in place: ema = decay * ema + (1 - decay) * w, computed as
// ema + (1 - decay) * (w - ema) (torch's lerp_), so the small change is not lost to the rounding of decay * ema.
// VEC4: 16-byte loads for sizes divisible by 4, else one element per thread. STATE: do nothing when the
// optimizer state says this step was skipped (the weights did not change).
struct Params {
  units: u32,    // n/4 (VEC4) or n
  groups_x: u32, // workgroups along x of the folded 2-D grid
  omd: f32,      // 1 - decay, rounded once from f64
}

struct OptimState {
  grad_scale: f32,
  skip: u32,
}

@group(0) @binding(0) var<storage, read_write> ema: array<${T}>;
@group(0) @binding(1) var<storage, read> w: array<${T}>;
#if ${STATE}
@group(0) @binding(2) var<storage, read> st: OptimState;
#endif
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (i >= p.units) {
    return;
  }
#if ${STATE}
  if (st.skip != 0u) {
    return;
  }
#endif
  let e = ema[i];
  ema[i] = e + p.omd * (w[i] - e);
}
