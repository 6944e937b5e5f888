// Synthetic captioned videos: vocabulary and captions, rendering geometry, balanced deterministic specs, and
// the dataset writer (MP4 + train.csv) on a tiny set.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, assertThrows } from './harness.js';
import {
  BACKGROUND_NAMES,
  COLOR_NAMES,
  COLORS,
  BACKGROUNDS,
  MOTIONS,
  SHAPES,
  SPEED_RANGE,
  centreAt,
  combinations,
  datasetSpecs,
  describe,
  framesToTensor,
  generateDataset,
  parseCaption,
  randomSpec,
  renderVideo,
  type Attributes,
  type VideoSpec,
} from '../data/synthetic.js';
import { SeededRng } from '../data/rng.js';
import { probeVideo, readVideoFrames } from '../data/video.js';

const s = suite('synthetic');
const same = (a: Attributes, b: Attributes) => a.color === b.color && a.shape === b.shape && a.motion === b.motion && a.background === b.background;

s.test('every combination: describe → parseCaption round trip; lenient spellings', () => {
  const combos = combinations();
  const n = COLOR_NAMES.length * SHAPES.length * MOTIONS.length * BACKGROUND_NAMES.length;
  if (combos.length !== n || n !== 180) throw new Error(`${combos.length} combinations, expected 6·3·5·2 = 180`);
  const captions = new Set<string>();
  for (const a of combos) {
    const c = describe(a);
    captions.add(c);
    if (!same(parseCaption(c), a)) throw new Error(`"${c}" parsed as ${JSON.stringify(parseCaption(c))}`);
  }
  if (captions.size !== n) throw new Error(`only ${captions.size} distinct captions for ${n} combinations`);
  if (describe({ color: 'red', shape: 'circle', motion: 'left', background: 'dark' }) !== 'a red circle moving left on a dark background') {
    throw new Error('caption template changed');
  }
  const cases: [string, Attributes][] = [
    ['A Red circle, moving LEFT.', { color: 'red', shape: 'circle', motion: 'left', background: 'dark' }],
    ['a red square moving to the left', { color: 'red', shape: 'square', motion: 'left', background: 'dark' }],
    ['red square still', { color: 'red', shape: 'square', motion: 'still', background: 'dark' }],
    ['a blue triangle moving up on a navy background', { color: 'blue', shape: 'triangle', motion: 'up', background: 'navy' }],
    ['the magenta circle is not moving on the navy background', { color: 'magenta', shape: 'circle', motion: 'still', background: 'navy' }],
    ['a white square staying still on a dark background', { color: 'white', shape: 'square', motion: 'still', background: 'dark' }],
  ];
  for (const [c, want] of cases) if (!same(parseCaption(c), want)) throw new Error(`"${c}" parsed as ${JSON.stringify(parseCaption(c))}`);
});

s.test('parseCaption errors name the problem and list the vocabulary', async () => {
  const cases: [string, RegExp][] = [
    ['a purple circle moving left', /unknown word "purple".*colours: red, green, blue, yellow, white, magenta.*shapes: circle, square, triangle/],
    ['a red hexagon moving left', /unknown word "hexagon".*shapes:/],
    ['a red circle', /names no motion/],
    ['moving left', /names no color, no shape/],
    ['a red blue circle moving left', /two colors, red and blue/],
    ['a red circle moving left and right', /two motions, left and right/],
    ['a red circle moving', /"moving" needs a direction/],
    ['a navy circle moving up', /"navy" is a background colour, not an object colour/],
    ['a red circle moving up on a white background', /unknown background "white"/],
    ['a toString circle moving up', /unknown word "tostring"/],
  ];
  for (const [c, re] of cases) await assertThrows(() => parseCaption(c), re, `parseCaption("${c}")`);
  await assertThrows(() => describe({ color: 'purple' as never, shape: 'circle', motion: 'left', background: 'dark' }), /unknown color "purple".*colours:/, 'describe(purple)');
});

/** Foreground (≠ background) centroid and pixel count of an RGB24 frame. */
function foreground(f: Uint8Array, W: number, H: number, bg: readonly number[]) {
  let n = 0;
  let sx = 0;
  let sy = 0;
  let x0 = W;
  let x1 = -1;
  let y0 = H;
  let y1 = -1;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const o = 3 * (y * W + x);
      if (f[o] === bg[0] && f[o + 1] === bg[1] && f[o + 2] === bg[2]) continue;
      n++;
      sx += x + 0.5;
      sy += y + 0.5;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
  }
  return { n, cx: sx / n, cy: sy / n, bboxArea: (x1 - x0 + 1) * (y1 - y0 + 1) };
}

