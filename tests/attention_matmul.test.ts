// Attention through materialised scores and matmulF16x3 products (ops/attention_matmul.ts), the f32 path of
// engine/functional.ts's attention at matmul precision 'high': forward and q/k/v gradients against the f64
// reference at the attention tolerance (1e-4), through the tape, forced onto the tiled kernel here
// (gpu.matmulF16x3Everywhere) and on tensor cores as a GPU test; when it applies and when the flash kernels run.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { withPrecision } from './ops-util.js';
import { Tape } from '../engine/autograd.js';
import * as F from '../engine/functional.js';
import { attentionMatmul, matmulAttentionApplies } from '../engine/ops/attention_matmul.js';
import { highPrecisionUnavailable } from '../engine/ops/matmul_f16x3.js';
import { refBackward, refForward, type Shape } from './ref/attention.js';

const s = suite('attention_matmul');

/** F.attention forward and backward on fresh inputs against the f64 reference; returns how many took the matmul path. */
async function check({ gpu, rng }: Ctx, sh: Shape, kvLen?: number[]): Promise<number> {
  const { B, H, Nq, Nk, D } = sh;
  const scale = 1 / Math.sqrt(D);
  const qd = rng.normal(B * H * Nq * D, 1.5);
  const kd = rng.normal(B * H * Nk * D, 1.5);
  const vd = rng.normal(B * H * Nk * D);
  const gd = rng.normal(B * H * Nq * D);
  const before = gpu.f32MatmulStats.attention;
  const tape = new Tape(gpu);
  const q = tape.input(gpu.upload(qd, [B, H, Nq, D], 'f32', 'q'), 'q', true);
  const k = tape.input(gpu.upload(kd, [B, H, Nk, D], 'f32', 'k'), 'k', true);
  const v = tape.input(gpu.upload(vd, [B, H, Nk, D], 'f32', 'v'), 'v', true);
  const len = kvLen ? gpu.upload(Int32Array.from(kvLen), [B], 'i32', 'kv_len') : undefined;
  const o = F.attention(tape, q, k, v, len);
  const what = `${JSON.stringify(sh)}${kvLen ? ` kvLen ${kvLen}` : ''}`;
  assertClose(await o.value.read(), refForward(qd, kd, vd, sh, scale, kvLen).o, { rtol: 1e-4, what: `o ${what}` });
  tape.backward(o, gpu.upload(gd, [B, H, Nq, D], 'f32', 'do'));
  const want = refBackward(qd, kd, vd, gd, sh, scale, kvLen);
  assertClose(await q.grad!.read(), want.dq, { rtol: 1e-4, what: `dq ${what}` });
  assertClose(await k.grad!.read(), want.dk, { rtol: 1e-4, what: `dk ${what}` });
  assertClose(await v.grad!.read(), want.dv, { rtol: 1e-4, what: `dv ${what}` });
  tape.release();
  for (const t of [q.value, q.grad, k.value, k.grad, v.value, v.grad, len]) t?.release();
  return gpu.f32MatmulStats.attention - before;
}

const N = 128; // 128·128 scores per head: the smallest the matmul path takes

s.test("F.attention at 'high' (f16x3 forced on the tiled kernel): materialised-score path, forward and gradients at 1e-4", async (ctx) => {
  const ran = await withPrecision(ctx.gpu, { precision: 'high', everywhere: true }, async () => {
    let n = await check(ctx, { B: 2, H: 2, Nq: N, Nk: N, D: 72 });
    n += await check(ctx, { B: 1, H: 3, Nq: 137, Nk: N + 19, D: 16 }); // ragged, cross lengths
    n += await check(ctx, { B: 3, H: 2, Nq: 2 * N, Nk: 70, D: 24 }, [70, 1, 0]); // caption masks: full, 1 key, none
    n += await check(ctx, { B: 2, H: 1, Nq: N, Nk: N, D: 8 }, [37, N]);
    return n;
  });
  if (ran !== 4) throw new Error(`the matmul path ran ${ran} of 4 times`);
});

