// LayerNorm over the last dim C of x viewed as [rows, C], forward and backward; also adaLN's modulate.
//   forward:  x̂ = (x − mean)·rstd, rstd = 1/sqrt(var + eps);  y = x̂ (plain) or x̂·(w_offset + w) + b (AFFINE)
//   backward: g = dy·(w_offset + w);  dx = rstd·(g − mean(g) − x̂·mean(g·x̂));  dw = Σ_rows dy·x̂, db = Σ_rows dy
// Weight/bias rows are shared by `group_rows` consecutive rows: all rows for LayerNorm (one [C] vector,
// w_offset 0), the N tokens of one sample for adaLN (per-sample [B, C] scale/shift, w_offset 1 → 1 + scale).
//
// Work layout: the forward runs one workgroup per row; the backward one workgroup per block of block_rows
// rows inside one group. Each thread keeps PER units of a row in registers, slot k of thread t being unit
// t + k·WG (neighbouring threads read neighbouring units: coalesced), so x (and dy) are read once and the
// result written once. A unit is E consecutive elements: a vec4 (E4: f32 or f16 rows with C % 4 == 0), a
// pair (E2: f16 rows with even C), else one element. f16 rows of odd C (ODD) do not start on word
// boundaries: elements are read one half at a time and written with atomicAnd/atomicOr on their half.
//
// Statistics in one pass over registers: the shifted sums Σ(x − K) and Σ(x − K)² with K = x[row, 0] (a
// value of the row, so E[x²] − E[x]² does not cancel when |mean| ≫ std), added in one two-level workgroup
// reduction: subgroupAdd then shared memory (SUBGROUPS), or a shared-memory tree. The backward's two row
// sums (Σg, Σg·x̂) likewise share one reduction; its weight-gradient partials go to pw/pb as
// [groups, blocks, C] and the op sums them over blocks in a second pass (fixed order: deterministic).
#if ${SUBGROUPS}
enable subgroups;
#endif

struct Params {
  rows: u32,
  len: u32,        // C
  units: u32,      // units per row: C / E
  groups_x: u32,   // workgroups along x of the folded 2-D grid
  eps: f32,
  w_offset: f32,   // added to every weight: 0 (LayerNorm) or 1 (adaLN: 1 + scale)
  group_rows: u32, // rows sharing one weight/bias row
  block_rows: u32, // backward: rows per workgroup
  blocks: u32,     // backward: workgroups per group
  total: u32,      // rows · C (an odd f16 tensor's last word has a padding half beyond it)
}

alias V = ${V};
const WG: u32 = ${WG};
const PER: u32 = ${PER};
const TREE: u32 = ${TREE}; // half the smallest power of two ≥ WG

@group(0) @binding(0) var<storage, read> x: array<${XW}>;
#if ${AFFINE}
@group(0) @binding(1) var<storage, read> weight: array<V>; // [groups, C]
#endif
#if ${BACKWARD}
@group(0) @binding(2) var<storage, read> dy: array<${XW}>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
#else
#if ${AFFINE}
@group(0) @binding(2) var<storage, read> bias: array<V>; // [groups, C]
#endif
@group(0) @binding(3) var<storage, read_write> mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
#endif
// y (forward) or dx (backward)
#if ${ODD}
@group(0) @binding(5) var<storage, read_write> dst: array<atomic<u32>>;
#else
@group(0) @binding(5) var<storage, read_write> dst: array<${XW}>;
#endif
#if ${BACKWARD}
#if ${AFFINE}
@group(0) @binding(6) var<storage, read_write> pw: array<V>; // Σ dy·x̂ per block: [groups, blocks, C]
@group(0) @binding(7) var<storage, read_write> pb: array<V>; // Σ dy per block
#endif
#endif
@group(0) @binding(8) var<uniform> p: Params;

// ---- units ----
fn hsum(v: V) -> f32 {
#if ${E4}
  return (v.x + v.y) + (v.z + v.w);
#elif ${E2}
  return v.x + v.y;
#else
  return v;
#endif
}

fn first(v: V) -> f32 {
#if ${E4}
  return v.x;
#elif ${E2}
  return v.x;
#else
  return v;
#endif
}

#if ${ODD}
// Element j of a row, one half of a shared word.
fn half_at(w: u32, e: u32) -> f32 {
  return unpack2x16float(w)[e & 1u];
}

fn ld_x(row: u32, j: u32) -> V {
  let e = row * p.len + j;
  return half_at(x[e >> 1u], e);
}

// Writes one half with atomics: the other half of the word belongs to another thread (or row).
fn st(row: u32, j: u32, v: V) {
  let e = row * p.len + j;
  let h = f16_bits(bitcast<u32>(v));
  if ((e & 1u) == 1u) {
    atomicAnd(&dst[e >> 1u], 0xffffu);
    atomicOr(&dst[e >> 1u], h << 16u);
  } else if (e + 1u == p.total) {
    atomicStore(&dst[e >> 1u], h); // the tensor's last element: its upper half is padding, written 0
  } else {
    atomicAnd(&dst[e >> 1u], 0xffff0000u);
    atomicOr(&dst[e >> 1u], h);
  }
}
#else
fn to_v(w: ${XW}) -> V {
#if ${F16}
#if ${E4}
  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
#else
  return unpack2x16float(w);
#endif
#else
  return w;
#endif
}

