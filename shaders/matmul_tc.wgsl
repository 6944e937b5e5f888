// Tensor-core matmul through subgroup matrices: f16 inputs, f32 accumulation.
// C[b] = act(op(A[b]) · op(B[b]) + bias), same operand conventions as matmul.wgsl.
// A workgroup of SG_M×SG_N subgroups computes a BM×BN tile; each subgroup a 2×4 grid of 16×16
// fragments (32×64), written out as eight named accumulators: arrays of subgroup matrices indexed in
// loops compile to far slower code on NVIDIA. Per BK-deep step, A and B slices are staged in workgroup memory in their stored orientation
// (so global reads are contiguous) and loaded as fragments row- or column-major accordingly.
// VEC_A / VEC_B: the stored rows are multiples of 8 halves, so staging moves 16-byte chunks;
// with both, PREFETCH loads the next K slice into registers during the current one's multiplies.
// X3 (with PREFETCH): f32 A and B, each element scaled by its operand's power of two (from max|A|, max|B| in
// `max_a`, `max_b`, as shaders/matmul_f16x3.wgsl) and split as it is staged into hi (x's top 11 bits) and r = f16(x − hi),
// two tiles per operand; per fragment pair acc += A_hi·B_hi + A_r·B_hi + A_hi·B_r (the f16x3 product without the
// split passes), and the scaling is undone on the accumulators before the stores.
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

#if ${X3}
@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
#elif ${VEC_A}
@group(0) @binding(0) var<storage, read> A: array<vec4<u32>>;
#else
@group(0) @binding(0) var<storage, read> A: array<f16>;
#endif
#if ${X3}
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
#elif ${VEC_B}
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
#if ${X3}
@group(0) @binding(5) var<storage, read> max_a: array<f32>; // [max|A|] (or a bound on it)
@group(0) @binding(6) var<storage, read> max_b: array<f32>; // [max|B|]
#endif

const SG_M = ${SG_M}u;
const SG_N = ${SG_N}u;
const FM = 2u;                     // fragments per subgroup along M (unrolled below: acc<i><j>)
const FN = 4u;                     // fragments per subgroup along N
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
#if ${X3}
var<workgroup> Ar: array<f16, A_ROWS * AS>;          // the residual halves of the staged slices
var<workgroup> Br: array<f16, B_ROWS * BS>;
var<private> scale_a: f32;                           // 2^ea, 2^eb: the operands' scaling
var<private> scale_b: f32;
#endif

// dst: 0 As, 1 Bs, 2 Ar, 3 Br
fn put8(dst: u32, off: u32, w: vec4<u32>) {
  let h0 = bitcast<vec2<f16>>(w.x);
  let h1 = bitcast<vec2<f16>>(w.y);
  let h2 = bitcast<vec2<f16>>(w.z);
  let h3 = bitcast<vec2<f16>>(w.w);
  if (dst == 0u) {
    As[off] = h0.x; As[off + 1u] = h0.y; As[off + 2u] = h1.x; As[off + 3u] = h1.y;
    As[off + 4u] = h2.x; As[off + 5u] = h2.y; As[off + 6u] = h3.x; As[off + 7u] = h3.y;
  } else if (dst == 1u) {
    Bs[off] = h0.x; Bs[off + 1u] = h0.y; Bs[off + 2u] = h1.x; Bs[off + 3u] = h1.y;
    Bs[off + 4u] = h2.x; Bs[off + 5u] = h2.y; Bs[off + 6u] = h3.x; Bs[off + 7u] = h3.y;
  }
#if ${X3}
  else if (dst == 2u) {
    Ar[off] = h0.x; Ar[off + 1u] = h0.y; Ar[off + 2u] = h1.x; Ar[off + 3u] = h1.y;
    Ar[off + 4u] = h2.x; Ar[off + 5u] = h2.y; Ar[off + 6u] = h3.x; Ar[off + 7u] = h3.y;
  } else {
    Br[off] = h0.x; Br[off + 1u] = h0.y; Br[off + 2u] = h1.x; Br[off + 3u] = h1.y;
    Br[off + 4u] = h2.x; Br[off + 5u] = h2.y; Br[off + 6u] = h3.x; Br[off + 7u] = h3.y;
  }
#endif
}

