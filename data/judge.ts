// Pixel-based judge for synthetic captioned clips: does the video show the caption's colour, shape, motion
// and background? Works on RGB24 frames or on a Float32 [3, T, H, W] tensor in [-1, 1] (model samples).
//
// Per clip: background = per-channel median of all pixels; foreground = pixels whose RGB distance from it
// exceeds half the object contrast (97th percentile of the distances, at least MIN_CONTRAST); per frame the
// largest 4-connected foreground component is the object.
// Colour: mean RGB of the object's interior (component eroded once) → nearest palette colour.
// Shape: a soft mask (each pixel's fraction of object colour, projected on object − background, over the
// component grown by a pixel) gives area, centroid and second moments to a fraction of a pixel; a disc, a
// square and an apex-up triangle are each fitted to those moments and the best soft IoU wins; majority over
// frames. (The binary area / bounding-box fill ratio, ≈ π/4, 1, 1/2, is reported as `fill` but is too
// coarse at 16×16 and after H.264.)
// Motion: least-squares slope of the centroid over the frames → displacement over the clip; below
// STILL_FRACTION of the frame it is 'still', else the dominant axis gives left/right/up/down.
import {
  BACKGROUNDS,
  BACKGROUND_NAMES,
  COLORS,
  COLOR_NAMES,
  SHAPES,
  parseCaption,
  type Attributes,
  type Background,
  type Color,
  type Motion,
  type Shape,
} from './synthetic.js';

/** A clip to judge: RGB24 frames with their size, a [3,T,H,W] / [1,3,T,H,W] tensor in [-1, 1], or square RGB24 frames. */
export type JudgeClip =
  | { frames: readonly Uint8Array[]; width: number; height: number }
  | { tensor: Float32Array | Float64Array; shape: readonly number[] }
  | readonly Uint8Array[];

/** Below this RGB distance (0..255 units) from the background nothing counts as an object. */
export const MIN_CONTRAST = 40;
/** Centroid displacement over the clip, as a fraction of the frame along its axis, below which a clip is 'still'. */
export const STILL_FRACTION = 0.12;
/** Objects smaller than this fraction of the frame (or 3 pixels) are ignored as specks. */
export const MIN_AREA_FRACTION = 0.01;

export interface Detected {
  color: Color | null;
  shape: Shape | null;
  motion: Motion | null;
  background: Background | null;
  /** Mean interior RGB of the object (0..255), null when no object was found. */
  rgb: [number, number, number] | null;
  backgroundRgb: [number, number, number];
  /** Frames in which an object was found, of all frames. */
  framesWithObject: number;
  frames: number;
  /** Object centroid per frame (pixels), null where none was found. */
  centroids: ([number, number] | null)[];
  /** Fitted centroid displacement over the clip (pixels, +x right, +y down). */
  displacement: [number, number];
  /** Mean object area (pixels) and area / bounding-box area over the frames with an object. */
  area: number;
  fill: number;
  /** Mean soft IoU of the object against each shape template. */
  shapeScores: Record<Shape, number>;
}

export interface JudgeResult {
  color: boolean;
  shape: boolean;
  motion: boolean;
  background: boolean;
  /** All four attributes match. */
  all: boolean;
  expected: Attributes;
  detected: Detected;
}

interface Clip {
  /** Per frame: H·W·3 floats in 0..255 units (may stray outside with noise). */
  frames: Float32Array[];
  width: number;
  height: number;
}

const isFrameList = (x: JudgeClip): x is readonly Uint8Array[] => Array.isArray(x);

