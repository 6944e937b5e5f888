// Flash attention forward, portable (f32 math; q/k/v/o stored f32 or packed f16).
// Per (b, h): o = softmax(scale · q·kᵀ) · v over the first kend = min(Nk, kvLen[b]) keys, and the row
// log-sum-exp lse = ln Σ_k exp(scale · q·k) for the backward pass. Tensors are head-major and contiguous:
// q/o [B, H, Nq, D], k/v [B, H, Nk, D], lse [B, H, Nq], so row r of sequence bh starts at (bh·N + r)·D.
//
// A workgroup owns BR = TR·TY query rows of one sequence and streams the keys through workgroup memory
// in tiles of BC = TC·TX keys, with an online softmax (running max m and sum l per row, f32). The N×N
// scores never leave registers. Thread (ty, tx) owns rows ty + r·TY (r < TR) and, per key tile, keys
// tx + c·TX (c < TC) of the score block, and output columns (c·TX + tx)·4.. (c < TD4 vec4s) of o.
// Lanes run along ty (ty = lid % TY): with TY a multiple of the subgroup size every K and V read of a subgroup
// is one address, a broadcast (H100, B4 H16 N4096 D72: 17.2 → 18.8 TFLOP/s against lanes along tx, whose reads
// of 6 different keys cost like 32 different ones).
//   1. stage K, V tile (PREFETCH: loaded into registers a tile ahead, 3 barriers per tile, see the loop);
//   2. S = Q·Kᵀ (dot products over d, rows of Q and K padded to an odd vec4 stride RS so lanes hit
//   distinct banks; the first QK vec4s of the thread's Q rows from registers, which saves a third of the
//   loop's workgroup-memory reads), row max through `red`;  3. P = exp2(S − m), rescale o and l;
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

// q/k/v are read in load units W of UV vec4s (UV·4 elements), U units per row: VEC8 (f16, D a multiple of
// 8): vec4<u32> = 8 halves, 16 bytes, UV 2; VEC: vec4<f32> or vec2<u32> (4 halves), UV 1; neither: vec4<f32>
// assembled from scalar loads (zero past D), UV 1.
#if ${QKV_F16}
#if ${VEC8}
alias W = vec4<u32>;
#elif ${VEC}
alias W = vec2<u32>;
#else
alias W = u32;
#endif
#else
#if ${VEC}
alias W = vec4<f32>;
#else
alias W = f32;
#endif
#endif
@group(0) @binding(0) var<storage, read> q: array<W>;
@group(0) @binding(1) var<storage, read> k: array<W>;
@group(0) @binding(2) var<storage, read> v: array<W>;
// o: with STAGE_O, whole output units (OVEC: vec4<u32> = 8 halves or vec4<f32>), else words or floats.
#if ${O_F16}
#if ${OVEC}
@group(0) @binding(3) var<storage, read_write> o: array<vec4<u32>>;
#else
@group(0) @binding(3) var<storage, read_write> o: array<u32>;
#endif
#else
#if ${OVEC}
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
#else
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
#endif
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
const QK = ${QK}u;   // vec4s of the thread's Q rows also held in registers (1..D4)
const UV = ${UV}u;   // vec4s per load unit
const U = D4 / UV;   // load units per row
const NL = (BC * U + THREADS - 1u) / THREADS; // K (and V) tile units per thread
const NEG = -1.0e30;
const LN2 = 0.6931471805599453;

var<workgroup> qs: array<vec4<f32>, BR * RS>;
var<workgroup> ks: array<vec4<f32>, BC * RS>;
var<workgroup> vs: array<vec4<f32>, BC * D4P>;
var<workgroup> ps: array<RV, BC * TY>;
var<workgroup> red: array<f32, BR * TX>;
var<workgroup> kend_sh: u32;

