// Flash attention backward on tensor cores (FlashAttention-2 style): scores are recomputed tile by tile from
// q, k and the saved lse, so no N×N matrix exists. f16 q/k/v/do, f32 softmax, f32 accumulation.
//   (Δ_i = Σ_d dO_id · O_id comes from attention_delta.wgsl)
//   dkdv:  per tile of 64 keys (16 per subgroup), loop over query tiles:
//          Pᵀ = exp(scale·K·Qᵀ − lse), dV += Pᵀ·dO, dPᵀ = V·dOᵀ, dSᵀ = Pᵀ∘(dPᵀ − Δ), dK += scale·dSᵀ·Q
//   dq:    per tile of 64 queries (16 per subgroup), loop over key tiles:
//          P = exp(scale·Q·Kᵀ − lse), dP = dO·Vᵀ, dS = P∘(dP − Δ), dQ += scale·dS·K
// dK/dV and dQ are accumulated in subgroup-matrix fragments and written once: deterministic, no atomics.
// MASK: keys at positions ≥ kv_len[b] get zero weight and zero gradient.
// Same layouts as attention_tc.wgsl: [B, H, N, D] head-major; D zero-padded to DP in workgroup memory.
// VEC (D a multiple of 8): 16-byte loads of q/k/v/dO; otherwise eight f16 loads a 16-byte chunk. The next inner
// tile is fetched into registers while the current one is used (shaders/attention_tc_staging.wgsl).
// Workgroup tiles are held in words (A/Bt/Ps: 4 halves, Ss/lse_t/delta_t: 4 floats); subgroup-matrix loads and
// stores then count offsets and strides in words. Lanes: two per row of 16, each taking 8 quads of 4 adjacent
// columns in an order skewed by the row (`quad`), so that a quarter-warp's 16-byte Ss reads and a half-warp's
// 8-byte Ps writes fall on distinct banks (rows 64 floats apart). Measured on the H200 (B4 H16 N4096 D72):
// 42.3 → 53.1 TFLOP/s against scalar tiles with one column a step.
// As in attention_tc.wgsl: each subgroup's fragments and accumulators are NAMED variables, one per 16-wide D
// fragment (F2..F8 say which exist), not arrays indexed in loops (slower on NVIDIA); the accumulators start from
// a zero fragment loaded from zeroed workgroup memory (declared subgroup-matrix variables are not reliably zeroed;
// attention_tc_common.wgsl); the scalar workgroup variable is declared before the tiles.
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

struct Params {
  nq: u32,
  nk: u32,
  d: u32,
  heads: u32,
  scale: f32,      // softmax scale
  scale_log2: f32, // scale · log2(e)
}

// q, k, v, dout, lse_delta (bindings 0–4) and load_chunk: shaders/attention_tc_backward_inputs.wgsl
// dkdv: g0 dK, g1 dV; dq: g0 dQ. VEC: 16-byte words (8 halves or 4 floats).
#if ${VEC}
#if ${OUT_F16}
@group(0) @binding(5) var<storage, read_write> g0: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> g1: array<vec4<u32>>;
#else
@group(0) @binding(5) var<storage, read_write> g0: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> g1: array<vec4<f32>>;
#endif
#else
#if ${OUT_F16}
@group(0) @binding(5) var<storage, read_write> g0: array<f16>;
@group(0) @binding(6) var<storage, read_write> g1: array<f16>;
#else
@group(0) @binding(5) var<storage, read_write> g0: array<f32>;
@group(0) @binding(6) var<storage, read_write> g1: array<f32>;
#endif
#endif
#if ${MASK}
@group(0) @binding(7) var<storage, read> kv_len: array<u32>;
#endif
@group(0) @binding(8) var<uniform> p: Params;

