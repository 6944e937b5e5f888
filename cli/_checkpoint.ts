// Training checkpoints: one safetensors file per save, written atomically (temporary file, fsync, rename), so
// a crash or kill mid-write leaves the previous checkpoint intact and nothing partial under the final name.
//   <outputs>/<run>/ckpt-<step>.safetensors   tensors `model.<name>` (upstream parameter names, F32),
//                                             `ema.<name>`, `optim.m.<name>`, `optim.v.<name>`;
//                                             metadata (strings): format, step, epoch, batch_in_epoch,
//                                             loss_scale, rng (JSON), config (JSON)
//   <outputs>/<run>/latest                    the file name of the newest complete checkpoint (atomic)
// Host arrays only: the trainer reads its GPU tensors first. loadCheckpoint checks every tensor against
// the model's expected names and shapes and reports all problems in one error; loadModelWeights also takes
// plain upstream weights (no prefix, or `module.` / `state_dict.` / … prefixes from PyTorch conversions).
// File IO streams tensor by tensor (cli/_safetensors-io.ts): a full STDiT-XL/2 checkpoint (~11.6 GB) is
// beyond Node's 2 GiB single read and 4 GiB typed array, and loads read only the tensors they return.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { withSafetensors, writeChunksAtomic, writeSafetensorsStreaming, type F32Entry, type SafetensorsReader, type TensorInfo } from './_safetensors-io.js';
import { shapeStr } from '../engine/errors.js';
import { sameShape } from '../engine/ops/common.js';
import { numel } from '../engine/tensor.js';

export const CHECKPOINT_FORMAT = 'webgpu-dit-train-ckpt/1';

export interface HostTensor {
  data: Float32Array;
  shape: readonly number[];
}

/** Parameter name (upstream naming, e.g. 'blocks.0.attn.qkv.weight') → host tensor. */
export type TensorMap = Map<string, HostTensor>;
/** Parameter name → expected shape. */
export type ShapeMap = ReadonlyMap<string, readonly number[]>;

/** Seed and the counters of every random stream, enough to continue the exact same random sequence. */
export interface RngState {
  seed: number;
  counters: Record<string, number>;
}

export interface TrainState {
  /** Optimizer steps taken. */
  step: number;
  epoch: number;
  /** Batches of `epoch` already consumed (resume skips them). */
  batchInEpoch: number;
  /** Dynamic loss scale (1 for f32 training). */
  lossScale: number;
  rng: RngState;
  /** The training config (any JSON value; normally a TrainConfig). */
  config: unknown;
}

export interface CheckpointData extends TrainState {
  params: TensorMap;
  ema?: TensorMap;
  /** AdamW first / second moments (both or neither). */
  m?: TensorMap;
  v?: TensorMap;
}

export interface LoadedCheckpoint extends CheckpointData {
  format: string;
  /** The file it came from. */
  path: string;
}

const GROUPS = [
  ['params', 'model.'],
  ['ema', 'ema.'],
  ['m', 'optim.m.'],
  ['v', 'optim.v.'],
] as const;


function checkInt(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`saveCheckpoint: ${what} = ${v} must be an integer >= 0`);
}

/** Writes a checkpoint file atomically (creating its folder); streams, so any size works. */
export function saveCheckpoint(path: string, ck: CheckpointData): void {
  checkInt(ck.step, 'step');
  checkInt(ck.epoch, 'epoch');
  checkInt(ck.batchInEpoch, 'batchInEpoch');
  if (!(ck.lossScale > 0) || !Number.isFinite(ck.lossScale)) throw new Error(`saveCheckpoint: lossScale = ${ck.lossScale} must be a positive finite number`);
  if (!ck.m !== !ck.v) throw new Error('saveCheckpoint: optimizer moments m and v must be given together (or neither)');
  const entries: F32Entry[] = [];
  for (const [field, prefix] of GROUPS) {
    const map = ck[field];
    if (!map) continue;
    if (field !== 'params') {
      // EMA and moments cover the trainable parameters: a subset of params (buffers have none)
      const problems = compareShapes(
        new Map([...map].map(([k, t]) => [k, t.shape])),
        new Map([...ck.params].map(([k, t]) => [k, t.shape])),
      ).filter((p) => !p.startsWith('missing:'));
      if (problems.length) throw new Error(`saveCheckpoint: ${field} does not match params:\n  ${problems.join('\n  ')}`);
    }
    for (const [name, t] of map) {
      if (!(t.data instanceof Float32Array)) throw new Error(`saveCheckpoint: ${prefix}${name} must be a Float32Array (read GPU tensors to the host first)`);
      if (t.data.length !== numel(t.shape)) {
        throw new Error(`saveCheckpoint: ${prefix}${name} has ${t.data.length} values for shape ${shapeStr(t.shape)} (needs ${numel(t.shape)})`);
      }
      entries.push({ name: prefix + name, shape: t.shape, data: t.data });
    }
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    step: String(ck.step),
    epoch: String(ck.epoch),
    batch_in_epoch: String(ck.batchInEpoch),
    // JSON keeps every f64 digit (String would too, but JSON also round-trips through other tools)
    loss_scale: JSON.stringify(ck.lossScale),
    rng: JSON.stringify(ck.rng),
    config: JSON.stringify(ck.config ?? null),
  };
  mkdirSync(dirname(path), { recursive: true });
  writeSafetensorsStreaming(path, entries, metadata);
}

