// Portable register-blocked matmul: C[b] = act(op(A[b]) · op(B[b]) + bias), f32 arithmetic.
// op(A) is M×K (A stored M×K, or K×M with TRANS_A); op(B) is K×N (B stored K×N, or N×K with TRANS_B).
// A workgroup computes a BM×BN tile of C; each thread a TM×TN block held in registers as vec4 columns.
// The K loop stages BK-deep slices of A and B in workgroup memory (k-major, so the inner loop reads
// vec4s; VEC_A/VEC_B: f32 operands whose stored rows are multiples of 4 are staged with 16-byte loads).
// f16 inputs/outputs are packed words (unpack2x16float / pack_f16 from f16.wgsl), so this runs without shader-f16.
// Grid: x = column tiles, y = row tiles, z = batch.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  stride_a: u32, // elements between batch items of A (0: shared)
  stride_b: u32,
  stride_c: u32,
}

#if ${A_F16}
@group(0) @binding(0) var<storage, read> A: array<u32>;
#elif ${VEC_A}
@group(0) @binding(0) var<storage, read> A4: array<vec4<f32>>;
#else
@group(0) @binding(0) var<storage, read> A: array<f32>;
#endif
#if ${B_F16}
@group(0) @binding(1) var<storage, read> B: array<u32>;
#elif ${VEC_B}
@group(0) @binding(1) var<storage, read> B4: array<vec4<f32>>;
#else
@group(0) @binding(1) var<storage, read> B: array<f32>;
#endif
#if ${OUT_F16}
@group(0) @binding(2) var<storage, read_write> C: array<u32>;
#else
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
#endif
#if ${BIAS}
#if ${BIAS_F16}
@group(0) @binding(3) var<storage, read> bias: array<u32>;
#else
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
#endif
@group(0) @binding(4) var<uniform> p: Params;

const BM = ${BM}u;
const BN = ${BN}u;
const BK = ${BK}u;
const TM = ${TM}u;
const TN = ${TN}u;
const TM4 = TM / 4u;          // vec4 row groups per thread
const TN4 = TN / 4u;          // vec4 column groups per thread
const THREADS_N = BN / TN;
const THREADS = (BM / TM) * (BN / TN);

var<workgroup> As: array<vec4<f32>, BK * BM / 4u>; // As[k][m]
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>; // Bs[k][n]

#if ${VEC_A}
#else
fn load_a(i: u32) -> f32 {
#if ${A_F16}
  return unpack2x16float(A[i >> 1u])[i & 1u];
#else
  return A[i];
#endif
}
#endif

#if ${VEC_B}
#else
fn load_b(i: u32) -> f32 {
#if ${B_F16}
  return unpack2x16float(B[i >> 1u])[i & 1u];
#else
  return B[i];
#endif
}
#endif

// 16-byte staging (VEC_A / VEC_B): chunk i of the BM×BK (BK×BN) slice as stored, zero outside the matrix.
#if ${VEC_A}
fn fetch_a4(i: u32, k0: u32, row0: u32, base: u32) -> vec4<f32> {
#if ${TRANS_A}
  let m = (i % (BM / 4u)) * 4u;
  let k = i / (BM / 4u);
  if (row0 + m < p.M && k0 + k < p.K) { return A4[(base + (k0 + k) * p.M + row0 + m) / 4u]; }
#else
  let k = (i % (BK / 4u)) * 4u;
  let m = i / (BK / 4u);
  if (row0 + m < p.M && k0 + k < p.K) { return A4[(base + (row0 + m) * p.K + k0 + k) / 4u]; }
#endif
  return vec4<f32>(0.0);
}

fn put_a4(i: u32, v: vec4<f32>) {
#if ${TRANS_A}
  As[i] = v; // (k, m..m+3) is already a vec4 of As[k][m]
#else
  let k = (i % (BK / 4u)) * 4u;
  let m = i / (BK / 4u);
  As[(k * BM + m) / 4u][m % 4u] = v.x;
  As[((k + 1u) * BM + m) / 4u][m % 4u] = v.y;
  As[((k + 2u) * BM + m) / 4u][m % 4u] = v.z;
  As[((k + 3u) * BM + m) / 4u][m % 4u] = v.w;
#endif
}
#endif

