// Mean-squared-error loss over samples: pred and target viewed as [B, M] (B = 1 for the plain mean).
//   partial:  one workgroup per (sample, chunk): Σ (pred − target)² over `chunk` elements of the sample,
//             256 threads striding (coalesced), then a shared-memory tree → part[b·chunks + c] · scale.
//   finish:   the same kernel with FINISH: one workgroup per sample sums its chunks' partials (no square)
//             → loss[b] · scale (scale = 1/M). When a sample has one chunk, partial writes loss directly.
//   per_thread: tiny samples (M ≤ 32): one thread per sample sums it alone → loss[b] · scale.
//   backward: one thread per storage word: dpred = 2·(pred − target)·scale·dloss[b] (scale = 1/M), or
//             dloss[0] for the plain mean (PER_SAMPLE off).
// Every sum runs in a fixed order (no atomics): the same inputs give the same bits.
struct Params {
  m: u32,        // elements per sample
  chunk: u32,    // elements per chunk (partial)
  chunks: u32,   // chunks per sample
  total: u32,    // partial: samples · chunks workgroups; backward: elements
  groups_x: u32, // workgroups along x of the folded 2-D grid
  words: u32,    // backward: storage words (threads)
  scale: f32,
}

#if ${FINISH}
@group(0) @binding(0) var<storage, read> src: array<f32>;
#else
@group(0) @binding(0) var<storage, read> pred: array<${WORD}>;
@group(0) @binding(1) var<storage, read> tgt: array<${WORD}>;
#endif
#if ${BACKWARD}
@group(0) @binding(2) var<storage, read> dloss: array<f32>;
@group(0) @binding(3) var<storage, read_write> dpred: array<${WORD}>;
#else
@group(0) @binding(3) var<storage, read_write> part: array<f32>;
#endif
@group(0) @binding(4) var<uniform> p: Params;

fn diff(i: u32) -> f32 {
#if ${FINISH}
  return 0.0;
#elif ${F16}
  return unpack2x16float(pred[i >> 1u])[i & 1u] - unpack2x16float(tgt[i >> 1u])[i & 1u];
#else
  return pred[i] - tgt[i];
#endif
}

var<workgroup> red: array<f32, 256>;

// Tree sum of one value per thread; the result is valid in thread 0.
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red[lid] += red[lid + s];
    }
  }
  return red[0];
}

#if ${BACKWARD}
fn grad(i: u32) -> f32 {
#if ${PER_SAMPLE}
  let g = dloss[i / p.m];
#else
  let g = dloss[0];
#endif
  return 2.0 * diff(i) * p.scale * g;
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (w >= p.words) {
    return;
  }
#if ${F16}
  let e = 2u * w;
  var hi = 0.0; // the upper half of an odd-sized tensor's last word is padding (0)
  if (e + 1u < p.total) {
    hi = grad(e + 1u);
  }
  dpred[w] = pack_f16(grad(e), hi);
#else
  dpred[w] = grad(w);
#endif
}
#else
@compute @workgroup_size(256)
fn partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * p.groups_x; // b · chunks + c
  if (g >= p.total) {
    return;
  }
  let c = g % p.chunks;
  let start = (g / p.chunks) * p.m + c * p.chunk;
  let end = start + min(p.chunk, p.m - c * p.chunk);
  var acc = 0.0;
  for (var i = start + lid; i < end; i += 256u) {
#if ${FINISH}
    acc += src[i];
#else
    let d = diff(i);
    acc += d * d;
#endif
  }
  let s = wg_sum(acc, lid);
  if (lid == 0u) {
    part[g] = s * p.scale;
  }
}

@compute @workgroup_size(256)
fn per_thread(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (b >= p.total) {
    return;
  }
  var acc = 0.0;
  for (var i = b * p.m; i < (b + 1u) * p.m; i++) {
    let d = diff(i);
    acc += d * d;
  }
  part[b] = acc * p.scale;
}
#endif
