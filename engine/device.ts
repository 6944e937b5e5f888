// Device acquisition: one function that returns a ready GPUDevice and a description of what it has.
// Node: Dawn (hardware Vulkan, else a software WebGPU). Browser: navigator.gpu.
import { dawnInstance, INSTALL_HINT, type DawnBackend, type DawnPaths } from './dawn.js';
import { DeviceUnavailableError } from './errors.js';

/**
 * Which WebGPU implementation to use.
 * - auto: a hardware GPU when there is one, else SwiftShader, else llvmpipe (Node); navigator.gpu (browser)
 * - gpu: hardware only (Dawn Vulkan), an error if only a software adapter exists
 * - swiftshader: SwiftShader's Vulkan (core feature level, subgroups, timestamps; no f16). Default for tests.
 * - llvmpipe: Mesa llvmpipe through Dawn's OpenGL backend (compatibility level; ~7x faster matmul, no subgroups)
 * - null: Dawn's null backend: validates and compiles every kernel (f16, subgroup matrices) but runs nothing;
 *   tests use it to check GPU-only shaders on machines without a GPU
 * - browser: navigator.gpu
 */
export type DeviceChoice = 'auto' | DawnBackend | 'browser';
export const DEVICE_CHOICES: readonly DeviceChoice[] = ['auto', 'gpu', 'swiftshader', 'llvmpipe', 'null', 'browser'];

export interface DeviceOptions {
  /** Defaults to the WEBGPU_DEVICE environment variable, else 'auto'. */
  device?: DeviceChoice;
  /** Benchmark mode: disable_robustness, disable_workgroup_init, unquantized timestamps. Never for tests. */
  fast?: boolean;
  /** Overrides the system paths probed for the software drivers (tests of the error path use this). */
  paths?: DawnPaths;
  /**
   * For 'auto' without a GPU: try llvmpipe before SwiftShader (model workloads: ~7× faster matmuls; the
   * command-line tool does this; tests keep SwiftShader first for its subgroups and timestamps).
   */
  preferLlvmpipe?: boolean;
}

export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface DeviceInfo {
  /** The implementation actually used: gpu, swiftshader, llvmpipe or browser. */
  backend: Exclude<DeviceChoice, 'auto'>;
  software: boolean;
  fast: boolean;
  featureLevel: 'core' | 'compatibility';
  adapter: string;
  f16: boolean;
  subgroups: boolean;
  subgroupSize: { min: number; max: number };
  timestamps: boolean;
  /** chromium-experimental-subgroup-matrix is enabled (configs may be empty on the null backend). */
  subgroupMatrixFeature: boolean;
  subgroupMatrix: SubgroupMatrixConfig[];
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
    minStorageBufferOffsetAlignment: number;
    minUniformBufferOffsetAlignment: number;
    maxUniformBufferBindingSize: number;
  };
}

export interface OpenedDevice {
  device: GPUDevice;
  info: DeviceInfo;
}

const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'];
const SOFTWARE_NAMES = /swiftshader|llvmpipe|lavapipe|softpipe|software/i;

function adapterName(adapter: GPUAdapter): string {
  const i = adapter.info;
  return [i.vendor, i.architecture, i.device, i.description].filter((s) => s).join(' / ') || 'unknown adapter';
}

function readSubgroupMatrixConfigs(adapter: GPUAdapter): SubgroupMatrixConfig[] {
  const raw = (adapter.info as unknown as { subgroupMatrixConfigs?: ArrayLike<SubgroupMatrixConfig> }).subgroupMatrixConfigs;
  if (!raw || !adapter.features.has('chromium-experimental-subgroup-matrix')) return [];
  return Array.from(raw, (c) => ({
    componentType: String(c.componentType),
    resultComponentType: String(c.resultComponentType),
    M: Number(c.M),
    N: Number(c.N),
    K: Number(c.K),
  }));
}