function toClip(input: JudgeClip): Clip {
  if (isFrameList(input)) {
    const frames = input;
    if (!frames.length) throw new Error('judge: the clip has no frames');
    const side = Math.round(Math.sqrt(frames[0]!.length / 3));
    if (side * side * 3 !== frames[0]!.length) {
      throw new Error(`judge: a bare frame list must hold square RGB24 frames; got ${frames[0]!.length} bytes — pass { frames, width, height }`);
    }
    return toClip({ frames, width: side, height: side });
  }
  if ('frames' in input) {
    const { frames, width: W, height: H } = input;
    if (!frames.length) throw new Error('judge: the clip has no frames');
    return {
      width: W,
      height: H,
      frames: frames.map((f, t) => {
        if (f.length !== W * H * 3) throw new Error(`judge: frame ${t} has ${f.length} bytes, expected ${W}·${H}·3 = ${W * H * 3} (RGB24)`);
        return Float32Array.from(f);
      }),
    };
  }
  const shape = input.shape.length === 5 && input.shape[0] === 1 ? input.shape.slice(1) : input.shape;
  if (shape.length !== 4 || shape[0] !== 3) {
    throw new Error(`judge: a tensor clip must be [3, T, H, W] (or [1, 3, T, H, W]) in [-1, 1], got shape [${input.shape.join(', ')}]`);
  }
  const [, T, H, W] = shape as [number, number, number, number];
  if (input.tensor.length !== 3 * T * H * W) throw new Error(`judge: tensor has ${input.tensor.length} values, shape [${input.shape.join(', ')}] needs ${3 * T * H * W}`);
  const frames: Float32Array[] = [];
  for (let t = 0; t < T; t++) {
    const f = new Float32Array(H * W * 3);
    for (let c = 0; c < 3; c++) {
      const base = (c * T + t) * H * W;
      for (let i = 0; i < H * W; i++) f[3 * i + c] = (input.tensor[base + i]! + 1) * 127.5;
    }
    frames.push(f);
  }
  if (!T) throw new Error('judge: the clip has no frames');
  return { frames, width: W, height: H };
}

function median(xs: Float32Array): number {
  const s = Float32Array.from(xs).sort();
  const n = s.length;
  return n % 2 ? s[(n - 1) >> 1]! : 0.5 * (s[n / 2 - 1]! + s[n / 2]!);
}

