// ---- shared by attention_tc.wgsl and attention_tc_backward.wgsl (appended to both by engine/ops/attention_tc.ts).
// a·b, plus acc unless first: the first product of a loop starts its accumulator with subgroupMatrixMultiply
// (subgroup-matrix variables are not reliably zeroed on Dawn/NVIDIA, see the kernels' headers).
fn mma(first: bool, a: subgroup_matrix_left<f16, 16, 16>, b: subgroup_matrix_right<f16, 16, 16>,
       acc: subgroup_matrix_result<f32, 16, 16>) -> subgroup_matrix_result<f32, 16, 16> {
  if (first) { return subgroupMatrixMultiply<f32>(a, b); }
  return subgroupMatrixMultiplyAccumulate(a, b, acc);
}

// Four f32 values as one word of 4 halves (the kernels' P / dS tiles).
fn pack4(x: vec4<f32>) -> vec2<u32> {
  return vec2<u32>(bitcast<u32>(vec2<f16>(f16(x.x), f16(x.y))), bitcast<u32>(vec2<f16>(f16(x.z), f16(x.w))));
}
