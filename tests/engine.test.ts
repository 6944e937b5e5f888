// Engine basics: upload/read round trips for every dtype, fill, pooling, poisoning, and clear errors.
import { suite, assertClose, assertThrows } from './harness.js';
import { fromF16Bits, toF16Bits, f32ToF16Bits, f16BitsToF32 } from '../engine/dtype.js';
import { sizeClass } from '../engine/pool.js';
import { add } from '../engine/ops/elementwise.js';

const s = suite('engine');

s.test('f32/i32/u32 upload and read round-trip', async ({ gpu, rng }) => {
  const data = rng.normal(1037);
  const t = gpu.upload(data, [1037], 'f32');
  assertClose(await t.read(), data, { rtol: 0, what: 'f32' });
  const ints = Int32Array.from(rng.uniform(99, -1e6, 1e6), Math.round);
  const ti = gpu.upload(ints, [9, 11], 'i32');
  assertClose(await ti.read(), ints, { rtol: 0, what: 'i32' });
  const uints = Uint32Array.from(rng.uniform(64, 0, 4e9), Math.floor);
  assertClose(await gpu.upload(uints, [64], 'u32').read(), uints, { rtol: 0, what: 'u32' });
  t.release();
  ti.release();
});

s.test('f16 round-trip, odd length, matches the host conversion', async ({ gpu, rng }) => {
  const data = rng.normal(333, 3);
  const t = gpu.upload(data, [3, 111], 'f16');
  const want = fromF16Bits(toF16Bits(data));
  assertClose(await t.read(), want, { rtol: 0, what: 'f16' });
});

s.test('host f16 conversion: rounding, subnormals, overflow', () => {
  const cases: [number, number][] = [[1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e-7, 0x0002], [5.960464477539063e-8, 0x0001], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0.1, 0x2e66]];
  for (const [v, bits] of cases) {
    if (f32ToF16Bits(v) !== bits) throw new Error(`f32ToF16Bits(${v}) = 0x${f32ToF16Bits(v).toString(16)}, expected 0x${bits.toString(16)}`);
  }
  if (!Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))) throw new Error('NaN must stay NaN');
});

s.test('fill writes every element; poisoned tensors read as NaN', async ({ gpu }) => {
  const t = gpu.tensor([5, 77], 'f32', 'fresh');
  const poisoned = await t.read();
  if (!poisoned.every(Number.isNaN)) throw new Error('test devices poison new tensors with NaN');
  gpu.fill(t, 2.5);
  assertClose(await t.read(), new Float32Array(385).fill(2.5), { rtol: 0, what: 'fill f32' });
  const h = gpu.tensor([7], 'f16');
  gpu.fill(h, -0.75);
  assertClose(await h.read(), new Float32Array(7).fill(-0.75), { rtol: 0, what: 'fill f16' });
});

s.test('buffer pool reuses released buffers of the same size class', async ({ gpu }) => {
  const a = gpu.tensor([1000], 'f32');
  const buffer = a.buffer;
  a.release();
  const before = gpu.pool.stats.reuses; // counted from here: earlier tests may have left buffers of this class
  const b = gpu.tensor([900], 'f32');
  if (b.buffer !== buffer || gpu.pool.stats.reuses !== before + 1) throw new Error('expected the released buffer to be reused');
  b.release();
  if (sizeClass(3000) !== 4096 || sizeClass(3 << 20) !== 3 << 20 || sizeClass((1 << 20) + 1) !== (1 << 20) + (1 << 17)) {
    throw new Error('size classes: powers of two up to 1 MiB, then 1/8 steps');
  }
  await gpu.sync();
});

s.test('reuse is stream-ordered: a released input still reads its old data in the same submit', async ({ gpu, rng }) => {
  const x = gpu.upload(rng.normal(256), [256]);
  const keep = gpu.tensor([256]);
  gpu.copy(x, keep);
  const data = await x.read();
  x.release();
  const y = gpu.upload(rng.normal(256), [256]); // likely gets x's buffer; the copy above must still see x's data
  assertClose(await keep.read(), data, { rtol: 0, what: 'copy before reuse' });
  y.release();
});

