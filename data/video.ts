// Video and image files through ffmpeg/ffprobe child processes (Node only): probe, decode to RGB24 frames,
// encode H.264 MP4 (atomic write), and a small PNG encoder for previews.
//   probeVideo(path)                      → { frames, width, height, fps, ... }   (ffprobe JSON)
//   readVideoFrames(path, opts)           → RGB24 frames (Uint8Array H·W·3 each)
//   writeVideo(path, frames, opts)        → H.264 yuv420p MP4, +faststart, written to a temp name then renamed
//   readImage(path)                       → { rgb, width, height } (PNG/JPEG/... decoded by ffmpeg)
//   encodePng / writePng / frameStrip     → previews without any dependency (node:zlib)
// The binaries are `ffmpeg`/`ffprobe` on PATH, or FFMPEG_PATH / FFPROBE_PATH (read at each call).
import { spawn } from 'node:child_process';
import { existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { deflateSync } from 'node:zlib';

export interface VideoInfo {
  /** Number of video frames (container count, else counted by decoding). Still images report 1. */
  frames: number;
  width: number;
  height: number;
  /** Frames per second (average frame rate; 0 when unknown, e.g. a still image). */
  fps: number;
  /** Duration in seconds (0 when unknown). */
  duration: number;
  codec: string;
  /** ffprobe's container name(s), e.g. 'mov,mp4,m4a,3gp,3g2,mj2' or 'png_pipe'. */
  format: string;
  /** Display rotation in degrees (phone videos); width/height are already the displayed (rotated) size. */
  rotation: number;
}

export interface ReadFramesOptions {
  /** First frame (0-based decode order). Default 0. */
  start?: number;
  /** Number of frames to return. Default: every frame from `start` on (with `step`). */
  count?: number;
  /** Stride between returned frames. Default 1. */
  step?: number;
  /** Output size; both or neither (the frames are scaled to exactly width×height). Default: the source size. */
  width?: number;
  height?: number;
  /** Decoder threads (ffmpeg -threads). Default: ffmpeg's choice. */
  threads?: number;
}

/** Internal decode request: frame selection plus an ffmpeg filter chain with a known output size. */
export interface DecodeRequest {
  start: number;
  /** Frames wanted; null = all to the end of the file. */
  count: number | null;
  step: number;
  /** Filters applied after frame selection (comma-joined ffmpeg filter chain), or '' for none. */
  filter: string;
  /** Output frame size (after the filter). */
  width: number;
  height: number;
  /** Decoder/filter threads (ffmpeg -threads); default ffmpeg's choice. 1 suits many processes in parallel. */
  threads?: number;
}

const ffmpegBin = () => process.env.FFMPEG_PATH || 'ffmpeg';
const ffprobeBin = () => process.env.FFPROBE_PATH || 'ffprobe';

/** Clear error when the file is absent. */
export function assertFileExists(path: string, what = 'video'): void {
  if (!existsSync(path)) throw new Error(`${what} file not found: ${path} (check the path; relative paths in a dataset CSV are resolved against the CSV's folder)`);
  if (!statSync(path).isFile()) throw new Error(`${what} path is not a regular file: ${path}`);
}

interface RunOptions {
  /** Data written to the process' stdin (then closed). */
  input?: readonly Uint8Array[];
  /** Exact number of stdout bytes expected (stdout is read into one buffer of that size). */
  expectBytes?: number;
  /** The file the command is about (for messages). */
  file: string;
}

interface RunResult {
  stdout: Buffer;
  /** Bytes of stdout received (may be below expectBytes when the process produced less). */
  received: number;
  stderr: string;
  code: number | null;
}

/** Spawns ffmpeg/ffprobe, feeds stdin, collects stdout (exactly expectBytes when given) and stderr. */
function runTool(tool: 'ffmpeg' | 'ffprobe', args: string[], opts: RunOptions): Promise<RunResult> {
  const bin = tool === 'ffmpeg' ? ffmpegBin() : ffprobeBin();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const fixed = opts.expectBytes !== undefined ? Buffer.allocUnsafe(opts.expectBytes) : null;
    const chunks: Buffer[] = [];
    let received = 0;
    let stderr = '';
    let failed = false;
    child.on('error', (e: NodeJS.ErrnoException) => {
      failed = true;
      if (e.code === 'ENOENT') {
        const env = tool === 'ffmpeg' ? 'FFMPEG_PATH' : 'FFPROBE_PATH';
        reject(new Error(`${tool} not found (tried "${bin}") while reading ${opts.file}: install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg) or set ${env} to the ${tool} binary`));
      } else reject(new Error(`could not start ${tool} ("${bin}") for ${opts.file}: ${e.message}`));
    });
    child.stdout.on('data', (b: Buffer) => {
      if (fixed) {
        const n = Math.min(b.length, fixed.length - received);
        if (n > 0) b.copy(fixed, received, 0, n);
        received += b.length;
      } else {
        chunks.push(b);
        received += b.length;
      }
    });
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += b.toString();
    });
    child.on('close', (code) => {
      if (failed) return;
      resolve({ stdout: fixed ?? Buffer.concat(chunks), received, stderr, code });
    });
    // ffmpeg may exit before reading all input (bad arguments): the EPIPE is reported through its stderr.
    child.stdin.on('error', () => {});
    if (opts.input) {
      const frames = opts.input;
      let i = 0;
      const pump = () => {
        while (i < frames.length) {
          const ok = child.stdin.write(frames[i++]!);
          if (!ok) {
            child.stdin.once('drain', pump);
            return;
          }
        }
        child.stdin.end();
      };
      pump();
    } else child.stdin.end();
  });
}

