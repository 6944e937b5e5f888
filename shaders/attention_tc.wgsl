// Flash attention forward on tensor cores (subgroup matrices): f16 q/k/v, f32 softmax and accumulation.
// q [B, H, Nq, D], k/v [B, H, Nk, D] (head-major), o [B, H, Nq, D], lse [B, H, Nq] = log Σ_j exp(scale·q·k_j).
// A workgroup of 4 subgroups takes 64 query rows of one (b, h); each subgroup owns 16 rows. Per tile of 64
// keys: S = Q·Kᵀ with fragments (the Q fragments stay in registers), S goes to workgroup memory where lanes
// do the online softmax (two lanes per row), P (f16) is written over that subgroup's rows of the K tile, and P·V
// fragments are folded into per-lane f32 accumulators rescaled by the running max. The N×N score matrix never
// exists. D is zero-padded to DP (a multiple of 16, at most 128) in workgroup memory.
// MASK: keys at positions ≥ kv_len[b] (caption lengths of cross-attention) get zero weight.
// PACK (Nq ≤ 16 and Nk ≤ 16, e.g. STDiT's temporal attention over 16 frames): entry `packed` gives each
// subgroup its own (b, h) sequence, four per workgroup, in one 64-row tile (block-diagonal keys).
// VEC (D a multiple of 8): K/V tiles move as 16-byte chunks, and the next tile is prefetched into registers
// while the current one is used.
// Dawn/NVIDIA pitfalls measured on the H100 (keep them): subgroup-matrix variables declared inside loops are
// not reliably zeroed, so every accumulation starts with subgroupMatrixMultiply; and the scalar workgroup
// variable wg_nk must be declared before the tiles — declared after them, every result was wrong.
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

struct Params {
  nq: u32,
  nk: u32,
  d: u32,
  heads: u32,
  scale_log2: f32, // scale · log2(e): exponentials are exp2
  bh_total: u32,   // B·H (packed entry)
  groups_x: u32,   // width of a folded 2-D grid (packed entry)
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
const DF = DP / 16u;          // 16-wide fragments along D
const BQ = 64u;               // query rows per workgroup (16 per subgroup)
const BKV = 64u;              // keys per tile
const KS = max(DP, BKV) + 8u; // padded row stride (halves) of the Q/K/V tiles and of P
const THREADS = 128u;

var<workgroup> wg_nk: u32;                     // keys in use, read back as a uniform value
var<workgroup> Ks: array<f16, BKV * KS>;       // K tile (first the Q tile, later each subgroup's P rows)
var<workgroup> Vs: array<f16, BKV * KS>;
const SW = ${SW}u;             // row stride of Ss: (BKV or DP) + 4, the pad spreading rows over the banks
const PV_STEP = (SW - 4u) / 16u; // P·V fragments staged per pass
var<workgroup> Ss: array<f32, 4u * 16u * SW>;  // per subgroup: scores, then P·V fragments

// K/V tile staging (fetch/put with VEC, else stage): shaders/attention_tc_staging.wgsl, appended by the TS op.

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

  // Q tile → Ks (as a staging area) → this subgroup's fragments, kept in registers.
  for (var i = lid; i < BQ * DP; i += THREADS) {
    let r = i / DP;
    let c = i % DP;
    var x = f16(0.0);
    if (q0 + r < p.nq && c < p.d) { x = q[qbase + (q0 + r) * p.d + c]; }
    Ks[r * KS + c] = x;
  }
  workgroupBarrier();
  var qf: array<subgroup_matrix_left<f16, 16, 16>, DF>;
  for (var f = 0u; f < DF; f++) {
    qf[f] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, sg * 16u * KS + f * 16u, KS);
  }
  workgroupBarrier();   // Q fragments loaded: the K tile may overwrite the staging area

  // Lanes: row r of this subgroup's 16, half h of the keys and of each 16-wide D fragment.
  let r = lane / 2u;
  let h = lane % 2u;
  var m = -1.0e30;      // running max (log2 domain)
  var l = 0.0;          // running sum of exp2(s − m)
  var acc: array<f32, DF * 8u>;
  let srow = sg * 16u * SW + r * SW;

#if ${VEC}
  var rk: array<vec4<u32>, PER>;
  var rv: array<vec4<u32>, PER>;
  for (var i = 0u; i < PER; i++) {
    rk[i] = fetch(false, lid + i * THREADS, kbase, 0u, nk);
    rv[i] = fetch(true, lid + i * THREADS, kbase, 0u, nk);
  }
