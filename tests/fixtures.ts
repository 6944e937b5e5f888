// Upstream reference fixtures (tests/fixtures/*.safetensors, copied from the PyTorch reference runs; key
// scheme in README "Parity fixtures"): loading and the state-dict view of `param.*` / `buffer.*` keys.
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { readSafetensors } from '../engine/safetensors-file.js';
import { toFloat64, type StFile } from '../engine/safetensors.js';
import type { HostTensor } from '../models/state.js';
import type { Module } from '../models/nn.js';
import { assertClose } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const cache = new Map<string, StFile>();

/** tests/fixtures/<name>.safetensors (the bundle runs from dist/, the sources from tests/). */
export function fixture(name: 'stdit' | 'dit' | 'iddpm' | 't5'): StFile {
  let f = cache.get(name);
  if (!f) {
    const root = here.endsWith('dist') ? join(here, '..', 'tests') : here;
    f = readSafetensors(join(root, 'fixtures', `${name}.safetensors`));
    cache.set(name, f);
  }
  return f;
}

/** The model's state dict in a fixture: `param.<name>` and `buffer.<name>` without the prefix. */
export function fixtureState(f: StFile): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [k, t] of f.tensors) {
    const m = /^(param|buffer)\.(.*)$/.exec(k);
    if (m) out.set(m[2]!, { shape: t.shape, data: toFloat64(t) });
  }
  return out;
}

/** Compares every trainable parameter's gradient with the fixture's `grad.<name>` (and checks none is left out). */
export async function checkParamGrads(model: Module, f: StFile, rtol: number): Promise<void> {
  let checked = 0;
  for (const [name, p] of model.namedParams()) {
    if (!p.requiresGrad) continue;
    if (!p.grad) throw new Error(`no gradient reached ${name}`);
    assertClose(await p.grad.read(), toFloat64(f.tensors.get(`grad.${name}`)!), { rtol, what: `grad of ${name}` });
    checked++;
  }
  const want = [...f.tensors.keys()].filter((k) => k.startsWith('grad.') && !k.startsWith('grad.input.')).length;
  if (checked !== want) throw new Error(`checked ${checked} parameter gradients; the fixture has ${want}`);
}
