// engine/optimizer.ts: the loss-scaled backward seed (shaders/loss_scale.wgsl: loss_scale read on the GPU
// from the optimizer state), restoring a checkpoint's counters, and a step that consumes the gradients.
import { suite, assertClose } from './harness.js';
import { Param } from '../engine/autograd.js';
import { AdamW } from '../engine/optimizer.js';

const s = suite('optimizer');

s.test('seed = loss scale · value for fixed and dynamic scales; restoreState sets step and scale', async ({ gpu, rng }) => {
  const p = new Param(gpu.upload(rng.normal(37), [37], 'f32', 'w'), 'w');
  for (const lossScale of ['dynamic', 1, 3.5] as const) {
    const opt = new AdamW(gpu, new Map([['w', p]]), { lr: 1e-3, lossScale });
    const scale = lossScale === 'dynamic' ? 65536 : lossScale;
    for (const n of [1, 5, 130]) {
      const value = rng.uniform(1, -2, 2)[0]!;
      const seed = opt.seed(n, value); // poisoned on allocation: every element must be written
      assertClose(await seed.read(), new Float64Array(n).fill(scale * Math.fround(value)), { rtol: 1e-6, what: `seed n=${n} scale ${scale}` });
      seed.release();
    }
    const scaleBack = 256 * rng.int(1, 8);
    opt.restoreState({ step: 41, lossScale: scaleBack, goodSteps: 7, skipped: 2 });
    const st = await opt.stats();
    if (st.step !== 41 || st.lossScale !== scaleBack || st.goodSteps !== 7 || st.skipped !== 2) throw new Error(`restored state ${JSON.stringify(st)}`);
    const seed = opt.seed(3, 0.5);
    assertClose(await seed.read(), [scaleBack / 2, scaleBack / 2, scaleBack / 2], { rtol: 1e-6, what: 'seed after restore' });
  }
});

s.test('step updates a weight with a gradient, skips one without, and consumes the gradients', async ({ gpu, rng }) => {
  const a = new Param(gpu.upload(rng.normal(8), [8], 'f32', 'a'), 'a');
  const b = new Param(gpu.upload(rng.normal(4), [4], 'f32', 'b'), 'b');
  const opt = new AdamW(gpu, new Map([['a', a], ['b', b]]), { lr: 0.1, emaDecay: 0.5 });
  const [a0, b0] = [await a.value.read(), await b.value.read()];
  const g = rng.normal(8);
  a.grad = gpu.upload(g, [8], 'f32', 'grad');
  opt.step();
  if (a.grad !== null) throw new Error('the gradient was not consumed');
  // first AdamW step, no weight decay: w − lr·g/(|g| + eps) per element
  assertClose(await a.value.read(), Float64Array.from(a0, (w, i) => w - (0.1 * g[i]!) / (Math.abs(g[i]!) + 1e-8)), { rtol: 1e-5, what: 'updated weight' });
  const b1 = await b.value.read();
  if (b1.some((v, i) => v !== b0[i])) throw new Error('a weight without a gradient changed');
  const ea = await opt.ema!.get('a')!.read();
  const a1 = await a.value.read();
  assertClose(ea, Float64Array.from(a0, (w, i) => 0.5 * w + 0.5 * a1[i]!), { rtol: 1e-6, what: 'EMA' });
});

s.run();
