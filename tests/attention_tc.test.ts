// Tensor-core flash attention forward: against an f64 softmax-attention reference on the GPU; compiled on
// Dawn's null backend everywhere.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { attentionForwardTc, attentionBackwardTc } from '../engine/ops/attention_tc.js';
import { tensorcoreUnavailable } from '../engine/ops/matmul.js';
import { roundToF16 } from '../engine/dtype.js';
import { Gpu } from '../engine/gpu.js';
import { GpuError } from '../engine/errors.js';
import { refBackward, refForward } from './ref/attention.js';

interface Case { B: number; H: number; Nq: number; Nk: number; D: number; kvLen?: number[]; outF16?: boolean; noVec?: boolean; noPack?: boolean; narrow?: boolean }

const cases: Case[] = [

  { B: 1, H: 1, Nq: 64, Nk: 64, D: 64 },
  { B: 2, H: 3, Nq: 77, Nk: 77, D: 72 },
  { B: 1, H: 2, Nq: 200, Nk: 150, D: 72 },
  { B: 16, H: 2, Nq: 16, Nk: 16, D: 72 },
  { B: 16, H: 2, Nq: 16, Nk: 16, D: 72, noPack: true },
  { B: 2, H: 3, Nq: 77, Nk: 140, D: 72, narrow: true },
  { B: 1, H: 2, Nq: 100, Nk: 90, D: 112 },
  { B: 5, H: 3, Nq: 13, Nk: 9, D: 40, outF16: true },
  { B: 3, H: 3, Nq: 16, Nk: 12, D: 72, kvLen: [12, 1, 5] },
  { B: 3, H: 2, Nq: 50, Nk: 12, D: 72, kvLen: [1, 7, 12] },
  { B: 1, H: 1, Nq: 33, Nk: 130, D: 24, outF16: true },
  { B: 2, H: 3, Nq: 77, Nk: 77, D: 72, noVec: true },
  { B: 1, H: 2, Nq: 200, Nk: 150, D: 72, noVec: true },
  { B: 3, H: 2, Nq: 70, Nk: 200, D: 72, kvLen: [200, 130, 64] },
  { B: 1, H: 1, Nq: 33, Nk: 130, D: 20, outF16: true },
  { B: 2, H: 2, Nq: 40, Nk: 90, D: 40, kvLen: [90, 33] },
];

async function check({ gpu, rng }: Ctx, c: Case): Promise<void> {
  const { B, H, Nq, Nk, D } = c;
  const qd = rng.normal(B * H * Nq * D);
  const kd = rng.normal(B * H * Nk * D);
  const vd = rng.normal(B * H * Nk * D);
  const q = gpu.upload(qd, [B, H, Nq, D], 'f16');
  const k = gpu.upload(kd, [B, H, Nk, D], 'f16');
  const v = gpu.upload(vd, [B, H, Nk, D], 'f16');
  const o = gpu.tensor([B, H, Nq, D], c.outF16 ? 'f16' : 'f32');
  const lse = gpu.tensor([B, H, Nq], 'f32');
  gpu.fill(o, NaN); // poisoned: an element the kernel leaves unwritten fails the comparison
  gpu.fill(lse, NaN);
  const kvLen = c.kvLen ? gpu.upload(c.kvLen, [B], 'u32') : undefined;
  const scale = 1 / Math.sqrt(D);
  attentionForwardTc(gpu, { q, k, v, o, lse, kvLen, scale, noVec: c.noVec, noPack: c.noPack, narrowStaging: c.narrow });
  const ref = refForward(roundToF16(qd), roundToF16(kd), roundToF16(vd), c, scale, c.kvLen);
  // P is rounded to f16 before P·V (as FlashAttention does on tensor cores): 1e-2 covers it.
  assertClose(await o.read(), ref.o, { rtol: 1e-2, what: `o ${JSON.stringify(c)}` });
  assertClose(await lse.read(), ref.lse, { rtol: 1e-3, what: `lse ${JSON.stringify(c)}` });
  for (const t of [q, k, v, o, lse, kvLen]) t?.release();
}

const s = suite('attention_tc');

