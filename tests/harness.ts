// Shared test harness: one device per run (poisoned allocations), seeded random inputs, tolerance checks,
// and pass/fail/skip counters for the closing line CI reads.
import { suite as uvuSuite } from 'uvu';
import { Gpu } from '../engine/gpu.js';

export const counts = { passed: 0, failed: 0, skipped: 0 };

/** The run's seed: TEST_SEED to reproduce a failure, else fresh every run. Printed with every failure. */
export const SEED = Number(process.env.TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));

let shared: Promise<Gpu> | null = null;
/** The device under test (WEBGPU_DEVICE chooses; default auto: GPU, else SwiftShader, else llvmpipe). */
export function testGpu(): Promise<Gpu> {
  shared ??= Gpu.open({ poison: true });
  return shared;
}

export async function describeDevice(): Promise<string> {
  if (!shared) return 'device: not opened';
  try {
    const g = await shared;
    const i = g.info;
    return `device: ${i.backend} (${i.adapter}); f16 ${i.f16}, subgroups ${i.subgroups}, subgroup-matrix ${i.subgroupMatrix.length > 0}, timestamps ${i.timestamps}; seed ${SEED}`;
  } catch (e) {
    return `device: failed to open: ${(e as Error).message}`;
  }
}

export interface Ctx {
  gpu: Gpu;
  rng: Rng;
}

/** A uvu suite whose tests get the device and a seeded RNG, and are counted. */
export function suite(name: string) {
  const s = uvuSuite(name);
  let index = 0;
  return {
    test(title: string, fn: (ctx: Ctx) => Promise<void> | void) {
      const seed = (SEED + 7919 * ++index) >>> 0;
      s(title, async () => {
        try {
          await fn({ gpu: await testGpu(), rng: new Rng(seed) });
          counts.passed++;
        } catch (e) {
          counts.failed++;
          const msg = e instanceof Error ? e.message : String(e);
          throw new Error(`${msg}\n    (${name} › ${title}; reproduce with TEST_SEED=${SEED})`, { cause: e });
        }
      });
    },
    /** A test that needs a device feature: skipped (and counted, with the reason) when it is absent. */
    gpuTest(title: string, needs: (gpu: Gpu) => string | null, fn: (ctx: Ctx) => Promise<void> | void) {
      this.test(title, async (ctx) => {
        const missing = needs(ctx.gpu);
        if (missing) {
          counts.passed--; // undone below: a skip is neither a pass nor a fail
          counts.skipped++;
          console.log(`  skipped: ${name} › ${title}: ${missing}`);
          return;
        }
        await fn(ctx);
      });
    },
    run: () => s.run(),
  };
}

/** Small fast deterministic PRNG (mulberry32) with normal samples. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  uniform(n: number, lo = -1, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.next();
    return out;
  }
  normal(n: number, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = Math.max(this.next(), 1e-12);
      out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
    }
    return out;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
}

export interface CloseOptions {
  /** Relative tolerance; elements pass when |got − want| ≤ rtol·(|want| + rms(want)). */
  rtol: number;
  what?: string;
}

/** Compares with a reference; throws with max abs / rel error and the worst element. Returns the errors. */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, opts: CloseOptions): { maxAbs: number; maxRel: number } {
  const what = opts.what ?? 'output';
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length}, expected ${want.length}`);
  if (want.length === 0) throw new Error(`${what}: empty reference; a test must compare something`);
  let sq = 0;
  for (let i = 0; i < want.length; i++) sq += want[i]! * want[i]!;
  const rms = Math.sqrt(sq / want.length);
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const err = Math.abs(g - w);
    if (!Number.isFinite(g) && g !== w) {
      throw new Error(`${what}: element ${i} is ${g} (expected ${w}): the kernel left it unwritten or overflowed`);
    }
    maxAbs = Math.max(maxAbs, err);
    maxRel = Math.max(maxRel, err / (Math.abs(w) + rms || 1));
    const ratio = err / (opts.rtol * (Math.abs(w) + rms) || 1e-30);
    if (ratio > worstRatio) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (worstRatio > 1) {
    throw new Error(
      `${what}: element ${worst} = ${got[worst]} but reference = ${want[worst]}; max abs err ${maxAbs.toExponential(2)}, max rel err ${maxRel.toExponential(2)} > rtol ${opts.rtol}`,
    );
  }
  return { maxAbs, maxRel };
}

/** Asserts that `fn` throws (or rejects) with a message matching `pattern`. */
export async function assertThrows(fn: () => unknown, pattern: RegExp, what: string): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (!pattern.test(msg)) throw new Error(`${what}: threw "${msg}", which does not match ${pattern}`);
    return e as Error;
  }
  throw new Error(`${what}: expected an error matching ${pattern}, but nothing was thrown`);
}