s.test("F.attention at 'high' over groups of samples where all samples' scores exceed the limit (masks, a ragged last group)", async (ctx) => {
  // per sample 2·128·128·4 = 128 KiB of scores: a 300 KiB limit runs 2 samples per call over B = 5 (2, 2, 1)
  const ran = await withPrecision(ctx.gpu, { precision: 'high', everywhere: true, attentionMaxScoreBytes: 300 << 10 }, async () =>
    (await check(ctx, { B: 5, H: 2, Nq: N, Nk: N, D: 16 }, [N, 1, 77, 0, 100])) + (await check(ctx, { B: 3, H: 2, Nq: N, Nk: N, D: 8 })),
  );
  if (ran !== 2) throw new Error(`the matmul path ran ${ran} of 2 times`);
});

s.test("F.attention at 'high' keeps the flash kernels for few scores per head (same results)", async (ctx) => {
  const ran = await withPrecision(ctx.gpu, { precision: 'high', everywhere: true }, async () => (await check(ctx, { B: 2, H: 2, Nq: 16, Nk: 16, D: 24 })) + (await check(ctx, { B: 2, H: 1, Nq: 20, Nk: N, D: 8 }, [N, 5])));
  if (ran !== 0) throw new Error(`the matmul path ran ${ran} times where the flash kernels should`);
});

s.test('matmulAttentionApplies: only f32, enough scores per head, at high precision with tensor cores (or forced)', async ({ gpu }) => {
  const q = gpu.tensor([1, 2, N, 8], 'f32', 'q');
  const kShort = gpu.tensor([1, 2, N - 1, 8], 'f32', 'k');
  const qLong = gpu.tensor([1, 2, 4 * N, 8], 'f32', 'q');
  const kCaption = gpu.tensor([1, 2, 40, 8], 'f32', 'k');
  const q16 = gpu.tensor([1, 2, N, 8], 'f16', 'q16');
  const got = await withPrecision(gpu, { precision: 'high', everywhere: true }, async () => [
    matmulAttentionApplies(gpu, q, q),
    matmulAttentionApplies(gpu, qLong, kCaption),
    matmulAttentionApplies(gpu, q, kShort),
    matmulAttentionApplies(gpu, q16, q16),
  ]);
  const saved = gpu.matmulPrecision;
  gpu.matmulPrecision = 'highest';
  got.push(matmulAttentionApplies(gpu, q, q));
  gpu.matmulPrecision = saved;
  // one sample's scores over the limit: flash kernels
  got.push(await withPrecision(gpu, { precision: 'high', everywhere: true, attentionMaxScoreBytes: 2 * N * N * 4 - 4 }, async () => matmulAttentionApplies(gpu, q, q)));
  const want = [true, true, false, false, false, false];
  if (got.join() !== want.join()) throw new Error(`applies: ${got}, expected ${want} (128², 512×40, 128×127, f16, 'highest', over the score limit)`);
  for (const t of [q, kShort, qLong, kCaption, q16]) t.release();
});

s.gpuTest("on tensor cores: STDiT's spatial heads (N 256, D 72) and caption cross-attention (masked) at 1e-4", (gpu) => highPrecisionUnavailable(gpu), async (ctx) => {
  const ran = await withPrecision(ctx.gpu, { precision: 'high', everywhere: false }, async () => (await check(ctx, { B: 2, H: 4, Nq: 256, Nk: 256, D: 72 })) + (await check(ctx, { B: 2, H: 2, Nq: 512, Nk: 120, D: 72 }, [120, 17])));
  if (ran !== 2) throw new Error(`the matmul path ran ${ran} of 2 times`);
});

s.test('attentionMatmul refuses f16 inputs with a clear error', async ({ gpu }) => {
  const h = gpu.tensor([1, 1, 4, 8], 'f16', 'h');
  await assertThrows(() => attentionMatmul(gpu, h, h, h, 1), /attentionMatmul: .*f16/, 'f16 inputs');
  h.release();
});

s.run();