/** Problems of `found` against `expected`: missing, unexpected and mis-shaped names (one line each). */
function compareShapes(found: ShapeMap, expected: ShapeMap): string[] {
  const out: string[] = [];
  for (const [name, shape] of expected) {
    const f = found.get(name);
    if (!f) out.push(`missing: ${name} (expected ${shapeStr(shape)})`);
    else if (!sameShape(f, shape)) out.push(`wrong shape: ${name} expected ${shapeStr(shape)}, found ${shapeStr(f)}`);
  }
  for (const [name, f] of found) if (!expected.has(name)) out.push(`unexpected: ${name} ${shapeStr(f)}`);
  return out;
}

function metaInt(meta: Record<string, string>, key: string, path: string): number {
  const v = Number(meta[key]);
  if (meta[key] === undefined || !Number.isSafeInteger(v) || v < 0) {
    throw new Error(`${path}: checkpoint metadata "${key}" is ${JSON.stringify(meta[key])}, expected an integer; the file is not a training checkpoint of this format`);
  }
  return v;
}

function metaJson(meta: Record<string, string>, key: string, path: string): unknown {
  try {
    return JSON.parse(meta[key] ?? '');
  } catch {
    throw new Error(`${path}: checkpoint metadata "${key}" is not valid JSON (${JSON.stringify(meta[key])?.slice(0, 80)})`);
  }
}


/**
 * Reads a training checkpoint and checks it against the model's expected parameter names and shapes: every
 * group present (model, and ema / optimizer moments when saved) must have exactly the expected tensors. All
 * missing, unexpected and mis-shaped tensors are reported in one error.
 */
export function loadCheckpoint(path: string, expected: ShapeMap, trainable: ShapeMap = expected): LoadedCheckpoint {
  return withSafetensors(path, (file) => readCheckpoint(file, path, expected, trainable));
}

/** `expected`: the model group (parameters and buffers); `trainable`: the EMA and optimizer groups. */
function readCheckpoint(file: SafetensorsReader, path: string, expected: ShapeMap, trainable: ShapeMap): LoadedCheckpoint {
  const meta = file.metadata;
  if (meta.format !== CHECKPOINT_FORMAT) {
    const plain = [...file.tensors.keys()].some((k) => !k.startsWith('model.'));
    throw new Error(
      `${path}: not a training checkpoint (metadata format ${JSON.stringify(meta.format)}, expected "${CHECKPOINT_FORMAT}")` +
        (plain ? '; for plain (e.g. upstream) model weights use loadModelWeights / --model.from_pretrained instead of resuming' : ''),
    );
  }
  // names and shapes come from the header: everything is checked before any tensor data is read
  const groups: Record<string, Map<string, TensorInfo>> = { params: new Map(), ema: new Map(), m: new Map(), v: new Map() };
  const stray: string[] = [];
  for (const [key, t] of file.tensors) {
    const g = GROUPS.find(([, prefix]) => key.startsWith(prefix));
    if (g) groups[g[0]]!.set(key.slice(g[1].length), t);
    else stray.push(`unexpected: ${key} ${shapeStr(t.shape)} (not under model., ema., optim.m. or optim.v.)`);
  }
  const problems: string[] = [...stray];
  for (const [field, prefix] of GROUPS) {
    const g = groups[field]!;
    if (field !== 'params' && g.size === 0) continue;
    for (const p of compareShapes(new Map([...g].map(([k, t]) => [k, t.shape])), field === 'params' ? expected : trainable)) problems.push(p.replace(/: /, `: ${prefix}`));
    for (const [name, t] of g) {
      if (!FLOAT_TYPES.includes(t.dtype)) problems.push(`wrong dtype: ${prefix}${name} is ${t.dtype}, expected a float type (F32)`);
    }
  }
  if ((groups.m!.size === 0) !== (groups.v!.size === 0)) problems.push('optimizer state incomplete: optim.m.* and optim.v.* must both be present or both absent');
  if (problems.length) {
    throw new Error(
      `${path}: checkpoint does not match the model (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n  ${problems.join('\n  ')}\n` +
        'Fix: resume with the same model config the checkpoint was saved with (its config is in the file metadata "config"), ' +
        'or load only the weights of a different model with loadModelWeights / --model.from_pretrained.',
    );
  }
  const rng = metaJson(meta, 'rng', path) as RngState;
  if (typeof rng !== 'object' || rng === null || typeof rng.seed !== 'number') throw new Error(`${path}: checkpoint metadata "rng" lacks a numeric seed`);
  const lossScale = Number(metaJson(meta, 'loss_scale', path));
  if (!(lossScale > 0)) throw new Error(`${path}: checkpoint metadata "loss_scale" is ${meta.loss_scale}, expected a positive number`);
  const step = metaInt(meta, 'step', path);
  const epoch = metaInt(meta, 'epoch', path);
  const batchInEpoch = metaInt(meta, 'batch_in_epoch', path);
  const config = metaJson(meta, 'config', path);
  const toMap = (prefix: string, names: ShapeMap) => new Map([...names].map(([name, shape]) => [name, { data: file.readF32(prefix + name), shape: [...shape] }]));
  const out: LoadedCheckpoint = { format: meta.format, path, step, epoch, batchInEpoch, lossScale, rng: { seed: rng.seed, counters: { ...(rng.counters ?? {}) } }, config, params: toMap('model.', expected) };
  if (groups.ema!.size) out.ema = toMap('ema.', trainable);
  if (groups.m!.size) {
    out.m = toMap('optim.m.', trainable);
    out.v = toMap('optim.v.', trainable);
  }
  return out;
}