// Unit u of row `row` of q, k or v, and vec4 h of a unit as f32.
#if ${VEC}
#if ${QKV_F16}
alias WR = W; // registers hold the packed words; unpacked when written to workgroup memory
fn unit(h: u32, w: W) -> vec4<f32> {
#if ${VEC8}
  let x = select(w.xy, w.zw, h == 1u);
#else
  let x = w;
#endif
  return vec4<f32>(unpack2x16float(x.x), unpack2x16float(x.y));
}
#else
alias WR = W;
fn unit(h: u32, w: W) -> vec4<f32> { return w; }
#endif
fn ld_q(row: u32, u: u32) -> WR { return q[row * U + u]; }
fn ld_k(row: u32, u: u32) -> WR { return k[row * U + u]; }
fn ld_v(row: u32, u: u32) -> WR { return v[row * U + u]; }
#else
// D not a multiple of 4: elements one by one (f16: half i of word i / 2), zero past D.
alias WR = vec4<f32>;
fn unit(h: u32, w: WR) -> vec4<f32> { return w; }
#if ${QKV_F16}
fn el(w: u32, i: u32) -> f32 { return unpack2x16float(w)[i & 1u]; }
fn ld_q(row: u32, d4: u32) -> WR {
  var x = WR();
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = el(q[i >> 1u], i); } }
  return x;
}
fn ld_k(row: u32, d4: u32) -> WR {
  var x = WR();
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = el(k[i >> 1u], i); } }
  return x;
}
fn ld_v(row: u32, d4: u32) -> WR {
  var x = WR();
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = el(v[i >> 1u], i); } }
  return x;
}
#else
fn ld_q(row: u32, d4: u32) -> WR {
  var x = WR();
  for (var j = 0u; j < 4u; j++) { if (d4 * 4u + j < D) { x[j] = q[row * D + d4 * 4u + j]; } }
  return x;
}
fn ld_k(row: u32, d4: u32) -> WR {
  var x = WR();
  for (var j = 0u; j < 4u; j++) { if (d4 * 4u + j < D) { x[j] = k[row * D + d4 * 4u + j]; } }
  return x;
}
fn ld_v(row: u32, d4: u32) -> WR {
  var x = WR();
  for (var j = 0u; j < 4u; j++) { if (d4 * 4u + j < D) { x[j] = v[row * D + d4 * 4u + j]; } }
  return x;
}
#endif
#endif

// The thread's share of a K or V tile in registers: units lid + j·THREADS (j < NL) of the tile's BC·U,
// unit i being unit i % U of key i / U; zeros past kend (masked values must not reach the sums).
alias Regs = array<WR, NL>;

fn load_k(lid: u32, kb: u32, k0: u32, kend: u32) -> Regs {
  var a: Regs;
  for (var j = 0u; j < NL; j++) {
    let i = lid + j * THREADS;
    let c = i / U;
    var w = WR();
    if (c < BC && k0 + c < kend) { w = ld_k(kb + k0 + c, i % U); }
    a[j] = w;
  }
  return a;
}

fn load_v(lid: u32, kb: u32, k0: u32, kend: u32) -> Regs {
  var a: Regs;
  for (var j = 0u; j < NL; j++) {
    let i = lid + j * THREADS;
    let c = i / U;
    var w = WR();
    if (c < BC && k0 + c < kend) { w = ld_v(kb + k0 + c, i % U); }
    a[j] = w;
  }
  return a;
}

fn store_k(lid: u32, a: Regs) {
  for (var j = 0u; j < NL; j++) {
    let i = lid + j * THREADS;
    let c = i / U;
    if (c < BC) {
      for (var h = 0u; h < UV; h++) { ks[c * RS + (i % U) * UV + h] = unit(h, a[j]); }
    }
  }
}

fn store_v(lid: u32, a: Regs) {
  for (var j = 0u; j < NL; j++) {
    let i = lid + j * THREADS;
    let c = i / U;
    if (c < BC) {
      for (var h = 0u; h < UV; h++) { vs[c * D4P + (i % U) * UV + h] = unit(h, a[j]); }
    }
  }
}

#if ${STAGE_O}
// Writes output unit u of row r of the tile (staged in qs) to o's row `row`: OVEC f16 8 halves, OVEC f32
// a vec4, else f16 word u (halves 2u, 2u + 1; D is even) or f32 element u. UO units per row.
const UO = ${UO}u;
fn st_o(row: u32, r: u32, u: u32) {
#if ${OVEC}
#if ${O_F16}
  let a = qs[r * RS + 2u * u];
  let b = qs[r * RS + 2u * u + 1u];
  o[row * UO + u] = vec4<u32>(pack_f16(a.x, a.y), pack_f16(a.z, a.w), pack_f16(b.x, b.y), pack_f16(b.z, b.w));
#else
  o[row * UO + u] = qs[r * RS + u];
#endif
#else
#if ${O_F16}
  let x = qs[r * RS + u / 2u];
  o[row * UO + u] = select(pack_f16(x.x, x.y), pack_f16(x.z, x.w), (u & 1u) == 1u);
#else
  o[row * UO + u] = qs[r * RS + u / 4u][u % 4u];
#endif
#endif
}
#else
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
#endif

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let flat = wid.x + wid.y * p.gx;
  if (flat >= p.total) { return; }
  let bh = flat / p.row_tiles;
  let r0 = (flat % p.row_tiles) * BR;
  let qb = bh * p.nq + r0; // first global query row of the tile
  let kb = bh * p.nk;
  let tx = lid / TY; // lanes along ty: see the header
  let ty = lid % TY;

  if (lid == 0u) {
#if ${MASK}
    kend_sh = min(p.nk, u32(max(i32(kv_len[bh / p.heads]), 0)));
#else
    kend_sh = p.nk;
#endif
  }
  for (var i = lid; i < BR * U; i += THREADS) {
    let r = i / U;
    var w = WR();
    if (r0 + r < p.nq) { w = ld_q(qb + r, i % U); }
    for (var h = 0u; h < UV; h++) { qs[r * RS + (i % U) * UV + h] = unit(h, w); }
  }
  // V's padding columns D4 .. D4P (only products into unstored o columns, but keep them finite)
  for (var i = lid; i < BC * D4P; i += THREADS) { if (i % D4P >= D4) { vs[i] = vec4<f32>(0.0); } }
  let kend = workgroupUniformLoad(&kend_sh); // also the barrier after staging Q

  var m: array<f32, TR>;
  var l: array<f32, TR>;
  var acc: array<vec4<f32>, TR * TD4>;
  for (var r = 0u; r < TR; r++) { m[r] = NEG; }
  var qreg: array<vec4<f32>, TR * QK>; // the first QK vec4s of the thread's Q rows
  for (var r = 0u; r < TR; r++) { for (var d4 = 0u; d4 < QK; d4++) { qreg[r * QK + d4] = qs[(r * TY + ty) * RS + d4]; } }

