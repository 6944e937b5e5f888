// Command-line parsing for the CLI tools, on node:util parseArgs:
//   <program> <command> [--config name|file.json] [command options] [--<config key> value …]
// The command's own options (declared in a CliSpec) go through parseArgs (strict); every other --key is a
// config override (`--lr 1e-4`, `--model.depth 4`, `--image_size 32,32`, `--model.grad_checkpoint` /
// `--no-model.grad_checkpoint`, `--key=value`), type-checked against the chosen config (configs/index.ts).
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { applyOverrides, configFromJson, configKeys, configNames, CONFIGS, DEFAULT_CONFIG, getConfig, validateConfig, type TrainConfig } from '../configs/index.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  description: string;
  default?: string | boolean;
}

export interface CommandSpec {
  description: string;
  options?: Record<string, OptionSpec>;
  /** Whether the command takes --config and config overrides (default true). */
  config?: boolean;
}

export interface CliSpec {
  program: string;
  description?: string;
  commands: Record<string, CommandSpec>;
  /** Command used when none is given (else a usage error). */
  defaultCommand?: string;
}

export interface ParsedCli {
  command: string;
  /** --help / -h was given: print helpText(spec, command, config) and exit 0. */
  help: boolean;
  /** The command's options (with defaults filled in). */
  options: Record<string, string | boolean | undefined>;
  /** The --config value (registry name or file path). */
  configSource: string;
  /** The config with overrides applied and validated (undefined for commands without a config). */
  config: TrainConfig | undefined;
  /** The overrides as given, in order. */
  overrides: [string, string][];
  /** Positional arguments after the command. */
  positionals: string[];
}

/** A mistake on the command line: print the message (and a pointer to --help) and exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const COMMON: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', description: 'show this help (for train: with the chosen config’s keys and values)' },
};
const CONFIG_OPTION: OptionSpec = { type: 'string', short: 'c', description: `config: a registered name (${configNames().join(', ')}) or a .json file {"base": name, …overrides}`, default: DEFAULT_CONFIG };

/** A registered config by name, or a JSON config file ({"base": "<name>", …fields to override}). */
export function loadConfigSource(src: string): TrainConfig {
  if (CONFIGS[src]) return getConfig(src);
  if (existsSync(src)) {
    if (!src.endsWith('.json')) throw new UsageError(`--config ${src}: config files must be .json ({"base": "${DEFAULT_CONFIG}", "lr": 1e-4, "model": {"depth": 4}})`);
    let obj: unknown;
    try {
      obj = JSON.parse(readFileSync(src, 'utf8'));
    } catch (e) {
      throw new UsageError(`--config ${src}: not valid JSON (${(e as Error).message})`);
    }
    return configFromJson(obj, src);
  }
  throw new UsageError(`--config ${src}: no registered config of that name (${configNames().join(', ')}) and no such file`);
}

function optionsOf(spec: CliSpec, command: string | undefined): Record<string, OptionSpec> {
  const cmd = command ? spec.commands[command] : undefined;
  const withConfig = cmd ? cmd.config !== false : Object.values(spec.commands).some((c) => c.config !== false);
  return { ...COMMON, ...(withConfig ? { config: CONFIG_OPTION } : {}), ...(cmd?.options ?? {}) };
}

const BOOL_WORDS = /^(true|false|1|0|yes|no|on|off)$/i;

