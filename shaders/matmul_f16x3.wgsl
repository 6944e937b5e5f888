// f32 matmul from three f16 products (the error-compensated split of Ootomo & Yokota 2022): each f32 operand
// X is scaled by a power of two 2^e (e from max|X|, so the largest element lands in (2^13, 2^14]: in f16's
// normal range with room below), then split into X_hi = f16(X·2^e) and X_lo = f16((X·2^e − X_hi)·2^11), which
// together carry ~22 bits. C = (A_hi·B_hi + (A_hi·B_lo + A_lo·B_hi)·2^-11)·2^-(ea+eb); the dropped A_lo·B_lo
// term is ~2^-22 of the product. The products are ordinary f16-input, f32-accumulate matmuls (tensor cores
// where the device has them). Or, with CAT (one product instead of three), each operand is written once as a
// K-concatenation of f16 parts, A_cat = [A_hi | A_hi | A_r] and B_cat = [B_hi ; B_r ; B_hi] with the unscaled
// residual X_r = f16(X·2^e − X_hi) (subnormal for the smallest elements: absolute error 2^-25 against a
// largest element of 2^13…2^14), so A_cat·B_cat = A_hi·B_hi + A_hi·B_r + A_r·B_hi is one matmul over 3K.
//   amax_partial: max|x| of a tensor, each workgroup's maximum folded into amax[slot] by atomicMax on the
//   float bits (non-negative floats order as their bits; max is order-free, so deterministic); amax starts at 0.
//   split: a thread per output word (two elements): hi and lo words, halves rounded to nearest even.
//   split with CAT: the same halves written to A_cat's or B_cat's three segments (p.role 0: hi hi r for A,
//   1: hi r hi for B); element i of X goes to segment s at (i / inner)·3·inner + s·inner + i % inner, where
//   inner (even) is K for a K-last operand and K·rows for a K-first one (a whole matrix per batch).
//   combine with CAT: c = p·2^-(ea+eb) (+ bias) for the single product p.
//   combine: c = (p1 + (p2 + p3)·2^-11)·2^-(ea+eb) (+ bias[column] with BIAS: f32 bias [N], added after
//   the un-scaling, so the sum is rounded once as in the exact kernel's epilogue).
struct Params {
  n: u32,        // elements
  groups_x: u32, // workgroups along x of the folded 2-D grid (amax_partial: of its 1-D grid)
  slot_a: u32,   // amax_partial: which amax to fold into; split: which amax to read; combine: A's in max_a
  slot_b: u32,   // combine: B's in max_b
  cols: u32,     // combine with BIAS: N (the bias index is the element's column)
  inner: u32,    // split with CAT: elements of one K-run (see above)
  role: u32,     // split with CAT: 0 for A (hi hi r), 1 for B (hi r hi)
}

// One entry point per build (AMAX_PARTIAL, SPLIT or COMBINE), each declaring only its bindings.
#if ${AMAX_PARTIAL}
@group(0) @binding(0) var<storage, read> x: array<u32>;              // f32 bits
@group(0) @binding(1) var<storage, read_write> amax_bits: array<atomic<u32>>; // maxima (f32 bits)
#elif ${SPLIT}
@group(0) @binding(0) var<storage, read> x: array<u32>;              // f32 bits
@group(0) @binding(1) var<storage, read> amax: array<f32>;
@group(0) @binding(3) var<storage, read_write> hi: array<u32>;       // packed f16 (CAT: the 3-segment operand)
#if ${CAT}
#else
@group(0) @binding(4) var<storage, read_write> lo: array<u32>;
#endif
#elif ${CAT}
@group(0) @binding(0) var<storage, read> x: array<u32>;              // p = A_cat·B_cat (f32 bits)
@group(0) @binding(1) var<storage, read> max_a: array<f32>;
@group(0) @binding(7) var<storage, read> max_b: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;      // c
#if ${BIAS}
@group(0) @binding(2) var<storage, read> bias: array<f32>;           // [N]
#endif
#else
@group(0) @binding(0) var<storage, read> x: array<u32>;              // p1 = A_hi·B_hi (f32 bits)
@group(0) @binding(1) var<storage, read> max_a: array<f32>;
@group(0) @binding(7) var<storage, read> max_b: array<f32>;
@group(0) @binding(3) var<storage, read> hi: array<u32>;             // p2 = A_hi·B_lo
@group(0) @binding(4) var<storage, read> lo: array<u32>;             // p3 = A_lo·B_hi
@group(0) @binding(5) var<storage, read_write> out: array<f32>;      // c
#if ${BIAS}
@group(0) @binding(2) var<storage, read> bias: array<f32>;           // [N]
#endif
#endif
@group(0) @binding(6) var<uniform> p: Params;

