// Node-only: WebGPU through Dawn (the `webgpu` npm package). The browser bundle replaces this module
// with dawn-browser.ts (build.mjs), so nothing here reaches a web page.
import { existsSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { DeviceUnavailableError } from './errors.js';

export type DawnBackend = 'gpu' | 'swiftshader' | 'llvmpipe' | 'null';

export interface DawnPaths {
  /** SwiftShader's Vulkan ICD, shipped by Debian's chromium package. */
  swiftshaderIcd: string;
  /** Files whose presence shows that the Vulkan loader and Mesa's EGL/llvmpipe are installed. */
  vulkanLoader: string[];
  mesaEgl: string[];
}

export const DEFAULT_PATHS: DawnPaths = {
  swiftshaderIcd: '/usr/lib/chromium/vk_swiftshader_icd.json',
  vulkanLoader: ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1', '/usr/lib/libvulkan.so.1'],
  mesaEgl: ['/usr/lib/x86_64-linux-gnu/libEGL_mesa.so.0', '/usr/lib/aarch64-linux-gnu/libEGL_mesa.so.0'],
};

export const INSTALL_HINT: Record<DawnBackend, string> = {
  gpu: 'a GPU with a Vulkan driver plus the Vulkan loader (apt-get install -y libvulkan1)',
  swiftshader: 'SwiftShader from Debian\'s chromium package plus the Vulkan loader (apt-get install -y chromium libvulkan1)',
  llvmpipe: 'Mesa llvmpipe through EGL (apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri)',
  null: 'nothing (Dawn\'s null backend is built in)',
};

let globalsInstalled = false;
// Dawn instances must stay referenced while their devices live; kept here until exit.
const instances: GPU[] = [];

export interface DawnInstance {
  gpu: GPU;
  featureLevel: 'core' | 'compatibility';
}

/**
 * Makes a Dawn instance for one backend, or explains why that backend cannot exist on this machine.
 * `fast` adds the benchmark-only toggles (no bounds checks, no workgroup zero-init, unquantized timestamps).
 */
export function dawnInstance(backend: DawnBackend, fast: boolean, paths: DawnPaths = DEFAULT_PATHS): DawnInstance {
  if (!globalsInstalled) {
    Object.assign(globalThis, globals);
    globalsInstalled = true;
  }
  const enable = ['allow_unsafe_apis'];
  const disable: string[] = [];
  if (fast) {
    enable.push('disable_robustness', 'disable_workgroup_init');
    disable.push('timestamp_quantization');
  }
  const flags: string[] = [];
  let featureLevel: 'core' | 'compatibility' = 'core';
  if (backend === 'null') {
    // Validates and compiles everything (subgroup matrices and f16 included) but executes nothing.
    flags.push('backend=null');
  } else if (backend === 'llvmpipe') {
    if (!paths.mesaEgl.some(existsSync)) {
      throw new DeviceUnavailableError(`llvmpipe: Mesa's EGL driver is not installed; install ${INSTALL_HINT.llvmpipe}`);
    }
    process.env.EGL_PLATFORM ??= 'surfaceless';
    flags.push('backend=opengl');
    featureLevel = 'compatibility';
  } else {
    if (!paths.vulkanLoader.some(existsSync)) {
      throw new DeviceUnavailableError(`${backend}: the Vulkan loader libvulkan.so.1 is missing; install ${INSTALL_HINT[backend]}`);
    }
    if (backend === 'swiftshader') {
      if (!existsSync(paths.swiftshaderIcd)) {
        throw new DeviceUnavailableError(
          `swiftshader: ${paths.swiftshaderIcd} is missing; install ${INSTALL_HINT.swiftshader}`,
        );
      }
      // The Vulkan loader reads this when Dawn creates its Vulkan instance.
      process.env.VK_ICD_FILENAMES = paths.swiftshaderIcd;
    } else {
      enable.push('vulkan_enable_f16_on_nvidia');
    }
    flags.push('backend=vulkan');
  }
  flags.push(`enable-dawn-features=${enable.join(',')}`);
  if (disable.length) flags.push(`disable-dawn-features=${disable.join(',')}`);
  const gpu = create(flags);
  instances.push(gpu);
  return { gpu, featureLevel };
}
