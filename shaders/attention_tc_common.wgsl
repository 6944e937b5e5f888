// ---- shared by attention_tc.wgsl and attention_tc_backward.wgsl (appended to both by engine/ops/attention_tc.ts).
// Accumulators start from a zero fragment loaded from zeroed workgroup memory, so every product is a plain
// subgroupMatrixMultiplyAccumulate (declared subgroup-matrix variables are not reliably zeroed on Dawn/NVIDIA;
// choosing subgroupMatrixMultiply for a loop's first product instead, a uniform branch per product, measured on
// the H200: forward 94.3 → 97.6 TFLOP/s, backward 54.9 → 64.3, B4 H16 N4096 D72). The including kernel provides
// its Ss tile (array<vec4<f32>>) and SS_ROW, the row stride of Ss in floats.

// Zeros the first 16 columns of this lane's row of subgroup sg's 16 Ss rows (8 columns a lane).
fn zero_rows(sg: u32, lane: u32) {
  let i = (sg * 16u * SS_ROW + (lane / 2u) * SS_ROW + 8u * (lane % 2u)) / 4u;
  Ss[i] = vec4<f32>(0.0);
  Ss[i + 1u] = vec4<f32>(0.0);
}

// The zero accumulator: subgroup sg's zeroed Ss block (zero_rows, then a workgroup barrier, first).
fn zero_acc(sg: u32) -> subgroup_matrix_result<f32, 16, 16> {
  return subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>, row_major>(&Ss, (sg * 16u * SS_ROW) / 4u, SS_ROW / 4u);
}

// Four f32 values as one word of 4 halves (the kernels' P / dS tiles).
fn pack4(x: vec4<f32>) -> vec2<u32> {
  return vec2<u32>(bitcast<u32>(vec2<f16>(f16(x.x), f16(x.y))), bitcast<u32>(vec2<f16>(f16(x.z), f16(x.w))));
}
