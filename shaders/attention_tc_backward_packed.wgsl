// Flash attention backward on tensor cores for SHORT sequences (Nq, Nk ≤ 16: STDiT's temporal attention over
// 16 frames), dQ, dK and dV in one pass. The general backward (attention_tc_backward.wgsl) tiles 64 rows a
// workgroup and would leave 48 of them empty; here each subgroup owns one (b, h) sequence in 16 tile rows, NS
// sequences a workgroup, and every product is its own 16 × 16 block:
//   S = Q·Kᵀ, dP = dO·Vᵀ → P = exp(scale·S − lse) (zero past the keys in use and past Nq), dS = P∘(dP − Δ)
//   dV = Pᵀ·dO, dK = scale·dSᵀ·Q, dQ = scale·dS·K
// (lse_i · log2 e and Δ_i = Σ_d dO_id·O_id as pairs from attention_delta.wgsl: with q, k, v, dO and
// the three gradients that makes the 8 storage bindings WebGPU guarantees a stage.) Q, K, V and dO are fetched at once as 16-byte chunks (one
// round of latency); P and dS go to workgroup memory once as f16 and are read back as left operands, Pᵀ and dSᵀ
// through column-major loads; each gradient leaves through Ss, O_STEP 16-wide fragments a pass, 8 columns a lane.
// No key mask (kv_len would be a ninth binding): masked short sequences take the general kernels.
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

struct Params {
  nq: u32,
  nk: u32,
  d: u32,
  scale: f32,      // softmax scale
  scale_log2: f32, // scale · log2(e)
  bh_total: u32,   // B·H
  groups_x: u32,   // width of a folded 2-D grid
}

// q, k, v, dout, lse_delta (bindings 0–4) and load_chunk: shaders/attention_tc_backward_inputs.wgsl
// gradients: VEC as 16-byte words (8 halves or 4 floats), else one element each
#if ${VEC}
#if ${OUT_F16}
alias GW = vec4<u32>;
#else
alias GW = vec4<f32>;
#endif
#else
#if ${OUT_F16}
alias GW = f16;
#else
alias GW = f32;
#endif
#endif
@group(0) @binding(5) var<storage, read_write> dq: array<GW>;
@group(0) @binding(6) var<storage, read_write> dk: array<GW>;
@group(0) @binding(7) var<storage, read_write> dv: array<GW>;
@group(0) @binding(8) var<uniform> p: Params;

const DP = ${DP}u;
const DF = DP / 16u;
const NS = ${NS}u;            // sequences (subgroups) a workgroup
const THREADS = NS * 32u;
const TILE_ROWS = NS * 16u;   // rows of a staged tile (attention_tc_staging.wgsl)
const KS = DP + 8u;           // row stride (halves) of the Q/K/V/dO tiles
const TS = 40u;               // row stride (halves) of Ps: P in columns 0..15, dS in 16..31
const SW = 68u;               // row stride (floats) of Ss: S and dP (columns 0..31), then gradient staging
const SS_ROW = SW;            // for attention_tc_common.wgsl (its zero accumulator is unused here)
const O_STEP = 4u;            // gradient fragments staged a pass

var<workgroup> Qt: array<vec2<u32>, TILE_ROWS * KS / 4u>;
var<workgroup> Kt: array<vec2<u32>, TILE_ROWS * KS / 4u>;
var<workgroup> Vt: array<vec2<u32>, TILE_ROWS * KS / 4u>;
var<workgroup> Ot: array<vec2<u32>, TILE_ROWS * KS / 4u>; // dO
var<workgroup> Ss: array<vec4<f32>, TILE_ROWS * SW / 4u>;
var<workgroup> Ps: array<vec2<u32>, TILE_ROWS * TS / 4u>;

// Tile staging (fetch_chunk / put_chunk; sources and tiles 0 q, 1 k, 2 v, 3 dout): shaders/attention_tc_staging.wgsl,
// appended by the TS op with attention_tc_common.wgsl (pack4), through these accessors.
fn store_chunk(dst: u32, off: u32, w: vec4<u32>) {
  let i = off / 4u;
  switch dst {
    case 0u: { Qt[i] = w.xy; Qt[i + 1u] = w.zw; }
    case 1u: { Kt[i] = w.xy; Kt[i + 1u] = w.zw; }
    case 2u: { Vt[i] = w.xy; Vt[i + 1u] = w.zw; }
    default: { Ot[i] = w.xy; Ot[i + 1u] = w.zw; }
  }
}