const DP = ${DP}u;
const DF = DP / 16u;
const BT = 64u;               // rows of the outer tile (keys for dkdv, queries for dq); 16 per subgroup
const BI = 64u;               // rows of the inner tile
const TILE_ROWS = BI;         // rows of a staged tile (attention_tc_staging.wgsl)
const KS = max(DP, BI) + 8u;  // row stride (halves) of the staged tiles
const TS = BI + 8u;           // row stride (halves) of P / dS
const THREADS = 128u;
const SS_ROW = BI;            // row stride of Ss (floats), for zero_rows / zero_acc (attention_tc_common.wgsl)

var<workgroup> wg_nk: u32;
var<workgroup> A: array<vec2<u32>, BI * KS / 4u>;        // inner tile 1 (dkdv: Q, dq: K); first the outer-tile rows
var<workgroup> Bt: array<vec2<u32>, BI * KS / 4u>;       // inner tile 2 (dkdv: dO, dq: V)
var<workgroup> Ss: array<vec4<f32>, 4u * 16u * BI / 4u>; // per subgroup: scores, then dP, then output staging
var<workgroup> Ps: array<vec2<u32>, 4u * 16u * TS / 4u>; // per subgroup: P (or Pᵀ), then dS (or dSᵀ)
var<workgroup> lse_t: array<vec4<f32>, BI / 4u>;         // dkdv: the query tile's lse (log2 domain) and Δ
var<workgroup> delta_t: array<vec4<f32>, BI / 4u>;

fn key_count(b: u32) -> u32 {
#if ${MASK}
  return min(p.nk, kv_len[b]);
#else
  return p.nk;
#endif
}

// Tile staging (fetch_chunk / put_chunk / stage; sources 0 q, 1 k, 2 v, 3 dout; tiles 0 A, 1 Bt):
// shaders/attention_tc_staging.wgsl, appended by the TS op, through these accessors.
fn store_chunk(dst: u32, off: u32, w: vec4<u32>) {
  if (dst == 0u) { A[off / 4u] = w.xy; A[off / 4u + 1u] = w.zw; } else { Bt[off / 4u] = w.xy; Bt[off / 4u + 1u] = w.zw; }
}

// The quad (4 adjacent columns of 64) lane h of row r takes at step c of 8: skewed by r mod 4 and (r / 4) mod 2.
fn quad(c: u32, r: u32, h: u32) -> u32 { return 2u * ((c + r % 4u + (r / 4u) % 2u) % 8u) + h; }

// Fragments of the staged tiles (which: 0 A, 1 Bt). rows_left: this subgroup's 16 rows, D columns f·16..;
// cols_right: tile rows j·16.. as the columns of a right operand (the tile transposed); rows_right: tile rows
// kk·16.. as the rows of a right operand, D columns f·16...
fn rows_left(which: u32, sg: u32, f: u32) -> subgroup_matrix_left<f16, 16, 16> {
  if (which == 0u) { return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&A, (sg * 16u * KS + f * 16u) / 4u, KS / 4u); }
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Bt, (sg * 16u * KS + f * 16u) / 4u, KS / 4u);
}

fn cols_right(which: u32, j: u32, f: u32) -> subgroup_matrix_right<f16, 16, 16> {
  if (which == 0u) { return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&A, (j * 16u * KS + f * 16u) / 4u, KS / 4u); }
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Bt, (j * 16u * KS + f * 16u) / 4u, KS / 4u);
}

fn rows_right(which: u32, kk: u32, f: u32) -> subgroup_matrix_right<f16, 16, 16> {
  if (which == 0u) { return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&A, (kk * 16u * KS + f * 16u) / 4u, KS / 4u); }
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Bt, (kk * 16u * KS + f * 16u) / 4u, KS / 4u);
}

// Columns kk·16.. of this subgroup's P / dS rows.
fn pfrag(sg: u32, kk: u32) -> subgroup_matrix_left<f16, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ps, (sg * 16u * TS + kk * 16u) / 4u, TS / 4u);
}

// zero_rows / zero_acc / pack4: shaders/attention_tc_common.wgsl, appended by the TS op.