const FLOAT_TYPES: readonly string[] = ['F32', 'F16', 'BF16', 'F64'];

/** Preferred prefixes when several prefixes cover the expected names equally well. */
const KNOWN_PREFIXES = ['model.', '', 'ema.', 'module.', 'model.module.', 'state_dict.', 'state_dict.module.', 'param.'];

export interface LoadWeightsOptions {
  /** Key prefix of the weights in the file (default: detected — the prefix that covers most expected names). */
  prefix?: string;
  /** Names (after the prefix) present in the file but not in the model that are fine to skip (e.g. buffers). */
  ignore?: (name: string) => boolean;
  /** Accept a shape that differs only by size-1 axes (same data layout), e.g. a 2-D patch conv [C,4,2,2] for a 3-D [C,4,1,2,2]. Default true. */
  squeezeOnes?: boolean;
}

/**
 * Model weights from a training checkpoint (`model.` tensors; pass prefix 'ema.' for the EMA weights) or a
 * plain / PyTorch-converted safetensors file (`<name>`, `module.<name>`, `state_dict.<name>`, …). Tensors of
 * any float dtype are converted to f32. Every expected name must be present with its shape; names under the
 * prefix that the model does not have are an error unless `ignore` accepts them. All problems in one error.
 */
export function loadModelWeights(path: string, expected: ShapeMap, opts: LoadWeightsOptions = {}): TensorMap {
  return withSafetensors(path, (file) => readWeights(file, path, expected, opts));
}