s.test('a repeated step reuses its buffers and bind groups, whatever order it released them in', async ({ gpu, rng }) => {
  const inputs = [0, 1, 2].map(() => rng.normal(300));
  // one "step": several same-size temporaries, released in an order that changes from run to run
  const out = gpu.tensor([300]);
  const step = async (run: number) => {
    const xs = inputs.map((d) => gpu.upload(d, [300]));
    const s1 = add(gpu, xs[0]!, xs[1]!);
    const s2 = add(gpu, s1, xs[2]!);
    add(gpu, s2, s1, out);
    const buffers = [...xs, s1, s2].map((t) => t.buffer);
    const order = [xs[0]!, xs[1]!, xs[2]!, s1, s2];
    for (let i = 0; i < order.length; i++) order[(i + run) % order.length]!.release();
    const got = await out.read(); // flushes: the pool's free lists go back to creation order
    return { got, buffers };
  };
  await step(0); // brings the pool to its steady state (earlier tests left other buffers in it)
  const first = await step(1);
  const before = { ...gpu.bindGroupStats };
  for (let run = 2; run < 6; run++) {
    const r = await step(run);
    const want = Float64Array.from(inputs[0]!, (a, i) => 2 * (a + inputs[1]![i]!) + inputs[2]![i]!);
    assertClose(r.got, want, { rtol: 1e-6, what: `run ${run}` });
    if (r.buffers.some((b, i) => b !== first.buffers[i])) throw new Error(`run ${run} got other buffers than run 1`);
  }
  const created = gpu.bindGroupStats.created - before.created;
  const reused = gpu.bindGroupStats.reused - before.reused;
  if (created !== 0 || reused < 12) throw new Error(`repeated steps created ${created} bind groups and reused ${reused}; expected 0 and ≥ 12`);
  out.release();
});

s.test('a tensor over maxStorageBufferBindingSize is a clear error', async ({ gpu }) => {
  const limit = gpu.info.limits.maxStorageBufferBindingSize;
  await assertThrows(() => gpu.tensor([limit / 4 + 64], 'f32', 'huge'), /tensor "huge".*maxStorageBufferBindingSize.*split it/, 'oversized tensor');
});

s.test('use after release and bad shapes are clear errors', async ({ gpu }) => {
  const t = gpu.tensor([4]);
  t.release();
  await assertThrows(() => t.buffer, /used after release/, 'use after release');
  await assertThrows(() => gpu.tensor([2, -1]), /non-negative integers/, 'negative dim');
  await assertThrows(() => gpu.upload([1, 2, 3], [2]), /got 3 values, expected 2/, 'wrong data length');
});

s.test('a WGSL compile error names the kernel and the line', async ({ gpu }) => {
  const bad = { name: 'broken', template: '@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = undefined_thing; }' };
  const k = gpu.kernel(bad, 'main', {});
  const t = gpu.tensor([1]);
  gpu.dispatch(k, [t], null, [1]);
  await assertThrows(() => gpu.sync(), /kernel broken\.main failed to compile:[\s\S]*2:\d+[\s\S]*undefined_thing/, 'compile error');
  await gpu.sync(); // the error was reported once; the device is still usable
});

s.test('an invalid dispatch surfaces as a GpuError naming the kernel', async ({ gpu }) => {
  const k = { name: 'oob', template: '@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = 1.0; }' };
  const kernel = gpu.kernel(k, 'main', {});
  await assertThrows(() => gpu.dispatch(kernel, [], null, [1]), /kernel oob\.main binds 1 tensors/, 'binding count');
  const t = gpu.tensor([1]);
  await assertThrows(() => gpu.dispatch(kernel, [t], null, [1e9]), /workgroup grid/, 'grid too large');
  await gpu.sync();
});

s.test('timePass: dispatches back to back in one timed pass, with the result written; clear errors', async ({ gpu, rng }) => {
  const a = gpu.upload(rng.normal(4099), [4099]);
  const b = gpu.upload(rng.normal(4099), [4099]);
  const out = gpu.tensor([4099]);
  if (!gpu.info.timestamps) {
    await assertThrows(() => gpu.timePass(() => add(gpu, a, b, out)), /timePass: this device has no timestamp-query feature/, 'no timestamps');
  } else {
    const ms = await gpu.timePass(() => {
      for (let i = 0; i < 3; i++) add(gpu, a, b, out);
    });
    if (!(Number.isFinite(ms) && ms > 0)) throw new Error(`timePass returned ${ms} ms`);
    const [x, y] = [await a.read(), await b.read()];
    assertClose(await out.read(), x.map((v, i) => v + y[i]!), { rtol: 1e-6, what: 'add recorded in the timed pass' });
    await assertThrows(() => gpu.timePass(() => gpu.copy(a, out)), /timePass: the recorded work left the timed compute pass/, 'a copy inside');
    gpu.profiler.enable();
    await assertThrows(() => gpu.timePass(() => add(gpu, a, b, out)), /timePass: the profiler is on/, 'profiler on');
    gpu.profiler.enable(false);
  }
  for (const t of [a, b, out]) t.release();
});

s.test('missing software drivers give an install command', async () => {
  const { openDevice } = await import('../engine/device.js');
  const paths = { swiftshaderIcd: '/nonexistent/vk_swiftshader_icd.json', vulkanLoader: ['/nonexistent/libvulkan.so.1'], mesaEgl: ['/nonexistent/libEGL_mesa.so.0'] };
  await assertThrows(() => openDevice({ device: 'swiftshader', paths }), /apt-get install -y chromium libvulkan1/, 'swiftshader missing');
  await assertThrows(() => openDevice({ device: 'llvmpipe', paths }), /apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri/, 'llvmpipe missing');
  await assertThrows(() => openDevice({ device: 'nonsense' as 'gpu' }), /unknown device "nonsense"/, 'bad choice');
});

s.run();
