// LayerNorm over the last dim C of x viewed as [rows, C], forward and backward; also adaLN's modulate.
//   forward:  x̂ = (x − mean)·rstd, rstd = 1/sqrt(var + eps);  y = x̂ (plain) or x̂·(w_offset + w) + b (AFFINE)
//   backward: g = dy·(w_offset + w);  dx = rstd·(g − mean(g) − x̂·mean(g·x̂));  dw = Σ_rows dy·x̂, db = Σ_rows dy
// Weight/bias rows are shared by `group_rows` consecutive rows: all rows for LayerNorm (one [C] vector,
// w_offset 0), the N tokens of one sample for adaLN (per-sample [B, C] scale/shift, w_offset 1 → 1 + scale).
//
// Work layout: a workgroup has SLOTS row slots of WG threads. The forward gives each slot one row; the
// backward gives a workgroup a block of block_rows rows inside one group, its slots taking every SLOTS-th
// row, so SLOTS rows are in flight at once. Each thread keeps PER units of a row in registers, slot k of
// thread t being unit t + k·WG (neighbouring threads read neighbouring units: coalesced), so x (and dy) are
// read once and the result written once. A unit is E consecutive elements: 8 halves as one 16-byte word
// held as a mat2x4<f32> (E8: f16 rows with C % 8 == 0), a vec4 (E4: f32 or f16 rows with C % 4 == 0), a
// pair (E2: f16 rows with even C), else one element. f16 rows of odd C (ODD) do not start on word
// boundaries: elements are read one half at a time and written with atomicAnd/atomicOr on their half.
//
// Statistics in one pass over registers: the shifted sums Σ(x − K) and Σ(x − K)² with K = x[row, 0] (a
// value of the row, so E[x²] − E[x]² does not cancel when |mean| ≫ std), added in one two-level reduction
// over the slot's threads: subgroupAdd then shared memory (SUBGROUPS), or a shared-memory tree. The
// backward's two row sums (Σg, Σg·x̂) likewise share one reduction; its weight-gradient sums are added over
// the slots in shared memory (fixed order) and written as one partial per workgroup to pw/pb, [groups,
// blocks, C]; the op sums them over blocks in a second pass (layernorm-colsum.wgsl, or reduce.ts),
// in a fixed order: deterministic.
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
const WG: u32 = ${WG};       // threads per row slot
const SLOTS: u32 = ${SLOTS}; // row slots per workgroup
const PER: u32 = ${PER};
const TREE: u32 = ${TREE};   // half the smallest power of two ≥ WG

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
#if ${E8}
  return ((v[0].x + v[0].y) + (v[0].z + v[0].w)) + ((v[1].x + v[1].y) + (v[1].z + v[1].w));
#elif ${E4}
  return (v.x + v.y) + (v.z + v.w);
#elif ${E2}
  return v.x + v.y;
#else
  return v;
#endif
}

fn first(v: V) -> f32 {
#if ${E8}
  return v[0].x;
#elif ${E4}
  return v.x;
#elif ${E2}
  return v.x;
#else
  return v;
#endif
}

