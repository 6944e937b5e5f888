// ---- Tile staging of attention_tc.wgsl and attention_tc_backward.wgsl (appended to both templates by
// engine/ops/attention_tc.ts). A tile is TILE_ROWS rows of a [rows, D] f16 matrix, moved as 16-byte chunks:
// chunk c is row c / (DP/8), columns 8·(c mod DP/8) .. +7, zero past D and past `rows`. The kernels' key/query
// loops fetch the next tile's chunks into registers (PER a thread) while the tensor cores work on the current
// one, then put them into workgroup memory after the loop's barrier.
// The including kernel provides TILE_ROWS, DP (D padded to 16), KS (tile row stride in halves), THREADS, p.d and:
//   VEC (D a multiple of 8): load_chunk(src, i) -> vec4<u32>, the i-th 16-byte word of source `src`;
//   else: load_half(src, i) -> f16, its i-th half (eight loads a chunk);
//   store_chunk(dst, off, w), the chunk's 8 halves into tile `dst` from half `off` (a multiple of 8) on.
// Constants and functions only: no workgroup variables (their declaration order matters on Dawn/NVIDIA).
const CHUNKS = TILE_ROWS * DP / 8u;
const PER = (CHUNKS + THREADS - 1u) / THREADS;

// Chunk c of rows [r0, r0 + TILE_ROWS) of source `src` at element `base`.
fn fetch_chunk(src: u32, c: u32, base: u32, r0: u32, rows: u32) -> vec4<u32> {
  let r = c / (DP / 8u);
  let col = (c % (DP / 8u)) * 8u;
  var w = vec4<u32>(0u);
  if (c < CHUNKS && r0 + r < rows && col < p.d) {
#if ${VEC}
    w = load_chunk(src, (base + (r0 + r) * p.d + col) / 8u);
#else
    for (var i = 0u; i < 4u; i++) {
      let g = base + (r0 + r) * p.d + col + 2u * i;
      var x = vec2<f16>(0.0);
      if (col + 2u * i < p.d) { x.x = load_half(src, g); }
      if (col + 2u * i + 1u < p.d) { x.y = load_half(src, g + 1u); }
      w[i] = bitcast<u32>(x);
    }
#endif
  }
  return w;
}

// Writes a fetched chunk c into tile `dst`.
fn put_chunk(dst: u32, c: u32, w: vec4<u32>) {
  if (c >= CHUNKS) { return; }
  store_chunk(dst, (c / (DP / 8u)) * KS + (c % (DP / 8u)) * 8u, w);
}

// Stages rows [r0, r0 + TILE_ROWS) of `src` into tile `dst` at once (no prefetch).
fn stage(dst: u32, src: u32, lid: u32, base: u32, r0: u32, rows: u32) {
  for (var i = 0u; i < PER; i++) { put_chunk(dst, lid + i * THREADS, fetch_chunk(src, lid + i * THREADS, base, r0, rows)); }
}

// The packed entries' tile (short sequences, attention_tc.wgsl's packed and attention_tc_backward_packed.wgsl):
// chunk c of tile row r = row r mod 16 of sequence bh0 + r / 16 (n rows each, `total` sequences in all); zero past
// the sequence, past D and past the last sequence.
fn seq_chunk(src: u32, c: u32, bh0: u32, n: u32, total: u32) -> vec4<u32> {
  let r = c / (DP / 8u);
  let bh = bh0 + r / 16u;
  if (c >= CHUNKS || bh >= total) { return vec4<u32>(0u); }
  return fetch_chunk(src, (r % 16u) * (DP / 8u) + c % (DP / 8u), bh * n * p.d, 0u, n);
}