// X·Tᵀ for this subgroup's 16 rows X (D fragments x0..) and the 64 rows of tile `which`, to its Ss rows.
fn times_tile_t(which: u32, sg: u32,
                x0: subgroup_matrix_left<f16, 16, 16>, x1: subgroup_matrix_left<f16, 16, 16>,
                x2: subgroup_matrix_left<f16, 16, 16>, x3: subgroup_matrix_left<f16, 16, 16>,
                x4: subgroup_matrix_left<f16, 16, 16>, x5: subgroup_matrix_left<f16, 16, 16>,
                x6: subgroup_matrix_left<f16, 16, 16>, x7: subgroup_matrix_left<f16, 16, 16>) {
  for (var j = 0u; j < BI / 16u; j++) {
    var s = subgroupMatrixMultiply<f32>(x0, cols_right(which, j, 0u));
#if ${F2}
    s = subgroupMatrixMultiplyAccumulate(x1, cols_right(which, j, 1u), s);
#endif
#if ${F3}
    s = subgroupMatrixMultiplyAccumulate(x2, cols_right(which, j, 2u), s);
#endif
#if ${F4}
    s = subgroupMatrixMultiplyAccumulate(x3, cols_right(which, j, 3u), s);
#endif
#if ${F5}
    s = subgroupMatrixMultiplyAccumulate(x4, cols_right(which, j, 4u), s);
#endif
#if ${F6}
    s = subgroupMatrixMultiplyAccumulate(x5, cols_right(which, j, 5u), s);
#endif
#if ${F7}
    s = subgroupMatrixMultiplyAccumulate(x6, cols_right(which, j, 6u), s);
#endif
#if ${F8}
    s = subgroupMatrixMultiplyAccumulate(x7, cols_right(which, j, 7u), s);
#endif
    subgroupMatrixStore<row_major>(&Ss, (sg * 16u * BI + j * 16u) / 4u, s, BI / 4u);
  }
}

// Accumulator i to column (i − f0)·16 of this subgroup's Ss rows when it is in the pass starting at f0.
fn stage_acc(sg: u32, f0: u32, i: u32, acc: subgroup_matrix_result<f32, 16, 16>) {
  if (i >= f0 && i < f0 + 4u) {
    subgroupMatrixStore<row_major>(&Ss, (sg * 16u * BI + (i - f0) * 16u) / 4u, acc, BI / 4u);
  }
}

// Writes the [16, ≤ 64] f32 block staged in this subgroup's Ss rows (D fragments f0 .. f0 + 3) scaled by
// `mul` into rows row0.. of g0 (which = 0) or g1.
fn write_rows(which: u32, sg: u32, lane: u32, base: u32, row0: u32, rows: u32, f0: u32, mul: f32) {
  let cs = sg * 16u * BI;
#if ${VEC}
  // chunks of 8 columns as 16-byte words (p.d a multiple of 8: a chunk is in or out as a whole)
  for (var e = lane; e < 16u * 8u; e += 32u) {
    let r = e / 8u;
    let c = (e % 8u) * 8u;
    let d = f0 * 16u + c;
    if (row0 + r < rows && d < p.d && c < (min(f0 + 4u, DF) - f0) * 16u) {
      let si = (cs + r * BI + c) / 4u;
      let lo = Ss[si] * mul;
      let hi = Ss[si + 1u] * mul;
      let g = base + (row0 + r) * p.d + d;
#if ${OUT_F16}
      let w = vec4<u32>(pack4(lo), pack4(hi));
      if (which == 0u) { g0[g / 8u] = w; } else { g1[g / 8u] = w; }
#else
      if (which == 0u) { g0[g / 4u] = lo; g0[g / 4u + 1u] = hi; } else { g1[g / 4u] = lo; g1[g / 4u + 1u] = hi; }
#endif
    }
  }
#else
  for (var e = lane; e < 16u * 64u; e += 32u) {
    let r = e / 64u;
    let c = e % 64u;
    let d = f0 * 16u + c;
    if (row0 + r < rows && d < p.d && c < (min(f0 + 4u, DF) - f0) * 16u) {
      let si = cs + r * BI + c;
      let val = Ss[si / 4u][si % 4u] * mul;
#if ${OUT_F16}
      if (which == 0u) { g0[base + (row0 + r) * p.d + d] = f16(val); } else { g1[base + (row0 + r) * p.d + d] = f16(val); }
#else
      if (which == 0u) { g0[base + (row0 + r) * p.d + d] = val; } else { g1[base + (row0 + r) * p.d + d] = val; }
#endif
    }
  }
#endif
}

