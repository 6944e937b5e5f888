// CSV video dataset and loader: RFC 4180 parsing, clip sampling (random start, frame interval), resize +
// center crop + flip geometry, images repeated to num_frames, every bad-sample path as an error and as
// skip-and-count, prefetching equal to on-demand decoding, and exact resume.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, assertThrows } from './harness.js';
import { writePng, writeVideo } from '../data/video.js';
import { coverCrop, cropFilter } from '../data/transforms.js';
import { DataLoader, parseCsv, VideoDataset, type Batch, type DatasetOptions } from '../data/dataset.js';

const dir = mkdtempSync(join(tmpdir(), 'dataset-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const RED = [200, 40, 40] as const;
const GREEN = [40, 200, 40] as const;
const BLUE = [40, 40, 200] as const;
/** Frame t's colour in solid.mp4. */
const colour = (t: number): [number, number, number] => [30 + 15 * t, 210 - 12 * t, 60 + 11 * ((t * 5) % 13)];

/** A frame whose column x has colour `col(x)`. */
function columns(w: number, h: number, col: (x: number) => readonly number[]): Uint8Array {
  const f = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) f.set(col(x), 3 * (y * w + x));
  return f;
}

function assertEq<T>(got: T, want: T, what: string): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

/** Mean of channel c over frame t and columns [x0, x1) of a [3,T,H,W] sample, back in 0..255 units. */
function meanColour(v: Float32Array, T: number, H: number, W: number, t: number, x0: number, x1: number): number[] {
  return [0, 1, 2].map((c) => {
    let s = 0;
    for (let y = 0; y < H; y++) for (let x = x0; x < x1; x++) s += v[((c * T + t) * H + y) * W + x]!;
    return ((s / (H * (x1 - x0)) + 1) * 127.5);
  });
}

function assertColour(got: number[], want: readonly number[], tol: number, what: string): void {
  if (got.some((g, i) => Math.abs(g - want[i]!) > tol)) throw new Error(`${what}: colour ${got.map((g) => g.toFixed(1))}, expected ${want} ± ${tol}`);
}

let made: Promise<void> | null = null;
/**
 * solid.mp4  16×16, 12 frames, frame t solid colour(t)
 * bands.mp4  32×16, 4 frames: 8 red | 16 green | 8 blue columns
 * halves.mp4 32×16, 4 frames: 16 red | 16 blue
 * short.mp4  16×16, 3 frames;  corrupt.mp4: random bytes;  img.png: 10×6 random pixels
 */
function fixtures(): Promise<void> {
  made ??= (async () => {
    const solid = Array.from({ length: 12 }, (_, t) => columns(16, 16, () => colour(t)));
    const bands = columns(32, 16, (x) => (x < 8 ? RED : x < 24 ? GREEN : BLUE));
    const halves = columns(32, 16, (x) => (x < 16 ? RED : BLUE));
    await Promise.all([
      writeVideo(join(dir, 'solid.mp4'), solid, { width: 16, height: 16, fps: 12, crf: 10 }),
      writeVideo(join(dir, 'bands.mp4'), [bands, bands, bands, bands], { width: 32, height: 16, fps: 4, crf: 10 }),
      writeVideo(join(dir, 'halves.mp4'), [halves, halves, halves, halves], { width: 32, height: 16, fps: 4, crf: 10 }),
      writeVideo(join(dir, 'short.mp4'), solid.slice(0, 3), { width: 16, height: 16, fps: 12 }),
    ]);
    writeFileSync(join(dir, 'corrupt.mp4'), Uint8Array.from({ length: 3000 }, (_, i) => (i * 2654435761) >>> 24));
    writePng(join(dir, 'img.png'), Uint8Array.from({ length: 10 * 6 * 3 }, (_, i) => (i * 97 + 13) & 255), 10, 6);
  })();
  return made;
}

/** Writes a CSV into the temp folder and returns its path. */
function csv(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const s = suite('dataset');

s.test('parseCsv: quotes, commas, doubled quotes, newlines in quotes, CRLF, BOM, blank lines, line numbers', async () => {
  const text = '\ufeffpath,caption\r\na.mp4,"a cat, a dog"\r\n\r\n"b.mp4","she said ""hi"""\r\nc.mp4,"two\r\nlines"\nd.mp4,plain ,\n"e,f.mp4",""';
  const t = parseCsv(text, 'x.csv');
  assertEq(t.header, ['path', 'caption'], 'header');
  assertEq(t.rows.map((r) => r.line), [2, 4, 5, 7, 8], 'row start lines');
  assertEq(t.rows.map((r) => r.cells), [
    ['a.mp4', 'a cat, a dog'],
    ['b.mp4', 'she said "hi"'],
    ['c.mp4', 'two\r\nlines'],
    ['d.mp4', 'plain ', ''],
    ['e,f.mp4', ''],
  ], 'cells');
  await assertThrows(() => parseCsv('path,caption\na,"open\nb,c\n', 'u.csv'), /u\.csv line 2: unterminated quoted field/, 'unterminated quote');
  await assertThrows(() => parseCsv('path,caption\na,"x"y\n', 'v.csv'), /v\.csv line 2: unexpected character "y" after a closing quote/, 'text after a closing quote');
  await assertThrows(() => parseCsv('', 'w.csv'), /w\.csv: empty file/, 'empty file');
});

s.test('coverCrop geometry: short side fits, centered crop; filter chain', () => {
  assertEq(coverCrop(20, 12, 8, 8), { scaledWidth: 13, scaledHeight: 8, x: 2, y: 0, width: 8, height: 8 }, '20x12 -> 8x8');
  assertEq(coverCrop(32, 16, 16, 8), { scaledWidth: 32, scaledHeight: 16, x: 12, y: 0, width: 8, height: 16 }, '32x16 -> 16x8 (crop only)');
  assertEq(coverCrop(12, 30, 10, 6), { scaledWidth: 6, scaledHeight: 15, x: 0, y: 2, width: 6, height: 10 }, 'portrait');
  assertEq(cropFilter(32, 16, coverCrop(32, 16, 8, 16), true), 'scale=16:8:flags=bilinear,format=rgb24,hflip', 'scale-only chain with flip');
  assertEq(cropFilter(32, 16, coverCrop(32, 16, 16, 16)), 'format=rgb24,crop=16:16:8:0', 'crop-only chain');
});

s.test('clips: frames at start + k·frameInterval, start seeded by (seed, epoch, index), absolute and relative paths', async () => {
  await fixtures();
  const path = csv('clips.csv', `path,caption\nsolid.mp4,first\n${join(dir, 'solid.mp4')},"second, absolute"\n`);
  const ds = await VideoDataset.open(path, { numFrames: 4, frameInterval: 3, imageSize: [16, 16], seed: 5 });
  assertEq([ds.length, ds.span, ds.sampleShape], [2, 10, [3, 4, 16, 16]], 'length, span, shape');
  const epochs = [0, 1, 2, 3];
  const samples = await Promise.all(epochs.map((epoch) => ds.get(epoch % 2, { epoch })));
  const again = await ds.get(1, { epoch: 3 });
  assertEq(again.start, samples[3]!.start, 'same (seed, epoch, index), same start');
  assertEq(Buffer.from(again.video.buffer).equals(Buffer.from(samples[3]!.video.buffer)), true, 'same (seed, epoch, index), same pixels');
  for (const smp of samples) {
    assertEq(smp.shape, [3, 4, 16, 16], 'sample shape');
    if (smp.start < 0 || smp.start > 2) throw new Error(`start ${smp.start} outside [0, 12 - 10]`);
    for (let t = 0; t < 4; t++) assertColour(meanColour(smp.video, 4, 16, 16, t, 0, 16), colour(smp.start + 3 * t), 4, `index ${smp.index} start ${smp.start} frame ${t}`);
  }
  assertEq(samples.map((x) => x.caption), ['first', 'second, absolute', 'first', 'second, absolute'], 'captions');
  if (new Set(samples.map((x) => x.start)).size < 2) throw new Error(`the start never changed over 4 (epoch, index) pairs: ${samples.map((x) => x.start)}`);
  const min = Math.min(...samples[0]!.video);
  const max = Math.max(...samples[0]!.video);
  if (min < -1 || max > 1) throw new Error(`values outside [-1, 1]: ${min}..${max}`);
});

s.test('resize + center crop + flip: the crop drops the outer bands; a flip swaps the halves', async () => {
  await fixtures();
  const path = csv('geom.csv', 'path,caption\nbands.mp4,bands\nhalves.mp4,halves\n');
  // 32×16 -> 16×16: no scaling, crop x 8..24 = the green band only
  const crop = await VideoDataset.open(path, { numFrames: 2, imageSize: [16, 16] });
  const [bands, halvesCrop] = await Promise.all([crop.get(0), crop.get(1)]);
  assertColour(meanColour(bands.video, 2, 16, 16, 1, 0, 16), GREEN, 6, 'bands cropped to 16x16');
  assertColour(meanColour(halvesCrop.video, 2, 16, 16, 0, 0, 7), RED, 6, 'halves 16x16 left');
  assertColour(meanColour(halvesCrop.video, 2, 16, 16, 0, 9, 16), BLUE, 6, 'halves 16x16 right');
  // 32×16 -> 8×16 (H×W): scale by 1/2, no crop; with randomFlip some (epoch, index) draw a flip
  const flip = await VideoDataset.open(path, { numFrames: 2, imageSize: [8, 16], randomFlip: true, seed: 11 });
  const got = await Promise.all([0, 1, 2, 3].map((epoch) => flip.get(1, { epoch })));
  const flips = got.map((x) => x.flip);
  if (!flips.includes(true) || !flips.includes(false)) throw new Error(`4 epochs drew flips ${flips}; expected both (pick another seed)`);
  for (const smp of got) {
    const [l, r] = smp.flip ? [BLUE, RED] : [RED, BLUE];
    assertColour(meanColour(smp.video, 2, 8, 16, 1, 0, 6), l, 8, `halves 8x16 left (flip ${smp.flip})`);
    assertColour(meanColour(smp.video, 2, 8, 16, 1, 10, 16), r, 8, `halves 8x16 right (flip ${smp.flip})`);
  }
  // 32×16 -> 16×8: crop x 12..20: left 4 columns red, right 4 blue
  const tall = await VideoDataset.open(path, { numFrames: 1, imageSize: [16, 8] });
  const h = await tall.get(1);
  assertColour(meanColour(h.video, 1, 16, 8, 0, 0, 3), RED, 8, 'halves 16x8 left');
  assertColour(meanColour(h.video, 1, 16, 8, 0, 5, 8), BLUE, 8, 'halves 16x8 right');
});

s.test('an image is repeated to num_frames (PNG: exact pixels after the center crop)', async () => {
  await fixtures();
  const ds = await VideoDataset.open(csv('img.csv', 'path,caption\nimg.png,"a still, repeated"\n'), { numFrames: 5, frameInterval: 4, imageSize: [6, 6] });
  const smp = await ds.get(0);
  assertEq([smp.shape, smp.start, smp.caption], [[3, 5, 6, 6], 0, 'a still, repeated'], 'image sample');
  // 10×6 -> 6×6: no scaling, crop x 2..8
  for (let c = 0; c < 3; c++) {
    for (let t = 0; t < 5; t++) {
      for (let y = 0; y < 6; y++) {
        for (let x = 0; x < 6; x++) {
          const want = ((((y * 10 + x + 2) * 3 + c) * 97 + 13) & 255) / 127.5 - 1;
          const got = smp.video[((c * 5 + t) * 6 + y) * 6 + x]!;
          if (Math.abs(got - want) > 1e-6) throw new Error(`image frame ${t} (${x},${y}) channel ${c}: ${got}, expected ${want}`);
        }
      }
    }
  }
});

/** One good row, then `bad`; returns the CSV path. */
function badCsv(name: string, header: string, bad: string): string {
  return csv(name, `${header}\nsolid.mp4,good\n${bad}\n`);
}

const BAD_CASES: [string, string, string, RegExp][] = [
  ['missing', 'path,caption', 'gone.mp4,missing file', /bad-missing\.csv line 3 \(gone\.mp4\): video file not found/],
  ['corrupt', 'path,caption', 'corrupt.mp4,random bytes', /bad-corrupt\.csv line 3 \(corrupt\.mp4\): not a readable video/],
  ['short', 'path,caption', 'short.mp4,three frames', /bad-short\.csv line 3 \(short\.mp4\): the video has 3 frames, but num_frames 4 with frame_interval 2 needs at least 7/],
  ['columns', 'path,caption', 'solid.mp4,a, b', /bad-columns\.csv line 3 \(solid\.mp4\): 3 fields, but the header has 2.*quote fields/],
  ['nocaption', 'path,caption', 'solid.mp4,  ', /bad-nocaption\.csv line 3 \(solid\.mp4\): empty caption/],
  ['nopath', 'path,caption', ',a caption', /bad-nopath\.csv line 3: empty path/],
  ['number', 'path,caption,num_frames', 'solid.mp4,x,twelve', /bad-number\.csv line 3 \(solid\.mp4\): num_frames is "twelve"/],
];

s.test('bad rows and files: a clear error naming the CSV line and file, or skipped and counted', async () => {
  await fixtures();
  const opts: DatasetOptions = { numFrames: 4, frameInterval: 2, imageSize: [8, 8] };
  for (const [name, header, row, re] of BAD_CASES) {
    const good = header.includes('num_frames') ? 'solid.mp4,good,12' : 'solid.mp4,good';
    const path = csv(`bad-${name}.csv`, `${header}\n${good}\n${row}\n`);
    await assertThrows(() => VideoDataset.open(path, opts), re, `${name} (error mode)`);
    const ds = await VideoDataset.open(path, { ...opts, onBadSample: 'skip' });
    assertEq([ds.length, ds.skipped.length, ds.skipped[0]!.line], [1, 1, 3], `${name} (skip mode): length, skipped, line`);
    if (!re.test(ds.skipped[0]!.reason)) throw new Error(`${name} (skip mode): reason "${ds.skipped[0]!.reason}" does not match ${re}`);
  }
  await assertThrows(() => VideoDataset.open(csv('nohead.csv', 'file,text\na.mp4,x\n'), opts), /nohead\.csv: the header .* has no "path" column/, 'header without path');
  await assertThrows(() => VideoDataset.open(join(dir, 'absent.csv'), opts), /dataset CSV not found: .*absent\.csv/, 'missing CSV');
  await assertThrows(() => VideoDataset.open(badCsv('allbad.csv', 'path,caption', 'x'), { ...opts, onBadSample: 'skip', numFrames: 20 }), /allbad\.csv: no usable samples.*needs at least 39/, 'nothing usable');
});

s.test('validate false: CSV metadata trusted, failures surface in get() (error) or are skipped there (skip)', async () => {
  await fixtures();
  const text = 'path,caption,num_frames,height,width,fps\nsolid.mp4,ok,12,16,16,12\ncorrupt.mp4,bad,12,16,16,12\nshort.mp4,too short,3,16,16,12\ngone.mp4,absent,12,16,16,\n';
  const path = csv('lazy.csv', text);
  const opts: DatasetOptions = { numFrames: 4, frameInterval: 2, imageSize: [8, 8], validate: false };
  const strict = await VideoDataset.open(path, opts);
  assertEq([strict.length, strict.entries[0]!.fps, strict.entries[3]!.fps], [4, 12, undefined], 'rows and optional columns');
  await assertThrows(() => strict.get(1), /lazy\.csv line 3 \(corrupt\.mp4\): ffmpeg could not decode/, 'corrupt in get()');
  await assertThrows(() => strict.get(2), /lazy\.csv line 4 \(short\.mp4\): the video has 3 frames/, 'short in get()');
  await assertThrows(() => strict.get(3), /lazy\.csv line 5 \(gone\.mp4\): video file not found/, 'missing in get()');
  const lenient = await VideoDataset.open(path, { ...opts, onBadSample: 'skip' });
  const got = await lenient.get(1);
  assertEq([got.index, got.caption, lenient.skipped.length], [0, 'ok', 3], 'skip to the next usable sample (wrapping to 0)');
  assertEq(lenient.skipped.map((x) => x.line), [3, 4, 5], 'skipped lines');
  await lenient.get(2);
  assertEq(lenient.skipped.length, 3, 'a skipped sample is counted once');
});

/** Batches as comparable JSON (video as a checksum). */
function digest(b: Batch): string {
  let h = 0;
  for (let i = 0; i < b.video.length; i++) h = (Math.imul(h, 31) + Math.round(b.video[i]! * 1e4)) | 0;
  return JSON.stringify([b.epoch, b.batch, b.indices, b.captions, b.shape, h]);
}

/** An in-memory sample source: sample (index, epoch) is a known pattern; decodes finish in random order. */
function fakeSource(n: number, shape: [number, number, number, number], delay: () => number) {
  const calls: string[] = [];
  return {
    length: n,
    sampleShape: shape,
    calls,
    async get(index: number, opts: { epoch: number; out: Float32Array }) {
      calls.push(`${opts.epoch}:${index}`);
      await new Promise((r) => setTimeout(r, delay()));
      for (let j = 0; j < opts.out.length; j++) opts.out[j] = index * 1000 + opts.epoch * 100 + (j % 97);
      return { caption: `c${index}`, index };
    },
  };
}

s.test('DataLoader: prefetch gives the same batches as on-demand loading; shuffling per (seed, epoch); exact resume', async ({ rng }) => {
  const shape: [number, number, number, number] = [3, 2, 2, 2];
  const per = 24;
  const src = fakeSource(7, shape, () => rng.int(0, 4));
  const mk = (prefetch: number, batchSize = 2, dropLast = true) => new DataLoader(src, { batchSize, shuffle: true, seed: 9, prefetch, dropLast });
  const eager = mk(3);
  const lazy = mk(0);
  assertEq(eager.batchesPerEpoch, 3, 'batches per epoch (7 samples, batch 2, dropLast)');
  const a: string[] = [];
  const b: string[] = [];
  for (let i = 0; i < 7; i++) {
    const x = await eager.next();
    a.push(digest(x));
    b.push(digest(await lazy.next()));
    assertEq([x.epoch, x.batch, x.shape], [Math.floor(i / 3), i % 3, [2, ...shape]], `batch ${i} position and shape`);
    assertEq(x.indices, eager.batchIndices(x.epoch, x.batch), `batch ${i} indices`);
    assertEq(x.captions, x.indices.map((k) => `c${k}`), 'captions follow indices');
    x.indices.forEach((k, m) => {
      const want = k * 1000 + x.epoch * 100 + 5;
      if (x.video[m * per + 5] !== want) throw new Error(`batch ${i} sample ${m}: element 5 = ${x.video[m * per + 5]}, expected ${want} (sample ${k}, epoch ${x.epoch})`);
    });
  }
  assertEq(a, b, 'prefetch 3 vs prefetch 0');
  assertEq(eager.state(), { epoch: 2, batch: 1 }, 'state after 7 batches');
  const perm = (e: number) => Array.from(eager.order(e)).join();
  if (perm(0) === perm(1) && perm(1) === perm(2)) throw new Error(`the order did not change over 3 epochs: ${perm(0)}`);
  assertEq(perm(1), Array.from(mk(0).order(1)).join(), 'the order is a function of (seed, epoch)');
  assertEq([...eager.order(0)].sort().join(), '0,1,2,3,4,5,6', 'the order is a permutation');
  const used = new Set(a.slice(0, 3).flatMap((d) => JSON.parse(d)[2] as number[]));
  assertEq(used.size, 6, 'an epoch uses distinct samples');

  // resume: a fresh loader from (epoch 1, batch 1) yields exactly what the first one yielded there
  const resumed = mk(2);
  resumed.resume({ epoch: 1, batch: 1 });
  const tail: string[] = [];
  for await (const x of resumed.epoch()) tail.push(digest(x));
  assertEq(tail, a.slice(4, 6), 'epoch() after resume: the rest of epoch 1');
  assertEq(resumed.state(), { epoch: 2, batch: 0 }, 'state after the epoch');
  assertEq(digest(await resumed.next()), a[6], 'the next epoch continues as before');
  resumed.resume({ epoch: 0, batch: 3 }); // the end of epoch 0 is the start of epoch 1
  assertEq(resumed.state(), { epoch: 1, batch: 0 }, 'resume at the end of an epoch');
  assertEq(digest(await resumed.next()), a[3], 'batch after resuming at the end of an epoch');
  await Promise.all([eager.close(), resumed.close()]);

  // prefetch bounds the work in flight: after one batch with prefetch 1, exactly 2 batches were requested
  const before = src.calls.length;
  const bounded = mk(1);
  await bounded.next();
  await bounded.close();
  assertEq(src.calls.length - before, 4, 'samples requested: the batch taken and one batch ahead');

  // dropLast false keeps the last, smaller batch
  const all = mk(0, 3, false);
  assertEq(all.batchesPerEpoch, 3, 'batches per epoch without dropLast');
  const sizes: number[] = [];
  for await (const x of all.epoch()) sizes.push(x.indices.length);
  assertEq(sizes, [3, 3, 1], 'batch sizes without dropLast');
  await assertThrows(() => new DataLoader(src, { batchSize: 8 }), /7 samples, fewer than batchSize 8/, 'batch larger than the dataset');
  await assertThrows(() => mk(0).resume({ epoch: 0, batch: 7 }), /bad state/, 'resume past the epoch');
});

s.test('DataLoader over a VideoDataset: batches are the dataset samples, prefetched', async () => {
  await fixtures();
  const rows = ['solid.mp4,c0', 'halves.mp4,c1', 'img.png,c2'];
  const ds = await VideoDataset.open(csv('loader.csv', `path,caption\n${rows.join('\n')}\n`), { numFrames: 3, imageSize: [8, 8], randomFlip: true, seed: 3 });
  const loader = new DataLoader(ds, { batchSize: 2, seed: 4, prefetch: 1, dropLast: false });
  const first = await loader.next();
  const second = await loader.next();
  await loader.close();
  assertEq([first.shape, second.shape], [[2, 3, 3, 8, 8], [1, 3, 3, 8, 8]], 'batch shapes');
  assertEq([...first.indices, ...second.indices].sort().join(), '0,1,2', 'one epoch covers every sample');
  const k = second.indices[0]!;
  const direct = await ds.get(k, { epoch: 0 });
  assertEq(Buffer.from(second.video.buffer).equals(Buffer.from(direct.video.buffer)), true, `batch sample ${k} equals ds.get(${k}, epoch 0)`);
  assertEq(second.captions, [`c${k}`], 'caption');
});

s.run();