function readWeights(file: SafetensorsReader, path: string, expected: ShapeMap, opts: LoadWeightsOptions): TensorMap {
  const keys = [...file.tensors.keys()];
  let prefix = opts.prefix;
  if (prefix === undefined) {
    const counts = new Map<string, number>();
    for (const k of keys) {
      for (const name of expected.keys()) {
        if (k.endsWith(name) && (k.length === name.length || k[k.length - name.length - 1] === '.')) {
          const p = k.slice(0, k.length - name.length);
          counts.set(p, (counts.get(p) ?? 0) + 1);
        }
      }
    }
    const best = Math.max(0, ...counts.values());
    if (best === 0) {
      throw new Error(
        `${path}: none of the model's ${expected.size} parameter names (e.g. ${[...expected.keys()].slice(0, 3).join(', ')}) appear in this file ` +
          `(its keys look like ${keys.slice(0, 3).join(', ') || 'nothing: no tensors'}); it holds weights of another model, or pass { prefix } explicitly`,
      );
    }
    const top = [...counts].filter(([, c]) => c === best).map(([p]) => p);
    prefix = KNOWN_PREFIXES.find((p) => top.includes(p)) ?? (top.length === 1 ? top[0] : undefined);
    if (prefix === undefined) {
      throw new Error(`${path}: the model's parameters appear under several prefixes (${top.map((p) => `"${p}"`).join(', ')}); pass { prefix } to choose one`);
    }
  }
  const found = new Map<string, TensorInfo>();
  for (const [k, t] of file.tensors) if (k.startsWith(prefix)) found.set(k.slice(prefix.length), t);
  const problems: string[] = [];
  const squeeze = (s: readonly number[]) => s.filter((d) => d !== 1);
  for (const [name, shape] of expected) {
    const t = found.get(name);
    if (!t) problems.push(`missing: ${prefix}${name} (expected ${shapeStr(shape)})`);
    else if (!FLOAT_TYPES.includes(t.dtype)) problems.push(`wrong dtype: ${prefix}${name} is ${t.dtype}, expected a float type`);
    else if (!sameShape(t.shape, shape) && !(opts.squeezeOnes !== false && sameShape(squeeze(t.shape), squeeze(shape)))) {
      problems.push(`wrong shape: ${prefix}${name} expected ${shapeStr(shape)}, found ${shapeStr(t.shape)}`);
    }
  }
  for (const [name, t] of found) {
    if (!expected.has(name) && !opts.ignore?.(name)) problems.push(`unexpected: ${prefix}${name} ${shapeStr(t.shape)}`);
  }
  if (problems.length) {
    throw new Error(
      `${path}: weights do not match the model (prefix "${prefix}"; ${problems.length} problem${problems.length > 1 ? 's' : ''}):\n  ${problems.join('\n  ')}\n` +
        'Fix: choose the model config these weights were made for (hidden size, depth, patch size, channels), ' +
        'or skip tensors the model does not use with { ignore }.',
    );
  }
  return new Map([...expected].map(([name, shape]) => [name, { data: file.readF32(prefix + name), shape: [...shape] }]));
}

// ---- checkpoint folders --------------------------------------------------------------------------------

const CKPT_RE = /^ckpt-(\d+)\.safetensors$/;

export const checkpointName = (step: number) => `ckpt-${step}.safetensors`;

/** Saves `<runDir>/ckpt-<step>.safetensors`, then points `latest` at it, then prunes to `keep` (0 = all). Returns the path. */
export function saveRunCheckpoint(runDir: string, ck: CheckpointData, keep = 0): string {
  const path = join(runDir, checkpointName(ck.step));
  saveCheckpoint(path, ck);
  writeChunksAtomic(join(runDir, 'latest'), [new TextEncoder().encode(`${basename(path)}\n`)]);
  if (keep > 0) pruneCheckpoints(runDir, keep);
  return path;
}

/** The run's checkpoints as { step, path }, oldest first. */
export function listCheckpoints(runDir: string): { step: number; path: string }[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .map((f) => ({ m: CKPT_RE.exec(f), f }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), path: join(runDir, x.f) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * The checkpoint to resume from: `where` is a checkpoint file, or a run folder (its `latest` pointer, else
 * its highest step). Returns null for a run folder without checkpoints.
 */
export function resolveCheckpoint(where: string): string | null {
  if (!existsSync(where)) throw new Error(`checkpoint or run folder ${where} does not exist`);
  if (!statSync(where).isDirectory()) return where;
  const pointer = join(where, 'latest');
  if (existsSync(pointer)) {
    const name = readFileSync(pointer, 'utf8').trim();
    const path = join(where, name);
    if (name && CKPT_RE.test(name) && existsSync(path)) return path;
  }
  const all = listCheckpoints(where);
  return all.length ? all[all.length - 1]!.path : null;
}

/**
 * Deletes all but the newest `keep` checkpoints of a run (never the one `latest` names), and temporary files
 * left by writes that were killed. Returns the deleted paths.
 */
export function pruneCheckpoints(runDir: string, keep: number): string[] {
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`pruneCheckpoints: keep = ${keep} must be an integer >= 1`);
  const latest = resolveCheckpoint(runDir);
  const all = listCheckpoints(runDir);
  const removed: string[] = [];
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    if (c.path === latest) continue;
    rmSync(c.path, { force: true });
    removed.push(c.path);
  }
  for (const f of readdirSync(runDir)) {
    const m = /^\.(ckpt-\d+\.safetensors|latest)\.tmp-(\d+)$/.exec(f);
    if (m && !processAlive(Number(m[2]))) {
      rmSync(join(runDir, f), { force: true });
      removed.push(join(runDir, f));
    }
  }
  return removed;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true; // our own write in progress? (never: writes are synchronous) — be safe
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