// ---- dkdv ------------------------------------------------------------------------------------------------

@compute @workgroup_size(THREADS)
fn dkdv(@builtin(workgroup_id) wid: vec3u,
        @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  let bh = wid.y;
  let b = bh / p.heads;
  let k0 = wid.x * BT;
  let qbase = bh * p.nq * p.d;
  let kbase = bh * p.nk * p.d;
  let lbase = bh * p.nq;
  if (lid == 0u) { wg_nk = key_count(b); }
  let nk = workgroupUniformLoad(&wg_nk);

  var ra: array<vec4<u32>, PER>;   // the next Q and dO tiles' chunks (the first ones in flight while the outer tile is staged)
  var rb: array<vec4<u32>, PER>;
  for (var i = 0u; i < PER; i++) {
    ra[i] = fetch_chunk(0u, lid + i * THREADS, qbase, 0u, p.nq);
    rb[i] = fetch_chunk(3u, lid + i * THREADS, qbase, 0u, p.nq);
  }
  // This subgroup's 16 keys as left fragments of K and V (rows = keys), via the A / Bt tiles.
  stage(0u, 1u, lid, kbase, k0, nk);
  stage(1u, 2u, lid, kbase, k0, nk);
  zero_rows(sg, lane);
  workgroupBarrier();
  var kf0: subgroup_matrix_left<f16, 16, 16>;
  var kf1: subgroup_matrix_left<f16, 16, 16>;
  var kf2: subgroup_matrix_left<f16, 16, 16>;
  var kf3: subgroup_matrix_left<f16, 16, 16>;
  var kf4: subgroup_matrix_left<f16, 16, 16>;
  var kf5: subgroup_matrix_left<f16, 16, 16>;
  var kf6: subgroup_matrix_left<f16, 16, 16>;
  var kf7: subgroup_matrix_left<f16, 16, 16>;
  var vf0: subgroup_matrix_left<f16, 16, 16>;
  var vf1: subgroup_matrix_left<f16, 16, 16>;
  var vf2: subgroup_matrix_left<f16, 16, 16>;
  var vf3: subgroup_matrix_left<f16, 16, 16>;
  var vf4: subgroup_matrix_left<f16, 16, 16>;
  var vf5: subgroup_matrix_left<f16, 16, 16>;
  var vf6: subgroup_matrix_left<f16, 16, 16>;
  var vf7: subgroup_matrix_left<f16, 16, 16>;
  kf0 = rows_left(0u, sg, 0u);
  vf0 = rows_left(1u, sg, 0u);
#if ${F2}
  kf1 = rows_left(0u, sg, 1u);
  vf1 = rows_left(1u, sg, 1u);
#endif
#if ${F3}
  kf2 = rows_left(0u, sg, 2u);
  vf2 = rows_left(1u, sg, 2u);
#endif
#if ${F4}
  kf3 = rows_left(0u, sg, 3u);
  vf3 = rows_left(1u, sg, 3u);
#endif
#if ${F5}
  kf4 = rows_left(0u, sg, 4u);
  vf4 = rows_left(1u, sg, 4u);
#endif
#if ${F6}
  kf5 = rows_left(0u, sg, 5u);
  vf5 = rows_left(1u, sg, 5u);
#endif
#if ${F7}
  kf6 = rows_left(0u, sg, 6u);
  vf6 = rows_left(1u, sg, 6u);
#endif
#if ${F8}
  kf7 = rows_left(0u, sg, 7u);
  vf7 = rows_left(1u, sg, 7u);
#endif
  let zero = zero_acc(sg);
  var dk0 = zero;
  var dk1 = zero;
  var dk2 = zero;
  var dk3 = zero;
  var dk4 = zero;
  var dk5 = zero;
  var dk6 = zero;
  var dk7 = zero;
  var dv0 = zero;
  var dv1 = zero;
  var dv2 = zero;
  var dv3 = zero;
  var dv4 = zero;
  var dv5 = zero;
  var dv6 = zero;
  var dv7 = zero;

  let r = lane / 2u;          // key row of this subgroup's 16
  let h = lane % 2u;          // half of the 64 queries
  let key = k0 + sg * 16u + r;
  let srow = sg * 16u * BI + r * BI;
  let prow = sg * 16u * TS + r * TS;
  var pv: array<vec4<f32>, 8>;

  for (var q0 = 0u; q0 < p.nq; q0 += BI) {
    workgroupBarrier();
    for (var i = 0u; i < PER; i++) {
      put_chunk(0u, lid + i * THREADS, ra[i]);   // Q tile
      put_chunk(1u, lid + i * THREADS, rb[i]);   // dO tile
    }
    if (lid < BI) {
      let ld = lse_delta[lbase + min(q0 + lid, p.nq - 1u)];
      lse_t[lid / 4u][lid % 4u] = ld.x;
      delta_t[lid / 4u][lid % 4u] = ld.y;
    }
    workgroupBarrier();
    // next Q/dO tile in flight during this tile (no `if`: fetch_chunk skips rows past the end; a branch here cost 8 %)
    for (var i = 0u; i < PER; i++) {
      ra[i] = fetch_chunk(0u, lid + i * THREADS, qbase, q0 + BI, p.nq);
      rb[i] = fetch_chunk(3u, lid + i * THREADS, qbase, q0 + BI, p.nq);
    }

    // Sᵀ = K·Qᵀ (16 keys × 64 queries) → Pᵀ.
    times_tile_t(0u, sg, kf0, kf1, kf2, kf3, kf4, kf5, kf6, kf7);
    workgroupBarrier();
    // (each softmax-side pass reads its 32 values into registers first, branch-free: see attention_tc.wgsl)
    var sv: array<vec4<f32>, 8>;
    for (var c = 0u; c < 8u; c++) { sv[c] = Ss[srow / 4u + quad(c, r, h)]; }
    for (var c = 0u; c < 8u; c++) {
      let qd = quad(c, r, h);
      let cols = vec4<u32>(q0 + 4u * qd) + vec4<u32>(0u, 1u, 2u, 3u);
      pv[c] = select(vec4<f32>(0.0), exp2(sv[c] * p.scale_log2 - lse_t[qd]), (cols < vec4<u32>(p.nq)) & vec4<bool>(key < nk));
      Ps[prow / 4u + qd] = pack4(pv[c]);
    }
    workgroupBarrier();

    // dV += Pᵀ·dO ; dPᵀ = V·dOᵀ.
    for (var kk = 0u; kk < BI / 16u; kk++) {
      let pf = pfrag(sg, kk);
      dv0 = subgroupMatrixMultiplyAccumulate(pf, rows_right(1u, kk, 0u), dv0);
#if ${F2}
      dv1 = subgroupMatrixMultiplyAccumulate(pf, rows_right(1u, kk, 1u), dv1);
#endif
#if ${F3}
      dv2 = subgroupMatrixMultiplyAccumulate(pf, rows_right(1u, kk, 2u), dv2);
#endif
#if ${F4}
      dv3 = subgroupMatrixMultiplyAccumulate(pf, rows_right(1u, kk, 3u), dv3);
#endif
#if ${F5}
      dv4 = subgroupMatrixMultiplyAccumulate(pf, rows_right(1u, kk, 4u), dv4);
#endif
#if ${F6}
      dv5 = subgroupMatrixMultiplyAccumulate(pf, rows_right(1u, kk, 5u), dv5);
#endif
#if ${F7}
      dv6 = subgroupMatrixMultiplyAccumulate(pf, rows_right(1u, kk, 6u), dv6);
#endif
#if ${F8}
      dv7 = subgroupMatrixMultiplyAccumulate(pf, rows_right(1u, kk, 7u), dv7);
#endif
    }
    times_tile_t(1u, sg, vf0, vf1, vf2, vf3, vf4, vf5, vf6, vf7);
    workgroupBarrier();
    // dSᵀ = Pᵀ∘(dPᵀ − Δ) over Ps.
    for (var c = 0u; c < 8u; c++) { sv[c] = Ss[srow / 4u + quad(c, r, h)]; }
    for (var c = 0u; c < 8u; c++) {
      let qd = quad(c, r, h);
      Ps[prow / 4u + qd] = pack4(pv[c] * (sv[c] - delta_t[qd])); // pv is 0 outside the tile
    }
    workgroupBarrier();
    // dK += dSᵀ·Q (scaled at the end).
    for (var kk = 0u; kk < BI / 16u; kk++) {
      let pf = pfrag(sg, kk);
      dk0 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 0u), dk0);
#if ${F2}
      dk1 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 1u), dk1);
