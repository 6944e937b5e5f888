// cast: f32 → f16 (bit-exact round to nearest even, padding word half zeroed), f16 → f32, same-dtype copies.
import { suite, assertClose, assertThrows } from './harness.js';
import { readWords, withGridLimit } from './ops-util.js';
import { f16BitsToF32, f32ToF16Bits, roundToF16, type DType } from '../engine/dtype.js';
import { cast } from '../engine/ops/cast.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
/** The f16 bits the cast must produce for each f32 value (host conversion, round to nearest even). */
const refF16Bits = (x: ArrayLike<number>) => Array.from(x, (v) => f32ToF16Bits(v));
/** The f16 words of a packed buffer: halves in order, an odd count's last word padded with 0. */
function packWords(bits: readonly number[]): Uint32Array {
  const w = new Uint32Array(Math.ceil(bits.length / 2));
  bits.forEach((b, i) => (w[i >> 1]! |= b << ((i & 1) * 16)));
  return w;
}
// ------------------------------------------------------------------------------------------------------

/** Values that exercise rounding: ties to even, subnormals, underflow, overflow, infinities, NaN, -0. */
const SPECIAL = [
  1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, -(1 + 2 ** -11), 65504, 65519, 65520, 1e6, -1e6, Infinity, -Infinity, NaN,
  1e-7, 5.960464477539063e-8, 2 ** -25, 1.5 * 2 ** -25, 3 * 2 ** -25, 6.1e-5, 2 ** -14, -0, 0, 1e-40, 0.1, -0.3333,
];

function expectWords(got: Uint32Array, want: Uint32Array, what: string) {
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) throw new Error(`${what}: word ${i} is 0x${got[i]!.toString(16)}, expected 0x${want[i]!.toString(16)}`);
  }
}

const s = suite('cast');

s.test('f32 → f16 rounds like the host (bit-exact), odd sizes pad with 0', async ({ gpu, rng }) => {
  for (const n of [1, 2, 7, 255, 256, 513, 40001]) {
    const data = Float32Array.from(rng.normal(n, 10));
    data.set(SPECIAL.slice(0, n));
    const x = gpu.upload(data, [n], 'f32');
    const y = cast(gpu, x, 'f16');
    if (y.dtype !== 'f16' || y.shape.join() !== `${n}`) throw new Error(`output ${y}`);
    expectWords(await readWords(gpu, y), packWords(refF16Bits(data)), `f32 → f16 of ${n}`);
  }
});

s.test('f16 → f32 is exact, including subnormals and infinities', async ({ gpu, rng }) => {
  for (const shape of [[1], [3, 5], [1000], [7, 11, 13]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const bits = Uint16Array.from(refF16Bits(rng.normal(n, 100)));
    bits.set([0x0001, 0x03ff, 0x8001, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x8000].slice(0, n));
    const x = gpu.upload(bits, shape, 'f16');
    const out = gpu.tensor(shape, 'f32', 'out');
    cast(gpu, x, 'f32', out);
    const want = Array.from(bits, f16BitsToF32);
    const got = await out.read();
    want.forEach((w, i) => {
      if (!Object.is(got[i], w)) throw new Error(`f16 → f32 [${shape}]: element ${i} (0x${bits[i]!.toString(16)}) is ${got[i]}, expected ${w}`);
    });
  }
});

s.test('f32 → f16 → f32 round trip equals host rounding', async ({ gpu, rng }) => {
  const data = rng.normal(777);
  const back = cast(gpu, cast(gpu, gpu.upload(data, [777]), 'f16'), 'f32');
  assertClose(await back.read(), roundToF16(data), { rtol: 0, what: 'round trip' });
});

s.test('same-dtype casts copy every dtype exactly', async ({ gpu, rng }) => {
  const cases: [DType, Float32Array | Int32Array | Uint32Array][] = [
    ['f32', rng.normal(1001)],
    ['f16', Float32Array.from(roundToF16(rng.normal(1001)))],
    ['i32', Int32Array.from(rng.uniform(1001, -2e9, 2e9), Math.round)],
    ['u32', Uint32Array.from(rng.uniform(1001, 0, 4e9), Math.floor)],
  ];
  for (const [dtype, data] of cases) {
    const x = gpu.upload(data, [7, 143], dtype);
    const y = cast(gpu, x, dtype);
    if (y === x || y.buffer === x.buffer) throw new Error('cast to the same dtype must return a new tensor');
    assertClose(await y.read(), data, { rtol: 0, what: `copy ${dtype}` });
  }
});

s.test('folded 2-D grid, both directions', async ({ gpu, rng }) => {
  const data = rng.normal(30001);
  const x = gpu.upload(data, [30001]);
  await withGridLimit(gpu, 12, async () => {
    const h = cast(gpu, x, 'f16');
    const f = cast(gpu, h, 'f32');
    expectWords(await readWords(gpu, h), packWords(refF16Bits(data)), 'f32 → f16 folded');
    assertClose(await f.read(), roundToF16(data), { rtol: 0, what: 'f16 → f32 folded' });
  });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const x = gpu.tensor([4, 6]);
  await assertThrows(() => cast(gpu, gpu.tensor([3], 'i32'), 'f16'), /cast: .* i32 to f16 is not supported/, 'i32 → f16');
  await assertThrows(() => cast(gpu, x, 'u32'), /cast: .* f32 to u32 is not supported/, 'f32 → u32');
  await assertThrows(() => cast(gpu, x, 'bf16' as DType), /cast: unknown dtype "bf16"/, 'unknown dtype');
  await assertThrows(() => cast(gpu, x, 'f16', gpu.tensor([4, 6])), /cast: output .* must be \[4, 6\] f16/, 'wrong out dtype');
  await assertThrows(() => cast(gpu, x, 'f16', gpu.tensor([6, 4], 'f16')), /cast: output .* must be \[4, 6\] f16/, 'wrong out shape');
  await assertThrows(() => cast(gpu, x, 'f32', x), /cast: output .* is the input/, 'out is x');
  await gpu.sync();
});

s.run();
