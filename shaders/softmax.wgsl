// Softmax over the last dim, one workgroup per row, in one pass over memory: each thread keeps its PER slots
// of the row in registers (slot k of thread t is unit t + k·WG of the row: coalesced), the row max and sum
// (backward: Σ dy·y) come from workgroup reductions (subgroupMax/subgroupAdd then shared memory when
// SUBGROUPS, a shared-memory tree otherwise), and the results are written from the registers.
//   forward:  y = exp(x − max) / Σ exp(x − max)
//   backward: dx = y · (dy − Σ dy·y)
// A unit is one f32, or one u32 word of two halves when F16. With F16 and an odd row length (ODD) rows do
// not start on word boundaries: neighbouring rows share a word, and the halves of shared words are merged
// with atomicAnd/atomicOr (each row's workgroup touches only its own half), so the output is atomic.
// KEYLEN (forward): row r belongs to item b = r / rows_per_item and only its first key_len[b] elements take
// part (attention's per-sample key lengths); the others get probability 0, and a row with no keys is all 0.
#if ${SUBGROUPS}
enable subgroups;
#endif

struct Params {
  rows: u32,
  len: u32,      // row length L
  groups_x: u32, // workgroups along x of the folded 2-D grid
  total: u32,    // rows · L (an f16 output's last word has a padding half beyond it)
  rows_per_item: u32, // KEYLEN: rows sharing one key_len entry
}

alias V = ${V};
const WG: u32 = ${WG};
const PER: u32 = ${PER};
const MASKED = -3.0e38; // value of a slot outside the row (exp(MASKED − max) = 0)

@group(0) @binding(0) var<storage, read> a: array<${WORD}>; // x (forward) or y (backward)
#if ${BACKWARD}
@group(0) @binding(1) var<storage, read> g: array<${WORD}>; // dy
#endif
#if ${ODD}
@group(0) @binding(2) var<storage, read_write> o: array<atomic<u32>>;
#else
@group(0) @binding(2) var<storage, read_write> o: array<${WORD}>;
#endif
#if ${KEYLEN}
@group(0) @binding(4) var<storage, read> key_len: array<${KLT}>;
#endif
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> red: array<f32, WG>;
var<private> sg_lane: u32;
var<private> sg_id: u32;

// ---- workgroup reductions: every thread gets the result; red is free again on return ----
// nsg (num_subgroups) is passed from the builtin so the compiler sees it is uniform.
fn wg_max(v: f32, lid: u32, nsg: u32) -> f32 {
#if ${SUBGROUPS}
  let s = subgroupMax(v);
  if (sg_lane == 0u) {
    red[sg_id] = s;
  }
  workgroupBarrier();
  var r = red[0];
  for (var i = 1u; i < nsg; i++) {
    r = max(r, red[i]);
  }
#else
  red[lid] = v;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red[lid] = max(red[lid], red[lid + s]);
    }
  }
  workgroupBarrier();
  let r = red[0];
#endif
  workgroupBarrier();
  return r;
}

fn wg_sum(v: f32, lid: u32, nsg: u32) -> f32 {
#if ${SUBGROUPS}
  let s = subgroupAdd(v);
  if (sg_lane == 0u) {
    red[sg_id] = s;
  }
  workgroupBarrier();
  var r = red[0];
  for (var i = 1u; i < nsg; i++) {
    r += red[i]; // fixed order: deterministic
  }
#else
  red[lid] = v;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red[lid] += red[lid + s];
    }
  }
  workgroupBarrier();
  let r = red[0];
#endif
  workgroupBarrier();
  return r;
}

// ---- units: f32 elements, or f16 words whose halves may lie outside the row [e0, e1) ----
fn unit_of(e: u32) -> u32 {
#if ${F16}
  return e >> 1u;
#else
  return e;
#endif
}

