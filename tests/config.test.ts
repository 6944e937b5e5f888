// Training configs (registry, type-checked overrides, validation, JSON configs), CLI argument parsing,
// the progress display (line mode exact text, bar mode) and the JSONL metrics log. CPU only.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, assertThrows } from './harness.js';
import { applyOverrides, configFromJson, configFromStored, getConfig, resumeConflicts, latentShape, tokensPerSample, validateConfig } from '../configs/index.js';
import { helpText, parseCli, UsageError, type CliSpec } from '../cli/_args.js';
import { formatBytes, formatCount, formatDuration, Progress } from '../cli/_progress.js';
import { MetricsLog, readMetrics } from '../cli/_metrics.js';

function eq(got: unknown, want: unknown, what: string): void {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, expected ${w}`);
}

const cfg = suite('config');

cfg.test('registry: both configs valid; Open-Sora 16x256 fields; fresh copies', () => {
  const s = validateConfig(getConfig('stdit-16x256'));
  eq([s.num_frames, s.frame_interval, s.image_size, s.dtype, s.batch_size, s.lr, s.grad_clip, s.ema_decay, s.epochs, s.log_every, s.ckpt_every, s.seed, s.outputs],
    [16, 3, [256, 256], 'f16', 8, 2e-5, 1.0, 0.9999, 1000, 10, 1000, 42, 'outputs'], 'stdit-16x256 top level');
  eq([s.model.type, s.model.hidden_size, s.model.depth, s.model.num_heads, s.model.patch_size, s.model.space_scale, s.model.time_scale, s.model.enable_flashattn, s.model.grad_checkpoint],
    ['STDiT-XL/2', 1152, 28, 16, [1, 2, 2], 0.5, 1.0, true, true], 'stdit-16x256 model');
  eq([s.text_encoder.type, s.text_encoder.model_max_length, s.text_encoder.caption_channels], ['t5', 120, 4096], 'text encoder');
  eq([s.vae.latent_channels, s.vae.downsample, s.scheduler.type, s.scheduler.timestep_respacing], [4, [1, 8, 8], 'iddpm', ''], 'vae/scheduler');
  eq(latentShape(s), [4, 16, 32, 32], 'latent shape');
  eq(tokensPerSample(s), 4096, 'tokens per sample');
  const t = validateConfig(getConfig('tiny'));
  eq([t.num_frames, t.image_size, t.vae.type, t.vae.latent_channels, t.text_encoder.caption_channels, t.text_encoder.model_max_length, t.model.patch_size, t.dataset.type],
    [8, [32, 32], 'identity', 3, 64, 16, [1, 2, 2], 'synthetic'], 'tiny');
  eq(tokensPerSample(t), 8 * 16 * 16, 'tiny tokens');
  t.model.depth = 99;
  t.image_size[0] = 7;
  eq([getConfig('tiny').model.depth, getConfig('tiny').image_size[0]], [4, 32], 'getConfig returns a fresh copy');
});

cfg.test('registry: unknown name lists the registered configs', async () => {
  await assertThrows(() => getConfig('stdit-huge'), /unknown config "stdit-huge".*tiny.*stdit-16x256/, 'unknown config');
});

cfg.test('overrides: numbers, nested, arrays, booleans, strings, choices; input untouched', () => {
  const base = getConfig('tiny');
  const before = JSON.stringify(base);
  const c = applyOverrides(base, {
    lr: '1e-4',
    'model.depth': '6',
    image_size: '64, 48',
    'model.grad_checkpoint': 'true',
    'model.enable_flashattn': false,
    'model.patch_size': [1, 4, 4],
    outputs: 'runs/x',
    dtype: 'f16',
    'batch-size': 3, // dashes read as underscores
    'model.space_scale': '-0.5',
  });
  eq([c.lr, c.model.depth, c.image_size, c.model.grad_checkpoint, c.model.enable_flashattn, c.model.patch_size, c.outputs, c.dtype, c.batch_size, c.model.space_scale],
    [1e-4, 6, [64, 48], true, false, [1, 4, 4], 'runs/x', 'f16', 3, -0.5], 'overridden values');
  eq(typeof c.lr, 'number', 'lr type');
  eq(JSON.stringify(base), before, 'the input config is unchanged');
  // later overrides win; the pair-list form keeps order
  eq(applyOverrides(base, [['lr', '1'], ['lr', '2']]).lr, 2, 'ordered pairs');
});

cfg.test('overrides: unknown key, wrong type, wrong list length, bad choice, group → clear errors', async () => {
  const base = getConfig('tiny');
  const e = await assertThrows(() => applyOverrides(base, { 'model.dept': '4' }), /unknown config key "model\.dept"\. Did you mean --model\.depth/, 'typo');
  for (const k of ['lr (number)', 'model.depth (number)', 'image_size (number[2])', "dtype ('f32' | 'f16')", 'model.grad_checkpoint (boolean)']) {
    if (!e.message.includes(k)) throw new Error(`unknown-key error should list "${k}": ${e.message}`);
  }
  await assertThrows(() => applyOverrides(base, { depth: '4' }), /unknown config key "depth"\. Did you mean --model\.depth/, 'leaf name without group');
  await assertThrows(() => applyOverrides(base, { 'lr.x': '4' }), /unknown config key "lr\.x"/, 'path through a leaf');
  await assertThrows(() => applyOverrides(base, { lr: 'fast' }), /"lr" is a number; cannot set it to "fast"/, 'number');
  await assertThrows(() => applyOverrides(base, { lr: '' }), /"lr" is a number/, 'empty number');
  await assertThrows(() => applyOverrides(base, { lr: 'Infinity' }), /"lr" is a number/, 'non-finite number');
  await assertThrows(() => applyOverrides(base, { 'model.pred_sigma': 'maybe' }), /"model\.pred_sigma" is a boolean; cannot set it to "maybe" \(use true or false\)/, 'boolean');
  await assertThrows(() => applyOverrides(base, { 'model.pred_sigma': 1 }), /is a boolean/, 'number for boolean');
  await assertThrows(() => applyOverrides(base, { outputs: 3 }), /"outputs" is a string/, 'number for string');
  await assertThrows(() => applyOverrides(base, { image_size: '32' }), /"image_size" is a list of 2 numbers \(e\.g\. --image_size 32,32\); got 1/, 'list length');
  await assertThrows(() => applyOverrides(base, { image_size: '32,x' }), /"image_size" is a number; cannot set it to "x"/, 'list element');
  await assertThrows(() => applyOverrides(base, { lr: [1, 2] }), /"lr" is a number, not a list/, 'list for scalar');
  await assertThrows(() => applyOverrides(base, { dtype: 'bf16' }), /"dtype" must be one of 'f32', 'f16'; got "bf16"/, 'choice');
  await assertThrows(() => applyOverrides(base, { model: 'big' }), /"model" is a group; set its fields instead: --model\.type, --model\.arch/, 'group');
});

cfg.test('validateConfig lists every inconsistency at once', async () => {
  const c = applyOverrides(getConfig('tiny'), { 'model.depth': 0, 'model.hidden_size': 130, image_size: '31,32', ema_decay: 1.5, 'model.pred_sigma': false });
  const e = await assertThrows(() => validateConfig(c), /invalid config "tiny"/, 'validate');
  for (const s of ['model.depth = 0', 'not divisible by model.num_heads 4', 'image_size[0] (height) = 31 is not divisible by vae.downsample[1] × model.patch_size[1] = 2', 'ema_decay = 1.5', 'model.pred_sigma (false) and scheduler.learn_sigma (true)']) {
    if (!e.message.includes(s)) throw new Error(`validation error should mention "${s}": ${e.message}`);
  }
});

cfg.test('configFromJson: base + nested overrides, checked and validated; stored config round trip', async () => {
  const c = configFromJson({ base: 'tiny', lr: 3e-4, model: { depth: 6, hidden_size: 192 }, image_size: [64, 64] });
  eq([c.lr, c.model.depth, c.model.hidden_size, c.image_size, c.model.num_heads], [3e-4, 6, 192, [64, 64], 4], 'json config');
  const full = applyOverrides(getConfig('stdit-16x256'), { batch_size: 2 });
  eq(configFromJson(JSON.parse(JSON.stringify(full))), full, 'a stored full config comes back equal');
  await assertThrows(() => configFromJson({ lr: 1 }), /"base" \(or "name"\) must name a registered config \(tiny, stdit-16x256\)/, 'no base');
  await assertThrows(() => configFromJson({ base: 'tiny', model: { depth: 'deep' } }, 'x.json'), /x\.json: config key "model\.depth" is a number/, 'bad field');
  await assertThrows(() => configFromJson({ base: 'tiny', model: { num_heads: 5 } }), /not divisible by model\.num_heads 5/, 'validated');
});

cfg.test("matmul_precision: 'highest' by default and for configs stored without it; 'high' by override; bad values refused", async () => {
  eq([getConfig('tiny').matmul_precision, getConfig('stdit-16x256').matmul_precision], ['highest', 'highest'], 'registered defaults');
  const stored = JSON.parse(JSON.stringify(getConfig('tiny'))) as Record<string, unknown>;
  delete stored.matmul_precision; // a config.json / checkpoint metadata written before the key existed
  eq(configFromJson(stored).matmul_precision, 'highest', 'old stored config');
  eq(applyOverrides(getConfig('tiny'), { 'matmul-precision': 'high' }).matmul_precision, 'high', '--matmul-precision high');
  await assertThrows(() => applyOverrides(getConfig('tiny'), { matmul_precision: 'medium' }), /"matmul_precision" must be one of 'highest', 'high'/, 'bad choice');
  await assertThrows(() => validateConfig({ ...getConfig('tiny'), matmul_precision: 'low' as 'high' }), /matmul_precision = low must be 'highest' or 'high'/, 'validated');
});

cfg.test("scheduler.prediction: 'v' for tiny, 'eps' for upstream's config and for checkpoints stored without it; overrides; bad values refused", async () => {
  eq([getConfig('tiny').scheduler.prediction, getConfig('stdit-16x256').scheduler.prediction], ['v', 'eps'], 'registered defaults');
  const stored = JSON.parse(JSON.stringify(getConfig('tiny'))) as { scheduler: Record<string, unknown>; model: Record<string, unknown> };
  delete stored.scheduler.prediction;
  delete stored.model.temporal_pos;
  eq([configFromStored(stored).scheduler.prediction, configFromStored(stored).model.temporal_pos], ['eps', 'first-block'], 'checkpoint config written before the keys');
  eq(configFromJson(stored).scheduler.prediction, 'v', 'a user config file without the key takes its base config\'s default');
  eq(resumeConflicts(stored, getConfig('tiny')), [
    'model.temporal_pos: the checkpoint was trained with "first-block", this run has "input" (pass --model.temporal_pos first-block)',
    'scheduler.prediction: the checkpoint was trained with "eps", this run has "v" (pass --scheduler.prediction eps)',
  ], 'resume conflicts');
  eq(resumeConflicts(getConfig('tiny'), getConfig('tiny')), [], 'same config resumes');
  eq(resumeConflicts(null, getConfig('tiny')), [], 'checkpoint without config');
  eq(applyOverrides(getConfig('tiny'), { 'scheduler.prediction': 'v' }).scheduler.prediction, 'v', '--scheduler.prediction v');
  await assertThrows(() => applyOverrides(getConfig('tiny'), { 'scheduler.prediction': 'x0' }), /"scheduler\.prediction" must be one of 'eps', 'v'/, 'bad choice');
  await assertThrows(() => validateConfig({ ...getConfig('tiny'), scheduler: { ...getConfig('tiny').scheduler, prediction: 'x0' as 'v' } }), /scheduler\.prediction = x0 must be 'eps' or 'v'/, 'validated');
  await assertThrows(() => validateConfig({ ...getConfig('tiny'), scheduler: { ...getConfig('tiny').scheduler, prediction: 'v', loss_weighting: 'v' } }), /with scheduler\.prediction 'v' the MSE already is the v-MSE/, 'v weighting on v prediction');
});

// ---- CLI arguments ----------------------------------------------------------------------------------------
const spec: CliSpec = {
  program: 'dit',
  description: 'train and sample video DiTs',
  commands: {
    train: { description: 'train a model', options: { steps: { type: 'string', description: 'stop after N steps' }, resume: { type: 'boolean', short: 'r', description: 'resume from the latest checkpoint' } } },
    sample: { description: 'sample videos', options: { prompt: { type: 'string', short: 'p', description: 'caption', default: 'a cat' } } },
    devices: { description: 'list devices', config: false },
  },
};

const args = suite('cli-args');

args.test('command, options and config overrides in any order', () => {
  const p = parseCli(['--lr', '1e-4', 'train', '--config', 'tiny', '--model.depth', '6', '--image_size', '64,64', '--no-model.enable_flashattn',
    '--model.grad_checkpoint', '--steps', '5', '--seed=7', '-r', '--model.space_scale', '-0.5', '--batch-size', '4'], spec);
  eq([p.command, p.options.steps, p.options.resume, p.help, p.configSource], ['train', '5', true, false, 'tiny'], 'command and options');
  const c = p.config!;
  eq([c.lr, c.model.depth, c.image_size, c.model.enable_flashattn, c.model.grad_checkpoint, c.seed, c.model.space_scale, c.batch_size],
    [1e-4, 6, [64, 64], false, true, 7, -0.5, 4], 'config');
  eq(p.overrides.length, 8, 'overrides recorded');
  // a boolean flag followed by a boolean word takes it; followed by anything else, it is just true
  const q = parseCli(['sample', '--model.grad_checkpoint', 'false', '-p', '--weird prompt'], spec);
  eq([q.config!.model.grad_checkpoint, q.options.prompt], [false, '--weird prompt'], 'boolean word / string option value');
  eq(parseCli(['sample'], spec).options.prompt, 'a cat', 'option default');
  eq(parseCli(['sample', '-c', 'stdit-16x256'], spec).config!.model.hidden_size, 1152, '-c');
  eq(parseCli(['devices'], spec).config, undefined, 'no config for a config-less command');
});

args.test('mistakes are UsageErrors naming the fix', async () => {
  const u = async (argv: string[], re: RegExp) => {
    const e = await assertThrows(() => parseCli(argv, spec), re, argv.join(' '));
    if (!(e instanceof UsageError)) throw new Error(`${argv.join(' ')}: expected a UsageError, got ${e.name}`);
  };
  await u(['train', '--model.dept', '4'], /unknown config key "model\.dept"\. Did you mean --model\.depth[\s\S]*Valid config keys/);
  await u(['train', '--lr', 'fast'], /"lr" is a number/);
  await u(['train', '--lr'], /--lr needs a value/);
  await u(['train', '--nope'], /unknown config key "nope"/);
  await u(['train', '--model.hidden_size', '130'], /not divisible by model\.num_heads/);
  await u(['fly'], /unknown command "fly"; commands: train, sample, devices/);
  await u([], /no command given; commands: train/);
  await u(['sample', '--steps', '3'], /--steps is not an option of "sample"/);
  await u(['devices', '--lr', '1'], /"devices" takes no config; unknown option\(s\): --lr/);
  await u(['train', '--config', 'nonexistent'], /--config nonexistent: no registered config of that name \(tiny, stdit-16x256\) and no such file/);
});

args.test('--config file.json and --help text', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  try {
    const f = join(dir, 'mine.json');
    writeFileSync(f, JSON.stringify({ base: 'tiny', lr: 5e-4, model: { depth: 5 } }));
    const p = parseCli(['train', '--config', f, '--model.depth', '6'], spec);
    eq([p.config!.lr, p.config!.model.depth], [5e-4, 6], 'file then CLI override');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const h = parseCli(['train', '--help', '--model.dept', 'x'], spec);
  eq([h.help, h.command], [true, 'train'], 'help parsed, overrides ignored');
  const text = helpText(spec, h.command, h.config);
  for (const s of ['usage: dit train', 'train a model', '--steps <value>', '-r, --resume', '-c, --config <value>', '--model.depth', "dtype", "'f32' | 'f16'", '32,32', 'registered configs: tiny']) {
    if (!text.includes(s)) throw new Error(`help text lacks "${s}":\n${text}`);
  }
  const top = helpText(spec);
  if (!top.includes('commands:') || !/devices\s+list devices/.test(top)) throw new Error(`top-level help lacks commands:\n${top}`);
});

// ---- progress -----------------------------------------------------------------------------------------------
const prog = suite('cli-progress');

function sink(isTTY = false, columns = 200) {
  const out: string[] = [];
  return { out, stream: { write: (s: string) => out.push(s), isTTY, columns } };
}

prog.test('formatters', () => {
  eq([formatCount(999), formatCount(1234), formatCount(65536), formatCount(4.5e6), formatCount(2.5e9), formatCount(12.345)], ['999', '1.23k', '65.5k', '4.50M', '2.50G', '12.3'], 'counts');
  eq([formatBytes(512), formatBytes(1536), formatBytes(3.5 * 2 ** 30)], ['512 B', '1.50 KiB', '3.50 GiB'], 'bytes');
  eq([formatDuration(45), formatDuration(458), formatDuration(7500), formatDuration(3 * 86400 + 4 * 3600), formatDuration(NaN)], ['45s', '7m38s', '2h05m', '3d04h', '?'], 'durations');
});

prog.test('line mode: exact lines every N steps and at the end; window averages', () => {
  const { out, stream } = sink(false);
  const p = new Progress({ total: 5, every: 2, stream });
  const losses = [1, 0.5, 0.25, 0.125, NaN];
  for (let s = 1; s <= 5; s++) p.update({ step: s, loss: losses[s - 1], stepTime: s <= 2 ? 0.5 : 0.25, samples: 16, tokens: 16 * 2048, gpuBytes: 3.5 * 2 ** 30 });
  p.finish();
  eq(out, [
    'step 2/5 (40.0%) loss 0.7500 | 0.500 s/step | 32.0 samples/s | 65.5k tokens/s | gpu 3.50 GiB | eta 2s\n',
    'step 4/5 (80.0%) loss 0.1875 | 0.250 s/step | 64.0 samples/s | 131k tokens/s | gpu 3.50 GiB | eta 0s\n',
    'step 5/5 (100.0%) loss NaN | 0.250 s/step | 64.0 samples/s | 131k tokens/s | gpu 3.50 GiB | eta 0s\n',
  ], 'lines');
  // without optional fields; finish() prints the steps not yet shown; log() is a plain line
  const b = sink(false);
  const q = new Progress({ total: 100, every: 10, stream: b.stream, startStep: 40 });
  q.update({ step: 41, loss: 2e-5, lr: 1e-4, lossScale: 65536 });
  q.log('saved ckpt-41');
  q.finish();
  eq(b.out, ['saved ckpt-41\n', 'step 41/100 (41.0%) loss 2.000e-5 | lr 1.00e-4 | scale 65.5k\n'], 'sparse line');
});

prog.test('bar mode: redraws in place (throttled), log above the bar, newline at finish', () => {
  const { out, stream } = sink(true, 120);
  let t = 0;
  const p = new Progress({ total: 4, stream, now: () => t, redrawMs: 100 });
  p.update({ step: 1, loss: 1, stepTime: 0.1, samples: 8 });
  t = 50;
  p.update({ step: 2, loss: 1, stepTime: 0.1, samples: 8 }); // within 100 ms: not drawn
  t = 200;
  p.update({ step: 3, loss: 0.5, stepTime: 0.1, samples: 8 });
  p.log('hello');
  p.update({ step: 4, loss: 0.5, stepTime: 0.1, samples: 8 }); // last step always drawn
  p.finish();
  eq(out.length, 5, `writes: ${JSON.stringify(out)}`);
  if (!out[0]!.startsWith('\r\x1b[2K[########----------------------] 1/4 25.0% loss 1.0000 | 0.100 s/step | 80.0 samples/s')) throw new Error(`first bar: ${JSON.stringify(out[0])}`);
  if (!out[1]!.includes('] 3/4 75.0% loss 0.7500')) throw new Error(`second bar averages steps 2-3: ${JSON.stringify(out[1])}`);
  if (!out[2]!.startsWith('\r\x1b[2Khello\n\r') && !out[2]!.startsWith('\r\x1b[2Khello\n[')) throw new Error(`log line: ${JSON.stringify(out[2])}`);
  if (!out[3]!.includes('[##############################] 4/4 100.0%')) throw new Error(`final bar: ${JSON.stringify(out[3])}`);
  eq(out[4], '\n', 'finish');
  for (const w of out) if (w.replace(/\r\x1b\[2K/g, '').split('\n').some((l) => l.length > 119)) throw new Error(`line wider than the terminal: ${JSON.stringify(w)}`);
});

// ---- metrics --------------------------------------------------------------------------------------------------
const met = suite('cli-metrics');

met.test('JSONL: one object per line, written immediately, NaN kept, crash-cut line skipped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'metrics-'));
  try {
    const path = join(dir, 'run', 'metrics.jsonl');
    const log = new MetricsLog(path, { now: () => 1234567 });
    log.write({ step: 1, loss: 0.5, lr: 1e-4 });
    eq(readFileSync(path, 'utf8'), '{"step":1,"loss":0.5,"lr":0.0001,"time":1234.567}\n', 'flushed after one write');
    log.write({ step: 2, loss: NaN, grad_norm: Infinity, tags: { phase: 'warmup' }, time: 5 });
    log.close();
    appendFileSync(path, '{"step":3,"lo'); // a record cut by a crash
    const again = new MetricsLog(path, { timestamp: false });
    again.write({ step: 3, loss: 0.25 });
    again.close();
    const recs = readMetrics(path);
    eq(recs, [
      { step: 1, loss: 0.5, lr: 1e-4, time: 1234.567 },
      { step: 2, loss: 'NaN', grad_norm: 'Infinity', tags: { phase: 'warmup' }, time: 5 },
      { step: 3, loss: 0.25 },
    ], 'records');
    eq(readFileSync(path, 'utf8').split('\n').length, 5, 'the cut line stays on its own line');
    const fresh = new MetricsLog(path, { append: false, timestamp: false });
    fresh.write({ a: 1 });
    fresh.close();
    eq(readFileSync(path, 'utf8'), '{"a":1}\n', 'append: false truncates');
    let threw = false;
    try {
      fresh.write({ a: 2 });
    } catch {
      threw = true;
    }
    eq(threw, true, 'write after close throws');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

cfg.run();
args.run();
prog.run();
met.run();
