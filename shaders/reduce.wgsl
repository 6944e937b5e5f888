// Sums over one axis of x viewed as [outer, len, inner], in f32, deterministically (fixed order, no atomics).
//   rows (inner == 1): one workgroup per (row, chunk): 256 threads stride over the chunk, then a tree
//     reduction, through subgroupAdd when SUBGROUPS, through workgroup memory otherwise.
//   cols (inner > 1): one thread per (outer, chunk, column); neighbouring threads read neighbouring columns.
// A long axis is cut into `chunks` pieces of `chunk` elements; the TS op then sums the partials in another pass.
// y is [outer, chunks, inner] (rows: [outer, chunks]); an f16 x is read one half at a time.
#if ${SUBGROUPS}
enable subgroups;
#endif

struct Params {
  len: u32,      // elements along the summed axis
  inner: u32,    // product of the dims after it (1 for rows)
  chunk: u32,    // axis elements per chunk
  chunks: u32,   // chunks per axis
  total: u32,    // outputs: outer * chunks * inner
  groups_x: u32, // workgroups along x of the folded 2-D grid
}

@group(0) @binding(0) var<storage, read> x: array<${WORD}>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn x_at(i: u32) -> f32 {
#if ${F16}
  return unpack2x16float(x[i >> 1u])[i & 1u];
#else
  return x[i];
#endif
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn rows(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_index) lid: u32,
#if ${SUBGROUPS}
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) sg_size: u32,
  @builtin(subgroup_id) sg_id: u32,
  @builtin(num_subgroups) num_sg: u32,
#endif
) {
  let g = wid.x + wid.y * p.groups_x; // output index: row * chunks + chunk
  if (g >= p.total) {
    return;
  }
  let c = g % p.chunks;
  let start = (g / p.chunks) * p.len + c * p.chunk;
  let end = start + min(p.chunk, p.len - c * p.chunk);
  var acc = 0.0;
  for (var i = start + lid; i < end; i += 256u) {
    acc += x_at(i);
  }
#if ${SUBGROUPS}
  // Each subgroup's total goes to partial[sg_id]; subgroups then add those in groups of sg_size until one is left.
  var total = subgroupAdd(acc);
  var count = num_sg;
  while (count > 1u) {
    if (lane == 0u && sg_id < count) {
      partial[sg_id] = total;
    }
    workgroupBarrier();
    let k = sg_id * sg_size + lane;
    var v = 0.0;
    if (k < count) {
      v = partial[k];
    }
    workgroupBarrier();
    total = subgroupAdd(v);
    count = (count + sg_size - 1u) / sg_size;
  }
  if (sg_id == 0u && lane == 0u) {
    y[g] = total;
  }
#else
  partial[lid] = acc;
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      partial[lid] += partial[lid + s];
    }
  }
  if (lid == 0u) {
    y[g] = partial[0];
  }
#endif
}

@compute @workgroup_size(256)
fn cols(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * p.groups_x) * 256u + lid; // output index: (o * chunks + c) * inner + j
  if (t >= p.total) {
    return;
  }
  let j = t % p.inner;
  let oc = t / p.inner;
  let c = oc % p.chunks;
  let o = oc / p.chunks;
  let n = min(p.chunk, p.len - c * p.chunk);
  var i = (o * p.len + c * p.chunk) * p.inner + j;
  var acc = 0.0;
  for (var k = 0u; k < n; k++) {
    acc += x_at(i);
    i += p.inner;
  }
  y[t] = acc;
}
