// Tensor-core flash attention forward (general and packed kernels) and backward: against an f64 softmax-attention
// reference on the GPU; compiled on Dawn's null backend everywhere.
import * as assert from 'uvu/assert';
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { attentionDelta, attentionTcFits, attentionForwardTc, attentionBackwardTc, attentionTcBackwardPackedKernel, attentionTcForwardKernel, packable, stagingWidths } from '../engine/ops/attention_tc.js';
import { tensorcoreUnavailable } from '../engine/ops/matmul.js';
import { roundToF16 } from '../engine/dtype.js';
import { Gpu } from '../engine/gpu.js';
import { GpuError } from '../engine/errors.js';
import { refBackward, refForward } from './ref/attention.js';

/**
 * grow: scores that climb along the keys (log2 units, i.e. of scale·log2(e)·q·k) so that the general kernel's
 * reference max must be raised (by more than its TAU = 8 several times): 'ramp' adds `log2` over the whole
 * sequence, 'spike' one key `log2` above the rest in the middle. See growScores.
 */
interface Case { B: number; H: number; Nq: number; Nk: number; D: number; kvLen?: number[]; outF16?: boolean; noVec?: boolean; noPack?: boolean; narrow?: boolean; grow?: { kind: 'ramp' | 'spike'; log2: number } }

const cases: Case[] = [

  { B: 1, H: 1, Nq: 64, Nk: 64, D: 64 },
  { B: 2, H: 3, Nq: 77, Nk: 77, D: 72 },
  { B: 1, H: 2, Nq: 200, Nk: 150, D: 72 },
  { B: 16, H: 2, Nq: 16, Nk: 16, D: 72 },
  { B: 16, H: 2, Nq: 16, Nk: 16, D: 72, noPack: true },
  { B: 2, H: 3, Nq: 77, Nk: 140, D: 72, narrow: true },
  { B: 1, H: 2, Nq: 100, Nk: 90, D: 112 },
  { B: 5, H: 3, Nq: 13, Nk: 9, D: 40, outF16: true },
  { B: 3, H: 3, Nq: 16, Nk: 12, D: 72, kvLen: [12, 1, 5] },
  { B: 3, H: 2, Nq: 50, Nk: 12, D: 72, kvLen: [1, 7, 12] },
  { B: 1, H: 1, Nq: 33, Nk: 130, D: 24, outF16: true },
  { B: 2, H: 3, Nq: 77, Nk: 77, D: 72, noVec: true },
  { B: 1, H: 2, Nq: 200, Nk: 150, D: 72, noVec: true },
  { B: 3, H: 2, Nq: 70, Nk: 200, D: 72, kvLen: [200, 130, 64] },
  { B: 1, H: 1, Nq: 33, Nk: 130, D: 20, outF16: true },
  { B: 2, H: 2, Nq: 40, Nk: 90, D: 40, kvLen: [90, 33] },
  { B: 7, H: 1, Nq: 16, Nk: 16, D: 20, outF16: true }, // packed, scalar loads (D % 8 ≠ 0), 7 sequences: a partial workgroup
  { B: 3, H: 3, Nq: 8, Nk: 16, D: 72, noVec: true }, // packed, Nq < Nk, scalar loads and stores
  { B: 2, H: 5, Nq: 16, Nk: 16, D: 112, outF16: true }, // packed, widest D that fits (7 fragments, two O passes)
];

