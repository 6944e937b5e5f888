// The tensor-core ceiling as WGSL sees it: how fast subgroup-matrix products (f16×f16 → f32, 16×16×16) run on
// this device, alone and with their operand fragments or results moving through workgroup memory. Each
// probe: 4 subgroups a workgroup, 8 workgroups an SM's worth (132·8 in all), ITER iterations of 20 products per
// subgroup (16 for the store probe) into one accumulator. It bounds what a kernel built from these operations
// can reach: on the H200 (session 9) products on register fragments ran at 541 TFLOP/s, with one fragment
// loaded from workgroup memory per product at 451–458, with an f32 result stored and reloaded per 4 products at
// 242 — against the attention forward's 87.5 and the f16 matmul's 174–249 (bench/attention, bench/matmul).
// The probes are not kernels of the engine, so their WGSL lives here, not in shaders/.
//   node dist/bench/subgroup_matrix.mjs [--safe]
import { openBenchGpu } from './_harness.js';
import { tensorcoreUnavailable } from '../engine/ops/matmul.js';

const ITER = 2000;
const WORKGROUPS = 132 * 8;

/** A probe loading one fragment of `side` from T per product (20 a step), the other operand in registers. */
function loadedPerProduct(side: 'left' | 'right', layout: 'row_major' | 'col_major'): { name: string; products: number; body: string } {
  return {
    name: `${side} fragment loaded (${layout === 'row_major' ? 'row' : 'column'}-major) per product`,
    products: 20,
    body: `for (var f = 0u; f < 20u; f++) {
      let x = subgroupMatrixLoad<subgroup_matrix_${side}<f16, 16, 16>, ${layout}>(&T, (f % 4u) * 16u * KS + (f / 4u) * 16u, KS);
      acc = subgroupMatrixMultiplyAccumulate(${side === 'left' ? 'x, bb' : 'a, x'}, acc);
    }`,
  };
}

/** Probe bodies: one iteration of the loop over j; `a`/`bb` are register fragments, T an f16 64×88 tile. */
const PROBES: { name: string; products: number; body: string }[] = [
  {
    name: 'products on register fragments',
    products: 20,
    body: `let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&T, (j % 4u) * 16u * KS + (sg % 5u) * 16u, KS);
    for (var f = 0u; f < 20u; f++) { acc = subgroupMatrixMultiplyAccumulate(a, b, acc); }`,
  },
  loadedPerProduct('right', 'row_major'),
  loadedPerProduct('right', 'col_major'),
  loadedPerProduct('left', 'row_major'),
  {
    name: 'f32 result stored + reloaded per 4 products',
    products: 16,
    body: `for (var f = 0u; f < 4u; f++) {
      subgroupMatrixStore<row_major>(&S, sg * 16u * 84u + f * 16u, acc, 84u);
      acc = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>, row_major>(&S, sg * 16u * 84u + ((f + 1u) % 4u) * 16u, 84u);
    }
    for (var f = 0u; f < 16u; f++) { acc = subgroupMatrixMultiplyAccumulate(a, bb, acc); }`,
  },
];

function probeWgsl(body: string): string {
  return `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
const KS = 88u;
var<workgroup> T: array<f16, 64u * KS>;
var<workgroup> S: array<f32, 4u * 16u * 84u>;
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32, @builtin(workgroup_id) wid: vec3u) {
  for (var i = lid; i < 64u * KS; i += 128u) { T[i] = f16(f32((i * 7u + wid.x) % 13u) * 0.001); }
  workgroupBarrier();
  let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&T, sg * 16u * KS, KS);
  let bb = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&T, sg * 16u * KS + 16u, KS);
  var acc = subgroupMatrixMultiply<f32>(a, bb);
  for (var j = 0u; j < ${ITER}u; j++) {
    ${body}
  }
  subgroupMatrixStore<row_major>(&o, (wid.x * 4u + sg) * 256u, acc, 16u); // keeps the products live
}`;
}

const gpu = await openBenchGpu();
const why = tensorcoreUnavailable(gpu);
if (why) {
  console.log(`subgroup-matrix probes skipped: ${gpu.info.adapter} has ${why}`);
  process.exit(0);
}
const dev = gpu.device;
const out = dev.createBuffer({ size: WORKGROUPS * 4 * 256 * 4, usage: GPUBufferUsage.STORAGE });
const rows: string[] = [];
for (const probe of PROBES) {
  const module = dev.createShaderModule({ code: probeWgsl(probe.body) });
  const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  if (errors.length) throw new Error(`subgroup-matrix probe '${probe.name}' does not compile: ${errors.map((m) => `${m.lineNum}: ${m.message}`).join('; ')}`);
  if (gpu.info.backend === 'null') { // its 16 KiB workgroup-memory limit refuses the pipelines: compile only
    rows.push(`${probe.name.padEnd(50)} compiles (null backend: not timed)`);
    continue;
  }
  dev.pushErrorScope('validation');
  const pipeline = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const err = await dev.popErrorScope();
  if (err) throw new Error(`subgroup-matrix probe '${probe.name}' failed validation: ${err.message}`);
  const bindGroup = dev.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] });
  const run = async (): Promise<number> => {
    const t0 = performance.now();
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(WORKGROUPS);
    pass.end();
    dev.queue.submit([enc.finish()]);
    await dev.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  await run(); // warm-up (pipeline upload, clocks)
  let ms = Infinity;
  for (let r = 0; r < 5; r++) ms = Math.min(ms, await run());
  const flops = WORKGROUPS * 4 * ITER * probe.products * 2 * 16 * 16 * 16;
  rows.push(`${probe.name.padEnd(50)} ${ms.toFixed(2).padStart(7)} ms  ${(flops / ms / 1e9).toFixed(1).padStart(6)} TFLOP/s`);
}
out.destroy();
console.log(`\nsubgroup-matrix products, f16×f16 → f32 16×16×16 (${WORKGROUPS} workgroups × 4 subgroups × ${ITER} iterations; best of 5 wall-clock runs):`);
for (const r of rows) console.log(`  ${r}`);
process.exit(0);