#endif
#if ${F3}
      dk2 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 2u), dk2);
#endif
#if ${F4}
      dk3 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 3u), dk3);
#endif
#if ${F5}
      dk4 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 4u), dk4);
#endif
#if ${F6}
      dk5 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 5u), dk5);
#endif
#if ${F7}
      dk6 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 6u), dk6);
#endif
#if ${F8}
      dk7 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 7u), dk7);
#endif
    }
  }

  // Write dK·scale and dV through Ss, four fragments at a time; keys ≥ nk get zeros (P was 0 for them).
  let krow0 = k0 + sg * 16u;
  for (var f0 = 0u; f0 < DF; f0 += 4u) {
    workgroupBarrier();
    stage_acc(sg, f0, 0u, dk0);
#if ${F2}
    stage_acc(sg, f0, 1u, dk1);
#endif
#if ${F3}
    stage_acc(sg, f0, 2u, dk2);
#endif
#if ${F4}
    stage_acc(sg, f0, 3u, dk3);
#endif
#if ${F5}
    stage_acc(sg, f0, 4u, dk4);
#endif
#if ${F6}
    stage_acc(sg, f0, 5u, dk5);
#endif
#if ${F7}
    stage_acc(sg, f0, 6u, dk6);
#endif
#if ${F8}
    stage_acc(sg, f0, 7u, dk7);
#endif
    workgroupBarrier();
    write_rows(0u, sg, lane, kbase, krow0, p.nk, f0, p.scale);
    workgroupBarrier();
    stage_acc(sg, f0, 0u, dv0);
#if ${F2}
    stage_acc(sg, f0, 1u, dv1);
#endif
#if ${F3}
    stage_acc(sg, f0, 2u, dv2);
#endif
#if ${F4}
    stage_acc(sg, f0, 3u, dv3);
#endif
#if ${F5}
    stage_acc(sg, f0, 4u, dv4);
#endif
#if ${F6}
    stage_acc(sg, f0, 5u, dv5);
#endif
#if ${F7}
    stage_acc(sg, f0, 6u, dv6);
#endif
#if ${F8}
    stage_acc(sg, f0, 7u, dv7);
#endif
    workgroupBarrier();
    write_rows(1u, sg, lane, kbase, krow0, p.nk, f0, 1.0);
  }
}

