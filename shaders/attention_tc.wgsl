// Flash attention forward on tensor cores (subgroup matrices): f16 q/k/v, f32 softmax and accumulation.
// q [B, H, Nq, D], k/v [B, H, Nk, D] (head-major), o [B, H, Nq, D] (f16 or f32), lse [B, H, Nq] =
// log Σ_j exp(scale·q·k_j) (natural log, scale included). The N×N score matrix never exists; D is zero-padded to
// DP (a multiple of 16, at most 128) in workgroup memory. Two entries, one per render (PACK says which):
//   main, the general kernel: a workgroup of 4 subgroups takes 64 query rows of one (b, h), 16 per subgroup,
//     its Q fragments in registers. Per tile of 64 keys: S = Q·Kᵀ with fragments, S to workgroup memory where
//     lanes do the softmax (two lanes per row), P (f16) over the subgroup's rows of the K tile, and O += P·V into
//     subgroup-matrix accumulators kept for the whole key loop. P = exp2(s − m) against a per-row reference max
//     m raised only when a tile's row max exceeds it by more than 8 (log2), so P ≤ 256 in f16; a raise rescales
//     O through workgroup memory for the whole workgroup (details in main's section below).
//   packed (PACK; the op sends Nq ≤ 16 and Nk ≤ 16 here, e.g. STDiT's temporal attention over 16 frames): each
//     subgroup takes its own (b, h) sequence, four per workgroup, and multiplies only its own 16 × 16 blocks.
// Code only main uses sits in the else branch of a PACK conditional with an empty if branch (the preprocessor
// has no negation).
// MASK: keys at positions ≥ kv_len[b] (caption lengths of cross-attention) get zero weight.
// VEC (D a multiple of 8; main only): Q/K/V move as 16-byte loads and O as 16-byte stores (8 halves or two
// words of 4 floats), else as eight f16 loads a 16-byte chunk and scalar stores; main fetches the next K/V tile
// into registers while the current one is used (shaders/attention_tc_staging.wgsl). Measured on the H200 (D72):
// 16-byte Q loads and O stores instead of scalar ones took B4 H16 N4096 87.5 → 94.4 TFLOP/s, spatial 64×256
// 37.7 → 65.8.
// Dawn/NVIDIA pitfalls, measured on the H100 and with the removed two-pass forward (keep them): subgroup-matrix
// variables declared inside loops are not reliably zeroed, so main's O accumulators (declared once at function
// scope) start from a zero fragment loaded from zeroed workgroup memory (attention_tc_common.wgsl);
// the scalar workgroup variables (wg_nk, wg_raise) are declared before the tiles — with wg_nk declared after
// them, every result was wrong; main keeps named fragments/accumulators rather than arrays indexed in loops
// (F2..F8 say which exist) and subgroup-uniform load/store offsets; subgroup-matrix loads/stores must be in
// uniform control flow (Tint rejects them under a branch on subgroupAny).
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

#if ${VEC}
@group(0) @binding(0) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<u32>>;
#if ${OUT_F16}
@group(0) @binding(3) var<storage, read_write> o: array<vec4<u32>>; // 8 halves a word
#else
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
#endif
#else
@group(0) @binding(0) var<storage, read> q: array<f16>;
@group(0) @binding(1) var<storage, read> k: array<f16>;
@group(0) @binding(2) var<storage, read> v: array<f16>;
#if ${OUT_F16}
@group(0) @binding(3) var<storage, read_write> o: array<f16>;
#else
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
#endif
#endif
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
#if ${MASK}
@group(0) @binding(5) var<storage, read> kv_len: array<u32>;
#endif
@group(0) @binding(6) var<uniform> p: Params;

const DP = ${DP}u;            // head dim padded to a multiple of 16
const DF = DP / 16u;          // 16-wide fragments along D (1..8; main's F2..F8 say which exist)
const BQ = 64u;               // query rows per workgroup (16 per subgroup)
const BKV = 64u;              // keys per tile
const TILE_ROWS = BKV;        // rows of a staged K/V tile (attention_tc_staging.wgsl)
const KS = max(DP, BKV) + 8u; // padded row stride (halves) of the Q/K/V tiles and of P
const THREADS = 128u;
#if ${PACK}
#else
const TAU = 8.0;              // main: log2 headroom of the reference max, P ≤ 2^TAU
#endif

