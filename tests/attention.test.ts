// attention: tiled flash attention forward and backward against an f64 CPU reference (plain softmax attention
// and its analytic gradients), a finite-difference check of the GPU backward, masking, f16 storage, bad inputs.
import { suite, assertClose, assertThrows, type Ctx } from './harness.js';
import { attention, attentionBackward, attentionSharedBytes, chooseAttentionTile, headSplit, type AttentionTile } from '../engine/ops/attention.js';
import { roundToF16 } from '../engine/dtype.js';
import { refBackward, refForward, type Shape } from './ref/attention.js';

interface Case extends Shape {
  dtype?: 'f32' | 'f16';
  kvLen?: number[];
  kvType?: 'i32' | 'u32';
  scale?: number;
  tile?: AttentionTile;
  tiles?: { dkdv?: AttentionTile; dq?: AttentionTile };
  backward?: boolean;
  /** Use the tiles the op chooses for this device (else SMALL: SwiftShader compiles big workgroups slowly). */
  defaults?: boolean;
  forwardDefaults?: boolean;
  /** NaN in k and v past kvLen: masked keys must not reach any sum. */
  nanMasked?: boolean;
  /** Forward kernel options (register prefetch of K/V, 16-byte f16 loads). */
  prefetch?: boolean;
  wideLoads?: boolean;
  stageOutput?: boolean;
  qRegisters?: number;
  outDtype?: 'f32' | 'f16';
}

const SMALL: AttentionTile = { TR: 2, TY: 4, TC: 2 };

const RTOL = { f32: 1e-4, f16: 1e-2 };

/** Runs forward (and backward) on fresh random inputs and checks o, lse (dq, dk, dv) against the reference. */
async function check({ gpu, rng }: Ctx, c: Case): Promise<void> {
  const { B, H, Nq, Nk, D } = c;
  const dtype = c.dtype ?? 'f32';
  const round = (x: Float32Array) => (dtype === 'f16' ? roundToF16(x) : x);
  const [qd, kd, vd, gd] = [rng.normal(B * H * Nq * D), rng.normal(B * H * Nk * D), rng.normal(B * H * Nk * D), rng.normal(B * H * Nq * D)];
  if (c.nanMasked && c.kvLen) {
    for (let bh = 0; bh < B * H; bh++) {
      for (let j = c.kvLen[Math.floor(bh / H)]!; j < Nk; j++) {
        kd.fill(NaN, (bh * Nk + j) * D, (bh * Nk + j + 1) * D);
        vd.fill(NaN, (bh * Nk + j) * D, (bh * Nk + j + 1) * D);
      }
    }
  }
  const q = gpu.upload(qd, [B, H, Nq, D], dtype, 'q');
  const k = gpu.upload(kd, [B, H, Nk, D], dtype, 'k');
  const v = gpu.upload(vd, [B, H, Nk, D], dtype, 'v');
  const kvLen = c.kvLen ? gpu.upload(c.kvLen, [B], c.kvType ?? 'i32', 'kvLen') : undefined;
  const scale = c.scale ?? 1 / Math.sqrt(D);
  const tile = c.tile ?? (c.defaults || c.forwardDefaults ? undefined : SMALL);
  const tiles = c.tiles ?? (c.defaults ? undefined : { dkdv: SMALL, dq: SMALL });
  // variant 'tiled': this file tests the tiled kernels ('auto' would take tensor cores for f16 on a GPU)
  const { o, lse } = attention(gpu, q, k, v, { kvLen, scale: c.scale, tile, prefetch: c.prefetch, wideLoads: c.wideLoads, stageOutput: c.stageOutput, qRegisters: c.qRegisters, outDtype: c.outDtype, variant: 'tiled' });
  const name = `${dtype} ${JSON.stringify({ ...c, dtype: undefined })}`;
  const want = refForward(round(qd), round(kd), round(vd), c, scale, c.kvLen);
  assertClose(await o.read(), want.o, { rtol: RTOL[c.outDtype ?? dtype], what: `o ${name}` });
  assertClose(await lse.read(), want.lse, { rtol: RTOL[dtype], what: `lse ${name}` });
  if (c.backward !== false) {
    const dO = gpu.upload(gd, [B, H, Nq, D], dtype, 'dO');
    const g = attentionBackward(gpu, q, k, v, o, lse, dO, { kvLen, scale: c.scale, tiles, variant: 'tiled' });
    const ref = refBackward(round(qd), round(kd), round(vd), round(gd), c, scale, c.kvLen);
    assertClose(await g.dq.read(), ref.dq, { rtol: RTOL[dtype], what: `dq ${name}` });
    assertClose(await g.dk.read(), ref.dk, { rtol: RTOL[dtype], what: `dk ${name}` });
    assertClose(await g.dv.read(), ref.dv, { rtol: RTOL[dtype], what: `dv ${name}` });
    for (const t of [dO, g.dq, g.dk, g.dv]) t.release();
  }
  for (const t of [q, k, v, o, lse, kvLen]) t?.release();
}

