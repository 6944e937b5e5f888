// A decoded-dataset cache: every sample of a VideoDataset decoded once (through the usual ffmpeg path) and
// stored as 8-bit RGB in one gzip-compressed safetensors file with the captions in its metadata, so small
// datasets train without re-decoding each epoch, and on machines without ffmpeg. Only for datasets whose
// samples do not change between epochs (no random flip or clip start): the cache refuses others.
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { writeFileAtomic } from '../engine/safetensors-file.js';
import { parseSafetensors, serializeSafetensors } from '../engine/safetensors.js';
import type { SampleSource, VideoDataset } from './dataset.js';

export const CACHE_FORMAT = 'webgpu-dit-decoded-dataset/1';

/** Decodes every sample of `dataset` (epoch 0) and writes the cache file. */
export async function writeDatasetCache(path: string, dataset: VideoDataset, onProgress?: (done: number, total: number) => void): Promise<void> {
  if (dataset.randomFlip) throw new Error('writeDatasetCache: the dataset varies between epochs (random flip); a decoded cache would freeze one variant');
  const [C, T, H, W] = dataset.sampleShape;
  const n = dataset.length;
  const per = C * T * H * W;
  const bytes = new Uint8Array(n * per);
  const captions: string[] = new Array(n);
  let done = 0;
  const work = Array.from({ length: n }, (_, i) => i);
  const worker = async () => {
    const out = new Float32Array(per);
    for (let i = work.shift(); i !== undefined; i = work.shift()) {
      const s = await dataset.get(i, { epoch: 0, out });
      if (s.index !== i) throw new Error(`writeDatasetCache: sample ${i} could not be decoded (${s.path}); fix or remove it first`);
      if (s.start !== 0) throw new Error('writeDatasetCache: the dataset varies between epochs (random clip start in videos longer than the clip); a decoded cache would freeze one variant');
      for (let k = 0; k < per; k++) bytes[i * per + k] = Math.round((out[k]! + 1) * 127.5);
      captions[i] = s.caption;
      onProgress?.(++done, n);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const st = serializeSafetensors([{ name: 'video', dtype: 'U8', shape: [n, C, T, H, W], data: bytes }], {
    format: CACHE_FORMAT,
    source: dataset.csvPath,
    captions: JSON.stringify(captions),
  });
  writeFileAtomic(path, gzipSync(st, { level: 6 }));
}

/** A SampleSource over a cache file (what the DataLoader batches). */
export class CachedDataset implements SampleSource {
  readonly length: number;
  readonly sampleShape: readonly [number, number, number, number];
  readonly captions: string[];
  readonly source: string;
  private readonly bytes: Uint8Array;

  constructor(path: string) {
    if (!existsSync(path)) throw new Error(`dataset cache ${path} not found; create it with --cache on a machine with ffmpeg`);
    let st;
    try {
      st = parseSafetensors(new Uint8Array(gunzipSync(readFileSync(path))), path);
    } catch (e) {
      throw new Error(`dataset cache ${path} is unreadable (${(e as Error).message}); delete it to rebuild`);
    }
    if (st.metadata.format !== CACHE_FORMAT) throw new Error(`${path}: not a decoded-dataset cache (format ${st.metadata.format})`);
    const v = st.tensors.get('video');
    if (!v || v.dtype !== 'U8' || v.shape.length !== 5) throw new Error(`${path}: missing the U8 [N, C, T, H, W] "video" tensor`);
    const [n, C, T, H, W] = v.shape as [number, number, number, number, number];
    this.length = n;
    this.sampleShape = [C, T, H, W];
    this.bytes = v.bytes;
    this.captions = JSON.parse(st.metadata.captions ?? '[]') as string[];
    this.source = st.metadata.source ?? '';
    if (this.captions.length !== n) throw new Error(`${path}: ${this.captions.length} captions for ${n} clips`);
  }

  /** Checks that the cache holds clips of the shape training expects. */
  expectShape(shape: readonly number[], what: string): void {
    if (shape.join() !== this.sampleShape.join()) {
      throw new Error(`dataset cache holds clips of [${this.sampleShape}] but ${what} needs [${shape}]; rebuild the cache for this config`);
    }
  }

  async get(index: number, opts: { epoch: number; out: Float32Array }): Promise<{ caption: string; index: number }> {
    const per = opts.out.length;
    const base = index * per;
    for (let k = 0; k < per; k++) opts.out[k] = this.bytes[base + k]! / 127.5 - 1;
    return { caption: this.captions[index]!, index };
  }
}