const WG: u32 = 256u;
const PER: u32 = 8u; // elements a thread folds in amax_partial

#if ${AMAX_PARTIAL}
var<workgroup> red: array<f32, WG>;

fn wg_max(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red[lid] = max(red[lid], red[lid + s]);
    }
  }
  workgroupBarrier();
  return red[0];
}

@compute @workgroup_size(WG)
fn amax_partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  // a 1-D grid of p.groups_x workgroups strides over blocks of PER·WG elements (few workgroups, so few
  // atomics on the one slot: a workgroup per block made the atomics the pass's cost)
  var m = 0.0;
  for (var g = wid.x; g * PER * WG < p.n; g += p.groups_x) {
    for (var k = 0u; k < PER; k++) {
      let i = (g * PER + k) * WG + lid; // neighbouring threads read neighbouring words
      if (i < p.n) {
        m = max(m, abs(bitcast<f32>(x[i])));
      }
    }
  }
  let r = wg_max(lid, m);
  if (lid == 0u) {
    atomicMax(&amax_bits[p.slot_a], bitcast<u32>(r));
  }
}

#endif


#if ${SPLIT}
@compute @workgroup_size(WG)
fn split(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * WG + lid; // output word
  let e0 = 2u * i;
  if (e0 >= p.n) {
    return;
  }
  let e = f16x3_exponent(amax[p.slot_a]);
  let v0 = ldexp(bitcast<f32>(x[e0]), e);
  var v1 = 0.0;
  if (e0 + 1u < p.n) {
    v1 = ldexp(bitcast<f32>(x[e0 + 1u]), e);
  }
  let wh = pack_f16(v0, v1);
  let h = unpack2x16float(wh);
#if ${CAT}
  let wr = pack_f16(v0 - h.x, v1 - h.y); // n and inner are even: both halves are elements
  let o = ((e0 / p.inner) * 3u * p.inner + e0 % p.inner) / 2u; // word of segment 0
  let w = p.inner / 2u;                                         // words per segment run
  hi[o] = wh;
  hi[o + w] = select(wh, wr, p.role == 1u);
  hi[o + 2u * w] = select(wr, wh, p.role == 1u);
#else
  var wl = pack_f16((v0 - h.x) * 2048.0, (v1 - h.y) * 2048.0);
  if (e0 + 1u >= p.n) {
    wl &= 0xffffu; // the padding half of an odd-sized tensor's last word stays 0
  }
  hi[i] = wh;
  lo[i] = wl;
#endif
}

#endif

#if ${COMBINE}
@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * WG + lid;
  if (i >= p.n) {
    return;
  }
  let e = f16x3_exponent(max_a[p.slot_a]) + f16x3_exponent(max_b[p.slot_b]);
#if ${CAT}
  let c = bitcast<f32>(x[i]);
#else
  let c = bitcast<f32>(x[i]) + (bitcast<f32>(hi[i]) + bitcast<f32>(lo[i])) * (1.0 / 2048.0);
#endif
  // two steps: 2^-e may be outside f32's exponent range when e > 126
  var r = ldexp(ldexp(c, -e / 2), -(e - e / 2));
#if ${BIAS}
  r += bias[i % p.cols];
#endif
  out[i] = r;
}
#endif
