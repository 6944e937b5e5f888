// Pixel judge: every rendered combination judged right on raw frames, as a noisy [-1, 1] tensor, and after
// an H.264 MP4 round trip; wrong captions judged wrong; blank clips, input forms, errors and evaluate().
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, assertThrows, type Ctx } from './harness.js';
import {
  BACKGROUND_NAMES,
  COLOR_NAMES,
  MOTIONS,
  SHAPES,
  combinations,
  describe,
  framesToTensor,
  randomSpec,
  renderVideo,
  type Attributes,
  type Dims,
} from '../data/synthetic.js';
import { SeededRng } from '../data/rng.js';
import { detect, evaluate, judge, type JudgeClip, type JudgeResult } from '../data/judge.js';
import * as video from '../data/video.js';

const s = suite('judge');

const KEYS = ['color', 'shape', 'motion', 'background'] as const;

/** Renders `perCombo` random clips of every combination. */
function clips(rng: Ctx['rng'], dims: Dims, frames: number, perCombo: number) {
  const r = new SeededRng(rng.int(0, 2 ** 31));
  const out: { a: Attributes; caption: string; frames: Uint8Array[] }[] = [];
  for (const a of combinations()) {
    for (let k = 0; k < perCombo; k++) {
      const spec = randomSpec(r, a, dims);
      out.push({ a, caption: describe(a), frames: renderVideo(spec, { ...dims, frames }) });
    }
  }
  return out;
}

/** Judges clips and fails listing the misjudged ones, unless accuracy reaches `minAll`. */
function expectAccuracy(what: string, judged: { caption: string; res: JudgeResult }[], minAll = 1) {
  const ev = evaluate(judged.map((j) => j.res));
  const wrong = judged.filter((j) => !j.res.all);
  if (ev.all < minAll) {
    const show = wrong.slice(0, 5).map(({ caption, res: { detected: d } }) =>
      `"${caption}" → ${d.color}/${d.shape}/${d.motion}/${d.background} (rgb ${d.rgb?.map(Math.round)}, fill ${d.fill.toFixed(2)}, scores ${JSON.stringify(d.shapeScores, (_k, v) => (typeof v === 'number' ? +v.toFixed(2) : v))}, Δ ${d.displacement.map((v) => v.toFixed(1))})`,
    );
    throw new Error(`${what}: accuracy ${JSON.stringify(ev)}; ${wrong.length} wrong, e.g.\n      ${show.join('\n      ')}`);
  }
  return ev;
}

for (const [W, H, T] of [[32, 32, 8], [48, 32, 12], [16, 16, 8]] as const) {
  s.test(`every combination judged right on raw rendered frames, ${T}×${H}×${W}`, ({ rng }) => {
    const dims = { width: W, height: H };
    const judged = clips(rng, dims, T, 2).map((c) => ({ caption: c.caption, res: judge({ frames: c.frames, ...dims }, c.caption) }));
    if (judged.length !== 360) throw new Error(`judged ${judged.length} clips, expected 2 per combination (360)`);
    expectAccuracy(`raw ${W}×${H}`, judged);
  });
}

s.test('every combination judged right as a [3,T,H,W] tensor in [-1, 1] with Gaussian noise σ 0.1', ({ rng }) => {
  const dims = { width: 32, height: 32 };
  const judged = clips(rng, dims, 8, 2).map((c) => {
    const x = framesToTensor(c.frames, dims);
    const noise = rng.normal(x.length, 0.1);
    for (let i = 0; i < x.length; i++) x[i]! += noise[i]!;
    return { caption: c.caption, res: judge({ tensor: x, shape: [1, 3, 8, 32, 32] }, c.caption) };
  });
  expectAccuracy('noisy tensor', judged);
});

/** Encodes frames to an MP4 and decodes them again (data/video.ts). */
async function roundTrip(path: string, frames: Uint8Array[], dims: Dims): Promise<Uint8Array[]> {
  await video.writeVideo(path, frames, { ...dims, fps: 8 });
  const back = await video.readVideoFrames(path);
  if (back.length !== frames.length) throw new Error(`MP4 round trip of ${path} gave ${back.length} frames, expected ${frames.length}`);
  return back;
}

/** The round-trip tests need data/video.ts's writeVideo and readVideoFrames; says why when they are absent. */
function videoMissing(): string | null {
  const v = video as Record<string, unknown>;
  return typeof v.writeVideo === 'function' && typeof v.readVideoFrames === 'function' ? null : 'data/video.ts has no writeVideo/readVideoFrames';
}

