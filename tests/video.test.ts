// Video files through ffmpeg: H.264 write/probe/decode round trips on tiny solid-colour videos, strided and
// scaled reads, PNG encoding (read back by ffmpeg), frame strips, and the error paths.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, assertThrows } from './harness.js';
import { crc32, encodePng, frameStrip, probeVideo, readImage, readVideoFrames, writePng, writeVideo } from '../data/video.js';

const dir = mkdtempSync(join(tmpdir(), 'video-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** Frame t's colour: distinct, away from the clipped ends of the limited YUV range. */
const colour = (t: number): [number, number, number] => [30 + 17 * t, 200 - 13 * t, 60 + 11 * ((t * 5) % 13)];

function solidFrames(n: number, w: number, h: number): Uint8Array[] {
  return Array.from({ length: n }, (_, t) => {
    const f = new Uint8Array(w * h * 3);
    const c = colour(t);
    for (let i = 0; i < w * h; i++) f.set(c, 3 * i);
    return f;
  });
}

/** Every pixel of `frame` within `tol` of `rgb` (H.264 + yuv420p round trip: a few units). */
function assertSolid(frame: Uint8Array, rgb: readonly number[], tol: number, what: string): void {
  for (let i = 0; i < frame.length; i++) {
    const d = Math.abs(frame[i]! - rgb[i % 3]!);
    if (d > tol) throw new Error(`${what}: pixel ${Math.floor(i / 3)} channel ${i % 3} = ${frame[i]}, expected ${rgb[i % 3]} ± ${tol}`);
  }
}

function assertEq<T>(got: T, want: T, what: string): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

let made: Promise<void> | null = null;
/** a.mp4: 16×16, 10 frames at 8 fps; b.mp4: 20×12, 8 frames at 24 fps. */
function fixtures(): Promise<void> {
  made ??= (async () => {
    await Promise.all([
      writeVideo(join(dir, 'a.mp4'), solidFrames(10, 16, 16), { width: 16, height: 16, fps: 8 }),
      writeVideo(join(dir, 'b.mp4'), solidFrames(8, 20, 12), { width: 20, height: 12, fps: 24, crf: 10 }),
    ]);
  })();
  return made;
}

const s = suite('video');

s.test('writeVideo + probeVideo: frame count, size, fps, codec; no temp files left; probe cache follows rewrites', async () => {
  await fixtures();
  const a = await probeVideo(join(dir, 'a.mp4'));
  assertEq([a.frames, a.width, a.height, a.fps, a.codec], [10, 16, 16, 8, 'h264'], 'a.mp4 probe');
  const b = await probeVideo(join(dir, 'b.mp4'));
  assertEq([b.frames, b.width, b.height, b.fps, b.codec], [8, 20, 12, 24, 'h264'], 'b.mp4 probe');
  const leftovers = readdirSync(dir).filter((f) => f.includes('.tmp-'));
  assertEq(leftovers, [], 'temp files');
  // probes are cached per file version: a rewritten file is probed again
  const c = join(dir, 'c.mp4');
  await writeVideo(c, solidFrames(3, 4, 4), { width: 4, height: 4, fps: 2 });
  assertEq((await probeVideo(c)).frames, 3, 'first version');
  await writeVideo(c, solidFrames(5, 4, 4), { width: 4, height: 4, fps: 2 });
  assertEq((await probeVideo(c)).frames, 5, 'rewritten file');
});

s.test('round trip: every decoded frame has its solid colour (within 4 units)', async () => {
  await fixtures();
  const cases = [['a.mp4', 10, 16, 16], ['b.mp4', 8, 20, 12]] as const;
  const decoded = await Promise.all(cases.map(([name]) => readVideoFrames(join(dir, name))));
  for (const [k, [name, n, w, h]] of cases.entries()) {
    const frames = decoded[k]!;
    assertEq(frames.length, n, `${name} frame count`);
    frames.forEach((f, t) => {
      assertEq(f.length, w * h * 3, `${name} frame ${t} bytes`);
      assertSolid(f, colour(t), 4, `${name} frame ${t}`);
    });
  }
});

s.test('strided and scaled reads pick the right frames', async ({ rng }) => {
  await fixtures();
  const start = rng.int(0, 3);
  const step = rng.int(2, 3);
  const count = Math.floor((10 - 1 - start) / step) + 1;
  const [frames, rest, small] = await Promise.all([
    readVideoFrames(join(dir, 'a.mp4'), { start, step, count }),
    readVideoFrames(join(dir, 'b.mp4'), { start: 5 }), // to the end without a count
    readVideoFrames(join(dir, 'b.mp4'), { start: 2, count: 2, width: 8, height: 6 }),
  ]);
  assertEq(frames.length, count, 'count');
  frames.forEach((f, i) => assertSolid(f, colour(start + i * step), 4, `start ${start} step ${step} frame ${i}`));
  assertEq(rest.length, 3, 'frames from 5 to the end');
  rest.forEach((f, i) => assertSolid(f, colour(5 + i), 4, `b.mp4 frame ${5 + i}`));
  assertEq(small.map((f) => f.length), [8 * 6 * 3, 8 * 6 * 3], 'scaled frame bytes');
  small.forEach((f, i) => assertSolid(f, colour(2 + i), 5, `scaled frame ${i}`));
  await assertThrows(() => readVideoFrames(join(dir, 'a.mp4'), { start: 4, step: 3, count: 3 }), /a\.mp4: decoded 2 frame\(s\).*expected 3/, 'reading past the end');
  await assertThrows(() => readVideoFrames(join(dir, 'a.mp4'), { width: 8 }), /both width and height/, 'width without height');
});

s.test('a rotated video (display matrix) probes and decodes at its displayed size', async () => {
  await fixtures();
  const rot = join(dir, 'rot.mp4');
  // b.mp4 (20×12) remuxed with a 90° display rotation: ffmpeg decodes it as 12×20
  const r = spawnSync(process.env.FFMPEG_PATH || 'ffmpeg', ['-v', 'error', '-y', '-i', join(dir, 'b.mp4'), '-c', 'copy', '-metadata:s:v:0', 'rotate=90', rot]);
  if (r.status !== 0) throw new Error(`remux failed: ${r.stderr}`);
  const info = await probeVideo(rot);
  assertEq([info.width, info.height, Math.abs(info.rotation), info.frames], [12, 20, 90, 8], 'rotated probe');
  const frames = await readVideoFrames(rot, { start: 3, count: 2 });
  assertEq(frames.map((f) => f.length), [12 * 20 * 3, 12 * 20 * 3], 'rotated frame bytes');
  frames.forEach((f, i) => assertSolid(f, colour(3 + i), 4, `rotated frame ${3 + i}`));
});

s.test('PNG: crc32, chunk layout, lossless read back through ffmpeg; frame strip layout', async ({ rng }) => {
  assertEq(crc32(new TextEncoder().encode('123456789')).toString(16), 'cbf43926', 'crc32 check value');
  const w = 7;
  const h = 5;
  const rgb = Uint8Array.from(rng.uniform(w * h * 3, 0, 256), (v) => Math.floor(v));
  const png = encodePng(rgb, w, h);
  assertEq([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'signature');
  assertEq(png.toString('ascii', 12, 16), 'IHDR', 'first chunk');
  assertEq([png.readUInt32BE(16), png.readUInt32BE(20), png[24], png[25]], [w, h, 8, 2], 'IHDR size, depth, colour type');
  assertEq(png.subarray(-12).toString('hex'), '0000000049454e44ae426082', 'IEND chunk with its CRC');
  const path = join(dir, 'r.png');
  writePng(path, rgb, w, h);
  const back = await readImage(path);
  assertEq([back.width, back.height], [w, h], 'PNG size through ffmpeg');
  assertEq(Buffer.from(back.rgb).equals(Buffer.from(rgb)), true, 'PNG pixels through ffmpeg (lossless)');
  const info = await probeVideo(path);
  assertEq([info.frames, info.width, info.height], [1, w, h], 'PNG probe');

  const frames = [0, 1, 2].map((k) => Uint8Array.from(rng.uniform(w * h * 3, 0, 256), (v) => Math.floor(v) ^ k));
  const strip = frameStrip(frames, w, h);
  assertEq([strip.width, strip.height, strip.rgb.length], [3 * w, h, 3 * w * h * 3], 'strip size');
  for (let k = 0; k < 3; k++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < 3; c++) {
          const got = strip.rgb[(y * 3 * w + k * w + x) * 3 + c];
          const want = frames[k]![(y * w + x) * 3 + c];
          if (got !== want) throw new Error(`strip frame ${k} (${x},${y}) channel ${c}: ${got}, expected ${want}`);
        }
      }
    }
  }
});

