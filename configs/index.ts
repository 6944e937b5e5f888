// Config registry (by name) and type-checked overrides:
//   getConfig('tiny')                                  a fresh copy of a registered config
//   applyOverrides(cfg, { lr: '1e-4', 'model.depth': 4, image_size: '32,32', 'model.grad_checkpoint': 'false' })
// Each override is checked against the type of the field it replaces (number, boolean, string, fixed-length
// array, or one of a string field's allowed values); an unknown key or a wrong type throws one error that
// lists the valid keys. applyOverrides does not check cross-field consistency: call validateConfig after.
import { stdit16x256 } from './stdit-16x256.js';
import { tiny } from './tiny.js';
import { validateConfig, type TrainConfig } from './types.js';

export * from './types.js';

export const CONFIGS: Record<string, { make: () => TrainConfig; description: string }> = {
  tiny: { make: tiny, description: 'small STDiT on the built-in synthetic data, 8×32×32, identity latents (default)' },
  'stdit-16x256': { make: stdit16x256, description: 'Open-Sora v1.0 STDiT-XL/2, 16×256×256, T5 XXL, SD-VAE (configs/opensora/train/16x256x256.py)' },
};

export const DEFAULT_CONFIG = 'tiny';

export const configNames = (): string[] => Object.keys(CONFIGS);

/** A fresh copy of the registered config `name`. */
export function getConfig(name: string): TrainConfig {
  const entry = CONFIGS[name];
  if (!entry) throw new Error(`unknown config "${name}"; registered configs: ${configNames().join(', ')} (or pass a path to a .json config file)`);
  return entry.make();
}

/** Allowed values of the string fields that are enumerations. */
export const CHOICES: Record<string, readonly string[]> = {
  dtype: ['f32', 'f16'],
  matmul_precision: ['highest', 'high'],
  'model.arch': ['STDiT'],
  'model.temporal_pos': ['first-block', 'input'],
  'text_encoder.type': ['t5', 'tiny'],
  'vae.type': ['sd-vae', 'identity'],
  'scheduler.type': ['iddpm'],
  'scheduler.noise_schedule': ['linear'],
  'scheduler.loss_weighting': ['uniform', 'p2', 'v'],
  'scheduler.prediction': ['eps', 'v'],
  'dataset.type': ['synthetic', 'csv'],
};

export type OverrideValue = string | number | boolean | readonly (string | number | boolean)[];
export type Overrides = Readonly<Record<string, OverrideValue>> | ReadonlyArray<readonly [string, OverrideValue]>;

export interface ConfigKey {
  /** Dotted path, e.g. 'model.depth'. */
  key: string;
  /** 'number', 'boolean', 'string', a choice list like "'f32' | 'f16'", or 'number[3]'. */
  type: string;
  value: string | number | boolean | (string | number | boolean)[];
}

type Leaf = ConfigKey['value'];
type Node = { [k: string]: Leaf | Node };

const isGroup = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeName(key: string, v: Leaf): string {
  if (Array.isArray(v)) return `${v.length ? typeof v[0] : 'number'}[${v.length}]`;
  if (typeof v === 'string' && CHOICES[key]) return CHOICES[key]!.map((c) => `'${c}'`).join(' | ');
  return typeof v;
}

