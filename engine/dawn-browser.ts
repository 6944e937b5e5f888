// Browser stand-in for dawn.ts (swapped in by build.mjs): in a page, WebGPU comes from navigator.gpu.
import { DeviceUnavailableError } from './errors.js';

export type DawnBackend = 'gpu' | 'swiftshader' | 'llvmpipe' | 'null';
export interface DawnPaths {
  swiftshaderIcd: string;
  vulkanLoader: string[];
  mesaEgl: string[];
}
export const INSTALL_HINT: Record<DawnBackend, string> = {
  gpu: 'Node.js (Dawn)',
  swiftshader: 'Node.js (Dawn)',
  llvmpipe: 'Node.js (Dawn)',
  null: 'Node.js (Dawn)',
};

export function dawnInstance(backend: DawnBackend): never {
  throw new DeviceUnavailableError(`${backend}: Dawn backends exist only under Node.js; in a browser use device 'browser'`);
}
