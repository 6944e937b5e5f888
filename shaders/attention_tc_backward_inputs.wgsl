// ---- Inputs of both tensor-core backward kernels (attention_tc_backward.wgsl, attention_tc_backward_packed.wgsl;
// appended to their templates by engine/ops/attention_tc.ts): q, k, v, dO [B, H, N, D] f16 as 16-byte words (VEC:
// D a multiple of 8) or as halves, and lse_delta, one (lse · log2 e, Δ = Σ_d dO·O) pair a query row from
// attention_delta.wgsl: one binding for both keeps each kernel within WebGPU's default 8 storage buffers a stage
// (the including kernel binds its gradients and kv_len from 5 on). load_chunk / load_half serve
// attention_tc_staging.wgsl's fetches; sources 0 q, 1 k, 2 v, 3 dout.
#if ${VEC}
@group(0) @binding(0) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> dout: array<vec4<u32>>;
#else
@group(0) @binding(0) var<storage, read> q: array<f16>;
@group(0) @binding(1) var<storage, read> k: array<f16>;
@group(0) @binding(2) var<storage, read> v: array<f16>;
@group(0) @binding(3) var<storage, read> dout: array<f16>;
#endif
@group(0) @binding(4) var<storage, read> lse_delta: array<vec2<f32>>;

#if ${VEC}
fn load_chunk(src: u32, i: u32) -> vec4<u32> {
#else
fn load_half(src: u32, i: u32) -> f16 {
#endif
  switch src {
    case 0u: { return q[i]; }
    case 1u: { return k[i]; }
    case 2u: { return v[i]; }
    default: { return dout[i]; }
  }
}
