// Browser stand-in for dawn.ts (swapped in by build.mjs): in a page, WebGPU comes from navigator.gpu.
import { DeviceUnavailableError } from './errors.js';
import type { DawnBackend } from './dawn.js'; // types only: erased, so the bundle never loads dawn.ts

export type { DawnBackend, DawnPaths } from './dawn.js';
export const INSTALL_HINT: Record<DawnBackend, string> = {
  gpu: 'Node.js (Dawn)',
  swiftshader: 'Node.js (Dawn)',
  llvmpipe: 'Node.js (Dawn)',
  null: 'Node.js (Dawn)',
};

export function dawnInstance(backend: DawnBackend): never {
  throw new DeviceUnavailableError(`${backend}: Dawn backends exist only under Node.js; in a browser use device 'browser'`);
}
