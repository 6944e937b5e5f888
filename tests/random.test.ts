// Counter-based random numbers (Philox4x32-10): known answers, GPU = CPU stream, (seed, offset)
// reproducibility and composition, distribution sanity, bad inputs.
import { suite, assertClose, assertThrows } from './harness.js';
import { philox4x32, rand, randCpu, randint, randn, randnCpu, randomBits, randomBitsCpu } from '../engine/ops/random.js';

const s = suite('random');

const hex = (w: readonly number[]) => w.map((x) => x.toString(16).padStart(8, '0')).join(' ');

s.test('philox4x32-10 known answers (Random123 KAT)', () => {
  const cases: [number[], number[], string][] = [
    [[0, 0, 0, 0], [0, 0], '6627e8d5 e169c58d bc57ac4c 9b00dbd8'],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], '408f276d 41c83b0e a20bc7c6 6d5451fd'],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], 'd16cfe09 94fdcceb 5001e420 24126ea1'],
  ];
  for (const [c, k, want] of cases) {
    const got = hex(philox4x32(c[0]!, c[1]!, c[2]!, c[3]!, k[0]!, k[1]!));
    if (got !== want) throw new Error(`philox(${hex(c)}; ${hex(k)}) = ${got}, expected ${want}`);
  }
});

s.test('GPU words equal the CPU stream bit for bit (offsets of every phase, 64-bit seed and counter)', async ({ gpu, rng }) => {
  const cases = [
    { n: 1000, seed: rng.int(0, 2 ** 31), offset: 0 },
    { n: 777, seed: rng.int(0, 2 ** 31), offset: rng.int(1, 5000) },
    { n: 5, seed: 2 ** 40 + rng.int(0, 1000), offset: 4 * (2 ** 32 - 2) + 3 }, // counter carries into its high word
    { n: 3, seed: 7, offset: 2 },
  ];
  for (const c of cases) {
    const t = randomBits(gpu, [c.n], c);
    const got = (await t.read()) as Uint32Array;
    const want = randomBitsCpu(c.n, c);
    for (let i = 0; i < c.n; i++) {
      if (got[i] !== want[i]) throw new Error(`randomBits seed ${c.seed} offset ${c.offset}: element ${i} is ${got[i]}, CPU ${want[i]}`);
    }
    t.release();
  }
});

s.test('randn and rand on GPU match the CPU f64 stream', async ({ gpu, rng }) => {
  const seed = rng.int(0, 2 ** 31);
  const offset = rng.int(0, 100);
  const z = randn(gpu, [3, 5, 67], { seed, offset });
  assertClose(await z.read(), randnCpu(z.size, { seed, offset }), { rtol: 1e-5, what: 'randn' });
  const u = rand(gpu, [1001], { seed, offset });
  assertClose(await u.read(), randCpu(u.size, { seed, offset }), { rtol: 1e-6, what: 'rand' });
  z.release();
  u.release();
});

s.test('scale and shift map rand and randn values (parameter initialisers: U(−a, a), N(0, std²))', async ({ gpu, rng }) => {
  const seed = rng.int(0, 2 ** 31);
  const offset = rng.int(0, 100);
  const a = 0.01 + 2 * rng.next();
  const std = 0.001 + 0.5 * rng.next();
  const u = rand(gpu, [777], { seed, offset, scale: 2 * a, shift: -a });
  assertClose(await u.read(), randCpu(u.size, { seed, offset }).map((v) => 2 * a * v - a), { rtol: 1e-6, what: 'rand·2a − a' });
  const z = randn(gpu, [5, 131], { seed, offset, scale: std });
  assertClose(await z.read(), randnCpu(z.size, { seed, offset }).map((v) => std * v), { rtol: 1e-5, what: 'randn·std' });
  u.release();
  z.release();
});

s.test('same (seed, offset) gives identical bits; other seeds/offsets differ; draws compose', async ({ gpu, rng }) => {
  const seed = rng.int(0, 2 ** 31);
  const a = (await randn(gpu, [4096], { seed, offset: 10 }).read()) as Float32Array;
  const b = (await randn(gpu, [4096], { seed, offset: 10 }).read()) as Float32Array;
  const c = (await randn(gpu, [4096], { seed, offset: 11 }).read()) as Float32Array;
  const d = (await randn(gpu, [4096], { seed: seed + 1, offset: 10 }).read()) as Float32Array;
  const long = (await randn(gpu, [5000], { seed }).read()) as Float32Array;
  let same = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) throw new Error(`same (seed, offset) differ at ${i}: ${a[i]} vs ${b[i]}`);
    if (a[i] !== long[10 + i]) throw new Error(`draw at offset 10, element ${i} (${a[i]}) is not element ${10 + i} of a draw from 0 (${long[10 + i]})`);
    if (a[i] === c[i] || a[i] === d[i]) same++;
  }
  if (same > 4) throw new Error(`another offset or seed repeated ${same} of 4096 values`);
});

