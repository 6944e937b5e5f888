// Flash attention forward, portable (f32 math; q/k/v/o stored f32 or packed f16).
// Per (b, h): o = softmax(scale · q·kᵀ) · v over the first kend = min(Nk, kvLen[b]) keys, and the row
// log-sum-exp lse = ln Σ_k exp(scale · q·k) for the backward pass. Tensors are head-major and contiguous:
// q/o [B, H, Nq, D], k/v [B, H, Nk, D], lse [B, H, Nq], so row r of sequence bh starts at (bh·N + r)·D.
//
// A workgroup owns BR = TR·TY query rows of one sequence and streams the keys through workgroup memory
// in tiles of BC = TC·TX keys, with an online softmax (running max m and sum l per row, f32). The N×N
// scores never leave registers. Thread (ty, tx) owns rows ty + r·TY (r < TR) and, per key tile, keys
// tx + c·TX (c < TC) of the score block, and output columns (c·TX + tx)·4.. (c < TD4 vec4s) of o.
//   1. stage K, V tile;  2. S = Q·Kᵀ (dot products over d, rows of Q and K padded to an odd vec4 stride
//   RS so lanes hit distinct banks), row max through `red`;  3. P = exp2(S − m), rescale o and l;
//   4. o += P·V with P staged in workgroup memory as [key][ty] vectors of the thread's TR rows.
// Scores are kept in log2 units (scale · log2 e), so the exponentials are exp2.
// Grid: (row tile, bh) flattened, folded into y past the per-dimension limit.

struct Params {
  nq: u32,
  nk: u32,
  heads: u32,
  row_tiles: u32, // query tiles per sequence
  gx: u32,        // workgroups along x
  total: u32,     // row_tiles · B · H
  scale2: f32,    // softmax scale · log2(e)
}

// VEC: D is a multiple of 4, so rows load as 16-byte (f32) or 8-byte (packed f16) chunks.
#if ${QKV_F16}
#if ${VEC}
@group(0) @binding(0) var<storage, read> q: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read> k: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> v: array<vec2<u32>>;
#else
@group(0) @binding(0) var<storage, read> q: array<u32>;
@group(0) @binding(1) var<storage, read> k: array<u32>;
@group(0) @binding(2) var<storage, read> v: array<u32>;
#endif
#else
#if ${VEC}
@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
#else
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
#endif
#endif
#if ${O_F16}
@group(0) @binding(3) var<storage, read_write> o: array<u32>;
#else
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
#if ${MASK}
@group(0) @binding(5) var<storage, read> kv_len: array<${KVT}>;
#endif
@group(0) @binding(6) var<uniform> p: Params;

alias RV = vec${TR}<f32>;  // one thread's TR rows of a P column
const TR = ${TR}u;
const TY = ${TY}u;
const TX = ${TX}u;
const TC = ${TC}u;
const BR = TR * TY;
const BC = TC * TX;
const THREADS = TX * TY;
const D = ${D}u;
const D4 = ${D4}u;   // vec4s per row
const TD4 = ${TD4}u; // output vec4s per thread
const D4P = TD4 * TX; // D4 padded to the thread layout
const RS = ${RS}u;   // odd row stride (vec4s) of the staged Q and K tiles
const NEG = -1.0e30;
const LN2 = 0.6931471805599453;

var<workgroup> qs: array<vec4<f32>, BR * RS>;
var<workgroup> ks: array<vec4<f32>, BC * RS>;
var<workgroup> vs: array<vec4<f32>, BC * D4P>;
var<workgroup> ps: array<RV, BC * TY>;
var<workgroup> red: array<f32, BR * TX>;
var<workgroup> kend_sh: u32;

// Elements d4·4 .. d4·4+3 of row `row` (zero past D).
#if ${QKV_F16}
#if ${VEC}
fn ld(w: vec2<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
fn ld_q(row: u32, d4: u32) -> vec4<f32> { return ld(q[row * D4 + d4]); }
fn ld_k(row: u32, d4: u32) -> vec4<f32> { return ld(k[row * D4 + d4]); }
fn ld_v(row: u32, d4: u32) -> vec4<f32> { return ld(v[row * D4 + d4]); }
#else
fn h(w: u32, i: u32) -> f32 { return unpack2x16float(w)[i & 1u]; }
fn ld_q(row: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = h(q[i >> 1u], i); } }
  return x;
}
fn ld_k(row: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = h(k[i >> 1u], i); } }
  return x;
}
fn ld_v(row: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = h(v[i >> 1u], i); } }
  return x;
}
#endif
#else
#if ${VEC}
fn ld_q(row: u32, d4: u32) -> vec4<f32> { return q[row * D4 + d4]; }
fn ld_k(row: u32, d4: u32) -> vec4<f32> { return k[row * D4 + d4]; }
fn ld_v(row: u32, d4: u32) -> vec4<f32> { return v[row * D4 + d4]; }
#else
fn ld_q(row: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (d4 * 4u + j < D) { x[j] = q[row * D + d4 * 4u + j]; } }
  return x;
}
fn ld_k(row: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (d4 * 4u + j < D) { x[j] = k[row * D + d4 * 4u + j]; } }
  return x;
}
fn ld_v(row: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (d4 * 4u + j < D) { x[j] = v[row * D + d4 * 4u + j]; } }
  return x;
}
#endif
#endif

