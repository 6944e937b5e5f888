// Flash attention forward on tensor cores in two passes over the keys (opt-in: ops/attention_tc.ts twoPass).
// Same bindings, parameters and conventions as attention_tc.wgsl's main: f16 q/k/v [B, H, N, D] (head-major),
// o [B, H, Nq, D] f16/f32, lse [B, H, Nq] = log Σ_j exp(scale·q·k_j) (natural log, scale included).
// A workgroup of 4 subgroups takes 64 query rows of one (b, h); each subgroup owns 16 rows, its Q fragments
// held in registers for both passes.
//   Pass 1, per 64-key tile: S = Q·Kᵀ (MMAs) → workgroup memory → lanes update the row max m and the row sum
//   l = Σ exp2(s − m) online (two lanes per row). Only K is staged; no P·V.
//   Pass 2, per tile: S again; lanes write P = exp2(s − m) (f16, ≤ 1: m is final) over their subgroup's rows
//   of the K tile; O += P·V accumulates directly in subgroup_matrix_result accumulators (one per 16-wide D
//   fragment) across all tiles: m is final, so nothing is rescaled and no per-tile P·V staging is needed.
//   Epilogue: O goes through workgroup memory once, lanes scale it by 1/l and write it with the bounds.
// This trades a second Q·Kᵀ (1.5× the MMAs) for the old kernel's per-tile P·V store/reload.
// MASK: keys at positions ≥ kv_len[b] get zero weight. VEC (D a multiple of 8): K/V tiles move as 16-byte
// chunks and the next tile is prefetched into registers (the last tile of pass 1 prefetches pass 2's first).
// No PACK entry: the packed tiny-sequence kernel stays in attention_tc.wgsl.
// R2 (ops/attention_tc.ts twoPassRows 32): 2 subgroups of 32 query rows each (still 64 rows per workgroup, so
// the workgroup memory is the same; 128 rows would need 128 rows of f32 score staging, over 48 KiB at D 72).
// Each subgroup holds two row fragments a (rows 0..15) and b (16..31), and every K or V fragment it loads
// from workgroup memory feeds two MMAs; lanes keep the statistics of rows r and r + 16. QR 16 (R2 false)
// renders the same statements as before R2 existed (only blank lines differ).
// Dawn/NVIDIA pitfalls kept from attention_tc.wgsl: accumulators are declared once at function scope (zero)
// and every per-tile product starts with subgroupMatrixMultiply (subgroup-matrix variables declared inside
// loops are not reliably zeroed); named fragments/accumulators rather than arrays indexed in loops (slower on
// NVIDIA, see matmul_tc.wgsl); wg_nk declared before the tiles.
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

struct Params {
  nq: u32,
  nk: u32,
  d: u32,
  heads: u32,
  scale_log2: f32, // scale · log2(e): exponentials are exp2
  bh_total: u32,   // unused here (layout shared with attention_tc.wgsl)
  groups_x: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f16>;
#if ${VEC}
@group(0) @binding(1) var<storage, read> k: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<u32>>;
#else
@group(0) @binding(1) var<storage, read> k: array<f16>;
@group(0) @binding(2) var<storage, read> v: array<f16>;
#endif
#if ${OUT_F16}
@group(0) @binding(3) var<storage, read_write> o: array<f16>;
#else
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
#if ${MASK}
@group(0) @binding(5) var<storage, read> kv_len: array<u32>;
#endif
@group(0) @binding(6) var<uniform> p: Params;

const DP = ${DP}u;            // head dim padded to a multiple of 16
const DF = DP / 16u;          // 16-wide fragments along D (1..8; F2..F8 say which exist)
const BQ = 64u;               // query rows per workgroup (16 per subgroup)
const BKV = 64u;              // keys per tile
const KS = max(DP, BKV) + 8u; // padded row stride (halves) of the Q/K/V tiles and of P
#if ${R2}
const THREADS = 64u;          // 2 subgroups of 32 rows
#else
const THREADS = 128u;
#endif

var<workgroup> wg_nk: u32;                     // keys in use, read back as a uniform value
var<workgroup> Ks: array<f16, BKV * KS>;       // K tile (first the Q tile; in pass 2 also each subgroup's P rows)
var<workgroup> Vs: array<f16, BKV * KS>;
const SW = ${SW}u;             // row stride of Ss: (BKV or DP) + 4
const O_STEP = (SW - 4u) / 16u; // O fragments staged per epilogue pass
var<workgroup> Ss: array<f32, 4u * 16u * SW>;  // per subgroup: scores, finally O

// K/V tile staging (fetch/put with VEC, else stage): shaders/attention_tc_staging.wgsl, appended by the TS op.

fn kfrag(j: u32, f: u32) -> subgroup_matrix_right<f16, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Ks, j * 16u * KS + f * 16u, KS);
}

