// Sinusoidal embeddings: DiT timestep embedding (cos first, odd dims zero-padded), the 2-D grid position
// embedding (meshgrid orientation, OpenSora's scale / base_size) and the 1-D one; f32 and f16; bad inputs.
import { suite, assertClose, assertThrows } from './harness.js';
import { withGridLimit } from './ops-util.js';
import { roundToF16 } from '../engine/dtype.js';
import { posEmbed1d, posEmbed2d, timestepEmbedding } from '../engine/ops/embedding.js';

// ---- f64 CPU reference (the Python formulas, line by line) ----------------------------------------------
/** TimestepEmbedder.timestep_embedding(t, dim, max_period). */
function refTimestep(t: ArrayLike<number>, dim: number, maxPeriod = 10000): Float64Array {
  const half = Math.floor(dim / 2);
  const y = new Float64Array(t.length * dim);
  for (let b = 0; b < t.length; b++) {
    for (let i = 0; i < half; i++) {
      const arg = t[b]! * Math.exp((-Math.log(maxPeriod) * i) / half);
      y[b * dim + i] = Math.cos(arg);
      y[b * dim + half + i] = Math.sin(arg);
    }
    // dim odd: the last column stays 0
  }
  return y;
}
/** get_1d_sincos_pos_embed_from_grid(E, pos): rows [sin(pos·ω), cos(pos·ω)], ω_i = 1/10000^(i/(E/2)). */
function ref1dFromGrid(E: number, pos: readonly number[]): Float64Array[] {
  const omega = Array.from({ length: E / 2 }, (_, i) => 1 / 10000 ** (i / (E / 2)));
  return pos.map((p) => Float64Array.from([...omega.map((w) => Math.sin(p * w)), ...omega.map((w) => Math.cos(p * w))]));
}
/** get_2d_sincos_pos_embed(D, (H, W), scale, base_size) as in OpenSora (DiT's when scale = 1, no base_size). */
function refPos2d(D: number, H: number, W: number, scale = 1, baseSize?: number): Float64Array {
  const gridH = Array.from({ length: H }, (_, i) => (i / scale) * (baseSize === undefined ? 1 : baseSize / H));
  const gridW = Array.from({ length: W }, (_, j) => (j / scale) * (baseSize === undefined ? 1 : baseSize / W));
  // np.meshgrid(grid_w, grid_h): grid[0][i][j] = grid_w[j], grid[1][i][j] = grid_h[i], flattened row-major
  const grid0: number[] = [];
  const grid1: number[] = [];
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) grid0.push(gridW[j]!), grid1.push(gridH[i]!);
  const embH = ref1dFromGrid(D / 2, grid0);
  const embW = ref1dFromGrid(D / 2, grid1);
  return Float64Array.from(embH.flatMap((row, n) => [...row, ...embW[n]!]));
}
/** get_1d_sincos_pos_embed(D, L, scale). */
function refPos1d(D: number, L: number, scale = 1): Float64Array {
  return Float64Array.from(ref1dFromGrid(D, Array.from({ length: L }, (_, l) => l / scale)).flatMap((r) => [...r]));
}
// ------------------------------------------------------------------------------------------------------

const s = suite('embedding');

s.test('timestep embedding: cos first then sin, odd dims padded, t up to 1000 and beyond', async ({ gpu, rng }) => {
  const t0 = Float32Array.from([0, 1, 999, 500.5, 1000, 4000, 0.25, ...rng.uniform(6, 0, 1000), ...Array.from(rng.uniform(4, 0, 1000), Math.round)]);
  const t = gpu.upload(t0, [t0.length], 'f32', 't');
  for (const dim of [256, 257, 7, 1, 2, 34]) {
    const y = timestepEmbedding(gpu, t, dim);
    if (y.dtype !== 'f32' || y.shape.join() !== `${t0.length},${dim}`) throw new Error(`timestepEmbedding output ${y}`);
    assertClose(await y.read(), refTimestep(t0, dim), { rtol: 1e-5, what: `timestep embedding dim ${dim}` });
    y.release();
  }
  const y = timestepEmbedding(gpu, t, 33, { maxPeriod: 100, dtype: 'f16' });
  assertClose(await y.read(), roundToF16(refTimestep(t0, 33, 100)), { rtol: 1e-2, what: 'timestep embedding f16, maxPeriod 100' });
});

