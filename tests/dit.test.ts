// DiT parity with facebookresearch/DiT (tests/fixtures/dit.safetensors, f64 PyTorch reference): forward
// output, every parameter gradient and the input gradient in f32 within 1e-4 (sample 1 uses the null
// class), with and without gradient checkpointing; bad labels are refused.
import { suite, assertClose, assertThrows } from './harness.js';
import { Tape } from '../engine/autograd.js';
import type { Gpu } from '../engine/gpu.js';
import { toFloat64, type StFile } from '../engine/safetensors.js';
import { DiT } from '../models/dit.js';
import { loadStateDict } from '../models/state.js';
import { checkParamGrads, fixture, fixtureState } from './fixtures.js';

const s = suite('dit');

function build(gpu: Gpu, f: StFile, gradCheckpoint = false): DiT {
  const m = f.metadata;
  return new DiT(gpu, {
    inputSize: Number(m.input_size),
    patchSize: Number(m.patch_size),
    inChannels: Number(m.in_channels),
    hiddenSize: Number(m.hidden_size),
    depth: Number(m.depth),
    numHeads: Number(m.num_heads),
    numClasses: Number(m.num_classes),
    learnSigma: m.learn_sigma === 'true',
    gradCheckpoint,
  });
}

async function parity(gpu: Gpu, gradCheckpoint: boolean) {
  const f = fixture('dit');
  const model = build(gpu, f, gradCheckpoint);
  loadStateDict(model, fixtureState(f), { source: 'dit.safetensors' });
  const get = (k: string) => toFloat64(f.tensors.get(k)!);
  const tape = new Tape(gpu);
  const x = tape.input(gpu.upload(get('input.x'), f.tensors.get('input.x')!.shape, 'f32', 'x'), 'x', true);
  const t = gpu.upload(get('input.t'), [2], 'f32', 't');
  const out = model.forward(tape, { x, t, y: Array.from(get('input.y')) });
  assertClose(await out.value.read(), get('output'), { rtol: 1e-4, what: 'DiT output' });
  tape.backward(out, gpu.upload(get('loss_weight'), out.shape, 'f32', 'loss_weight'));
  await checkParamGrads(model, f, 1e-4);
  assertClose(await x.grad!.read(), get('grad.input.x'), { rtol: 1e-4, what: 'grad of input x' });
  tape.release();
}

s.test('forward, parameter and input gradients match upstream (f32)', ({ gpu }) => parity(gpu, false));
s.test('gradient checkpointing gives the same gradients', ({ gpu }) => parity(gpu, true));

s.test('pos_embed equals upstream; bad labels are refused', async ({ gpu }) => {
  const f = fixture('dit');
  const model = build(gpu, f);
  assertClose(await model.pos_embed.value.read(), toFloat64(f.tensors.get('buffer.pos_embed')!), { rtol: 1e-5, what: 'pos_embed' });
  const tape = new Tape(gpu, false);
  const x = tape.input(gpu.upload(new Float32Array(2 * 4 * 64).fill(0.5), [2, 4, 8, 8]));
  const t = gpu.upload([1, 2], [2], 'f32', 't');
  await assertThrows(() => model.forward(tape, { x, t, y: [3, 11] }), /labels \[3, 11\] must be 2 integers in 0\.\.10/, 'label out of range');
});

s.run();
