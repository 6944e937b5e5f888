// LayerNorm / adaLN-modulate rows of f16 storage (even C), forward and backward, with the halves kept PACKED in
// registers: the same math, bindings and Params as layernorm.wgsl (see there), a different register layout.
//
// Why: layernorm.wgsl unpacks every unit of f16 into f32 registers (a vec4<f32> for 8 bytes of halves), so an
// f16 thread holds as many registers as an f32 thread for half the bytes, and occupancy (registers) bounds
// the bytes in flight per SM: f16 moved about as many rows per µs as f32, i.e. half the bandwidth.
// Here a row is cut into WORDS of NH halves (16 bytes, vec4<u32>, when C % 8 == 0; else 8 or 4 bytes), read
// with one load per word and kept as u32 (2 halves a register); the f32 values are unpacked on use
// (unpack2x16float, twice in the backward: statistics pass and output pass) and written with pack2x16float
// (FASTPACK) or f16.wgsl's exact rounding. Per column a backward thread holds w, Σdy·x̂, Σdy (3 f32) and
// 2 rows of packed x, dy (2 registers), vs 7 f32 registers in layernorm.wgsl.
//
// Work layout: a workgroup has SLOTS row slots of WG threads and takes a block of block_rows consecutive rows
// of one weight group (forward and backward); slot s takes rows r0 + s, r0 + s + SLOTS, ...; thread t of a
// slot holds words t + k·WG, k < PER (coalesced). The slot's next row is loaded (prefetch) before the current
// one is reduced. Row sums: a butterfly of subgroupShuffleXor over clusters of CL lanes (CL divides WG, so a
// cluster never straddles two slots; every lane of a cluster gets bit-identical sums), the clusters' sums
// through shared memory in fixed order, one barrier a row (two buffers alternate); without subgroups a
// shared-memory tree. The backward's weight-gradient sums are added over the slots in shared memory (slot
// order) and written as the block's partial [groups, blocks, C] as in layernorm.wgsl: deterministic.
#if ${SUBGROUPS}
enable subgroups;
#endif

struct Params {
  rows: u32,
  len: u32,        // C
  units: u32,      // words per row: C / NH
  groups_x: u32,
  eps: f32,
  w_offset: f32,
  group_rows: u32,
  block_rows: u32,
  blocks: u32,
  total: u32,
}

alias W = ${W};           // one word of NH halves
const NW: u32 = ${NW};    // u32 in a word (NH / 2)
const WG: u32 = ${WG};    // threads per row slot
const SLOTS: u32 = ${SLOTS};
const PER: u32 = ${PER};  // words per thread
const Q: u32 = PER * NW;  // f32 pairs per thread
const CL: u32 = ${CL};    // subgroup cluster of one row's partial sum (power of two dividing WG)
const NP: u32 = ${NP};    // partial sums per slot: WG / CL (subgroups) or WG (tree)
const TREE: u32 = ${TREE};

@group(0) @binding(0) var<storage, read> x: array<W>;
#if ${AFFINE}
@group(0) @binding(1) var<storage, read> weight: array<vec2<f32>>; // [groups, C]
#endif
#if ${BACKWARD}
@group(0) @binding(2) var<storage, read> dy: array<W>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
#else
#if ${AFFINE}
@group(0) @binding(2) var<storage, read> bias: array<vec2<f32>>;
#endif
@group(0) @binding(3) var<storage, read_write> mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
#endif
@group(0) @binding(5) var<storage, read_write> dst: array<W>;
#if ${BACKWARD}
#if ${AFFINE}
@group(0) @binding(6) var<storage, read_write> pw: array<vec2<f32>>; // [groups, blocks, C]
@group(0) @binding(7) var<storage, read_write> pb: array<vec2<f32>>;
#endif
#endif
@group(0) @binding(8) var<uniform> p: Params;

// u32 i of a word as two f32
fn h2(w: W, i: u32) -> vec2<f32> {
#if ${NW1}
  return unpack2x16float(w);
#else
  return unpack2x16float(w[i]);
#endif
}

fn pk(v: vec2<f32>) -> u32 {
#if ${FASTPACK}
  return pack2x16float(v);
#else
  return pack_f16(v.x, v.y);
#endif
}

// A word from NW pairs.
fn word(o: array<vec2<f32>, NW>) -> W {
#if ${NW1}
  return pk(o[0]);
#elif ${NW2}
  return vec2<u32>(pk(o[0]), pk(o[1]));
#else
  return vec4<u32>(pk(o[0]), pk(o[1]), pk(o[2]), pk(o[3]));
#endif
}

// ---- the thread's place ----
var<private> slot: u32;
var<private> t: u32;
var<private> f: u32; // slot · WG + t