const s = suite('attention');

s.test('self-attention: tiny, ragged, D=72 (forward and backward)', async (ctx) => {
  await check(ctx, { B: 1, H: 1, Nq: 4, Nk: 4, D: 8, defaults: true });
  await check(ctx, { B: 2, H: 3, Nq: 17, Nk: 17, D: 24 });
  await check(ctx, { B: 2, H: 2, Nq: 77, Nk: 77, D: 72 });
});

s.test('many tiny sequences (temporal-like [64, 2, 16, 72])', async (ctx) => {
  await check(ctx, { B: 64, H: 2, Nq: 16, Nk: 16, D: 72, forwardDefaults: true }); // the chosen tile shrinks to 16 × 18
});

s.test('masked cross-attention: Nq 50, Nk 12, kvLen [1, 7, 12] (i32 and u32)', async (ctx) => {
  await check(ctx, { B: 3, H: 2, Nq: 50, Nk: 12, D: 24, kvLen: [1, 7, 12], nanMasked: true });
  await check(ctx, { B: 3, H: 1, Nq: 50, Nk: 12, D: 24, kvLen: [12, 1, 7], kvType: 'u32', backward: false });
  await check(ctx, { B: 2, H: 1, Nq: 7, Nk: 70, D: 8, kvLen: [70, 33], nanMasked: true }); // several key tiles, some wholly masked
});

s.test('TR 4 tiles and explicit TX on ragged multi-tile shapes', async (ctx) => {
  const big: AttentionTile = { TR: 4, TY: 8, TC: 4 }; // the H100 forward layout has TY 16 (and D 72 needs 48 KiB)
  await check(ctx, { B: 1, H: 2, Nq: 150, Nk: 101, D: 24, tile: big, tiles: { dkdv: { TR: 4, TY: 4, TC: 3 }, dq: { TR: 4, TY: 4, TC: 2 } } });
  // D not a multiple of 4 (scalar loads), a sharp softmax, masking, explicit TX
  await check(ctx, { B: 2, H: 1, Nq: 70, Nk: 45, D: 13, scale: 0.9, tile: { TR: 4, TY: 4, TC: 3, TX: 4 }, kvLen: [30, 45], tiles: { dkdv: { TR: 2, TY: 4, TC: 5, TX: 3 }, dq: SMALL } });
});

s.test('f16 storage (forward and backward)', async (ctx) => {
  await check(ctx, { B: 2, H: 2, Nq: 33, Nk: 33, D: 24, dtype: 'f16' });
  await check(ctx, { B: 2, H: 1, Nq: 21, Nk: 12, D: 10, dtype: 'f16', kvLen: [5, 12] }); // D % 4 != 0: scalar half loads
});

