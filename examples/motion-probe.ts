// Diagnostic: does a trained model use the motion word of its caption? For one training clip per direction,
// noise it to t and measure the noise-prediction MSE with the true caption and with the motion word swapped
// (same x_t, same noise). A model that reads the word has its lowest loss in the true column at the middle and
// high t, where the clip's layout is not yet visible in x_t; equal columns mean the word is ignored. Then
// whether the model can tell the start of a clip from its end at all (identical frames, see below).
//   node dist/examples/motion-probe.mjs <checkpoint or inference file> <dataset cache (.st.gz, see train --cache)>
import { Tape } from '../engine/autograd.js';
import { Gpu } from '../engine/gpu.js';
import { randn } from '../engine/ops/random.js';
import { CachedDataset } from '../data/cache.js';
import { loadForSampling } from '../cli/_sampling.js';
import { encodeCaptions } from '../cli/_trainer.js';
import { predictionToEps, qSample } from '../models/diffusion/iddpm.js';
import { createSchedule } from '../models/diffusion/schedule.js';

const DIRECTIONS = ['left', 'right', 'up', 'down'];
const TIMESTEPS = [200, 400, 600, 800];
const [ckpt, cache] = process.argv.slice(2);
if (!ckpt || !cache) {
  console.error('usage: motion-probe.mjs <checkpoint> <dataset cache .st.gz>');
  process.exit(2);
}
const gpu = await Gpu.open({ preferLlvmpipe: true });
const m = loadForSampling(gpu, ckpt);
const ds = new CachedDataset(cache);
const [C, T, H, W] = ds.sampleShape;
const n = C * T * H * W;
const s = createSchedule();

// the first clip of each direction, wherever it is in the cache
const clips: { x: Float32Array; caption: string }[] = [];
for (const d of DIRECTIONS) {
  const i = ds.captions.findIndex((c) => c.includes(`moving ${d}`));
  if (i < 0) throw new Error(`${cache}: no clip "moving ${d}"; the probe needs one clip of each direction (${DIRECTIONS.join(', ')})`);
  const x = new Float32Array(n);
  const r = await ds.get(i, { epoch: 0, out: x });
  clips.push({ x, caption: r.caption });
}

const B = DIRECTIONS.length;
const perSample = (m.config.model.pred_sigma ? 2 : 1) * n; // output [B, C or 2C (learned σ), T, H, W]
console.log(`noise-prediction MSE ×1e3, true caption vs the motion word swapped (columns: ${DIRECTIONS.join(', ')})`);
let gapSum = 0;
for (const t of TIMESTEPS) {
  const noise1 = await randn(gpu, [1, C, T, H, W], { seed: 9000 + t }).read();
  for (const clip of clips) {
    const captions = DIRECTIONS.map((d) => clip.caption.replace(/moving \w+/, `moving ${d}`));
    const x0 = new Float32Array(B * n);
    const nz = new Float32Array(B * n);
    for (let b = 0; b < B; b++) {
      x0.set(clip.x, b * n);
      nz.set(noise1, b * n);
    }
    const xt = qSample(gpu, s, gpu.upload(x0, [B, C, T, H, W]), new Array(B).fill(t), gpu.upload(nz, [B, C, T, H, W]));
    const { y, yLen } = encodeCaptions(gpu, m.textEncoder, captions, 'f32');
    const tape = new Tape(gpu, false);
    const raw = m.model.forward(tape, { x: tape.input(xt), timestep: gpu.upload(new Array(B).fill(t), [B], 'f32'), y: tape.input(y), yLen }).value;
    const out = await predictionToEps(gpu, s, m.config.scheduler.prediction, xt, new Array(B).fill(t), raw).read(); // v → eps where the model predicts v
    const loss = captions.map((_, b) => {
      let e = 0;
      for (let i = 0; i < n; i++) e += (out[b * perSample + i]! - noise1[i]!) ** 2; // the ε channels come first
      return e / n;
    });
    const own = DIRECTIONS.findIndex((d) => clip.caption.includes(`moving ${d}`));
    const others = loss.filter((_, b) => b !== own);
    const gap = others.reduce((a, v) => a + v, 0) / others.length / loss[own]! - 1;
    gapSum += gap;
    const cells = loss.map((l, b) => `${(l * 1e3).toFixed(3)}${b === own ? '*' : ' '}`).join('  ');
    console.log(`t=${String(t).padStart(3)} ${DIRECTIONS[own]!.padEnd(5)}  ${cells}   swapped/true − 1: ${(100 * gap).toFixed(2)} %`);
    tape.release();
  }
}
console.log(`mean swapped/true − 1 over clips and t: ${((100 * gapSum) / (TIMESTEPS.length * clips.length)).toFixed(2)} % (0: the motion word is ignored)`);

// Time direction: with the same noise in every frame, the only difference between frames is their position
// embedding. A model that knows which end of the clip is the start gives frame f and frame T−1−f different
// outputs; one that sees only the distance from the middle gives them the same (and cannot tell left from
// right, up from down). reversal = mean_f |ε(f) − ε(T−1−f)| / mean_f |ε(f) − mean ε|.
const frame = await randn(gpu, [C, 1, H, W], { seed: 77 }).read();
const same = new Float32Array(n);
for (let c = 0; c < C; c++) for (let f = 0; f < T; f++) same.set(frame.subarray(c * H * W, (c + 1) * H * W), (c * T + f) * H * W);
const { y, yLen } = encodeCaptions(gpu, m.textEncoder, [clips[1]!.caption], 'f32');
console.log(`\nidentical frames ("${clips[1]!.caption}"): per-frame output spread and time reversal`);
for (const t of [300, 600, 900]) {
  const tape = new Tape(gpu, false);
  const out = await m.model.forward(tape, { x: tape.input(gpu.upload(same, [1, C, T, H, W])), timestep: gpu.upload([t], [1], 'f32'), y: tape.input(y), yLen }).value.read();
  const at = (f: number, c: number, i: number) => out[(c * T + f) * H * W + i]!;
  let spread = 0;
  let reversal = 0;
  for (let c = 0; c < C; c++) {
    for (let i = 0; i < H * W; i++) {
      let mean = 0;
      for (let f = 0; f < T; f++) mean += at(f, c, i) / T;
      for (let f = 0; f < T; f++) {
        spread += Math.abs(at(f, c, i) - mean);
        reversal += Math.abs(at(f, c, i) - at(T - 1 - f, c, i));
      }
    }
  }
  console.log(`t=${String(t).padStart(3)}: spread ${(spread / n).toExponential(2)}, reversal ${(reversal / spread).toFixed(2)} (0: start and end look alike; 2: outputs change linearly with time)`);
  tape.release();
}
process.exit(0);
