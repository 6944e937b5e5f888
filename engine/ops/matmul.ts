// matmul: C = act(op(A) · op(B) + bias), batched, with the transposed forms backward passes need.
//   A: [...batch, M, K]   (transA: [...batch, K, M])
//   B: [...batch, K, N]   (transB: [...batch, N, K]); or without batch dims, shared by every batch item
//   bias: [N]; activation: 'gelu' (tanh approximation); output [...batch, M, N].
// Variants: 'tiled' (portable register-blocked, f32 math, f32/f16 storage, shaders/matmul.wgsl) and
// 'tensorcore' (f16 × f16 → f32 accumulate through subgroup matrices, shaders/matmul_tc.wgsl).
// Split-K: a weight gradient (transA, K = tokens) has few output tiles and a very long K; it runs as S
// batched products over K slices into f32 partials [S, M, N], summed by ops/reduce (deterministic).
import type { DType } from '../dtype.js';
import { ShapeError, shapeStr } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Defines, Kernel } from '../shader.js';
import type { Tensor } from '../tensor.js';
import { expectDType, expectLive, output, sameShape } from './common.js';
import { sum } from './reduce.js';
import matmulWgsl from '../../shaders/matmul.wgsl';
import matmulTcWgsl from '../../shaders/matmul_tc.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import f16x3ExponentWgsl from '../../shaders/f16x3_exponent.wgsl';

const TILED = { name: 'matmul', template: matmulWgsl + f16Wgsl };
const TENSORCORE = { name: 'matmul_tc', template: matmulTcWgsl + f16x3ExponentWgsl };

export type MatmulVariant = 'auto' | 'tiled' | 'tensorcore';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor;
  activation?: 'none' | 'gelu';
  /** Output dtype; defaults to A's dtype. */
  outDtype?: DType;
  out?: Tensor;
  variant?: MatmulVariant;
  /** Tile config of the tiled kernel (benchmarks sweep these); default chosen by size. */
  tile?: TiledTile;
  /** Disable the register prefetch of the next K slice (benchmarks compare both). */
  noPrefetch?: boolean;
  /** Tile config of the tensor-core kernel (benchmarks sweep these). */
  tcTile?: TensorcoreTile;
  /** K slices summed afterwards (1: off); default chosen by shape (see splitKFor). Needs f32 output, no epilogue, no batch. */
  splitK?: number;
  /**
   * For matmulF16x3's 'fused' form: f32 A and B whose rows are multiples of 8 elements, each scaled and
   * split into f16 hi and residual inside the tensor-core kernel (X3), three products per fragment pair and
   * the scaling undone on the accumulators; [max|A|], [max|B|] as 1-element f32 tensors (or upper bounds, such
   * as 1 for probabilities: the split's absolute error is ~2^-24 of the value given). f32 output, no activation.
   */
  x3Max?: [Tensor, Tensor];
}

/** Split only products with fewer output tiles than one wave on a 132-SM GPU, into about two waves. */
const SPLIT_BELOW = 132;
const SPLIT_TARGET = 264;
/** Fewest K elements a split slice keeps (below this the partials' traffic outweighs the gain). */
const SPLIT_MIN_K = 512;
const SPLIT_MAX = 64;

/** The K split for a product with `tiles` output tiles: a power of two S dividing K, or 1 (no split). */
export function splitKFor(tiles: number, K: number, below = SPLIT_BELOW): number {
  let S = 1;
  if (tiles >= below) return S;
  while (tiles * S < SPLIT_TARGET && S < SPLIT_MAX && K % (2 * S) === 0 && K / (2 * S) >= SPLIT_MIN_K) S *= 2;
  return S;
}

export interface TensorcoreTile {
  /** Subgroups along M and N (each computes 32×64), K step (multiple of 16). */
  SG_M: number;
  SG_N: number;
  BK: number;
}

export const TC_DEFAULT: TensorcoreTile = { SG_M: 4, SG_N: 4, BK: 32 }; // 128×256 tile, 16 subgroups of 32×64
/** Smaller tiles for problems too small to fill the GPU with TC_DEFAULT's tiles (tried in order). */
const TC_SMALLER: TensorcoreTile[] = [{ SG_M: 4, SG_N: 2, BK: 64 }, { SG_M: 2, SG_N: 2, BK: 32 }];
/**
 * The X3 kernel stages two tiles per operand. Fastest on the H200 (session 7 sweep, STDiT shapes): with
 * transB 128×128 at BK 32 (59–65 f32-equivalent TFLOP/s; 128×256 does not fit 48 KiB there), else 128×256
 * at BK 16 (dY·W 73.6, dYᵀ·X 50.0); the smaller ones for products with few tiles.
 */