#if ${PREFETCH}
#else
// Stages the stored rows [r0, r0 + A_ROWS) × columns [c0, c0 + A_COLS) of A (row length `ld`, `nr` rows,
// `nc` columns in bounds), zero outside.
fn stage_a(lid: u32, base: u32, r0: u32, c0: u32, nr: u32, nc: u32, ld: u32) {
#if ${VEC_A}
  for (var i = lid; i < A_ROWS * A_COLS / 8u; i += THREADS) {
    let r = i / (A_COLS / 8u);
    let c = (i % (A_COLS / 8u)) * 8u;
    var w = vec4<u32>(0u);
    if (r0 + r < nr && c0 + c < nc) { w = A[(base + (r0 + r) * ld + c0 + c) / 8u]; }
    put8(0u, r * AS + c, w);
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
    put8(1u, r * BS + c, w);
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
#endif

#if ${PREFETCH}
// Register prefetch (both operands VEC): each thread holds its 16-byte chunks of the next A and B slices
// while the current slices are multiplied, so global latency overlaps the tensor-core work.
const A_CHUNKS = A_ROWS * A_COLS / 8u;
const B_CHUNKS = B_ROWS * B_COLS / 8u;
const A_PER = (A_CHUNKS + THREADS - 1u) / THREADS;
const B_PER = (B_CHUNKS + THREADS - 1u) / THREADS;
const OUTSIDE = 0xffffffffu;

#if ${X3}
struct Chunk { w0: vec4<f32>, w1: vec4<f32> } // 8 f32 elements as loaded; split when staged (put_a/put_b),
                                              // so the prefetch's loads stay in flight during the multiplies

// Scaled elements v as halves: hi is v rounded to 11 significant bits on the bits (half an ulp added to the
// magnitude, then the low 13 bits cleared). With hi = f16(v) and r = f16(v − f32(hi)) instead, the H200
// results had f16 accuracy (the residual lost, presumably folded to 0 by the compiler). r = f16(v − hi)
// rounds the exact remainder; hi and r carry ~22 bits of v.
fn split4(x: vec4<f32>, s: f32) -> array<vec2<u32>, 2> {
  let v = x * s;
  let hf = bitcast<vec4<f32>>((bitcast<vec4<u32>>(v) + vec4<u32>(0x1000u)) & vec4<u32>(0xffffe000u));
  return array<vec2<u32>, 2>(bitcast<vec2<u32>>(vec4<f16>(hf)), bitcast<vec2<u32>>(vec4<f16>(v - hf)));
}

// Stages chunk w at `off` of the hi tile (dst) and the residual tile (dst + 2)
fn put_split(dst: u32, off: u32, w: Chunk, s: f32) {
  let a = split4(w.w0, s);
  let b = split4(w.w1, s);
  put8(dst, off, vec4<u32>(a[0], b[0]));
  put8(dst + 2u, off, vec4<u32>(a[1], b[1]));
}
#else
alias Chunk = vec4<u32>;
#endif

// Element index of chunk c (8 elements) of the A slice at K offset k0, or OUTSIDE
fn a_index(c: u32, k0: u32, row0: u32, base: u32) -> u32 {
  let r = c / (A_COLS / 8u);
  let col = (c % (A_COLS / 8u)) * 8u;
#if ${TRANS_A}
  let ok = k0 + r < p.K && row0 + col < p.M;
  let idx = base + (k0 + r) * p.M + row0 + col;
#else
  let ok = row0 + r < p.M && k0 + col < p.K;
  let idx = base + (row0 + r) * p.K + k0 + col;
#endif
  return select(OUTSIDE, idx, c < A_CHUNKS && ok);
}

fn b_index(c: u32, k0: u32, col0: u32, base: u32) -> u32 {
  let r = c / (B_COLS / 8u);
  let col = (c % (B_COLS / 8u)) * 8u;
#if ${TRANS_B}
  let ok = col0 + r < p.N && k0 + col < p.K;
  let idx = base + (col0 + r) * p.K + k0 + col;
#else
  let ok = k0 + r < p.K && col0 + col < p.N;
  let idx = base + (k0 + r) * p.N + col0 + col;
#endif
  return select(OUTSIDE, idx, c < B_CHUNKS && ok);
}

fn fetch_a(c: u32, k0: u32, row0: u32, base: u32) -> Chunk {
  let idx = a_index(c, k0, row0, base);
#if ${X3}
  if (idx != OUTSIDE) { return Chunk(A[idx / 4u], A[idx / 4u + 1u]); }
  return Chunk(vec4<f32>(0.0), vec4<f32>(0.0));
#else
  if (idx != OUTSIDE) { return A[idx / 8u]; }
  return vec4<u32>(0u);
#endif
}

fn fetch_b(c: u32, k0: u32, col0: u32, base: u32) -> Chunk {
  let idx = b_index(c, k0, col0, base);
#if ${X3}
  if (idx != OUTSIDE) { return Chunk(B[idx / 4u], B[idx / 4u + 1u]); }
  return Chunk(vec4<f32>(0.0), vec4<f32>(0.0));
#else
  if (idx != OUTSIDE) { return B[idx / 8u]; }
  return vec4<u32>(0u);
#endif
}

fn put_a(c: u32, w: Chunk) {
  if (c < A_CHUNKS) {
    let off = (c / (A_COLS / 8u)) * AS + (c % (A_COLS / 8u)) * 8u;
#if ${X3}
    put_split(0u, off, w, scale_a);
#else
    put8(0u, off, w);
#endif
  }
}

fn put_b(c: u32, w: Chunk) {
  if (c < B_CHUNKS) {
    let off = (c / (B_COLS / 8u)) * BS + (c % (B_COLS / 8u)) * 8u;
#if ${X3}
    put_split(1u, off, w, scale_b);
#else
    put8(1u, off, w);
#endif
  }
}
#endif

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

// Fragment loaders from the staged tiles: kk within the BK step, m / n offsets within the workgroup tile.
fn left_frag(kk: u32, m: u32) -> subgroup_matrix_left<f16, 16, 16> {
#if ${TRANS_A}
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, col_major>(&As, kk * AS + m, AS);
#else
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&As, m * AS + kk, AS);
#endif
}

fn right_frag(kk: u32, n: u32) -> subgroup_matrix_right<f16, 16, 16> {
#if ${TRANS_B}
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Bs, n * BS + kk, BS);
#else
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Bs, kk * BS + n, BS);
#endif
}

