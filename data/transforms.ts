// Pure helpers of the video data pipeline: resize-and-center-crop geometry (as an ffmpeg filter chain),
// RGB24 frames → float [C, T, H, W] in [-1, 1], and a small seeded RNG keyed by (seed, epoch, index).

export interface CropPlan {
  /** Size after scaling (keeps aspect; the short side — relative to the target — fits exactly). */
  scaledWidth: number;
  scaledHeight: number;
  /** Top-left corner of the centered crop in the scaled frame. */
  x: number;
  y: number;
  /** Output size. */
  width: number;
  height: number;
}

/**
 * Resize keeping the aspect ratio so the frame covers [outH, outW], then center-crop to it
 * (as Open-Sora's resize + center crop): scale s = max(outW/srcW, outH/srcH).
 */
export function coverCrop(srcWidth: number, srcHeight: number, outHeight: number, outWidth: number): CropPlan {
  for (const [n, v] of [['source width', srcWidth], ['source height', srcHeight], ['output height', outHeight], ['output width', outWidth]] as const) {
    if (!(Number.isInteger(v) && v > 0)) throw new Error(`coverCrop: ${n} must be a positive integer, got ${v}`);
  }
  const s = Math.max(outWidth / srcWidth, outHeight / srcHeight);
  const scaledWidth = Math.max(outWidth, Math.round(srcWidth * s));
  const scaledHeight = Math.max(outHeight, Math.round(srcHeight * s));
  return {
    scaledWidth,
    scaledHeight,
    x: Math.floor((scaledWidth - outWidth) / 2),
    y: Math.floor((scaledHeight - outHeight) / 2),
    width: outWidth,
    height: outHeight,
  };
}

/** The ffmpeg filter chain of a crop plan (scale skipped when the size is unchanged, then RGB, crop, flip). */
export function cropFilter(srcWidth: number, srcHeight: number, plan: CropPlan, flip = false): string {
  const f: string[] = [];
  if (plan.scaledWidth !== srcWidth || plan.scaledHeight !== srcHeight) f.push(`scale=${plan.scaledWidth}:${plan.scaledHeight}:flags=bilinear`);
  // RGB before cropping: a crop of subsampled YUV would round x/y down to the chroma grid
  f.push('format=rgb24');
  if (plan.width !== plan.scaledWidth || plan.height !== plan.scaledHeight) f.push(`crop=${plan.width}:${plan.height}:${plan.x}:${plan.y}`);
  if (flip) f.push('hflip');
  return f.join(',');
}

/**
 * Packs T RGB24 frames (H·W·3 each) into `out` as [3, T, H, W] floats, v/127.5 − 1 ∈ [-1, 1].
 * `out` (default a new array) may be a view into a batch buffer.
 */
export function framesToCTHW(frames: readonly Uint8Array[], height: number, width: number, out?: Float32Array): Float32Array {
  const T = frames.length;
  const hw = height * width;
  const y = out ?? new Float32Array(3 * T * hw);
  if (y.length !== 3 * T * hw) throw new Error(`framesToCTHW: output has ${y.length} elements, expected 3x${T}x${height}x${width}`);
  for (let t = 0; t < T; t++) {
    const f = frames[t]!;
    if (f.length !== hw * 3) throw new Error(`framesToCTHW: frame ${t} has ${f.length} bytes, expected ${height}x${width}x3`);
    const r = t * hw;
    const g = (T + t) * hw;
    const b = (2 * T + t) * hw;
    for (let i = 0; i < hw; i++) {
      y[r + i] = f[3 * i]! / 127.5 - 1;
      y[g + i] = f[3 * i + 1]! / 127.5 - 1;
      y[b + i] = f[3 * i + 2]! / 127.5 - 1;
    }
  }
  return y;
}

/** Mixes integers into one 32-bit seed (murmur3-style finalizer per word). */
export function mixSeed(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    let k = Math.imul((w >>> 0) ^ Math.floor(w / 2 ** 32), 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