fn vfrag(kk: u32, f: u32) -> subgroup_matrix_right<f16, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Vs, kk * 16u * KS + f * 16u, KS);
}

fn qfrag(sg: u32, f: u32) -> subgroup_matrix_left<f16, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, sg * 16u * KS + f * 16u, KS);
}

// S = Q·Kᵀ for this subgroup's 16 rows × the 64 keys of the staged tile, stored to its rows of Ss.
fn scores(sg: u32,
          q0: subgroup_matrix_left<f16, 16, 16>, q1: subgroup_matrix_left<f16, 16, 16>,
          q2: subgroup_matrix_left<f16, 16, 16>, q3: subgroup_matrix_left<f16, 16, 16>,
          q4: subgroup_matrix_left<f16, 16, 16>, q5: subgroup_matrix_left<f16, 16, 16>,
          q6: subgroup_matrix_left<f16, 16, 16>, q7: subgroup_matrix_left<f16, 16, 16>) {
  for (var j = 0u; j < BKV / 16u; j++) {
    var s = subgroupMatrixMultiply<f32>(q0, kfrag(j, 0u));
#if ${F2}
    s = subgroupMatrixMultiplyAccumulate(q1, kfrag(j, 1u), s);
#endif
#if ${F3}
    s = subgroupMatrixMultiplyAccumulate(q2, kfrag(j, 2u), s);
#endif
#if ${F4}
    s = subgroupMatrixMultiplyAccumulate(q3, kfrag(j, 3u), s);
#endif
#if ${F5}
    s = subgroupMatrixMultiplyAccumulate(q4, kfrag(j, 4u), s);
#endif
#if ${F6}
    s = subgroupMatrixMultiplyAccumulate(q5, kfrag(j, 5u), s);
#endif
#if ${F7}
    s = subgroupMatrixMultiplyAccumulate(q6, kfrag(j, 6u), s);
#endif
#if ${F8}
    s = subgroupMatrixMultiplyAccumulate(q7, kfrag(j, 7u), s);
#endif
    subgroupMatrixStore<row_major>(&Ss, sg * 16u * SW + j * 16u, s, SW);
  }
}

// Epilogue staging: O fragment i goes to column (i − f0)·16 of this subgroup's Ss rows when it is in this pass.
fn stage_o(sg: u32, f0: u32, i: u32, acc: subgroup_matrix_result<f32, 16, 16>) {
  if (i >= f0 && i < f0 + O_STEP) {
    subgroupMatrixStore<row_major>(&Ss, sg * 16u * SW + (i - f0) * 16u, acc, SW);
  }
}
#if ${R2}

// QR 32: Q fragment f of the 16 rows at row0 of the staged Q tile.
fn qfrag2(row0: u32, f: u32) -> subgroup_matrix_left<f16, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, row0 * KS + f * 16u, KS);
}

