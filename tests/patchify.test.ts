// 3-D patchify / unpatchify and their backward gathers: index references, Conv3d equivalence, round trips,
// adjoint (gradient) identities, f32 / f16 / i32, folded grid, bad inputs.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { withGridLimit } from './ops-util.js';
import { roundToF16, type DType } from '../engine/dtype.js';
import { patchify, patchifyBackward, unpatchify, unpatchifyBackward, type Patch3 } from '../engine/ops/patchify.js';

// ---- f64 CPU reference -----------------------------------------------------------------------------
type Video = [number, number, number, number, number];
const vidx = ([, C, T, H, W]: Video, b: number, c: number, t: number, h: number, w: number) => (((b * C + c) * T + t) * H + h) * W + w;

/** Conv3d(kernel = stride = patch) patches, flatten(2).transpose(1, 2): token (tn, hn, wn), feature (c, kt, kh, kw). */
function refPatchify(x: ArrayLike<number>, v: Video, [pt, ph, pw]: Patch3): Float64Array {
  const [B, C, T, H, W] = v;
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let tn = 0; tn < T / pt; tn++)
      for (let hn = 0; hn < H / ph; hn++)
        for (let wn = 0; wn < W / pw; wn++)
          for (let c = 0; c < C; c++)
            for (let kt = 0; kt < pt; kt++)
              for (let kh = 0; kh < ph; kh++) for (let kw = 0; kw < pw; kw++) out.push(x[vidx(v, b, c, tn * pt + kt, hn * ph + kh, wn * pw + kw)]!);
  return Float64Array.from(out);
}

/** einops "B (Tn Hn Wn) (pt ph pw C) -> B C (Tn pt) (Hn ph) (Wn pw)". */
function refUnpatchify(tok: ArrayLike<number>, v: Video, [pt, ph, pw]: Patch3): Float64Array {
  const [B, C, T, H, W] = v;
  const [Tn, Hn, Wn] = [T / pt, H / ph, W / pw];
  const y = new Float64Array(B * C * T * H * W);
  for (let b = 0; b < B; b++)
    for (let tn = 0; tn < Tn; tn++)
      for (let hn = 0; hn < Hn; hn++)
        for (let wn = 0; wn < Wn; wn++)
          for (let kt = 0; kt < pt; kt++)
            for (let kh = 0; kh < ph; kh++)
              for (let kw = 0; kw < pw; kw++)
                for (let c = 0; c < C; c++) {
                  const n = (tn * Hn + hn) * Wn + wn;
                  const f = ((kt * ph + kh) * pw + kw) * C + c;
                  y[vidx(v, b, c, tn * pt + kt, hn * ph + kh, wn * pw + kw)] = tok[(b * Tn * Hn * Wn + n) * pt * ph * pw * C + f]!;
                }
  return y;
}
// ------------------------------------------------------------------------------------------------------

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Random values the dtype holds exactly (every path is an exact copy). */
function values(rng: Ctx['rng'], n: number, dtype: DType): Float64Array {
  if (dtype === 'f16') return roundToF16(rng.normal(n));
  if (dtype === 'i32') return Float64Array.from(rng.uniform(n, -2e9, 2e9), Math.floor);
  return Float64Array.from(rng.normal(n));
}

const CASES: [Video, Patch3][] = [
  [[2, 3, 4, 6, 8], [1, 2, 2]],
  [[1, 4, 6, 4, 6], [2, 2, 2]],
  [[2, 5, 3, 3, 9], [3, 1, 3]],
  [[1, 1, 1, 2, 2], [1, 2, 2]],
  [[1, 3, 3, 14, 18], [1, 2, 2]],
  [[3, 1, 1, 1, 1], [1, 1, 1]],
];

const s = suite('patchify');

for (const dtype of ['f32', 'f16', 'i32'] as const) {
  s.test(`patchify / unpatchify and backward gathers match the index references, ${dtype}`, async ({ gpu, rng }) => {
    for (const [v, patch] of CASES) {
      const [B, C, T, H, W] = v;
      const N = (T / patch[0]) * (H / patch[1]) * (W / patch[2]);
      const F = C * numel(patch);
      const what = `${dtype} [${v}] patch [${patch}]`;
      const x0 = values(rng, numel(v), dtype);
      const x = gpu.upload(x0, v, dtype, 'x');
      const tok = patchify(gpu, x, { patch });
      if (tok.dtype !== dtype || tok.shape.join() !== `${B},${N},${F}`) throw new Error(`patchify ${what}: output ${tok}`);
      const tokRef = refPatchify(x0, v, patch);
      assertClose(await tok.read(), tokRef, { rtol: 0, what: `patchify ${what}` });
      // patchifyBackward is the inverse gather: it restores x exactly
      assertClose(await patchifyBackward(gpu, tok, [T, H, W], { patch }).read(), x0, { rtol: 0, what: `patchifyBackward(patchify(x)) ${what}` });

      const t0 = values(rng, B * N * F, dtype);
      const t = gpu.upload(t0, [B, N, F], dtype, 'tokens');
      const y = unpatchify(gpu, t, [T, H, W], { patch });
      if (y.shape.join() !== v.join()) throw new Error(`unpatchify ${what}: output ${y}`);
      assertClose(await y.read(), refUnpatchify(t0, v, patch), { rtol: 0, what: `unpatchify ${what}` });
      assertClose(await unpatchifyBackward(gpu, y, { patch }).read(), t0, { rtol: 0, what: `unpatchifyBackward(unpatchify(t)) ${what}` });
    }
  });
}