/** The last meaningful lines of a tool's stderr, for error messages. */
function tail(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.slice(-3).join(' | ') || 'no message';
}

function parseRate(r: unknown): number {
  if (typeof r !== 'string') return 0;
  const [a, b] = r.split('/').map(Number);
  if (b === undefined) return Number.isFinite(a) ? a! : 0;
  return b && Number.isFinite(a) ? a! / b : 0;
}

const STILL_FORMATS = /(^|,)(png_pipe|image2|jpeg_pipe|webp_pipe|bmp_pipe|tiff_pipe|gif)(,|$)/;

/** Successful probes by (ffprobe binary, path, inode, size, mtime): a changed file is probed again. */
const probeCache = new Map<string, Promise<VideoInfo>>();

/**
 * Probes the first video stream with ffprobe (JSON); counts packets when the container has no frame count.
 * Results are cached per file version (path, inode, size, mtime); `{ fresh: true }` always runs ffprobe.
 */
export async function probeVideo(path: string, opts: { fresh?: boolean } = {}): Promise<VideoInfo> {
  assertFileExists(path);
  const st = statSync(path);
  const key = [ffprobeBin(), path, st.ino, st.size, st.mtimeMs].join('\0');
  const hit = opts.fresh ? undefined : probeCache.get(key);
  if (hit) return hit;
  const p = probeUncached(path);
  if (probeCache.size >= 100_000) probeCache.clear();
  probeCache.set(key, p);
  p.catch(() => probeCache.delete(key));
  return p;
}