// Subgroup sg's 16 rows of a tile, D columns f·16.., as a left operand / as a right operand; its 16 rows as the
// columns of a right operand (the block transposed).
fn rows_left(t: u32, sg: u32, f: u32) -> subgroup_matrix_left<f16, 16, 16> {
  let o = (sg * 16u * KS + f * 16u) / 4u;
  switch t {
    case 0u: { return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Qt, o, KS / 4u); }
    default: { return subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ot, o, KS / 4u); }
  }
}

fn rows_right(t: u32, sg: u32, f: u32) -> subgroup_matrix_right<f16, 16, 16> {
  let o = (sg * 16u * KS + f * 16u) / 4u;
  switch t {
    case 0u: { return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Qt, o, KS / 4u); }
    case 1u: { return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Kt, o, KS / 4u); }
    default: { return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&Ot, o, KS / 4u); }
  }
}

fn cols_right(t: u32, sg: u32, f: u32) -> subgroup_matrix_right<f16, 16, 16> {
  let o = (sg * 16u * KS + f * 16u) / 4u;
  switch t {
    case 1u: { return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Kt, o, KS / 4u); }
    default: { return subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Vt, o, KS / 4u); }
  }
}

// Columns d .. d + 7 of row `row` of gradient g (0 dQ, 1 dK, 2 dV); the caller checks the row.
fn write8(g: u32, row: u32, d: u32, a: vec4<f32>, b: vec4<f32>) {
#if ${VEC}
  if (d >= p.d) { return; }
#if ${OUT_F16}
  let w = vec4<u32>(pack4(a), pack4(b));
  let i = (row * p.d + d) / 8u;
  switch g { case 0u: { dq[i] = w; } case 1u: { dk[i] = w; } default: { dv[i] = w; } }
#else
  let i = (row * p.d + d) / 4u;
  switch g {
    case 0u: { dq[i] = a; dq[i + 1u] = b; }
    case 1u: { dk[i] = a; dk[i + 1u] = b; }
    default: { dv[i] = a; dv[i + 1u] = b; }
  }
#endif
#else
  for (var c = 0u; c < 8u; c++) {
    if (d + c < p.d) {
      let x = GW(select(b[c % 4u], a[c % 4u], c < 4u));
      let i = row * p.d + d + c;
      switch g { case 0u: { dq[i] = x; } case 1u: { dk[i] = x; } default: { dv[i] = x; } }
    }
  }
#endif
}