// Scores that grow along the keys (case.grow): dimension 0 of every query is one of ±4, 2, 0.5 (cycling over
// the rows), dimension 0 of key j carries the growth, so rows with +4 climb by `log2` (log2 units), rows with
// 2 by half that, 0.5 by an eighth (below TAU for the ramps here: P up to 2^(log2/8) without a raise), −4 fall
// (their first tile holds the max). Returns how many reference raises the kernel's rule (raise when a tile's row
// max exceeds the reference by more than 8) makes over all rows, from the f64 scores: the case must exercise it.
const TAU = 8;
function growScores(c: Case, qd: Float32Array, kd: Float32Array, scale: number): number {
  const { B, H, Nq, Nk, D } = c;
  const g = c.grow!;
  const amp = g.log2 / (4 * scale * Math.LOG2E); // key dimension-0 amplitude for a +4 query row
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < Nq; i++) qd[(bh * Nq + i) * D] = [4, -4, 2, 0.5][i % 4]!;
    for (let j = 0; j < Nk; j++) {
      kd[(bh * Nk + j) * D] = g.kind === 'ramp' ? (amp * j) / (Nk - 1) : j === (Nk >> 1) ? amp : 0;
    }
  }
  const q = roundToF16(qd);
  const k = roundToF16(kd);
  let raises = 0;
  for (let bh = 0; bh < B * H; bh++) {
    const n = Math.min(Nk, c.kvLen ? c.kvLen[Math.floor(bh / H)]! : Nk);
    for (let i = 0; i < Nq; i++) {
      let m = -Infinity;
      for (let k0 = 0; k0 < n; k0 += 64) {
        let t = -Infinity;
        for (let j = k0; j < Math.min(n, k0 + 64); j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[(bh * Nq + i) * D + d]! * k[(bh * Nk + j) * D + d]!;
          t = Math.max(t, dot * scale * Math.LOG2E);
        }
        if (k0 > 0 && t > m + TAU) raises++;
        if (k0 === 0 || t > m + TAU) m = t;
      }
    }
  }
  return raises;
}

async function check({ gpu, rng }: Ctx, c: Case): Promise<void> {
  const { B, H, Nq, Nk, D } = c;
  const qd = rng.normal(B * H * Nq * D);
  const kd = rng.normal(B * H * Nk * D);
  const vd = rng.normal(B * H * Nk * D);
  if (c.grow && growScores(c, qd, kd, 1 / Math.sqrt(D)) === 0) throw new Error(`case ${JSON.stringify(c)} makes no reference raise`);
  const q = gpu.upload(qd, [B, H, Nq, D], 'f16');
  const k = gpu.upload(kd, [B, H, Nk, D], 'f16');
  const v = gpu.upload(vd, [B, H, Nk, D], 'f16');
  const o = gpu.tensor([B, H, Nq, D], c.outF16 ? 'f16' : 'f32');
  const lse = gpu.tensor([B, H, Nq], 'f32');
  gpu.fill(o, NaN); // poisoned: an element the kernel leaves unwritten fails the comparison
  gpu.fill(lse, NaN);
  const kvLen = c.kvLen ? gpu.upload(c.kvLen, [B], 'u32') : undefined;
  const scale = 1 / Math.sqrt(D);
  attentionForwardTc(gpu, { q, k, v, o, lse, kvLen, scale, noVec: c.noVec, noPack: c.noPack, narrowStaging: c.narrow });
  const ref = refForward(roundToF16(qd), roundToF16(kd), roundToF16(vd), c, scale, c.kvLen);
  // P is rounded to f16 before P·V (as FlashAttention does on tensor cores): 1e-2 covers it.
  assertClose(await o.read(), ref.o, { rtol: 1e-2, what: `o ${JSON.stringify(c)}` });
  assertClose(await lse.read(), ref.lse, { rtol: 1e-3, what: `lse ${JSON.stringify(c)}` });
  for (const t of [q, k, v, o, lse, kvLen]) t?.release();
}