var<workgroup> wg_nk: u32;                     // keys in use, read back as a uniform value
#if ${PACK}
#else
var<workgroup> wg_raise: array<u32, 4>;        // main, per subgroup: 1 when it rescales after this tile's P
#endif
// K tile (first the Q tile, later each subgroup's P rows), V tile, and Ss (per subgroup: scores, then P·V
// (packed) or O (main) fragments). main keeps them in words of 4 halves, 8 halves and 4 floats (subgroup-matrix
// offsets and strides then count words): its lanes move 4 scores / probabilities a load or store, and K/V
// chunks go in as one or two stores (H200, B4 H16 N4096: 78.8 → 86.6 TFLOP/s against scalar f16/f32 tiles).
const SW = ${SW}u;             // row stride of Ss (floats): (BKV or DP) + 4 or more, see stagingWidth in the op
var<workgroup> Ks: array<vec2<u32>, BKV * KS / 4u>;
var<workgroup> Vs: array<vec4<u32>, BKV * KS / 8u>;
var<workgroup> Ss: array<vec4<f32>, 4u * 16u * SW / 4u>;
const O_STEP = (SW - 4u) / 16u; // O fragments staged per rescale / epilogue pass
const SS_ROW = SW;             // for zero_rows / zero_acc (attention_tc_common.wgsl)

// Q/K/V tile staging (fetch_chunk / put_chunk; sources 0 K, 1 V, 2 Q; tiles 0 Ks, 1 Vs):
// shaders/attention_tc_staging.wgsl, appended to both entries' renders by the TS op, through these accessors.
#if ${VEC}
fn load_chunk(src: u32, i: u32) -> vec4<u32> {
#else
fn load_half(src: u32, i: u32) -> f16 {
#endif
  if (src == 1u) { return v[i]; }
  if (src == 2u) { return q[i]; }
  return k[i];
}

fn store_chunk(dst: u32, off: u32, w: vec4<u32>) {
  if (dst == 1u) { Vs[off / 8u] = w; } else { Ks[off / 4u] = w.xy; Ks[off / 4u + 1u] = w.zw; }
}

fn kfrag(j: u32, f: u32) -> subgroup_matrix_right<f16, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Ks, (j * 16u * KS + f * 16u) / 4u, KS / 4u);
}

fn vfrag(kk: u32, f: u32) -> subgroup_matrix_right<f16, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Vs, (kk * 16u * KS + f * 16u) / 8u, KS / 8u);
}

fn qfrag(sg: u32, f: u32) -> subgroup_matrix_left<f16, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, (sg * 16u * KS + f * 16u) / 4u, KS / 4u);
}

fn pfrag(sg: u32, kk: u32) -> subgroup_matrix_left<f16, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, (sg * 16u * KS + kk * 16u) / 4u, KS / 4u);
}

#if ${PACK}
#else
// ---- main: O in subgroup-matrix accumulators, reference max raised lazily.
// Each subgroup keeps O = Σ_tiles P·V in DF subgroup_matrix_result accumulators (one per 16-wide D fragment) for
// the whole key loop: no per-tile P·V store / re-read / rescale through workgroup memory.
// Lazy rescale. Per row (log2 domain, s = scale·log2(e)·q·k) the lanes keep a REFERENCE max m (not the running
// max) and l = Σ exp2(s − m) over the keys so far; P = exp2(s − m) goes to f16 and into the accumulators.
//   First tile: m = the tile's row max (accumulators are zero: nothing to rescale).
//   Later tiles, with t = the tile's row max: a row needs a raise when t > m + TAU. If any row of the subgroup
//   needs one (subgroupAny), every row of that subgroup with t > m takes m' = t (it rescales anyway).
//   Rows not raised keep m, so their P ≤ exp2(t − m) ≤ 2^TAU = 256: f16 P (max 65504) cannot overflow, and
//   P·V sums in f32 stay far from its range. m never exceeds the true running max, so P is never smaller
//   than exp2(s − running max) of a per-tile rescaling kernel: no extra f16 underflow either.
//   A raise multiplies that row's l and accumulator row by alpha = exp2(m − m') (≤ 2^−TAU except for the
//   opportunistic rows). The accumulators are opaque, so the rescale goes through workgroup memory: the DF
//   fragments are stored to the subgroup's rows of Ss, the lanes scale their row, and they are loaded back.
//   Subgroup-matrix loads/stores must be in uniform control flow (Tint rejects a branch on subgroupAny), so
//   each subgroup publishes its decision in wg_raise and the branch is taken by the whole workgroup on
//   workgroupUniformLoad (which is also the barrier after P); subgroups that did not raise have alpha = 1
//   (exact) and store/load their fragments unchanged. Raises are rare (a row's scores must climb by more than
//   TAU above its first tile's max), so the common tile pays no rescale at all.
// Barriers per tile: after staging K/V; after S (scores visible to the lanes, every subgroup done with K so P
// may overwrite its rows); after P (workgroupUniformLoad of the raise flags: a barrier, the load, a barrier);
// after P·V (every subgroup done with this tile's Ks / Vs before the next tile is staged). The rare rescale
// adds two (more with narrow Ss staging).

