// Built-in synthetic dataset of captioned videos: one coloured shape moving over a plain background.
//   caption: "a red circle moving left on a dark background"
// Vocabulary (COLORS, SHAPES, MOTIONS, BACKGROUNDS), describe/parseCaption between specs and captions,
// a CPU rasteriser (RGB24 frames, supersampled edges), seeded random specs and a balanced, deterministic
// dataset writer (MP4 clips through data/video.ts + an Open-Sora style train.csv).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeVideo } from './video.js';
import { SeededRng } from './rng.js';

// ---- vocabulary ---------------------------------------------------------------------------------------
/** Object colours (sRGB 0..255), chosen ≥ 150 apart in RGB so they survive H.264's 4:2:0 chroma. */
export const COLORS = {
  red: [220, 40, 40],
  green: [40, 190, 60],
  blue: [50, 80, 235],
  yellow: [235, 215, 40],
  white: [235, 235, 235],
  magenta: [215, 50, 215],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Color = keyof typeof COLORS;

export const SHAPES = ['circle', 'square', 'triangle'] as const;
export type Shape = (typeof SHAPES)[number];

/** Motion directions in image terms: 'up' moves towards row 0. */
export const MOTIONS = ['left', 'right', 'up', 'down', 'still'] as const;
export type Motion = (typeof MOTIONS)[number];

/** Background colours; 'dark' is the default (and the caption's background when it names none). */
export const BACKGROUNDS = {
  dark: [16, 16, 24],
  navy: [20, 30, 90],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Background = keyof typeof BACKGROUNDS;

export const COLOR_NAMES = Object.keys(COLORS) as Color[];
export const BACKGROUND_NAMES = Object.keys(BACKGROUNDS) as Background[];

/** What a caption says. */
export interface Attributes {
  color: Color;
  shape: Shape;
  motion: Motion;
  background: Background;
}

/**
 * One clip. Positions are fractions of the frame (x of the width, y of the height); `size` is the object's
 * half-extent as a fraction of min(width, height); `speed` is the distance travelled over the whole clip as a
 * fraction of the frame's extent along the motion axis (0 for 'still').
 */
export interface VideoSpec extends Attributes {
  x: number;
  y: number;
  speed: number;
  size: number;
}

/** Default object half-extent (fraction of min(width, height)): radius ≈ 7 px at 32×32. */
export const DEFAULT_SIZE = 0.22;
/** Moving clips travel between these fractions of the frame over the clip (≥ 1/3 of the frame). */
export const SPEED_RANGE = [0.35, 0.5] as const;

const MOTION_PHRASE: Record<Motion, string> = {
  left: 'moving left',
  right: 'moving right',
  up: 'moving up',
  down: 'moving down',
  still: 'staying still',
};

/** The caption of a spec (or of bare attributes): "a red circle moving left on a dark background". */
export function describe(a: Attributes): string {
  checkAttributes(a, 'describe');
  return `a ${a.color} ${a.shape} ${MOTION_PHRASE[a.motion]} on a ${a.background} background`;
}

/** The vocabulary in words, for error messages and help texts. */
export function vocabularyText(): string {
  return (
    `colours: ${COLOR_NAMES.join(', ')}; shapes: ${SHAPES.join(', ')}; ` +
    `motions: ${MOTIONS.map((m) => `"${MOTION_PHRASE[m]}"`).join(', ')}; ` +
    `backgrounds: ${BACKGROUND_NAMES.map((b) => `"on a ${b} background"`).join(', ')} (default dark); ` +
    `template: "a red circle moving left on a dark background"`
  );
}

const FILLER = new Set(['a', 'an', 'the', 'on', 'in', 'to', 'towards', 'toward', 'over', 'against', 'background', 'moving', 'staying', 'standing', 'that', 'is', 'which', 'and', 'object', 'shape', 'colored', 'coloured', 'with']);
const DIRECTIONS = new Set(['left', 'right', 'up', 'down']);

/**
 * Reads a caption's attributes. Lenient about order and filler words ("a", "on", "background", …), strict
 * about content: an unknown word, a missing colour/shape/motion or two conflicting values is an error that
 * lists the vocabulary. A caption without a background gets 'dark'.
 */
export function parseCaption(caption: string): Attributes {
  if (typeof caption !== 'string') throw new Error(`parseCaption: expected a string caption, got ${typeof caption}`);
  const words = caption
    .toLowerCase()
    .replace(/[.,;:!?"'()-]/g, ' ')
    .split(/\s+/)
    .filter(Boolean);
  const found: Partial<Record<keyof Attributes, string>> = {};
  const set = (key: keyof Attributes, value: string) => {
    const prev = found[key];
    if (prev !== undefined && prev !== value) {
      throw new Error(`parseCaption: "${caption}" names two ${key}s, ${prev} and ${value}; give one. Vocabulary — ${vocabularyText()}`);
    }
    found[key] = value;
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const next = words[i + 1];
    if (next === 'background' && w !== 'a' && w !== 'the') {
      const b = w;
      if (!(Object.hasOwn(BACKGROUNDS, b))) throw new Error(`parseCaption: unknown background "${w}" in "${caption}". Vocabulary — ${vocabularyText()}`);
      set('background', b);
    } else if (Object.hasOwn(COLORS, w)) set('color', w);
    else if (Object.hasOwn(BACKGROUNDS, w)) {
      throw new Error(`parseCaption: "${w}" is a background colour, not an object colour, in "${caption}". Vocabulary — ${vocabularyText()}`);
    } else if ((SHAPES as readonly string[]).includes(w)) set('shape', w);
    else if (DIRECTIONS.has(w)) set('motion', w);
    else if (w === 'still') set('motion', 'still');
    else if (w === 'not' && next === 'moving') {
      set('motion', 'still');
      i++;
    } else if (!FILLER.has(w)) {
      throw new Error(`parseCaption: unknown word "${w}" in "${caption}". Vocabulary — ${vocabularyText()}`);
    }
  }
  if (found.motion === undefined && words.includes('moving')) {
    throw new Error(`parseCaption: "moving" needs a direction (left, right, up, down) in "${caption}". Vocabulary — ${vocabularyText()}`);
  }
  const missing = (['color', 'shape', 'motion'] as const).filter((k) => found[k] === undefined);
  if (missing.length) {
    throw new Error(`parseCaption: "${caption}" names no ${missing.join(', no ')}. Vocabulary — ${vocabularyText()}`);
  }
  return {
    color: found.color as Color,
    shape: found.shape as Shape,
    motion: found.motion as Motion,
    background: (found.background ?? 'dark') as Background,
  };
}

function checkAttributes(a: Attributes, who: string): void {
  const bad: string[] = [];
  if (!(Object.hasOwn(COLORS, a.color))) bad.push(`color "${a.color}"`);
  if (!(SHAPES as readonly string[]).includes(a.shape)) bad.push(`shape "${a.shape}"`);
  if (!(MOTIONS as readonly string[]).includes(a.motion)) bad.push(`motion "${a.motion}"`);
  if (!(Object.hasOwn(BACKGROUNDS, a.background))) bad.push(`background "${a.background}"`);
  if (bad.length) throw new Error(`${who}: unknown ${bad.join(', ')}. Vocabulary — ${vocabularyText()}`);
}

// ---- specs --------------------------------------------------------------------------------------------
export interface Dims {
  width: number;
  height: number;
}

/** Unit step of a motion in image coordinates. */
export function motionVector(m: Motion): [number, number] {
  return m === 'left' ? [-1, 0] : m === 'right' ? [1, 0] : m === 'up' ? [0, -1] : m === 'down' ? [0, 1] : [0, 0];
}

/** Margin (pixels) kept between the object's extent and the frame border. */
const MARGIN_PX = 0.5;

/**
 * A random spec with the given attributes for frames of `dims`: random start and speed (SPEED_RANGE, less if
 * the frame is too small), chosen so that the object stays inside the frame for the whole clip.
 */
export function randomSpec(rng: SeededRng, a: Attributes, dims: Dims, size = DEFAULT_SIZE): VideoSpec {
  checkAttributes(a, 'randomSpec');
  checkDims(dims, 'randomSpec');
  const r = size * Math.min(dims.width, dims.height);
  // allowed centre range per axis, as fractions
  const lo = [(r + MARGIN_PX) / dims.width, (r + MARGIN_PX) / dims.height];
  const hi = [1 - lo[0]!, 1 - lo[1]!];
  const [vx, vy] = motionVector(a.motion);
  const axis = vx !== 0 ? 0 : 1;
  const room = hi[axis]! - lo[axis]!;
  if (room <= 0) throw new Error(`randomSpec: object size ${size} does not fit in ${dims.width}×${dims.height}; use a smaller size`);
  const speed = a.motion === 'still' ? 0 : Math.min(room, rng.uniform(SPEED_RANGE[0], SPEED_RANGE[1]));
  const pos = [rng.uniform(lo[0]!, hi[0]!), rng.uniform(lo[1]!, hi[1]!)];
  if (a.motion !== 'still') {
    const dir = axis === 0 ? vx : vy;
    // start so that start + dir·speed stays in [lo, hi]
    pos[axis] = dir > 0 ? rng.uniform(lo[axis]!, hi[axis]! - speed) : rng.uniform(lo[axis]! + speed, hi[axis]!);
  }
  return { ...a, x: pos[0]!, y: pos[1]!, speed, size };
}

/** Object centre (pixels, continuous coordinates: pixel (i, j) covers [i, i+1)) at frame t of T. */
export function centreAt(spec: VideoSpec, t: number, frames: number, dims: Dims): [number, number] {
  const f = frames > 1 ? t / (frames - 1) : 0;
  const [vx, vy] = motionVector(spec.motion);
  return [(spec.x + vx * spec.speed * f) * dims.width, (spec.y + vy * spec.speed * f) * dims.height];
}

// ---- rendering ----------------------------------------------------------------------------------------
export interface RenderOptions extends Dims {
  frames: number;
  /** Supersampled edge coverage (default true); false gives hard 0/1 edges. */
  antialias?: boolean;
}

function checkDims(d: Dims, who: string): void {
  for (const k of ['width', 'height'] as const) {
    if (!Number.isInteger(d[k]) || d[k] < 4) throw new Error(`${who}: ${k} must be an integer ≥ 4, got ${d[k]}`);
  }
}

/** Inside test of the shape centred at (cx, cy) with half-extent r (triangle: apex up, base at cy + r). */
function inside(shape: Shape, px: number, py: number, cx: number, cy: number, r: number): boolean {
  const dx = px - cx;
  const dy = py - cy;
  if (shape === 'circle') return dx * dx + dy * dy <= r * r;
  if (shape === 'square') return Math.abs(dx) <= r && Math.abs(dy) <= r;
  // triangle: apex (cx, cy - r), base corners (cx ± r, cy + r): |dx| ≤ (dy + r) / 2
  return dy <= r && Math.abs(dx) <= (dy + r) / 2;
}

const SUPERSAMPLE = 4;

/**
 * Renders a spec into `frames` RGB24 frames (row-major, width·height·3 bytes each). Throws if the object
 * would leave the frame.
 */
export function renderVideo(spec: VideoSpec, opts: RenderOptions): Uint8Array[] {
  checkAttributes(spec, 'renderVideo');
  checkDims(opts, 'renderVideo');
  const { width: W, height: H, frames: T } = opts;
  if (!Number.isInteger(T) || T < 1) throw new Error(`renderVideo: frames must be an integer ≥ 1, got ${T}`);
  if (!(spec.size > 0)) throw new Error(`renderVideo: spec.size must be > 0, got ${spec.size}`);
  const aa = opts.antialias ?? true;
  const S = aa ? SUPERSAMPLE : 1;
  const r = spec.size * Math.min(W, H);
  const fg = COLORS[spec.color];
  const bg = BACKGROUNDS[spec.background];
  const out: Uint8Array[] = [];
  for (let t = 0; t < T; t++) {
    const [cx, cy] = centreAt(spec, t, T, opts);
    if (cx - r < -1e-6 || cx + r > W + 1e-6 || cy - r < -1e-6 || cy + r > H + 1e-6) {
      throw new Error(`renderVideo: the ${spec.shape} leaves the ${W}×${H} frame at frame ${t} (centre ${cx.toFixed(1)}, ${cy.toFixed(1)}, half-extent ${r.toFixed(1)}); use randomSpec or a smaller speed/size`);
    }
    const img = new Uint8Array(W * H * 3);
    const x0 = Math.max(0, Math.floor(cx - r - 1));
    const x1 = Math.min(W - 1, Math.ceil(cx + r + 1));
    const y0 = Math.max(0, Math.floor(cy - r - 1));
    const y1 = Math.min(H - 1, Math.ceil(cy + r + 1));
    for (let i = 0; i < W * H; i++) {
      img[3 * i] = bg[0];
      img[3 * i + 1] = bg[1];
      img[3 * i + 2] = bg[2];
    }
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        let hits = 0;
        for (let sy = 0; sy < S; sy++) {
          for (let sx = 0; sx < S; sx++) {
            if (inside(spec.shape, x + (sx + 0.5) / S, y + (sy + 0.5) / S, cx, cy, r)) hits++;
          }
        }
        if (!hits) continue;
        const a = hits / (S * S);
        const o = 3 * (y * W + x);
        for (let c = 0; c < 3; c++) img[o + c] = Math.round(bg[c]! + a * (fg[c]! - bg[c]!));
      }
    }
    out.push(img);
  }
  return out;
}

/** RGB24 frames → Float32 [3, T, H, W] in [-1, 1] (the layout the models train on). */
export function framesToTensor(frames: readonly Uint8Array[], dims: Dims): Float32Array {
  const { width: W, height: H } = dims;
  const T = frames.length;
  const out = new Float32Array(3 * T * H * W);
  for (let t = 0; t < T; t++) {
    const f = frames[t]!;
    if (f.length !== W * H * 3) throw new Error(`framesToTensor: frame ${t} has ${f.length} bytes, expected ${W}·${H}·3 = ${W * H * 3}`);
    for (let i = 0; i < W * H; i++) {
      for (let c = 0; c < 3; c++) out[(c * T + t) * H * W + i] = f[3 * i + c]! / 127.5 - 1;
    }
  }
  return out;
}

// ---- dataset ------------------------------------------------------------------------------------------
export interface Vocabulary {
  colors: readonly Color[];
  shapes: readonly Shape[];
  motions: readonly Motion[];
  backgrounds: readonly Background[];
}

export const FULL_VOCABULARY: Vocabulary = { colors: COLOR_NAMES, shapes: SHAPES, motions: MOTIONS, backgrounds: BACKGROUND_NAMES };

/** Every attribute combination of a vocabulary (colour-major order). */
export function combinations(v: Vocabulary = FULL_VOCABULARY): Attributes[] {
  const out: Attributes[] = [];
  for (const color of v.colors) for (const shape of v.shapes) for (const motion of v.motions) for (const background of v.backgrounds) out.push({ color, shape, motion, background });
  for (const a of out) checkAttributes(a, 'combinations');
  return out;
}

/**
 * `count` specs balanced over the vocabulary's combinations: each combination appears ⌊count/n⌋ or ⌈count/n⌉
 * times (the extra ones from a seeded shuffle), in a seeded random order. Deterministic for (seed, dims).
 */
export function datasetSpecs(count: number, seed: number, dims: Dims, vocab: Vocabulary = FULL_VOCABULARY, size = DEFAULT_SIZE): VideoSpec[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`datasetSpecs: count must be an integer ≥ 1, got ${count}`);
  for (const k of ['colors', 'shapes', 'motions', 'backgrounds'] as const) {
    if (!vocab[k].length) throw new Error(`datasetSpecs: the vocabulary's ${k} list is empty`);
  }
  const combos = combinations(vocab);
  const rng = new SeededRng(seed);
  const chosen: Attributes[] = [];
  while (chosen.length < count) chosen.push(...rng.shuffle(combos.slice()).slice(0, count - chosen.length));
  rng.shuffle(chosen);
  return chosen.map((a) => randomSpec(rng, a, dims, size));
}

export interface DatasetOptions {
  outDir: string;
  count: number;
  frames: number;
  /** Square frames of size×size, unless width/height are given. */
  size?: number;
  width?: number;
  height?: number;
  seed?: number;
  fps?: number;
  vocabulary?: Partial<Vocabulary>;
  /** Clips encoded at once (default 8). */
  concurrency?: number;
  /** Called after each written clip. */
  onProgress?: (done: number, total: number) => void;
}

export interface DatasetResult {
  csvPath: string;
  specs: VideoSpec[];
  rows: { path: string; caption: string }[];
}

/** Quotes a CSV field when needed (RFC 4180). */
function csvField(s: string | number): string {
  const v = String(s);
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/**
 * Writes `count` MP4 clips to outDir/videos/NNNNNN.mp4, outDir/train.csv (columns
 * path,caption,num_frames,height,width,fps; paths relative to outDir) and outDir/specs.json (every clip's
 * spec, for checks). Balanced over attribute combinations and deterministic for the seed.
 */
export async function generateDataset(opts: DatasetOptions): Promise<DatasetResult> {
  const width = opts.width ?? opts.size ?? 32;
  const height = opts.height ?? opts.size ?? 32;
  const fps = opts.fps ?? 8;
  const seed = opts.seed ?? 0;
  const dims = { width, height };
  checkDims(dims, 'generateDataset');
  if (!Number.isInteger(opts.frames) || opts.frames < 1) throw new Error(`generateDataset: frames must be an integer ≥ 1, got ${opts.frames}`);
  if (!(fps > 0)) throw new Error(`generateDataset: fps must be > 0, got ${fps}`);
  if (width % 2 || height % 2) throw new Error(`generateDataset: H.264 (yuv420p) needs even frame sizes, got ${width}×${height}`);
  const vocab: Vocabulary = { ...FULL_VOCABULARY, ...opts.vocabulary };
  const specs = datasetSpecs(opts.count, seed, dims, vocab);
  const videoDir = join(opts.outDir, 'videos');
  await mkdir(videoDir, { recursive: true });
  const digits = Math.max(6, String(specs.length - 1).length);
  const rows = specs.map((s, i) => ({ path: `videos/${String(i).padStart(digits, '0')}.mp4`, caption: describe(s) }));
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (let i = next++; i < specs.length; i = next++) {
      const frames = renderVideo(specs[i]!, { width, height, frames: opts.frames });
      await writeVideo(join(opts.outDir, rows[i]!.path), frames, { width, height, fps });
      opts.onProgress?.(++done, specs.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 8, specs.length)) }, worker));
  const header = 'path,caption,num_frames,height,width,fps';
  const lines = rows.map((r) => [r.path, r.caption, opts.frames, height, width, fps].map(csvField).join(','));
  const csvPath = join(opts.outDir, 'train.csv');
  await writeFile(csvPath, [header, ...lines].join('\n') + '\n');
  await writeFile(join(opts.outDir, 'specs.json'), JSON.stringify({ seed, frames: opts.frames, width, height, fps, specs }, null, 1) + '\n');
  return { csvPath, specs, rows };
}
