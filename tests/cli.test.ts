// End to end through the command-line tool on the software device: make a tiny synthetic dataset, train a
// micro STDiT for a few steps (checkpoints, metrics, EMA export), resume the run, sample MP4s from the
// export; and the CLI's error paths (missing prompt, missing CSV, a bad row, --skip-bad).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from './harness.js';
import { probeVideo } from '../data/video.js';
import { readMetrics } from '../cli/_metrics.js';

const s = suite('cli');
const here = dirname(fileURLToPath(import.meta.url));
const DIST = here.endsWith('dist') ? here : join(here, '..', 'dist');
const MAIN = join(DIST, 'cli', 'main.mjs');
const MOTION_PROBE = join(DIST, 'examples', 'motion-probe.mjs');

const MICRO = ['--num_frames', '4', '--image_size', '16,16', '--model.hidden_size', '32', '--model.depth', '2', '--model.num_heads', '2', '--text_encoder.caption_channels', '16', '--text_encoder.model_max_length', '8', '--batch_size', '2', '--log_every', '1', '--ckpt_every', '2'];

function cli(args: string[], script = MAIN): { code: number; out: string } {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', env: process.env, timeout: 600_000 });
  return { code: r.status ?? -1, out: `${r.stdout}\n${r.stderr}` };
}