// zero_rows / zero_acc / pack4: shaders/attention_tc_common.wgsl, appended by the TS op.

// S = Q·Kᵀ for this subgroup's 16 rows × the 64 keys of the staged tile, stored to its rows of Ss. The four
// 16-key fragments accumulate side by side (four independent chains over D; measured on the H200: +3 % over one
// chain at a time).
fn scores(sg: u32,
          q0: subgroup_matrix_left<f16, 16, 16>, q1: subgroup_matrix_left<f16, 16, 16>,
          q2: subgroup_matrix_left<f16, 16, 16>, q3: subgroup_matrix_left<f16, 16, 16>,
          q4: subgroup_matrix_left<f16, 16, 16>, q5: subgroup_matrix_left<f16, 16, 16>,
          q6: subgroup_matrix_left<f16, 16, 16>, q7: subgroup_matrix_left<f16, 16, 16>) {
  var s0 = subgroupMatrixMultiply<f32>(q0, kfrag(0u, 0u));
  var s1 = subgroupMatrixMultiply<f32>(q0, kfrag(1u, 0u));
  var s2 = subgroupMatrixMultiply<f32>(q0, kfrag(2u, 0u));
  var s3 = subgroupMatrixMultiply<f32>(q0, kfrag(3u, 0u));
#if ${F2}
  s0 = subgroupMatrixMultiplyAccumulate(q1, kfrag(0u, 1u), s0);
  s1 = subgroupMatrixMultiplyAccumulate(q1, kfrag(1u, 1u), s1);
  s2 = subgroupMatrixMultiplyAccumulate(q1, kfrag(2u, 1u), s2);
  s3 = subgroupMatrixMultiplyAccumulate(q1, kfrag(3u, 1u), s3);
#endif
#if ${F3}
  s0 = subgroupMatrixMultiplyAccumulate(q2, kfrag(0u, 2u), s0);
  s1 = subgroupMatrixMultiplyAccumulate(q2, kfrag(1u, 2u), s1);
  s2 = subgroupMatrixMultiplyAccumulate(q2, kfrag(2u, 2u), s2);
  s3 = subgroupMatrixMultiplyAccumulate(q2, kfrag(3u, 2u), s3);
#endif
#if ${F4}
  s0 = subgroupMatrixMultiplyAccumulate(q3, kfrag(0u, 3u), s0);
  s1 = subgroupMatrixMultiplyAccumulate(q3, kfrag(1u, 3u), s1);
  s2 = subgroupMatrixMultiplyAccumulate(q3, kfrag(2u, 3u), s2);
  s3 = subgroupMatrixMultiplyAccumulate(q3, kfrag(3u, 3u), s3);
#endif
#if ${F5}
  s0 = subgroupMatrixMultiplyAccumulate(q4, kfrag(0u, 4u), s0);
  s1 = subgroupMatrixMultiplyAccumulate(q4, kfrag(1u, 4u), s1);
  s2 = subgroupMatrixMultiplyAccumulate(q4, kfrag(2u, 4u), s2);
  s3 = subgroupMatrixMultiplyAccumulate(q4, kfrag(3u, 4u), s3);
#endif
#if ${F6}
  s0 = subgroupMatrixMultiplyAccumulate(q5, kfrag(0u, 5u), s0);
  s1 = subgroupMatrixMultiplyAccumulate(q5, kfrag(1u, 5u), s1);
  s2 = subgroupMatrixMultiplyAccumulate(q5, kfrag(2u, 5u), s2);
  s3 = subgroupMatrixMultiplyAccumulate(q5, kfrag(3u, 5u), s3);
#endif
#if ${F7}
  s0 = subgroupMatrixMultiplyAccumulate(q6, kfrag(0u, 6u), s0);
  s1 = subgroupMatrixMultiplyAccumulate(q6, kfrag(1u, 6u), s1);
  s2 = subgroupMatrixMultiplyAccumulate(q6, kfrag(2u, 6u), s2);
  s3 = subgroupMatrixMultiplyAccumulate(q6, kfrag(3u, 6u), s3);
#endif
#if ${F8}
  s0 = subgroupMatrixMultiplyAccumulate(q7, kfrag(0u, 7u), s0);
  s1 = subgroupMatrixMultiplyAccumulate(q7, kfrag(1u, 7u), s1);
  s2 = subgroupMatrixMultiplyAccumulate(q7, kfrag(2u, 7u), s2);
  s3 = subgroupMatrixMultiplyAccumulate(q7, kfrag(3u, 7u), s3);
#endif
  subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW + 0u) / 4u, s0, SW / 4u);
  subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW + 16u) / 4u, s1, SW / 4u);
  subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW + 32u) / 4u, s2, SW / 4u);
  subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW + 48u) / 4u, s3, SW / 4u);
}

