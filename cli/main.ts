// The command-line tool: train, sample, eval and make-dataset.
//   node dist/cli/main.mjs train  [--config tiny] [--steps N] [--data my.csv] [--<config key> value …]
//   node dist/cli/main.mjs sample [--ckpt file] --prompt "a red circle moving left on a dark background"
//   node dist/cli/main.mjs eval   [--ckpt file] [--count N]
//   node dist/cli/main.mjs make-dataset --out data/synthetic --count 2000
// The device comes from WEBGPU_DEVICE (auto: GPU, else llvmpipe, else SwiftShader).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Gpu } from '../engine/gpu.js';
import { highPrecisionUnavailable } from '../engine/ops/matmul_f16x3.js';
import { latentShape, tokensPerSample, type TrainConfig } from '../configs/types.js';
import { resumeConflicts } from '../configs/index.js';
import { DataLoader, VideoDataset, type SampleSource } from '../data/dataset.js';
import { CachedDataset, writeDatasetCache } from '../data/cache.js';
import { BACKGROUND_NAMES, COLOR_NAMES, FULL_VOCABULARY, MOTIONS, SHAPES, combinations, describe, generateDataset, vocabularyText, type Vocabulary } from '../data/synthetic.js';
import { evaluate, judge, type Detected } from '../data/judge.js';
import { frameStrip, writePng, writeVideo } from '../data/video.js';
import { SAMPLERS, type SamplerKind } from '../models/diffusion/samplers.js';
import { helpText, parseCli, UsageError, type CliSpec } from './_args.js';
import { loadCheckpoint, resolveCheckpoint, saveRunCheckpoint } from './_checkpoint.js';
import { MetricsLog } from './_metrics.js';
import { Progress } from './_progress.js';
import { embeddedCheckpoint, loadForSampling, sampleVideos, saveInferenceWeights, toFrames } from './_sampling.js';
import { Trainer } from './_trainer.js';

const SAMPLE_OPTIONS = {
  ckpt: { type: 'string', description: 'checkpoint: an inference file, a training checkpoint or a run folder (default: the embedded checkpoints/tiny.safetensors)' },
  steps: { type: 'string', description: 'sampler steps (default: iddpm 100, ddim 100, dpm-solver 20)' },
  cfg: { type: 'string', description: 'classifier-free guidance scale (default 7; 1 = off)' },
  'cfg-channels': { type: 'string', description: "guided channels: 'all', 'eps' (the noise prediction, not the learned variance) or 'upstream' (the first 3, as Open-Sora)", default: 'all' },
  sampler: { type: 'string', description: `one of ${SAMPLERS.join(', ')}`, default: 'iddpm' },
  seed: { type: 'string', description: 'noise seed', default: '0' },
  'num-frames': { type: 'string', description: 'frames to generate (default: as trained)' },
  'image-size': { type: 'string', description: 'H,W to generate (default: as trained)' },
  weights: { type: 'string', description: "for training checkpoints: 'ema' or 'model'", default: 'ema' },
  dtype: { type: 'string', description: "'f32' or 'f16' (GPU with shader-f16)", default: 'f32' },
  out: { type: 'string', description: 'output folder', default: 'outputs/samples' },
} as const;