/** Every settable (leaf) key of a config with its type and current value, in declaration order. */
export function configKeys(config: TrainConfig): ConfigKey[] {
  const out: ConfigKey[] = [];
  const walk = (node: Node, prefix: string) => {
    for (const [k, v] of Object.entries(node)) {
      const key = prefix + k;
      if (isGroup(v)) walk(v, `${key}.`);
      else out.push({ key, type: typeName(key, v), value: Array.isArray(v) ? [...v] : v });
    }
  };
  walk(config as unknown as Node, '');
  return out;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

function unknownKeyError(key: string, config: TrainConfig, why: string): Error {
  const keys = configKeys(config).map((k) => k.key);
  const close = keys.filter((k) => editDistance(k, key) <= Math.max(2, Math.floor(key.length / 5)) || k.endsWith(`.${key}`));
  const hint = close.length ? ` Did you mean ${close.map((k) => `--${k}`).join(' or ')}?` : '';
  return new Error(`${why}.${hint}\nValid config keys:\n  ${configKeys(config).map((k) => `${k.key} (${k.type})`).join('\n  ')}`);
}

function parseScalar(key: string, want: 'number' | 'boolean' | 'string', raw: string | number | boolean, shown: string): string | number | boolean {
  const bad = () => new Error(`config key "${key}" is a ${want}; cannot set it to ${JSON.stringify(raw)}${shown}`);
  if (want === 'number') {
    if (typeof raw === 'number') {
      if (!Number.isFinite(raw)) throw bad();
      return raw;
    }
    if (typeof raw !== 'string' || raw.trim() === '') throw bad();
    const n = Number(raw.trim());
    if (!Number.isFinite(n)) throw bad();
    return n;
  }
  if (want === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    if (typeof raw !== 'string') throw bad();
    const s = raw.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(s)) return true;
    if (['false', '0', 'no', 'off'].includes(s)) return false;
    throw bad();
  }
  if (typeof raw !== 'string') throw bad();
  return raw;
}

/** The value `raw` converted to the type of `current` (the field's existing value), or a clear error. */
function coerce(key: string, current: Leaf, raw: OverrideValue): Leaf {
  if (Array.isArray(current)) {
    const elemType = (current.length ? typeof current[0] : 'number') as 'number' | 'boolean' | 'string';
    const parts: (string | number | boolean)[] = Array.isArray(raw)
      ? [...(raw as readonly (string | number | boolean)[])]
      : typeof raw === 'string'
        ? raw.split(',').map((s) => s.trim())
        : [raw as string | number | boolean];
    const example = current.join(',');
    if (parts.length !== current.length) {
      throw new Error(`config key "${key}" is a list of ${current.length} ${elemType}s (e.g. --${key} ${example}); got ${parts.length} value(s) from ${JSON.stringify(raw)}`);
    }
    return parts.map((p) => parseScalar(key, elemType, p, ` (element; a list of ${current.length} ${elemType}s like ${example})`)) as Leaf;
  }
  const want = typeof current as 'number' | 'boolean' | 'string';
  if (Array.isArray(raw)) throw new Error(`config key "${key}" is a ${want}, not a list; got ${JSON.stringify(raw)}`);
  const v = parseScalar(key, want, raw as string | number | boolean, want === 'boolean' ? ' (use true or false)' : '');
  const choices = CHOICES[key];
  if (choices && !choices.includes(v as string)) {
    throw new Error(`config key "${key}" must be one of ${choices.map((c) => `'${c}'`).join(', ')}; got ${JSON.stringify(raw)}`);
  }
  return v;
}

/**
 * A copy of `config` with the overrides applied (dotted keys for nested fields; dashes in keys are read as
 * underscores, so --batch-size works). Values may be strings as typed on a command line ('1e-4', 'true',
 * '32,32') or already typed. Throws on an unknown key, a group given a value, or a value of the wrong type.
 */
export function applyOverrides(config: TrainConfig, overrides: Overrides): TrainConfig {
  const out = structuredClone(config);
  const entries: [string, OverrideValue][] = Array.isArray(overrides)
    ? (overrides as ReadonlyArray<readonly [string, OverrideValue]>).map(([k, v]) => [k, v])
    : Object.entries(overrides as Record<string, OverrideValue>);
  for (const [rawKey, raw] of entries) {
    const key = rawKey.replace(/-/g, '_');
    const path = key.split('.');
    let node = out as unknown as Node;
    for (let i = 0; i < path.length - 1; i++) {
      const next = node[path[i]!];
      if (!isGroup(next) || !Object.hasOwn(node, path[i]!)) throw unknownKeyError(key, config, `unknown config key "${rawKey}"`);
      node = next;
    }
    const last = path[path.length - 1]!;
    if (!Object.hasOwn(node, last)) throw unknownKeyError(key, config, `unknown config key "${rawKey}"`);
    const current = node[last]!;
    if (isGroup(current)) {
      const sub = configKeys(config).filter((k) => k.key.startsWith(`${key}.`)).map((k) => `--${k.key}`);
      throw new Error(`config key "${rawKey}" is a group; set its fields instead: ${sub.join(', ')}`);
    }
    node[last] = coerce(key, current, raw);
  }
  return out;
}

