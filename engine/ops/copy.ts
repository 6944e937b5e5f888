// copy16: a 16-byte-vector copy kernel, the bandwidth ceiling for memory-bound kernels' benchmarks.
import { ShapeError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import type { Tensor } from '../tensor.js';
import { expectLive } from './common.js';
import copyWgsl from '../../shaders/copy.wgsl';

const COPY = { name: 'copy', template: copyWgsl };

/** Copies src into dst (same byte size, a multiple of 16 bytes) with 16-byte loads and stores. */
export function copy16(gpu: Gpu, src: Tensor, dst: Tensor, workgroups = 1024): void {
  expectLive('copy16', src, dst);
  if (src.byteLength !== dst.byteLength || src.byteLength % 16 !== 0) {
    throw new ShapeError(`copy16: ${src} and ${dst} must have the same byte size, a multiple of 16 (got ${src.byteLength} and ${dst.byteLength})`);
  }
  const wg = Math.min(workgroups, gpu.info.limits.maxComputeWorkgroupsPerDimension);
  gpu.dispatch(gpu.kernel(COPY, 'main', {}), [src, dst], [src.byteLength / 16, wg * 256], [wg]);
}
