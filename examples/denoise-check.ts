// Diagnostic for a trained model: noise one training clip to several timesteps and report how well the model
// (inference path) predicts the noise and the clean clip. A model that learned the data has a small pred_x0
// error at low and middle t; sampling quality follows.
//   node dist/examples/denoise-check.mjs <checkpoint or inference file> <train.csv> [clip index] [ema|model]
import { Tape } from '../engine/autograd.js';
import { Gpu } from '../engine/gpu.js';
import { randn } from '../engine/ops/random.js';
import { latentShape } from '../configs/types.js';
import { VideoDataset } from '../data/dataset.js';
import { loadForSampling } from '../cli/_sampling.js';
import { encodeCaptions } from '../cli/_trainer.js';
import { predictionToEps, qSample } from '../models/diffusion/iddpm.js';
import { createSchedule } from '../models/diffusion/schedule.js';

const [ckpt, csv, index = '0', weights = 'ema'] = process.argv.slice(2);
if (!ckpt || !csv) {
  console.error('usage: denoise-check.mjs <checkpoint> <train.csv> [clip index] [ema|model]');
  process.exit(2);
}
const gpu = await Gpu.open({ preferLlvmpipe: true });
const m = loadForSampling(gpu, ckpt, { weights: weights === 'model' ? 'model' : 'ema' });
const [C, T, H, W] = latentShape(m.config);
const ds = await VideoDataset.open(csv, { numFrames: T, frameInterval: m.config.frame_interval, imageSize: [H, W], validate: false });
const clip = new Float32Array(C * T * H * W);
const sample = await ds.get(Number(index), { epoch: 0, out: clip });
const s = createSchedule();
const x0 = gpu.upload(clip, [1, C, T, H, W], 'f32', 'x0');
const { y, yLen } = encodeCaptions(gpu, m.textEncoder, [sample.caption], 'f32');
console.log(`"${sample.caption}" (${sample.path})`);
for (const t of [10, 100, 300, 500, 800, 950]) {
  const noise = randn(gpu, x0.shape, { seed: 1000 + t });
  const xt = qSample(gpu, s, x0, [t], noise);
  const tape = new Tape(gpu, false);
  const out = m.model.forward(tape, { x: tape.input(xt), timestep: gpu.upload([t], [1], 'f32', 't'), y: tape.input(y), yLen });
  const epsOut = predictionToEps(gpu, s, m.config.scheduler.prediction, xt, [t], out.value); // v → eps where the model predicts v
  const [eps, nz, xv] = [await epsOut.read(), await noise.read(), await xt.read()];
  const a = s.sqrtAlphasCumprod[t]!;
  const b = s.sqrtOneMinusAlphasCumprod[t]!;
  let e = 0;
  let r = 0;
  for (let i = 0; i < clip.length; i++) {
    e += (eps[i]! - nz[i]!) ** 2;
    r += ((xv[i]! - b * eps[i]!) / a - clip[i]!) ** 2;
  }
  console.log(`t=${String(t).padStart(3)}: eps mse ${(e / clip.length).toFixed(4)}, pred_x0 rmse ${Math.sqrt(r / clip.length).toFixed(3)} (clip values in [-1, 1])`);
  tape.release();
  for (const v of [noise, xt]) v.release();
}
process.exit(0);
