// ---- shared by attention_tc.wgsl and attention_tc_backward.wgsl (appended to both by engine/ops/attention_tc.ts).
// a·b, plus acc unless first: the first product of a loop starts its accumulator with subgroupMatrixMultiply
// (subgroup-matrix variables are not reliably zeroed on Dawn/NVIDIA, see the kernels' headers).
fn mma(first: bool, a: subgroup_matrix_left<f16, 16, 16>, b: subgroup_matrix_right<f16, 16, 16>,
       acc: subgroup_matrix_result<f32, 16, 16>) -> subgroup_matrix_result<f32, 16, 16> {
  if (first) { return subgroupMatrixMultiply<f32>(a, b); }
  return subgroupMatrixMultiplyAccumulate(a, b, acc);
}
