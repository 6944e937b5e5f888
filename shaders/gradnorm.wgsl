// Global gradient norm, clipping and dynamic loss scaling, with no readback.
//   partial: one dispatch per gradient tensor; each workgroup strides over its share of the tensor and
//     writes Σ g² (f32 bits) to partials[offset + workgroup], or NaN bits when it saw an inf/NaN element
//     (found from the exponent bits, which no compiler may fold away).
//   finish: one workgroup adds all partials in a fixed order (deterministic), then thread 0 updates the
//     optimizer state: norm, clip factor, grad_scale = clip / loss_scale, skip flag, step counter, and the
//     loss scale like torch.cuda.amp.GradScaler.update (backoff on inf/NaN, growth after an interval).
// VEC: 16-byte loads (f32: 4 elements, f16: 8 halves) when the size allows; else one f32 or one f16 word.

struct OptimState {
  grad_scale: f32,      // what AdamW multiplies gradients by: clip / loss_scale (0 when skipping)
  skip: u32,            // 1: this step's gradients have an inf/NaN (or Σ g² overflowed): skip it
  loss_scale: f32,      // the scale for the next backward pass
  good_steps: u32,      // finite steps since the last scale change (torch's growth tracker)
  grad_norm: u32,       // f32 bits: L2 norm of the unscaled gradients before clipping (NaN when skipped)
  step: u32,            // AdamW steps applied: t of the step being taken (skipped steps do not count)
  skipped: u32,         // steps skipped so far
  reserved: u32,
  growth_factor: f32,
  backoff_factor: f32,
  growth_interval: u32,
  dynamic: u32,         // 0: fixed loss scale
}

const EXP_F32 = 0x7f800000u;
const NAN_BITS = 0x7fc00000u;

fn nonfinite(bits: u32) -> bool {
  return (bits & EXP_F32) == EXP_F32;
}

var<workgroup> sums: array<f32, 256>;
var<workgroup> flags: array<u32, 256>;

// Tree-reduces (sum, flag) over the workgroup in a fixed order; the result is in sums[0] / flags[0].
fn reduce(lid: u32, acc: f32, bad: bool) {
  sums[lid] = acc;
  flags[lid] = select(0u, 1u, bad);
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      sums[lid] += sums[lid + s];
      flags[lid] |= flags[lid + s];
    }
  }
  workgroupBarrier();
}

#if ${PARTIAL}
struct Params {
  units: u32,   // loads: n/4 (f32 VEC), n/8 (f16 VEC), n (f32) or ceil(n/2) (f16)
  n: u32,       // elements
  offset: u32,  // this tensor's first slot in partials
  stride: u32,  // threads in the dispatch
}

@group(0) @binding(0) var<storage, read> x: array<${XT}>;
@group(0) @binding(1) var<storage, read_write> partials: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(global_invocation_id) gid: vec3u) {
  var acc = 0.0;
  var bad = false;
  for (var i = gid.x; i < p.units; i += p.stride) {
#if ${F16}
#if ${VEC}
    let q = x[i];
    bad = bad | any((q & vec4(0x7c00u)) == vec4(0x7c00u)) | any((q & vec4(0x7c000000u)) == vec4(0x7c000000u));
    let a = vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
    let b = vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w));
    acc += dot(a, a) + dot(b, b);
#else
    var q = x[i];
    if (2u * i + 1u >= p.n) {
      q &= 0xffffu; // the padding half of an odd-sized tensor's last word
    }
    bad = bad | ((q & 0x7c00u) == 0x7c00u) | ((q & 0x7c000000u) == 0x7c000000u);
    let a = unpack2x16float(q);
    acc += dot(a, a);
#endif
#else
#if ${VEC}
    let a = x[i];
    bad = bad | any((bitcast<vec4<u32>>(a) & vec4(EXP_F32)) == vec4(EXP_F32));
    acc += dot(a, a);
#else
    let a = x[i];
    bad = bad | nonfinite(bitcast<u32>(a));
    acc += a * a;
#endif
#endif
  }
  reduce(lid, acc, bad);
  if (lid == 0u) {
    partials[p.offset + wid.x] = select(bitcast<u32>(sums[0]), NAN_BITS, flags[0] != 0u);
  }
}
#else
struct Params {
  count: u32,     // partials to add
  clip: u32,      // 1: clip to max_norm
  max_norm: f32,
}

@group(0) @binding(0) var<storage, read> partials: array<u32>;
@group(0) @binding(1) var<storage, read_write> st: OptimState;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  var bad = false;
  for (var i = lid; i < p.count; i += 256u) {
    let bits = partials[i];
    bad = bad | nonfinite(bits);
    if (!nonfinite(bits)) {
      acc += bitcast<f32>(bits);
    }
  }
  reduce(lid, acc, bad);
  if (lid != 0u) {
    return;
  }
  let total = sums[0];
  let scale = st.loss_scale;
  if (flags[0] != 0u || nonfinite(bitcast<u32>(total))) {
    // Skip: AdamW leaves p, m, v alone and t does not advance; back the scale off.
    st.skip = 1u;
    st.grad_scale = 0.0;
    st.grad_norm = NAN_BITS;
    st.skipped += 1u;
    if (st.dynamic != 0u) {
      st.loss_scale = scale * st.backoff_factor;
      st.good_steps = 0u;
    }
    return;
  }
  let norm = sqrt(total) / scale;
  var clip = 1.0;
  if (p.clip != 0u) {
    clip = min(1.0, p.max_norm / (norm + 1e-6));
  }
  st.skip = 0u;
  st.grad_scale = clip / scale;
  st.grad_norm = bitcast<u32>(norm);
  st.step += 1u;
  if (st.dynamic != 0u) {
    let good = st.good_steps + 1u;
    if (good >= st.growth_interval) {
      let grown = scale * st.growth_factor;
      if (!nonfinite(bitcast<u32>(grown))) {
        st.loss_scale = grown; // like torch: a scale that would overflow is kept as it is
      }
      st.good_steps = 0u;
    } else {
      st.good_steps = good;
    }
  }
}
#endif