// Writes elements d4·4 .. of o's row `row` (those below D; f16 in whole words: D is even).
fn st_o(row: u32, d4: u32, x: vec4<f32>) {
  let i = row * D + d4 * 4u;
#if ${O_F16}
  if (d4 * 4u < D) { o[i >> 1u] = pack_f16(x.x, x.y); }
  if (d4 * 4u + 2u < D) { o[(i >> 1u) + 1u] = pack_f16(x.z, x.w); }
#else
  for (var j = 0u; j < 4u; j++) { if (d4 * 4u + j < D) { o[i + j] = x[j]; } }
#endif
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let flat = wid.x + wid.y * p.gx;
  if (flat >= p.total) { return; }
  let bh = flat / p.row_tiles;
  let r0 = (flat % p.row_tiles) * BR;
  let qb = bh * p.nq + r0; // first global query row of the tile
  let kb = bh * p.nk;
  let tx = lid % TX;
  let ty = lid / TX;

  if (lid == 0u) {
#if ${MASK}
    kend_sh = min(p.nk, u32(max(i32(kv_len[bh / p.heads]), 0)));
#else
    kend_sh = p.nk;
#endif
  }
  for (var i = lid; i < BR * D4; i += THREADS) {
    let r = i / D4;
    let d4 = i % D4;
    var x = vec4<f32>(0.0);
    if (r0 + r < p.nq) { x = ld_q(qb + r, d4); }
    qs[r * RS + d4] = x;
  }
  let kend = workgroupUniformLoad(&kend_sh); // also the barrier after staging Q

  var m: array<f32, TR>;
  var l: array<f32, TR>;
  var acc: array<vec4<f32>, TR * TD4>;
  for (var r = 0u; r < TR; r++) { m[r] = NEG; }

  for (var k0 = 0u; k0 < kend; k0 += BC) {
    // 1. stage the key tile (zeros past kend, so masked values never reach the sums)
    for (var i = lid; i < BC * D4P; i += THREADS) {
      let c = i / D4P;
      let d4 = i % D4P;
      var kx = vec4<f32>(0.0);
      var vx = vec4<f32>(0.0);
      if (k0 + c < kend && d4 < D4) {
        kx = ld_k(kb + k0 + c, d4);
        vx = ld_v(kb + k0 + c, d4);
      }
      if (d4 < D4) { ks[c * RS + d4] = kx; }
      vs[c * D4P + d4] = vx;
    }
    workgroupBarrier();

    // 2. scores of the thread's TR×TC block, in log2 units; masked keys → NEG; per-thread row maxima
    var s = array<f32, TR * TC>(); // explicit zeros: a bare declaration in a loop is not re-zeroed on every driver
    for (var d4 = 0u; d4 < D4; d4++) {
      var kr: array<vec4<f32>, TC>;
      for (var c = 0u; c < TC; c++) { kr[c] = ks[(c * TX + tx) * RS + d4]; }
      for (var r = 0u; r < TR; r++) {
        let qr = qs[(r * TY + ty) * RS + d4];
        for (var c = 0u; c < TC; c++) { s[r * TC + c] += dot(qr, kr[c]); }
      }
    }
    for (var r = 0u; r < TR; r++) {
      var mx = NEG;
      for (var c = 0u; c < TC; c++) {
        var x = s[r * TC + c] * p.scale2;
        if (k0 + c * TX + tx >= kend) { x = NEG; }
        s[r * TC + c] = x;
        mx = max(mx, x);
      }
      red[(r * TY + ty) * TX + tx] = mx;
    }
    workgroupBarrier();

    // 3. new row maxima (every key tile holds a valid key, so they are finite), P, rescaled o and l
    for (var r = 0u; r < TR; r++) {
      var mx = m[r];
      for (var t = 0u; t < TX; t++) { mx = max(mx, red[(r * TY + ty) * TX + t]); }
      let alpha = exp2(m[r] - mx);
      m[r] = mx;
      var sum = 0.0;
      for (var c = 0u; c < TC; c++) {
        let e = exp2(s[r * TC + c] - mx);
        s[r * TC + c] = e;
        sum += e;
      }
      l[r] = l[r] * alpha + sum; // this thread's keys only; summed over tx at the end
      for (var c = 0u; c < TD4; c++) { acc[r * TD4 + c] *= alpha; }
    }
    for (var c = 0u; c < TC; c++) {
      var pv: RV;
      for (var r = 0u; r < TR; r++) { pv[r] = s[r * TC + c]; }
      ps[(c * TX + tx) * TY + ty] = pv;
    }
    workgroupBarrier();

    // 4. o += P·V
    for (var c = 0u; c < BC; c++) {
      let pv = ps[c * TY + ty];
      for (var j = 0u; j < TD4; j++) {
        let vx = vs[c * D4P + j * TX + tx];
        for (var r = 0u; r < TR; r++) { acc[r * TD4 + j] = fma(vec4<f32>(pv[r]), vx, acc[r * TD4 + j]); }
      }
    }
    workgroupBarrier();
  }

  // Row sums over the tx threads, then o = acc / l and lse = ln(2^m · l).
  for (var r = 0u; r < TR; r++) { red[(r * TY + ty) * TX + tx] = l[r]; }
  workgroupBarrier();
  for (var r = 0u; r < TR; r++) {
    let row = r * TY + ty;
    if (r0 + row >= p.nq) { continue; }
    var lt = 0.0;
    for (var t = 0u; t < TX; t++) { lt += red[row * TX + t]; }
    let inv = select(0.0, 1.0 / lt, lt > 0.0); // lt == 0 only when kvLen is 0: o = 0
    for (var j = 0u; j < TD4; j++) { st_o(qb + row, j * TX + tx, acc[r * TD4 + j] * inv); }
    if (tx == 0u) { lse[qb + row] = select(NEG, (m[r] + log2(lt)) * LN2, lt > 0.0); }
  }
}
