// Training step and resume: an interrupted run, checkpointed to a file and resumed in a fresh trainer,
// reproduces the uninterrupted run's losses and weights exactly; loss scaling state and EMA survive.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, Rng } from './harness.js';
import type { Gpu } from '../engine/gpu.js';
import { tiny } from '../configs/tiny.js';
import { latentShape, type TrainConfig } from '../configs/types.js';
import { stepTimesteps, Trainer } from '../cli/_trainer.js';
import { lossWeights } from '../models/diffusion/iddpm.js';
import { loadCheckpoint, saveCheckpoint } from '../cli/_checkpoint.js';
import { stateDict } from '../models/state.js';
import { createSchedule } from '../models/diffusion/schedule.js';

const s = suite('train');

/** A very small STDiT so a step takes well under a second on the software device. */
export function microConfig(): TrainConfig {
  const c = tiny();
  return {
    ...c,
    num_frames: 2,
    image_size: [8, 8],
    model: { ...c.model, hidden_size: 32, depth: 2, num_heads: 2 },
    text_encoder: { ...c.text_encoder, caption_channels: 16, model_max_length: 8 },
    batch_size: 2,
    lr: 1e-3,
    seed: 7,
  };
}

const CAPTIONS = ['a red circle moving left on a dark background', 'a blue square moving up on a dark background', 'a green triangle staying still on a dark background'];

function batch(c: TrainConfig, step: number) {
  const [C, T, H, W] = latentShape(c);
  const rng = new Rng(1000 + step);
  return { latents: rng.uniform(c.batch_size * C * T * H * W), captions: Array.from({ length: c.batch_size }, (_, i) => CAPTIONS[(step + i) % 3]!) };
}

async function run(gpu: Gpu, t: Trainer, from: number, to: number): Promise<number[]> {
  const losses: number[] = [];
  for (let k = from; k < to; k++) losses.push(await t.trainStep(batch(t.config, k)).loss);
  return losses;
}

s.test('a resumed run repeats the uninterrupted losses and weights exactly', async ({ gpu }) => {
  const c = microConfig();
  const full = new Trainer(gpu, c);
  const want = await run(gpu, full, 0, 4);
  if (!want.every((l) => Number.isFinite(l) && l > 0)) throw new Error(`losses ${want}`);

  const first = new Trainer(gpu, c);
  const got = await run(gpu, first, 0, 2);
  const dir = mkdtempSync(join(tmpdir(), 'train-test-'));
  try {
    const path = join(dir, 'ckpt.safetensors');
    saveCheckpoint(path, await first.checkpointData({ epoch: 0, batchInEpoch: 2 }));
    const { all, trainable } = first.checkpointShapes();
    const ck = loadCheckpoint(path, all, trainable);
    if (ck.step !== 2) throw new Error(`checkpoint step ${ck.step}`);
    const resumed = new Trainer(gpu, c);
    resumed.restore(ck);
    got.push(...(await run(gpu, resumed, 2, 4)));
    if (got.some((l, i) => l !== want[i])) throw new Error(`resumed losses ${got} differ from the uninterrupted ${want}`);
    for (const [name, p] of stateDict(full.model)) {
      const [a, b] = [await p.value.read(), await stateDict(resumed.model).get(name)!.value.read()];
      if (a.some((v, i) => v !== b[i])) throw new Error(`weights ${name} differ after resume`);
    }
    const [ea, eb] = [await full.optimizer.ema!.get('final_layer.linear.weight')!.read(), await resumed.optimizer.ema!.get('final_layer.linear.weight')!.read()];
    if (ea.some((v, i) => v !== eb[i])) throw new Error('EMA differs after resume');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.test('training changes every trainable weight and keeps losses finite', async ({ gpu }) => {
  const c = microConfig();
  const t = new Trainer(gpu, c);
  const before = new Map<string, Float32Array>();
  for (const [k, p] of t.params) before.set(k, (await p.value.read()) as Float32Array);
  const losses = await run(gpu, t, 0, 3);
  if (!losses.every(Number.isFinite)) throw new Error(`losses ${losses}`);
  const unchanged = [];
  for (const [k, p] of t.params) {
    const a = before.get(k)!;
    const b = await p.value.read();
    if (a.every((v, i) => v === b[i])) unchanged.push(k);
  }
  if (unchanged.length) throw new Error(`weights not updated: ${unchanged.join(', ')}`);
  const stats = await t.optimizer.stats();
  if (stats.step !== 3 || stats.skipped !== 0 || !(stats.gradNorm > 0)) throw new Error(`optimizer state ${JSON.stringify(stats)}`);
});

// p2 loss weighting scales each sample's gradient by 1/(1 + SNR(t)): with one sample a step, the gradient
// norm (before clipping) is the uniform run's times the weight of that step's timestep.
s.test("scheduler.loss_weighting 'p2' scales the gradient by the sample's weight", async ({ gpu }) => {
  const base = { ...microConfig(), batch_size: 1 };
  const norms: number[] = [];
  for (const loss_weighting of ['uniform', 'p2'] as const) {
    const t = new Trainer(gpu, { ...base, scheduler: { ...base.scheduler, loss_weighting } });
    await run(gpu, t, 0, 1);
    norms.push((await t.optimizer.stats()).gradNorm);
  }
  const w = lossWeights(createSchedule(), stepTimesteps(createSchedule(), base.seed, 0, 1), 'p2')[0]!;
  if (!(w > 0 && w < 1)) throw new Error(`weight ${w}`);
  const ratio = norms[1]! / norms[0]!;
  if (!(Math.abs(ratio - w) <= 1e-4 * w)) throw new Error(`gradient norms ${norms}: ratio ${ratio}, expected the p2 weight ${w}`);
});

// v prediction: the same first step (same weights, noise and timestep) trains through the v-MSE, so its loss
// and gradient differ from eps prediction's, and both are finite (the math itself: diffusion.test.ts).
s.test("scheduler.prediction 'v' trains the model's output as v", async ({ gpu }) => {
  const base = { ...microConfig(), batch_size: 1 };
  const seen: { loss: number; norm: number }[] = [];
  for (const prediction of ['eps', 'v'] as const) {
    const t = new Trainer(gpu, { ...base, scheduler: { ...base.scheduler, prediction } });
    const [loss] = await run(gpu, t, 0, 1);
    seen.push({ loss: loss!, norm: (await t.optimizer.stats()).gradNorm });
  }
  const [e, v] = seen as [{ loss: number; norm: number }, { loss: number; norm: number }];
  if (![e.loss, v.loss, e.norm, v.norm].every(Number.isFinite) || !(v.norm > 0)) throw new Error(`losses/norms ${JSON.stringify(seen)}`);
  if (Math.abs(v.loss - e.loss) <= 1e-6 * e.loss || Math.abs(v.norm - e.norm) <= 1e-6 * e.norm) throw new Error(`v prediction changed nothing: ${JSON.stringify(seen)}`);
});

s.run();