// O fragment i goes to column (i − f0)·16 of this subgroup's Ss rows when it is in the pass starting at f0.
fn stage_o(sg: u32, f0: u32, i: u32, acc: subgroup_matrix_result<f32, 16, 16>) {
  if (i >= f0 && i < f0 + O_STEP) {
    subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW + (i - f0) * 16u) / 4u, acc, SW / 4u);
  }
}

// O fragment i back from Ss when it is in the pass starting at f0 (else unchanged).
fn unstage_o(sg: u32, f0: u32, i: u32, acc: subgroup_matrix_result<f32, 16, 16>) -> subgroup_matrix_result<f32, 16, 16> {
  if (i >= f0 && i < f0 + O_STEP) {
    return subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>, row_major>(&Ss, (sg * 16u * SW + (i - f0) * 16u) / 4u, SW / 4u);
  }
  return acc;
}

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

  var rk: array<vec4<u32>, PER>;   // the next K and V tiles' chunks (the first ones fetched before Q is staged)
  var rv: array<vec4<u32>, PER>;
  for (var i = 0u; i < PER; i++) {
    rk[i] = fetch_chunk(0u, lid + i * THREADS, kbase, 0u, nk);
    rv[i] = fetch_chunk(1u, lid + i * THREADS, kbase, 0u, nk);
  }
  // Q tile → Ks (as a staging area) → this subgroup's fragments, kept in registers.
  stage(0u, 2u, lid, qbase, q0, p.nq);
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
  // O accumulators: function scope, outside every loop, one per D fragment; relative to each row's m; zero.
  let zero = zero_acc(sg);
  var o0 = zero;
  var o1 = zero;
  var o2 = zero;
  var o3 = zero;
  var o4 = zero;
  var o5 = zero;
  var o6 = zero;
  var o7 = zero;
  workgroupBarrier();   // Q fragments loaded: the K tile may overwrite the staging area

  // Lanes: row r of this subgroup's 16, half h of the keys (and of each 16-wide D fragment when O is staged).
  let r = lane / 2u;
  let h = lane % 2u;
  var m = -1.0e30;      // reference max (log2 domain): ≤ the running max, ≥ it − TAU
  var l = 0.0;          // Σ exp2(s − m) over the keys so far
  let srow = sg * 16u * SW + r * SW;
  let prow = (sg * 16u + r) * KS;

  for (var k0 = 0u; k0 < nk; k0 += BKV) {
    for (var i = 0u; i < PER; i++) {
      put_chunk(0u, lid + i * THREADS, rk[i]);
      put_chunk(1u, lid + i * THREADS, rv[i]);
    }
    workgroupBarrier();
    // The next tile, unconditionally: past the last one every chunk is out of range (zeros, no loads). An
    // `if (k0 + BKV < nk)` around this loop cost 9 % (H200, B4 H16 N4096: 97.9 vs 106.8 TFLOP/s).
    for (var i = 0u; i < PER; i++) {
      rk[i] = fetch_chunk(0u, lid + i * THREADS, kbase, k0 + BKV, nk);
      rv[i] = fetch_chunk(1u, lid + i * THREADS, kbase, k0 + BKV, nk);
    }
    scores(sg, qf0, qf1, qf2, qf3, qf4, qf5, qf6, qf7);
    workgroupBarrier();   // scores visible; every subgroup is done with K: P may overwrite its rows

    // This lane's 32 scores of its row, as 8 quads of adjacent keys (quad 2c + h: interleaved with its partner
    // lane), read once into registers as a whole, branch-free (loads in flight together: the loop has a constant
    // trip count and is unrolled; measured on the H200, 53 → 80 TFLOP/s against a loop that read, maxed and
    // exponentiated one score at a time in two passes; 16-byte quads instead of single floats → 86.6). Masked
    // keys read −1e30, so that exp2 gives them 0. Each quarter-warp's eight 16-byte reads (4 rows × 2 lanes) fall
    // on distinct banks when SW ≡ 8 or 24 (mod 32) floats (stagingWidth in the op).
    var sv: array<vec4<f32>, 8>;
    for (var c = 0u; c < 8u; c++) {
      let qd = 2u * c + h;
      let keys = vec4<u32>(k0 + 4u * qd) + vec4<u32>(0u, 1u, 2u, 3u);
      sv[c] = select(vec4<f32>(-1.0e30), Ss[srow / 4u + qd], keys < vec4<u32>(nk));
    }
    var tm = sv[0];
    for (var c = 1u; c < 8u; c++) { tm = max(tm, sv[c]); }
    var tmax = max(max(tm.x, tm.y), max(tm.z, tm.w));
    tmax = max(tmax, subgroupShuffleXor(tmax, 1u)) * p.scale_log2;
    // Raise the reference only past TAU (first tile: m = −1e30, every row takes its tile max); once this
    // subgroup rescales, every row of it that grew takes its new max too.
    var raise = tmax > m + TAU;
    let sg_raise = subgroupAny(raise);
    if (sg_raise) { raise = tmax > m; }
    let m_new = select(m, tmax, raise);
    let alpha = exp2(m - m_new);  // 1 for rows not raised; 0 in the first tile (l and O are still 0)
    var ps = vec4<f32>(0.0);
    for (var c = 0u; c < 8u; c++) {
      let pv = exp2(sv[c] * p.scale_log2 - m_new); // ≤ 2^TAU
      ps += pv;
      // P of the quad's 4 keys as one 8-byte word (KS/4 ≡ 2 mod 4: a half-warp's 16 stores on distinct banks)
      Ks[prow / 4u + 2u * c + h] = pack4(pv);
    }
    var psum = (ps.x + ps.y) + (ps.z + ps.w);
    psum += subgroupShuffleXor(psum, 1u);
    l = l * alpha + psum;
    m = m_new;
    if (lane == 0u) { wg_raise[sg] = select(0u, 1u, sg_raise && k0 > 0u); }
    let raised = workgroupUniformLoad(&wg_raise); // also the barrier after P (and after the lanes' Ss reads)

    // Rare: some subgroup raised its reference: O rows ×= alpha through Ss (whole workgroup, uniform).
    if (raised[0] + raised[1] + raised[2] + raised[3] != 0u) {
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
        for (var f = f0; f < min(f0 + O_STEP, DF); f++) {
          let i4 = (srow + (f - f0) * 16u + 8u * h) / 4u; // this lane's 8 of the row's 16 columns
          Ss[i4] *= alpha;
          Ss[i4 + 1u] *= alpha;
        }
        workgroupBarrier();
        o0 = unstage_o(sg, f0, 0u, o0);
#if ${F2}
        o1 = unstage_o(sg, f0, 1u, o1);
#endif
#if ${F3}
        o2 = unstage_o(sg, f0, 2u, o2);
#endif
#if ${F4}
        o3 = unstage_o(sg, f0, 3u, o3);
#endif
#if ${F5}
        o4 = unstage_o(sg, f0, 4u, o4);
#endif
#if ${F6}
        o5 = unstage_o(sg, f0, 5u, o5);
#endif
#if ${F7}
        o6 = unstage_o(sg, f0, 6u, o6);
#endif
#if ${F8}
        o7 = unstage_o(sg, f0, 7u, o7);
#endif
        if (f0 + O_STEP < DF) { workgroupBarrier(); } // the next pass overwrites Ss
      }
    }

    // O += P·V: each P fragment is loaded once and multiplies every V fragment of its 16 keys.
    for (var kk = 0u; kk < BKV / 16u; kk++) {
      let pf = pfrag(sg, kk);
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
    workgroupBarrier();   // every subgroup is done with this tile's Ks / Vs: the next one may be staged
  }

  // Epilogue: O through this subgroup's Ss rows (O_STEP fragments per pass), divided by l, bounds-checked.
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
#if ${VEC}
        // this lane's 8 columns as one 16-byte word (p.d a multiple of 8: the word is in or out as a whole)
        let d = f * 16u + 8u * h;
        let si = (srow + (f - f0) * 16u + 8u * h) / 4u;
        if (d < p.d) {
#if ${OUT_F16}
          o[(qbase + row * p.d + d) / 8u] = vec4<u32>(pack4(Ss[si] * inv), pack4(Ss[si + 1u] * inv));
#else
          o[(qbase + row * p.d + d) / 4u] = Ss[si] * inv;
          o[(qbase + row * p.d + d) / 4u + 1u] = Ss[si + 1u] * inv;
#endif
        }