#endif
  // Barriers per tile: after staging, after S, after P, after each P·V staging pass. The previous tile's
  // readers of Ks / Vs (P·V fragments) and of Ss (accumulation) are all before one of these, so the next
  // tile may stage at once.
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

    // S = Q·Kᵀ for 16 rows × 64 keys.
    for (var j = 0u; j < BKV / 16u; j++) {
      let kt0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Ks, j * 16u * KS, KS);
      var s = subgroupMatrixMultiply<f32>(qf[0], kt0);
      for (var f = 1u; f < DF; f++) {
        let kt = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Ks, j * 16u * KS + f * 16u, KS);
        s = subgroupMatrixMultiplyAccumulate(qf[f], kt, s);
      }
      subgroupMatrixStore<row_major>(&Ss, sg * 16u * SW + j * 16u, s, SW);
    }
    workgroupBarrier();

    // Online softmax: each lane takes 32 keys of its row (interleaved with its partner lane, so the pair
    // reads neighbouring words); the row's two lanes combine by shuffle.
    var tmax = -1.0e30;
    for (var c = 0u; c < 32u; c++) {
      let key = 2u * ((c + r) % 32u) + h; // skewed by row: conflict-free Ss reads and P writes
      if (k0 + key < nk) { tmax = max(tmax, Ss[srow + key] * p.scale_log2); }
    }
    tmax = max(tmax, subgroupShuffleXor(tmax, 1u));
    let m_new = max(m, tmax);
    let alpha = exp2(m - m_new);
    var psum = 0.0;
    let prow = (sg * 16u + r) * KS;
    for (var c = 0u; c < 32u; c++) {
      let key = 2u * ((c + r) % 32u) + h; // skewed by row: conflict-free Ss reads and P writes
      var pv = 0.0;
      if (k0 + key < nk) { pv = exp2(Ss[srow + key] * p.scale_log2 - m_new); }
      psum += pv;
      Ks[prow + key] = f16(pv);
    }
    psum += subgroupShuffleXor(psum, 1u);
    l = l * alpha + psum;
    m = m_new;
    for (var i = 0u; i < DF * 8u; i++) { acc[i] *= alpha; }
    workgroupBarrier();

    // O += P·V, PV_STEP D fragments at a time through this subgroup's part of Ss.
    for (var f0 = 0u; f0 < DF; f0 += PV_STEP) {
      for (var f = f0; f < min(f0 + PV_STEP, DF); f++) {
        let pf0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, sg * 16u * KS, KS);
        let vf0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Vs, f * 16u, KS);
        var pv = subgroupMatrixMultiply<f32>(pf0, vf0);
        for (var kk = 1u; kk < BKV / 16u; kk++) {
          let pf = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, sg * 16u * KS + kk * 16u, KS);
          let vf = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Vs, kk * 16u * KS + f * 16u, KS);
          pv = subgroupMatrixMultiplyAccumulate(pf, vf, pv);
        }
        subgroupMatrixStore<row_major>(&Ss, sg * 16u * SW + (f - f0) * 16u, pv, SW);
      }
      workgroupBarrier();
      for (var f = f0; f < min(f0 + PV_STEP, DF); f++) {
        for (var c = 0u; c < 8u; c++) {
          acc[f * 8u + c] += Ss[srow + (f - f0) * 16u + 2u * c + h];
        }
      }
      if (f0 + PV_STEP < DF) { workgroupBarrier(); } // the next pass overwrites Ss
    }
  }

  let row = q0 + sg * 16u + r;
  if (row < p.nq) {
    let inv = 1.0 / l;
    for (var f = 0u; f < DF; f++) {
      for (var c = 0u; c < 8u; c++) {
        let d = f * 16u + 2u * c + h;
        if (d < p.d) {
#if ${OUT_F16}
          o[qbase + row * p.d + d] = f16(acc[f * 8u + c] * inv);
#else
          o[qbase + row * p.d + d] = acc[f * 8u + c] * inv;
#endif
        }
      }
    }
    if (h == 0u) { lse[bh * p.nq + row] = (m + log2(l)) * 0.6931471805599453; }
  }
}

#if ${PACK}
// Four short sequences per workgroup: subgroup sg owns sequence bh0 + sg; tile rows 16·sg .. 16·sg + 15 hold
// its queries (then its keys / values). Scores against the other subgroups' keys are computed and masked.
fn seq_rows(lid: u32, bh0: u32, which: u32) {
  for (var i = lid; i < BKV * DP; i += THREADS) {
    let r = i / DP;
    let c = i % DP;
    let bh = bh0 + r / 16u;
    let j = r % 16u;
    var x = f16(0.0);
    if (which == 0u) {
      if (bh < p.bh_total && j < p.nq && c < p.d) { x = q[(bh * p.nq + j) * p.d + c]; }
      Ks[r * KS + c] = x;
    } else if (which == 1u) {
      if (bh < p.bh_total && j < p.nk && c < p.d) { x = k[(bh * p.nk + j) * p.d + c]; }
      Ks[r * KS + c] = x;
    } else {
      if (bh < p.bh_total && j < p.nk && c < p.d) { x = v[(bh * p.nk + j) * p.d + c]; }
      Vs[r * KS + c] = x;
    }
  }
}