s.gpuTest('tensor-core forward: D 64/72/24, ragged, many tiny sequences, masked cross-attention', (gpu) => tensorcoreUnavailable(gpu), async (ctx) => {
  const failures: string[] = [];
  for (const c of cases) {
    try {
      await check(ctx, c);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  if (failures.length) throw new Error(`${failures.length} of ${cases.length} cases failed:\n${failures.join('\n')}`);
});

async function checkBackward({ gpu, rng }: Ctx, c: Case): Promise<void> {
  const { B, H, Nq, Nk, D } = c;
  const qd = rng.normal(B * H * Nq * D);
  const kd = rng.normal(B * H * Nk * D);
  const vd = rng.normal(B * H * Nk * D);
  const dd = rng.normal(B * H * Nq * D);
  const q = gpu.upload(qd, [B, H, Nq, D], 'f16');
  const k = gpu.upload(kd, [B, H, Nk, D], 'f16');
  const v = gpu.upload(vd, [B, H, Nk, D], 'f16');
  const dout = gpu.upload(dd, [B, H, Nq, D], 'f16');
  const o = gpu.tensor([B, H, Nq, D], 'f16');
  const lse = gpu.tensor([B, H, Nq], 'f32');
  const kvLen = c.kvLen ? gpu.upload(c.kvLen, [B], 'u32') : undefined;
  const scale = 1 / Math.sqrt(D);
  attentionForwardTc(gpu, { q, k, v, o, lse, kvLen, scale });
  const dt = c.outF16 ? 'f16' : 'f32';
  const dq = gpu.tensor([B, H, Nq, D], dt);
  const dk = gpu.tensor([B, H, Nk, D], dt);
  const dv = gpu.tensor([B, H, Nk, D], dt);
  attentionBackwardTc(gpu, { q, k, v, o, dout, lse, dq, dk, dv, kvLen, scale });
  const ref = refBackward(roundToF16(qd), roundToF16(kd), roundToF16(vd), roundToF16(dd), c, scale, c.kvLen);
  const name = JSON.stringify(c);
  assertClose(await dv.read(), ref.dv, { rtol: 1e-2, what: `dv ${name}` });
  assertClose(await dk.read(), ref.dk, { rtol: 2e-2, what: `dk ${name}` });
  assertClose(await dq.read(), ref.dq, { rtol: 2e-2, what: `dq ${name}` });
  for (const t of [q, k, v, dout, o, lse, dq, dk, dv, kvLen]) t?.release();
}

s.gpuTest('tensor-core backward: dq, dk, dv against the f64 reference', (gpu) => tensorcoreUnavailable(gpu), async (ctx) => {
  const failures: string[] = [];
  const fits = cases.filter((c) => c.D <= 80); // the backward's tiles fit 48 KiB up to head dim 80
  await assertThrows(() => checkBackward(ctx, { B: 1, H: 1, Nq: 20, Nk: 20, D: 112 }), /needs \d+ bytes of workgroup memory for head dim 112.*use variant 'tiled'/, 'D 112');
  for (const c of fits) {
    try {
      await checkBackward(ctx, c);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  if (failures.length) throw new Error(`${failures.length} of ${fits.length} cases failed:\n${failures.join('\n')}`);
});

s.test('tensor-core forward and backward compile on Dawn null backend', async () => {
  const g = await Gpu.open({ device: 'null' });
  const limitOnly = /total use of workgroup storage \(\d+ bytes\) is larger than the maximum allowed \(16384 bytes\)/;
  for (const c of cases) {
    const { B, H, Nq, Nk, D } = c;
    const o = g.tensor([B, H, Nq, D], c.outF16 ? 'f16' : 'f32');
    try {
      const q = g.tensor([B, H, Nq, D], 'f16');
      const k = g.tensor([B, H, Nk, D], 'f16');
      const v = g.tensor([B, H, Nk, D], 'f16');
      const lse = g.tensor([B, H, Nq]);
      const kvLen = c.kvLen ? g.tensor([B], 'u32') : undefined;
      attentionForwardTc(g, { q, k, v, o, lse, kvLen, scale: 0.1 });
      await g.sync();
      const dt = c.outF16 ? 'f16' : 'f32';
      const dout = g.tensor([B, H, Nq, D], o.dtype);
      attentionBackwardTc(g, { q, k, v, o, dout, lse, kvLen, scale: 0.1, dq: g.tensor([B, H, Nq, D], dt), dk: g.tensor([B, H, Nk, D], dt), dv: g.tensor([B, H, Nk, D], dt) });
      await g.sync();
    } catch (e) {
      if (!(e instanceof GpuError && e.kind === 'validation' && limitOnly.test(e.message))) throw e;
    }
  }
  await g.destroy();
});

s.run();