// Unit u of x/y (or of dy when from_g); halves outside the row read as `fill`.
fn load(from_g: bool, u: u32, e0: u32, e1: u32, fill: f32) -> V {
#if ${BACKWARD}
  var w: ${WORD};
  if (from_g) {
    w = g[u];
  } else {
    w = a[u];
  }
#else
  let w = a[u];
#endif
#if ${F16}
  var v = unpack2x16float(w);
  if (2u * u < e0) {
    v.x = fill;
  }
  if (2u * u + 1u >= e1) {
    v.y = fill;
  }
  return v;
#else
  return w;
#endif
}

fn hmax(v: V) -> f32 {
#if ${F16}
  return max(v.x, v.y);
#else
  return v;
#endif
}

fn hsum(v: V) -> f32 {
#if ${F16}
  return v.x + v.y;
#else
  return v;
#endif
}

fn store(u: u32, r: V, e0: u32, e1: u32) {
#if ${F16}
  let lo_in = 2u * u >= e0;
  let hi_in = 2u * u + 1u < e1;
  let bits = pack_f16(r.x, select(0.0, r.y, hi_in)); // a padding half past the tensor's end is written as 0
#if ${ODD}
  if (lo_in && (hi_in || 2u * u + 1u >= p.total)) {
    atomicStore(&o[u], bits);
  } else if (lo_in) {
    atomicAnd(&o[u], 0xffff0000u);
    atomicOr(&o[u], bits & 0xffffu);
  } else {
    atomicAnd(&o[u], 0xffffu);
    atomicOr(&o[u], bits & 0xffff0000u);
  }
#else
  o[u] = bits;
#endif
#else
  o[u] = r;
#endif
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
#if ${SUBGROUPS}
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_id) sgid: u32,
  @builtin(num_subgroups) nsg_in: u32,
#endif
) {
#if ${SUBGROUPS}
  sg_lane = lane;
  sg_id = sgid;
  let nsg = nsg_in;
#else
  let nsg = 0u;
#endif
  let row = wid.x + wid.y * p.groups_x;
  if (row >= p.rows) {
    return;
  }
  let e0 = row * p.len;
  let e1 = e0 + p.len;
  let u0 = unit_of(e0);
  let u1 = unit_of(e1 - 1u) + 1u;
  var v: array<V, PER>;
#if ${BACKWARD}
  var d: array<V, PER>;
  var acc = 0.0;
  for (var k = 0u; k < PER; k++) {
    let u = u0 + lid + k * WG;
    v[k] = V(0.0);
    d[k] = V(0.0);
    if (u < u1) {
      v[k] = load(false, u, e0, e1, 0.0); // halves outside the row add nothing to the dot product
      d[k] = load(true, u, e0, e1, 0.0);
      acc += hsum(v[k] * d[k]);
    }
  }
  let dot = wg_sum(acc, lid, nsg);
  for (var k = 0u; k < PER; k++) {
    let u = u0 + lid + k * WG;
    if (u < u1) {
      store(u, v[k] * (d[k] - dot), e0, e1);
    }
  }
#else
#if ${KEYLEN}
  let keys = u32(clamp(i32(key_len[row / p.rows_per_item]), 0, i32(p.len)));
#else
  let keys = p.len;
#endif
  let el = e0 + keys; // elements [e0, el) take part
  let ul = select(u0, unit_of(el - 1u) + 1u, keys > 0u);
  var m = MASKED;
  for (var k = 0u; k < PER; k++) {
    let u = u0 + lid + k * WG;
    v[k] = V(MASKED);
    if (u < ul) {
      v[k] = load(false, u, e0, el, MASKED);
    }
    m = max(m, hmax(v[k]));
  }
  let row_max = wg_max(m, lid, nsg);
  var s = 0.0;
  for (var k = 0u; k < PER; k++) {
    v[k] = exp(v[k] - row_max);
    s += hsum(v[k]);
  }
  let inv = select(0.0, 1.0 / wg_sum(s, lid, nsg), keys > 0u); // no keys: all MASKED, exp gave 1s
  for (var k = 0u; k < PER; k++) {
    let u = u0 + lid + k * WG;
    if (u < u1) {
      store(u, v[k] * inv, e0, e1);
    }
  }
#endif
}