s.test('renderVideo: object inside the frame, follows its path, spans ≥ 1/3 of the frame; shape fill ratios', async ({ rng }) => {
  const r = new SeededRng(rng.int(0, 2 ** 31));
  for (const [W, H, T] of [[32, 32, 8], [48, 32, 5], [16, 16, 8], [64, 64, 16]] as const) {
    for (const a of combinations()) {
      const spec = randomSpec(r, a, { width: W, height: H });
      const frames = renderVideo(spec, { width: W, height: H, frames: T, antialias: false });
      if (frames.length !== T || frames[0]!.length !== W * H * 3) throw new Error(`renderVideo gave ${frames.length} frames of ${frames[0]!.length} bytes`);
      const bg = BACKGROUNDS[a.background];
      const fgRgb = COLORS[a.color];
      const first = foreground(frames[0]!, W, H, bg);
      const last = foreground(frames[T - 1]!, W, H, bg);
      for (const [t, f] of [[0, first], [T - 1, last]] as const) {
        const [cx] = centreAt(spec, t, T, { width: W, height: H });
        // the triangle's pixel centroid lies r/3 below the box centre; x is exact for every shape
        if (Math.abs(f.cx - cx) > 0.6) throw new Error(`${describe(a)} ${W}×${H}: frame ${t} centroid x ${f.cx.toFixed(2)}, path ${cx.toFixed(2)}`);
      }
      if (first.n !== last.n && a.shape === 'square' && Math.abs(first.n - last.n) > 2 * Math.min(W, H)) {
        throw new Error(`${describe(a)}: the object's area changes from ${first.n} to ${last.n} (clipped at the border?)`);
      }
      const moved = Math.hypot((last.cx - first.cx) / W, (last.cy - first.cy) / H);
      if (a.motion === 'still' ? moved > 1e-9 : moved < SPEED_RANGE[0] - 0.05) throw new Error(`${describe(a)} ${W}×${H}: moved ${moved.toFixed(3)} of the frame`);
      // an object pixel holds the palette colour exactly (hard edges)
      const o = 3 * (Math.floor(first.cy) * W + Math.floor(first.cx));
      if (a.shape !== 'triangle' && [0, 1, 2].some((c) => frames[0]![o + c] !== fgRgb[c])) throw new Error(`${describe(a)}: centre pixel is not ${a.color}`);
      if (W >= 32 && T === 8) {
        const fill = first.n / first.bboxArea;
        // area / bounding box ≈ π/4, 1, 1/2, give or take the pixel rounding of a 14-pixel object
        const [lo, hi] = { circle: [0.64, 0.86], square: [0.95, 1], triangle: [0.4, 0.6] }[a.shape];
        if (fill < lo! || fill > hi!) throw new Error(`${describe(a)}: fill ratio ${fill.toFixed(3)}, expected in [${lo}, ${hi}]`);
      }
    }
  }
  const off: VideoSpec = { color: 'red', shape: 'circle', motion: 'right', background: 'dark', x: 0.7, y: 0.5, speed: 0.5, size: 0.22 };
  await assertThrows(() => renderVideo(off, { width: 32, height: 32, frames: 8 }), /leaves the 32×32 frame at frame/, 'a spec leaving the frame');
  await assertThrows(() => renderVideo(off, { width: 32, height: 32, frames: 0 }), /frames must be an integer ≥ 1/, 'zero frames');
});

s.test('antialiased edges: partial-coverage pixels blend object and background', () => {
  const spec: VideoSpec = { color: 'white', shape: 'circle', motion: 'still', background: 'dark', x: 0.5, y: 0.5, speed: 0, size: 0.22 };
  const [f] = renderVideo(spec, { width: 32, height: 32, frames: 1 });
  const bg = BACKGROUNDS.dark;
  let partial = 0;
  for (let i = 0; i < 32 * 32; i++) if (f![3 * i]! > bg[0] && f![3 * i]! < COLORS.white[0]) partial++;
  if (partial < 20) throw new Error(`only ${partial} blended edge pixels on an antialiased circle`);
});

s.test('datasetSpecs: balanced over combinations and attributes, deterministic for the seed', () => {
  const dims = { width: 32, height: 32 };
  const a = datasetSpecs(400, 7, dims);
  const b = datasetSpecs(400, 7, dims);
  const c = datasetSpecs(400, 8, dims);
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error('datasetSpecs differs between two calls with the same seed');
  if (JSON.stringify(a) === JSON.stringify(c)) throw new Error('datasetSpecs is the same for seeds 7 and 8');
  const counts = new Map<string, number>();
  for (const sp of a) counts.set(describe(sp), (counts.get(describe(sp)) ?? 0) + 1);
  const vals = [...counts.values()];
  if (counts.size !== 180 || Math.min(...vals) < 2 || Math.max(...vals) > 3) {
    throw new Error(`400 clips over 180 combinations: ${counts.size} combinations seen, counts ${Math.min(...vals)}..${Math.max(...vals)} (want 2..3)`);
  }
  const byColor = COLOR_NAMES.map((col) => a.filter((sp) => sp.color === col).length);
  if (Math.max(...byColor) - Math.min(...byColor) > 20) throw new Error(`colour counts unbalanced: ${byColor}`);
  for (const sp of a) renderVideo(sp, { ...dims, frames: 8 }); // every spec stays inside the frame
  const pos = new Set(a.map((sp) => `${sp.x.toFixed(3)},${sp.y.toFixed(3)}`));
  if (pos.size < 390) throw new Error(`only ${pos.size} distinct start positions in 400 clips`);
});