fn place(lid: u32, lane: u32, sgid: u32, sgsize: u32) {
#if ${SUBGROUPS}
  f = sgid * sgsize + lane; // subgroups are whole (the op checks), so this numbers the threads 0..WG·SLOTS
#else
  f = lid;
#endif
  slot = f / WG;
  t = f % WG;
}

// ---- (Σa, Σb) over the slot's threads; buf alternates between rows so one barrier a row suffices ----
var<workgroup> red: array<vec2<f32>, 2u * SLOTS * NP>;

fn slot_sum(v: vec2<f32>, buf: u32) -> vec2<f32> {
  let b = (buf * SLOTS + slot) * NP;
#if ${SUBGROUPS}
  var a = v;
  for (var o = 1u; o < CL; o <<= 1u) {
    a += subgroupShuffleXor(a, o);
  }
  if (t % CL == 0u) {
    red[b + t / CL] = a;
  }
  workgroupBarrier();
  var r = red[b];
  for (var i = 1u; i < NP; i++) {
    r += red[b + i]; // fixed order: deterministic
  }
  return r;
#else
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
}

#if ${BACKWARD}
#if ${AFFINE}
// Slots 1.. hand their weight-gradient sums of one word (NW pairs of Σdy·x̂, then of Σdy) to slot 0 here.
var<workgroup> comb: array<vec2<f32>, ${CW}>;
#endif

@compute @workgroup_size(WG * SLOTS)
fn backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
#if ${SUBGROUPS}
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_id) sgid: u32,
  @builtin(subgroup_size) sgsize: u32,
