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
// Lanes: two per row of 16, each taking 32 of the 64 columns in an order skewed by the row, so that the
// lanes' simultaneous Ss reads (rows 64 floats apart) fall in different banks.
// Pitfalls (H100): scalar workgroup variables are declared before the tiles, and every fragment accumulation
// starts with subgroupMatrixMultiply (subgroup-matrix variables declared in loops are not reliably zeroed).
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

@group(0) @binding(0) var<storage, read> q: array<f16>;
@group(0) @binding(1) var<storage, read> k: array<f16>;
@group(0) @binding(2) var<storage, read> v: array<f16>;
@group(0) @binding(3) var<storage, read> dout: array<f16>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> delta: array<f32>;
#if ${OUT_F16}
@group(0) @binding(6) var<storage, read_write> g0: array<f16>; // dkdv: dK; dq: dQ
@group(0) @binding(7) var<storage, read_write> g1: array<f16>; // dkdv: dV
#else
@group(0) @binding(6) var<storage, read_write> g0: array<f32>;
@group(0) @binding(7) var<storage, read_write> g1: array<f32>;
#endif
#if ${MASK}
@group(0) @binding(8) var<storage, read> kv_len: array<u32>;
#endif
@group(0) @binding(9) var<uniform> p: Params;

const DP = ${DP}u;
const DF = DP / 16u;
const BT = 64u;               // rows of the outer tile (keys for dkdv, queries for dq); 16 per subgroup
const BI = 64u;               // rows of the inner tile
const KS = max(DP, BI) + 8u;  // row stride (halves) of the staged tiles
const TS = BI + 8u;           // row stride (halves) of P / dS
const THREADS = 128u;

var<workgroup> wg_nk: u32;
var<workgroup> A: array<f16, BI * KS>;      // inner tile 1 (dkdv: Q, dq: K); first the outer-tile rows
var<workgroup> Bt: array<f16, BI * KS>;     // inner tile 2 (dkdv: dO, dq: V)
var<workgroup> Ss: array<f32, 4u * 16u * BI>; // per subgroup: scores, then dP, then output staging
var<workgroup> Ps: array<f16, 4u * 16u * TS>; // per subgroup: P (or Pᵀ), then dS (or dSᵀ)

fn key_count(b: u32) -> u32 {
#if ${MASK}
  return min(p.nk, kv_len[b]);
#else
  return p.nk;
#endif
}

// Stages rows [r0, r0 + 64) of a [rows, D] matrix from `src` (0 q, 1 k, 2 v, 3 dout) into tile `dst` (0 A, 1 Bt).
fn stage(dst: u32, src: u32, lid: u32, base: u32, r0: u32, rows: u32) {
  for (var i = lid; i < BI * DP; i += THREADS) {
    let r = i / DP;
    let c = i % DP;
    var x = f16(0.0);
    if (r0 + r < rows && c < p.d) {
      let g = base + (r0 + r) * p.d + c;
      switch src {
        case 0u: { x = q[g]; }
        case 1u: { x = k[g]; }
        case 2u: { x = v[g]; }
        default: { x = dout[g]; }
      }
    }
    if (dst == 0u) { A[r * KS + c] = x; } else { Bt[r * KS + c] = x; }
  }
}