s.test('generateDataset: 12 MP4 clips + train.csv, balanced, deterministic for the seed', async () => {
  const root = await mkdtemp(join(tmpdir(), 'synthetic-test-'));
  try {
    const vocabulary = { colors: ['red', 'blue'] as const, shapes: SHAPES, motions: ['left', 'right'] as const, backgrounds: ['dark'] as const };
    const opts = { count: 12, frames: 8, size: 16, seed: 3, fps: 8, vocabulary };
    const r1 = await generateDataset({ ...opts, outDir: join(root, 'a') });
    const r2 = await generateDataset({ ...opts, outDir: join(root, 'b') });
    const csv = await readFile(r1.csvPath, 'utf8');
    const lines = csv.trimEnd().split('\n');
    if (lines[0] !== 'path,caption,num_frames,height,width,fps') throw new Error(`CSV header is "${lines[0]}"`);
    if (lines.length !== 13) throw new Error(`CSV has ${lines.length - 1} rows, expected 12`);
    if (csv !== (await readFile(r2.csvPath, 'utf8'))) throw new Error('two runs with the same seed wrote different CSVs');
    if ((await readFile(join(root, 'a', 'specs.json'), 'utf8')) !== (await readFile(join(root, 'b', 'specs.json'), 'utf8'))) {
      throw new Error('two runs with the same seed wrote different specs');
    }
    const captions = new Set<string>();
    for (const line of lines.slice(1)) {
      const [path, caption, nf, h, w, fps] = line.split(',');
      if (nf !== '8' || h !== '16' || w !== '16' || fps !== '8') throw new Error(`CSV row "${line}" has the wrong sizes`);
      const a = parseCaption(caption!);
      if (a.background !== 'dark' || !['red', 'blue'].includes(a.color) || !['left', 'right'].includes(a.motion)) throw new Error(`caption "${caption}" is outside the vocabulary asked for`);
      captions.add(caption!);
      const file = join(root, 'a', path!);
      if (!existsSync(file)) throw new Error(`CSV names ${path}, which was not written`);
    }
    if (captions.size !== 12) throw new Error(`12 clips over 12 combinations should use each once; got ${captions.size} distinct captions`);
    const info = await probeVideo(join(root, 'a', r1.rows[0]!.path));
    if (info.frames !== 8 || info.width !== 16 || info.height !== 16) throw new Error(`clip 0 is ${info.frames} frames of ${info.width}×${info.height}`);
    // decoded frames are close to the rendered ones (H.264 at crf 18)
    const decoded = await readVideoFrames(join(root, 'a', r1.rows[0]!.path));
    const want = framesToTensor(renderVideo(r1.specs[0]!, { width: 16, height: 16, frames: 8 }), { width: 16, height: 16 });
    const got = framesToTensor(decoded, { width: 16, height: 16 });
    let mae = 0;
    for (let i = 0; i < want.length; i++) mae += Math.abs(got[i]! - want[i]!) / want.length;
    if (mae > 0.08) throw new Error(`decoded clip differs from the rendered one by mean |Δ| ${mae.toFixed(3)} (in [-1, 1] units)`);
    const r3 = await generateDataset({ ...opts, seed: 4, outDir: join(root, 'c') });
    if (JSON.stringify(r3.specs) === JSON.stringify(r1.specs)) throw new Error('seeds 3 and 4 gave the same specs');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

s.test('generateDataset: bad options are clear errors', async () => {
  const outDir = join(tmpdir(), 'synthetic-never-written');
  await assertThrows(() => generateDataset({ outDir, count: 0, frames: 8 }), /count must be an integer ≥ 1/, 'count 0');
  await assertThrows(() => generateDataset({ outDir, count: 2, frames: 8, size: 15 }), /even/, 'odd size');
  await assertThrows(() => generateDataset({ outDir, count: 2, frames: 8, vocabulary: { colors: [] } }), /colors list is empty/, 'empty colours');
  if (existsSync(outDir)) throw new Error('a failed generateDataset left a folder behind');
});
s.run();
