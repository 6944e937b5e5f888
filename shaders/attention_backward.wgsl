// Flash attention backward, portable (f32 math; tensors f32 or packed f16), FlashAttention-2 style:
// scores are recomputed tile by tile from q, k and the forward's lse, never stored whole.
//   P = exp(scale·q·kᵀ − lse),  dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P∘(dP − Dr),  Dr = rowsum(dO∘O),
//   dQ = scale·dS·K,  dK = scale·dSᵀ·Q.   Keys at or past kend = min(Nk, kvLen[b]) get zero gradient.
// Three entry points, one per variant flag (each variant declares only its own bindings):
//   PRE   pre:  Dr[row] = Σ_d dO·O, a thread per row.
//   DKDV  dkdv: a workgroup per key tile (BR = TR·TY keys) accumulates dK and dV in registers while it
//               loops over all query tiles (BC = TC·TX queries each): deterministic, no atomics.
//   DQ    dq:   a workgroup per query tile (BR queries) accumulates dQ while it loops over key tiles.
// Both tile kernels use the layout of the forward (shaders/attention.wgsl): thread (ty, tx) owns tile rows
// ty + r·TY and streamed columns tx + c·TX of the score block, and output columns (c·TX + tx)·4.. of the
// gradient rows; rows read by dot products are staged with an odd vec4 stride RS (distinct banks). Lanes run along
// ty as in the forward (reads of the streamed tile: one address per TY lanes), and the next streamed tile is
// fetched into registers during this one's math and stored after its last barrier (H100: 9.9 → 11.3 TFLOP/s).
// Layout: q/o/dO [B, H, Nq, D], k/v [B, H, Nk, D], lse/Dr [B, H, Nq], contiguous, head-major.

struct Params {
  nq: u32,
  nk: u32,
  heads: u32,
  row_tiles: u32, // tiles per sequence (keys for dkdv, queries for dq); rows for pre
  gx: u32,        // workgroups along x
  total: u32,     // workgroups in all
  scale: f32,     // softmax scale
  scale2: f32,    // scale · log2(e)
}

const TR = ${TR}u;
const TY = ${TY}u;
const TX = ${TX}u;
const TC = ${TC}u;
const BR = TR * TY;
const BC = TC * TX;
const THREADS = TX * TY;
const D = ${D}u;
const D4 = ${D4}u;
const TD4 = ${TD4}u;
const D4P = TD4 * TX;
const RS = ${RS}u; // odd, ≥ D4P
const LOG2E = 1.4426950408889634;
alias RV = vec${TR}<f32>;


// ---- bindings ---------------------------------------------------------------------------------------
// Word types: QW for q, k, v and the gradients, OW for o and dO: vec4<f32> or vec2<u32> (4 packed halves)
// when VEC (D % 4 == 0: rows load in 16- or 8-byte chunks), else f32 or u32 (2 packed halves).
#if ${PRE}
@group(0) @binding(0) var<storage, read> o: array<${OW}>;
@group(0) @binding(1) var<storage, read> dout: array<${OW}>;
@group(0) @binding(2) var<storage, read_write> dr_out: array<f32>;
#else
@group(0) @binding(0) var<storage, read> q: array<${QW}>;
@group(0) @binding(1) var<storage, read> k: array<${QW}>;
@group(0) @binding(2) var<storage, read> v: array<${QW}>;
@group(0) @binding(3) var<storage, read> dout: array<${OW}>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> dr: array<f32>;
#if ${DKDV}
@group(0) @binding(6) var<storage, read_write> dk: array<${QW}>;
@group(0) @binding(7) var<storage, read_write> dv: array<${QW}>;
#else
@group(0) @binding(6) var<storage, read_write> dq: array<${QW}>;
#endif
#if ${MASK}
@group(0) @binding(8) var<storage, read> kv_len: array<${KVT}>;
#endif
#endif
@group(0) @binding(9) var<uniform> p: Params;