s.test('forward variants: prefetch, staged output, f16 16-byte and 8-byte loads; ragged, masked, odd D', async (ctx) => {
  for (const on of [true, false]) {
    const v = { prefetch: on, stageOutput: on, backward: false };
    // several key tiles with a ragged last one, ragged query tiles, D 72 (TX 6 × 3 vec4s), f16 output from f32;
    // Q rows all in registers (18 vec4s) or one vec4 of them
    await check(ctx, { B: 1, H: 2, Nq: 41, Nk: 53, D: 72, outDtype: 'f16', qRegisters: on ? 18 : 1, ...v });
    // NaN past kvLen (zeros must be staged for masked keys), TR 4, padded V rows (D4 5 on TX 4 × 2)
    await check(ctx, { B: 2, H: 1, Nq: 19, Nk: 50, D: 20, kvLen: [50, 13], nanMasked: true, tile: { TR: 4, TY: 4, TC: 2, TX: 4 }, ...v });
    // a single key (one tile, nothing to prefetch) and D not a multiple of 4 (scalar loads and stores)
    await check(ctx, { B: 1, H: 3, Nq: 9, Nk: 1, D: 7, ...v });
    // f16: D 40 (16-byte or 8-byte units), several ragged key tiles, NaN past kvLen; f16 and f32 output
    await check(ctx, { B: 2, H: 2, Nq: 23, Nk: 45, D: 40, dtype: 'f16', kvLen: [45, 17], nanMasked: true, wideLoads: on, ...v });
    await check(ctx, { B: 1, H: 1, Nq: 23, Nk: 30, D: 40, dtype: 'f16', outDtype: 'f32', wideLoads: !on, ...v });
    // f16 with D % 8 == 4 (8-byte units, output in words) and D % 4 != 0 (scalar halves)
    await check(ctx, { B: 1, H: 2, Nq: 30, Nk: 29, D: 12, dtype: 'f16', ...v });
    await check(ctx, { B: 1, H: 1, Nq: 10, Nk: 27, D: 6, dtype: 'f16', ...v });
  }
});

s.test('forward variants give the same bits (prefetch, staging and Q registers only move data; wide f16 loads only widen them)', async ({ gpu, rng }) => {
  for (const dtype of ['f32', 'f16'] as const) {
    const sh = [2, 2, 37, 24];
    const [q, k, v] = ['q', 'k', 'v'].map((n) => gpu.upload(rng.normal(2 * 2 * 37 * 24), sh, dtype, n)) as [ReturnType<typeof gpu.upload>, ReturnType<typeof gpu.upload>, ReturnType<typeof gpu.upload>];
    const variants = [{}, { prefetch: false }, { stageOutput: false }, { qRegisters: 1 }, { qRegisters: 5 }, ...(dtype === 'f16' ? [{ wideLoads: false }] : [])];
    for (const outDtype of dtype === 'f16' ? (['f16', 'f32'] as const) : (['f32'] as const)) {
      const runs = variants.map((o) => attention(gpu, q, k, v, { tile: SMALL, outDtype, variant: 'tiled', ...o }));
      const first = await runs[0]!.o.read();
      for (const [i, r] of runs.entries()) {
        const x = await r.o.read();
        if (!x.every((e, j) => Object.is(e, first[j]))) throw new Error(`${dtype} → ${outDtype}: variant ${JSON.stringify(variants[i])} differs from the default`);
        r.o.release();
        r.lse.release();
      }
    }
    for (const t of [q, k, v]) t.release();
  }
});