function nearest<K extends string>(rgb: readonly number[], palette: Record<K, readonly number[]>, names: readonly K[]): K {
  let best = names[0]!;
  let bestD = Infinity;
  for (const k of names) {
    const p = palette[k];
    const d = (rgb[0]! - p[0]!) ** 2 + (rgb[1]! - p[1]!) ** 2 + (rgb[2]! - p[2]!) ** 2;
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

/** Largest 4-connected component of a mask: its pixel indices. */
function largestComponent(mask: Uint8Array, W: number, H: number): Int32Array {
  const label = new Int32Array(W * H);
  const stack = new Int32Array(W * H);
  let best = new Int32Array(0);
  let next = 0;
  for (let s = 0; s < W * H; s++) {
    if (!mask[s] || label[s]) continue;
    next++;
    const members: number[] = [];
    let top = 0;
    stack[top++] = s;
    label[s] = next;
    while (top) {
      const p = stack[--top]!;
      members.push(p);
      const x = p % W;
      const y = (p - x) / W;
      const visit = (q: number) => {
        if (mask[q] && !label[q]) {
          label[q] = next;
          stack[top++] = q;
        }
      };
      if (x > 0) visit(p - 1);
      if (x < W - 1) visit(p + 1);
      if (y > 0) visit(p - W);
      if (y < H - 1) visit(p + W);
    }
    if (members.length > best.length) best = Int32Array.from(members);
  }
  return best;
}

/** Half-extents and box centre of each shape template fitted to an object's area-normalised second moments. */
function fitTemplate(shape: Shape, cx: number, cy: number, vxx: number, vyy: number): { cx: number; cy: number; rx: number; ry: number } {
  // disc radius r: variance r²/4 per axis; square half-side r: r²/3; apex-up triangle (base 2r, height 2r):
  // x variance r²/6, y variance 2r²/9, centroid r/3 below the box centre
  if (shape === 'circle') return { cx, cy, rx: 2 * Math.sqrt(vxx), ry: 2 * Math.sqrt(vyy) };
  if (shape === 'square') return { cx, cy, rx: Math.sqrt(3 * vxx), ry: Math.sqrt(3 * vyy) };
  const ry = Math.sqrt(4.5 * vyy);
  return { cx, cy: cy - ry / 3, rx: Math.sqrt(6 * vxx), ry };
}

/** Coverage of a shape template (box centre cx, cy, half-extents rx, ry) over pixel (x, y), 4×4 samples. */
function templateCoverage(shape: Shape, x: number, y: number, t: { cx: number; cy: number; rx: number; ry: number }): number {
  let hits = 0;
  for (let sy = 0; sy < 4; sy++) {
    for (let sx = 0; sx < 4; sx++) {
      const u = (x + (sx + 0.5) / 4 - t.cx) / t.rx;
      const v = (y + (sy + 0.5) / 4 - t.cy) / t.ry;
      const inside = shape === 'circle' ? u * u + v * v <= 1 : shape === 'square' ? Math.abs(u) <= 1 && Math.abs(v) <= 1 : v <= 1 && Math.abs(u) <= (v + 1) / 2;
      if (inside) hits++;
    }
  }
  return hits / 16;
}

interface FrameObject {
  centroid: [number, number];
  area: number;
  fill: number;
  scores: Record<Shape, number>;
  interiorSum: [number, number, number];
  interiorCount: number;
}

function analyseFrame(f: Float32Array, dist: Float32Array, tau: number, bg: readonly number[], W: number, H: number): FrameObject | null {
  const mask = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++) mask[i] = dist[i]! > tau ? 1 : 0;
  const comp = largestComponent(mask, W, H);
  if (comp.length < Math.max(3, MIN_AREA_FRACTION * W * H)) return null;
  const inComp = new Uint8Array(W * H);
  let x0 = W;
  let x1 = 0;
  let y0 = H;
  let y1 = 0;
  for (const p of comp) {
    inComp[p] = 1;
    const x = p % W;
    const y = (p - x) / W;
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x + 1);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y + 1);
  }
  // interior: component pixels whose 4 neighbours are all in the component (all pixels if none are)
  const sum: [number, number, number] = [0, 0, 0];
  let count = 0;
  for (const p of comp) {
    const x = p % W;
    const y = (p - x) / W;
    if (x > 0 && x < W - 1 && y > 0 && y < H - 1 && inComp[p - 1] && inComp[p + 1] && inComp[p - W] && inComp[p + W]) {
      for (let c = 0; c < 3; c++) sum[c] += f[3 * p + c]!;
      count++;
    }
  }
  if (!count) {
    for (const p of comp) for (let c = 0; c < 3; c++) sum[c] += f[3 * p + c]!;
    count = comp.length;
  }
  // soft mask over the component grown by one pixel: the fraction α of object colour in each pixel, from the
  // projection of (pixel − background) onto (object − background); it measures area and moments to a
  // fraction of a pixel, which tells a small disc from a square where the binary mask cannot
  const obj = [sum[0] / count - bg[0]!, sum[1] / count - bg[1]!, sum[2] / count - bg[2]!];
  const norm2 = obj[0]! ** 2 + obj[1]! ** 2 + obj[2]! ** 2;
  const rx0 = Math.max(0, x0 - 1);
  const rx1 = Math.min(W, x1 + 1);
  const ry0 = Math.max(0, y0 - 1);
  const ry1 = Math.min(H, y1 + 1);
  const alpha = new Float32Array(W * H);
  let A = 0;
  let mx = 0;
  let my = 0;
  for (let y = ry0; y < ry1; y++) {
    for (let x = rx0; x < rx1; x++) {
      const p = y * W + x;
      const near = inComp[p] || (x > 0 && inComp[p - 1]) || (x < W - 1 && inComp[p + 1]) || (y > 0 && inComp[p - W]) || (y < H - 1 && inComp[p + W]);
      if (!near) continue;
      const proj = ((f[3 * p]! - bg[0]!) * obj[0]! + (f[3 * p + 1]! - bg[1]!) * obj[1]! + (f[3 * p + 2]! - bg[2]!) * obj[2]!) / norm2;
      const a = Math.min(1, Math.max(0, proj));
      alpha[p] = a;
      A += a;
      mx += a * (x + 0.5);
      my += a * (y + 0.5);
    }
  }
  mx /= A;
  my /= A;
  let vxx = 0;
  let vyy = 0;
  for (let y = ry0; y < ry1; y++) {
    for (let x = rx0; x < rx1; x++) {
      const a = alpha[y * W + x]!;
      vxx += (a * (x + 0.5 - mx) ** 2) / A;
      vyy += (a * (y + 0.5 - my) ** 2) / A;
    }
  }
  // a pixel's own extent adds 1/12 to the variance measured at pixel centres
  vxx += 1 / 12;
  vyy += 1 / 12;
  const scores = {} as Record<Shape, number>;
  for (const shape of SHAPES) {
    const t = fitTemplate(shape, mx, my, vxx, vyy);
    const bx0 = Math.max(0, Math.min(rx0, Math.floor(t.cx - t.rx)));
    const bx1 = Math.min(W, Math.max(rx1, Math.ceil(t.cx + t.rx)));
    const by0 = Math.max(0, Math.min(ry0, Math.floor(t.cy - t.ry)));
    const by1 = Math.min(H, Math.max(ry1, Math.ceil(t.cy + t.ry)));
    let inter = 0;
    let union = 0;
    for (let y = by0; y < by1; y++) {
      for (let x = bx0; x < bx1; x++) {
        const m = alpha[y * W + x]!;
        const c = templateCoverage(shape, x, y, t);
        inter += Math.min(m, c);
        union += Math.max(m, c);
      }
    }
    scores[shape] = union ? inter / union : 0;
  }
  return {
    centroid: [mx, my],
    area: A,
    fill: comp.length / ((x1 - x0) * (y1 - y0)),
    scores,
    interiorSum: sum,
    interiorCount: count,
  };
}