// QR 32: S for this subgroup's 32 rows (fragments a and b) × the 64 keys; each K fragment feeds two MMAs.
fn scores2(sg: u32,
           a0: subgroup_matrix_left<f16, 16, 16>, a1: subgroup_matrix_left<f16, 16, 16>,
           a2: subgroup_matrix_left<f16, 16, 16>, a3: subgroup_matrix_left<f16, 16, 16>,
           a4: subgroup_matrix_left<f16, 16, 16>, a5: subgroup_matrix_left<f16, 16, 16>,
           a6: subgroup_matrix_left<f16, 16, 16>, a7: subgroup_matrix_left<f16, 16, 16>,
           b0: subgroup_matrix_left<f16, 16, 16>, b1: subgroup_matrix_left<f16, 16, 16>,
           b2: subgroup_matrix_left<f16, 16, 16>, b3: subgroup_matrix_left<f16, 16, 16>,
           b4: subgroup_matrix_left<f16, 16, 16>, b5: subgroup_matrix_left<f16, 16, 16>,
           b6: subgroup_matrix_left<f16, 16, 16>, b7: subgroup_matrix_left<f16, 16, 16>) {
  for (var j = 0u; j < BKV / 16u; j++) {
    let kf0 = kfrag(j, 0u);
    var sa = subgroupMatrixMultiply<f32>(a0, kf0);
    var sb = subgroupMatrixMultiply<f32>(b0, kf0);
#if ${F2}
    let kf1 = kfrag(j, 1u);
    sa = subgroupMatrixMultiplyAccumulate(a1, kf1, sa);
    sb = subgroupMatrixMultiplyAccumulate(b1, kf1, sb);
#endif
#if ${F3}
    let kf2 = kfrag(j, 2u);
    sa = subgroupMatrixMultiplyAccumulate(a2, kf2, sa);
    sb = subgroupMatrixMultiplyAccumulate(b2, kf2, sb);
#endif
#if ${F4}
    let kf3 = kfrag(j, 3u);
    sa = subgroupMatrixMultiplyAccumulate(a3, kf3, sa);
    sb = subgroupMatrixMultiplyAccumulate(b3, kf3, sb);
#endif
#if ${F5}
    let kf4 = kfrag(j, 4u);
    sa = subgroupMatrixMultiplyAccumulate(a4, kf4, sa);
    sb = subgroupMatrixMultiplyAccumulate(b4, kf4, sb);
#endif
#if ${F6}
    let kf5 = kfrag(j, 5u);
    sa = subgroupMatrixMultiplyAccumulate(a5, kf5, sa);
    sb = subgroupMatrixMultiplyAccumulate(b5, kf5, sb);
#endif
#if ${F7}
    let kf6 = kfrag(j, 6u);
    sa = subgroupMatrixMultiplyAccumulate(a6, kf6, sa);
    sb = subgroupMatrixMultiplyAccumulate(b6, kf6, sb);
#endif
#if ${F8}
    let kf7 = kfrag(j, 7u);
    sa = subgroupMatrixMultiplyAccumulate(a7, kf7, sa);
    sb = subgroupMatrixMultiplyAccumulate(b7, kf7, sb);
#endif
    subgroupMatrixStore<row_major>(&Ss, sg * 32u * SW + j * 16u, sa, SW);
    subgroupMatrixStore<row_major>(&Ss, (sg * 32u + 16u) * SW + j * 16u, sb, SW);
  }
}

// QR 32, pass 1: one row's (m, l) updated with the tile's scores at Ss[srow ..] (lanes as in main).
fn row_stats(srow: u32, k0: u32, nk: u32, r: u32, h: u32, ml: vec2<f32>) -> vec2<f32> {
  var tmax = -1.0e30;
  for (var c = 0u; c < 32u; c++) {
    let key = 2u * ((c + r) % 32u) + h; // skewed by row: conflict-free Ss reads
    if (k0 + key < nk) { tmax = max(tmax, Ss[srow + key] * p.scale_log2); }
  }
  tmax = max(tmax, subgroupShuffleXor(tmax, 1u));
  let m_new = max(ml.x, tmax);
  var psum = 0.0;
  for (var c = 0u; c < 32u; c++) {
    let key = 2u * ((c + r) % 32u) + h;
    if (k0 + key < nk) { psum += exp2(Ss[srow + key] * p.scale_log2 - m_new); }
  }
  psum += subgroupShuffleXor(psum, 1u);
  return vec2<f32>(m_new, ml.y * exp2(ml.x - m_new) + psum);
}