/** Nested object → dotted-key overrides (arrays are leaves). */
export function flattenOverrides(obj: Record<string, unknown>, prefix = ''): [string, OverrideValue][] {
  const out: [string, OverrideValue][] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (isGroup(v)) out.push(...flattenOverrides(v, `${prefix}${k}.`));
    else out.push([prefix + k, v as OverrideValue]);
  }
  return out;
}

/**
 * A config from a JSON object (a config file, or the `config` stored in a checkpoint): `base` (or else
 * `name`) picks the registered config to start from, and every other field overrides it, type-checked.
 * The result is validated.
 */
export function configFromJson(obj: unknown, what = 'config JSON'): TrainConfig {
  return fromJson(obj, what, []);
}

/** configFromJson with `defaults` applied to the base config before the object's own fields. */
function fromJson(obj: unknown, what: string, defaults: ReadonlyArray<readonly [string, OverrideValue]>): TrainConfig {
  if (!isGroup(obj)) throw new Error(`${what}: expected a JSON object with "base": one of ${configNames().join(', ')}`);
  const base = (obj.base ?? obj.name) as unknown;
  if (typeof base !== 'string' || !CONFIGS[base]) {
    throw new Error(`${what}: "base" (or "name") must name a registered config (${configNames().join(', ')}); got ${JSON.stringify(base)}`);
  }
  const { base: _drop, ...rest } = obj;
  void _drop;
  try {
    return validateConfig(applyOverrides(getConfig(base), [...defaults, ...flattenOverrides(rest)]));
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Keys added after checkpoints were first written, with the value those checkpoints were trained with: a
 * stored config (checkpoint metadata) that lacks one of them meant this value, whatever the registered
 * config's default is now (the tiny config moved to temporal_pos 'input' and prediction 'v' in session 6).
 */
export const STORED_CONFIG_DEFAULTS: ReadonlyArray<readonly [string, string]> = [
  ['model.temporal_pos', 'first-block'],
  ['scheduler.prediction', 'eps'],
  ['scheduler.loss_weighting', 'uniform'],
  ['matmul_precision', 'highest'],
];

/** Keys that change what trained weights mean without changing their shapes: a resume must keep them. */
const WEIGHT_MEANING_KEYS = ['model.temporal_pos', 'scheduler.prediction'];

const getPath = (obj: unknown, key: string): unknown => key.split('.').reduce<unknown>((o, k) => (isGroup(o) ? o[k] : undefined), obj);

/** A config stored with trained weights (checkpoint metadata): the keys it lacks take STORED_CONFIG_DEFAULTS. */
export function configFromStored(obj: unknown, what = 'stored config'): TrainConfig {
  return fromJson(obj, what, STORED_CONFIG_DEFAULTS);
}

/**
 * Why `config` cannot resume weights trained with `stored` (a checkpoint's metadata config), one line per key
 * whose value changes what the weights mean (shapes are checked separately); empty when it can or when
 * the checkpoint holds no config.
 */
export function resumeConflicts(stored: unknown, config: TrainConfig): string[] {
  if (!isGroup(stored)) return []; // a checkpoint written without its config: nothing to compare
  const was = configFromStored(stored, 'checkpoint config');
  return WEIGHT_MEANING_KEYS.filter((k) => getPath(was, k) !== getPath(config, k)).map(
    (k) => `${k}: the checkpoint was trained with ${JSON.stringify(getPath(was, k))}, this run has ${JSON.stringify(getPath(config, k))} (pass --${k} ${String(getPath(was, k))})`,
  );
}