s.test('backward matches central finite differences of the f64 forward', async ({ gpu, rng }) => {
  for (const c of [{ B: 1, H: 1, Nq: 3, Nk: 5, D: 6 }, { B: 2, H: 1, Nq: 4, Nk: 5, D: 4, kvLen: [3, 5] }] as (Shape & { kvLen?: number[] })[]) {
    const { B, H, Nq, Nk, D } = c;
    const data = { q: rng.normal(B * H * Nq * D), k: rng.normal(B * H * Nk * D), v: rng.normal(B * H * Nk * D) };
    const w = rng.normal(B * H * Nq * D); // loss = Σ o ∘ w, so dO = w
    const up = (x: Float32Array, n: number, name: string) => gpu.upload(x, [B, H, n, D], 'f32', name);
    const [q, k, v] = [up(data.q, Nq, 'q'), up(data.k, Nk, 'k'), up(data.v, Nk, 'v')];
    const kvLen = c.kvLen ? gpu.upload(c.kvLen, [B], 'i32', 'kvLen') : undefined;
    const { o, lse } = attention(gpu, q, k, v, { kvLen });
    const g = attentionBackward(gpu, q, k, v, o, lse, up(w, Nq, 'dO'), { kvLen });
    const got = { q: await g.dq.read(), k: await g.dk.read(), v: await g.dv.read() };
    const scale = 1 / Math.sqrt(D);
    const loss = (x: Record<'q' | 'k' | 'v', Float64Array>) => refForward(x.q, x.k, x.v, c, scale, c.kvLen).o.reduce((a, y, i) => a + y * w[i]!, 0);
    const eps = 1e-3;
    for (const name of ['q', 'k', 'v'] as const) {
      const fd = new Float64Array(data[name].length);
      for (let i = 0; i < fd.length; i++) {
        const x = { q: Float64Array.from(data.q), k: Float64Array.from(data.k), v: Float64Array.from(data.v) };
        x[name][i]! += eps;
        const lp = loss(x);
        x[name][i]! -= 2 * eps;
        fd[i] = (lp - loss(x)) / (2 * eps);
      }
      assertClose(got[name], fd, { rtol: 1e-3, what: `d${name} vs finite differences ${JSON.stringify(c)}` });
    }
  }
});

s.test('deterministic: the backward gives the same bits twice', async ({ gpu, rng }) => {
  const sh = [2, 2, 40, 24];
  const [q, k, v, dO] = ['q', 'k', 'v', 'dO'].map((n) => gpu.upload(rng.normal(2 * 2 * 40 * 24), sh, 'f32', n)) as [ReturnType<typeof gpu.upload>, ReturnType<typeof gpu.upload>, ReturnType<typeof gpu.upload>, ReturnType<typeof gpu.upload>];
  const tiles = { dkdv: SMALL, dq: SMALL };
  const { o, lse } = attention(gpu, q, k, v, { tile: SMALL });
  const a = attentionBackward(gpu, q, k, v, o, lse, dO, { tiles });
  const b = attentionBackward(gpu, q, k, v, o, lse, dO, { tiles });
  for (const key of ['dq', 'dk', 'dv'] as const) {
    const [x, y] = [await a[key].read(), await b[key].read()];
    if (!x.every((e, i) => Object.is(e, y[i]))) throw new Error(`${key} differs between runs`);
  }
});

s.test('tile choice: fits the device, shrinks for tiny sequences, D 72 splits 6 × 3 vec4s', async ({ gpu }) => {
  const split = headSplit(72);
  if (split.TX !== 6 || split.TD4 !== 3) throw new Error(`headSplit(72) = ${JSON.stringify(split)}`);
  if (headSplit(64).TX * headSplit(64).TD4 !== 16 || headSplit(128).TX * headSplit(128).TD4 !== 32) throw new Error('D 64/128 should not pad');
  const limit = gpu.info.limits.maxComputeWorkgroupStorageSize;
  for (const kernel of ['forward', 'dkdv', 'dq'] as const) {
    for (const D of [8, 64, 72, 128]) {
      const t = chooseAttentionTile(gpu, kernel, D, 4096, 4096);
      if (attentionSharedBytes(kernel, D, t) > limit) throw new Error(`${kernel} D ${D}: ${JSON.stringify(t)} over ${limit} bytes`);
    }
    const tiny = chooseAttentionTile(gpu, kernel, 72, 16, 16);
    if (tiny.TR * tiny.TY > 16 || tiny.TC * 6 > 18) throw new Error(`${kernel}: tile for 16-token sequences ${JSON.stringify(tiny)} wastes rows or keys`);
  }
  // The 48 KiB layout for the benchmark shape (H100) is the TR 4 × TY 16 forward tile.
  if (attentionSharedBytes('forward', 72, { TR: 4, TY: 16, TC: 4 }) > 49152) throw new Error('forward D 72 tile exceeds 48 KiB');
});