#else
        for (var c = 0u; c < 8u; c++) {
          let d = f * 16u + 8u * h + c;
          let si = srow + (f - f0) * 16u + 8u * h + c;
          if (d < p.d) {
#if ${OUT_F16}
            o[qbase + row * p.d + d] = f16(Ss[si / 4u][si % 4u] * inv);
#else
            o[qbase + row * p.d + d] = Ss[si / 4u][si % 4u] * inv;
#endif
          }
        }
#endif
      }
    }
    if (f0 + O_STEP < DF) { workgroupBarrier(); } // the next pass overwrites Ss
  }
  if (row < p.nq && h == 0u) { lse[bh * p.nq + row] = (m + log2(l)) * 0.6931471805599453; }
}
#endif

#if ${PACK}
// ---- packed (PACK): short sequences (Nq, Nk ≤ 16, e.g. temporal attention over 16 frames), four per workgroup.
// Subgroup sg owns sequence bh0 + sg in tile rows 16·sg .. 16·sg + 15 (its queries, then its keys and values,
// then its P), and every product is its own 16 × 16 diagonal block: DF products for S, DF for O, nothing
// computed against another sequence's keys. Q, K and V are all fetched at once as 16-byte chunks (one
// round of latency), O leaves as 16-byte words.

// Columns d .. d + 7 of O row `row` (a, b: already divided by l); the caller checks the row.
fn write_o8(row: u32, d: u32, a: vec4<f32>, b: vec4<f32>) {
#if ${VEC}
  if (d < p.d) {
#if ${OUT_F16}
    o[(row * p.d + d) / 8u] = vec4<u32>(pack4(a), pack4(b));
#else
    o[(row * p.d + d) / 4u] = a;
    o[(row * p.d + d) / 4u + 1u] = b;
#endif
  }
#else
  for (var c = 0u; c < 8u; c++) {
    if (d + c < p.d) {
      let x = select(b[c % 4u], a[c % 4u], c < 4u);
#if ${OUT_F16}
      o[row * p.d + d + c] = f16(x);
#else
      o[row * p.d + d + c] = x;
#endif
    }
  }
#endif
}