// ---- loads and stores ---------------------------------------------------------------------------------
// cq/co: a VEC word as 4 floats; eq/eo: element i from its (scalar) word. Loads give elements d4·4 ..
// d4·4+3 of a row, zero past D.
#if ${QKV_F16}
fn cq(w: vec2<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
fn eq(w: u32, i: u32) -> f32 { return unpack2x16float(w)[i & 1u]; }
const SQ = 1u; // element → word shift
#else
fn cq(w: vec4<f32>) -> vec4<f32> { return w; }
fn eq(w: f32, i: u32) -> f32 { return w; }
const SQ = 0u;
#endif
#if ${O_F16}
fn co(w: vec2<u32>) -> vec4<f32> { return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }
fn eo(w: u32, i: u32) -> f32 { return unpack2x16float(w)[i & 1u]; }
const SO = 1u;
#else
fn co(w: vec4<f32>) -> vec4<f32> { return w; }
fn eo(w: f32, i: u32) -> f32 { return w; }
const SO = 0u;
#endif

#if ${PRE}
fn ld_o(row: u32, d4: u32) -> vec4<f32> {
#if ${VEC}
  return co(o[row * D4 + d4]);
#else
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = eo(o[i >> SO], i); } }
  return x;
#endif
}
#else
fn ld_q(row: u32, d4: u32) -> vec4<f32> {
#if ${VEC}
  return cq(q[row * D4 + d4]);
#else
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = eq(q[i >> SQ], i); } }
  return x;
#endif
}
fn ld_k(row: u32, d4: u32) -> vec4<f32> {
#if ${VEC}
  return cq(k[row * D4 + d4]);
#else
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = eq(k[i >> SQ], i); } }
  return x;
#endif
}
fn ld_v(row: u32, d4: u32) -> vec4<f32> {
#if ${VEC}
  return cq(v[row * D4 + d4]);
#else
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = eq(v[i >> SQ], i); } }
  return x;
#endif
}
#endif
fn ld_do(row: u32, d4: u32) -> vec4<f32> {
#if ${VEC}
  return co(dout[row * D4 + d4]);
#else
  var x = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { let i = row * D + d4 * 4u + j; if (d4 * 4u + j < D) { x[j] = eo(dout[i >> SO], i); } }
  return x;
#endif
}

// A gradient's row chunk as its word(s): VEC writes one word; otherwise the pairs below D (f16: D is even).
#if ${PRE}
#else
#if ${VEC}
#if ${QKV_F16}
fn wq(x: vec4<f32>) -> vec2<u32> { return vec2<u32>(pack_f16(x.x, x.y), pack_f16(x.z, x.w)); }
#else
fn wq(x: vec4<f32>) -> vec4<f32> { return x; }
#endif
#endif
#if ${DKDV}
fn st_dk(row: u32, d4: u32, x: vec4<f32>) {
#if ${VEC}
  if (d4 < D4) { dk[row * D4 + d4] = wq(x); }
#else
  for (var j = 0u; j < 4u; j += 2u) {
    let i = row * D + d4 * 4u + j;
    if (d4 * 4u + j >= D) { continue; }
#if ${QKV_F16}
    dk[i >> 1u] = pack_f16(x[j], x[j + 1u]);
#else
    dk[i] = x[j];
    if (d4 * 4u + j + 1u < D) { dk[i + 1u] = x[j + 1u]; }
#endif
  }
#endif
}
fn st_dv(row: u32, d4: u32, x: vec4<f32>) {
#if ${VEC}
  if (d4 < D4) { dv[row * D4 + d4] = wq(x); }
#else
  for (var j = 0u; j < 4u; j += 2u) {
    let i = row * D + d4 * 4u + j;
    if (d4 * 4u + j >= D) { continue; }
#if ${QKV_F16}
    dv[i >> 1u] = pack_f16(x[j], x[j + 1u]);
#else
    dv[i] = x[j];
    if (d4 * 4u + j + 1u < D) { dv[i + 1u] = x[j + 1u]; }
#endif
  }
#endif
}
#else
fn st_dq(row: u32, d4: u32, x: vec4<f32>) {
#if ${VEC}
  if (d4 < D4) { dq[row * D4 + d4] = wq(x); }
#else
  for (var j = 0u; j < 4u; j += 2u) {
    let i = row * D + d4 * 4u + j;
    if (d4 * 4u + j >= D) { continue; }
#if ${QKV_F16}
    dq[i >> 1u] = pack_f16(x[j], x[j + 1u]);
#else
    dq[i] = x[j];
    if (d4 * 4u + j + 1u < D) { dq[i + 1u] = x[j + 1u]; }
#endif
  }
#endif
}
#endif
#endif