s.test('no queries: empty o and lse, zero dk and dv', async ({ gpu, rng }) => {
  const q = gpu.tensor([2, 1, 0, 8]);
  const k = gpu.upload(rng.normal(2 * 5 * 8), [2, 1, 5, 8]);
  const { o, lse } = attention(gpu, q, k, k);
  if (o.size !== 0 || lse.shape.join() !== '2,1,0') throw new Error(`o ${o}, lse ${lse}`);
  const g = attentionBackward(gpu, q, k, k, o, lse, o, { tiles: { dkdv: SMALL } });
  assertClose(await g.dk.read(), new Float32Array(80), { rtol: 0, what: 'dk' });
  assertClose(await g.dv.read(), new Float32Array(80), { rtol: 0, what: 'dv' });
});

s.test('bad inputs are clear errors', async ({ gpu }) => {
  const q = gpu.tensor([2, 3, 10, 16]);
  const k = gpu.tensor([2, 3, 7, 16]);
  await assertThrows(() => attention(gpu, q, gpu.tensor([2, 3, 7, 8]), k), /attention: k .* has head dim 8 but q .* has 16/, 'D mismatch');
  await assertThrows(() => attention(gpu, q, k, gpu.tensor([2, 3, 8, 16])), /attention: v .* must have k's shape \[2, 3, 7, 16\]/, 'v shape');
  await assertThrows(() => attention(gpu, q, k, k, { kvLen: gpu.tensor([3], 'i32') }), /attention: kvLen .* must be \[2\]/, 'kvLen shape');
  await assertThrows(() => attention(gpu, q, k, k, { kvLen: gpu.tensor([2], 'f32') }), /attention: kvLen .* dtype f32; expected i32 or u32/, 'kvLen dtype');
  await assertThrows(() => attention(gpu, gpu.tensor([3, 10, 16]), k, k), /attention: q .* must be rank 4/, 'rank');
  await assertThrows(() => attention(gpu, q, gpu.tensor([2, 3, 7, 16], 'f16'), k), /must share a dtype/, 'dtype mix');
  await assertThrows(() => attention(gpu, gpu.tensor([1, 1, 4, 130]), gpu.tensor([1, 1, 4, 130]), gpu.tensor([1, 1, 4, 130])), /head dim 130 is outside 1\.\.128/, 'D too big');
  await assertThrows(() => attention(gpu, q, k, k, { variant: 'tensorcore' }), /attention: the tensorcore variant takes f16 q, k and v/, 'tensorcore f32');
  await assertThrows(() => attention(gpu, q, k, k, { tile: { TR: 4, TY: 256, TC: 8 } }), /needs \d+ (threads|bytes)/, 'tile too big');
  for (const qRegisters of [0, 5, 1.5]) {
    await assertThrows(() => attention(gpu, q, k, k, { variant: 'tiled', qRegisters }), /attention: qRegisters .* must be an integer in 1\.\.4 \(vec4s of a Q row at head dim 16\)/, `qRegisters ${qRegisters}`);
  }
  const o = gpu.tensor([2, 3, 10, 16]);
  const lse = gpu.tensor([2, 3, 10]);
  await assertThrows(() => attentionBackward(gpu, q, k, k, o, lse, gpu.tensor([2, 3, 10, 16], 'f16')), /attentionBackward: dO .* must be \[2, 3, 10, 16\] f32/, 'dO dtype');
  await assertThrows(() => attentionBackward(gpu, q, k, k, o, gpu.tensor([2, 3, 9]), o), /attentionBackward: lse .* must be \[2, 3, 10\] f32/, 'lse shape');
  await assertThrows(() => attentionBackward(gpu, q, k, k, o, lse, o, { kvLen: gpu.tensor([2, 1], 'u32') }), /attentionBackward: kvLen .* must be \[2\]/, 'backward kvLen');
  await gpu.sync();
});

s.run();