/** Detects the object's colour, shape, motion and the background of a clip, without a caption. */
export function detect(input: JudgeClip): Detected {
  const { frames, width: W, height: H } = toClip(input);
  const T = frames.length;
  const N = W * H;
  // background: per-channel median over all pixels of all frames (the object covers well under half)
  const bgRgb: [number, number, number] = [0, 0, 0];
  const channel = new Float32Array(T * N);
  for (let c = 0; c < 3; c++) {
    for (let t = 0; t < T; t++) for (let i = 0; i < N; i++) channel[t * N + i] = frames[t]![3 * i + c]!;
    bgRgb[c] = median(channel);
  }
  const dists = frames.map((f) => {
    const d = new Float32Array(N);
    for (let i = 0; i < N; i++) d[i] = Math.hypot(f[3 * i]! - bgRgb[0], f[3 * i + 1]! - bgRgb[1], f[3 * i + 2]! - bgRgb[2]);
    return d;
  });
  const all = new Float32Array(T * N);
  dists.forEach((d, t) => all.set(d, t * N));
  all.sort();
  const contrast = all[Math.min(all.length - 1, Math.floor(0.97 * all.length))]!;
  const tau = Math.max(MIN_CONTRAST, 0.5 * contrast);
  const objects = frames.map((f, t) => (contrast >= MIN_CONTRAST ? analyseFrame(f, dists[t]!, tau, bgRgb, W, H) : null));

  const background = nearest(bgRgb, BACKGROUNDS, BACKGROUND_NAMES);
  const found = objects.map((o, t) => [o, t] as const).filter((e): e is readonly [FrameObject, number] => e[0] !== null);
  const shapeScores = Object.fromEntries(SHAPES.map((s) => [s, 0])) as Record<Shape, number>;
  const base: Detected = {
    color: null,
    shape: null,
    motion: null,
    background,
    rgb: null,
    backgroundRgb: bgRgb,
    framesWithObject: found.length,
    frames: T,
    centroids: objects.map((o) => o?.centroid ?? null),
    displacement: [0, 0],
    area: 0,
    fill: 0,
    shapeScores,
  };
  if (!found.length) return base;

  // shape: majority of per-frame best templates; ties broken by the mean score
  const votes = Object.fromEntries(SHAPES.map((s) => [s, 0])) as Record<Shape, number>;
  const rgbSum = [0, 0, 0];
  let rgbCount = 0;
  for (const [o] of found) {
    let best: Shape = SHAPES[0];
    for (const s of SHAPES) {
      shapeScores[s] += o.scores[s] / found.length;
      if (o.scores[s] > o.scores[best]) best = s;
    }
    votes[best]++;
    for (let c = 0; c < 3; c++) rgbSum[c] += o.interiorSum[c]!;
    rgbCount += o.interiorCount;
    base.area += o.area / found.length;
    base.fill += o.fill / found.length;
  }
  base.shape = [...SHAPES].sort((a, b) => votes[b] - votes[a] || shapeScores[b] - shapeScores[a])[0]!;
  base.rgb = [rgbSum[0]! / rgbCount, rgbSum[1]! / rgbCount, rgbSum[2]! / rgbCount];
  base.color = nearest(base.rgb, COLORS, COLOR_NAMES);

  // motion: least-squares slope of the centroid over time, times the time span
  if (found.length >= 2) {
    const ts = found.map(([, t]) => t);
    const tMean = ts.reduce((a, b) => a + b, 0) / ts.length;
    const span = ts[ts.length - 1]! - ts[0]!;
    let stt = 0;
    const sxy = [0, 0];
    const mean = [0, 0];
    for (const [o] of found) for (let k = 0; k < 2; k++) mean[k]! += o.centroid[k]! / found.length;
    for (const [o, t] of found) {
      stt += (t - tMean) ** 2;
      for (let k = 0; k < 2; k++) sxy[k]! += (t - tMean) * (o.centroid[k]! - mean[k]!);
    }
    base.displacement = [(sxy[0]! / stt) * span, (sxy[1]! / stt) * span];
  }
  const fx = base.displacement[0] / W;
  const fy = base.displacement[1] / H;
  if (found.length < 2 || Math.max(Math.abs(fx), Math.abs(fy)) < STILL_FRACTION) base.motion = found.length >= 2 || T === 1 ? 'still' : null;
  else if (Math.abs(fx) >= Math.abs(fy)) base.motion = fx < 0 ? 'left' : 'right';
  else base.motion = fy < 0 ? 'up' : 'down';
  return base;
}

/** Judges a clip against a caption (or parsed attributes). */
export function judge(input: JudgeClip, caption: string | Attributes): JudgeResult {
  const expected = typeof caption === 'string' ? parseCaption(caption) : caption;
  const detected = detect(input);
  const color = detected.color === expected.color;
  const shape = detected.shape === expected.shape;
  const motion = detected.motion === expected.motion;
  const background = detected.background === expected.background;
  return { color, shape, motion, background, all: color && shape && motion && background, expected, detected };
}

export interface Evaluation {
  n: number;
  color: number;
  shape: number;
  motion: number;
  background: number;
  /** Fraction of clips with every attribute right. */
  all: number;
}

/** Accuracy per attribute and overall over judged clips. */
export function evaluate(results: readonly Pick<JudgeResult, 'color' | 'shape' | 'motion' | 'background' | 'all'>[]): Evaluation {
  const n = results.length;
  if (!n) throw new Error('evaluate: no results to evaluate');
  const acc = (k: 'color' | 'shape' | 'motion' | 'background' | 'all') => results.filter((r) => r[k]).length / n;
  return { n, color: acc('color'), shape: acc('shape'), motion: acc('motion'), background: acc('background'), all: acc('all') };
}