// ---- Dr = rowsum(dO ∘ O) --------------------------------------------------------------------------------
#if ${PRE}
@compute @workgroup_size(64)
fn pre(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * p.gx) * 64u + lid;
  if (row >= p.total) { return; }
  var acc = 0.0;
  for (var d4 = 0u; d4 < D4; d4++) { acc += dot(ld_o(row, d4), ld_do(row, d4)); }
  dr_out[row] = acc;
}
#endif

// ---- the streamed tile of both tile kernels ----------------------------------------------------------------
// Rows t0 .. t0 + BC of two tensors (dK/dV: Q and dO; dQ: K and V), zero at and past `end` and past D, a thread's
// share in registers (units lid + j·THREADS, j < NS): fetched during the tile before and stored after that tile's
// last barrier by the kernel's store_unit.
#if ${PRE}
#else
const NS = (BC * D4P + THREADS - 1u) / THREADS;
alias Tile = array<vec4<f32>, NS>;
#if ${DKDV}
fn ld_a(row: u32, d4: u32) -> vec4<f32> { return ld_q(row, d4); }
fn ld_b(row: u32, d4: u32) -> vec4<f32> { return ld_do(row, d4); }
#else
fn ld_a(row: u32, d4: u32) -> vec4<f32> { return ld_k(row, d4); }
fn ld_b(row: u32, d4: u32) -> vec4<f32> { return ld_v(row, d4); }
#endif

fn fetch_tile(lid: u32, base: u32, t0: u32, end: u32, ra: ptr<function, Tile>, rb: ptr<function, Tile>) {
  for (var j = 0u; j < NS; j++) {
    let i = lid + j * THREADS;
    let c = i / D4P;
    let d4 = i % D4P;
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    if (c < BC && t0 + c < end && d4 < D4) {
      a = ld_a(base + t0 + c, d4);
      b = ld_b(base + t0 + c, d4);
    }
    (*ra)[j] = a;
    (*rb)[j] = b;
  }
}

fn put_tile(lid: u32, ra: Tile, rb: Tile) {
  for (var j = 0u; j < NS; j++) {
    let i = lid + j * THREADS;
    if (i < BC * D4P) { store_unit((i / D4P) * RS + i % D4P, ra[j], rb[j]); }
  }
}
#endif

// ---- dK, dV: a workgroup per key tile ---------------------------------------------------------------------
#if ${DKDV}
var<workgroup> ks: array<vec4<f32>, BR * RS>;
var<workgroup> vs: array<vec4<f32>, BR * RS>;
var<workgroup> qs: array<vec4<f32>, BC * RS>;
var<workgroup> os: array<vec4<f32>, BC * RS>; // dO
var<workgroup> ps: array<RV, BC * TY>;        // Pᵀ: [query][ty], the thread's TR keys
var<workgroup> dss: array<RV, BC * TY>;       // dSᵀ
var<workgroup> ls: array<f32, BC>;            // lse · log2 e
var<workgroup> drs: array<f32, BC>;
var<workgroup> kend_sh: u32;

fn store_unit(at: u32, a: vec4<f32>, b: vec4<f32>) {
  qs[at] = a;
  os[at] = b;
}

// lse·log2 e and Dr of query tile q0 (zero past Nq), a thread's share (NC) in registers as the tile's rows.
const NC = (BC + THREADS - 1u) / THREADS;
fn fetch_stats(lid: u32, qb: u32, q0: u32, rl: ptr<function, array<f32, NC>>, rd: ptr<function, array<f32, NC>>) {
  for (var j = 0u; j < NC; j++) {
    let c = lid + j * THREADS;
    let ok = c < BC && q0 + c < p.nq;
    let at = select(0u, qb + q0 + c, ok); // in bounds either way (select reads both sides)
    (*rl)[j] = select(0.0, lse[at] * LOG2E, ok);
    (*rd)[j] = select(0.0, dr[at], ok);
  }
}

fn put_stats(lid: u32, rl: array<f32, NC>, rd: array<f32, NC>) {
  for (var j = 0u; j < NC; j++) {
    let c = lid + j * THREADS;
    if (c < BC) {
      ls[c] = rl[j];
      drs[c] = rd[j];
    }
  }
}

