// Training checkpoints (cli/_checkpoint.ts): exact round trip of every field, shape validation errors,
// upstream weight loading (prefix detection, dtype conversion, the STDiT fixture), run folders (latest
// pointer, pruning), and atomicity under SIGKILL of a child process writing a large checkpoint. CPU only.
import { fork } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite, assertThrows, type Rng } from './harness.js';
import {
  CHECKPOINT_FORMAT,
  checkpointName,
  listCheckpoints,
  loadCheckpoint,
  loadModelWeights,
  pruneCheckpoints,
  resolveCheckpoint,
  saveCheckpoint,
  saveRunCheckpoint,
  type CheckpointData,
  type HostTensor,
  type TensorMap,
} from '../cli/_checkpoint.js';
import { serializeSafetensors, toFloat32, type StEntry } from '../engine/safetensors.js';
import { readSafetensors, writeFileAtomic } from '../engine/safetensors-file.js';
import { applyOverrides, getConfig } from '../configs/index.js';
import { buildModel } from '../cli/_trainer.js';
import { loadForSampling, saveInferenceWeights } from '../cli/_sampling.js';
import { stateDict } from '../models/state.js';

const s = suite('checkpoint');

const SHAPES: [string, number[]][] = [
  ['x_embedder.proj.weight', [8, 3, 1, 2, 2]],
  ['x_embedder.proj.bias', [8]],
  ['blocks.0.attn.qkv.weight', [24, 8]],
  ['blocks.0.scale_shift_table', [6, 8]],
  ['final_layer.linear.weight', [12, 8]],
];
const expected = new Map(SHAPES);

function tensors(rng: Rng, shapes: [string, number[]][] = SHAPES): TensorMap {
  return new Map(shapes.map(([n, sh]) => [n, { data: rng.normal(sh.reduce((a, b) => a * b, 1)), shape: sh }]));
}

function makeCkpt(rng: Rng, step = 12345): CheckpointData {
  const params = tensors(rng);
  // special values must survive bit-exactly: -0, a subnormal, the largest f32, infinities
  const first = params.get('x_embedder.proj.bias')!.data;
  first.set([-0, 1e-40, 3.4028234663852886e38, -Infinity, Infinity]);
  return {
    params,
    ema: tensors(rng),
    m: tensors(rng),
    v: new Map([...tensors(rng)].map(([k, t]) => [k, { data: t.data.map(Math.abs), shape: t.shape }])),
    step,
    epoch: 7,
    batchInEpoch: 33,
    lossScale: 1234.5678901234567,
    rng: { seed: 42, counters: { data: 123456789012, noise: 7, dropout: 0 } },
    config: getConfig('tiny'),
  };
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (x.length !== y.length) throw new Error(`${what}: length ${x.length} vs ${y.length}`);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) throw new Error(`${what}: element ${i} ${a[i]} != ${b[i]} (bits differ)`);
}

function sameMaps(got: TensorMap | undefined, want: TensorMap, what: string): void {
  if (!got) throw new Error(`${what}: missing after load`);
  if (got.size !== want.size) throw new Error(`${what}: ${got.size} tensors, expected ${want.size}`);
  for (const [name, t] of want) {
    const g = got.get(name);
    if (!g) throw new Error(`${what}: ${name} missing`);
    if (JSON.stringify(g.shape) !== JSON.stringify(t.shape)) throw new Error(`${what}.${name}: shape ${g.shape} vs ${t.shape}`);
    sameBits(g.data, t.data, `${what}.${name}`);
  }
}

function eq(got: unknown, want: unknown, what: string): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'ckpt-test-'));
}