const TC_X3_TRANS_B: TensorcoreTile[] = [{ SG_M: 4, SG_N: 2, BK: 32 }, { SG_M: 2, SG_N: 2, BK: 16 }];
const TC_X3: TensorcoreTile[] = [{ SG_M: 4, SG_N: 4, BK: 16 }, { SG_M: 4, SG_N: 2, BK: 16 }, { SG_M: 2, SG_N: 2, BK: 32 }];

/** Workgroup memory of a tensor-core tile config (bytes): staged A and B (padded rows; twice with X3) + f32 staging. */
export function tensorcoreSharedBytes(t: TensorcoreTile, transA = false, transB = false, x3 = false): number {
  const BM = t.SG_M * 32;
  const BN = t.SG_N * 64;
  const a = transA ? t.BK * (BM + 8) : BM * (t.BK + 8);
  const b = transB ? BN * (t.BK + 8) : t.BK * (BN + 8);
  return (a + b) * 2 * (x3 ? 2 : 1) + t.SG_M * t.SG_N * 1024;
}

function chooseTensorcoreTile(M: number, N: number, K: number, nb: number, x3: boolean, transB: boolean, splittable: boolean): TensorcoreTile {
  const tiles = (t: TensorcoreTile) => Math.ceil(M / (t.SG_M * 32)) * Math.ceil(N / (t.SG_N * 64)) * nb;
  const candidates = x3 ? (transB ? TC_X3_TRANS_B : TC_X3) : [TC_DEFAULT, ...TC_SMALLER];
  if (x3 && splittable && splitKFor(tiles(candidates[0]!), K, SPLIT_TARGET) > 1) return candidates[0]!; // a split over K fills the GPU instead
  if (x3) {
    // the first (fastest) with ≥ 1 wave on a 132-SM GPU (three products per tile) and ≥ 75 % of its tiles'
    // area inside the output; else the best of fill × area (attention's N = 72 uses 28 % of a 256-wide tile)
    const used = (t: TensorcoreTile) => (M * N * nb) / (tiles(t) * t.SG_M * 32 * t.SG_N * 64);
    const good = candidates.find((t) => tiles(t) >= 132 && used(t) >= 0.75);
    if (good) return good;
    const score = (t: TensorcoreTile) => used(t) * Math.min(1, tiles(t) / 132);
    return candidates.reduce((best, t) => (score(t) > score(best) + 1e-9 ? t : best));
  }
  for (const t of candidates) if (tiles(t) >= 264) return t; // ≥ 2 waves on a 132-SM GPU
  return candidates[candidates.length - 1]!;
}

export interface TiledTile {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

export const TILED_LARGE: TiledTile = { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 }; // fastest of the H100 sweep (with prefetch)
export const TILED_SMALL: TiledTile = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };

/** Shapes of a matmul after validation. */
export interface MatmulShape {
  batch: number[];
  M: number;
  N: number;
  K: number;
  sharedB: boolean;
}

export function matmulShape(a: Tensor, b: Tensor, opts: MatmulOptions = {}): MatmulShape {
  const op = 'matmul';
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`${op}: A ${a} and B ${b} need at least 2 dims`);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const [M, K] = opts.transA ? [ac, ar] : [ar, ac];
  const [Kb, N] = opts.transB ? [bc, br] : [br, bc];
  if (K !== Kb) {
    throw new ShapeError(
      `${op}: inner dimensions differ: op(A) is ${M}×${K} (A ${shapeStr(a.shape)}${opts.transA ? ', transA' : ''}) but op(B) is ${Kb}×${N} (B ${shapeStr(b.shape)}${opts.transB ? ', transB' : ''})`,
    );
  }
  const batch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const sharedB = bBatch.length === 0;
  if (!sharedB && !sameShape(batch, bBatch)) {
    throw new ShapeError(`${op}: batch dims of A ${shapeStr(batch)} and B ${shapeStr(bBatch)} differ; B must have the same batch dims or none`);
  }
  return { batch, M, N, K, sharedB };
}