// ---- dq --------------------------------------------------------------------------------------------------

@compute @workgroup_size(THREADS)
fn dq(@builtin(workgroup_id) wid: vec3u,
      @builtin(local_invocation_index) lid: u32,
      @builtin(subgroup_id) sg: u32,
      @builtin(subgroup_invocation_id) lane: u32) {
  let bh = wid.y;
  let b = bh / p.heads;
  let q0 = wid.x * BT;
  let qbase = bh * p.nq * p.d;
  let kbase = bh * p.nk * p.d;
  let lbase = bh * p.nq;
  if (lid == 0u) { wg_nk = key_count(b); }
  let nk = workgroupUniformLoad(&wg_nk);

  var ra: array<vec4<u32>, PER>;   // the next K and V tiles' chunks (the first ones in flight while the outer tile is staged)
  var rb: array<vec4<u32>, PER>;
  for (var i = 0u; i < PER; i++) {
    ra[i] = fetch_chunk(1u, lid + i * THREADS, kbase, 0u, nk);
    rb[i] = fetch_chunk(2u, lid + i * THREADS, kbase, 0u, nk);
  }
  // This subgroup's 16 queries as left fragments of Q and dO, via the A / Bt tiles.
  stage(0u, 0u, lid, qbase, q0, p.nq);
  stage(1u, 3u, lid, qbase, q0, p.nq);
  zero_rows(sg, lane);
  workgroupBarrier();
  var qf0: subgroup_matrix_left<f16, 16, 16>;
  var qf1: subgroup_matrix_left<f16, 16, 16>;
  var qf2: subgroup_matrix_left<f16, 16, 16>;
  var qf3: subgroup_matrix_left<f16, 16, 16>;
  var qf4: subgroup_matrix_left<f16, 16, 16>;
  var qf5: subgroup_matrix_left<f16, 16, 16>;
  var qf6: subgroup_matrix_left<f16, 16, 16>;
  var qf7: subgroup_matrix_left<f16, 16, 16>;
  var df0: subgroup_matrix_left<f16, 16, 16>;
  var df1: subgroup_matrix_left<f16, 16, 16>;
  var df2: subgroup_matrix_left<f16, 16, 16>;
  var df3: subgroup_matrix_left<f16, 16, 16>;
  var df4: subgroup_matrix_left<f16, 16, 16>;
  var df5: subgroup_matrix_left<f16, 16, 16>;
  var df6: subgroup_matrix_left<f16, 16, 16>;
  var df7: subgroup_matrix_left<f16, 16, 16>;
  qf0 = rows_left(0u, sg, 0u);
  df0 = rows_left(1u, sg, 0u);
#if ${F2}
  qf1 = rows_left(0u, sg, 1u);
  df1 = rows_left(1u, sg, 1u);
#endif
#if ${F3}
  qf2 = rows_left(0u, sg, 2u);
  df2 = rows_left(1u, sg, 2u);
#endif
#if ${F4}
  qf3 = rows_left(0u, sg, 3u);
  df3 = rows_left(1u, sg, 3u);
#endif
#if ${F5}
  qf4 = rows_left(0u, sg, 4u);
  df4 = rows_left(1u, sg, 4u);
#endif
#if ${F6}
  qf5 = rows_left(0u, sg, 5u);
  df5 = rows_left(1u, sg, 5u);
#endif
#if ${F7}
  qf6 = rows_left(0u, sg, 6u);
  df6 = rows_left(1u, sg, 6u);
#endif
#if ${F8}
  qf7 = rows_left(0u, sg, 7u);
  df7 = rows_left(1u, sg, 7u);
#endif
  let zero = zero_acc(sg);
  var dqa0 = zero;
  var dqa1 = zero;
  var dqa2 = zero;
  var dqa3 = zero;
  var dqa4 = zero;
  var dqa5 = zero;
  var dqa6 = zero;
  var dqa7 = zero;

  let r = lane / 2u;          // query row of this subgroup's 16
  let h = lane % 2u;          // half of the 64 keys
  let qi = q0 + sg * 16u + r;
  var lse_r = 0.0;
  var delta_r = 0.0;
  if (qi < p.nq) {
    let ld = lse_delta[lbase + qi];
    lse_r = ld.x;
    delta_r = ld.y;
  }
  let srow = sg * 16u * BI + r * BI;
  let prow = sg * 16u * TS + r * TS;
  var pv: array<vec4<f32>, 8>;

  for (var k0 = 0u; k0 < nk; k0 += BI) {
    workgroupBarrier();
    for (var i = 0u; i < PER; i++) {
      put_chunk(0u, lid + i * THREADS, ra[i]);   // K tile
      put_chunk(1u, lid + i * THREADS, rb[i]);   // V tile
    }
    workgroupBarrier();
    // next K/V tile in flight during this tile (no `if`, as above)
    for (var i = 0u; i < PER; i++) {
      ra[i] = fetch_chunk(1u, lid + i * THREADS, kbase, k0 + BI, nk);
      rb[i] = fetch_chunk(2u, lid + i * THREADS, kbase, k0 + BI, nk);
    }

    // S = Q·Kᵀ → P.
    times_tile_t(0u, sg, qf0, qf1, qf2, qf3, qf4, qf5, qf6, qf7);
    workgroupBarrier();
    // (each softmax-side pass reads its 32 values into registers first, branch-free: see attention_tc.wgsl)
    var sv: array<vec4<f32>, 8>;
    for (var c = 0u; c < 8u; c++) { sv[c] = Ss[srow / 4u + quad(c, r, h)]; }
    for (var c = 0u; c < 8u; c++) {
      let cols = vec4<u32>(k0 + 4u * quad(c, r, h)) + vec4<u32>(0u, 1u, 2u, 3u);
      pv[c] = select(vec4<f32>(0.0), exp2(sv[c] * p.scale_log2 - lse_r), (cols < vec4<u32>(nk)) & vec4<bool>(qi < p.nq));
    }
    workgroupBarrier();
    // dP = dO·Vᵀ → dS = P∘(dP − Δ).
    times_tile_t(1u, sg, df0, df1, df2, df3, df4, df5, df6, df7);
    workgroupBarrier();
    for (var c = 0u; c < 8u; c++) { sv[c] = Ss[srow / 4u + quad(c, r, h)]; }
    for (var c = 0u; c < 8u; c++) { Ps[prow / 4u + quad(c, r, h)] = pack4(pv[c] * (sv[c] - delta_r)); }
    workgroupBarrier();
    // dQ += dS·K.
    for (var kk = 0u; kk < BI / 16u; kk++) {
      let pf = pfrag(sg, kk);
      dqa0 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 0u), dqa0);
#if ${F2}
      dqa1 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 1u), dqa1);