// QR 32, pass 2: one row of P = exp2(s − m) (f16) from Ss[srow ..] to Ks[prow ..].
fn write_p(srow: u32, prow: u32, k0: u32, nk: u32, r: u32, h: u32, m: f32) {
  for (var c = 0u; c < 32u; c++) {
    let key = 2u * ((c + r) % 32u) + h; // skewed by row: conflict-free Ss reads and P writes
    var pv = 0.0;
    if (k0 + key < nk) { pv = exp2(Ss[srow + key] * p.scale_log2 - m); }
    Ks[prow + key] = f16(pv);
  }
}

// QR 32 epilogue: O fragment i to column (i − f0)·16 of the 16 Ss rows at row0 when it is in this pass.
fn stage_o2(row0: u32, f0: u32, i: u32, acc: subgroup_matrix_result<f32, 16, 16>) {
  if (i >= f0 && i < f0 + O_STEP) {
    subgroupMatrixStore<row_major>(&Ss, row0 * SW + (i - f0) * 16u, acc, SW);
  }
}

// QR 32 epilogue: this lane's half of one output row from Ss[srow ..], scaled by inv, bounds-checked.
fn write_o(qbase: u32, row: u32, srow: u32, f0: u32, h: u32, inv: f32) {
  if (row < p.nq) {
    for (var f = f0; f < min(f0 + O_STEP, DF); f++) {
      for (var c = 0u; c < 8u; c++) {
        let d = f * 16u + 2u * c + h;
        if (d < p.d) {
#if ${OUT_F16}
          o[qbase + row * p.d + d] = f16(Ss[srow + (f - f0) * 16u + 2u * c + h] * inv);
#else
          o[qbase + row * p.d + d] = Ss[srow + (f - f0) * 16u + 2u * c + h] * inv;
#endif
        }
      }
    }
  }
}
#endif

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  let bh = wid.y;
  let b = bh / p.heads;
  let q0 = wid.x * BQ;
  let qbase = bh * p.nq * p.d;
  let kbase = bh * p.nk * p.d;
  if (lid == 0u) {
#if ${MASK}
    wg_nk = min(p.nk, kv_len[b]);
#else
    wg_nk = p.nk;
#endif
  }
  let nk = workgroupUniformLoad(&wg_nk);

  // Q tile → Ks (as a staging area) → this subgroup's fragments, kept in registers for both passes.
  for (var i = lid; i < BQ * DP; i += THREADS) {
    let r = i / DP;
    let c = i % DP;
    var x = f16(0.0);
    if (q0 + r < p.nq && c < p.d) { x = q[qbase + (q0 + r) * p.d + c]; }
    Ks[r * KS + c] = x;
  }
  workgroupBarrier();
  var qf0: subgroup_matrix_left<f16, 16, 16>;
  var qf1: subgroup_matrix_left<f16, 16, 16>;
  var qf2: subgroup_matrix_left<f16, 16, 16>;
  var qf3: subgroup_matrix_left<f16, 16, 16>;
  var qf4: subgroup_matrix_left<f16, 16, 16>;
  var qf5: subgroup_matrix_left<f16, 16, 16>;
  var qf6: subgroup_matrix_left<f16, 16, 16>;
  var qf7: subgroup_matrix_left<f16, 16, 16>;
#if ${R2}
  var qg0: subgroup_matrix_left<f16, 16, 16>;
  var qg1: subgroup_matrix_left<f16, 16, 16>;
  var qg2: subgroup_matrix_left<f16, 16, 16>;
  var qg3: subgroup_matrix_left<f16, 16, 16>;
  var qg4: subgroup_matrix_left<f16, 16, 16>;
  var qg5: subgroup_matrix_left<f16, 16, 16>;
  var qg6: subgroup_matrix_left<f16, 16, 16>;
  var qg7: subgroup_matrix_left<f16, 16, 16>;
  qf0 = qfrag2(sg * 32u, 0u);
  qg0 = qfrag2(sg * 32u + 16u, 0u);