s.test('errors: missing file, corrupt file, ffmpeg/ffprobe missing, bad frames, failed encode leaves nothing', async () => {
  await fixtures();
  const missing = join(dir, 'nope.mp4');
  await assertThrows(() => probeVideo(missing), /video file not found: .*nope\.mp4/, 'probe of a missing file');
  await assertThrows(() => readVideoFrames(missing), /video file not found: .*nope\.mp4/, 'read of a missing file');
  const corrupt = join(dir, 'corrupt.mp4');
  writeFileSync(corrupt, Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24));
  await assertThrows(() => probeVideo(corrupt), /not a readable video: .*corrupt\.mp4.*re-encode it/, 'probe of random bytes');
  await assertThrows(() => readImage(corrupt), /corrupt\.mp4/, 'readImage of random bytes');
  for (const [env, tool] of [['FFMPEG_PATH', 'ffmpeg'], ['FFPROBE_PATH', 'ffprobe']] as const) {
    const saved = process.env[env];
    process.env[env] = join(dir, `no-such-${tool}`);
    try {
      const fn = tool === 'ffmpeg'
        ? () => writeVideo(join(dir, 'x.mp4'), solidFrames(2, 4, 4), { width: 4, height: 4, fps: 1 })
        : () => probeVideo(join(dir, 'a.mp4'));
      await assertThrows(fn, new RegExp(`${tool} not found .*apt-get install ffmpeg.*${env}`), `${tool} missing`);
    } finally {
      if (saved === undefined) delete process.env[env];
      else process.env[env] = saved;
    }
  }
  const out = join(dir, 'bad.mp4');
  await assertThrows(() => writeVideo(out, solidFrames(2, 5, 4), { width: 5, height: 4, fps: 1 }), /even sizes, got 5x4/, 'odd width');
  await assertThrows(() => writeVideo(out, solidFrames(2, 4, 4), { width: 6, height: 4, fps: 1 }), /frame 0 has 48 bytes, expected 6x4x3 = 72/, 'frame size');
  await assertThrows(() => writeVideo(out, [], { width: 4, height: 4, fps: 1 }), /no frames/, 'no frames');
  await assertThrows(() => writeVideo(out, solidFrames(2, 4, 4), { width: 4, height: 4, fps: 1, preset: 'no-such-preset' }), /ffmpeg could not encode .*bad\.mp4/, 'encoder failure');
  assertEq(existsSync(out), false, 'no output after a failed encode');
  assertEq(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temp file after a failed encode');
});

s.run();
