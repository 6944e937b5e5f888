// ---- K/V tile staging of attention_tc.wgsl (appended to its template by engine/ops/attention_tc.ts).
// Uses the including kernel's k, v (VEC: vec4<u32> chunks, else
// f16), p.d, the Ks/Vs tiles of BKV rows with row stride KS, DP (D padded) and THREADS. Constants and
// functions only: no workgroup variables (their declaration order matters on Dawn/NVIDIA, see the kernels).
#if ${VEC}
// 16-byte chunks of a K or V tile: chunk c is row c / (DP/8), columns 8·(c mod DP/8) .. +7.
const CHUNKS = BKV * DP / 8u;
const PER = (CHUNKS + THREADS - 1u) / THREADS;

fn fetch(is_v: bool, c: u32, base: u32, r0: u32, rows: u32) -> vec4<u32> {
  let r = c / (DP / 8u);
  let col = (c % (DP / 8u)) * 8u;
  if (c < CHUNKS && r0 + r < rows && col < p.d) {
    let i = (base + (r0 + r) * p.d + col) / 8u;
    if (is_v) { return v[i]; }
    return k[i];
  }
  return vec4<u32>(0u);
}

fn put(is_v: bool, c: u32, w: vec4<u32>) {
  if (c >= CHUNKS) { return; }
  let off = (c / (DP / 8u)) * KS + (c % (DP / 8u)) * 8u;
  for (var i = 0u; i < 4u; i++) {
    let h = bitcast<vec2<f16>>(w[i]);
    if (is_v) { Vs[off + 2u * i] = h.x; Vs[off + 2u * i + 1u] = h.y; }
    else { Ks[off + 2u * i] = h.x; Ks[off + 2u * i + 1u] = h.y; }
  }
}
#else
// Stages rows [r0, r0 + 64) of a [rows, D] matrix at `base` into the K or V tile, zero-padded.
fn stage(is_v: bool, lid: u32, base: u32, r0: u32, rows: u32) {
  for (var i = lid; i < BKV * DP; i += THREADS) {
    let r = i / DP;
    let c = i % DP;
    var x = f16(0.0);
    if (r0 + r < rows && c < p.d) {
      if (is_v) { x = v[base + (r0 + r) * p.d + c]; } else { x = k[base + (r0 + r) * p.d + c]; }
    }
    if (is_v) { Vs[r * KS + c] = x; } else { Ks[r * KS + c] = x; }
  }
}
#endif