/** Runs every case, then fails with all the cases' messages (one failing case does not hide the others). */
async function checkAll(list: Case[], run: (c: Case) => Promise<void>): Promise<void> {
  const failures: string[] = [];
  for (const c of list) {
    try {
      await run(c);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  if (failures.length) throw new Error(`${failures.length} of ${list.length} cases failed:\n${failures.join('\n')}`);
}

const s = suite('attention_tc');

// Scores climbing along the keys (or one spike): the general kernel's reference raises (its rescale path) —
// ragged Nq / Nk, masked, narrow (multi-pass) staging, D 112, no VEC.
const growing: Case[] = [
  { B: 1, H: 2, Nq: 100, Nk: 700, D: 72, grow: { kind: 'ramp', log2: 60 } },
  { B: 1, H: 1, Nq: 64, Nk: 300, D: 64, grow: { kind: 'ramp', log2: 40 } },
  { B: 2, H: 2, Nq: 70, Nk: 400, D: 72, kvLen: [400, 250], grow: { kind: 'ramp', log2: 50 } },
  { B: 1, H: 2, Nq: 77, Nk: 500, D: 72, grow: { kind: 'spike', log2: 40 } },
  { B: 1, H: 2, Nq: 77, Nk: 300, D: 72, narrow: true, grow: { kind: 'ramp', log2: 50 } },
  { B: 1, H: 1, Nq: 50, Nk: 260, D: 112, grow: { kind: 'ramp', log2: 40 } },
  { B: 1, H: 2, Nq: 40, Nk: 330, D: 40, noVec: true, outF16: true, grow: { kind: 'ramp', log2: 40 } },
];

s.gpuTest('tensor-core forward: D 64/72/24, ragged, many tiny sequences, masked cross-attention, climbing scores (rescale path)', (gpu) => tensorcoreUnavailable(gpu), async (ctx) => {
  await checkAll([...cases, ...growing], (c) => check(ctx, c));
});

async function checkBackward({ gpu, rng }: Ctx, c: Case): Promise<void> {
  const { B, H, Nq, Nk, D } = c;
  const qd = rng.normal(B * H * Nq * D);
  const kd = rng.normal(B * H * Nk * D);
  const vd = rng.normal(B * H * Nk * D);
  const dd = rng.normal(B * H * Nq * D);
  const q = gpu.upload(qd, [B, H, Nq, D], 'f16');
  const k = gpu.upload(kd, [B, H, Nk, D], 'f16');
  const v = gpu.upload(vd, [B, H, Nk, D], 'f16');
  const dout = gpu.upload(dd, [B, H, Nq, D], 'f16');
  const o = gpu.tensor([B, H, Nq, D], 'f16');
  const lse = gpu.tensor([B, H, Nq], 'f32');
  const kvLen = c.kvLen ? gpu.upload(c.kvLen, [B], 'u32') : undefined;
  const scale = 1 / Math.sqrt(D);
  attentionForwardTc(gpu, { q, k, v, o, lse, kvLen, scale });
  const dt = c.outF16 ? 'f16' : 'f32';
  const dq = gpu.tensor([B, H, Nq, D], dt);
  const dk = gpu.tensor([B, H, Nk, D], dt);
  const dv = gpu.tensor([B, H, Nk, D], dt);
  for (const t of [dq, dk, dv]) gpu.fill(t, NaN); // poisoned: an element the kernels leave unwritten fails
  attentionBackwardTc(gpu, { q, k, v, o, dout, lse, dq, dk, dv, kvLen, scale, noVec: c.noVec, noPack: c.noPack });
  const ref = refBackward(roundToF16(qd), roundToF16(kd), roundToF16(vd), roundToF16(dd), c, scale, c.kvLen);
  const name = JSON.stringify(c);
  const ev = assertClose(await dv.read(), ref.dv, { rtol: 1e-2, what: `dv ${name}` });
  const ek = assertClose(await dk.read(), ref.dk, { rtol: 1e-2, what: `dk ${name}` });
  const eq = assertClose(await dq.read(), ref.dq, { rtol: 1e-2, what: `dq ${name}` });
  // dS = P∘(dP − Δ) is rounded to f16 before dK and dQ; the H200 run of 2026-12-02 measured at most 2.7e-3 (dq, a
  // masked case) against the f16 bar of 1e-2: the printed errors show the margin
  console.log(`  backward ${name}: max rel err dv ${ev.maxRel.toExponential(1)}, dk ${ek.maxRel.toExponential(1)}, dq ${eq.maxRel.toExponential(1)}`);
  for (const t of [q, k, v, dout, o, lse, dq, dk, dv, kvLen]) t?.release();
}

s.gpuTest('tensor-core backward: dq, dk, dv against the f64 reference', (gpu) => tensorcoreUnavailable(gpu), async (ctx) => {
  await assertThrows(() => checkBackward(ctx, { B: 1, H: 1, Nq: 20, Nk: 20, D: 112 }), /needs \d+ bytes of workgroup memory for head dim 112.*use variant 'tiled'/, 'D 112');
  // the general backward's tiles fit 48 KiB up to head dim 80, the packed one's (short unmasked sequences) to 128
  await checkAll(cases.filter((c) => c.D <= 80 || (packable(c.Nq, c.Nk) && !c.kvLen && !c.noPack)), (c) => checkBackward(ctx, c));
});

// What variant 'auto' asks before taking tensor cores: the kernels' workgroup memory against a 48 KiB device.
s.test('attentionTcFits: forward to D 112, general backward to D 80, packed backward to D 128 in 48 KiB', () => {
  const g = { info: { limits: { maxComputeWorkgroupStorageSize: 49152 } } } as unknown as Gpu;
  const fits = (pass: 'forward' | 'backward', D: number, Nq: number, Nk: number, masked = false) => attentionTcFits(g, pass, D, Nq, Nk, masked);
  assert.ok(fits('forward', 112, 4096, 4096) && !fits('forward', 128, 4096, 4096), 'forward');
  assert.ok(fits('forward', 72, 16, 16) && !fits('forward', 128, 16, 16), 'packed forward: the general forward\'s check');
  assert.ok(fits('backward', 80, 300, 300) && !fits('backward', 96, 300, 300), 'general backward');
  assert.ok(fits('backward', 128, 16, 16) && fits('backward', 72, 8, 16), 'packed backward');
  assert.ok(!fits('backward', 96, 16, 16, true), 'masked short sequences take the general backward');
});

// The backward's Δ kernel (portable WGSL, runs everywhere): (lse_i · log2 e, Δ_i = Σ_d dO_id · O_id) pairs, which
// the tensor-core backward kernels read; f32 and f16 storage, head dims even and odd.
s.test('attention Δ kernel: (lse·log2 e, Σ dO·O) pairs per row against f64', async ({ gpu, rng }) => {
  for (const [rows, D, dtype] of [[37, 72, 'f16'], [64, 20, 'f16'], [29, 13, 'f32'], [130, 72, 'f32']] as const) {
    const od = rng.normal(rows * D);
    const dd = rng.normal(rows * D);
    const ld = rng.normal(rows);
    const o = gpu.upload(od, [rows, D], dtype);
    const dout = gpu.upload(dd, [rows, D], dtype);
    const lse = gpu.upload(ld, [rows], 'f32');
    const [ov, dv] = dtype === 'f16' ? [roundToF16(od), roundToF16(dd)] : [Float64Array.from(od), Float64Array.from(dd)];
    const ref = new Float64Array(2 * rows);
    for (let i = 0; i < rows; i++) {
      ref[2 * i] = Math.fround(ld[i]!) * Math.LOG2E;
      for (let d = 0; d < D; d++) ref[2 * i + 1] += ov[i * D + d]! * dv[i * D + d]!;
    }
    const pairs = gpu.tensor([rows, 2], 'f32');
    gpu.fill(pairs, NaN); // poisoned
    attentionDelta(gpu, o, dout, lse, pairs);
    assertClose(await pairs.read(), ref, { rtol: 1e-5, what: `(lse·log2 e, Δ) ${rows}×${D} ${dtype}` });
    for (const t of [o, dout, lse, pairs]) t.release();
  }
});

// The null device's 16 KiB of workgroup memory fails pipelines after their WGSL compiled; compile errors (kind
// 'compilation') and any other validation error, e.g. more than WebGPU's default 8 storage buffers a stage (which
// a browser without raised limits would refuse), are rethrown. `record` is checked on its own: the limit fails
// every general forward pipeline, which must not skip the kernels recorded after it.
const LIMIT_ONLY = /total use of workgroup storage \(\d+ bytes\) is larger than the maximum allowed \(16384 bytes\)/;
async function compilesOrHitsLimit(g: Gpu, record: () => void): Promise<void> {
  try {
    record(); // a variant that failed before throws its error again here
    await g.sync();
  } catch (e) {
    if (!(e instanceof GpuError && e.kind === 'validation' && LIMIT_ONLY.test(e.message))) throw e;
  }
}

s.test('tensor-core forward and backward compile on Dawn null backend', async () => {
  const g = await Gpu.open({ device: 'null' });
  const compiles = (record: () => void) => compilesOrHitsLimit(g, record);
  for (const c of cases) {
    const { B, H, Nq, Nk, D } = c;
    const o = g.tensor([B, H, Nq, D], c.outF16 ? 'f16' : 'f32');
    const q = g.tensor([B, H, Nq, D], 'f16');
    const k = g.tensor([B, H, Nk, D], 'f16');
    const v = g.tensor([B, H, Nk, D], 'f16');
    const lse = g.tensor([B, H, Nq]);
    const kvLen = c.kvLen ? g.tensor([B], 'u32') : undefined;
    await compiles(() => attentionForwardTc(g, { q, k, v, o, lse, kvLen, scale: 0.1, noVec: c.noVec, noPack: c.noPack, narrowStaging: c.narrow }));
    const dt = c.outF16 ? 'f16' : 'f32';
    const dout = g.tensor([B, H, Nq, D], o.dtype);
    await compiles(() => attentionBackwardTc(g, { q, k, v, o, dout, lse, kvLen, scale: 0.1, noVec: c.noVec, noPack: c.noPack, dq: g.tensor([B, H, Nq, D], dt), dk: g.tensor([B, H, Nk, D], dt), dv: g.tensor([B, H, Nk, D], dt) }));
  }
  await g.destroy();
});

// Every variant of the forward kernels the op can produce: general (main) with DP 16..128, f16/f32 o, masked or
// not, 16-byte staging or not, every Ss stride of stagingWidths (the null device's 16 KiB limit makes the op pick 68,
// so the wide ones are requested here directly); packed with DP 16..128, f16/f32 o, masked or not, 16-byte words
// or not (SW 68). Only the workgroup-memory limit may fail.
s.test('tensor-core forward kernels and the packed backward compile on Dawn null backend for every define set', async () => {
  const g = await Gpu.open({ device: 'null' });
  let n = 0;
  for (const pack of [false, true])
    for (let DP = 16; DP <= 128; DP += 16)
      for (const SW of pack ? [68] : stagingWidths(DP))
        for (const outF16 of [false, true])
          for (const mask of [false, true])
            for (const vec of [false, true]) {
              await compilesOrHitsLimit(g, () => attentionTcForwardKernel(g, { DP, outF16, mask, vec, SW, pack }));
              n++;
            }
  assert.is(n, 4 * 16 + 4 * 24 + 8 * 8); // main: DP ≤ 64 two SW (72, 68), wider three; packed: 8 DP × o × mask × VEC
  // the packed backward (short sequences): DP 16..128, f16/f32 gradients, 16-byte words or not
  let m = 0;
  for (let DP = 16; DP <= 128; DP += 16)
    for (const outF16 of [false, true])
      for (const vec of [false, true]) {
        await compilesOrHitsLimit(g, () => attentionTcBackwardPackedKernel(g, { DP, outF16, vec }));
        m++;
      }
  assert.is(m, 8 * 4);
  await g.destroy();
});

s.run();
