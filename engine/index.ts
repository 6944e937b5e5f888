// Public entry of the engine (also the browser bundle's entry).
export { Gpu, packParams, type GpuOptions, type ParamValue } from './gpu.js';
export { openDevice, DEVICE_CHOICES, type DeviceChoice, type DeviceInfo, type DeviceOptions } from './device.js';
export { Tensor, numel } from './tensor.js';
export { type DType, toF16Bits, fromF16Bits, f32ToF16Bits, f16BitsToF32 } from './dtype.js';
export { ShapeError, GpuError, DeviceUnavailableError } from './errors.js';
export { Profiler, type KernelTime } from './profiler.js';
export { matmul, type MatmulOptions } from './ops/matmul.js';
export { cast } from './ops/cast.js';
export { add, mul, scale, axpby } from './ops/elementwise.js';
export { sum } from './ops/reduce.js';
export { permute, transpose2d } from './ops/permute.js';