#if ${F2}
  qf1 = qfrag2(sg * 32u, 1u);
  qg1 = qfrag2(sg * 32u + 16u, 1u);
#endif
#if ${F3}
  qf2 = qfrag2(sg * 32u, 2u);
  qg2 = qfrag2(sg * 32u + 16u, 2u);
#endif
#if ${F4}
  qf3 = qfrag2(sg * 32u, 3u);
  qg3 = qfrag2(sg * 32u + 16u, 3u);
#endif
#if ${F5}
  qf4 = qfrag2(sg * 32u, 4u);
  qg4 = qfrag2(sg * 32u + 16u, 4u);
#endif
#if ${F6}
  qf5 = qfrag2(sg * 32u, 5u);
  qg5 = qfrag2(sg * 32u + 16u, 5u);
#endif
#if ${F7}
  qf6 = qfrag2(sg * 32u, 6u);
  qg6 = qfrag2(sg * 32u + 16u, 6u);
#endif
#if ${F8}
  qf7 = qfrag2(sg * 32u, 7u);
  qg7 = qfrag2(sg * 32u + 16u, 7u);
#endif
#else
  qf0 = qfrag(sg, 0u);
#if ${F2}
  qf1 = qfrag(sg, 1u);
#endif
#if ${F3}
  qf2 = qfrag(sg, 2u);
#endif
#if ${F4}
  qf3 = qfrag(sg, 3u);
#endif
#if ${F5}
  qf4 = qfrag(sg, 4u);
#endif
#if ${F6}
  qf5 = qfrag(sg, 5u);
#endif
#if ${F7}
  qf6 = qfrag(sg, 6u);
#endif
#if ${F8}
  qf7 = qfrag(sg, 7u);
#endif
#endif
  // O accumulators: function scope, outside every loop (zero-initialised), one per D fragment.
  var o0: subgroup_matrix_result<f32, 16, 16>;
  var o1: subgroup_matrix_result<f32, 16, 16>;
  var o2: subgroup_matrix_result<f32, 16, 16>;
  var o3: subgroup_matrix_result<f32, 16, 16>;
  var o4: subgroup_matrix_result<f32, 16, 16>;
  var o5: subgroup_matrix_result<f32, 16, 16>;
  var o6: subgroup_matrix_result<f32, 16, 16>;
  var o7: subgroup_matrix_result<f32, 16, 16>;
#if ${R2}
  var ob0: subgroup_matrix_result<f32, 16, 16>;
  var ob1: subgroup_matrix_result<f32, 16, 16>;
  var ob2: subgroup_matrix_result<f32, 16, 16>;
  var ob3: subgroup_matrix_result<f32, 16, 16>;
  var ob4: subgroup_matrix_result<f32, 16, 16>;
  var ob5: subgroup_matrix_result<f32, 16, 16>;
  var ob6: subgroup_matrix_result<f32, 16, 16>;
  var ob7: subgroup_matrix_result<f32, 16, 16>;
#endif
  workgroupBarrier();   // Q fragments loaded: the K tile may overwrite the staging area

  // Lanes: row r of this subgroup's 16, half h of the keys (and of each 16-wide D fragment in the epilogue).
  let r = lane / 2u;
  let h = lane % 2u;
  var m = -1.0e30;      // running, then final, row max (log2 domain)
  var l = 0.0;          // running, then final, sum of exp2(s − m)
#if ${R2}
  // QR 32: the lane also keeps row r + 16 (fragment b): its max mb, sum lb, Ss row srow_b, P row prow_b.
  var mb = -1.0e30;
  var lb = 0.0;
  let srow = sg * 32u * SW + r * SW;
  let prow = (sg * 32u + r) * KS;
  let srow_b = srow + 16u * SW;
  let prow_b = prow + 16u * KS;
#else
  let srow = sg * 16u * SW + r * SW;
  let prow = (sg * 16u + r) * KS;
#endif

#if ${VEC}
  var rk: array<vec4<u32>, PER>;
  var rv: array<vec4<u32>, PER>;
  for (var i = 0u; i < PER; i++) { rk[i] = fetch(false, lid + i * THREADS, kbase, 0u, nk); }