@compute @workgroup_size(THREADS)
fn packed(@builtin(workgroup_id) wid: vec3u,
          @builtin(local_invocation_index) lid: u32,
          @builtin(subgroup_id) sg: u32,
          @builtin(subgroup_invocation_id) lane: u32) {
  let bh0 = (wid.x + wid.y * p.groups_x) * 4u;
  let bh = bh0 + sg;
  seq_rows(lid, bh0, 0u);
  workgroupBarrier();
  var qf: array<subgroup_matrix_left<f16, 16, 16>, DF>;
  for (var f = 0u; f < DF; f++) {
    qf[f] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, sg * 16u * KS + f * 16u, KS);
  }
  workgroupBarrier();
  seq_rows(lid, bh0, 1u);
  seq_rows(lid, bh0, 2u);
  workgroupBarrier();
  for (var j = 0u; j < BKV / 16u; j++) {
    let kt0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Ks, j * 16u * KS, KS);
    var s = subgroupMatrixMultiply<f32>(qf[0], kt0);
    for (var f = 1u; f < DF; f++) {
      let kt = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Ks, j * 16u * KS + f * 16u, KS);
      s = subgroupMatrixMultiplyAccumulate(qf[f], kt, s);
    }
    subgroupMatrixStore<row_major>(&Ss, sg * 16u * SW + j * 16u, s, SW);
  }
  workgroupBarrier();

  // Softmax over this sequence's keys only (columns 16·sg .. 16·sg + nk): two lanes per row, 8 keys each.
  let r = lane / 2u;
  let h = lane % 2u;
  var nk = p.nk;
#if ${MASK}
  if (bh < p.bh_total) { nk = min(p.nk, kv_len[bh / p.heads]); }
#endif
  let srow = sg * 16u * SW + r * SW;
  var mx = -1.0e30;
  for (var c = 0u; c < 8u; c++) {
    let j = h * 8u + c;
    if (j < nk) { mx = max(mx, Ss[srow + sg * 16u + j] * p.scale_log2); }
  }
  mx = max(mx, subgroupShuffleXor(mx, 1u));
  var l = 0.0;
  let prow = (sg * 16u + r) * KS;
  workgroupBarrier();   // every subgroup has read K: P rows may overwrite it
  for (var c = 0u; c < BKV / 2u; c++) {
    let key = h * (BKV / 2u) + c;
    let j = key - sg * 16u;
    var pv = 0.0;
    if (key >= sg * 16u && j < 16u && j < nk) { pv = exp2(Ss[srow + key] * p.scale_log2 - mx); }
    l += pv;
    Ks[prow + key] = f16(pv);
  }
  l += subgroupShuffleXor(l, 1u);
  workgroupBarrier();

  // O = P·V through Ss, four D fragments at a time, written out directly.
  for (var f0 = 0u; f0 < DF; f0 += PV_STEP) {
    for (var f = f0; f < min(f0 + PV_STEP, DF); f++) {
      let pf0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, sg * 16u * KS, KS);
      let vf0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Vs, f * 16u, KS);
      var pv = subgroupMatrixMultiply<f32>(pf0, vf0);
      for (var kk = 1u; kk < BKV / 16u; kk++) {
        let pf = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, sg * 16u * KS + kk * 16u, KS);
        let vf = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Vs, kk * 16u * KS + f * 16u, KS);
        pv = subgroupMatrixMultiplyAccumulate(pf, vf, pv);
      }
      subgroupMatrixStore<row_major>(&Ss, sg * 16u * SW + (f - f0) * 16u, pv, SW);
    }
    workgroupBarrier();
    if (bh < p.bh_total && r < p.nq) {
      for (var f = f0; f < min(f0 + PV_STEP, DF); f++) {
        for (var c = 0u; c < 8u; c++) {
          let d = f * 16u + h * 8u + c;
          if (d < p.d) {
            let val = Ss[srow + (f - f0) * 16u + h * 8u + c] / l;
#if ${OUT_F16}
            o[(bh * p.nq + r) * p.d + d] = f16(val);
#else
            o[(bh * p.nq + r) * p.d + d] = val;
#endif
          }
        }
      }
    }
    workgroupBarrier();
  }
  if (bh < p.bh_total && r < p.nq && h == 0u) { lse[bh * p.nq + r] = (mx + log2(l)) * 0.6931471805599453; }
}
#endif
