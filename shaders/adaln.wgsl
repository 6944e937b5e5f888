// adaLN's gated residual for x, y of [B, N, C] and a per-sample gate [B, C] (f32):
//   forward:  out = x + gate[b]·y                       (one thread per unit)
//   backward: dy = gate[b]·dout, dgate[b] = Σ_n dout·y   (dx = dout needs no kernel)
// The backward runs one workgroup per block of block_rows tokens of one sample, in SLOTS row slots of WG
// threads that take every SLOTS-th row: each thread owns PER column units (unit t + k·WG: coalesced),
// writes dy and sums dout·y over its slot's rows in registers; the slots' sums are added in shared memory
// (slot order) and stored as the block's partial [B, blocks, C]; the op adds the partials over blocks in a second pass
// (fixed order: deterministic). Units are as in layernorm.wgsl: 8 halves (E8, f16 with C % 8 == 0 when the op
// asks for 16-byte units), vec4 (E4), f16 pairs (E2) or single elements; f16 rows of odd C (ODD) read halves
// one at a time and write them with atomics.
// (adaLN's modulate, y = LN(x)·(1 + scale) + shift, is layernorm.wgsl with per-sample weights.)
struct Params {
  rows: u32,       // B · N
  len: u32,        // C
  units: u32,      // units per row: C / E
  groups_x: u32,   // workgroups along x of the folded 2-D grid
  group_rows: u32, // N: rows per sample
  block_rows: u32, // backward: rows per workgroup
  blocks: u32,     // backward: workgroups per sample
  total: u32,      // B · N · C
}

alias V = ${V};
const WG: u32 = ${WG};
const PER: u32 = ${PER};
const SLOTS: u32 = ${SLOTS}; // backward: row slots per workgroup

#if ${BACKWARD}
@group(0) @binding(0) var<storage, read> a: array<${XW}>; // dout
#else
@group(0) @binding(0) var<storage, read> a: array<${XW}>; // x
#endif
@group(0) @binding(1) var<storage, read> gate: array<V>;  // [B, C]
@group(0) @binding(2) var<storage, read> y: array<${XW}>;
// out (forward) or dy (backward)
#if ${ODD}
@group(0) @binding(3) var<storage, read_write> dst: array<atomic<u32>>;
#else
@group(0) @binding(3) var<storage, read_write> dst: array<${XW}>;
#endif
#if ${BACKWARD}
@group(0) @binding(4) var<storage, read_write> pg: array<V>; // Σ dout·y per block: [B, blocks, C]
#endif
@group(0) @binding(5) var<uniform> p: Params;

// splat, mul, pk, half_at, to_v, st: shaders/norm_units.wgsl (appended by the TS op).
#if ${ODD}
fn ld_a(row: u32, j: u32) -> V {
  let e = row * p.len + j;
  return half_at(a[e >> 1u], e);
}

fn ld_y(row: u32, j: u32) -> V {
  let e = row * p.len + j;
  return half_at(y[e >> 1u], e);
}
#else
fn ld_a(row: u32, j: u32) -> V {
  return to_v(a[row * p.units + j]);
}

fn ld_y(row: u32, j: u32) -> V {
  return to_v(y[row * p.units + j]);
}
#endif

#if ${BACKWARD}
// Slots 1.. hand their dgate sums to slot 0 through here, one register slot at a time.
var<workgroup> comb: array<V, ${CW}>;

@compute @workgroup_size(WG * SLOTS)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let slot = lid / WG; // the block's rows are dealt to the SLOTS row slots in turn
  let t = lid % WG;
  let rb = row_block(wid); // the rows [r0, r1) of sample b; block blk = sample · blocks + block
  if (rb.r0 == rb.r1) {
    return;
  }
  let blk = rb.blk;
  let b = rb.grp;
  let r0 = rb.r0;
  let r1 = rb.r1;
  var gt: array<V, PER>;
  var acc: array<V, PER>;
  for (var k = 0u; k < PER; k++) {
    let j = t + k * WG;
    if (j < p.units) {
      gt[k] = gate[b * p.units + j];
    }
  }
  for (var r = r0 + slot; r < r1; r += SLOTS) {
    for (var k = 0u; k < PER; k++) {
      let j = t + k * WG;
      if (j < p.units) {
        let d = ld_a(r, j);
        acc[k] += mul(d, ld_y(r, j));
        st(r, j, mul(gt[k], d));
      }
    }
  }
  for (var k = 0u; k < PER; k++) {
    let j = t + k * WG;
    var sum = acc[k];
    if (SLOTS > 1u) { // add the slots' sums in slot order
      workgroupBarrier();
      if (slot > 0u) {
        comb[(slot - 1u) * WG + t] = acc[k];
      }
      workgroupBarrier();
      if (slot == 0u) {
        for (var s = 1u; s < SLOTS; s++) {
          sum += comb[(s - 1u) * WG + t];
        }
      }
    }
    if (slot == 0u && j < p.units) {
      pg[blk * p.units + j] = sum;
    }
  }
}
#else
@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid; // unit index over all rows
  if (i >= p.rows * p.units) {
    return;
  }
  let row = i / p.units;
  let j = i - row * p.units;
  st(row, j, ld_a(row, j) + mul(gate[(row / p.group_rows) * p.units + j], ld_y(row, j)));
}
#endif
