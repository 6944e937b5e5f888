// LayerNorm / adaLN-modulate backward, second pass: dw[g, c] = Σ_blk pw[g, blk, c] and db likewise (the
// weight-gradient partials of layernorm.wgsl's backward, [groups, blocks, C] f32), one dispatch for both;
// without PAIR only pw → dw (adaln.wgsl's dgate partials).
// A workgroup of 256 threads covers CT column units of one group and one of the two arrays; its CL = 256 / CT
// lanes each add every CL-th block (four independent loads per step), then a fixed-order tree adds the
// lanes (deterministic). CT is chosen per call (ops/layernorm.ts colsum) so that there are enough workgroups.
struct Params {
  units: u32,    // column units per group row
  blocks: u32,
  tiles: u32,    // column tiles per group and array
  groups_x: u32,
}
const CT: u32 = ${CT};
const CL: u32 = 256u / CT;
#if ${PAIR}
const NA: u32 = 2u; // arrays
#else
const NA: u32 = 1u;
#endif

@group(0) @binding(0) var<storage, read> pw: array<${CV}>;
#if ${PAIR}
@group(0) @binding(1) var<storage, read> pb: array<${CV}>;
#endif
@group(0) @binding(2) var<storage, read_write> dw: array<${CV}>;
#if ${PAIR}
@group(0) @binding(3) var<storage, read_write> db: array<${CV}>;
#endif
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> part: array<${CV}, 256>;

fn ld(q: u32, i: u32) -> ${CV} {
#if ${PAIR}
  if (q == 1u) {
    return pb[i];
  }
#endif
  return pw[i];
}

@compute @workgroup_size(256)
fn colsum(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * p.groups_x; // (group · NA + array) · tiles + tile
  let tile = w % p.tiles;
  let q = (w / p.tiles) % NA;
  let g = w / (NA * p.tiles);
  let c = tile * CT + lid % CT;
  let l = lid / CT;
  var acc = ${CV}(0.0);
  if (c < p.units) {
    let base = g * p.blocks * p.units + c;
    var b = l;
    for (; b + 3u * CL < p.blocks; b += 4u * CL) {
      let v0 = ld(q, base + b * p.units);
      let v1 = ld(q, base + (b + CL) * p.units);
      let v2 = ld(q, base + (b + 2u * CL) * p.units);
      let v3 = ld(q, base + (b + 3u * CL) * p.units);
      acc += ((v0 + v1) + (v2 + v3));
    }
    for (; b < p.blocks; b += CL) {
      acc += ld(q, base + b * p.units);
    }
  }
  part[lid] = acc;
  for (var h = CL / 2u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (l < h) {
      acc += part[lid + h * CT];
      part[lid] = acc;
    }
  }
  if (l == 0u && c < p.units) {
#if ${PAIR}
    if (q == 1u) {
      db[g * p.units + c] = acc;
      return;
    }
#endif
    dw[g * p.units + c] = acc;
  }
}