async function requestDevice(
  adapter: GPUAdapter,
  backend: DeviceInfo['backend'],
  featureLevel: 'core' | 'compatibility',
  fast: boolean,
): Promise<OpenedDevice> {
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  // Ask for everything the adapter offers: real models need the 2 GiB bindings and 48 KiB workgroup memory.
  const requiredLimits: Record<string, number> = {};
  for (const key in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') requiredLimits[key] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: `webgpu-dit ${backend}` });
  const l = device.limits;
  const name = adapterName(adapter);
  const info: DeviceInfo = {
    backend,
    software: backend === 'swiftshader' || backend === 'llvmpipe' || backend === 'null' || SOFTWARE_NAMES.test(name),
    fast,
    featureLevel,
    adapter: name,
    f16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    subgroupSize: {
      min: Number((adapter.info as unknown as { subgroupMinSize?: number }).subgroupMinSize ?? 0),
      max: Number((adapter.info as unknown as { subgroupMaxSize?: number }).subgroupMaxSize ?? 0),
    },
    timestamps: device.features.has('timestamp-query'),
    subgroupMatrixFeature: device.features.has('chromium-experimental-subgroup-matrix'),
    subgroupMatrix: device.features.has('chromium-experimental-subgroup-matrix') ? readSubgroupMatrixConfigs(adapter) : [],
    limits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      minStorageBufferOffsetAlignment: l.minStorageBufferOffsetAlignment,
      minUniformBufferOffsetAlignment: l.minUniformBufferOffsetAlignment,
      maxUniformBufferBindingSize: l.maxUniformBufferBindingSize,
    },
  };
  return { device, info };
}

async function tryDawn(backend: DawnBackend, opts: DeviceOptions): Promise<OpenedDevice> {
  const { gpu, featureLevel } = dawnInstance(backend, !!opts.fast, opts.paths);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', featureLevel } as GPURequestAdapterOptions);
  if (!adapter) {
    throw new DeviceUnavailableError(`${backend}: Dawn found no adapter; this needs ${INSTALL_HINT[backend]}`);
  }
  const name = adapterName(adapter);
  if (backend === 'gpu' && SOFTWARE_NAMES.test(name)) {
    throw new DeviceUnavailableError(
      `gpu: the only Vulkan adapter is a software one (${name}); unset VK_ICD_FILENAMES or choose WEBGPU_DEVICE=swiftshader`,
    );
  }
  return requestDevice(adapter, backend, featureLevel, !!opts.fast);
}

async function tryBrowser(opts: DeviceOptions): Promise<OpenedDevice> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!nav?.gpu) throw new DeviceUnavailableError('browser: navigator.gpu is missing; use a browser with WebGPU enabled');
  const adapter = await nav.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new DeviceUnavailableError('browser: navigator.gpu.requestAdapter() returned null; WebGPU is disabled or unsupported here');
  return requestDevice(adapter, 'browser', 'core', !!opts.fast);
}

function envChoice(): DeviceChoice | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.WEBGPU_DEVICE as DeviceChoice | undefined;
}

/** Returns a ready device. Tries, for 'auto': hardware GPU, SwiftShader, llvmpipe; the error lists every failure. */
export async function openDevice(opts: DeviceOptions = {}): Promise<OpenedDevice> {
  const choice = opts.device ?? envChoice() ?? 'auto';
  if (!DEVICE_CHOICES.includes(choice)) {
    throw new DeviceUnavailableError(`unknown device "${choice}" (WEBGPU_DEVICE or --device); use one of ${DEVICE_CHOICES.join(', ')}`);
  }
  const isBrowser = typeof (globalThis as { window?: unknown }).window !== 'undefined';
  if (choice === 'browser' || (choice === 'auto' && isBrowser)) return tryBrowser(opts);
  const software: DawnBackend[] = opts.preferLlvmpipe ? ['llvmpipe', 'swiftshader'] : ['swiftshader', 'llvmpipe'];
  const order: DawnBackend[] = choice === 'auto' ? ['gpu', ...software] : [choice];
  const failures: string[] = [];
  for (const backend of order) {
    try {
      return await tryDawn(backend, opts);
    } catch (e) {
      failures.push(e instanceof Error ? e.message : String(e));
    }
  }
  throw new DeviceUnavailableError(`No WebGPU device could be opened:\n  - ${failures.join('\n  - ')}`);
}
