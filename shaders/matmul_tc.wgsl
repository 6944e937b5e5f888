// Tensor-core matmul through subgroup matrices: f16 inputs, f32 accumulation.
// C[b] = act(op(A[b]) · op(B[b]) + bias), same operand conventions as matmul.wgsl.
// A workgroup of SG_M×SG_N subgroups computes a BM×BN tile; each subgroup an FM×FN grid of 16×16
// fragments. Per BK-deep step, A and B slices are staged in workgroup memory in their stored orientation
// (so global reads are contiguous) and loaded as fragments row- or column-major accordingly.
// VEC_A / VEC_B: the stored rows are multiples of 8 halves, so staging moves 16-byte chunks.
// GLOBAL_LOADS: M, N multiples of the tile and K of 16: fragments are loaded from storage, no staging.
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

struct Params {
  M: u32,
  N: u32,
  K: u32,
  stride_a: u32,
  stride_b: u32,
  stride_c: u32,
}

#if ${VEC_A}
@group(0) @binding(0) var<storage, read> A: array<vec4<u32>>;
#else
@group(0) @binding(0) var<storage, read> A: array<f16>;
#endif
#if ${VEC_B}
@group(0) @binding(1) var<storage, read> B: array<vec4<u32>>;
#else
@group(0) @binding(1) var<storage, read> B: array<f16>;
#endif
#if ${OUT_F16}
@group(0) @binding(2) var<storage, read_write> C: array<f16>;
#else
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
#endif
#if ${BIAS}
#if ${BIAS_F16}
@group(0) @binding(3) var<storage, read> bias: array<f16>;
#else
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
#endif
@group(0) @binding(4) var<uniform> p: Params;

const SG_M = ${SG_M}u;
const SG_N = ${SG_N}u;
const FM = ${FM}u;                 // fragments per subgroup along M
const FN = ${FN}u;                 // fragments per subgroup along N
const BM = SG_M * FM * 16u;
const BN = SG_N * FN * 16u;
const BK = ${BK}u;
const THREADS = SG_M * SG_N * 32u;
const PAD = 8u;                    // row padding (halves) against bank conflicts; keeps 16-byte alignment

#if ${TRANS_A}
const A_ROWS = BK;                 // staged as stored: [k][m]
const A_COLS = BM;
#else
const A_ROWS = BM;                 // [m][k]
const A_COLS = BK;
#endif
#if ${TRANS_B}
const B_ROWS = BN;                 // [n][k]
const B_COLS = BK;
#else
const B_ROWS = BK;                 // [k][n]
const B_COLS = BN;
#endif
const AS = A_COLS + PAD;
const BS = B_COLS + PAD;

var<workgroup> As: array<f16, A_ROWS * AS>;
var<workgroup> Bs: array<f16, B_ROWS * BS>;
var<workgroup> Cs: array<f32, SG_M * SG_N * 256u>; // one 16×16 staging fragment per subgroup

fn put8(dst_is_a: bool, off: u32, w: vec4<u32>) {
  let h0 = bitcast<vec2<f16>>(w.x);
  let h1 = bitcast<vec2<f16>>(w.y);
  let h2 = bitcast<vec2<f16>>(w.z);
  let h3 = bitcast<vec2<f16>>(w.w);
  if (dst_is_a) {
    As[off] = h0.x; As[off + 1u] = h0.y; As[off + 2u] = h1.x; As[off + 3u] = h1.y;
    As[off + 4u] = h2.x; As[off + 5u] = h2.y; As[off + 6u] = h3.x; As[off + 7u] = h3.y;
  } else {
    Bs[off] = h0.x; Bs[off + 1u] = h0.y; Bs[off + 2u] = h1.x; Bs[off + 3u] = h1.y;
    Bs[off + 4u] = h2.x; Bs[off + 5u] = h2.y; Bs[off + 6u] = h3.x; Bs[off + 7u] = h3.y;
  }
}

// Stages the stored rows [r0, r0 + A_ROWS) × columns [c0, c0 + A_COLS) of A (row length `ld`, `nr` rows,
// `nc` columns in bounds), zero outside.
fn stage_a(lid: u32, base: u32, r0: u32, c0: u32, nr: u32, nc: u32, ld: u32) {
#if ${VEC_A}
  for (var i = lid; i < A_ROWS * A_COLS / 8u; i += THREADS) {
    let r = i / (A_COLS / 8u);
    let c = (i % (A_COLS / 8u)) * 8u;
    var w = vec4<u32>(0u);
    if (r0 + r < nr && c0 + c < nc) { w = A[(base + (r0 + r) * ld + c0 + c) / 8u]; }
    put8(true, r * AS + c, w);
  }
#else
  for (var i = lid; i < A_ROWS * A_COLS; i += THREADS) {
    let r = i / A_COLS;
    let c = i % A_COLS;
    var v = f16(0.0);
    if (r0 + r < nr && c0 + c < nc) { v = A[base + (r0 + r) * ld + c0 + c]; }
    As[r * AS + c] = v;
  }
#endif
}