s.test('round trip: every tensor bit-exact, every metadata field exact', ({ rng }) => {
  const dir = tmp();
  try {
    const ck = makeCkpt(rng);
    const path = join(dir, 'sub', 'a.safetensors');
    saveCheckpoint(path, ck);
    const back = loadCheckpoint(path, expected);
    sameMaps(back.params, ck.params, 'params');
    sameMaps(back.ema, ck.ema!, 'ema');
    sameMaps(back.m, ck.m!, 'm');
    sameMaps(back.v, ck.v!, 'v');
    eq([back.step, back.epoch, back.batchInEpoch, back.format, back.path], [12345, 7, 33, CHECKPOINT_FORMAT, path], 'counters');
    if (back.lossScale !== ck.lossScale) throw new Error(`lossScale ${back.lossScale} != ${ck.lossScale}`);
    eq(back.rng, ck.rng, 'rng');
    eq(back.config, ck.config, 'config');
    // the on-disk layout is the documented one
    const raw = readSafetensors(path);
    eq([...raw.tensors.keys()].filter((k) => k.endsWith('x_embedder.proj.bias')).sort(), ['ema.x_embedder.proj.bias', 'model.x_embedder.proj.bias', 'optim.m.x_embedder.proj.bias', 'optim.v.x_embedder.proj.bias'], 'key scheme');
    eq(Object.keys(raw.metadata).sort(), ['batch_in_epoch', 'config', 'epoch', 'format', 'loss_scale', 'rng', 'step'], 'metadata keys');
    if ([...raw.tensors.values()].some((t) => t.dtype !== 'F32')) throw new Error('all tensors must be stored F32');
    // without EMA and optimizer state
    const bare = { ...ck, ema: undefined, m: undefined, v: undefined, lossScale: 1 };
    saveCheckpoint(path, bare);
    const b2 = loadCheckpoint(path, expected);
    sameMaps(b2.params, ck.params, 'params (bare)');
    eq([b2.ema, b2.m, b2.v, b2.lossScale], [undefined, undefined, undefined, 1], 'absent groups');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.test('load: missing, extra and mis-shaped tensors are all named in one error with the fix', async ({ rng }) => {
  const dir = tmp();
  try {
    const path = join(dir, 'c.safetensors');
    saveCheckpoint(path, makeCkpt(rng));
    const want = new Map(expected);
    want.delete('final_layer.linear.weight'); // → extra in the file
    want.set('blocks.1.attn.qkv.weight', [24, 8]); // → missing from the file
    want.set('blocks.0.attn.qkv.weight', [24, 16]); // → wrong shape
    const e = await assertThrows(() => loadCheckpoint(path, want), /checkpoint does not match the model/, 'mismatch');
    for (const line of [
      'missing: model.blocks.1.attn.qkv.weight (expected [24, 8])',
      'wrong shape: model.blocks.0.attn.qkv.weight expected [24, 16], found [24, 8]',
      'unexpected: model.final_layer.linear.weight [12, 8]',
      'missing: ema.blocks.1.attn.qkv.weight',
      'wrong shape: optim.v.blocks.0.attn.qkv.weight',
      'Fix: resume with the same model config',
    ]) {
      if (!e.message.includes(line)) throw new Error(`error lacks "${line}":\n${e.message}`);
    }
    // a file whose ema group alone is wrong (hand-made: saveCheckpoint refuses to write one)
    const ck = makeCkpt(rng);
    const entries: StEntry[] = [];
    for (const [n, t] of ck.params) entries.push({ name: `model.${n}`, dtype: 'F32', shape: t.shape, data: t.data });
    for (const [n, t] of ck.params) if (n !== 'x_embedder.proj.bias') entries.push({ name: `ema.${n}`, dtype: 'F32', shape: t.shape, data: t.data });
    entries.push({ name: 'optim.m.x_embedder.proj.bias', dtype: 'F32', shape: [8], data: new Float32Array(8) });
    entries.push({ name: 'stray', dtype: 'F32', shape: [1], data: [1] });
    const meta = { format: CHECKPOINT_FORMAT, step: '1', epoch: '0', batch_in_epoch: '0', loss_scale: '1', rng: '{"seed":1,"counters":{}}', config: 'null' };
    writeFileAtomic(path, serializeSafetensors(entries, meta));
    const e2 = await assertThrows(() => loadCheckpoint(path, expected), /5 problems|problems/, 'ema mismatch');
    for (const line of ['missing: ema.x_embedder.proj.bias (expected [8])', 'unexpected: stray [1]', 'missing: optim.m.blocks.0.attn.qkv.weight', 'optim.m.* and optim.v.* must both be present']) {
      if (!e2.message.includes(line)) throw new Error(`error lacks "${line}":\n${e2.message}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.test('save refuses inconsistent input; load refuses non-checkpoints and bad metadata', async ({ rng }) => {
  const dir = tmp();
  try {
    const path = join(dir, 'c.safetensors');
    const ck = makeCkpt(rng);
    await assertThrows(() => saveCheckpoint(path, { ...ck, v: undefined }), /m and v must be given together/, 'm without v');
    const badEma = new Map(ck.ema!);
    badEma.set('x_embedder.proj.bias', { data: new Float32Array(4), shape: [4] });
    await assertThrows(() => saveCheckpoint(path, { ...ck, ema: badEma }), /ema does not match params:\n {2}wrong shape: x_embedder\.proj\.bias expected \[8\], found \[4\]/, 'ema shape');
    const badLen = new Map(ck.params);
    badLen.set('x_embedder.proj.bias', { data: new Float32Array(3), shape: [8] });
    await assertThrows(() => saveCheckpoint(path, { ...ck, params: badLen }), /model\.x_embedder\.proj\.bias has 3 values for shape \[8\]/, 'length');
    await assertThrows(() => saveCheckpoint(path, { ...ck, step: -1 }), /step = -1 must be an integer >= 0/, 'step');
    await assertThrows(() => saveCheckpoint(path, { ...ck, lossScale: 0 }), /lossScale = 0/, 'loss scale');
    if (existsSync(path)) throw new Error('a refused save left a file');
    // plain weights are not a resumable checkpoint
    writeFileAtomic(path, serializeSafetensors([{ name: 'x_embedder.proj.bias', dtype: 'F32', shape: [8], data: new Float32Array(8) }]));
    await assertThrows(() => loadCheckpoint(path, expected), /not a training checkpoint.*use loadModelWeights/, 'plain file');
    const entries: StEntry[] = [...ck.params].map(([n, t]) => ({ name: `model.${n}`, dtype: 'F32', shape: t.shape, data: t.data }));
    writeFileAtomic(path, serializeSafetensors(entries, { format: CHECKPOINT_FORMAT, step: 'x', epoch: '0', batch_in_epoch: '0', loss_scale: '1', rng: '{"seed":1}', config: '{}' }));
    await assertThrows(() => loadCheckpoint(path, expected), /metadata "step" is "x", expected an integer/, 'bad step');
    await assertThrows(() => loadCheckpoint(join(dir, 'nope.safetensors'), expected), /cannot read safetensors file .*nope\.safetensors/, 'no file');
    // a file cut short (copied while being written by something else, disk full) is named as truncated
    saveCheckpoint(path, ck);
    const full = readFileSync(path);
    writeFileSync(path, full.subarray(0, full.length - 10));
    await assertThrows(() => loadCheckpoint(path, expected), /tensor "optim\.v\.final_layer\.linear\.weight" F32 \[12,8\] has data offsets .* the file is corrupt or truncated/, 'truncated data');
    writeFileSync(path, full.subarray(0, 100));
    await assertThrows(() => loadCheckpoint(path, expected), /header length \d+ runs past the end of the file \(100 bytes/, 'truncated header');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.test('loadModelWeights: plain, module./state_dict. prefixes, checkpoint model./ema., F16/F64 → f32, squeezed ones', async ({ rng }) => {
  const dir = tmp();
  try {
    const ck = makeCkpt(rng);
    const path = join(dir, 'w.safetensors');
    const write = (prefix: string, dtype: StEntry['dtype'] = 'F32', shapeOf = (sh: readonly number[]) => sh, extra: StEntry[] = []) =>
      writeFileAtomic(path, serializeSafetensors([...[...ck.params].map(([n, t]) => ({ name: prefix + n, dtype, shape: shapeOf(t.shape), data: t.data })), ...extra]));
    for (const prefix of ['', 'module.', 'state_dict.', 'model.module.']) {
      write(prefix);
      sameMaps(loadModelWeights(path, expected), ck.params, `prefix "${prefix}"`);
    }
    // F16 values come back as f16-rounded f32; F64 exactly
    write('', 'F16');
    const h = loadModelWeights(path, expected);
    const want16 = toFloat32({ dtype: 'F16', shape: [8], bytes: readSafetensors(path).tensors.get('x_embedder.proj.bias')!.bytes });
    sameBits(h.get('x_embedder.proj.bias')!.data, want16, 'F16 converted');
    write('', 'F64');
    sameMaps(loadModelWeights(path, expected), ck.params, 'F64 converted');
    // a 2-D patch conv [8,3,2,2] (PixArt) into the 3-D [8,3,1,2,2]
    write('', 'F32', (sh) => sh.filter((d) => d !== 1));
    sameMaps(loadModelWeights(path, expected), ck.params, 'squeezed');
    await assertThrows(() => loadModelWeights(path, expected, { squeezeOnes: false }), /wrong shape: x_embedder\.proj\.weight expected \[8, 3, 1, 2, 2\], found \[8, 3, 2, 2\]/, 'squeeze off');
    // training checkpoint: model weights by default, EMA on request
    saveCheckpoint(path, ck);
    sameMaps(loadModelWeights(path, expected), ck.params, 'checkpoint model.');
    sameMaps(loadModelWeights(path, expected, { prefix: 'ema.' }), ck.ema!, 'checkpoint ema.');
    // extras (e.g. position-embedding buffers) are an error unless ignored; missing/mis-shaped named
    write('', 'F32', (sh) => sh, [{ name: 'pos_embed', dtype: 'F32', shape: [1, 4, 8], data: new Float32Array(32) }]);
    await assertThrows(() => loadModelWeights(path, expected), /unexpected: pos_embed \[1, 4, 8\][\s\S]*\{ ignore \}/, 'extra');
    sameMaps(loadModelWeights(path, expected, { ignore: (n) => n === 'pos_embed' }), ck.params, 'ignored extra');
    const want = new Map(expected);
    want.set('y_embedder.y_proj.fc1.weight', [8, 64]);
    want.set('blocks.0.attn.qkv.weight', [48, 8]);
    const e = await assertThrows(() => loadModelWeights(path, want, { ignore: () => true }), /weights do not match the model/, 'missing');
    for (const l of ['missing: y_embedder.y_proj.fc1.weight (expected [8, 64])', 'wrong shape: blocks.0.attn.qkv.weight expected [48, 8], found [24, 8]']) {
      if (!e.message.includes(l)) throw new Error(`error lacks "${l}":\n${e.message}`);
    }
    await assertThrows(() => loadModelWeights(path, new Map([['unrelated.weight', [2]]])), /none of the model's 1 parameter names/, 'other model');
    // two prefixes, neither preferred → ask for one
    writeFileAtomic(path, serializeSafetensors([...ck.params].flatMap(([n, t]) => ['a.', 'b.'].map((p) => ({ name: p + n, dtype: 'F32' as const, shape: t.shape, data: t.data })))));
    await assertThrows(() => loadModelWeights(path, expected), /several prefixes \("a\.", "b\."\); pass \{ prefix \}/, 'ambiguous');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.test('sampling files keep their temporal_pos and prediction; files written before the options load as then trained (first-block, eps)', async ({ gpu }) => {
  const dir = tmp();
  try {
    const base = applyOverrides(getConfig('tiny'), { num_frames: 2, image_size: '8,8', 'model.hidden_size': 32, 'model.depth': 1, 'model.num_heads': 2, 'text_encoder.caption_channels': 16, 'text_encoder.model_max_length': 4, 'model.temporal_pos': 'first-block', 'scheduler.prediction': 'eps' });
    const model = buildModel(gpu, base);
    const weights = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    for (const [k, p] of stateDict(model)) weights.set(k, { shape: p.shape, data: (await p.value.read()) as Float32Array });
    const old = JSON.parse(JSON.stringify(base)) as typeof base;
    delete (old.model as Partial<typeof base.model>).temporal_pos;
    delete (old.scheduler as Partial<typeof base.scheduler>).prediction;
    const cases: [string, typeof base, string, string][] = [
      ['input.safetensors', applyOverrides(base, { 'model.temporal_pos': 'input', 'scheduler.prediction': 'v' }), 'input', 'v'],
      ['first.safetensors', base, 'first-block', 'eps'],
      ['old.safetensors', old, 'first-block', 'eps'], // the registered tiny config now says 'input' and 'v'
    ];
    for (const [file, config, want, prediction] of cases) {
      saveInferenceWeights(join(dir, file), weights, config, 'F32');
      const m = loadForSampling(gpu, join(dir, file));
      if (m.config.model.temporal_pos !== want || m.model.config.temporalPos !== want) throw new Error(`${file}: temporal_pos ${m.config.model.temporal_pos} / model ${m.model.config.temporalPos}; expected ${want}`);
      if (m.config.scheduler.prediction !== prediction) throw new Error(`${file}: prediction ${m.config.scheduler.prediction}; expected ${prediction}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.test('loadModelWeights reads the upstream Open-Sora STDiT fixture (param.* beside grad.*, buffer.*)', () => {
  const path = fixturePath('tests/fixtures/stdit.safetensors');
  const file = readSafetensors(path);
  const want = new Map<string, number[]>();
  for (const [k, t] of file.tensors) if (k.startsWith('param.')) want.set(k.slice(6), t.shape);
  if (want.size < 50) throw new Error(`fixture has only ${want.size} params`);
  const w = loadModelWeights(path, want);
  for (const [name, t] of w) sameBits(t.data, toFloat32(file.tensors.get(`param.${name}`)!), name);
  eq(w.get('x_embedder.proj.weight')!.shape, [64, 4, 1, 2, 2], 'patch conv shape');
});

s.test('run folder: ckpt-<step> files, atomic latest pointer, pruning keeps the newest and latest', async ({ rng }) => {
  const dir = tmp();
  try {
    const run = join(dir, 'outputs', 'run1');
    eq([resolveCheckpoint(dir), listCheckpoints(run)], [null, []], 'empty');
    const params = tensors(rng);
    const base = { params, epoch: 0, batchInEpoch: 0, lossScale: 1, rng: { seed: 1, counters: {} }, config: null };
    for (const step of [100, 200, 300]) eq(saveRunCheckpoint(run, { ...base, step }), join(run, checkpointName(step)), 'path');
    eq(checkpointName(200), 'ckpt-200.safetensors', 'name');
    eq(readFileSync(join(run, 'latest'), 'utf8'), 'ckpt-300.safetensors\n', 'latest pointer');
    eq(resolveCheckpoint(run), join(run, 'ckpt-300.safetensors'), 'resolve folder');
    eq(resolveCheckpoint(join(run, 'ckpt-100.safetensors')), join(run, 'ckpt-100.safetensors'), 'resolve file');
    saveRunCheckpoint(run, { ...base, step: 1000 }, 2); // numeric, not lexicographic, order
    eq(listCheckpoints(run).map((c) => c.step), [300, 1000], 'pruned to 2');
    // latest pointing at an older checkpoint (rolled back by hand) is never pruned
    writeFileSync(join(run, 'latest'), 'ckpt-300.safetensors\n');
    saveCheckpoint(join(run, checkpointName(1100)), { ...base, step: 1100 });
    saveCheckpoint(join(run, checkpointName(1200)), { ...base, step: 1200 });
    const removed = pruneCheckpoints(run, 1);
    eq(listCheckpoints(run).map((c) => c.step), [300, 1200], 'latest kept');
    eq(removed.map((p) => p.slice(run.length + 1)).sort(), ['ckpt-1000.safetensors', 'ckpt-1100.safetensors'], 'removed');
    // a dangling pointer falls back to the highest step
    writeFileSync(join(run, 'latest'), 'ckpt-5.safetensors\n');
    eq(resolveCheckpoint(run), join(run, 'ckpt-1200.safetensors'), 'dangling latest');
    await assertThrows(() => pruneCheckpoints(run, 0), /keep = 0 must be an integer >= 1/, 'keep 0');
    await assertThrows(() => resolveCheckpoint(join(dir, 'missing')), /does not exist/, 'missing folder');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- atomicity under SIGKILL ---------------------------------------------------------------------------------

function repoRoot(): string {
  // dist/tests.mjs → the repository root; fall back to the working directory
  const here = dirname(fileURLToPath(import.meta.url));
  for (const r of [resolve(here, '..'), process.cwd()]) if (existsSync(join(r, 'cli', '_checkpoint.ts'))) return r;
  throw new Error(`cannot find cli/_checkpoint.ts from ${here} or ${process.cwd()}; run the tests from the repository root`);
}

function fixturePath(rel: string): string {
  return join(repoRoot(), rel);
}

/** Bundles cli/_checkpoint.ts (the real code) for a child process, with esbuild's JS API. */
async function buildCheckpointModule(outfile: string): Promise<void> {
  const name = 'esbuild'; // a variable specifier: not bundled into dist/tests.mjs, resolved from node_modules at run time
  const esbuild = (await import(name)) as typeof import('esbuild');
  await esbuild.build({ entryPoints: [join(repoRoot(), 'cli', '_checkpoint.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'error' });
}

const CHILD = `
import { saveRunCheckpoint } from './checkpoint.mjs';
const [run, n] = [process.argv[2], Number(process.argv[3])];
const data = new Float32Array(n);
for (let i = 0; i < n; i++) data[i] = (i % 1021) * 0.5;
const params = new Map([['big', { data, shape: [n] }]]);
process.send('start');
saveRunCheckpoint(run, { params, step: 2, epoch: 0, batchInEpoch: 2, lossScale: 1, rng: { seed: 1, counters: {} }, config: null });
process.send('done');
`;

/** Runs the child writing a checkpoint of n floats; SIGKILLs it as soon as its temporary file appears. */
function killMidWrite(dir: string, run: string, n: number): Promise<{ sawTmp: string | null; tmpBytes: number; finished: boolean; stderr: string }> {
  return new Promise((res, rej) => {
    const child = fork(join(dir, 'child.mjs'), [run, String(n)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let sawTmp: string | null = null;
    let tmpBytes = 0;
    let finished = false;
    const check = () => {
      if (sawTmp) return;
      const f = readdirSync(run).find((x) => x.startsWith('.ckpt-2.safetensors.tmp-'));
      if (!f) return;
      let size = 0;
      try {
        size = statSync(join(run, f)).size;
      } catch {
        return; // renamed meanwhile
      }
      if (size === 0) return; // opened, nothing written yet: wait for data so the kill cuts a real write
      sawTmp = f;
      child.kill('SIGKILL');
      tmpBytes = size;
    };
    const watcher = watch(run, check);
    const timer = setInterval(check, 0);
    child.on('message', (m) => {
      if (m === 'done') finished = true;
    });
    child.on('error', rej);
    child.on('exit', () => {
      watcher.close();
      clearInterval(timer);
      res({ sawTmp, tmpBytes, finished, stderr });
    });
  });
}

s.test('atomicity: a child process SIGKILLed mid-write leaves the previous checkpoint intact', async ({ rng }) => {
  const dir = tmp();
  try {
    await buildCheckpointModule(join(dir, 'checkpoint.mjs'));
    writeFileSync(join(dir, 'child.mjs'), CHILD);
    const run = join(dir, 'run');
    const params = tensors(rng);
    const ck: CheckpointData = { params, step: 1, epoch: 0, batchInEpoch: 1, lossScale: 2, rng: { seed: 9, counters: { data: 5 } }, config: { name: 'x' } };
    saveRunCheckpoint(run, ck);
    const before = readFileSync(join(run, 'ckpt-1.safetensors'));
    let result: Awaited<ReturnType<typeof killMidWrite>> | undefined;
    const total = (n: number) => 4 * n;
    // the kill must land while the temporary file exists; retry bigger if the child finished first
    for (const n of [16 << 20, 48 << 20]) {
      result = await killMidWrite(dir, run, n);
      if (result.sawTmp && !existsSync(join(run, 'ckpt-2.safetensors'))) {
        if (result.tmpBytes > total(n) + 4096) throw new Error(`temporary file ${result.tmpBytes} bytes, more than the checkpoint`);
        break;
      }
      if (result.stderr) throw new Error(`child failed: ${result.stderr}`);
      rmSync(join(run, 'ckpt-2.safetensors'), { force: true });
      writeFileAtomic(join(run, 'latest'), new TextEncoder().encode('ckpt-1.safetensors\n'));
      result = undefined;
    }
    if (!result) throw new Error('could not kill the child while it was writing (it finished first twice)');
    if (result.finished) throw new Error('the child reported done although it was killed mid-write');
    // nothing under the final name, the pointer and the previous checkpoint untouched and loadable
    if (existsSync(join(run, 'ckpt-2.safetensors'))) throw new Error('a partial checkpoint exists under the final name');
    eq(readFileSync(join(run, 'latest'), 'utf8'), 'ckpt-1.safetensors\n', 'latest pointer');
    if (!before.equals(readFileSync(join(run, 'ckpt-1.safetensors')))) throw new Error('previous checkpoint bytes changed');
    const back = loadCheckpoint(resolveCheckpoint(run)!, new Map([...params].map(([k, t]: [string, HostTensor]) => [k, t.shape])));
    sameMaps(back.params, params, 'previous params');
    eq([back.step, back.lossScale, back.rng, back.config], [1, 2, ck.rng, ck.config], 'previous state');
    // the dead writer's temporary file is left behind; pruning removes it (its process is gone)
    if (!existsSync(join(run, result.sawTmp!))) throw new Error(`temporary file ${result.sawTmp} vanished (expected it left by the killed writer)`);
    const removed = pruneCheckpoints(run, 5);
    eq(removed, [join(run, result.sawTmp!)], 'stale temporary file pruned');
    eq(readdirSync(run).sort(), ['ckpt-1.safetensors', 'latest'], 'folder after pruning');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