function expectOk(r: { code: number; out: string }, what: string) {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}:\n${r.out.slice(-2000)}`);
}

s.test('make-dataset → train → resume → sample, on the software device', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-test-'));
  try {
    expectOk(cli(['make-dataset', '--out', join(dir, 'data'), '--count', '6', '--frames', '4', '--size', '16']), 'make-dataset');
    const csv = join(dir, 'data', 'train.csv');
    const train = (steps: number, extra: string[] = []) => cli(['train', '--data', csv, '--steps', String(steps), '--outputs', dir, '--run', 'run', ...MICRO, ...extra]);
    expectOk(train(2), 'train');
    const run = join(dir, 'run');
    if (!existsSync(join(run, 'ckpt-2.safetensors')) || readFileSync(join(run, 'latest'), 'utf8').trim() !== 'ckpt-2.safetensors') throw new Error('no checkpoint after 2 steps');
    const m = readMetrics(join(run, 'metrics.jsonl'));
    if (m.length !== 2 || !m.every((r) => typeof r.loss === 'number' && (r.loss as number) > 0)) throw new Error(`metrics ${JSON.stringify(m)}`);

    const other = train(3, ['--load', run, '--scheduler.prediction', 'eps']);
    if (other.code === 0 || !/cannot resume with this config:\s+scheduler\.prediction: the checkpoint was trained with "v", this run has "eps" \(pass --scheduler\.prediction v\)/.test(other.out)) {
      throw new Error(`resume with another prediction: ${other.code} ${other.out.slice(-800)}`);
    }
    const resumed = train(3, ['--load', run, '--export', join(dir, 'model.safetensors')]);
    expectOk(resumed, 'resumed train');
    if (!/resumed from .*ckpt-2\.safetensors at step 2/.test(resumed.out)) throw new Error(`resume not reported:\n${resumed.out}`);
    if (!existsSync(join(run, 'ckpt-3.safetensors'))) throw new Error('no checkpoint after the resumed step');

    const out = join(dir, 'samples');
    const r = cli(['sample', '--ckpt', join(dir, 'model.safetensors'), '--prompt', 'a red circle moving left on a dark background|a blue square', '--sampler', 'ddim', '--steps', '2', '--out', out]);
    expectOk(r, 'sample');
    const mp4 = join(out, '000-a-red-circle-moving-left-on-a-dark-background.mp4');
    const info = await probeVideo(mp4);
    if (info.frames !== 4 || info.width !== 16 || info.height !== 16) throw new Error(`sample video ${JSON.stringify(info)}`);
    if (!existsSync(join(out, '001-a-blue-square.png'))) throw new Error('no PNG strip');

    const ev = cli(['eval', '--ckpt', join(dir, 'model.safetensors'), '--count', '2', '--sampler', 'ddim', '--steps', '2', '--cfg-channels', 'eps', '--out', join(dir, 'eval')]);
    expectOk(ev, 'eval');
    if (!/motion \(expected→detected\): (\w+→\w+ \d+(, )?)+/.test(ev.out)) throw new Error(`eval prints no motion confusion:\n${ev.out}`);
    if (!/accuracy over 2 clips: colour \d+\.\d%, shape \d+\.\d%, motion \d+\.\d%, background \d+\.\d%; all attributes right \d+\.\d%/.test(ev.out)) throw new Error(`eval output:\n${ev.out}`);
    const report = JSON.parse(readFileSync(join(dir, 'eval', 'eval.json'), 'utf8')) as { n: number; color: number; sampler: { cfgChannels: string }; clips: { caption: string; detected: { background: unknown } }[] };
    if (report.n !== 2 || !(report.color >= 0 && report.color <= 1)) throw new Error(`eval.json ${JSON.stringify(report)}`);
    if (report.sampler.cfgChannels !== 'eps' || report.clips.length !== 2 || !report.clips.every((c) => /^a \w+ \w+ .* background$/.test(c.caption) && 'background' in c.detected)) {
      throw new Error(`eval.json per-clip results / sampler: ${JSON.stringify(report).slice(0, 600)}`);
    }

    // a new run initialised from the exported weights
    expectOk(cli(['train', '--data', csv, '--steps', '1', '--outputs', dir, '--run', 'run2', '--model.from_pretrained', join(dir, 'model.safetensors'), ...MICRO]), 'train from_pretrained');
    const wrong = cli(['train', '--data', csv, '--steps', '1', '--outputs', dir, '--run', 'run3', '--model.from_pretrained', join(dir, 'model.safetensors'), ...MICRO, '--model.hidden_size', '64']);
    if (wrong.code === 0 || !/model\.safetensors/.test(wrong.out)) throw new Error(`from_pretrained with another hidden size: ${wrong.code} ${wrong.out.slice(-800)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// examples/motion-probe on a micro model: a decoded cache with one clip per direction (written by train --cache),
// one training step, the probe's 16 loss rows, its mean and the time-reversal lines; and its usage error.
s.test('motion-probe: loss rows per direction and t, time reversal; usage error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-test-'));
  try {
    const usage = cli([], MOTION_PROBE);
    if (usage.code !== 2 || !/usage: motion-probe\.mjs <checkpoint> <dataset cache/.test(usage.out)) throw new Error(`motion-probe without arguments: ${usage.code} ${usage.out}`);
    expectOk(cli(['make-dataset', '--out', join(dir, 'data'), '--count', '4', '--frames', '4', '--size', '16', '--colors', 'red', '--shapes', 'circle', '--motions', 'left,right,up,down', '--backgrounds', 'dark']), 'make-dataset');
    const cache = join(dir, 'data.st.gz');
    const model = join(dir, 'model.safetensors');
    expectOk(cli(['train', '--data', join(dir, 'data', 'train.csv'), '--cache', cache, '--steps', '1', '--outputs', dir, '--run', 'run', '--export', model, ...MICRO]), 'train --cache');
    const r = cli([model, cache], MOTION_PROBE);
    expectOk(r, 'motion-probe');
    const rows = r.out.match(/^t=\s*\d+ (left|right|up|down) +( \d+\.\d{3}[* ] ){4}  swapped\/true − 1: -?\d+\.\d{2} %$/gm) ?? [];
    if (rows.length !== 16) throw new Error(`motion-probe printed ${rows.length} loss rows, expected 4 directions × 4 timesteps:\n${r.out}`);
    if (!/mean swapped\/true − 1 over clips and t: -?\d+\.\d{2} %/.test(r.out)) throw new Error(`no mean line:\n${r.out}`);
    const rev = r.out.match(/^t=\s*\d+: spread \d\.\d{2}e[-+]\d+, reversal \d+\.\d{2} /gm) ?? [];
    if (rev.length !== 3) throw new Error(`motion-probe printed ${rev.length} time-reversal lines, expected 3:\n${r.out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.test('clear errors: no prompt, missing CSV, bad row (and --skip-bad)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-test-'));
  try {
    const badCount = cli(['eval', '--count', 'abc']);
    if (badCount.code !== 2 || !/--count abc must be a non-negative integer/.test(badCount.out)) throw new Error(`eval --count abc: ${badCount.code} ${badCount.out}`);
    const badChannels = cli(['eval', '--cfg-channels', 'half']);
    if (badChannels.code !== 2 || !/--cfg-channels half: use all, eps, upstream/.test(badChannels.out)) throw new Error(`eval --cfg-channels half: ${badChannels.code} ${badChannels.out}`);
    const badColor = cli(['make-dataset', '--out', join(dir, 'x'), '--colors', 'red,pink']);
    if (badColor.code !== 2 || !/--colors red,pink: unknown pink; choose from red/.test(badColor.out)) throw new Error(`make-dataset --colors red,pink: ${badColor.code} ${badColor.out}`);
    const halfSize = cli(['make-dataset', '--out', join(dir, 'x'), '--width', '32']);
    if (halfSize.code !== 2 || !/give both --width and --height/.test(halfSize.out)) throw new Error(`make-dataset --width alone: ${halfSize.code} ${halfSize.out}`);
    const noPrompt = cli(['sample', '--ckpt', join(dir, 'none.safetensors')]);
    if (noPrompt.code !== 2 || !/--prompt/.test(noPrompt.out)) throw new Error(`sample without a prompt: ${noPrompt.code} ${noPrompt.out}`);
    const missing = cli(['train', '--data', join(dir, 'nope.csv'), '--steps', '1', ...MICRO]);
    if (missing.code === 0 || !/nope\.csv/.test(missing.out)) throw new Error(`missing CSV: ${missing.code} ${missing.out}`);
    expectOk(cli(['make-dataset', '--out', join(dir, 'data'), '--count', '4', '--frames', '4', '--size', '16']), 'make-dataset');
    const csv = join(dir, 'data', 'train.csv');
    writeFileSync(csv, `${readFileSync(csv, 'utf8').trimEnd()}\nvideos/missing.mp4,a green triangle staying still on a dark background,4,16,16,8\n`);
    const bad = cli(['train', '--data', csv, '--steps', '1', '--outputs', dir, ...MICRO]);
    if (bad.code === 0 || !/line 6 .*missing\.mp4/.test(bad.out)) throw new Error(`bad row: ${bad.code} ${bad.out.slice(-1500)}`);
    const skip = cli(['train', '--data', csv, '--steps', '1', '--outputs', dir, '--skip-bad', ...MICRO]);
    expectOk(skip, 'train --skip-bad');
    if (!/skipped 1 bad sample/.test(skip.out)) throw new Error(`skip not reported:\n${skip.out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
