// STDiT parity with upstream Open-Sora v1.0 (tests/fixtures/stdit.safetensors, computed in f64 by the
// PyTorch code): forward output, every parameter gradient and the input gradients, in f32 within 1e-4;
// the same with gradient checkpointing; the same with matmul precision 'high' (f32 products from three f16
// products: forced on the tiled kernel here, on tensor cores as a GPU test); the position-embedding buffers;
// load errors.
import { suite, assertClose, assertThrows } from './harness.js';
import { withPrecision } from './ops-util.js';
import { Tape } from '../engine/autograd.js';
import * as F from '../engine/functional.js';
import type { Gpu } from '../engine/gpu.js';
import { highPrecisionUnavailable } from '../engine/ops/matmul_f16x3.js';
import { toFloat64, type StFile } from '../engine/safetensors.js';
import { STDiT } from '../models/stdit.js';
import { loadStateDict, stateDict, type HostTensor } from '../models/state.js';
import { checkParamGrads, fixture, fixtureState } from './fixtures.js';

const s = suite('stdit');

function build(gpu: Gpu, f: StFile, gradCheckpoint = false, temporalPos: 'first-block' | 'input' = 'first-block'): STDiT {
  const m = f.metadata;
  return new STDiT(gpu, {
    temporalPos,
    inputSize: JSON.parse(m.input_size!),
    inChannels: Number(m.in_channels),
    patchSize: JSON.parse(m.patch_size!),
    hiddenSize: Number(m.hidden_size),
    depth: Number(m.depth),
    numHeads: Number(m.num_heads),
    captionChannels: Number(m.caption_channels),
    modelMaxLength: Number(m.model_max_length),
    predSigma: m.pred_sigma === 'true',
    gradCheckpoint,
  });
}

/**
 * Upstream parity; with high, at gpu.matmulPrecision 'high' (forced through f16x3 on any device with
 * everywhere; with allAttention every attention, however small, through ops/attention_matmul.ts's products).
 */
async function parity(gpu: Gpu, gradCheckpoint: boolean, high?: { everywhere: boolean; allAttention?: boolean }) {
  if (!high) return parityRun(gpu, gradCheckpoint);
  const before = { ...gpu.f32MatmulStats };
  await withPrecision(gpu, { precision: 'high', everywhere: high.everywhere, attentionMinScores: high.allAttention ? 1 : undefined }, () => parityRun(gpu, gradCheckpoint));
  const [f16x3, exact, attention] = [gpu.f32MatmulStats.f16x3 - before.f16x3, gpu.f32MatmulStats.exact - before.exact, gpu.f32MatmulStats.attention - before.attention];
  if (f16x3 === 0 || exact !== 0) throw new Error(`matmul precision 'high': ${f16x3} f32 products through f16x3, ${exact} exact; expected all through f16x3`);
  const all = 3 * Number(fixture('stdit').metadata.depth); // spatial, temporal and cross-attention per block
  if (high.allAttention && attention !== all) throw new Error(`${attention} attentions through the matmul path; expected all ${all}`);
}

async function parityRun(gpu: Gpu, gradCheckpoint: boolean) {
  const f = fixture('stdit');
  const model = build(gpu, f, gradCheckpoint);
  loadStateDict(model, fixtureState(f), { source: 'stdit.safetensors' });
  const get = (k: string) => toFloat64(f.tensors.get(k)!);
  const shape = (k: string) => f.tensors.get(k)!.shape;
  const tape = new Tape(gpu);
  const x = tape.input(gpu.upload(get('input.x'), shape('input.x'), 'f32', 'x'), 'x', true);
  const y = tape.input(gpu.upload(get('input.y'), shape('input.y'), 'f32', 'y'), 'y', true);
  const mask = get('input.mask');
  const [B, L] = shape('input.mask') as [number, number];
  const lens = Array.from({ length: B }, (_, b) => mask.slice(b * L, (b + 1) * L).reduce((a, v) => a + v, 0));
  const yLen = gpu.upload(lens, [B], 'i32', 'y_len');
  const timestep = gpu.upload(get('input.timestep'), [B], 'f32', 'timestep');
  const out = model.forward(tape, { x, timestep, y, yLen });
  assertClose(await out.value.read(), get('output'), { rtol: 1e-4, what: 'STDiT output' });
  tape.backward(out, gpu.upload(get('loss_weight'), out.shape, 'f32', 'loss_weight'));
  await checkParamGrads(model, f, 1e-4);
  assertClose(await x.grad!.read(), get('grad.input.x'), { rtol: 1e-4, what: 'grad of input x' });
  assertClose(await y.grad!.read(), get('grad.input.y'), { rtol: 1e-4, what: 'grad of input y' });
  tape.release();
}

s.test('forward, parameter and input gradients match upstream (f32)', ({ gpu }) => parity(gpu, false));
s.test('gradient checkpointing gives the same gradients', ({ gpu }) => parity(gpu, true));
s.test("matmul precision 'high' forced through f16x3 on the tiled kernel: same parity (1e-4)", ({ gpu }) => parity(gpu, false, { everywhere: true }));
s.test("matmul precision 'high' with every attention as f16x3 products (materialised scores, caption masks): same parity (1e-4)", ({ gpu }) =>
  parity(gpu, false, { everywhere: true, allAttention: true }));
s.gpuTest("matmul precision 'high' (f16x3 on tensor cores): same parity (1e-4)", (g) => highPrecisionUnavailable(g), async ({ gpu }) => {
  await parity(gpu, false, { everywhere: false });
  await parity(gpu, true, { everywhere: false });
  await parity(gpu, false, { everywhere: false, allAttention: true });
});

