
// ---- the f16x3 scale exponent, shared by shaders/matmul_f16x3.wgsl and matmul_tc.wgsl's X3 (appended by the TS op) ----
// The exponent e with max|X|·2^e in (2^13, 2^14]; 0 for an all-zero (or non-finite) tensor, which then
// splits as it is (infinities and NaN stay so in hi).
fn f16x3_exponent(m: f32) -> i32 {
  if (!(m > 0.0) || m > 3.0e38) {
    return 0;
  }
  let bits = bitcast<u32>(m);
  var e2 = i32((bits >> 23u) & 0xffu) - 127; // m = 1.f·2^e2 (normal m) …
  if (((bits >> 23u) & 0xffu) == 0u) {       // … or a subnormal m < 2^-126
    e2 = -127;
  }
  // m ≤ 2^(e2+1): scaling by 2^(13 − e2) puts m in [2^13, 2^14)
  return clamp(13 - e2, -126, 126);
}

