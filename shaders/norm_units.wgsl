// ---- Row units of the norm kernels (appended to layernorm.wgsl and adaln.wgsl by their TS ops): elementwise
// helpers for a unit V (see layernorm.wgsl: E8 mat2x4<f32> of 8 halves, E4 vec4, E2 pair, else one element),
// f16 packing (FASTPACK: the hardware conversion) and st(row, j, v), which writes unit j of a row to the
// including kernel's `dst` (ODD: f16 rows of odd C, one half at a time with atomics). Uses Params len, units
// and total.
// Every element s; elementwise product (a mat2x4 product would be a matrix product).
fn splat(s: f32) -> V {
#if ${E8}
  return V(vec4<f32>(s), vec4<f32>(s));
#else
  return V(s);
#endif
}

fn mul(a: V, b: V) -> V {
#if ${E8}
  return V(a[0] * b[0], a[1] * b[1]);
#else
  return a * b;
#endif
}

// Two floats as one word of halves: pack2x16float (FASTPACK: the hardware conversion, round to nearest
// even on NVIDIA, implementation-defined out of range) or f16.wgsl's exact software rounding.
fn pk(lo: f32, hi: f32) -> u32 {
#if ${FASTPACK}
  return pack2x16float(vec2<f32>(lo, hi));
#else
  return pack_f16(lo, hi);
#endif
}

#if ${ODD}
// Element j of a row, one half of a shared word.
fn half_at(w: u32, e: u32) -> f32 {
  return unpack2x16float(w)[e & 1u];
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
#if ${E8}
  return V(vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)), vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)));
#elif ${E4}
  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
#else
  return unpack2x16float(w);
#endif
#else
  return w;
#endif
}

fn st(row: u32, j: u32, v: V) {
#if ${F16}
#if ${E8}
  dst[row * p.units + j] = vec4<u32>(pk(v[0].x, v[0].y), pk(v[0].z, v[0].w), pk(v[1].x, v[1].y), pk(v[1].z, v[1].w));
#elif ${E4}
  dst[row * p.units + j] = vec2<u32>(pk(v.x, v.y), pk(v.z, v.w));
#else
  dst[row * p.units + j] = pk(v.x, v.y);
#endif
#else
  dst[row * p.units + j] = v;
#endif
}
#endif