// splat, mul, pk, half_at, to_v, st: shaders/norm_units.wgsl (appended by the TS op).
#if ${ODD}
fn ld_x(row: u32, j: u32) -> V {
  let e = row * p.len + j;
  return half_at(x[e >> 1u], e);
}
#else
fn ld_x(row: u32, j: u32) -> V {
  return to_v(x[row * p.units + j]);
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

// ---- the thread's place: row slot and index in it ----
// With subgroups and several slots the place comes from the subgroup builtins (the op only picks that
// when the subgroup size divides WG), so no subgroup straddles two slots; otherwise from the local index.
var<private> sg_lane: u32;
var<private> sg_id: u32;
var<private> slot: u32;
var<private> t: u32;   // index in the slot: 0..WG
var<private> spw: u32; // subgroups per slot

fn place(lid: u32, lane: u32, sgid: u32, nsg: u32, sgsize: u32) {
  sg_lane = lane;
  sg_id = sgid;
  if (SLOTS == 1u) {
    slot = 0u;
    t = lid;
    spw = nsg;
  } else {
#if ${SUBGROUPS}
    spw = WG / sgsize;
    slot = sgid / spw;
    t = (sgid % spw) * sgsize + lane;
#else
    slot = lid / WG;
    t = lid % WG;
#endif
  }
}

// ---- reduction of a vec2 over the slot's threads: every thread gets its slot's total ----
// With SGROW (a slot is one subgroup) it is subgroupAdd alone: a row's steps need no barrier.
// Otherwise the barrier that frees red for the previous call's readers comes first. (With it last instead, after the
// reads of red[0], Mesa llvmpipe gave some threads the next row's sums when this runs in the row loop.)
var<workgroup> red: array<vec2<f32>, WG * SLOTS>;

fn slot_sum(v: vec2<f32>) -> vec2<f32> {
#if ${SGROW}
  return subgroupAdd(v); // the slot is one subgroup: no shared memory, no barrier
#else
  workgroupBarrier();
#if ${SUBGROUPS}
  let s = subgroupAdd(v);
  if (sg_lane == 0u) {
    red[sg_id] = s;
  }
  workgroupBarrier();
  let b = slot * spw;
  var r = red[b];
  for (var i = 1u; i < spw; i++) {
    r += red[b + i]; // fixed order: deterministic
  }
  return r;
#else
  let b = slot * WG;
  red[b + t] = v;
  for (var s = TREE; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s && t + s < WG) {
      red[b + t] += red[b + t + s];
    }
  }
  workgroupBarrier();
  return red[b];
#endif
#endif
}

#if ${BACKWARD}
#if ${AFFINE}
// Slots 1.. hand their weight-gradient sums to slot 0 through here, one register slot at a time.
var<workgroup> comb: array<V, ${CW}>;

// Slot 0 gets Σ over the slots of a (in slot order); the others get garbage. Call in uniform control flow.
fn over_slots(a: V) -> V {
  if (SLOTS == 1u) {
    return a;
  }
  workgroupBarrier();
  if (slot > 0u) {
    comb[(slot - 1u) * WG + t] = a;
  }
  workgroupBarrier();
  var r = a;
  if (slot == 0u) {
    for (var s = 1u; s < SLOTS; s++) {
      r += comb[(s - 1u) * WG + t];
    }
  }
  return r;
}
#endif

// w_offset + weight of unit j of the group's row (1 without AFFINE; any value past the row's end).
fn wt(grp: u32, j: u32) -> V {
#if ${AFFINE}
  return splat(p.w_offset) + weight[grp * p.units + min(j, p.units - 1u)];
#else
  return splat(1.0);
#endif
}

@compute @workgroup_size(WG * SLOTS)
fn backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
#if ${SUBGROUPS}
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_id) sgid: u32,
  @builtin(num_subgroups) nsg: u32,
  @builtin(subgroup_size) sgsize: u32,