#endif
  // ---- pass 1: row max and row sum. Barriers per tile: after staging K, after S. The readers of Ks (S
  // fragments) are before the second, the readers of Ss (lanes) before the next tile's first.
  for (var k0 = 0u; k0 < nk; k0 += BKV) {
#if ${VEC}
    for (var i = 0u; i < PER; i++) { put(false, lid + i * THREADS, rk[i]); }
    workgroupBarrier();
    if (k0 + BKV < nk) {
      for (var i = 0u; i < PER; i++) { rk[i] = fetch(false, lid + i * THREADS, kbase, k0 + BKV, nk); }
    } else {
      // last tile: prefetch pass 2's first K and V tiles
      for (var i = 0u; i < PER; i++) {
        rk[i] = fetch(false, lid + i * THREADS, kbase, 0u, nk);
        rv[i] = fetch(true, lid + i * THREADS, kbase, 0u, nk);
      }
    }
#else
    stage(false, lid, kbase, k0, nk);
    workgroupBarrier();
#endif
#if ${R2}
    scores2(sg, qf0, qf1, qf2, qf3, qf4, qf5, qf6, qf7, qg0, qg1, qg2, qg3, qg4, qg5, qg6, qg7);
#else
    scores(sg, qf0, qf1, qf2, qf3, qf4, qf5, qf6, qf7);
#endif
    workgroupBarrier();

#if ${R2}
    let ma = row_stats(srow, k0, nk, r, h, vec2<f32>(m, l));
    let mlb = row_stats(srow_b, k0, nk, r, h, vec2<f32>(mb, lb));
    m = ma.x;
    l = ma.y;
    mb = mlb.x;
    lb = mlb.y;
#else
    var tmax = -1.0e30;
    for (var c = 0u; c < 32u; c++) {
      let key = 2u * ((c + r) % 32u) + h; // skewed by row: conflict-free Ss reads
      if (k0 + key < nk) { tmax = max(tmax, Ss[srow + key] * p.scale_log2); }
    }
    tmax = max(tmax, subgroupShuffleXor(tmax, 1u));
    let m_new = max(m, tmax);
    var psum = 0.0;
    for (var c = 0u; c < 32u; c++) {
      let key = 2u * ((c + r) % 32u) + h;
      if (k0 + key < nk) { psum += exp2(Ss[srow + key] * p.scale_log2 - m_new); }
    }
    psum += subgroupShuffleXor(psum, 1u);
    l = l * exp2(m - m_new) + psum;
    m = m_new;
#endif
  }

  // ---- pass 2: O = Σ_tiles P·V with the final m. Barriers per tile: after staging K/V, after S (every
  // subgroup is done with K: P may overwrite its rows), after P, after P·V (the next tile may be staged).
  for (var k0 = 0u; k0 < nk; k0 += BKV) {
#if ${VEC}
    for (var i = 0u; i < PER; i++) {
      put(false, lid + i * THREADS, rk[i]);
      put(true, lid + i * THREADS, rv[i]);
    }
    workgroupBarrier();
    if (k0 + BKV < nk) {
      for (var i = 0u; i < PER; i++) {
        rk[i] = fetch(false, lid + i * THREADS, kbase, k0 + BKV, nk);
        rv[i] = fetch(true, lid + i * THREADS, kbase, k0 + BKV, nk);
      }
    }
#else
    stage(false, lid, kbase, k0, nk);
    stage(true, lid, kbase, k0, nk);
    workgroupBarrier();
#endif
#if ${R2}
    scores2(sg, qf0, qf1, qf2, qf3, qf4, qf5, qf6, qf7, qg0, qg1, qg2, qg3, qg4, qg5, qg6, qg7);
#else
    scores(sg, qf0, qf1, qf2, qf3, qf4, qf5, qf6, qf7);
#endif
    workgroupBarrier();

#if ${R2}
    write_p(srow, prow, k0, nk, r, h, m);
    write_p(srow_b, prow_b, k0, nk, r, h, mb);
#else
    for (var c = 0u; c < 32u; c++) {
      let key = 2u * ((c + r) % 32u) + h; // skewed by row: conflict-free Ss reads and P writes
      var pv = 0.0;
      if (k0 + key < nk) { pv = exp2(Ss[srow + key] * p.scale_log2 - m); }
      Ks[prow + key] = f16(pv);
    }
#endif
    workgroupBarrier();

    // O += P·V: each P fragment is loaded once and multiplies every V fragment of its 16 keys.
#if ${R2}
    // QR 32: each V fragment is loaded once and multiplies both P fragments (rows a and b).
    for (var kk = 0u; kk < BKV / 16u; kk++) {
      let pa = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, sg * 32u * KS + kk * 16u, KS);
      let pb = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, (sg * 32u + 16u) * KS + kk * 16u, KS);
      let v0 = vfrag(kk, 0u);
      o0 = subgroupMatrixMultiplyAccumulate(pa, v0, o0);
      ob0 = subgroupMatrixMultiplyAccumulate(pb, v0, ob0);