@compute @workgroup_size(THREADS)
fn packed(@builtin(workgroup_id) wid: vec3u,
          @builtin(local_invocation_index) lid: u32,
          @builtin(subgroup_id) sg: u32,
          @builtin(subgroup_invocation_id) lane: u32) {
  let bh0 = (wid.x + wid.y * p.groups_x) * 4u;
  let bh = bh0 + sg;
  var rq: array<vec4<u32>, PER>;
  var rk: array<vec4<u32>, PER>;
  var rv: array<vec4<u32>, PER>;
  for (var i = 0u; i < PER; i++) {
    rq[i] = seq_chunk(2u, lid + i * THREADS, bh0, p.nq, p.bh_total);
    rk[i] = seq_chunk(0u, lid + i * THREADS, bh0, p.nk, p.bh_total);
    rv[i] = seq_chunk(1u, lid + i * THREADS, bh0, p.nk, p.bh_total);
  }
  for (var i = 0u; i < PER; i++) {
    put_chunk(0u, lid + i * THREADS, rq[i]);
    put_chunk(1u, lid + i * THREADS, rv[i]);
  }
  workgroupBarrier();
  var qf: array<subgroup_matrix_left<f16, 16, 16>, DF>;
  for (var f = 0u; f < DF; f++) { qf[f] = qfrag(sg, f); }
  workgroupBarrier();
  for (var i = 0u; i < PER; i++) { put_chunk(0u, lid + i * THREADS, rk[i]); }
  workgroupBarrier();

  // S = Q·Kᵀ of the subgroup's own block, to its rows of Ss.
  var s = subgroupMatrixMultiply<f32>(qf[0], kfrag(sg, 0u));
  for (var f = 1u; f < DF; f++) { s = subgroupMatrixMultiplyAccumulate(qf[f], kfrag(sg, f), s); }
  subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW) / 4u, s, SW / 4u);
  workgroupBarrier();

  // Softmax over the sequence's nk keys: two lanes a row, 8 keys each.
  let r = lane / 2u;
  let h = lane % 2u;
  var nk = p.nk;
