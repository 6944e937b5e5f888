// 3-D patchify for video latents and its inverse, as used by DiT-style video models:
//   patchify:   x [B, C, T, H, W] → tokens [B, N, C·pt·ph·pw], tokens in (t, h, w) order, features in
//               (c, kt, kh, kw) order: Conv3d(kernel = stride = patch) then flatten(2).transpose(1, 2) is
//               patchify then a matmul with the Conv3d weight viewed as [hidden, C·pt·ph·pw]
//   unpatchify: tokens [B, N, pt·ph·pw·C] → [B, C, T, H, W], features in (kt, kh, kw, c) order, as OpenSora
//               STDiT's "B (T H W) (pt ph pw C) -> B C (T pt) (H ph) (W pw)" (note: not patchify's order)
// The backward of each is the other's index map, done as a gather (patchifyBackward, unpatchifyBackward).
// Any dtype of 32-bit words or f16; values are copied exactly.
import patchifyWgsl from '../../shaders/patchify.wgsl';
import f16Wgsl from '../../shaders/f16.wgsl';
import { ShapeError, shapeStr } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectLive, expectRank, grid, output, words } from './common.js';

const SHADER = { name: 'patchify', template: patchifyWgsl + f16Wgsl };

export type Patch3 = readonly [number, number, number];

export interface PatchOptions {
  /** (pt, ph, pw); default (1, 2, 2). */
  patch?: Patch3;
  out?: Tensor;
}

const DEFAULT_PATCH: Patch3 = [1, 2, 2];

function checkPatch(op: string, patch: Patch3): void {
  if (!Array.isArray(patch) || patch.length !== 3 || patch.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new ShapeError(`${op}: patch ${JSON.stringify(patch)} must be three positive integers (pt, ph, pw)`);
  }
}

/** Checks that [T, H, W] divides by the patch; returns the token count N. */
function tokens(op: string, what: string, size: readonly number[], patch: Patch3): number {
  if (size.length !== 3 || size.some((d) => !Number.isInteger(d) || d < 0)) throw new ShapeError(`${op}: size ${JSON.stringify(size)} must be [T, H, W]`);
  const bad = size.findIndex((d, i) => d % patch[i]! !== 0);
  if (bad >= 0) {
    const axis = 'THW'[bad];
    throw new ShapeError(`${op}: ${what} has ${axis} = ${size[bad]}, not divisible by the patch's ${patch[bad]} (patch ${shapeStr(patch)}); pad ${axis} to a multiple first`);
  }
  return size.reduce((a, d, i) => a * (d / patch[i]!), 1);
}

function gather(gpu: Gpu, op: string, src: Tensor, outShape: number[], video: readonly number[], patch: Patch3, toTokens: boolean, cLast: boolean, out?: Tensor): Tensor {
  const y = output(gpu, op, outShape, src.dtype, out);
  if (y.size === 0) return y;
  const f16 = src.dtype === 'f16';
  const n = words(y.size, y.dtype);
  const [, c, t, h, w] = video;
  const kernel = gpu.kernel(SHADER, 'main', { WORD: f16 ? 'u32' : src.dtype, F16: f16, TO_TOKENS: toTokens });
  const { workgroups, groupsX } = grid(gpu, n, 256);
  gpu.dispatch(kernel, [src, y], [y.size, n, groupsX, c!, t!, h!, w!, ...patch, cLast ? 1 : 0], workgroups);
  return y;
}

/** Video → tokens with features in (c, kt, kh, kw) order (Conv3d order). */
function videoToTokens(gpu: Gpu, op: string, x: Tensor, opts: PatchOptions, cLast: boolean): Tensor {
  const patch = opts.patch ?? DEFAULT_PATCH;
  expectLive(op, x);
  expectRank(op, x, 5);
  checkPatch(op, patch);
  const [b, c, ...size] = x.shape as [number, number, number, number, number];
  const n = tokens(op, `${x.name} ${shapeStr(x.shape)}`, size, patch);
  return gather(gpu, op, x, [b, n, c * patch[0] * patch[1] * patch[2]], x.shape, patch, true, cLast, opts.out);
}

/** Tokens → video of size [T, H, W]; C is the feature count over the patch volume. */
function tokensToVideo(gpu: Gpu, op: string, tok: Tensor, size: readonly number[], opts: PatchOptions, cLast: boolean): Tensor {
  const patch = opts.patch ?? DEFAULT_PATCH;
  expectLive(op, tok);
  expectRank(op, tok, 3);
  checkPatch(op, patch);
  const n = tokens(op, `the video size ${shapeStr(size)}`, size, patch);
  const [b, nTok, f] = tok.shape as [number, number, number];
  const vol = patch[0] * patch[1] * patch[2];
  if (nTok !== n) throw new ShapeError(`${op}: ${tok} has ${nTok} tokens but a ${shapeStr(size)} video in ${shapeStr(patch)} patches has ${n}; pass the video's [T, H, W]`);
  if (f % vol !== 0) throw new ShapeError(`${op}: ${tok} has ${f} features, not a multiple of the patch volume ${vol} (patch ${shapeStr(patch)})`);
  const video = [b, f / vol, ...size];
  return gather(gpu, op, tok, video, video, patch, false, cLast, opts.out);
}

/** x [B, C, T, H, W] → [B, (T/pt)·(H/ph)·(W/pw), C·pt·ph·pw], features (c, kt, kh, kw). */
export function patchify(gpu: Gpu, x: Tensor, opts: PatchOptions = {}): Tensor {
  return videoToTokens(gpu, 'patchify', x, opts, false);
}

/** The gradient of patchify: dTokens [B, N, C·pt·ph·pw] → dx [B, C, T, H, W] for the video size [T, H, W]. */
export function patchifyBackward(gpu: Gpu, dTokens: Tensor, size: readonly [number, number, number], opts: PatchOptions = {}): Tensor {
  return tokensToVideo(gpu, 'patchifyBackward', dTokens, size, opts, false);
}

/** tokens [B, N, pt·ph·pw·C] → [B, C, T, H, W] for the video size [T, H, W], features (kt, kh, kw, c). */
export function unpatchify(gpu: Gpu, tok: Tensor, size: readonly [number, number, number], opts: PatchOptions = {}): Tensor {
  return tokensToVideo(gpu, 'unpatchify', tok, size, opts, true);
}

/** The gradient of unpatchify: dx [B, C, T, H, W] → dTokens [B, N, pt·ph·pw·C]. */
export function unpatchifyBackward(gpu: Gpu, dx: Tensor, opts: PatchOptions = {}): Tensor {
  return videoToTokens(gpu, 'unpatchifyBackward', dx, opts, true);
}