#if ${VEC_B}
fn fetch_b4(i: u32, k0: u32, col0: u32, base: u32) -> vec4<f32> {
#if ${TRANS_B}
  let k = (i % (BK / 4u)) * 4u;
  let n = i / (BK / 4u);
  if (col0 + n < p.N && k0 + k < p.K) { return B4[(base + (col0 + n) * p.K + k0 + k) / 4u]; }
#else
  let n = (i % (BN / 4u)) * 4u;
  let k = i / (BN / 4u);
  if (col0 + n < p.N && k0 + k < p.K) { return B4[(base + (k0 + k) * p.N + col0 + n) / 4u]; }
#endif
  return vec4<f32>(0.0);
}

fn put_b4(i: u32, v: vec4<f32>) {
#if ${TRANS_B}
  let k = (i % (BK / 4u)) * 4u;
  let n = i / (BK / 4u);
  Bs[(k * BN + n) / 4u][n % 4u] = v.x;
  Bs[((k + 1u) * BN + n) / 4u][n % 4u] = v.y;
  Bs[((k + 2u) * BN + n) / 4u][n % 4u] = v.z;
  Bs[((k + 3u) * BN + n) / 4u][n % 4u] = v.w;
#else
  Bs[i] = v;
#endif
}
#endif

#if ${PREFETCH}
// Both operands VEC: each thread keeps its chunks of the next K slice in registers during the FMAs.
const A_PER = (BM * BK / 4u + THREADS - 1u) / THREADS;
const B_PER = (BN * BK / 4u + THREADS - 1u) / THREADS;
#endif

