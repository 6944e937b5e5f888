// State dicts: a model's parameters and buffers by upstream name, loaded from / read to host arrays with
// strict validation (a missing, extra or mis-shaped tensor is an error naming every offender).
import type { Param } from '../engine/autograd.js';
import { ShapeError, shapeStr } from '../engine/errors.js';
import type { Module } from './nn.js';

export interface HostTensor {
  shape: readonly number[];
  data: ArrayLike<number>;
}

export class StateDictError extends Error {
  override name = 'StateDictError';
}

/** Every parameter and buffer of a model by upstream name. */
export function stateDict(model: Module): Map<string, Param> {
  return model.namedParams();
}

/** Trainable parameters only (what the optimizer updates). */
export function trainableParams(model: Module): Map<string, Param> {
  return new Map([...model.namedParams()].filter(([, p]) => p.requiresGrad));
}

export interface LoadOptions {
  /** Names (or prefixes ending in '.') that may be absent from the source, keeping the model's own values. */
  optional?: readonly string[];
  /** Where the tensors came from, for error messages. */
  source?: string;
}

/** Writes `tensors` into the model's parameters and buffers (uploads; ordered before later GPU work). */
export function loadStateDict(model: Module, tensors: ReadonlyMap<string, HostTensor>, opts: LoadOptions = {}): void {
  const own = stateDict(model);
  const source = opts.source ?? 'the state dict';
  const isOptional = (k: string) => (opts.optional ?? []).some((o) => (o.endsWith('.') ? k.startsWith(o) : k === o));
  const missing = [...own.keys()].filter((k) => !tensors.has(k) && !isOptional(k));
  const extra = [...tensors.keys()].filter((k) => !own.has(k));
  const misshaped = [...tensors.entries()]
    .filter(([k, t]) => own.has(k) && shapeStr(own.get(k)!.shape) !== shapeStr(t.shape))
    .map(([k, t]) => `${k}: model ${shapeStr(own.get(k)!.shape)}, ${source} ${shapeStr(t.shape)}`);
  const problems = [
    ...(missing.length ? [`missing from ${source}: ${missing.join(', ')}`] : []),
    ...(extra.length ? [`not in the model: ${extra.join(', ')}`] : []),
    ...(misshaped.length ? [`shape mismatch: ${misshaped.join('; ')}`] : []),
  ];
  if (problems.length) {
    throw new StateDictError(`cannot load ${source} into the model: ${problems.join(' | ')}. Check that the checkpoint matches the model config (hidden size, depth, patch, channels, input size)`);
  }
  for (const [k, t] of tensors) {
    const p = own.get(k)!;
    if (t.data.length !== p.value.size) throw new ShapeError(`${k}: ${t.data.length} values for ${shapeStr(t.shape)}`);
    p.value.gpu.write(p.value, t.data);
    if (p.half) p.refreshHalf(p.value.gpu);
  }
}

/** Reads every parameter and buffer to host memory (f32). */
export async function readStateDict(model: Module): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, p] of stateDict(model)) out.set(k, { shape: [...p.shape], data: (await p.value.read()) as Float32Array });
  return out;
}