#if ${PREFETCH}
  store_k(lid, load_k(lid, kb, 0u, kend));
  var rv = load_v(lid, kb, 0u, kend);
  var rk: Regs;
  workgroupBarrier(); // K of the first tile staged (later tiles: the loop's last barrier)
#endif
  for (var k0 = 0u; k0 < kend; k0 += BC) {
    // 1. stage the key tile.
#if ${PREFETCH}
    // Software pipeline: K of this tile was written after the previous tile's scores (visible since that tile's
    // last barrier), V is written below once everyone is past the previous P·V; the next tile's K loads are
    // issued now, its V loads after the scores, so their latency hides behind this tile's math.
    let more = k0 + BC < kend;
    if (more) { rk = load_k(lid, kb, k0 + BC, kend); }
#else
    store_k(lid, load_k(lid, kb, k0, kend));
    store_v(lid, load_v(lid, kb, k0, kend));
    workgroupBarrier();
#endif

    // 2. scores of the thread's TR×TC block, in log2 units; masked keys → NEG; per-thread row maxima
    var s = array<f32, TR * TC>(); // explicit zeros: a bare declaration in a loop is not re-zeroed on every driver
    for (var d4 = 0u; d4 < QK; d4++) {
      var kr: array<vec4<f32>, TC>;
      for (var c = 0u; c < TC; c++) { kr[c] = ks[(c * TX + tx) * RS + d4]; }
      for (var r = 0u; r < TR; r++) {
        let qr = qreg[r * QK + d4];
        for (var c = 0u; c < TC; c++) { s[r * TC + c] += dot(qr, kr[c]); }
      }
    }
    for (var d4 = QK; d4 < D4; d4++) {
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
#if ${PREFETCH}
    store_v(lid, rv);
    if (more) { rv = load_v(lid, kb, k0 + BC, kend); }
#endif

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
#if ${PREFETCH}
    if (more) { store_k(lid, rk); }
#endif

    // 4. o += P·V
    for (var c = 0u; c < BC; c++) {
      let pv = ps[c * TY + ty];
      for (var j = 0u; j < TD4; j++) {
        let vx = vs[c * D4P + j * TX + tx];
        for (var r = 0u; r < TR; r++) { acc[r * TD4 + j] = fma(vec4<f32>(pv[r]), vx, acc[r * TD4 + j]); }
      }
    }
    workgroupBarrier(); // before the next tile overwrites ks, vs
  }

  // Row sums over the tx threads, then o = acc / l and lse = ln(2^m · l).
  for (var r = 0u; r < TR; r++) { red[(r * TY + ty) * TX + tx] = l[r]; }
  workgroupBarrier();
  for (var r = 0u; r < TR; r++) {
    let row = r * TY + ty;
    var lt = 0.0;
    for (var t = 0u; t < TX; t++) { lt += red[row * TX + t]; }
    let inv = select(0.0, 1.0 / lt, lt > 0.0); // lt == 0 only when kvLen is 0: o = 0
#if ${STAGE_O}
    // o rows through qs (no longer read), then stored in whole units by all threads; the epilogue indexes acc
    // only in these simple loops, so it stays in registers
    for (var j = 0u; j < TD4; j++) { qs[row * RS + j * TX + tx] = acc[r * TD4 + j] * inv; }
#else
    if (r0 + row < p.nq) {
      for (var j = 0u; j < TD4; j++) { st_o(qb + row, j * TX + tx, acc[r * TD4 + j] * inv); }
    }
#endif
    if (tx == 0u && r0 + row < p.nq) { lse[qb + row] = select(NEG, (m[r] + log2(lt)) * LN2, lt > 0.0); }
  }
#if ${STAGE_O}
  workgroupBarrier();
  for (var i = lid; i < BR * UO; i += THREADS) {
    let r = i / UO;
    if (r0 + r < p.nq) { st_o(qb + r, r, i % UO); }
  }
#endif
}