#endif
) {
#if ${SUBGROUPS}
  place(lid, lane, sgid, sgsize);
#else
  place(lid, 0u, 0u, 0u);
#endif
  // the workgroup's rows [r0, r1) of weight group grp (locals: the barriers' loop bound must be uniform)
  let rb = row_block(wid);
  if (rb.r0 == rb.r1) {
    return;
  }
  let blk = rb.blk;
  let grp = rb.grp;
  let r0 = rb.r0;
  let r1 = rb.r1;
  let steps = (r1 - r0 + SLOTS - 1u) / SLOTS; // the same for every slot: barriers stay uniform
  let hw = p.len / 2u; // pairs per row
  var w: array<vec2<f32>, Q>;
#if ${AFFINE}
  var aw: array<vec2<f32>, Q>;
  var ab: array<vec2<f32>, Q>;
#endif
  var cx: array<W, PER>; // this row, packed (words past the row's end stay 0: they add nothing)
  var cd: array<W, PER>;
  var nx: array<W, PER>; // the slot's next row
  var nd: array<W, PER>;
  for (var k = 0u; k < PER; k++) {
    let j = min(t + k * WG, p.units - 1u);
    for (var i = 0u; i < NW; i++) {
#if ${AFFINE}
      w[k * NW + i] = vec2<f32>(p.w_offset) + weight[grp * hw + j * NW + i];
#else
      w[k * NW + i] = vec2<f32>(1.0);
#endif
    }
  }
  var r = r0 + slot;
  if (r < r1) {
    for (var k = 0u; k < PER; k++) {
      let j = t + k * WG;
      if (j < p.units) {
        cx[k] = x[r * p.units + j];
        cd[k] = dy[r * p.units + j];
      }
    }
  }
  let n = f32(p.len);
  for (var step = 0u; step < steps; step++) {
    let on = r < r1;
    let nr = r + SLOTS;
    // prefetch: the next row's loads are in flight while this row is reduced and written; branch-free (past the
    // block the last row again, unused; words past the row's end 0)
    let nrc = min(nr, r1 - 1u);
    for (var k = 0u; k < PER; k++) {
      let j = t + k * WG;
      let jc = min(j, p.units - 1u);
      nx[k] = select(W(), x[nrc * p.units + jc], j < p.units);
      nd[k] = select(W(), dy[nrc * p.units + jc], j < p.units);
    }
    let rr = min(r, r1 - 1u);
    let m = mean[rr];
    let rs = rstd[rr];
    var sg = vec2<f32>(0.0);
    var sgx = vec2<f32>(0.0);
    for (var k = 0u; k < PER; k++) {
      for (var i = 0u; i < NW; i++) {
        let xh = (h2(cx[k], i) - m) * rs;
        let g = h2(cd[k], i) * w[k * NW + i];
        sg += g;
        sgx += g * xh;
      }
    }
    let c = slot_sum(vec2<f32>(sg.x + sg.y, sgx.x + sgx.y), step & 1u) / n; // (mean(g), mean(g·x̂))
    if (on) {
      for (var k = 0u; k < PER; k++) {
        let j = t + k * WG;
        var o: array<vec2<f32>, NW>;
        for (var i = 0u; i < NW; i++) {
          let xh = (h2(cx[k], i) - m) * rs;
          let d = h2(cd[k], i);
          o[i] = (d * w[k * NW + i] - c.x - xh * c.y) * rs;
#if ${AFFINE}
          aw[k * NW + i] += d * xh;
          ab[k * NW + i] += d;
#endif
        }
        if (j < p.units) {
          dst[r * p.units + j] = word(o);
        }
      }
    }
    cx = nx;
    cd = nd;
    r = nr;
  }
#if ${AFFINE}
  // the slots' sums added in slot order, one word at a time (two barriers a word), by slot 0
  for (var k = 0u; k < PER; k++) {
    let j = t + k * WG;
    if (SLOTS > 1u) {
      workgroupBarrier();
      if (slot > 0u) {
        for (var i = 0u; i < NW; i++) {
          comb[(((slot - 1u) * 2u * NW) + i) * WG + t] = aw[k * NW + i];
          comb[(((slot - 1u) * 2u * NW) + NW + i) * WG + t] = ab[k * NW + i];
        }
      }
      workgroupBarrier();
    }
    if (slot == 0u && j < p.units) {
      for (var i = 0u; i < NW; i++) {
        var sw = aw[k * NW + i];
        var sb = ab[k * NW + i];
        for (var s = 1u; s < SLOTS; s++) {
          sw += comb[(((s - 1u) * 2u * NW) + i) * WG + t];
          sb += comb[(((s - 1u) * 2u * NW) + NW + i) * WG + t];
        }
        pw[blk * hw + j * NW + i] = sw;
        pb[blk * hw + j * NW + i] = sb;
      }
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
  @builtin(subgroup_size) sgsize: u32,
#endif
) {
#if ${SUBGROUPS}
  place(lid, lane, sgid, sgsize);
#else
  place(lid, 0u, 0u, 0u);
#endif
  // the workgroup's rows [r0, r1) of weight group grp (locals: the barriers' loop bound must be uniform)
  let rb = row_block(wid);
  if (rb.r0 == rb.r1) {
    return;
  }
  let blk = rb.blk;
  let grp = rb.grp;
  let r0 = rb.r0;
  let r1 = rb.r1;
  let steps = (r1 - r0 + SLOTS - 1u) / SLOTS;
#if ${AFFINE}
  let hw = p.len / 2u;
  var w: array<vec2<f32>, Q>;
  var b: array<vec2<f32>, Q>;
  for (var k = 0u; k < PER; k++) {
    let j = min(t + k * WG, p.units - 1u);
    for (var i = 0u; i < NW; i++) {
      w[k * NW + i] = vec2<f32>(p.w_offset) + weight[grp * hw + j * NW + i];
      b[k * NW + i] = bias[grp * hw + j * NW + i];
    }
  }
#endif
  var cx: array<W, PER>;
  var nx: array<W, PER>;
  var r = r0 + slot;
  if (r < r1) {
    for (var k = 0u; k < PER; k++) {
      let j = t + k * WG;
      if (j < p.units) {
        cx[k] = x[r * p.units + j];
      }
    }
  }
  let n = f32(p.len);
  for (var step = 0u; step < steps; step++) {
    let on = r < r1;
    let nr = r + SLOTS;
    let nrc = min(nr, r1 - 1u); // branch-free prefetch (see backward)
    for (var k = 0u; k < PER; k++) {
      let j = t + k * WG;
      nx[k] = select(W(), x[nrc * p.units + min(j, p.units - 1u)], j < p.units);
    }
    let rr = min(r, r1 - 1u);
    let shift = h2(x[rr * p.units], 0u).x; // K = x[row, 0]: shifted sums (no cancellation when |mean| ≫ std)
    var s1 = vec2<f32>(0.0);
    var s2 = vec2<f32>(0.0);
    for (var k = 0u; k < PER; k++) {
      if (t + k * WG < p.units) {
        for (var i = 0u; i < NW; i++) {
          let v = h2(cx[k], i) - shift;
          s1 += v;
          s2 += v * v;
        }
      }
    }
    let sums = slot_sum(vec2<f32>(s1.x + s1.y, s2.x + s2.y), step & 1u) / n;
    if (on) {
      let var_ = max(sums.y - sums.x * sums.x, 0.0);
      let rs = inverseSqrt(var_ + p.eps);
      if (t == 0u) {
        mean[r] = shift + sums.x;
        rstd[r] = rs;
      }
      for (var k = 0u; k < PER; k++) {
        let j = t + k * WG;
        var o: array<vec2<f32>, NW>;
        for (var i = 0u; i < NW; i++) {
          var yv = (h2(cx[k], i) - shift - sums.x) * rs;
#if ${AFFINE}
          yv = yv * w[k * NW + i] + b[k * NW + i];
#endif
          o[i] = yv;
        }
        if (j < p.units) {
          dst[r * p.units + j] = word(o);
        }
      }
    }
    cx = nx;
    r = nr;
  }
}
#endif