s.test('normal distribution: mean, std, tails, independence of neighbours on 1e5 samples', async ({ gpu, rng }) => {
  const n = 100000;
  const z = (await randn(gpu, [n], { seed: rng.int(0, 2 ** 31), offset: rng.int(0, 1000) }).read()) as Float32Array;
  let m = 0, m2 = 0, m4 = 0, lag1 = 0, lag2 = 0, beyond2 = 0;
  for (let i = 0; i < n; i++) {
    const x = z[i]!;
    m += x; m2 += x * x; m4 += x ** 4;
    if (Math.abs(x) > 2) beyond2++;
    if (i + 1 < n) lag1 += x * z[i + 1]!;
    if (i + 2 < n) lag2 += x * z[i + 2]!;
  }
  m /= n; m2 /= n; m4 /= n; lag1 /= n - 1; lag2 /= n - 2;
  const se = 1 / Math.sqrt(n); // ≈ 0.0032
  const checks: [string, number, number, number][] = [
    ['mean', m, 0, 5 * se],
    ['variance', m2, 1, 5 * Math.SQRT2 * se],
    ['4th moment', m4, 3, 5 * Math.sqrt(96) * se],
    ['P(|z| > 2)', beyond2 / n, 0.0455, 5 * Math.sqrt(0.0455 * 0.9545) * se],
    ['lag-1 correlation (cos/sin pair)', lag1, 0, 5 * se],
    ['lag-2 correlation', lag2, 0, 5 * se],
  ];
  for (const [what, got, want, tol] of checks) {
    if (Math.abs(got - want) > tol) throw new Error(`randn ${what} = ${got.toFixed(5)}, expected ${want} ± ${tol.toFixed(5)}`);
  }
});

s.test('uniform and randint ranges and means', async ({ gpu, rng }) => {
  const n = 100000;
  const seed = rng.int(0, 2 ** 31);
  const u = (await rand(gpu, [n], { seed }).read()) as Float32Array;
  let m = 0;
  for (const x of u) {
    if (!(x >= 0 && x < 1)) throw new Error(`rand gave ${x} outside [0, 1)`);
    m += x;
  }
  if (Math.abs(m / n - 0.5) > 5 * Math.sqrt(1 / 12 / n)) throw new Error(`rand mean ${m / n}`);
  const t = randint(n, 0, 999, { seed });
  const counts = new Float64Array(10);
  for (const x of t) {
    if (x < 0 || x > 999 || !Number.isInteger(x)) throw new Error(`randint gave ${x} outside 0..999`);
    counts[Math.floor(x / 100)]!++;
  }
  for (const c of counts) if (Math.abs(c / n - 0.1) > 5 * Math.sqrt(0.09 / n)) throw new Error(`randint deciles ${[...counts]}`);
});

s.test('bad inputs give clear errors', async ({ gpu }) => {
  await assertThrows(() => randn(gpu, [4], { seed: -1 }), /seed -1 must be an integer/, 'negative seed');
  await assertThrows(() => randn(gpu, [4], { seed: 1.5 }), /seed 1.5 must be an integer/, 'fractional seed');
  await assertThrows(() => randn(gpu, [4], { seed: 1, offset: 2 ** 53 - 2 }), /runs past 2\^53/, 'offset overflow');
  await assertThrows(() => randn(gpu, [4], { seed: 1, out: gpu.tensor([5], 'f32', 'o') }), /must be \[4\] f32/, 'wrong out shape');
  await assertThrows(() => randint(3, 5, 2, { seed: 1 }), /lo ≤ hi/, 'empty randint range');
  await assertThrows(() => randomBits(gpu, [4], { seed: 1, scale: 2 }), /scale and shift apply to rand and randn/, 'scaled bits');
  await assertThrows(() => rand(gpu, [4], { seed: 1, shift: NaN }), /must be finite/, 'NaN shift');
});

s.run();