const SPEC: CliSpec = {
  program: 'main.mjs',
  description: 'Train and sample video diffusion transformers (STDiT) on WebGPU.',
  commands: {
    train: {
      description: 'train a model (default config: the small STDiT on the built-in synthetic dataset)',
      options: {
        steps: { type: 'string', description: 'stop after this many optimizer steps (default: epochs × batches)' },
        'time-limit': { type: 'string', description: 'stop (with a checkpoint) after this many minutes of training' },
        data: { type: 'string', description: 'a CSV of videos (path,caption[,num_frames,height,width,fps]) instead of the config dataset' },
        'skip-bad': { type: 'boolean', description: 'skip (and count) missing, corrupt or too-short videos instead of stopping' },
        run: { type: 'string', description: 'run folder name under outputs (default: <config>-<date>)' },
        export: { type: 'string', description: 'at the end, write the EMA weights as an inference file here (f16)' },
        cache: { type: 'string', description: 'decoded-dataset cache file: used when it exists, else written from the dataset first (small datasets; no ffmpeg needed once cached)' },
      },
    },
    sample: {
      description: 'generate one MP4 (and a PNG frame strip) per prompt',
      config: false,
      options: {
        prompt: { type: 'string', short: 'p', description: "prompt(s); several separated by '|'" },
        'prompt-file': { type: 'string', description: 'a text file with one prompt per line' },
        ...SAMPLE_OPTIONS,
      },
    },
    eval: {
      description: 'sample one clip per caption of the synthetic vocabulary and score colour, shape and motion from pixels',
      config: false,
      options: {
        count: { type: 'string', description: 'captions to evaluate (default: all combinations)' },
        batch: { type: 'string', description: 'clips sampled at once', default: '16' },
        ...SAMPLE_OPTIONS,
      },
    },
    'make-dataset': {
      description: `write the built-in synthetic dataset: DIR/videos/NNNNNN.mp4, DIR/train.csv (Open-Sora columns), DIR/specs.json; clips balanced over the attribute combinations (${vocabularyText()})`,
      config: false,
      options: {
        out: { type: 'string', description: 'folder', default: 'data/synthetic' },
        count: { type: 'string', description: 'clips', default: '2048' },
        frames: { type: 'string', description: 'frames per clip', default: '8' },
        size: { type: 'string', description: 'square frames of this many pixels (or --width and --height; even, for H.264)', default: '32' },
        width: { type: 'string', description: 'frame width (with --height)' },
        height: { type: 'string', description: 'frame height (with --width)' },
        fps: { type: 'string', description: 'frame rate written in the MP4s and the CSV', default: '8' },
        seed: { type: 'string', description: 'seed: the same seed gives the same dataset', default: '0' },
        colors: { type: 'string', description: `a subset of ${COLOR_NAMES.join(',')}` },
        shapes: { type: 'string', description: `a subset of ${SHAPES.join(',')}` },
        motions: { type: 'string', description: `a subset of ${MOTIONS.join(',')}` },
        backgrounds: { type: 'string', description: `a subset of ${BACKGROUND_NAMES.join(',')}` },
        concurrency: { type: 'string', description: 'clips encoded at once', default: '8' },
      },
    },
  },
};

const int = (v: string | boolean | undefined, what: string, dflt?: number): number | undefined => {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${what} ${v} must be a non-negative integer`);
  return n;
};
const num = (v: string | boolean | undefined, what: string): number | undefined => {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${what} ${v} must be a number`);
  return n;
};

/** The synthetic dataset's CSV for a config, generated on first use. */
async function syntheticCsv(c: TrainConfig, log: (s: string) => void): Promise<string> {
  const [H, W] = c.image_size;
  const dir = c.dataset.data_path || join(c.outputs, 'datasets', `synthetic-${c.num_frames}x${H}x${W}-${c.dataset.num_samples}`);
  const csv = join(dir, 'train.csv');
  if (existsSync(csv)) return csv;
  log(`generating the synthetic dataset (${c.dataset.num_samples} clips of ${c.num_frames}×${H}×${W}) in ${dir}`);
  await generateDataset({ outDir: dir, count: c.dataset.num_samples, frames: c.num_frames, width: W, height: H, seed: c.seed });
  return csv;
}