#if ${F2}
      let v1 = vfrag(kk, 1u);
      o1 = subgroupMatrixMultiplyAccumulate(pa, v1, o1);
      ob1 = subgroupMatrixMultiplyAccumulate(pb, v1, ob1);
#endif
#if ${F3}
      let v2 = vfrag(kk, 2u);
      o2 = subgroupMatrixMultiplyAccumulate(pa, v2, o2);
      ob2 = subgroupMatrixMultiplyAccumulate(pb, v2, ob2);
#endif
#if ${F4}
      let v3 = vfrag(kk, 3u);
      o3 = subgroupMatrixMultiplyAccumulate(pa, v3, o3);
      ob3 = subgroupMatrixMultiplyAccumulate(pb, v3, ob3);
#endif
#if ${F5}
      let v4 = vfrag(kk, 4u);
      o4 = subgroupMatrixMultiplyAccumulate(pa, v4, o4);
      ob4 = subgroupMatrixMultiplyAccumulate(pb, v4, ob4);
#endif
#if ${F6}
      let v5 = vfrag(kk, 5u);
      o5 = subgroupMatrixMultiplyAccumulate(pa, v5, o5);
      ob5 = subgroupMatrixMultiplyAccumulate(pb, v5, ob5);
#endif
#if ${F7}
      let v6 = vfrag(kk, 6u);
      o6 = subgroupMatrixMultiplyAccumulate(pa, v6, o6);
      ob6 = subgroupMatrixMultiplyAccumulate(pb, v6, ob6);
#endif
#if ${F8}
      let v7 = vfrag(kk, 7u);
      o7 = subgroupMatrixMultiplyAccumulate(pa, v7, o7);
      ob7 = subgroupMatrixMultiplyAccumulate(pb, v7, ob7);
#endif
    }
#else
    for (var kk = 0u; kk < BKV / 16u; kk++) {
      let pf = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, sg * 16u * KS + kk * 16u, KS);
      o0 = subgroupMatrixMultiplyAccumulate(pf, vfrag(kk, 0u), o0);
#if ${F2}
      o1 = subgroupMatrixMultiplyAccumulate(pf, vfrag(kk, 1u), o1);
#endif
#if ${F3}
      o2 = subgroupMatrixMultiplyAccumulate(pf, vfrag(kk, 2u), o2);
#endif
#if ${F4}
      o3 = subgroupMatrixMultiplyAccumulate(pf, vfrag(kk, 3u), o3);
#endif
#if ${F5}
      o4 = subgroupMatrixMultiplyAccumulate(pf, vfrag(kk, 4u), o4);
#endif
#if ${F6}
      o5 = subgroupMatrixMultiplyAccumulate(pf, vfrag(kk, 5u), o5);
#endif
#if ${F7}
      o6 = subgroupMatrixMultiplyAccumulate(pf, vfrag(kk, 6u), o6);
#endif
#if ${F8}
      o7 = subgroupMatrixMultiplyAccumulate(pf, vfrag(kk, 7u), o7);
#endif
    }