async function probeUncached(path: string): Promise<VideoInfo> {
  const args = ['-v', 'error', '-select_streams', 'v:0', '-show_entries',
    'stream=codec_name,width,height,r_frame_rate,avg_frame_rate,nb_frames,duration:stream_tags=rotate:stream_side_data=rotation:format=format_name,duration', '-of', 'json', path];
  const r = await runTool('ffprobe', args, { file: path });
  const bad = (why: string) =>
    new Error(`not a readable video: ${path} (${why}); the file is corrupt or not a video — re-encode it (ffmpeg -i in -c:v libx264 out.mp4) or remove it from the dataset`);
  if (r.code !== 0) throw bad(`ffprobe: ${tail(r.stderr)}`);
  let j: { streams?: Record<string, unknown>[]; format?: Record<string, unknown> };
  try {
    j = JSON.parse(r.stdout.toString());
  } catch {
    throw bad('ffprobe printed no JSON');
  }
  const s = j.streams?.[0];
  if (!s) throw bad('no video stream');
  let width = Number(s.width);
  let height = Number(s.height);
  if (!(width > 0 && height > 0)) throw bad(`no frame size (width ${s.width}, height ${s.height})`);
  // ffmpeg auto-rotates decoded frames by the display matrix: report the size it will decode to
  const side = (s.side_data_list as { rotation?: unknown }[] | undefined)?.find((d) => d.rotation !== undefined);
  const rotation = Number(side?.rotation ?? (s.tags as { rotate?: unknown } | undefined)?.rotate ?? 0) || 0;
  if (Math.abs(Math.round(rotation)) % 180 === 90) [width, height] = [height, width];
  const format = String(j.format?.format_name ?? '');
  const codec = String(s.codec_name ?? '');
  const fps = parseRate(s.avg_frame_rate) || parseRate(s.r_frame_rate);
  const duration = Number(s.duration ?? j.format?.duration ?? 0) || 0;
  let frames = Number(s.nb_frames);
  const still = STILL_FORMATS.test(format) && format !== 'gif';
  if (still) frames = 1;
  if (!(frames > 0)) {
    // No count in the container (e.g. WebM, MKV): count packets (cheap, no decoding).
    const c = await runTool('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'json', path], { file: path });
    if (c.code !== 0) throw bad(`ffprobe -count_packets: ${tail(c.stderr)}`);
    try {
      frames = Number(JSON.parse(c.stdout.toString()).streams?.[0]?.nb_read_packets);
    } catch {
      frames = NaN;
    }
    if (!(frames > 0)) throw bad('no frames');
  }
  return { frames, width, height, fps: still || !Number.isFinite(fps) ? 0 : fps, duration, codec, format, rotation };
}

/** ffmpeg filter selecting frames start, start+step, … (count of them, or to the end when count is null). */
export function selectFilter(start: number, count: number | null, step: number): string {
  const terms: string[] = [];
  if (start > 0) terms.push(`gte(n\\,${start})`);
  if (count !== null) terms.push(`lt(n\\,${start + count * step})`);
  if (step > 1) terms.push(`not(mod(n-${start}\\,${step}))`);
  return terms.length ? `select='${terms.join('*')}'` : '';
}

/**
 * Decodes selected frames through an optional filter chain into RGB24 frames of the requested size.
 * Reads exactly count·H·W·3 bytes when count is given; fewer frames than asked is an error naming the file.
 */
export async function decodeFrames(path: string, req: DecodeRequest): Promise<Uint8Array[]> {
  assertFileExists(path);
  const { start, count, step, width, height } = req;
  if (!Number.isInteger(start) || start < 0) throw new Error(`decodeFrames(${path}): start must be an integer >= 0, got ${start}`);
  if (!Number.isInteger(step) || step < 1) throw new Error(`decodeFrames(${path}): step must be an integer >= 1, got ${step}`);
  if (count !== null && (!Number.isInteger(count) || count < 1)) throw new Error(`decodeFrames(${path}): count must be an integer >= 1, got ${count}`);
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`decodeFrames(${path}): output size must be positive integers, got ${width}x${height}`);
  }
  const frameBytes = width * height * 3;
  const chain = [selectFilter(start, count, step), req.filter].filter(Boolean).join(',');
  const args = ['-v', 'error', '-nostdin'];
  if (req.threads !== undefined) {
    if (!(Number.isInteger(req.threads) && req.threads >= 0)) throw new Error(`decodeFrames(${path}): threads must be an integer >= 0 (0 = auto), got ${req.threads}`);
    args.push('-threads', String(req.threads));
  }
  args.push('-i', path, '-map', '0:v:0');
  if (req.threads !== undefined) args.push('-filter_threads', String(req.threads));
  if (chain) args.push('-vf', chain);
  // passthrough timestamps: the selected frames are emitted once each (no duplication to a constant rate)
  args.push('-vsync', '0');
  if (count !== null) args.push('-frames:v', String(count));
  args.push('-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1');
  const r = await runTool('ffmpeg', args, { file: path, expectBytes: count !== null ? count * frameBytes : undefined });
  if (r.code !== 0) {
    throw new Error(`ffmpeg could not decode ${path}: ${tail(r.stderr)}; the file is corrupt or not a video — re-encode it or remove it from the dataset`);
  }
  const want = count !== null ? count * frameBytes : r.received - (r.received % frameBytes);
  if (r.received < want || (count === null && r.received % frameBytes !== 0)) {
    const got = Math.floor(r.received / frameBytes);
    throw new Error(`${path}: decoded ${got} frame(s) of ${width}x${height} (${r.received} bytes), expected ${count ?? 'whole frames'} from frame ${start} with step ${step}; the video is shorter than its header says or truncated`);
  }
  const n = want / frameBytes;
  if (count === null && n === 0) throw new Error(`${path}: no frames decoded from frame ${start}`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(new Uint8Array(r.stdout.buffer, r.stdout.byteOffset + i * frameBytes, frameBytes));
  return out;
}

/** Decodes RGB24 frames (Uint8Array H·W·3 each), optionally a strided range and/or scaled to width×height. */
export async function readVideoFrames(path: string, opts: ReadFramesOptions = {}): Promise<Uint8Array[]> {
  if ((opts.width === undefined) !== (opts.height === undefined)) {
    throw new Error(`readVideoFrames(${path}): give both width and height, or neither`);
  }
  // With an output size given, no probe is needed (one ffmpeg process instead of two).
  const info = opts.width === undefined ? await probeVideo(path) : null;
  const width = opts.width ?? info!.width;
  const height = opts.height ?? info!.height;
  const filter = opts.width !== undefined ? `scale=${width}:${height}:flags=bilinear` : '';
  return decodeFrames(path, { start: opts.start ?? 0, count: opts.count ?? null, step: opts.step ?? 1, filter, width, height, threads: opts.threads });
}