async function train(c: TrainConfig, o: Record<string, string | boolean | undefined>): Promise<void> {
  const gpu = await Gpu.open({ preferLlvmpipe: true });
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(`device: ${gpu.info.backend} (${gpu.info.adapter}); config ${c.name}, dtype ${c.dtype}`);
  if (c.matmul_precision === 'high' && c.dtype === 'f32') {
    const why = highPrecisionUnavailable(gpu);
    log(why ? `matmul_precision 'high': ${why} on this device; f32 matmuls run the exact kernels` : `matmul_precision 'high': f32 matmuls from three f16 products on tensor cores`);
  }
  const cache = typeof o.cache === 'string' ? o.cache : null;
  let dataset: SampleSource;
  if (cache && existsSync(cache)) {
    const cached = new CachedDataset(cache);
    cached.expectShape([3, c.num_frames, ...c.image_size], `config ${c.name}`);
    log(`dataset: ${cached.length} decoded clips from ${cache} (source ${cached.source})`);
    dataset = cached;
  } else {
    const csv = typeof o.data === 'string' ? o.data : c.dataset.type === 'csv' ? c.dataset.data_path : await syntheticCsv(c, log);
    const videos = await VideoDataset.open(csv, {
      numFrames: c.num_frames,
      frameInterval: c.frame_interval,
      imageSize: c.image_size,
      randomFlip: !cache && c.dataset.type === 'csv',
      seed: c.seed,
      onBadSample: o['skip-bad'] ? 'skip' : 'error',
      // building a cache decodes every file anyway: no separate probe pass
      validate: !cache,
    });
    if (videos.skipped.length) log(`skipped ${videos.skipped.length} bad samples:\n  ${videos.skipped.map((s) => s.reason).join('\n  ')}`);
    dataset = videos;
    if (cache) {
      log(`decoding ${videos.length} clips into the cache ${cache}`);
      await writeDatasetCache(cache, videos);
      dataset = new CachedDataset(cache);
    }
  }
  const loader = new DataLoader(dataset, { batchSize: c.batch_size, shuffle: true, seed: c.seed, dropLast: true, prefetch: 4 });

  let trainer: Trainer;
  let runDir: string;
  if (c.load) {
    const path = resolveCheckpoint(c.load);
    if (!path) throw new Error(`${c.load} holds no checkpoint to resume from`);
    trainer = new Trainer(gpu, c);
    const { all, trainable } = trainer.checkpointShapes();
    const ck = loadCheckpoint(path, all, trainable);
    const conflicts = resumeConflicts(ck.config, c);
    if (conflicts.length) throw new Error(`${path}: cannot resume with this config:\n  ${conflicts.join('\n  ')}`);
    trainer.restore(ck);
    loader.resume({ epoch: ck.epoch, batch: ck.batchInEpoch });
    runDir = resolve(path, '..');
    log(`resumed from ${path} at step ${ck.step} (epoch ${ck.epoch}, batch ${ck.batchInEpoch})`);
  } else {
    trainer = new Trainer(gpu, c);
    runDir = join(c.outputs, typeof o.run === 'string' ? o.run : `${c.name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  }
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'config.json'), JSON.stringify(c, null, 2));
  const metrics = new MetricsLog(join(runDir, 'metrics.jsonl'));
  const total = int(o.steps, 'steps') ?? c.epochs * loader.batchesPerEpoch;
  const tokens = tokensPerSample(c) * c.batch_size;
  const progress = new Progress({ total, every: c.log_every, startStep: trainer.step });
  log(`run folder ${runDir}; ${dataset.length} samples, ${loader.batchesPerEpoch} batches/epoch, ${total} steps`);

  const checkpoint = async () => {
    const st = loader.state();
    const p = saveRunCheckpoint(runDir, await trainer.checkpointData({ epoch: st.epoch, batchInEpoch: st.batch }), c.keep_ckpts);
    progress.log(`checkpoint ${p}`);
  };
  let pending: { step: number; loss: Promise<number>; t0: number } | null = null;
  // Step time = time between two steps' losses arriving (throughput). Steps overlap (the next one is encoded
  // while the GPU runs this one), so a step's own start-to-loss time is up to two steps long; it is used only
  // for the first step after a pause (start, checkpoint).
  let lastDone = 0;
  const settle = async () => {
    if (!pending) return;
    const loss = await pending.loss;
    const now = performance.now();
    const dt = (now - (lastDone || pending.t0)) / 1000;
    lastDone = now;
    progress.update({ step: pending.step, loss, stepTime: dt, samples: c.batch_size, tokens, gpuBytes: gpu.pool.stats.inUseBytes });
    if (pending.step % c.log_every === 0 || pending.step === total) {
      metrics.write({ step: pending.step, loss, step_time: dt, samples_per_s: c.batch_size / dt, tokens_per_s: tokens / dt, gpu_bytes: gpu.pool.stats.inUseBytes });
    }
    pending = null;
  };
  const limitMin = num(o['time-limit'], 'time-limit');
  const deadline = limitMin === undefined ? Infinity : performance.now() + limitMin * 60_000;
  while (trainer.step < total) {
    if (performance.now() > deadline) {
      progress.log(`time limit of ${limitMin} min reached at step ${trainer.step}`);
      break;
    }
    const batch = await loader.next();
    const t0 = performance.now();
    const r = trainer.trainStep({ latents: batch.video, captions: batch.captions });
    await settle();
    pending = { step: r.step, loss: r.loss, t0 };
    if (r.step % c.ckpt_every === 0) {
      await settle();
      await checkpoint();
      lastDone = 0;
    }
  }
  await settle();
  if (trainer.step % c.ckpt_every !== 0) await checkpoint();
  progress.finish();
  const stats = await trainer.optimizer.stats();
  log(`done: step ${trainer.step}, loss scale ${stats.lossScale}, skipped steps ${stats.skipped}`);
  if (typeof o.export === 'string') {
    const data = await trainer.checkpointData({ epoch: 0, batchInEpoch: 0 });
    const weights = new Map(data.params);
    for (const [k, v] of data.ema ?? []) weights.set(k, v);
    saveInferenceWeights(o.export, weights, { ...c, load: '', model: { ...c.model, from_pretrained: '' } }, 'F16', { step: String(trainer.step) });
    log(`exported EMA weights to ${o.export}`);
  }
  metrics.close();
  await loader.close();
}

function sampleOptions(o: Record<string, string | boolean | undefined>) {
  const sampler = String(o.sampler) as SamplerKind;
  if (!SAMPLERS.includes(sampler)) throw new UsageError(`--sampler ${sampler}: use one of ${SAMPLERS.join(', ')}`);
  const size = typeof o['image-size'] === 'string' ? (o['image-size'].split(',').map(Number) as [number, number]) : undefined;
  if (size && (size.length !== 2 || size.some((v) => !Number.isInteger(v) || v < 1))) throw new UsageError(`--image-size ${o['image-size']} must be H,W`);
  const dtype = String(o.dtype);
  if (dtype !== 'f32' && dtype !== 'f16') throw new UsageError(`--dtype ${dtype}: use f32 or f16`);
  const channels = ['all', 'eps', 'upstream'] as const;
  const guided = channels.find((c) => c === o['cfg-channels']) ?? null;
  if (!guided) throw new UsageError(`--cfg-channels ${o['cfg-channels']}: use ${channels.join(', ')}`);
  const weights = o.weights === 'model' ? 'model' : 'ema';
  return {
    ckpt: typeof o.ckpt === 'string' ? (resolveCheckpoint(o.ckpt) ?? o.ckpt) : embeddedCheckpoint(),
    load: { weights, numFrames: int(o['num-frames'], 'num-frames'), imageSize: size } as const,
    run: { sampler, steps: int(o.steps, 'steps'), cfg: num(o.cfg, 'cfg') ?? 7, cfgChannels: guided, seed: int(o.seed, 'seed', 0), dtype } as const,
    out: String(o.out),
  };
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);

async function sampleCmd(o: Record<string, string | boolean | undefined>): Promise<void> {
  const prompts: string[] = [];
  if (typeof o.prompt === 'string') prompts.push(...o.prompt.split('|').map((s) => s.trim()).filter(Boolean));
  if (typeof o['prompt-file'] === 'string') prompts.push(...readFileSync(o['prompt-file'], 'utf8').split('\n').map((s) => s.trim()).filter(Boolean));
  if (!prompts.length) throw new UsageError('give --prompt "…" or --prompt-file file.txt (e.g. --prompt "a red circle moving left on a dark background")');
  const s = sampleOptions(o);
  const gpu = await Gpu.open({ preferLlvmpipe: true });
  const m = loadForSampling(gpu, s.ckpt, s.load);
  process.stderr.write(`device: ${gpu.info.backend} (${gpu.info.adapter}); model ${s.ckpt}; ${prompts.length} prompt(s), sampler ${s.run.sampler}\n`);
  const progress = new Progress({ total: s.run.steps ?? (s.run.sampler === 'dpm-solver' ? 20 : 100) });
  const t0 = performance.now();
  const latents = await sampleVideos(gpu, m, prompts, { ...s.run, progress: (k) => progress.update({ step: k }) });
  progress.finish();
  const [C, T, H, W] = latentShape(m.config);
  mkdirSync(s.out, { recursive: true });
  for (const [b, p] of prompts.entries()) {
    const frames = toFrames(latents, [prompts.length, C, T, H, W], b);
    const base = join(s.out, `${String(b).padStart(3, '0')}-${slug(p)}`);
    await writeVideo(`${base}.mp4`, frames, { width: W, height: H, fps: 8 });
    const strip = frameStrip(frames, W, H);
    writePng(`${base}.png`, strip.rgb, strip.width, strip.height);
    console.log(`${base}.mp4  (${p})`);
  }
  process.stderr.write(`sampled ${prompts.length} clip(s) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

async function evalCmd(o: Record<string, string | boolean | undefined>): Promise<void> {
  const s = sampleOptions(o);
  const gpu = await Gpu.open({ preferLlvmpipe: true });
  const m = loadForSampling(gpu, s.ckpt, s.load);
  const all = combinations();
  const count = Math.min(int(o.count, 'count') ?? all.length, all.length);
  // an even spread over the combinations when evaluating a subset
  const captions = Array.from({ length: count }, (_, i) => describe(all[Math.floor((i * all.length) / count)]!));
  const batch = Math.max(1, int(o.batch, 'batch', 16)!);
  const [C, T, H, W] = latentShape(m.config);
  const results = [];
  process.stderr.write(`device: ${gpu.info.backend} (${gpu.info.adapter}); evaluating ${count} captions with ${s.ckpt}\n`);
  const progress = new Progress({ total: count });
  for (let i = 0; i < count; i += batch) {
    const part = captions.slice(i, i + batch);
    const latents = await sampleVideos(gpu, m, part, { ...s.run, seed: (s.run.seed ?? 0) + i });
    for (const [b, cap] of part.entries()) {
      const r = judge(toFrames(latents, [part.length, C, T, H, W], b), cap);
      results.push(r);
      if (!r.all) progress.log(`miss: "${cap}" → ${detectedText(r.detected)}`);
    }
    progress.update({ step: Math.min(count, i + batch) });
  }
  progress.finish();
  const e = evaluate(results);
  const line = `accuracy over ${count} clips: colour ${pct(e.color)}, shape ${pct(e.shape)}, motion ${pct(e.motion)}, background ${pct(e.background)}; all attributes right ${pct(e.all)}`;
  console.log(confusionText(results.map((r) => [r.expected.motion, r.detected.motion ?? 'none'])));
  console.log(line);
  mkdirSync(s.out, { recursive: true });
  const clips = results.map((r, i) => ({
    caption: captions[i],
    ok: { color: r.color, shape: r.shape, motion: r.motion, background: r.background },
    detected: { color: r.detected.color, shape: r.detected.shape, motion: r.detected.motion, background: r.detected.background, displacement: r.detected.displacement.map((v) => +v.toFixed(2)) },
  }));
  writeFileSync(join(s.out, 'eval.json'), JSON.stringify({ checkpoint: s.ckpt, sampler: s.run, count, ...e, clips }, null, 2));
}

/** One line of what the judge saw in a clip. */
function detectedText(d: Detected): string {
  const [dx, dy] = d.displacement;
  return `${d.color ?? 'no'} ${d.shape ?? 'object'}, motion ${d.motion ?? '?'} (moved ${dx!.toFixed(1)}, ${dy!.toFixed(1)} px), ${d.background ?? '?'} background`;
}

/** Expected → detected counts, e.g. for motion: "motion: left→left 30, left→right 4, …". */
function confusionText(pairs: [string, string][]): string {
  const counts = new Map<string, number>();
  for (const [want, got] of pairs) counts.set(`${want}→${got}`, (counts.get(`${want}→${got}`) ?? 0) + 1);
  return `motion (expected→detected): ${[...counts].sort().map(([k, n]) => `${k} ${n}`).join(', ')}`;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** A comma-separated subset of a vocabulary list (all of it when absent). */
function subset<T extends string>(v: string | boolean | undefined, what: string, all: readonly T[]): readonly T[] {
  if (v === undefined || v === '') return all;
  const items = String(v).split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);
  const bad = items.filter((x) => !(all as readonly string[]).includes(x));
  if (bad.length || !items.length) throw new UsageError(`--${what} ${v}: ${bad.length ? `unknown ${bad.join(', ')}` : 'empty list'}; choose from ${all.join(', ')}`);
  return [...new Set(items)] as T[];
}

async function makeDataset(o: Record<string, string | boolean | undefined>): Promise<void> {
  if ((o.width === undefined) !== (o.height === undefined)) throw new UsageError('give both --width and --height, or --size');
  const size = int(o.size, 'size')!;
  const width = int(o.width, 'width', size)!;
  const height = int(o.height, 'height', size)!;
  for (const [k, v] of Object.entries({ size, width, height })) if (v < 8) throw new UsageError(`--${k} ${v} must be ≥ 8`);
  const fps = num(o.fps, 'fps')!;
  if (!(fps > 0)) throw new UsageError(`--fps ${o.fps} must be a positive number`);
  const count = int(o.count, 'count')!;
  const frames = int(o.frames, 'frames')!;
  const concurrency = int(o.concurrency, 'concurrency')!;
  for (const [k, v] of Object.entries({ count, frames, concurrency })) if (v < 1) throw new UsageError(`--${k} ${v} must be ≥ 1`);
  const vocabulary: Vocabulary = {
    colors: subset(o.colors, 'colors', FULL_VOCABULARY.colors),
    shapes: subset(o.shapes, 'shapes', FULL_VOCABULARY.shapes),
    motions: subset(o.motions, 'motions', FULL_VOCABULARY.motions),
    backgrounds: subset(o.backgrounds, 'backgrounds', FULL_VOCABULARY.backgrounds),
  };
  const seed = int(o.seed, 'seed')!;
  const t0 = performance.now();
  process.stderr.write(`writing ${count} clips of ${frames}×${height}×${width} at ${fps} fps over ${combinations(vocabulary).length} combinations (seed ${seed}) to ${o.out}\n`);
  let last = 0;
  const r = await generateDataset({
    outDir: String(o.out),
    count,
    frames,
    width,
    height,
    fps,
    seed,
    vocabulary,
    concurrency,
    onProgress: (done, total) => {
      const now = performance.now();
      if (done === total || now - last > 2000) {
        last = now;
        process.stderr.write(`  ${done}/${total}\n`);
      }
    },
  });
  console.log(`wrote ${r.rows.length} clips and ${r.csvPath} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

async function main(argv: string[]): Promise<number> {
  let cli;
  try {
    cli = parseCli(argv, SPEC);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n(see --help)`);
      return 2;
    }
    throw e;
  }
  if (cli.help) {
    console.log(helpText(SPEC, cli.command, cli.config));
    return 0;
  }
  try {
    if (cli.command === 'train') await train(cli.config!, cli.options);
    else if (cli.command === 'sample') await sampleCmd(cli.options);
    else if (cli.command === 'eval') await evalCmd(cli.options);
    else if (cli.command === 'make-dataset') await makeDataset(cli.options);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n(see --help)`);
      return 2;
    }
    throw e;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? `error: ${e.message}` : e);
    process.exit(1);
  },
);