s.gpuTest('mixed precision (f16 activations and weights, f32 master) stays within 3e-2 of upstream', (g) => (g.info.f16 ? null : 'needs shader-f16'), async ({ gpu }) => {
  const f = fixture('stdit');
  const model = build(gpu, f);
  loadStateDict(model, fixtureState(f), { source: 'stdit.safetensors' });
  model.useHalf();
  const get = (k: string) => toFloat64(f.tensors.get(k)!);
  const shape = (k: string) => f.tensors.get(k)!.shape;
  const tape = new Tape(gpu);
  const x = tape.input(gpu.upload(get('input.x'), shape('input.x'), 'f16', 'x'), 'x', true);
  const y = tape.input(gpu.upload(get('input.y'), shape('input.y'), 'f16', 'y'), 'y', true);
  const yLen = gpu.upload([5, 8], [2], 'i32', 'y_len');
  const timestep = gpu.upload(get('input.timestep'), [2], 'f32', 'timestep');
  const out = F.toDtype(tape, model.forward(tape, { x, timestep, y, yLen }), 'f32');
  assertClose(await out.value.read(), get('output'), { rtol: 3e-2, what: 'STDiT f16 output' });
  tape.backward(out, gpu.upload(get('loss_weight'), out.shape, 'f32', 'loss_weight'));
  await checkParamGrads(model, f, 5e-2);
  tape.release();
});

s.test('position embeddings equal upstream buffers', async ({ gpu }) => {
  const f = fixture('stdit');
  const model = build(gpu, f);
  for (const name of ['pos_embed', 'pos_embed_temporal']) {
    assertClose(await stateDict(model).get(name)!.value.read(), toFloat64(f.tensors.get(`buffer.${name}`)!), { rtol: 1e-5, what: name });
  }
});

s.test("temporalPos 'input': same parameters; the temporal embedding moves from block 0's temporal attention to every token", async ({ gpu }) => {
  const f = fixture('stdit');
  const get = (k: string) => toFloat64(f.tensors.get(k)!);
  const shape = (k: string) => f.tensors.get(k)!.shape;
  const run = async (temporalPos: 'first-block' | 'input', zeroTemporal: boolean) => {
    const model = build(gpu, f, false, temporalPos);
    const state = fixtureState(f);
    if (zeroTemporal) {
      const t = state.get('pos_embed_temporal')!;
      state.set('pos_embed_temporal', { shape: t.shape, data: new Float32Array(t.shape.reduce((a, b) => a * b, 1)) });
    }
    loadStateDict(model, state, { source: 'stdit.safetensors' });
    const tape = new Tape(gpu);
    const x = tape.input(gpu.upload(get('input.x'), shape('input.x'), 'f32', 'x'), 'x', true);
    const y = tape.input(gpu.upload(get('input.y'), shape('input.y'), 'f32', 'y'), 'y');
    const B = shape('input.x')[0]!;
    const out = model.forward(tape, { x, timestep: gpu.upload(get('input.timestep'), [B], 'f32', 't'), y, yLen: gpu.upload([5, 8].slice(0, B), [B], 'i32', 'y_len') });
    tape.backward(out, gpu.upload(get('loss_weight'), out.shape, 'f32', 'loss_weight'));
    const r = { out: Float64Array.from(await out.value.read()), dx: Float64Array.from(await x.grad!.read()), keys: [...stateDict(model).keys()].join() };
    tape.release();
    return r;
  };
  // without a temporal embedding the two placements are the same model
  const [a, b] = [await run('first-block', true), await run('input', true)];
  assertClose(b.out, a.out, { rtol: 1e-5, what: 'output, zero temporal embedding' });
  assertClose(b.dx, a.dx, { rtol: 1e-5, what: 'input gradient, zero temporal embedding' });
  if (a.keys !== b.keys) throw new Error('the state dict keys differ between the two placements');
  // with it, they differ (and the upstream placement still matches the fixture)
  const [up, inp] = [await run('first-block', false), await run('input', false)];
  assertClose(up.out, get('output'), { rtol: 1e-4, what: 'first-block output = upstream' });
  const rel = Math.sqrt(inp.out.reduce((s2, v, i) => s2 + (v - up.out[i]!) ** 2, 0) / up.out.reduce((s2, v) => s2 + v * v, 0));
  if (!(rel > 1e-3) || inp.dx.some((v) => !Number.isFinite(v))) throw new Error(`'input' placement: output differs by ${rel} relative from upstream's; expected a clear difference and finite gradients`);
  await assertThrows(() => new STDiT(gpu, { temporalPos: 'middle' as 'input' }), /temporalPos "middle" must be 'first-block' or 'input'/, 'bad placement');
});

s.test('loading a bad state dict names the tensor', async ({ gpu }) => {
  const f = fixture('stdit');
  const model = build(gpu, f);
  const good = fixtureState(f);
  const drop = new Map(good);
  drop.delete('blocks.1.mlp.fc2.bias');
  await assertThrows(() => loadStateDict(model, drop), /missing from .*blocks\.1\.mlp\.fc2\.bias/, 'missing tensor');
  const extra = new Map<string, HostTensor>(good);
  extra.set('blocks.2.attn.qkv.weight', { shape: [1], data: [0] });
  await assertThrows(() => loadStateDict(model, extra), /not in the model: blocks\.2\.attn\.qkv\.weight/, 'extra tensor');
  const bad = new Map<string, HostTensor>(good);
  bad.set('final_layer.linear.weight', { shape: [32, 65], data: new Float32Array(32 * 65) });
  await assertThrows(() => loadStateDict(model, bad), /final_layer\.linear\.weight: model \[32, 64\], .* \[32, 65\]/, 'misshaped tensor');
});

s.run();