/** A still image (PNG/JPEG/WebP/BMP…, or the first frame of a video) as RGB24. */
export async function readImage(path: string): Promise<{ rgb: Uint8Array; width: number; height: number }> {
  const info = await probeVideo(path);
  const [rgb] = await decodeFrames(path, { start: 0, count: 1, step: 1, filter: '', width: info.width, height: info.height });
  return { rgb: rgb!, width: info.width, height: info.height };
}

/** A temp name next to `path` (same filesystem, so the final rename is atomic). */
function tempNameFor(path: string, ext: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}${ext}`);
}

export interface WriteVideoOptions {
  width: number;
  height: number;
  fps: number;
  /** x264 constant rate factor (0 = lossless luma, 18 ≈ visually lossless, 23 = ffmpeg default). Default 18. */
  crf?: number;
  /** x264 preset. Default 'medium'. */
  preset?: string;
}

/** Encodes RGB24 frames to an H.264 (yuv420p) MP4 with +faststart; written to a temp name, then renamed. */
export async function writeVideo(path: string, frames: readonly Uint8Array[], opts: WriteVideoOptions): Promise<void> {
  const { width, height, fps } = opts;
  const crf = opts.crf ?? 18;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`writeVideo(${path}): width and height must be positive integers, got ${width}x${height}`);
  }
  if (width % 2 || height % 2) throw new Error(`writeVideo(${path}): H.264 yuv420p needs even sizes, got ${width}x${height}; crop or pad to an even size`);
  if (!(fps > 0)) throw new Error(`writeVideo(${path}): fps must be > 0, got ${fps}`);
  if (!(crf >= 0 && crf <= 51)) throw new Error(`writeVideo(${path}): crf must be in [0, 51], got ${crf}`);
  if (!frames.length) throw new Error(`writeVideo(${path}): no frames`);
  const frameBytes = width * height * 3;
  frames.forEach((f, i) => {
    if (f.length !== frameBytes) throw new Error(`writeVideo(${path}): frame ${i} has ${f.length} bytes, expected ${width}x${height}x3 = ${frameBytes} (RGB24)`);
  });
  if (!existsSync(dirname(path) || '.')) throw new Error(`writeVideo(${path}): folder ${dirname(path)} does not exist`);
  const tmp = tempNameFor(path, '.mp4');
  const args = ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0',
    '-c:v', 'libx264', '-preset', opts.preset ?? 'medium', '-crf', String(crf), '-pix_fmt', 'yuv420p', '-movflags', '+faststart', '-f', 'mp4', tmp];
  let r: RunResult;
  try {
    r = await runTool('ffmpeg', args, { file: path, input: frames });
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  if (r.code !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`ffmpeg could not encode ${path}: ${tail(r.stderr)} (needs an ffmpeg built with libx264)`);
  }
  renameSync(tmp, path);
}

// ---- PNG ------------------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC, as PNG and zlib use). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data.buffer, data.byteOffset, data.length).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes RGB24 (H·W·3) as an 8-bit truecolour PNG (filter 0 on every row, zlib-deflated). */
export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) throw new Error(`encodePng: bad size ${width}x${height}`);
  if (rgb.length !== width * height * 3) throw new Error(`encodePng: ${rgb.length} bytes, expected ${width}x${height}x3 = ${width * height * 3} (RGB24)`);
  const row = width * 3;
  const raw = Buffer.alloc((row + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (row + 1)] = 0;
    raw.set(rgb.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', new Uint8Array(0))]);
}

/** Writes RGB24 as a PNG (temp name, then rename). */
export function writePng(path: string, rgb: Uint8Array, width: number, height: number): void {
  const png = encodePng(rgb, width, height);
  const tmp = tempNameFor(path, '.png');
  try {
    writeFileSync(tmp, png);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Error(`writePng(${path}): ${(e as Error).message}`);
  }
}

/** Lays frames (each H·W·3) side by side: one RGB24 image of (n·W)×H. */
export function frameStrip(frames: readonly Uint8Array[], width: number, height: number): { rgb: Uint8Array; width: number; height: number } {
  if (!frames.length) throw new Error('frameStrip: no frames');
  const row = width * 3;
  const n = frames.length;
  const out = new Uint8Array(n * row * height);
  frames.forEach((f, i) => {
    if (f.length !== row * height) throw new Error(`frameStrip: frame ${i} has ${f.length} bytes, expected ${width}x${height}x3 = ${row * height}`);
    for (let y = 0; y < height; y++) out.set(f.subarray(y * row, (y + 1) * row), y * n * row + i * row);
  });
  return { rgb: out, width: n * width, height };
}