fn stage_b(lid: u32, base: u32, r0: u32, c0: u32, nr: u32, nc: u32, ld: u32) {
#if ${VEC_B}
  for (var i = lid; i < B_ROWS * B_COLS / 8u; i += THREADS) {
    let r = i / (B_COLS / 8u);
    let c = (i % (B_COLS / 8u)) * 8u;
    var w = vec4<u32>(0u);
    if (r0 + r < nr && c0 + c < nc) { w = B[(base + (r0 + r) * ld + c0 + c) / 8u]; }
    put8(false, r * BS + c, w);
  }
#else
  for (var i = lid; i < B_ROWS * B_COLS; i += THREADS) {
    let r = i / B_COLS;
    let c = i % B_COLS;
    var v = f16(0.0);
    if (r0 + r < nr && c0 + c < nc) { v = B[base + (r0 + r) * ld + c0 + c]; }
    Bs[r * BS + c] = v;
  }
#endif
}

fn epilogue(v: f32, n: u32) -> f32 {
  var x = v;
#if ${BIAS}
  x += f32(bias[n]);
#endif
#if ${GELU}
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  x = x / (1.0 + exp(-2.0 * u));
#endif
  return x;
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(subgroup_size) sg_size: u32) {
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let sg_m = (sg / SG_N) * FM * 16u; // this subgroup's rows within the tile
  let sg_n = (sg % SG_N) * FN * 16u;
  let a_base = wid.z * p.stride_a;
  let b_base = wid.z * p.stride_b;
  let c_base = wid.z * p.stride_c;

  var acc: array<subgroup_matrix_result<f32, 16, 16>, FM * FN>;
#if ${GLOBAL_LOADS}
  // Fragments straight from storage (tile multiples only; L1/L2 serve the reuse across subgroups).
  for (var k = 0u; k < p.K; k += 16u) {
    var left: array<subgroup_matrix_left<f16, 16, 16>, FM>;
    for (var i = 0u; i < FM; i++) {
#if ${TRANS_A}
      left[i] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, col_major>(&A, a_base + k * p.M + row0 + sg_m + i * 16u, p.M);
#else
      left[i] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&A, a_base + (row0 + sg_m + i * 16u) * p.K + k, p.K);
#endif
    }
    for (var j = 0u; j < FN; j++) {
#if ${TRANS_B}
      let right = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&B, b_base + (col0 + sg_n + j * 16u) * p.K + k, p.K);
#else
      let right = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&B, b_base + k * p.N + col0 + sg_n + j * 16u, p.N);
#endif
      for (var i = 0u; i < FM; i++) {
        acc[i * FN + j] = subgroupMatrixMultiplyAccumulate(left[i], right, acc[i * FN + j]);
      }
    }
  }
#else
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
#if ${TRANS_A}
    stage_a(lid, a_base, k0, row0, p.K, p.M, p.M);
#else
    stage_a(lid, a_base, row0, k0, p.M, p.K, p.K);
#endif
#if ${TRANS_B}
    stage_b(lid, b_base, col0, k0, p.N, p.K, p.K);
#else
    stage_b(lid, b_base, k0, col0, p.K, p.N, p.N);
#endif
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk += 16u) {
      var left: array<subgroup_matrix_left<f16, 16, 16>, FM>;
      for (var i = 0u; i < FM; i++) {
#if ${TRANS_A}
        left[i] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, col_major>(&As, kk * AS + sg_m + i * 16u, AS);
#else
        left[i] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&As, (sg_m + i * 16u) * AS + kk, AS);
#endif
      }
      for (var j = 0u; j < FN; j++) {
#if ${TRANS_B}
        let right = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Bs, (sg_n + j * 16u) * BS + kk, BS);
#else
        let right = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Bs, kk * BS + sg_n + j * 16u, BS);
#endif
        for (var i = 0u; i < FM; i++) {
          acc[i * FN + j] = subgroupMatrixMultiplyAccumulate(left[i], right, acc[i * FN + j]);
        }
      }
    }
    workgroupBarrier();
  }

#endif
#if ${DIRECT}
  // Whole tile in bounds, f32 output, no epilogue: fragments go straight to C.
  if (row0 + BM <= p.M && col0 + BN <= p.N) {
    for (var i = 0u; i < FM; i++) {
      for (var j = 0u; j < FN; j++) {
        let off = c_base + (row0 + sg_m + i * 16u) * p.N + col0 + sg_n + j * 16u;
        subgroupMatrixStore<row_major>(&C, off, acc[i * FN + j], p.N);
      }
    }
    return;
  }
#endif
  // Each fragment goes through this subgroup's staging area; lanes apply bias/GELU and bounds.
  let cs = sg * 256u;
  for (var i = 0u; i < FM; i++) {
    for (var j = 0u; j < FN; j++) {
      subgroupMatrixStore<row_major>(&Cs, cs, acc[i * FN + j], 16u);
      workgroupBarrier();
      for (var e = lane; e < 256u; e += sg_size) {
        let m = row0 + sg_m + i * 16u + e / 16u;
        let n = col0 + sg_n + j * 16u + e % 16u;
        if (m < p.M && n < p.N) {
#if ${OUT_F16}
          C[c_base + m * p.N + n] = f16(epilogue(Cs[cs + e], n));
#else
          C[c_base + m * p.N + n] = epilogue(Cs[cs + e], n);
#endif
        }
      }
      workgroupBarrier();
    }
  }
}