/** Parses argv (without node and the script: process.argv.slice(2)). Throws UsageError on mistakes. */
export function parseCli(argv: readonly string[], spec: CliSpec): ParsedCli {
  // all option names any command knows (so `--resume x` is not mistaken for a config key before we know the command)
  const known = new Map<string, OptionSpec>();
  for (const name of [undefined, ...Object.keys(spec.commands)]) for (const [k, o] of Object.entries(optionsOf(spec, name))) known.set(k, o);
  const shorts = new Map([...known].filter(([, o]) => o.short).map(([k, o]) => [`-${o.short}`, k]));

  // 1) the config source, needed to know which config keys are booleans
  let configSource = DEFAULT_CONFIG;
  for (let i = 0; i < argv.length && argv[i] !== '--'; i++) {
    const a = argv[i]!;
    if (a === '--config' || a === '-c') configSource = argv[i + 1] ?? '';
    else if (a.startsWith('--config=')) configSource = a.slice('--config='.length);
  }
  let base: TrainConfig | undefined;
  const baseConfig = () => (base ??= loadConfigSource(configSource));
  const help = argv.includes('--help') || argv.includes('-h');

  // 2) split config overrides from the rest
  const rest: string[] = [];
  const overrides: [string, string][] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (!a.startsWith('--') || a === '--') {
      // the value of a known string option may look like anything (even '-x'): pass it inline
      const name = shorts.get(a);
      if (name && known.get(name)!.type === 'string' && i + 1 < argv.length) rest.push(`--${name}=${argv[++i]!}`);
      else rest.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (known.has(name)) {
      if (eq < 0 && known.get(name)!.type === 'string' && i + 1 < argv.length) rest.push(`--${name}=${argv[++i]!}`);
      else rest.push(a);
      continue;
    }
    if (help) continue; // --help shows the config; overrides are not applied
    const key = name.replace(/-/g, '_');
    const isBool = (k: string) => configKeys(baseConfig()).some((c) => c.key === k && c.type === 'boolean');
    if (eq >= 0) overrides.push([key, a.slice(eq + 1)]);
    else if (key.startsWith('no_') && isBool(key.slice(3))) overrides.push([key.slice(3), 'false']);
    else if (name.startsWith('no-') && isBool(name.slice(3).replace(/-/g, '_'))) overrides.push([name.slice(3).replace(/-/g, '_'), 'false']);
    else if (isBool(key)) {
      const next = argv[i + 1];
      if (next !== undefined && BOOL_WORDS.test(next)) overrides.push([key, argv[++i]!]);
      else overrides.push([key, 'true']);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        // no value: let applyOverrides say whether the key exists, else say the value is missing
        applyOverridesOrUsage(baseConfig(), [[key, '']], true);
        throw new UsageError(`--${name} needs a value (e.g. --${name} <value> or --${name}=<value>)`);
      }
      overrides.push([key, argv[++i]!]);
    }
  }

  // 3) the command and its options
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      options: Object.fromEntries([...known].map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}) }])),
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const positionals = [...parsed.positionals];
  let command = positionals.shift() ?? spec.defaultCommand;
  if (command === undefined) {
    if (help) command = '';
    else throw new UsageError(`no command given; commands: ${Object.keys(spec.commands).join(', ')}`);
  }
  if (command && !spec.commands[command]) throw new UsageError(`unknown command "${command}"; commands: ${Object.keys(spec.commands).join(', ')}`);
  const own = optionsOf(spec, command || undefined);
  const options: Record<string, string | boolean | undefined> = {};
  for (const [k, v] of Object.entries(parsed.values)) {
    if (!own[k]) throw new UsageError(`--${k} is not an option of "${command}"`);
    options[k] = v as string | boolean;
  }
  for (const [k, o] of Object.entries(own)) if (options[k] === undefined && o.default !== undefined) options[k] = o.default;
  const usesConfig = command === '' || spec.commands[command]?.config !== false;
  if (!usesConfig && overrides.length) throw new UsageError(`"${command}" takes no config; unknown option(s): ${overrides.map(([k]) => `--${k}`).join(', ')}`);
  let config: TrainConfig | undefined;
  if (usesConfig) config = help ? baseConfig() : validateOrUsage(applyOverridesOrUsage(baseConfig(), overrides));
  return { command, help: !!options.help, options, configSource, config, overrides, positionals };
}

function applyOverridesOrUsage(config: TrainConfig, overrides: [string, string][], probeOnly = false): TrainConfig {
  try {
    return applyOverrides(config, overrides);
  } catch (e) {
    const msg = (e as Error).message;
    if (probeOnly && !/unknown config key|is a group/.test(msg)) return config; // key exists: the caller reports the missing value
    throw new UsageError(msg);
  }
}

function validateOrUsage(config: TrainConfig): TrainConfig {
  try {
    return validateConfig(config);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

const fmtValue = (v: unknown) => (Array.isArray(v) ? v.join(',') : typeof v === 'string' ? (v === '' ? "''" : v) : String(v));

/** Help text: usage, commands, the command's options, and (with a config) every config key and value. */
export function helpText(spec: CliSpec, command?: string, config?: TrainConfig): string {
  const lines: string[] = [];
  const cmd = command ? spec.commands[command] : undefined;
  const takesConfig = !cmd || cmd.config !== false;
  lines.push(`usage: ${spec.program} ${command || '<command>'} [options]${takesConfig ? ' [--<config key> <value> …]' : ''}`);
  if (cmd) lines.push('', cmd.description);
  else if (spec.description) lines.push('', spec.description);
  if (!cmd) {
    lines.push('', 'commands:');
    const w = Math.max(...Object.keys(spec.commands).map((c) => c.length));
    for (const [name, c] of Object.entries(spec.commands)) lines.push(`  ${name.padEnd(w)}  ${c.description}`);
  }
  const opts = optionsOf(spec, command || undefined);
  lines.push('', 'options:');
  const label = (k: string, o: OptionSpec) => `${o.short ? `-${o.short}, ` : '    '}--${k}${o.type === 'string' ? ' <value>' : ''}`;
  const w = Math.max(...Object.entries(opts).map(([k, o]) => label(k, o).length));
  for (const [k, o] of Object.entries(opts)) {
    lines.push(`  ${label(k, o).padEnd(w)}  ${o.description}${o.default !== undefined && o.type === 'string' ? ` (default ${o.default})` : ''}`);
  }
  if (config) {
    lines.push('', `config "${config.name}" — override any key: --key value, --group.key value, --list a,b; booleans: --key / --no-key:`);
    const keys = configKeys(config);
    const kw = Math.max(...keys.map((k) => k.key.length));
    const vw = Math.max(...keys.map((k) => fmtValue(k.value).length));
    for (const k of keys) lines.push(`  --${k.key.padEnd(kw)}  ${fmtValue(k.value).padEnd(vw)}  (${k.type})`);
    lines.push('', `registered configs: ${Object.entries(CONFIGS).map(([n, c]) => `${n} — ${c.description}`).join('; ')}`);
  }
  return lines.join('\n');
}