// Writes a [16, DP] f32 block held as DF fragments (already staged row by row through Ss by the caller)
// scaled by `mul` into rows row0.. of g0 (which = 0) or g1.
fn write_rows(which: u32, sg: u32, lane: u32, base: u32, row0: u32, rows: u32, f0: u32, mul: f32) {
  let cs = sg * 16u * BI;
  for (var e = lane; e < 16u * 64u; e += 32u) {
    let r = e / 64u;
    let c = e % 64u;
    let d = f0 * 16u + c;
    if (row0 + r < rows && d < p.d && c < (min(f0 + 4u, DF) - f0) * 16u) {
      let val = Ss[cs + r * BI + c] * mul;
#if ${OUT_F16}
      if (which == 0u) { g0[base + (row0 + r) * p.d + d] = f16(val); } else { g1[base + (row0 + r) * p.d + d] = f16(val); }
#else
      if (which == 0u) { g0[base + (row0 + r) * p.d + d] = val; } else { g1[base + (row0 + r) * p.d + d] = val; }
#endif
    }
  }
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

  // This subgroup's 16 keys as left fragments of K and V (rows = keys), via the A / Bt tiles.
  stage(0u, 1u, lid, kbase, k0, nk);
  stage(1u, 2u, lid, kbase, k0, nk);
  workgroupBarrier();
  var kf: array<subgroup_matrix_left<f16, 16, 16>, DF>;
  var vf: array<subgroup_matrix_left<f16, 16, 16>, DF>;
  for (var f = 0u; f < DF; f++) {
    kf[f] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&A, sg * 16u * KS + f * 16u, KS);
    vf[f] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Bt, sg * 16u * KS + f * 16u, KS);
  }

  let r = lane / 2u;          // key row of this subgroup's 16
  let h = lane % 2u;          // half of the 64 queries
  let key = k0 + sg * 16u + r;
  let srow = sg * 16u * BI + r * BI;
  let prow = sg * 16u * TS + r * TS;
  var dk: array<subgroup_matrix_result<f32, 16, 16>, DF>;
  var dv: array<subgroup_matrix_result<f32, 16, 16>, DF>;
  var pv: array<f32, 32>;

  for (var q0 = 0u; q0 < p.nq; q0 += BI) {
    workgroupBarrier();
    stage(0u, 0u, lid, qbase, q0, p.nq);   // Q tile
    stage(1u, 3u, lid, qbase, q0, p.nq);   // dO tile
    workgroupBarrier();

    // Sᵀ = K·Qᵀ (16 keys × 64 queries) → Pᵀ.
    for (var j = 0u; j < BI / 16u; j++) {
      let qt0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&A, j * 16u * KS, KS);
      var s = subgroupMatrixMultiply<f32>(kf[0], qt0);
      for (var f = 1u; f < DF; f++) {
        let qt = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&A, j * 16u * KS + f * 16u, KS);
        s = subgroupMatrixMultiplyAccumulate(kf[f], qt, s);
      }
      subgroupMatrixStore<row_major>(&Ss, sg * 16u * BI + j * 16u, s, BI);
    }
    workgroupBarrier();
    for (var c = 0u; c < 32u; c++) {
      let qi = 2u * ((c + r) % 32u) + h; // skewed by row: the 16 rows' lanes hit different banks
      var pr = 0.0;
      if (key < nk && q0 + qi < p.nq) {
        pr = exp2(Ss[srow + qi] * p.scale_log2 - lse[lbase + q0 + qi] * 1.4426950408889634);
      }
      pv[c] = pr;
      Ps[prow + qi] = f16(pr);
    }
    workgroupBarrier();

    // dV += Pᵀ·dO ; dPᵀ = V·dOᵀ.
    var pt: array<subgroup_matrix_left<f16, 16, 16>, BI / 16u>;
    for (var kk = 0u; kk < BI / 16u; kk++) {
      pt[kk] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ps, sg * 16u * TS + kk * 16u, TS);
    }
    for (var f = 0u; f < DF; f++) {
      let d0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Bt, f * 16u, KS);
      if (q0 == 0u) { dv[f] = subgroupMatrixMultiply<f32>(pt[0], d0); }
      else { dv[f] = subgroupMatrixMultiplyAccumulate(pt[0], d0, dv[f]); }
      for (var kk = 1u; kk < BI / 16u; kk++) {
        let dd = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Bt, kk * 16u * KS + f * 16u, KS);
        dv[f] = subgroupMatrixMultiplyAccumulate(pt[kk], dd, dv[f]);
      }
    }
    for (var j = 0u; j < BI / 16u; j++) {
      let ot0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Bt, j * 16u * KS, KS);
      var dp = subgroupMatrixMultiply<f32>(vf[0], ot0);
      for (var f = 1u; f < DF; f++) {
        let ot = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Bt, j * 16u * KS + f * 16u, KS);
        dp = subgroupMatrixMultiplyAccumulate(vf[f], ot, dp);
      }
      subgroupMatrixStore<row_major>(&Ss, sg * 16u * BI + j * 16u, dp, BI);
    }
    workgroupBarrier();
    // dSᵀ = Pᵀ∘(dPᵀ − Δ) over Ps.
    for (var c = 0u; c < 32u; c++) {
      let qi = 2u * ((c + r) % 32u) + h; // skewed by row: the 16 rows' lanes hit different banks
      var ds = 0.0;
      if (q0 + qi < p.nq) { ds = pv[c] * (Ss[srow + qi] - delta[lbase + q0 + qi]); }
      Ps[prow + qi] = f16(ds);
    }
    workgroupBarrier();
    // dK += dSᵀ·Q (scaled at the end).
    for (var kk = 0u; kk < BI / 16u; kk++) {
      pt[kk] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ps, sg * 16u * TS + kk * 16u, TS);
    }
    for (var f = 0u; f < DF; f++) {
      let q0f = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&A, f * 16u, KS);
      if (q0 == 0u) { dk[f] = subgroupMatrixMultiply<f32>(pt[0], q0f); }
      else { dk[f] = subgroupMatrixMultiplyAccumulate(pt[0], q0f, dk[f]); }
      for (var kk = 1u; kk < BI / 16u; kk++) {
        let qk = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&A, kk * 16u * KS + f * 16u, KS);
        dk[f] = subgroupMatrixMultiplyAccumulate(pt[kk], qk, dk[f]);
      }
    }
  }

  // Write dK·scale and dV through Ss, four fragments at a time; keys ≥ nk get zeros (P was 0 for them).
  let krow0 = k0 + sg * 16u;
  for (var f0 = 0u; f0 < DF; f0 += 4u) {
    workgroupBarrier();
    for (var f = f0; f < min(f0 + 4u, DF); f++) {
      subgroupMatrixStore<row_major>(&Ss, sg * 16u * BI + (f - f0) * 16u, dk[f], BI);
    }
    workgroupBarrier();
    write_rows(0u, sg, lane, kbase, krow0, p.nk, f0, p.scale);
    workgroupBarrier();
    for (var f = f0; f < min(f0 + 4u, DF); f++) {
      subgroupMatrixStore<row_major>(&Ss, sg * 16u * BI + (f - f0) * 16u, dv[f], BI);
    }
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

  stage(0u, 0u, lid, qbase, q0, p.nq);
  stage(1u, 3u, lid, qbase, q0, p.nq);
  workgroupBarrier();
  var qf: array<subgroup_matrix_left<f16, 16, 16>, DF>;
  var dof: array<subgroup_matrix_left<f16, 16, 16>, DF>;
  for (var f = 0u; f < DF; f++) {
    qf[f] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&A, sg * 16u * KS + f * 16u, KS);
    dof[f] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Bt, sg * 16u * KS + f * 16u, KS);
  }

  let r = lane / 2u;          // query row of this subgroup's 16
  let h = lane % 2u;          // half of the 64 keys
  let qi = q0 + sg * 16u + r;
  var lse_r = 0.0;
  var delta_r = 0.0;
  if (qi < p.nq) {
    lse_r = lse[lbase + qi] * 1.4426950408889634;
    delta_r = delta[lbase + qi];
  }
  let srow = sg * 16u * BI + r * BI;
  let prow = sg * 16u * TS + r * TS;
  var dqa: array<subgroup_matrix_result<f32, 16, 16>, DF>;
  var pv: array<f32, 32>;

  for (var k0 = 0u; k0 < nk; k0 += BI) {
    workgroupBarrier();
    stage(0u, 1u, lid, kbase, k0, nk);   // K tile
    stage(1u, 2u, lid, kbase, k0, nk);   // V tile
    workgroupBarrier();

    // S = Q·Kᵀ → P.
    for (var j = 0u; j < BI / 16u; j++) {
      let kt0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&A, j * 16u * KS, KS);
      var s = subgroupMatrixMultiply<f32>(qf[0], kt0);
      for (var f = 1u; f < DF; f++) {
        let kt = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&A, j * 16u * KS + f * 16u, KS);
        s = subgroupMatrixMultiplyAccumulate(qf[f], kt, s);
      }
      subgroupMatrixStore<row_major>(&Ss, sg * 16u * BI + j * 16u, s, BI);
    }
    workgroupBarrier();
    for (var c = 0u; c < 32u; c++) {
      let kj = 2u * ((c + r) % 32u) + h; // skewed by row: the 16 rows' lanes hit different banks
      var pr = 0.0;
      if (qi < p.nq && k0 + kj < nk) { pr = exp2(Ss[srow + kj] * p.scale_log2 - lse_r); }
      pv[c] = pr;
    }
    workgroupBarrier();
    // dP = dO·Vᵀ → dS = P∘(dP − Δ).
    for (var j = 0u; j < BI / 16u; j++) {
      let vt0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Bt, j * 16u * KS, KS);
      var dp = subgroupMatrixMultiply<f32>(dof[0], vt0);
      for (var f = 1u; f < DF; f++) {
        let vt = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Bt, j * 16u * KS + f * 16u, KS);
        dp = subgroupMatrixMultiplyAccumulate(dof[f], vt, dp);
      }
      subgroupMatrixStore<row_major>(&Ss, sg * 16u * BI + j * 16u, dp, BI);
    }
    workgroupBarrier();
    for (var c = 0u; c < 32u; c++) {
      let kj = 2u * ((c + r) % 32u) + h; // skewed by row: the 16 rows' lanes hit different banks
      Ps[prow + kj] = f16(pv[c] * (Ss[srow + kj] - delta_r));
    }
    workgroupBarrier();
    // dQ += dS·K.
    var dsf: array<subgroup_matrix_left<f16, 16, 16>, BI / 16u>;
    for (var kk = 0u; kk < BI / 16u; kk++) {
      dsf[kk] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ps, sg * 16u * TS + kk * 16u, TS);
    }
    for (var f = 0u; f < DF; f++) {
      let k0f = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&A, f * 16u, KS);
      if (k0 == 0u) { dqa[f] = subgroupMatrixMultiply<f32>(dsf[0], k0f); }
      else { dqa[f] = subgroupMatrixMultiplyAccumulate(dsf[0], k0f, dqa[f]); }
      for (var kk = 1u; kk < BI / 16u; kk++) {
        let kf = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&A, kk * 16u * KS + f * 16u, KS);
        dqa[f] = subgroupMatrixMultiplyAccumulate(dsf[kk], kf, dqa[f]);
      }
    }
  }

  let qrow0 = q0 + sg * 16u;
  for (var f0 = 0u; f0 < DF; f0 += 4u) {
    workgroupBarrier();
    for (var f = f0; f < min(f0 + 4u, DF); f++) {
      subgroupMatrixStore<row_major>(&Ss, sg * 16u * BI + (f - f0) * 16u, dqa[f], BI);
    }
    workgroupBarrier();
    write_rows(0u, sg, lane, qbase, qrow0, p.nq, f0, p.scale);
  }
}