#if ${X3}
fn left_frag_r(kk: u32, m: u32) -> subgroup_matrix_left<f16, 16, 16> {
#if ${TRANS_A}
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, col_major>(&Ar, kk * AS + m, AS);
#else
  return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ar, m * AS + kk, AS);
#endif
}

fn right_frag_r(kk: u32, n: u32) -> subgroup_matrix_right<f16, 16, 16> {
#if ${TRANS_B}
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Br, n * BS + kk, BS);
#else
  return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Br, kk * BS + n, BS);
#endif
}
#endif

// Writes one accumulator fragment whose top-left is (m, n) in C: directly when the whole tile is in bounds
// and there is no epilogue (DIRECT), else through this subgroup's staging area with bias/GELU and bounds.
fn store_frag(acc: subgroup_matrix_result<f32, 16, 16>, m: u32, n: u32, c_base: u32, direct: bool, sg: u32, lane: u32, sg_size: u32) {
#if ${DIRECT}
  if (direct) {
    subgroupMatrixStore<row_major>(&C, c_base + m * p.N + n, acc, p.N);
    return;
  }
#endif
  let cs = sg * 256u;
  subgroupMatrixStore<row_major>(&Cs, cs, acc, 16u);
  workgroupBarrier();
  for (var e = lane; e < 256u; e += sg_size) {
    let mm = m + e / 16u;
    let nn = n + e % 16u;
    if (mm < p.M && nn < p.N) {
#if ${OUT_F16}
      C[c_base + mm * p.N + nn] = f16(epilogue(Cs[cs + e], nn));
#else
      C[c_base + mm * p.N + nn] = epilogue(Cs[cs + e], nn);
#endif
    }
  }
  workgroupBarrier();
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3u,
        @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(subgroup_size) sg_size: u32) {
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let m0 = (sg / SG_N) * 32u; // this subgroup's 32×64 block within the tile
  let n0 = (sg % SG_N) * 64u;
  let a_base = wid.z * p.stride_a;
  let b_base = wid.z * p.stride_b;
  let c_base = wid.z * p.stride_c;
#if ${X3}
  let ea = f16x3_exponent(max_a[0]);
  let eb = f16x3_exponent(max_b[0]);
  scale_a = ldexp(1.0, ea);
  scale_b = ldexp(1.0, eb);
#endif

  var acc00: subgroup_matrix_result<f32, 16, 16>;
  var acc01: subgroup_matrix_result<f32, 16, 16>;
  var acc02: subgroup_matrix_result<f32, 16, 16>;
  var acc03: subgroup_matrix_result<f32, 16, 16>;
  var acc10: subgroup_matrix_result<f32, 16, 16>;
  var acc11: subgroup_matrix_result<f32, 16, 16>;
  var acc12: subgroup_matrix_result<f32, 16, 16>;
  var acc13: subgroup_matrix_result<f32, 16, 16>;

#if ${PREFETCH}
  var ra: array<Chunk, A_PER>;
  var rb: array<Chunk, B_PER>;
  for (var i = 0u; i < A_PER; i++) { ra[i] = fetch_a(lid + i * THREADS, 0u, row0, a_base); }
  for (var i = 0u; i < B_PER; i++) { rb[i] = fetch_b(lid + i * THREADS, 0u, col0, b_base); }
#endif
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
#if ${PREFETCH}
    for (var i = 0u; i < A_PER; i++) { put_a(lid + i * THREADS, ra[i]); }
    for (var i = 0u; i < B_PER; i++) { put_b(lid + i * THREADS, rb[i]); }
    workgroupBarrier();
    if (k0 + BK < p.K) {
      for (var i = 0u; i < A_PER; i++) { ra[i] = fetch_a(lid + i * THREADS, k0 + BK, row0, a_base); }
      for (var i = 0u; i < B_PER; i++) { rb[i] = fetch_b(lid + i * THREADS, k0 + BK, col0, b_base); }
    }
#else
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
#endif
    for (var kk = 0u; kk < BK; kk += 16u) {
      let l0 = left_frag(kk, m0);
      let l1 = left_frag(kk, m0 + 16u);
#if ${X3}
      // acc += A_hi·B_hi + A_r·B_hi + A_hi·B_r (A_r·B_r is below f32's precision)
      let q0 = left_frag_r(kk, m0);
      let q1 = left_frag_r(kk, m0 + 16u);
      var r = right_frag(kk, n0);
      var t = right_frag_r(kk, n0);
      acc00 = subgroupMatrixMultiplyAccumulate(l0, r, acc00);
      acc10 = subgroupMatrixMultiplyAccumulate(l1, r, acc10);
      acc00 = subgroupMatrixMultiplyAccumulate(q0, r, acc00);
      acc10 = subgroupMatrixMultiplyAccumulate(q1, r, acc10);
      acc00 = subgroupMatrixMultiplyAccumulate(l0, t, acc00);
      acc10 = subgroupMatrixMultiplyAccumulate(l1, t, acc10);
      r = right_frag(kk, n0 + 16u);
      t = right_frag_r(kk, n0 + 16u);
      acc01 = subgroupMatrixMultiplyAccumulate(l0, r, acc01);
      acc11 = subgroupMatrixMultiplyAccumulate(l1, r, acc11);
      acc01 = subgroupMatrixMultiplyAccumulate(q0, r, acc01);
      acc11 = subgroupMatrixMultiplyAccumulate(q1, r, acc11);
      acc01 = subgroupMatrixMultiplyAccumulate(l0, t, acc01);
      acc11 = subgroupMatrixMultiplyAccumulate(l1, t, acc11);
      r = right_frag(kk, n0 + 32u);
      t = right_frag_r(kk, n0 + 32u);
      acc02 = subgroupMatrixMultiplyAccumulate(l0, r, acc02);
      acc12 = subgroupMatrixMultiplyAccumulate(l1, r, acc12);
      acc02 = subgroupMatrixMultiplyAccumulate(q0, r, acc02);
      acc12 = subgroupMatrixMultiplyAccumulate(q1, r, acc12);
      acc02 = subgroupMatrixMultiplyAccumulate(l0, t, acc02);
      acc12 = subgroupMatrixMultiplyAccumulate(l1, t, acc12);
      r = right_frag(kk, n0 + 48u);
      t = right_frag_r(kk, n0 + 48u);
      acc03 = subgroupMatrixMultiplyAccumulate(l0, r, acc03);
      acc13 = subgroupMatrixMultiplyAccumulate(l1, r, acc13);
      acc03 = subgroupMatrixMultiplyAccumulate(q0, r, acc03);
      acc13 = subgroupMatrixMultiplyAccumulate(q1, r, acc13);
      acc03 = subgroupMatrixMultiplyAccumulate(l0, t, acc03);
      acc13 = subgroupMatrixMultiplyAccumulate(l1, t, acc13);
#else
      var r = right_frag(kk, n0);
      acc00 = subgroupMatrixMultiplyAccumulate(l0, r, acc00);
      acc10 = subgroupMatrixMultiplyAccumulate(l1, r, acc10);
      r = right_frag(kk, n0 + 16u);
      acc01 = subgroupMatrixMultiplyAccumulate(l0, r, acc01);
      acc11 = subgroupMatrixMultiplyAccumulate(l1, r, acc11);
      r = right_frag(kk, n0 + 32u);
      acc02 = subgroupMatrixMultiplyAccumulate(l0, r, acc02);
      acc12 = subgroupMatrixMultiplyAccumulate(l1, r, acc12);
      r = right_frag(kk, n0 + 48u);
      acc03 = subgroupMatrixMultiplyAccumulate(l0, r, acc03);
      acc13 = subgroupMatrixMultiplyAccumulate(l1, r, acc13);
#endif
    }
    workgroupBarrier();
  }