#endif
) {
#if ${SUBGROUPS}
  place(lid, lane, sgid, nsg, sgsize);
#else
  place(lid, 0u, 0u, 0u, 0u);
#endif
  let rb = row_block(wid); // the rows [r0, r1) of weight group grp; block blk = group · blocks + block
  if (rb.r0 == rb.r1) {
    return;
  }
  let blk = rb.blk;
  let grp = rb.grp;
  let r0 = rb.r0;
  let r1 = rb.r1;
  let steps = (r1 - r0 + SLOTS - 1u) / SLOTS; // the same for every slot: the barriers stay uniform
  // Slots past the row's end stay 0 and add nothing to the sums. LEAN keeps fewer registers (more threads
  // fit an SM): no prefetch of the next row, and the weights re-read (from cache) every row.
  var w: array<V, PER>;
  var xv: array<V, PER>;
  var gv: array<V, PER>;
  var nx: array<V, PER>;
  var nd: array<V, PER>;
  var aw: array<V, PER>;
  var ab: array<V, PER>;
  var r = r0 + slot;
#if ${LEAN}
#else
  for (var k = 0u; k < PER; k++) {
    let j = t + k * WG;
    w[k] = wt(grp, j);
    if (j < p.units && r < r1) {
      xv[k] = ld_x(r, j);
      gv[k] = ld_dy(r, j);
    }
  }
#endif
  let n = f32(p.len);
  for (var i = 0u; i < steps; i++) {
    let on = r < r1; // this slot has a row in this step
    let rr = min(r, r1 - 1u);
#if ${LEAN}
    for (var k = 0u; k < PER; k++) {
      let j = t + k * WG;
      if (j < p.units && on) {
        xv[k] = ld_x(r, j);
        gv[k] = ld_dy(r, j);
      }
    }
#endif
    let m = mean[rr];
    let rs = rstd[rr];
    var s = vec2<f32>(0.0);
    for (var k = 0u; k < PER; k++) {
#if ${LEAN}
      let wk = wt(grp, t + k * WG);
#else
      let wk = w[k];
#endif
      xv[k] = (xv[k] - splat(m)) * rs; // x̂
      let g = mul(gv[k], wk);
      s += vec2<f32>(hsum(g), hsum(mul(g, xv[k])));
    }
#if ${LEAN}
#else
    if (r + SLOTS < r1) { // prefetch the slot's next row while this one is reduced
      for (var k = 0u; k < PER; k++) {
        let j = t + k * WG;
        if (j < p.units) {
          nx[k] = ld_x(r + SLOTS, j);
          nd[k] = ld_dy(r + SLOTS, j);
        }
      }
    }
#endif
    let c = slot_sum(s) / n; // (mean(g), mean(g·x̂))
    if (on) {
      for (var k = 0u; k < PER; k++) {
        let j = t + k * WG;
#if ${LEAN}
        let wk = wt(grp, j);
#else
        let wk = w[k];
#endif
        if (j < p.units) {
          st(r, j, (mul(gv[k], wk) - splat(c.x) - xv[k] * c.y) * rs);
        }
#if ${AFFINE}
        aw[k] += mul(gv[k], xv[k]);
        ab[k] += gv[k];
#endif
      }
    }
#if ${LEAN}
#else
    xv = nx;
    gv = nd;
#endif
    r += SLOTS;
  }
#if ${AFFINE}
  for (var k = 0u; k < PER; k++) {
    let j = t + k * WG;
    let sw = over_slots(aw[k]);
    let sb = over_slots(ab[k]);
    if (slot == 0u && j < p.units) {
      pw[blk * p.units + j] = sw;
      pb[blk * p.units + j] = sb;
    }
  }
#endif
}
#else
@compute @workgroup_size(WG * SLOTS)
fn forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
#if ${SUBGROUPS}
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_id) sgid: u32,
  @builtin(num_subgroups) nsg: u32,
  @builtin(subgroup_size) sgsize: u32,
#endif
) {
#if ${SUBGROUPS}
  place(lid, lane, sgid, nsg, sgsize);
#else
  place(lid, 0u, 0u, 0u, 0u);
#endif
  let row0 = (wid.x + wid.y * p.groups_x) * SLOTS;
  if (row0 >= p.rows) {
    return;
  }
  let on = row0 + slot < p.rows; // a slot past the last row computes the last row again, writing nothing
  let row = min(row0 + slot, p.rows - 1u);
  let shift = first(ld_x(row, 0u)); // K
  var v: array<V, PER>; // x − K; slots past the row's end stay 0
  var s = vec2<f32>(0.0);
  for (var k = 0u; k < PER; k++) {
    let j = t + k * WG;
    if (j < p.units) {
      v[k] = ld_x(row, j) - splat(shift);
      s += vec2<f32>(hsum(v[k]), hsum(mul(v[k], v[k])));
    }
  }
  let sums = slot_sum(s) / f32(p.len);
  if (!on) {
    return;
  }
  let var_ = max(sums.y - sums.x * sums.x, 0.0);
  let rs = inverseSqrt(var_ + p.eps);
  if (t == 0u) {
    mean[row] = shift + sums.x;
    rstd[row] = rs;
  }
#if ${AFFINE}
  let wrow = (row / p.group_rows) * p.units;
#endif
  for (var k = 0u; k < PER; k++) {
    let j = t + k * WG;
    if (j < p.units) {
      var yv = (v[k] - splat(sums.x)) * rs;
#if ${AFFINE}
      yv = mul(yv, splat(p.w_offset) + weight[wrow + j]) + bias[wrow + j];
#endif
      st(row, j, yv);
    }
  }
}
#endif
