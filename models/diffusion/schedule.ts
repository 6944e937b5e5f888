// The IDDPM noise schedule (DiT / Open-Sora `create_diffusion`), all in f64 on the CPU:
// linear betas over 1000 steps, the derived alphas_cumprod / posterior arrays, and respacing
// (`space_timesteps`: "100", "25,50", "ddim50") to a shorter schedule whose betas are recomputed from the
// kept alphas_cumprod, with `timestepMap` giving the original timestep of every respaced index.

export interface Schedule {
  /** Steps of this schedule (1000, or the respaced count). */
  readonly numTimesteps: number;
  /** Original (1000-step) timestep of each index: identity, or the kept steps after respacing. */
  readonly timestepMap: Int32Array;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  readonly alphasCumprodPrev: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  readonly sqrtRecipAlphasCumprod: Float64Array;
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  readonly posteriorVariance: Float64Array;
  /** log of posteriorVariance with its first entry (0) replaced by the second. */
  readonly posteriorLogVarianceClipped: Float64Array;
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;
  /** log(betas): the upper end of the learned-range variance. */
  readonly logBetas: Float64Array;
  /** log of [posteriorVariance[1], betas[1:]]: the fixed ("large") variance when sigma is not learned. */
  readonly fixedLargeLogVariance: Float64Array;
}

export const TRAIN_STEPS = 1000;

/** np.linspace(scale·1e-4, scale·0.02, n) with scale = 1000 / n (upstream's 'linear' schedule). */
export function linearBetas(n = TRAIN_STEPS): Float64Array {
  checkSteps('linearBetas', n, Infinity);
  const scale = 1000 / n;
  const start = scale * 0.0001;
  const stop = scale * 0.02;
  const out = new Float64Array(n);
  const step = n > 1 ? (stop - start) / (n - 1) : 0;
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  if (n > 1) out[n - 1] = stop;
  return out;
}

function checkSteps(what: string, n: number, max: number): void {
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new RangeError(`${what}: steps ${n} must be an integer in 1..${max}`);
  }
}

/** The schedule of `betas` (each in (0, 1)); `timestepMap` defaults to the identity. */
export function scheduleFromBetas(betas: Float64Array, timestepMap?: Int32Array): Schedule {
  const n = betas.length;
  if (n === 0) throw new RangeError('scheduleFromBetas: betas is empty');
  for (const b of betas) if (!(b > 0 && b <= 1)) throw new RangeError(`scheduleFromBetas: beta ${b} is outside (0, 1]`);
  const map = timestepMap ?? Int32Array.from({ length: n }, (_, i) => i);
  if (map.length !== n) throw new RangeError(`scheduleFromBetas: timestepMap has ${map.length} entries for ${n} betas`);
  const f = (g: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => g(i));
  const ac = new Float64Array(n);
  let prod = 1;
  for (let i = 0; i < n; i++) ac[i] = prod *= 1 - betas[i]!;
  const acPrev = f((i) => (i === 0 ? 1 : ac[i - 1]!));
  const postVar = f((i) => (betas[i]! * (1 - acPrev[i]!)) / (1 - ac[i]!));
  return {
    numTimesteps: n,
    timestepMap: map,
    betas,
    alphasCumprod: ac,
    alphasCumprodPrev: acPrev,
    sqrtAlphasCumprod: f((i) => Math.sqrt(ac[i]!)),
    sqrtOneMinusAlphasCumprod: f((i) => Math.sqrt(1 - ac[i]!)),
    sqrtRecipAlphasCumprod: f((i) => Math.sqrt(1 / ac[i]!)),
    sqrtRecipm1AlphasCumprod: f((i) => Math.sqrt(1 / ac[i]! - 1)),
    posteriorVariance: postVar,
    posteriorLogVarianceClipped: f((i) => Math.log(i === 0 && n > 1 ? postVar[1]! : postVar[i]!)),
    posteriorMeanCoef1: f((i) => (betas[i]! * Math.sqrt(acPrev[i]!)) / (1 - ac[i]!)),
    posteriorMeanCoef2: f((i) => ((1 - acPrev[i]!) * Math.sqrt(1 - betas[i]!)) / (1 - ac[i]!)),
    logBetas: f((i) => Math.log(betas[i]!)),
    fixedLargeLogVariance: f((i) => Math.log(i === 0 && n > 1 ? postVar[1]! : betas[i]!)),
  };
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * upstream `space_timesteps`: the kept steps of a `numTimesteps` schedule, sorted. `counts` is "100"
 * (evenly strided, both ends kept), comma-separated counts per equal section ("10,15,20"), a number, or
 * "ddimN" (the integer stride giving exactly N steps from 0).
 */
export function spaceTimesteps(numTimesteps: number, counts: string | number): number[] {
  const spec = String(counts).trim();
  if (spec.startsWith('ddim')) {
    const want = Number(spec.slice(4));
    checkSteps(`spaceTimesteps("${spec}")`, want, numTimesteps);
    for (let stride = 1; stride < numTimesteps; stride++) {
      if (Math.ceil(numTimesteps / stride) === want) return Array.from({ length: want }, (_, i) => i * stride);
    }
    throw new RangeError(`spaceTimesteps: cannot create exactly ${want} steps with an integer stride from ${numTimesteps}; use a plain count such as "${want}"`);
  }
  const sections = spec.split(',').map((s) => Number(s.trim()));
  if (sections.length === 0 || sections.some((c) => !Number.isInteger(c) || c < 1)) {
    throw new RangeError(`spaceTimesteps: "${spec}" is not a step count; use e.g. "100", "10,15,20" or "ddim50"`);
  }
  const sizePer = Math.floor(numTimesteps / sections.length);
  const extra = numTimesteps % sections.length;
  const steps = new Set<number>();
  let start = 0;
  sections.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count) throw new RangeError(`spaceTimesteps: cannot divide a section of ${size} steps into ${count} (at most ${size}; the schedule has ${numTimesteps} steps)`);
    const stride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      steps.add(start + roundHalfEven(cur));
      cur += stride;
    }
    start += size;
  });
  return [...steps].sort((a, b) => a - b);
}

/** upstream `SpacedDiffusion`: keeps `steps` of `base` and recomputes betas = 1 − ᾱ_t / ᾱ_prev_kept. */
export function respace(base: Schedule, steps: readonly number[]): Schedule {
  const keep = new Set(steps);
  const betas: number[] = [];
  const map: number[] = [];
  let last = 1;
  base.alphasCumprod.forEach((ac, i) => {
    if (!keep.has(i)) return;
    betas.push(1 - ac / last);
    last = ac;
    map.push(base.timestepMap[i]!);
  });
  if (map.length !== keep.size) throw new RangeError(`respace: some of the steps are outside 0..${base.numTimesteps - 1}`);
  return scheduleFromBetas(Float64Array.from(betas), Int32Array.from(map));
}

/** create_diffusion's schedule: 1000 linear betas, respaced by `respacing` ('' or undefined: all 1000). */
export function createSchedule(respacing?: string | number): Schedule {
  const base = scheduleFromBetas(linearBetas(TRAIN_STEPS));
  if (respacing === undefined || respacing === '' || String(respacing) === String(TRAIN_STEPS)) return base;
  return respace(base, spaceTimesteps(TRAIN_STEPS, respacing));
}