#if ${X3}
  // The operands' scaling undone on the accumulators (in registers), before any store: X3 tiles without bias
  // are stored directly like plain ones (measured on the H200: +3–11 % per product, the STDiT step 1 658 →
  // 1 557 ms, against undoing it per element in the staged epilogue). Two factors: 2^-(ea+eb) may be outside
  // f32's range. They must be uniform values (subgroupMatrixScalarMultiply), hence lets, not private vars.
  let e = ea + eb;
  let s1 = ldexp(1.0, -e / 2);
  let s2 = ldexp(1.0, -(e - e / 2));
  acc00 = subgroupMatrixScalarMultiply(subgroupMatrixScalarMultiply(acc00, s1), s2);
  acc01 = subgroupMatrixScalarMultiply(subgroupMatrixScalarMultiply(acc01, s1), s2);
  acc02 = subgroupMatrixScalarMultiply(subgroupMatrixScalarMultiply(acc02, s1), s2);
  acc03 = subgroupMatrixScalarMultiply(subgroupMatrixScalarMultiply(acc03, s1), s2);
  acc10 = subgroupMatrixScalarMultiply(subgroupMatrixScalarMultiply(acc10, s1), s2);
  acc11 = subgroupMatrixScalarMultiply(subgroupMatrixScalarMultiply(acc11, s1), s2);
  acc12 = subgroupMatrixScalarMultiply(subgroupMatrixScalarMultiply(acc12, s1), s2);
  acc13 = subgroupMatrixScalarMultiply(subgroupMatrixScalarMultiply(acc13, s1), s2);
#endif
  let m = row0 + m0;
  let n = col0 + n0;
  let direct = row0 + BM <= p.M && col0 + BN <= p.N;
  store_frag(acc00, m, n, c_base, direct, sg, lane, sg_size);
  store_frag(acc01, m, n + 16u, c_base, direct, sg, lane, sg_size);
  store_frag(acc02, m, n + 32u, c_base, direct, sg, lane, sg_size);
  store_frag(acc03, m, n + 48u, c_base, direct, sg, lane, sg_size);
  store_frag(acc10, m + 16u, n, c_base, direct, sg, lane, sg_size);
  store_frag(acc11, m + 16u, n + 16u, c_base, direct, sg, lane, sg_size);
  store_frag(acc12, m + 16u, n + 32u, c_base, direct, sg, lane, sg_size);
  store_frag(acc13, m + 16u, n + 48u, c_base, direct, sg, lane, sg_size);
}
