// Error types the engine throws. Every message names the thing that is wrong and how to fix it.

/** A tensor has the wrong shape, dtype or size for an op. Thrown synchronously, before any GPU work. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}

/** No usable WebGPU adapter/device; the message names the missing package and the install command. */
export class DeviceUnavailableError extends Error {
  override name = 'DeviceUnavailableError';
}

/** The GPU reported an error (validation, out-of-memory, internal, shader compilation, device loss). */
export class GpuError extends Error {
  override name = 'GpuError';
  constructor(
    message: string,
    /** Kernels encoded in the failing submit (or the kernel that failed to compile). */
    readonly kernels: readonly string[],
    readonly kind: 'validation' | 'out-of-memory' | 'internal' | 'compilation' | 'device-lost' | 'uncaptured',
  ) {
    super(message);
  }
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