@compute @workgroup_size(THREADS)
fn dkdv(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let flat = wid.x + wid.y * p.gx;
  if (flat >= p.total) { return; }
  let bh = flat / p.row_tiles;
  let k0 = (flat % p.row_tiles) * BR;
  let kb = bh * p.nk + k0;
  let qb = bh * p.nq;
  let tx = lid / TY;
  let ty = lid % TY;
  if (lid == 0u) {
#if ${MASK}
    kend_sh = min(p.nk, u32(max(i32(kv_len[bh / p.heads]), 0)));
#else
    kend_sh = p.nk;
#endif
  }
  let kend = workgroupUniformLoad(&kend_sh);
  for (var i = lid; i < BR * D4; i += THREADS) { // keys past kend stay zero: masked values never reach a sum
    let r = i / D4;
    let d4 = i % D4;
    var kx = vec4<f32>(0.0);
    var vx = vec4<f32>(0.0);
    if (k0 + r < kend) {
      kx = ld_k(kb + r, d4);
      vx = ld_v(kb + r, d4);
    }
    ks[r * RS + d4] = kx;
    vs[r * RS + d4] = vx;
  }

  var ak: array<vec4<f32>, TR * TD4>;
  var av: array<vec4<f32>, TR * TD4>;
  // A tile wholly past kend gets zero gradients; skip its work.
  let q_end = select(p.nq, 0u, k0 >= kend);
  var rq: Tile;
  var ro: Tile;
  var rl: array<f32, NC>;
  var rd: array<f32, NC>;
  fetch_tile(lid, qb, 0u, p.nq, &rq, &ro);
  fetch_stats(lid, qb, 0u, &rl, &rd);
  put_tile(lid, rq, ro);
  put_stats(lid, rl, rd);
  for (var q0 = 0u; q0 < q_end; q0 += BC) {
    workgroupBarrier(); // this query tile staged
    // the next one (zeros past the end), stored after this one's math
    fetch_tile(lid, qb, q0 + BC, p.nq, &rq, &ro);
    fetch_stats(lid, qb, q0 + BC, &rl, &rd);

    // Sᵀ and dPᵀ blocks: keys (rows) × queries (columns)
    var s = array<f32, TR * TC>(); // explicit zeros: a bare declaration in a loop is not re-zeroed on every driver
    var dp = array<f32, TR * TC>();
    for (var d4 = 0u; d4 < D4; d4++) {
      var kr: array<vec4<f32>, TR>;
      var vr: array<vec4<f32>, TR>;
      for (var r = 0u; r < TR; r++) {
        kr[r] = ks[(r * TY + ty) * RS + d4];
        vr[r] = vs[(r * TY + ty) * RS + d4];
      }
      for (var c = 0u; c < TC; c++) {
        let qx = qs[(c * TX + tx) * RS + d4];
        let ox = os[(c * TX + tx) * RS + d4];
        for (var r = 0u; r < TR; r++) {
          s[r * TC + c] += dot(kr[r], qx);
          dp[r * TC + c] += dot(vr[r], ox);
        }
      }
    }
    for (var c = 0u; c < TC; c++) {
      let col = c * TX + tx;
      var pv: RV;
      var dsv: RV;
      for (var r = 0u; r < TR; r++) {
        let ok = q0 + col < p.nq && k0 + r * TY + ty < kend;
        let e = exp2(s[r * TC + c] * p.scale2 - ls[col]);
        pv[r] = select(0.0, e, ok);
        dsv[r] = select(0.0, e * (dp[r * TC + c] - drs[col]), ok);
      }
      ps[col * TY + ty] = pv;
      dss[col * TY + ty] = dsv;
    }
    workgroupBarrier();

    // dV += Pᵀ·dO, dK += dSᵀ·Q
    for (var c = 0u; c < BC; c++) {
      let pv = ps[c * TY + ty];
      let dsv = dss[c * TY + ty];
      for (var j = 0u; j < TD4; j++) {
        let ox = os[c * RS + j * TX + tx];
        let qx = qs[c * RS + j * TX + tx];
        for (var r = 0u; r < TR; r++) {
          av[r * TD4 + j] = fma(vec4<f32>(pv[r]), ox, av[r * TD4 + j]);
          ak[r * TD4 + j] = fma(vec4<f32>(dsv[r]), qx, ak[r * TD4 + j]);
        }
      }
    }
    workgroupBarrier();
    put_tile(lid, rq, ro);
    put_stats(lid, rl, rd);
  }

  for (var r = 0u; r < TR; r++) {
    let row = r * TY + ty;
    if (k0 + row >= p.nk) { continue; }
    for (var j = 0u; j < TD4; j++) {
      st_dk(kb + row, j * TX + tx, ak[r * TD4 + j] * p.scale);
      st_dv(kb + row, j * TX + tx, av[r * TD4 + j]);
    }
  }
}
#endif