fn ld_x(row: u32, j: u32) -> V {
  return to_v(x[row * p.units + j]);
}

fn st(row: u32, j: u32, v: V) {
#if ${F16}
#if ${E4}
  dst[row * p.units + j] = vec2<u32>(pack_f16(v.x, v.y), pack_f16(v.z, v.w));
#else
  dst[row * p.units + j] = pack_f16(v.x, v.y);
#endif
#else
  dst[row * p.units + j] = v;
#endif
}
#endif

#if ${BACKWARD}
fn ld_dy(row: u32, j: u32) -> V {
#if ${ODD}
  let e = row * p.len + j;
  return half_at(dy[e >> 1u], e);
#else
  return to_v(dy[row * p.units + j]);
#endif
}
#endif

// ---- workgroup reduction of a vec2: every thread gets the total ----
// The barrier that frees red for the previous call's readers comes first. (With it last instead, after the
// reads of red[0], Mesa llvmpipe gave some threads the next row's sums when this runs in the row loop.)
var<workgroup> red: array<vec2<f32>, WG>;
var<private> sg_lane: u32;
var<private> sg_id: u32;

fn wg_sum(v: vec2<f32>, lid: u32, nsg: u32) -> vec2<f32> {
  workgroupBarrier();
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
  return r;
#else
  red[lid] = v;
  for (var s = TREE; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s && lid + s < WG) {
      red[lid] += red[lid + s];
    }
  }
  workgroupBarrier();
  return red[0];
#endif
}

#if ${BACKWARD}
@compute @workgroup_size(WG)
fn backward(
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
  let blk = wid.x + wid.y * p.groups_x; // group · blocks + block
  let grp = blk / p.blocks;
  let g0 = grp * p.group_rows;
  if (g0 >= p.rows) {
    return;
  }
  let r0 = g0 + (blk % p.blocks) * p.block_rows;
  let r1 = min(r0 + p.block_rows, min(g0 + p.group_rows, p.rows));
  // Slots past the row's end stay 0 and add nothing to the sums.
  var w: array<V, PER>;
  var xv: array<V, PER>;
  var gv: array<V, PER>;
  var nx: array<V, PER>;
  var nd: array<V, PER>;
  var aw: array<V, PER>;
  var ab: array<V, PER>;
  for (var k = 0u; k < PER; k++) {
    let j = lid + k * WG;
    w[k] = V(1.0);
    if (j < p.units) {
#if ${AFFINE}
      w[k] = V(p.w_offset) + weight[grp * p.units + j];
#endif
      xv[k] = ld_x(r0, j);
      gv[k] = ld_dy(r0, j);
    }
  }
  let n = f32(p.len);
  for (var r = r0; r < r1; r++) {
    let m = mean[r];
    let rs = rstd[r];
    var s = vec2<f32>(0.0);
    for (var k = 0u; k < PER; k++) {
      xv[k] = (xv[k] - V(m)) * rs; // x̂
      let g = gv[k] * w[k];
      s += vec2<f32>(hsum(g), hsum(g * xv[k]));
    }
    if (r + 1u < r1) { // prefetch the next row while this one is reduced
      for (var k = 0u; k < PER; k++) {
        let j = lid + k * WG;
        if (j < p.units) {
          nx[k] = ld_x(r + 1u, j);
          nd[k] = ld_dy(r + 1u, j);
        }
      }
    }
    let c = wg_sum(s, lid, nsg) / n; // (mean(g), mean(g·x̂))
    for (var k = 0u; k < PER; k++) {
      let j = lid + k * WG;
      if (j < p.units) {
        st(r, j, rs * (gv[k] * w[k] - V(c.x) - xv[k] * V(c.y)));
      }
#if ${AFFINE}
      aw[k] += gv[k] * xv[k];
      ab[k] += gv[k];
#endif
    }
    xv = nx;
    gv = nd;
  }
#if ${AFFINE}
  for (var k = 0u; k < PER; k++) {
    let j = lid + k * WG;
    if (j < p.units) {
      pw[blk * p.units + j] = aw[k];
      pb[blk * p.units + j] = ab[k];
    }
  }
#endif
}
#else
@compute @workgroup_size(WG)
fn forward(
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
  let shift = first(ld_x(row, 0u)); // K
  var v: array<V, PER>; // x − K; slots past the row's end stay 0
  var s = vec2<f32>(0.0);
  for (var k = 0u; k < PER; k++) {
    let j = lid + k * WG;
    if (j < p.units) {
      v[k] = ld_x(row, j) - V(shift);
      s += vec2<f32>(hsum(v[k]), hsum(v[k] * v[k]));
    }
  }
  let t = wg_sum(s, lid, nsg) / f32(p.len);
  let var_ = max(t.y - t.x * t.x, 0.0);
  let rs = inverseSqrt(var_ + p.eps);
  if (lid == 0u) {
    mean[row] = shift + t.x;
    rstd[row] = rs;
  }
#if ${AFFINE}
  let wrow = (row / p.group_rows) * p.units;
#endif
  for (var k = 0u; k < PER; k++) {
    let j = lid + k * WG;
    if (j < p.units) {
      var yv = (v[k] - V(t.x)) * rs;
#if ${AFFINE}
      yv = yv * (V(p.w_offset) + weight[wrow + j]) + bias[wrow + j];
#endif
      st(row, j, yv);
    }
  }
}
#endif
