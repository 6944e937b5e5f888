// Writes the built-in synthetic dataset: MP4 clips + train.csv (Open-Sora columns
// path,caption,num_frames,height,width,fps; paths relative to the CSV's folder) + specs.json.
//   node dist/cli/make-dataset.mjs --out data/synthetic --count 2000 --frames 8 --size 32 --seed 0
//   [--width W --height H] [--fps 8] [--colors red,blue] [--shapes …] [--motions …] [--backgrounds dark]
//   [--concurrency 8]
import { parseArgs } from 'node:util';
import {
  BACKGROUND_NAMES,
  COLOR_NAMES,
  FULL_VOCABULARY,
  MOTIONS,
  SHAPES,
  combinations,
  generateDataset,
  vocabularyText,
  type Vocabulary,
} from '../data/synthetic.js';

const HELP = `make-dataset: the built-in synthetic dataset of captioned videos (one coloured shape moving on a plain background)
  --out DIR            output folder (default data/synthetic): DIR/videos/NNNNNN.mp4, DIR/train.csv, DIR/specs.json
  --count N            clips (default 2000), balanced over the attribute combinations
  --frames T           frames per clip (default 8)
  --size S             square frames S×S (default 32); or --width W --height H (even sizes, for H.264)
  --fps F              frame rate written in the MP4 and the CSV (default 8)
  --seed N             seed (default 0); the same seed gives the same dataset
  --colors a,b …       subsets of the vocabulary (default: all): colors ${COLOR_NAMES.join(',')}
  --shapes …                                                   shapes ${SHAPES.join(',')}
  --motions …                                                  motions ${MOTIONS.join(',')}
  --backgrounds …                                              backgrounds ${BACKGROUND_NAMES.join(',')}
  --concurrency N      clips encoded at once (default 8)
Vocabulary — ${vocabularyText()}`;

function fail(msg: string): never {
  console.error(`make-dataset: ${msg}\n(see --help)`);
  process.exit(2);
}

function int(v: string | undefined, what: string, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) fail(`--${what} ${v} must be an integer ≥ ${min}`);
  return n;
}

function subset<T extends string>(v: string | undefined, what: string, all: readonly T[]): readonly T[] {
  if (v === undefined) return all;
  const items = v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  const bad = items.filter((s) => !(all as readonly string[]).includes(s));
  if (bad.length || !items.length) fail(`--${what} ${v}: ${bad.length ? `unknown ${bad.join(', ')}` : 'empty list'}; choose from ${all.join(', ')}`);
  return [...new Set(items)] as T[];
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      allowPositionals: false,
      options: {
        out: { type: 'string', default: 'data/synthetic' },
        count: { type: 'string' },
        frames: { type: 'string' },
        size: { type: 'string' },
        width: { type: 'string' },
        height: { type: 'string' },
        fps: { type: 'string' },
        seed: { type: 'string' },
        colors: { type: 'string' },
        shapes: { type: 'string' },
        motions: { type: 'string' },
        backgrounds: { type: 'string' },
        concurrency: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    return;
  }
  if ((values.width === undefined) !== (values.height === undefined)) fail('give both --width and --height, or --size');
  const size = int(values.size, 'size', 32, 8);
  const width = int(values.width, 'width', size, 8);
  const height = int(values.height, 'height', size, 8);
  const fpsText = values.fps ?? '8';
  const fps = Number(fpsText);
  if (!(fps > 0)) fail(`--fps ${fpsText} must be a positive number`);
  const vocabulary: Vocabulary = {
    colors: subset(values.colors, 'colors', FULL_VOCABULARY.colors),
    shapes: subset(values.shapes, 'shapes', FULL_VOCABULARY.shapes),
    motions: subset(values.motions, 'motions', FULL_VOCABULARY.motions),
    backgrounds: subset(values.backgrounds, 'backgrounds', FULL_VOCABULARY.backgrounds),
  };
  const count = int(values.count, 'count', 2000);
  const frames = int(values.frames, 'frames', 8);
  const seed = int(values.seed, 'seed', 0, 0);
  const combos = combinations(vocabulary).length;
  const t0 = performance.now();
  process.stderr.write(`writing ${count} clips of ${frames}×${height}×${width} at ${fps} fps over ${combos} combinations (seed ${seed}) to ${values.out}\n`);
  let last = 0;
  const r = await generateDataset({
    outDir: values.out!,
    count,
    frames,
    width,
    height,
    fps,
    seed,
    vocabulary,
    concurrency: int(values.concurrency, 'concurrency', 8),
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

main().catch((e) => {
  console.error(`make-dataset: ${(e as Error).message}`);
  process.exit(1);
});