// ---- dQ: a workgroup per query tile -------------------------------------------------------------------------
#if ${DQ}
var<workgroup> qs: array<vec4<f32>, BR * RS>;
var<workgroup> os: array<vec4<f32>, BR * RS>; // dO
var<workgroup> ks: array<vec4<f32>, BC * RS>;
var<workgroup> vs: array<vec4<f32>, BC * RS>;
var<workgroup> dss: array<RV, BC * TY>;       // dS: [key][ty], the thread's TR queries
var<workgroup> kend_sh: u32;

fn store_unit(at: u32, a: vec4<f32>, b: vec4<f32>) {
  ks[at] = a;
  vs[at] = b;
}

@compute @workgroup_size(THREADS)
fn dq_main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let flat = wid.x + wid.y * p.gx;
  if (flat >= p.total) { return; }
  let bh = flat / p.row_tiles;
  let r0 = (flat % p.row_tiles) * BR;
  let qb = bh * p.nq + r0;
  let kb = bh * p.nk;
  let tx = lid / TY;
  let ty = lid % TY;
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
    var qx = vec4<f32>(0.0);
    var ox = vec4<f32>(0.0);
    if (r0 + r < p.nq) {
      qx = ld_q(qb + r, d4);
      ox = ld_do(qb + r, d4);
    }
    qs[r * RS + d4] = qx;
    os[r * RS + d4] = ox;
  }
  var lr: array<f32, TR>;
  var drr: array<f32, TR>;
  for (var r = 0u; r < TR; r++) {
    let row = r * TY + ty;
    if (r0 + row < p.nq) {
      lr[r] = lse[qb + row] * LOG2E;
      drr[r] = dr[qb + row];
    }
  }
  let kend = workgroupUniformLoad(&kend_sh);

  var acc: array<vec4<f32>, TR * TD4>;
  var rk: Tile;
  var rv: Tile;
  fetch_tile(lid, kb, 0u, kend, &rk, &rv);
  put_tile(lid, rk, rv);
  for (var k0 = 0u; k0 < kend; k0 += BC) {
    workgroupBarrier(); // this key tile staged
    fetch_tile(lid, kb, k0 + BC, kend, &rk, &rv); // the next one (zeros past kend), stored after this one's math

    var s = array<f32, TR * TC>(); // explicit zeros: a bare declaration in a loop is not re-zeroed on every driver
    var dp = array<f32, TR * TC>();
    for (var d4 = 0u; d4 < D4; d4++) {
      var kc: array<vec4<f32>, TC>;
      var vc: array<vec4<f32>, TC>;
      for (var c = 0u; c < TC; c++) {
        kc[c] = ks[(c * TX + tx) * RS + d4];
        vc[c] = vs[(c * TX + tx) * RS + d4];
      }
      for (var r = 0u; r < TR; r++) {
        let qx = qs[(r * TY + ty) * RS + d4];
        let ox = os[(r * TY + ty) * RS + d4];
        for (var c = 0u; c < TC; c++) {
          s[r * TC + c] += dot(qx, kc[c]);
          dp[r * TC + c] += dot(ox, vc[c]);
        }
      }
    }
    for (var c = 0u; c < TC; c++) {
      let col = c * TX + tx;
      var dsv: RV;
      for (var r = 0u; r < TR; r++) {
        let e = select(0.0, exp2(s[r * TC + c] * p.scale2 - lr[r]), k0 + col < kend);
        dsv[r] = e * (dp[r * TC + c] - drr[r]);
      }
      dss[col * TY + ty] = dsv;
    }
    workgroupBarrier();

    // dQ += dS·K
    for (var c = 0u; c < BC; c++) {
      let dsv = dss[c * TY + ty];
      for (var j = 0u; j < TD4; j++) {
        let kx = ks[c * RS + j * TX + tx];
        for (var r = 0u; r < TR; r++) { acc[r * TD4 + j] = fma(vec4<f32>(dsv[r]), kx, acc[r * TD4 + j]); }
      }
    }
    workgroupBarrier();
    put_tile(lid, rk, rv);
  }

  for (var r = 0u; r < TR; r++) {
    let row = r * TY + ty;
    if (r0 + row >= p.nq) { continue; }
    for (var j = 0u; j < TD4; j++) { st_dq(qb + row, j * TX + tx, acc[r * TD4 + j] * p.scale); }
  }
}
#endif