/** The tensor-core kernel's requirements on this device, or why it cannot run. */
export function tensorcoreUnavailable(gpu: Gpu): string | null {
  const i = gpu.info;
  if (!i.f16) return 'no shader-f16 feature';
  if (!i.subgroups) return 'no subgroups feature';
  if (i.backend === 'null') return i.subgroupMatrixFeature ? null : 'no subgroup-matrix feature'; // compiles only, lists no configs
  if (!i.subgroupMatrix.some((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16)) {
    return 'no f16→f32 16×16×16 subgroup-matrix config';
  }
  if ((i.subgroupSize.min !== 32 || i.subgroupSize.max !== 32)) return `subgroup size ${i.subgroupSize.min}..${i.subgroupSize.max}, kernel needs 32`;
  return null;
}

export function matmul(gpu: Gpu, a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  expectLive(op, a, b);
  expectDType(op, a, ['f32', 'f16']);
  expectDType(op, b, ['f32', 'f16']);
  const { batch, M, N, K, sharedB } = matmulShape(a, b, opts);
  const outDtype = opts.outDtype ?? a.dtype;
  if (outDtype !== 'f32' && outDtype !== 'f16') throw new ShapeError(`${op}: outDtype ${outDtype} must be f32 or f16`);
  if (opts.bias) {
    expectLive(op, opts.bias);
    expectDType(op, opts.bias, ['f32', 'f16']);
    if (opts.bias.size !== N) throw new ShapeError(`${op}: bias ${opts.bias} must have ${N} elements (the output's last dim)`);
  }
  const c = output(gpu, op, [...batch, M, N], outDtype, opts.out);
  const nb = batch.reduce((x, y) => x * y, 1);
  if (nb > gpu.info.limits.maxComputeWorkgroupsPerDimension) throw new ShapeError(`${op}: ${nb} batch items exceed the grid's z limit; fold the batch into M`);

  const x3 = opts.x3Max;
  if (x3) {
    expectLive(op, ...x3);
    if (a.dtype !== 'f32' || b.dtype !== 'f32' || outDtype !== 'f32') throw new ShapeError(`${op}: x3Max takes f32 A and B and an f32 output (got ${a.dtype}, ${b.dtype} → ${outDtype})`);
    if (opts.activation === 'gelu' || opts.bias?.dtype === 'f16') throw new ShapeError(`${op}: x3Max takes no activation and only an f32 bias`);
    if ((opts.transA ? M : K) % 8 !== 0 || (opts.transB ? K : N) % 8 !== 0) throw new ShapeError(`${op}: x3Max needs A's and B's rows to be multiples of 8 elements (M ${M}, N ${N}, K ${K}); use matmulF16x3's 'concat' form`);
    const why = tensorcoreUnavailable(gpu);
    if (why) throw new ShapeError(`${op}: x3Max runs on tensor cores, which ${gpu.info.adapter} lacks: ${why}`);
  }
  const variant = x3 ? 'tensorcore' : chooseVariant(gpu, a, b, opts.variant ?? 'auto');
  const splittable = nb === 1 && !opts.bias && opts.activation !== 'gelu' && outDtype === 'f32';
  if (opts.splitK !== undefined && opts.splitK !== 1) {
    if (!splittable) throw new ShapeError(`${op}: splitK needs an unbatched product with f32 output and no bias/activation`);
    if (!Number.isInteger(opts.splitK) || opts.splitK < 1 || K % opts.splitK !== 0) throw new ShapeError(`${op}: splitK ${opts.splitK} must be a positive integer dividing K = ${K}`);
    if (!opts.transA || opts.transB) throw new ShapeError(`${op}: splitK is implemented for transA products (weight gradients)`);
  }
  const common: Defines = {
    TRANS_A: !!opts.transA,
    TRANS_B: !!opts.transB,
    OUT_F16: outDtype === 'f16',
    BIAS: !!opts.bias,
    BIAS_F16: opts.bias?.dtype === 'f16',
    GELU: opts.activation === 'gelu',
  };
  /** Dispatches the product, or S products over K slices into partials [S, M, N] then their sum into c. */
  const extra = x3 ?? [];
  const run = (kernel: Kernel, BM: number, BN: number) => {
    const tiles = Math.ceil(N / BN) * Math.ceil(M / BM) * nb;
    // X3 (three products per tile; assuming about one of its 512-thread workgroups per SM): split below two
    // waves, since e.g. 180 tiles would leave a second wave a third full
    const S = opts.splitK ?? (splittable && opts.transA && !opts.transB ? splitKFor(tiles, K, x3 ? SPLIT_TARGET : SPLIT_BELOW) : 1);
    if (S === 1) {
      gpu.dispatch(kernel, [a, b, c, ...(opts.bias ? [opts.bias] : []), ...extra], [M, N, K, M * K, sharedB ? 0 : K * N, M * N], [Math.ceil(N / BN), Math.ceil(M / BM), nb]);
      return;
    }
    // slice s of op(A)·op(B) uses K rows s·Ks.. of both: with transA (A [K, M]) and B [K, N] that is a
    // batch stride of Ks·M and Ks·N; untransposed A [M, K] / transposed B [N, K] need a K offset instead.
    const Ks = K / S;
    const partial = gpu.tensor([S, M * N], 'f32', 'matmul.splitk');
    gpu.dispatch(kernel, [a, b, partial, ...extra], [M, N, Ks, Ks * M, Ks * N, M * N], [Math.ceil(N / BN), Math.ceil(M / BM), S]);
    sum(gpu, partial, 0, c.reshape([M * N])).release();
    partial.release();
  };
  if (variant === 'tensorcore') {
    const tile = opts.tcTile ?? chooseTensorcoreTile(M, N, K, nb, !!x3, !!opts.transB, splittable && !!opts.transA && !opts.transB && opts.splitK === undefined);
    const shared = tensorcoreSharedBytes(tile, opts.transA, opts.transB, !!x3);
    // (Dawn's null backend reports a 16 KiB limit but only compiles: let its pipeline creation say so.)
    if (shared > gpu.info.limits.maxComputeWorkgroupStorageSize && gpu.info.backend !== 'null') {
      throw new ShapeError(`${op}: tensor-core tile ${JSON.stringify(tile)} needs ${shared} bytes of workgroup memory, over this device's ${gpu.info.limits.maxComputeWorkgroupStorageSize}; use a smaller SG_M/SG_N/BK`);
    }
    const BM = tile.SG_M * 32;
    const BN = tile.SG_N * 64;
    const defines: Defines = {
      ...common,
      ...tile,
      VEC_A: (opts.transA ? M : K) % 8 === 0,
      VEC_B: (opts.transB ? K : N) % 8 === 0,
      // A direct subgroupMatrixStore of an f32 16×16 tile makes Dawn require a ≥ 1024-byte output binding
      // (H200: a [2, 64] f32 product failed validation); smaller outputs go through the staging area.
      DIRECT: !common.BIAS && !common.GELU && outDtype === 'f32' && M * N >= 256,
      X3: !!x3,
      PREFETCH: !opts.noPrefetch && (opts.transA ? M : K) % 8 === 0 && (opts.transB ? K : N) % 8 === 0,
    };
    run(gpu.kernel(TENSORCORE, 'main', defines), BM, BN);
    return c;
  }
  if (outDtype === 'f16' && N % 2 !== 0) {
    throw new ShapeError(`${op}: the tiled kernel writes f16 output in pairs and needs an even N (got ${N}); use outDtype 'f32'`);
  }
  const t = opts.tile ?? (M * N >= 1 << 20 ? TILED_LARGE : TILED_SMALL);
  const vecA = a.dtype === 'f32' && (opts.transA ? M : K) % 4 === 0;
  const vecB = b.dtype === 'f32' && (opts.transB ? K : N) % 4 === 0;
  const defines: Defines = {
    ...common,
    A_F16: a.dtype === 'f16',
    B_F16: b.dtype === 'f16',
    VEC_A: vecA,
    VEC_B: vecB,
    PREFETCH: !opts.noPrefetch && vecA && vecB,
    ...t,
    WG: (t.BM / t.TM) * (t.BN / t.TN),
  };
  run(gpu.kernel(TILED, 'main', defines), t.BM, t.BN);
  return c;
}

function chooseVariant(gpu: Gpu, a: Tensor, b: Tensor, wanted: MatmulVariant): 'tiled' | 'tensorcore' {
  const f16 = a.dtype === 'f16' && b.dtype === 'f16';
  if (wanted === 'tensorcore') {
    if (!f16) throw new ShapeError(`matmul: the tensorcore variant takes f16 A and B (got ${a.dtype}, ${b.dtype}); cast them or use variant 'tiled'`);
    const why = tensorcoreUnavailable(gpu);
    if (why) throw new ShapeError(`matmul: the tensorcore variant cannot run on ${gpu.info.adapter}: ${why}; use variant 'tiled'`);
    return 'tensorcore';
  }
  if (wanted === 'tiled') return 'tiled';
  return f16 && !tensorcoreUnavailable(gpu) ? 'tensorcore' : 'tiled';
}