s.test('MP4 round trip, one file per clip: 30 clips covering every colour, shape, motion and background', async ({ rng }) => {
  const why = videoMissing();
  if (why) return console.log(`  skipped: judge › MP4 round trip per clip: ${why}`);
  const dir = await mkdtemp(join(tmpdir(), 'judge-test-'));
  try {
    const dims = { width: 32, height: 32 };
    const r = new SeededRng(rng.int(0, 2 ** 31));
    // 30 = lcm(6 colours, 3 shapes, 5 motions, 2 backgrounds): each value equally often, combinations drawn at random
    const picks = Array.from({ length: 30 }, (_, i) => ({ color: COLOR_NAMES[i % 6]!, shape: SHAPES[i % 3]!, motion: MOTIONS[r.below(5)]!, background: BACKGROUND_NAMES[r.below(2)]! }));
    const order = r.shuffle(Array.from({ length: 30 }, (_, i) => i));
    picks.forEach((p, i) => (p.motion = MOTIONS[order[i]! % 5]!));
    const judged: { caption: string; res: JudgeResult }[] = [];
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < picks.length; i = next++) {
        const a = picks[i]!;
        const frames = renderVideo(randomSpec(r, a, dims), { ...dims, frames: 8 });
        const back = await roundTrip(join(dir, `${i}.mp4`), frames, dims);
        judged.push({ caption: describe(a), res: judge({ frames: back, ...dims }, describe(a)) });
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    expectAccuracy('MP4 round trip per clip', judged);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

s.test('MP4 round trip of all 180 combinations, tiled 32×32 into one 480×384 video', async ({ rng }) => {
  const why = videoMissing();
  if (why) return console.log(`  skipped: judge › MP4 round trip tiled: ${why}`);
  const dir = await mkdtemp(join(tmpdir(), 'judge-test-'));
  try {
    const dims = { width: 32, height: 32 };
    const all = clips(rng, dims, 8, 1);
    const cols = 15;
    const rows = 12;
    const W = cols * 32;
    const H = rows * 32;
    const tile = (frames: Uint8Array[][]) =>
      Array.from({ length: 8 }, (_, t) => {
        const big = new Uint8Array(W * H * 3);
        frames.forEach((f, k) => {
          const ox = (k % cols) * 32;
          const oy = Math.floor(k / cols) * 32;
          for (let y = 0; y < 32; y++) big.set(f[t]!.subarray(y * 96, (y + 1) * 96), ((oy + y) * W + ox) * 3);
        });
        return big;
      });
    const back = await roundTrip(join(dir, 'tiled.mp4'), tile(all.map((c) => c.frames)), { width: W, height: H });
    const judged = all.map((c, k) => {
      const ox = (k % cols) * 32;
      const oy = Math.floor(k / cols) * 32;
      const frames = back.map((big) => {
        const f = new Uint8Array(32 * 32 * 3);
        for (let y = 0; y < 32; y++) f.set(big.subarray(((oy + y) * W + ox) * 3, ((oy + y) * W + ox + 32) * 3), y * 96);
        return f;
      });
      return { caption: c.caption, res: judge({ frames, ...dims }, c.caption) };
    });
    expectAccuracy('MP4 round trip tiled', judged);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

s.test('a wrong caption is judged wrong in exactly the attribute that differs', ({ rng }) => {
  const dims = { width: 32, height: 32 };
  const vocab = { color: COLOR_NAMES, shape: SHAPES, motion: MOTIONS, background: BACKGROUND_NAMES } as const;
  let checked = 0;
  for (const c of clips(rng, dims, 8, 1)) {
    const clip = { frames: c.frames, ...dims };
    for (const key of KEYS) {
      for (const other of vocab[key] as readonly string[]) {
        if (other === c.a[key]) continue;
        const wrong = { ...c.a, [key]: other } as Attributes;
        const res = judge(clip, describe(wrong));
        if (res.all || res[key]) throw new Error(`"${c.caption}" clip judged ${key} right against "${describe(wrong)}"`);
        for (const k of KEYS) if (k !== key && !res[k]) throw new Error(`"${c.caption}" clip judged ${k} wrong against "${describe(wrong)}"`);
        checked++;
      }
    }
  }
  if (checked !== 180 * (5 + 2 + 4 + 1)) throw new Error(`checked ${checked} wrong captions, expected 2160`);
  // the brief's example, spelled out
  const red = renderVideo(randomSpec(new SeededRng(1), { color: 'red', shape: 'circle', motion: 'left', background: 'dark' }, dims), { ...dims, frames: 8 });
  const res = judge({ frames: red, ...dims }, 'a blue circle moving left on a dark background');
  if (res.color || res.all || !res.shape || !res.motion || res.detected.color !== 'red') throw new Error(`red circle vs "a blue circle…": ${JSON.stringify(res)}`);
});

s.test('blank and pure-noise clips have no object and fail every caption but the background', async ({ rng }) => {
  const W = 32;
  const T = 8;
  const blank = Array.from({ length: T }, () => new Uint8Array(W * W * 3).fill(16));
  const res = judge(blank, 'a red circle moving left on a dark background');
  if (res.all || res.color || res.shape || res.motion || !res.background || res.detected.framesWithObject !== 0) throw new Error(`blank clip: ${JSON.stringify(res)}`);
  const noisy = framesToTensor(blank, { width: W, height: W });
  const noise = rng.normal(noisy.length, 0.1);
  for (let i = 0; i < noisy.length; i++) noisy[i]! += noise[i]!;
  const d = detect({ tensor: noisy, shape: [3, T, W, W] });
  if (d.framesWithObject > 1 || d.shape !== null || d.color !== null || d.motion !== null) {
    throw new Error(`noisy blank clip: found an object in ${d.framesWithObject} frames (${d.color} ${d.shape} ${d.motion})`);
  }
  if (d.background !== 'dark') throw new Error(`noisy dark clip: background ${d.background}`);
});

s.test('input forms agree (RGB24 list, bare square list, tensor, batched tensor); bad inputs are clear errors', async ({ rng }) => {
  const dims = { width: 32, height: 32 };
  const spec = randomSpec(new SeededRng(rng.int(0, 1e9)), { color: 'yellow', shape: 'triangle', motion: 'down', background: 'navy' }, dims);
  const frames = renderVideo(spec, { ...dims, frames: 8 });
  const t = framesToTensor(frames, dims);
  const forms: JudgeClip[] = [{ frames, ...dims }, frames, { tensor: t, shape: [3, 8, 32, 32] }, { tensor: t, shape: [1, 3, 8, 32, 32] }];
  const caption = describe(spec);
  const outs = forms.map((f) => judge(f, caption));
  for (const [i, o] of outs.entries()) {
    if (!o.all) throw new Error(`input form ${i}: ${JSON.stringify(o.detected)}`);
    if (Math.abs(o.detected.displacement[1] - outs[0]!.detected.displacement[1]) > 1e-3) throw new Error(`input form ${i} measured a different displacement`);
  }
  if (!(outs[0]!.detected.displacement[1] > 0.3 * 32)) throw new Error(`moving-down clip measured displacement ${outs[0]!.detected.displacement}`);
  await assertThrows(() => judge({ tensor: t, shape: [8, 3, 32, 32] }, caption), /must be \[3, T, H, W\]/, 'a [T,3,H,W] tensor');
  await assertThrows(() => judge({ tensor: t, shape: [3, 8, 32, 31] }, caption), /needs/, 'a tensor of the wrong length');
  await assertThrows(() => judge({ frames, width: 16, height: 16 }, caption), /frame 0 has 3072 bytes, expected 16·16·3/, 'wrong frame size');
  await assertThrows(() => judge([new Uint8Array(30)], caption), /square RGB24 frames/, 'non-square bare frames');
  await assertThrows(() => judge([], caption), /no frames/, 'no frames');
  await assertThrows(() => judge(frames, 'a yellow pyramid moving down'), /unknown word "pyramid"/, 'caption with an unknown word');
});

s.test('evaluate: accuracy per attribute and overall', async () => {
  const mk = (color: boolean, shape: boolean, motion: boolean, background: boolean) => ({ color, shape, motion, background, all: color && shape && motion && background });
  const ev = evaluate([mk(true, true, true, true), mk(false, true, true, true), mk(true, false, true, true), mk(true, true, false, false)]);
  const want = { n: 4, color: 0.75, shape: 0.75, motion: 0.75, background: 0.75, all: 0.25 };
  if (JSON.stringify(ev) !== JSON.stringify(want)) throw new Error(`evaluate gave ${JSON.stringify(ev)}, expected ${JSON.stringify(want)}`);
  await assertThrows(() => evaluate([]), /no results/, 'evaluate([])');
});
s.run();
