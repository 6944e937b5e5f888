
// ---- f16 packing, shared by kernels that write f16 (appended to their template by the TS op) ----
// pack2x16float leaves rounding and out-of-range results to the implementation (SwiftShader turns
// overflow and infinities into NaN), so halves are built from the f32 bits instead: round to nearest
// even, overflow to signed infinity, NaN to a quiet NaN. Matches f32ToF16Bits in engine/dtype.ts.
fn f16_bits(x: u32) -> u32 {
  let sign = (x >> 16u) & 0x8000u;
  let exp = (x >> 23u) & 0xffu;
  var mant = x & 0x7fffffu;
  if (exp == 0xffu) {
    return sign | 0x7c00u | select(0u, 0x200u, mant != 0u);
  }
  let e = i32(exp) - 112; // rebias 127 to 15
  if (e >= 31) {
    return sign | 0x7c00u;
  }
  if (e <= 0) { // f16 subnormal (or zero)
    if (e < -10) {
      return sign;
    }
    mant |= 0x800000u;
    let shift = u32(14 - e);
    var h = mant >> shift;
    let rem = mant & ((1u << shift) - 1u);
    let mid = 1u << (shift - 1u);
    if (rem > mid || (rem == mid && (h & 1u) == 1u)) {
      h += 1u;
    }
    return sign | h;
  }
  var h = (u32(e) << 10u) | (mant >> 13u);
  let rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)) {
    h += 1u; // a carry into the exponent is the correct rounding
  }
  return sign | h;
}

// Two floats as one word of halves: lo in bits 0..15, hi in bits 16..31.
fn pack_f16(lo: f32, hi: f32) -> u32 {
  return f16_bits(bitcast<u32>(lo)) | (f16_bits(bitcast<u32>(hi)) << 16u);
}