#endif
#if ${F3}
      dqa2 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 2u), dqa2);
#endif
#if ${F4}
      dqa3 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 3u), dqa3);
#endif
#if ${F5}
      dqa4 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 4u), dqa4);
#endif
#if ${F6}
      dqa5 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 5u), dqa5);
#endif
#if ${F7}
      dqa6 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 6u), dqa6);
#endif
#if ${F8}
      dqa7 = subgroupMatrixMultiplyAccumulate(pf, rows_right(0u, kk, 7u), dqa7);
#endif
    }
  }

  let qrow0 = q0 + sg * 16u;
  for (var f0 = 0u; f0 < DF; f0 += 4u) {
    workgroupBarrier();
    stage_acc(sg, f0, 0u, dqa0);
#if ${F2}
    stage_acc(sg, f0, 1u, dqa1);
#endif
#if ${F3}
    stage_acc(sg, f0, 2u, dqa2);
#endif
#if ${F4}
    stage_acc(sg, f0, 3u, dqa3);
#endif
#if ${F5}
    stage_acc(sg, f0, 4u, dqa4);
#endif
#if ${F6}
    stage_acc(sg, f0, 5u, dqa5);
#endif
#if ${F7}
    stage_acc(sg, f0, 6u, dqa6);
#endif
#if ${F8}
    stage_acc(sg, f0, 7u, dqa7);
#endif
    workgroupBarrier();
    write_rows(0u, sg, lane, qbase, qrow0, p.nq, f0, p.scale);
  }
}