s.test('patch embedding = patchify · Conv3d weight flattened (Conv3d reference in f64)', async ({ gpu, rng }) => {
  const v: Video = [2, 3, 4, 6, 4];
  const patch: Patch3 = [2, 2, 2];
  const hidden = 5;
  const [B, C, T, H, W] = v;
  const x0 = rng.normal(numel(v));
  const wt = rng.normal(hidden * C * 8); // [hidden, C, pt, ph, pw]
  const tok = await patchify(gpu, gpu.upload(x0, v), { patch }).read();
  const F = C * 8;
  const N = tok.length / B / F;
  for (let b = 0; b < B; b++)
    for (let tn = 0; tn < T / 2; tn++)
      for (let hn = 0; hn < H / 2; hn++)
        for (let wn = 0; wn < W / 2; wn++)
          for (let o = 0; o < hidden; o++) {
            let conv = 0; // Conv3d output [b, o, tn, hn, wn]
            for (let c = 0; c < C; c++)
              for (let kt = 0; kt < 2; kt++)
                for (let kh = 0; kh < 2; kh++)
                  for (let kw = 0; kw < 2; kw++) conv += wt[(((o * C + c) * 2 + kt) * 2 + kh) * 2 + kw]! * x0[vidx(v, b, c, 2 * tn + kt, 2 * hn + kh, 2 * wn + kw)]!;
            const n = (tn * (H / 2) + hn) * (W / 2) + wn; // flatten(2).transpose(1, 2)
            let mm = 0;
            for (let f = 0; f < F; f++) mm += tok[(b * N + n) * F + f]! * wt[o * F + f]!;
            if (Math.abs(mm - conv) > 1e-5 * (1 + Math.abs(conv))) throw new Error(`token ${n} channel ${o}: patchify·W = ${mm}, Conv3d = ${conv}`);
          }
});

s.test('backward gathers are the adjoints (gradients) of the forward maps', async ({ gpu, rng }) => {
  // For a linear map A, d⟨A x, g⟩/dx = Aᵀ g: check ⟨A x, g⟩ = ⟨x, backward(g)⟩ with random x and g.
  const v: Video = [2, 3, 2, 4, 6];
  const size = [2, 4, 6] as const; // default patch (1, 2, 2): 12 tokens of 12 features
  const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((acc, x, i) => acc + x * b[i]!, 0);
  const x0 = rng.normal(numel(v));
  const g0 = rng.normal(numel(v));
  const x = gpu.upload(x0, v);
  const tokShape = [2, 12, 12];
  const gt = gpu.upload(rng.normal(numel(tokShape)), tokShape);
  const pairs: [string, number, number][] = [
    ['patchify', dot(await patchify(gpu, x).read(), await gt.read()), dot(x0, await patchifyBackward(gpu, gt, size).read())],
    ['unpatchify', dot(await unpatchify(gpu, gt, size).read(), g0), dot(await gt.read(), await unpatchifyBackward(gpu, gpu.upload(g0, v)).read())],
  ];
  for (const [name, a, b] of pairs) if (Math.abs(a - b) > 1e-5 * Math.abs(a)) throw new Error(`${name}: ⟨A x, g⟩ = ${a} but ⟨x, Aᵀ g⟩ = ${b}`);
});

s.test('default patch (1, 2, 2), folded grid, out tensors', async ({ gpu, rng }) => {
  const v: Video = [2, 4, 3, 10, 12];
  const x0 = Float64Array.from(rng.normal(numel(v)));
  const x = gpu.upload(x0, v);
  const out = gpu.tensor([2, 90, 16], 'f32', 'out');
  await withGridLimit(gpu, 8, async () => {
    patchify(gpu, x, { out });
    assertClose(await out.read(), refPatchify(x0, v, [1, 2, 2]), { rtol: 0, what: 'patchify default patch, folded grid' });
    assertClose(await unpatchify(gpu, out, [3, 10, 12]).read(), refUnpatchify(await out.read(), v, [1, 2, 2]), { rtol: 0, what: 'unpatchify, folded grid' });
  });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const x = gpu.tensor([1, 4, 3, 5, 8]);
  await assertThrows(() => patchify(gpu, x), /patchify: .* has H = 5, not divisible by the patch's 2 .* pad H to a multiple first/, 'H not divisible');
  await assertThrows(() => patchify(gpu, x, { patch: [2, 1, 1] }), /patchify: .* T = 3, not divisible by the patch's 2/, 'T not divisible');
  await assertThrows(() => patchify(gpu, gpu.tensor([4, 3, 4, 4])), /patchify: .* rank 4; expected rank 5/, 'rank 4');
  await assertThrows(() => patchify(gpu, gpu.tensor([1, 4, 2, 4, 4]), { patch: [1, 0, 2] }), /patch \[1,0,2\] must be three positive integers/, 'bad patch');
  const tok = gpu.tensor([1, 12, 16]);
  await assertThrows(() => unpatchify(gpu, tok, [2, 4, 4]), /unpatchify: .* has 12 tokens but a \[2, 4, 4\] video in \[1, 2, 2\] patches has 8/, 'token count');
  await assertThrows(() => unpatchify(gpu, gpu.tensor([1, 8, 6]), [2, 4, 4]), /unpatchify: .* 6 features, not a multiple of the patch volume 4/, 'features');
  await assertThrows(() => patchifyBackward(gpu, tok, [3, 4, 5]), /patchifyBackward: the video size \[3, 4, 5\] has W = 5, not divisible/, 'backward size');
  await assertThrows(() => patchify(gpu, gpu.tensor([1, 4, 2, 4, 4]), { out: gpu.tensor([1, 8, 15]) }), /patchify: output .* must be \[1, 8, 16\] f32/, 'wrong out');
  await gpu.sync();
});

s.run();