fn epilogue(v: f32, n: u32) -> f32 {
  var x = v;
#if ${BIAS}
#if ${BIAS_F16}
  x += unpack2x16float(bias[n >> 1u])[n & 1u];
#else
  x += bias[n];
#endif
#endif
#if ${GELU}
  // tanh-approximate GELU written as x·sigmoid(2u): no overflow for large |x|
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  x = x / (1.0 + exp(-2.0 * u));
#endif
  return x;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % THREADS_N;
  let ty = lid / THREADS_N;
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let a_base = wid.z * p.stride_a;
  let b_base = wid.z * p.stride_b;
  let c_base = wid.z * p.stride_c;

  var acc: array<vec4<f32>, TM * TN4>;
#if ${PREFETCH}
  var ra: array<vec4<f32>, A_PER>;
  var rb: array<vec4<f32>, B_PER>;
  for (var j = 0u; j < A_PER; j++) { ra[j] = fetch_a4(lid + j * THREADS, 0u, row0, a_base); }
  for (var j = 0u; j < B_PER; j++) { rb[j] = fetch_b4(lid + j * THREADS, 0u, col0, b_base); }
#endif
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
#if ${PREFETCH}
    for (var j = 0u; j < A_PER; j++) { if (lid + j * THREADS < BM * BK / 4u) { put_a4(lid + j * THREADS, ra[j]); } }
    for (var j = 0u; j < B_PER; j++) { if (lid + j * THREADS < BN * BK / 4u) { put_b4(lid + j * THREADS, rb[j]); } }
    workgroupBarrier();
    if (k0 + BK < p.K) {
      for (var j = 0u; j < A_PER; j++) { ra[j] = fetch_a4(lid + j * THREADS, k0 + BK, row0, a_base); }
      for (var j = 0u; j < B_PER; j++) { rb[j] = fetch_b4(lid + j * THREADS, k0 + BK, col0, b_base); }
    }
#else
    // Stage op(A)[row0.., k0..] and op(B)[k0.., col0..]; threads walk the stored layout's fast axis.
#if ${VEC_A}
    for (var i = lid; i < BM * BK / 4u; i += THREADS) { put_a4(i, fetch_a4(i, k0, row0, a_base)); }
#else
    for (var i = lid; i < BM * BK; i += THREADS) {
#if ${TRANS_A}
      let m = i % BM;
      let k = i / BM;
      let gm = row0 + m;
      let gk = k0 + k;
      var v = 0.0;
      if (gm < p.M && gk < p.K) { v = load_a(a_base + gk * p.M + gm); }
#else
      let k = i % BK;
      let m = i / BK;
      let gm = row0 + m;
      let gk = k0 + k;
      var v = 0.0;
      if (gm < p.M && gk < p.K) { v = load_a(a_base + gm * p.K + gk); }
#endif
      As[(k * BM + m) / 4u][m % 4u] = v;
    }
#endif
#if ${VEC_B}
    for (var i = lid; i < BN * BK / 4u; i += THREADS) { put_b4(i, fetch_b4(i, k0, col0, b_base)); }
#else
    for (var i = lid; i < BN * BK; i += THREADS) {
#if ${TRANS_B}
      let k = i % BK;
      let n = i / BK;
      let gn = col0 + n;
      let gk = k0 + k;
      var v = 0.0;
      if (gn < p.N && gk < p.K) { v = load_b(b_base + gn * p.K + gk); }
#else
      let n = i % BN;
      let k = i / BN;
      let gn = col0 + n;
      let gk = k0 + k;
      var v = 0.0;
      if (gn < p.N && gk < p.K) { v = load_b(b_base + gk * p.N + gn); }
#endif
      Bs[(k * BN + n) / 4u][n % 4u] = v;
    }
#endif
    workgroupBarrier();
#endif

    for (var k = 0u; k < BK; k++) {
      var a: array<vec4<f32>, TM4>;
      var b: array<vec4<f32>, TN4>;
      for (var c = 0u; c < TM4; c++) { a[c] = As[k * (BM / 4u) + c * (BM / TM4 / 4u) + ty]; }
      for (var c = 0u; c < TN4; c++) { b[c] = Bs[k * (BN / 4u) + c * (BN / TN4 / 4u) + tx]; }
      for (var c = 0u; c < TM4; c++) {
        for (var r = 0u; r < 4u; r++) {
          let av = a[c][r];
          for (var j = 0u; j < TN4; j++) {
            acc[(c * 4u + r) * TN4 + j] = fma(vec4<f32>(av), b[j], acc[(c * 4u + r) * TN4 + j]);
          }
        }
      }
    }
    workgroupBarrier();
  }

  // Thread (tx, ty) owns rows c·(BM/TM4) + 4·ty + r and columns j·(BN/TN4) + 4·tx + q.
  for (var c = 0u; c < TM4; c++) {
    for (var r = 0u; r < 4u; r++) {
      let m = row0 + c * (BM / TM4) + ty * 4u + r;
      if (m >= p.M) { continue; }
      for (var j = 0u; j < TN4; j++) {
        let n = col0 + j * (BN / TN4) + tx * 4u;
        let v = acc[(c * 4u + r) * TN4 + j];
        let o = c_base + m * p.N + n;
#if ${OUT_F16}
        // N is even (checked by the op), so each pair of columns is one aligned word.
        if (n < p.N) { C[o >> 1u] = pack_f16(epilogue(v.x, n), epilogue(v.y, n + 1u)); }
        if (n + 2u < p.N) { C[(o >> 1u) + 1u] = pack_f16(epilogue(v.z, n + 2u), epilogue(v.w, n + 3u)); }
#else
        if (n < p.N) { C[o] = epilogue(v.x, n); }
        if (n + 1u < p.N) { C[o + 1u] = epilogue(v.y, n + 1u); }
        if (n + 2u < p.N) { C[o + 2u] = epilogue(v.z, n + 2u); }
        if (n + 3u < p.N) { C[o + 3u] = epilogue(v.w, n + 3u); }
#endif
      }
    }
  }
}