#endif
    workgroupBarrier();
  }

#if ${R2}
  // ---- epilogue (QR 32): rows a then b of each pass through this subgroup's 32 Ss rows, scaled, bounds-checked.
  let row = q0 + sg * 32u + r;
  let inv = 1.0 / l;
  let inv_b = 1.0 / lb;
  for (var f0 = 0u; f0 < DF; f0 += O_STEP) {
    stage_o2(sg * 32u, f0, 0u, o0);
    stage_o2(sg * 32u + 16u, f0, 0u, ob0);
#if ${F2}
    stage_o2(sg * 32u, f0, 1u, o1);
    stage_o2(sg * 32u + 16u, f0, 1u, ob1);
#endif
#if ${F3}
    stage_o2(sg * 32u, f0, 2u, o2);
    stage_o2(sg * 32u + 16u, f0, 2u, ob2);
#endif
#if ${F4}
    stage_o2(sg * 32u, f0, 3u, o3);
    stage_o2(sg * 32u + 16u, f0, 3u, ob3);
#endif
#if ${F5}
    stage_o2(sg * 32u, f0, 4u, o4);
    stage_o2(sg * 32u + 16u, f0, 4u, ob4);
#endif
#if ${F6}
    stage_o2(sg * 32u, f0, 5u, o5);
    stage_o2(sg * 32u + 16u, f0, 5u, ob5);
#endif
#if ${F7}
    stage_o2(sg * 32u, f0, 6u, o6);
    stage_o2(sg * 32u + 16u, f0, 6u, ob6);
#endif
#if ${F8}
    stage_o2(sg * 32u, f0, 7u, o7);
    stage_o2(sg * 32u + 16u, f0, 7u, ob7);
#endif
    workgroupBarrier();
    write_o(qbase, row, srow, f0, h, inv);
    write_o(qbase, row + 16u, srow_b, f0, h, inv_b);
    if (f0 + O_STEP < DF) { workgroupBarrier(); } // the next pass overwrites Ss
  }
  if (row < p.nq && h == 0u) { lse[bh * p.nq + row] = (m + log2(l)) * 0.6931471805599453; }
  if (row + 16u < p.nq && h == 0u) { lse[bh * p.nq + row + 16u] = (mb + log2(lb)) * 0.6931471805599453; }
#else
  // ---- epilogue: O through this subgroup's Ss rows (O_STEP fragments per pass), scaled by 1/l, bounds-checked.
  let row = q0 + sg * 16u + r;
  let inv = 1.0 / l;
  for (var f0 = 0u; f0 < DF; f0 += O_STEP) {
    stage_o(sg, f0, 0u, o0);
#if ${F2}
    stage_o(sg, f0, 1u, o1);
#endif
#if ${F3}
    stage_o(sg, f0, 2u, o2);
#endif
#if ${F4}
    stage_o(sg, f0, 3u, o3);
#endif
#if ${F5}
    stage_o(sg, f0, 4u, o4);
#endif
#if ${F6}
    stage_o(sg, f0, 5u, o5);
#endif
#if ${F7}
    stage_o(sg, f0, 6u, o6);
#endif
#if ${F8}
    stage_o(sg, f0, 7u, o7);
#endif
    workgroupBarrier();
    if (row < p.nq) {
      for (var f = f0; f < min(f0 + O_STEP, DF); f++) {
        for (var c = 0u; c < 8u; c++) {
          let d = f * 16u + 2u * c + h;
          if (d < p.d) {
#if ${OUT_F16}
            o[qbase + row * p.d + d] = f16(Ss[srow + (f - f0) * 16u + 2u * c + h] * inv);
#else
            o[qbase + row * p.d + d] = Ss[srow + (f - f0) * 16u + 2u * c + h] * inv;
#endif
          }
        }
      }
    }
    if (f0 + O_STEP < DF) { workgroupBarrier(); } // the next pass overwrites Ss
  }
  if (row < p.nq && h == 0u) { lse[bh * p.nq + row] = (m + log2(l)) * 0.6931471805599453; }
#endif
}