#if ${MASK}
  if (bh < p.bh_total) { nk = min(p.nk, kv_len[bh / p.heads]); }
#endif
  let si = (sg * 16u * SW + r * SW + h * 8u) / 4u;
  let key0 = vec4<u32>(0u, 1u, 2u, 3u) + h * 8u;
  let s0 = Ss[si] * p.scale_log2;
  let s1 = Ss[si + 1u] * p.scale_log2;
  let lo = vec4<f32>(-1.0e30);
  let m4 = max(select(lo, s0, key0 < vec4<u32>(nk)), select(lo, s1, key0 + 4u < vec4<u32>(nk)));
  var mx = max(max(m4.x, m4.y), max(m4.z, m4.w));
  mx = max(mx, subgroupShuffleXor(mx, 1u));
  let p0 = select(vec4<f32>(0.0), exp2(s0 - mx), key0 < vec4<u32>(nk));
  let p1 = select(vec4<f32>(0.0), exp2(s1 - mx), key0 + 4u < vec4<u32>(nk));
  var l = dot(p0 + p1, vec4<f32>(1.0));
  l += subgroupShuffleXor(l, 1u);
  // P over the subgroup's own K rows (its K fragments were read before the barrier above)
  let pw = (sg * 16u * KS + r * KS + h * 8u) / 4u;
  Ks[pw] = pack4(p0);
  Ks[pw + 1u] = pack4(p1);
  workgroupBarrier();

  // O = P·V, O_STEP fragments a pass through the subgroup's Ss rows, written as 8 columns a lane.
  let pf = pfrag(sg, 0u);
  let inv = 1.0 / l;
  for (var f0 = 0u; f0 < DF; f0 += O_STEP) {
    for (var f = f0; f < min(f0 + O_STEP, DF); f++) {
      subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW + (f - f0) * 16u) / 4u, subgroupMatrixMultiply<f32>(pf, vfrag(sg, f)), SW / 4u);
    }
    workgroupBarrier();
    if (bh < p.bh_total && r < p.nq) {
      for (var f = f0; f < min(f0 + O_STEP, DF); f++) {
        let oi = si + (f - f0) * 4u;
        write_o8(bh * p.nq + r, f * 16u + h * 8u, Ss[oi] * inv, Ss[oi + 1u] * inv);
      }
    }
    workgroupBarrier();
  }
  if (bh < p.bh_total && r < p.nq && h == 0u) { lse[bh * p.nq + r] = (mx + log2(l)) * 0.6931471805599453; }
}
#endif