@compute @workgroup_size(THREADS)
fn packed(@builtin(workgroup_id) wid: vec3u,
          @builtin(local_invocation_index) lid: u32,
          @builtin(subgroup_id) sg: u32,
          @builtin(subgroup_invocation_id) lane: u32) {
  let bh0 = (wid.x + wid.y * p.groups_x) * NS;
  let bh = bh0 + sg;
  var rq: array<vec4<u32>, PER>;
  var rk: array<vec4<u32>, PER>;
  var rv: array<vec4<u32>, PER>;
  var ro: array<vec4<u32>, PER>;
  for (var i = 0u; i < PER; i++) {
    rq[i] = seq_chunk(0u, lid + i * THREADS, bh0, p.nq, p.bh_total);
    rk[i] = seq_chunk(1u, lid + i * THREADS, bh0, p.nk, p.bh_total);
    rv[i] = seq_chunk(2u, lid + i * THREADS, bh0, p.nk, p.bh_total);
    ro[i] = seq_chunk(3u, lid + i * THREADS, bh0, p.nq, p.bh_total);
  }
  // this lane's row r (two lanes a row, columns h·8 .. h·8 + 7 of each 16) and its lse (log2 domain) and Δ
  let r = lane / 2u;
  let h = lane % 2u;
  let live = bh < p.bh_total;
  let qrow = bh * p.nq + min(r, p.nq - 1u);
  var ld = vec2<f32>(0.0);
  if (live) { ld = lse_delta[qrow]; }
  let lse2 = ld.x;
  let dlt = ld.y;
  let nk = p.nk;
  for (var i = 0u; i < PER; i++) {
    put_chunk(0u, lid + i * THREADS, rq[i]);
    put_chunk(1u, lid + i * THREADS, rk[i]);
    put_chunk(2u, lid + i * THREADS, rv[i]);
    put_chunk(3u, lid + i * THREADS, ro[i]);
  }
  workgroupBarrier();

  // S = Q·Kᵀ and dP = dO·Vᵀ of the subgroup's own block, side by side in its Ss rows.
  var s = subgroupMatrixMultiply<f32>(rows_left(0u, sg, 0u), cols_right(1u, sg, 0u));
  var dp = subgroupMatrixMultiply<f32>(rows_left(3u, sg, 0u), cols_right(2u, sg, 0u));
  for (var f = 1u; f < DF; f++) {
    s = subgroupMatrixMultiplyAccumulate(rows_left(0u, sg, f), cols_right(1u, sg, f), s);
    dp = subgroupMatrixMultiplyAccumulate(rows_left(3u, sg, f), cols_right(2u, sg, f), dp);
  }
  subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW) / 4u, s, SW / 4u);
  subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW + 16u) / 4u, dp, SW / 4u);
  workgroupBarrier();

  // P and dS for the lane's 8 keys; zero past the keys and on padding rows.
  let si = (sg * 16u * SW + r * SW + h * 8u) / 4u;
  let key0 = vec4<u32>(0u, 1u, 2u, 3u) + h * 8u;
  let on = live && r < p.nq;
  let in0 = (key0 < vec4<u32>(nk)) & vec4<bool>(on);
  let in1 = (key0 + 4u < vec4<u32>(nk)) & vec4<bool>(on);
  let p0 = select(vec4<f32>(0.0), exp2(Ss[si] * p.scale_log2 - lse2), in0);
  let p1 = select(vec4<f32>(0.0), exp2(Ss[si + 1u] * p.scale_log2 - lse2), in1);
  let ds0 = p0 * (Ss[si + 4u] - dlt);
  let ds1 = p1 * (Ss[si + 5u] - dlt);
  let pw = (sg * 16u * TS + r * TS + h * 8u) / 4u;
  Ps[pw] = pack4(p0);
  Ps[pw + 1u] = pack4(p1);
  Ps[pw + 4u] = pack4(ds0);
  Ps[pw + 5u] = pack4(ds1);
  workgroupBarrier();

  // dQ = dS·K, dK = dSᵀ·Q (both · scale), dV = Pᵀ·dO; Pᵀ and dSᵀ through column-major loads of Ps.
  let ps0 = (sg * 16u * TS) / 4u;
  let dsf = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ps, ps0 + 4u, TS / 4u);
  let dst = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, col_major>(&Ps, ps0 + 4u, TS / 4u);
  let pt = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, col_major>(&Ps, ps0, TS / 4u);
  for (var g = 0u; g < 3u; g++) {
    let rows = select(p.nk, p.nq, g == 0u);
    let mul = select(1.0, p.scale, g < 2u);
    for (var f0 = 0u; f0 < DF; f0 += O_STEP) {
      for (var f = f0; f < min(f0 + O_STEP, DF); f++) {
        var x: subgroup_matrix_result<f32, 16, 16>;
        switch g {
          case 0u: { x = subgroupMatrixMultiply<f32>(dsf, rows_right(1u, sg, f)); }
          case 1u: { x = subgroupMatrixMultiply<f32>(dst, rows_right(0u, sg, f)); }
          default: { x = subgroupMatrixMultiply<f32>(pt, rows_right(3u, sg, f)); }
        }
        subgroupMatrixStore<row_major>(&Ss, (sg * 16u * SW + (f - f0) * 16u) / 4u, x, SW / 4u);
      }
      workgroupBarrier();
      if (live && r < rows) {
        for (var f = f0; f < min(f0 + O_STEP, DF); f++) {
          let oi = si + (f - f0) * 4u;
          write8(g, bh * rows + r, f * 16u + h * 8u, Ss[oi] * mul, Ss[oi + 1u] * mul);
        }
      }
      workgroupBarrier();
    }
  }
}