s.test('2-D grid position embedding: orientation, scale and baseSize, f32 and f16', async ({ gpu }) => {
  const cases: [number, number, number, number?, number?][] = [[64, 5, 7], [8, 3, 3], [16, 1, 9], [1152, 4, 6, 0.5, 3], [36, 6, 2, 2, 16]];
  for (const [D, H, W, scale, baseSize] of cases) {
    const y = posEmbed2d(gpu, D, H, W, { scale, baseSize });
    if (y.shape.join() !== `${H * W},${D}`) throw new Error(`posEmbed2d output ${y}`);
    assertClose(await y.read(), refPos2d(D, H, W, scale, baseSize), { rtol: 1e-5, what: `posEmbed2d D ${D} grid ${H}x${W} scale ${scale} base ${baseSize}` });
    y.release();
  }
  const y = posEmbed2d(gpu, 20, 3, 5, { dtype: 'f16' });
  assertClose(await y.read(), roundToF16(refPos2d(20, 3, 5)), { rtol: 1e-2, what: 'posEmbed2d f16' });
  // DiT's square grid: token 1 is column 1 of row 0, so dims [0, D/2) vary and [D/2, D) are those of position 0
  const sq = await posEmbed2d(gpu, 8, 2, 2).read();
  if (Math.abs(sq[8]! - Math.sin(1)) > 1e-6 || sq[8 + 4] !== 0 || sq[8 + 6] !== 1) throw new Error(`square grid token 1 = ${Array.from(sq.slice(8, 16))}`);
});

s.test('1-D position embedding (temporal), scale', async ({ gpu }) => {
  for (const [D, L, scale] of [[32, 16, 1], [6, 5, 2], [1152, 16, 1], [2, 3, 0.5]] as const) {
    const y = posEmbed1d(gpu, D, L, { scale });
    assertClose(await y.read(), refPos1d(D, L, scale), { rtol: 1e-5, what: `posEmbed1d D ${D} L ${L} scale ${scale}` });
    y.release();
  }
});

s.test('folded 2-D grid and out tensors', async ({ gpu, rng }) => {
  const t0 = rng.uniform(37, 0, 1000);
  const t = gpu.upload(t0, [37]);
  const out = gpu.tensor([37, 130], 'f32', 'out');
  await withGridLimit(gpu, 8, async () => {
    timestepEmbedding(gpu, t, 130, { out });
    assertClose(await out.read(), refTimestep(t0, 130), { rtol: 1e-5, what: 'timestep embedding in a folded grid' });
    assertClose(await posEmbed2d(gpu, 48, 8, 9).read(), refPos2d(48, 8, 9), { rtol: 1e-5, what: 'posEmbed2d in a folded grid' });
  });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const t = gpu.tensor([4]);
  await assertThrows(() => timestepEmbedding(gpu, gpu.tensor([4, 1]), 8), /timestepEmbedding: .* rank 2; expected rank 1/, 't rank');
  await assertThrows(() => timestepEmbedding(gpu, gpu.tensor([4], 'f16'), 8), /timestepEmbedding: .* dtype f16; expected f32/, 't dtype');
  await assertThrows(() => timestepEmbedding(gpu, t, 0), /timestepEmbedding: embedding dim 0 must be a positive integer/, 'dim 0');
  await assertThrows(() => timestepEmbedding(gpu, t, 8, { out: gpu.tensor([4, 9]) }), /timestepEmbedding: output .* must be \[4, 8\] f32/, 'wrong out');
  await assertThrows(() => posEmbed2d(gpu, 18, 4, 4), /posEmbed2d: embedding dim 18 must be a positive integer divisible by 4/, 'D not /4');
  await assertThrows(() => posEmbed2d(gpu, 16, 0, 4), /posEmbed2d: gridH 0 must be a positive integer/, 'empty grid');
  await assertThrows(() => posEmbed1d(gpu, 7, 4), /posEmbed1d: embedding dim 7 must be a positive integer divisible by 2/, 'odd D');
  await assertThrows(() => posEmbed1d(gpu, 8, 4, { scale: 0 }), /posEmbed1d: scale 0 must be a positive number/, 'scale 0');
  await gpu.sync();
});

s.run();
