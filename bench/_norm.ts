// Shared by bench/layernorm.ts and bench/adaln.ts, which time the same row kernels (ops/layernorm.ts): result
// rows, variant labels, the forward's part of a variant, the packed f16 kernel's block/slot settings and the
// packed-vs-unit summary printed after the table.
import type { NormBackwardVariant, NormVariant } from '../engine/ops/layernorm.js';
import type { Gpu } from '../engine/gpu.js';
import { best, copyCeiling, table, torch, type Timing } from './_harness.js';

export interface NormRow {
  name: string;
  dtype: string;
  ms: number;
  gbs: number;
  /** GB/s with the calls back to back in one timed pass (NaN when not timed so). */
  passGbs: number;
}

/** A result row from a timing and the bytes one call moves. */
export function normRow(name: string, dtype: string, t: Timing, bytes: number): NormRow {
  const ms = best(t);
  return { name, dtype, ms, gbs: bytes / ms / 1e6, passGbs: bytes / t.passMs / 1e6 };
}

export interface NormBenchVariant extends NormBackwardVariant {
  rowsPerBlock?: number;
}

const KEYS = ['packed', 'subgroupRows', 'slots', 'wideF16', 'fastPack', 'lean', 'perThread', 'rowsPerBlock', 'forwardRowsPerBlock', 'finalSum', 'colsumTile'] as const;
const SHORT: Partial<Record<(typeof KEYS)[number], string>> = { rowsPerBlock: 'rpb', forwardRowsPerBlock: 'frpb', perThread: 'per', colsumTile: 'ct' };

/** ' packed slots 4 rpb 64 finalSum colsum' for the fields set ({packed: false}: ' unit'). */
export const variantTag = (v: NormBenchVariant): string =>
  KEYS.filter((k) => v[k] !== undefined && (v[k] !== false || k === 'packed'))
    .map((k) => (k === 'packed' ? (v[k] ? ' packed' : ' unit') : ` ${SHORT[k] ?? k}${v[k] === true ? '' : ` ${v[k]}`}`))
    .join('');

/** The fields of a variant the forward takes. */
export const forwardVariant = (v: NormBenchVariant): NormVariant => ({
  slots: v.slots,
  wideF16: v.wideF16,
  fastPack: v.fastPack,
  subgroupRows: v.subgroupRows,
  packed: v.packed,
  forwardRowsPerBlock: v.forwardRowsPerBlock,
  perThread: v.perThread,
});

/** Block and slot settings of the packed f16 kernel timed beside its defaults in the default run. */
export const PACKED_SETTINGS: readonly NormBenchVariant[] = [
  { packed: true, rowsPerBlock: 32, forwardRowsPerBlock: 8 },
  { packed: true, rowsPerBlock: 128, forwardRowsPerBlock: 32 },
  { packed: true, slots: 8, rowsPerBlock: 128, forwardRowsPerBlock: 32 },
  { packed: true, slots: 2, rowsPerBlock: 32, forwardRowsPerBlock: 8 },
];

/** Prints, under `title`, each case's f16 rows `<case> packed` and `<case> unit` side by side in % of copy16. */
export function printPackedVsUnit(title: string, results: readonly NormRow[], copy16: number, cases: readonly string[]): void {
  const pct = (name: string) => {
    const r = results.find((q) => q.dtype === 'f16' && q.name === name);
    return r ? `${((100 * r.gbs) / copy16).toFixed(1)}% (${r.ms.toFixed(4)} ms)` : '-';
  };
  const width = Math.max(...cases.map((c) => c.length));
  console.log(`\n${title}`);
  for (const c of cases) console.log(`  ${c.padEnd(width)}  packed ${pct(`${c} packed`)}  |  unit ${pct(`${c} unit`)}`);
}

/** One of our rows beside PyTorch's (bench/torch_norm.py): [our dtype, our row name, torch case, pass]. */
export type TorchPair = readonly ['f32' | 'f16', string, string, 'fwd' | 'bwd'];

/**
 * Prints our GB/s beside PyTorch's for the same case, dtype (f16 ↔ float16; bfloat16 for context) and byte
 * count, measured on the same GPU in the same run; nothing when PyTorch is absent (--no-torch or no python).
 */
export function printVsTorch(title: string, results: readonly NormRow[], rows: number, C: number, samples: number, pairs: readonly TorchPair[]): void {
  const ref = torch('torch_norm.py', [JSON.stringify({ rows, C, samples })]);
  if (!ref) return;
  const gbs = (kase: string, dtype: string, pass: string) => {
    const r = ref.find((q) => q.case === kase && q.dtype === dtype);
    return r ? Number(r[`${pass}_gbs`]) : NaN;
  };
  const cells = pairs.map(([dtype, name, kase, pass]) => {
    const ours = results.find((q) => q.dtype === dtype && q.name === name)?.gbs ?? NaN;
    const t = gbs(kase, dtype === 'f32' ? 'float32' : 'float16', pass);
    return [`${name}`, dtype, ours, t, ours / t, gbs(kase, 'bfloat16', pass)];
  });
  console.log(`\n${title}`);
  console.log(table(['case', 'dtype', 'GB/s', 'torch GB/s', 'ratio', 'torch bf16 GB/s'], cells));
}

/**
 * Prints the results table under `label` and `shape`: GB/s in % of the 1 GiB copy (`ceiling`, the issue's measure)
 * and of the same 16-byte copy over one tensor of `shape` in the row's dtype (context: a kernel this small also
 * pays launch and tail time, as does that copy); and in two more columns the same calls timed back to back in one
 * pass (as a training step runs them and as PyTorch's CUDA events time them) against the 1 GiB copy timed so.
 */
export async function printNormTable(gpu: Gpu, label: string, shape: readonly number[], results: readonly NormRow[], ceiling: { copy16: number; copy16Pass: number; copyBuffer: number }): Promise<void> {
  const elements = shape.reduce((a, b) => a * b, 1);
  const sameSize = { f32: (await copyCeiling(gpu, (elements * 4) / 2 ** 20)).copy16, f16: (await copyCeiling(gpu, (elements * 2) / 2 ** 20)).copy16 };
  const dims = `[${shape.join(', ')}]`;
  console.log(`\n${label} ${dims}; copy ceiling: ${ceiling.copy16.toFixed(0)} GB/s (16-byte copy kernel), ${ceiling.copyBuffer.toFixed(0)} GB/s (copyBufferToBuffer); the same copy of one ${dims} tensor: f32 ${sameSize.f32.toFixed(0)} GB/s, f16 ${sameSize.f16.toFixed(0)} GB/s`);
  console.log(`(in a pass: the calls back to back in one timed compute pass; the 1 GiB copy so timed: ${ceiling.copy16Pass.toFixed(0)} GB/s)`);
  const header = ['case', 'dtype', 'ms', 'GB/s', '% copy16', '% same-size copy', 'GB/s in a pass', '% copy16 in a pass'];
  console.log(table(header, results.map((r) => [r.name, r.dtype, r.ms, r.gbs, (100 * r.gbs) / ceiling.copy16, (100 * r.gbs) / sameSize[r.dtype as 'f32' | 'f16'], r.passGbs, (100 * r.passGbs) / ceiling.copy16Pass])));
}
