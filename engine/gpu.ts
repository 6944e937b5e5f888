// The runtime: one object per device that owns the buffer pool, the pipeline cache, the command encoder
// that batches dispatches into one submit, the uniform arena, the profiler, and error reporting.
//
// Ordering model: everything (uploads, dispatches, copies, readbacks) is recorded into one command encoder
// in program order and submitted at flush(); uploads go through staging buffers copied inside the encoder,
// so they are ordered with the dispatches around them. GPU errors are captured with error scopes per submit
// and thrown, with the names of the kernels in that submit, from the next sync()/read().
import { openDevice, type DeviceInfo, type DeviceOptions } from './device.js';
import { f16BitsToF32, toF16Bits, type DType, type HostArray } from './dtype.js';
import { GpuError, ShapeError, shapeStr } from './errors.js';
import { BufferPool } from './pool.js';
import { Profiler } from './profiler.js';
import { formatCompilation, parseBindings, renderWgsl, variantLabel, type Defines, type Kernel, type ShaderSource } from './shader.js';
import { checkShape, Tensor, tensorBytes } from './tensor.js';
import fillWgsl from '../shaders/fill.wgsl';

export interface GpuOptions extends DeviceOptions {
  /** Fill every new tensor with NaN before use, so a kernel that leaves outputs unwritten is caught. */
  poison?: boolean;
}

/** Uniform values for one dispatch: plain numbers are u32 (i32 when negative), {f32: x} is a float. */
export type ParamValue = number | { f32: number };

export function packParams(values: readonly ParamValue[]): Uint8Array {
  const n = Math.max(4, Math.ceil(values.length / 4) * 4); // uniform structs are 16-byte aligned
  const buf = new ArrayBuffer(n * 4);
  const view = new DataView(buf);
  values.forEach((v, i) => {
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) throw new TypeError(`param ${i}: ${v} is not an integer; wrap floats as {f32: x}`);
      if (v < 0) view.setInt32(i * 4, v, true);
      else view.setUint32(i * 4, v, true);
    } else view.setFloat32(i * 4, v.f32, true);
  });
  return new Uint8Array(buf);
}

type Workgroups = readonly [number, number?, number?];

/**
 * Precision of the f32 products of engine/functional.ts (linear, matmul), as torch.set_float32_matmul_precision:
 * 'highest' = the exact f32 kernels; 'high' = matmulF16x3 (three f16 products on tensor cores, ~f32 accuracy;
 * engine/ops/matmul_f16x3.ts) where the device has tensor cores, else the exact kernels.
 */
export type MatmulPrecision = 'highest' | 'high';

/** Most bind groups kept (a large model's step has a few thousand dispatches). */
const BIND_GROUP_CACHE = 32768;
const UNIFORM_CHUNK = 64 * 1024;
const FILL = { name: 'fill', template: fillWgsl };

interface UniformChunk {
  buffer: GPUBuffer;
  data: Uint8Array;
  used: number;
}

interface PendingCheck {
  kernels: string[];
  promise: Promise<GpuError | null>;
}

export class Gpu {
  readonly pool: BufferPool;
  readonly profiler: Profiler;
  private kernels = new Map<string, Kernel>();
  /**
   * Bind groups by (pipeline layout, buffers, uniform range): a training step repeats the same dispatches on
   * the same pooled buffers and the same uniform-arena offsets, and creating a bind group was most of a
   * dispatch's CPU cost. Keys name buffers by a per-object id, so a destroyed buffer's entries are never hit
   * again; the whole map is dropped when it grows past BIND_GROUP_CACHE.
   */
  private bindGroups = new Map<string, GPUBindGroup>();
  /** Bind groups created and reused from the cache (tests and benchmarks read these). */
  readonly bindGroupStats = { created: 0, reused: 0 };
  /**
   * Precision of f32 products in engine/functional.ts (see MatmulPrecision; the Trainer sets it from the
   * config's matmul_precision). Read at each product, so it can change between steps.
   */
  matmulPrecision: MatmulPrecision = 'highest';
  /**
   * Tests only: route 'high' through matmulF16x3 on a device without tensor cores too (its tiled kernel on
   * f16 storage: slower than the exact f32 kernel, but the same split, products and combine).
   */
  matmulF16x3Everywhere = false;
  /**
   * Fewest scores per head (Nq·Nk) for which f32 attention at 'high' takes ops/attention_matmul.ts's path
   * (128·128: below, the flash kernels are faster); tests lower it to run small models through that path.
   */
  matmulAttentionMinScores = 128 * 128;
  /**
   * Most score bytes (f32 Nq·Nk of all heads of the samples in one call) that path materialises at once:
   * more samples run in groups; a single sample over it takes the flash kernels. Tests lower it.
   */
  matmulAttentionMaxScoreBytes = 1 << 30;
  /**
   * f32 products of engine/functional.ts by path, and its f32 attentions that ran as matmulF16x3 products
   * (ops/attention_matmul.ts) — tests and benchmarks read these to see which path ran.
   */
  readonly f32MatmulStats = { f16x3: 0, exact: 0, attention: 0 };
  private readonly objectIds = new WeakMap<object, number>();
  private nextObjectId = 1;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private scopesOpen = false;
  private batchKernels: string[] = [];
  private chunks: UniformChunk[] = [];
  private chunkIndex = 0;
  private staging: GPUBuffer[] = [];
  private afterSubmit: (() => void)[] = [];
  private checks: PendingCheck[] = [];
  private fatal: GpuError | null = null;
  private submitted = 0;
  private completed = 0;

  static async open(opts: GpuOptions = {}): Promise<Gpu> {
    const { device, info } = await openDevice(opts);
    return new Gpu(device, info, opts);
  }

  constructor(
    readonly device: GPUDevice,
    readonly info: DeviceInfo,
    private opts: GpuOptions = {},
  ) {
    this.pool = new BufferPool(device, info.limits.maxBufferSize);
    this.profiler = new Profiler(device, info.timestamps);
    device.addEventListener('uncapturederror', (ev) => {
      const msg = (ev as GPUUncapturedErrorEvent).error.message;
      this.fatal ??= new GpuError(`uncaptured GPU error: ${msg}`, [], 'uncaptured');
    });
    void device.lost.then((l) => {
      if (l.reason !== 'destroyed') this.fatal ??= new GpuError(`GPU device lost (${l.reason}): ${l.message}`, [], 'device-lost');
    });
  }

  // ---- kernels -------------------------------------------------------------------------------------

  /** The compute pipeline for one variant of a shader template, compiled once and cached. */
  kernel(shader: ShaderSource, entry = 'main', defines: Defines = {}): Kernel {
    const key = `${shader.name}|${entry}|${JSON.stringify(defines)}`;
    const cached = this.kernels.get(key);
    if (cached) return cached;
    const label = variantLabel(shader, entry, defines);
    const code = renderWgsl(shader, defines);
    const bindings = parseBindings(code);
    const uniforms = bindings.filter((b) => b.kind === 'uniform');
    if (uniforms.length > 1) throw new Error(`kernel ${label}: at most one uniform binding is supported`);
    this.openScopes();
    this.batchKernels.push(label);
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code, label });
    const layout = this.device.createBindGroupLayout({
      label,
      entries: bindings.map((b) => ({ binding: b.index, visibility: GPUShaderStage.COMPUTE, buffer: { type: b.kind } })),
    });
    const pipeline = this.device.createComputePipeline({
      label,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout], label }),
      compute: { module, entryPoint: entry },
    });
    const created = this.device.popErrorScope();
    const failure = Promise.all([module.getCompilationInfo(), created]).then(([ci, err]) => {
      const e = ci.messages.some((m) => m.type === 'error')
        ? new GpuError(formatCompilation(label, code, ci.messages), [label], 'compilation')
        : err
          ? new GpuError(`kernel ${label}: pipeline creation failed: ${err.message}`, [label], 'validation')
          : null;
      if (e) kernel.error = e; // later dispatches of this variant throw it instead of failing obscurely
      return e;
    });
    this.checks.push({ kernels: [label], promise: failure });
    const kernel: Kernel = { label, pipeline, layout, bindings, storage: bindings.filter((b) => b.kind !== 'uniform'), uniform: uniforms[0] };
    this.kernels.set(key, kernel);
    return kernel;
  }

  /** Workgroup counts for `n` workgroups in a 1-D grid, folded into y when n exceeds the per-dimension limit. */
  grid1d(n: number): [number, number, number] {
    const max = this.info.limits.maxComputeWorkgroupsPerDimension;
    if (n <= max) return [Math.max(1, n), 1, 1];
    const y = Math.ceil(n / max);
    if (y > max) throw new ShapeError(`grid of ${n} workgroups exceeds ${max}² (maxComputeWorkgroupsPerDimension)`);
    return [Math.ceil(n / y), y, 1];
  }

  /**
   * Records one dispatch. `tensors` bind to the kernel's storage bindings in binding order; `params` fills
   * its uniform binding. Nothing runs until flush() (or a read/sync, which flush).
   */
  dispatch(kernel: Kernel, tensors: readonly Tensor[], params: ParamValue[] | Uint8Array | null, workgroups: Workgroups): void {
    if (kernel.error) throw kernel.error;
    if (tensors.length !== kernel.storage.length) {
      throw new Error(`kernel ${kernel.label} binds ${kernel.storage.length} tensors (${kernel.storage.map((b) => b.variable).join(', ')}); got ${tensors.length}`);
    }
    const max = this.info.limits.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = workgroups;
    if ([x, y, z].some((w) => !Number.isInteger(w) || w < 0 || w > max)) {
      throw new ShapeError(`kernel ${kernel.label}: workgroup grid [${x}, ${y}, ${z}] is outside 0..${max} per dimension`);
    }
    kernel.storage.forEach((b, i) => {
      if (b.kind !== 'storage') return;
      const out = tensors[i]!;
      tensors.forEach((t, j) => {
        if (j !== i && !t.released && !out.released && t.buffer === out.buffer) {
          throw new ShapeError(`kernel ${kernel.label}: output ${b.variable} (${out}) aliases input ${kernel.storage[j]!.variable} (${t}); pass a separate output tensor`);
        }
      });
    });
    let uniform: GPUBufferBinding | null = null;
    if (kernel.uniform) {
      if (!params) throw new Error(`kernel ${kernel.label} declares uniform ${kernel.uniform.variable} but no params were given`);
      uniform = this.uniformSlot(params instanceof Uint8Array ? params : packParams(params));
    }
    this.openScopes();
    this.batchKernels.push(kernel.label);
    let key = `${this.objectId(kernel.layout)}`;
    for (const t of tensors) key += `,${this.objectId(t.buffer)}`;
    if (uniform) key += `|${this.objectId(uniform.buffer)}@${uniform.offset}+${uniform.size}`;
    let bindGroup = this.bindGroups.get(key);
    if (bindGroup) this.bindGroupStats.reused++;
    else {
      this.bindGroupStats.created++;
      const entries: GPUBindGroupEntry[] = kernel.storage.map((b, i) => ({ binding: b.index, resource: { buffer: tensors[i]!.buffer } }));
      if (uniform) entries.push({ binding: kernel.uniform!.index, resource: uniform });
      bindGroup = this.device.createBindGroup({ layout: kernel.layout, entries, label: kernel.label });
      if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.clear();
      this.bindGroups.set(key, bindGroup);
    }
    if (x === 0 || y === 0 || z === 0) return;
    const pass = this.computePass(kernel.label);
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler.enabled) this.endPass();
    if (this.profiler.enabled && this.profiler.full) this.flush();
  }

  // ---- tensors -------------------------------------------------------------------------------------

  /** An uninitialised tensor from the pool (NaN-filled when the Gpu was opened with poison). */
  tensor(shape: readonly number[], dtype: DType = 'f32', name = 'tensor'): Tensor {
    const s = checkShape(shape, `tensor "${name}"`);
    const bytes = tensorBytes(s, dtype);
    const limit = this.info.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new ShapeError(
        `tensor "${name}" ${shapeStr(s)} ${dtype} needs ${bytes} bytes, over this device's maxStorageBufferBindingSize of ${limit} bytes (${this.info.adapter}); split it along a leading axis or use a device with larger limits`,
      );
    }
    this.openScopes();
    const t = new Tensor(this, s, dtype, this.pool.acquire(bytes, name), name);
    if (this.opts.poison) this.fill(t, NaN);
    return t;
  }

  /** A new tensor holding `data` (numbers are converted to the dtype; Uint16Array for f16 is taken as raw bits). */
  upload(data: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32', name = 'input'): Tensor {
    const t = this.tensor(shape, dtype, name);
    this.write(t, data);
    return t;
  }

  /** Overwrites a tensor's contents, ordered after all work recorded so far. */
  write(t: Tensor, data: ArrayLike<number>): void {
    if (data.length !== t.size) throw new ShapeError(`write to ${t}: got ${data.length} values, expected ${t.size}`);
    let bytes: Uint8Array;
    if (t.dtype === 'f16') {
      const bits = data instanceof Uint16Array ? data : toF16Bits(data);
      bytes = new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
    } else {
      const arr = t.dtype === 'f32' ? Float32Array.from(data) : t.dtype === 'i32' ? Int32Array.from(data) : Uint32Array.from(data);
      bytes = new Uint8Array(arr.buffer);
    }
    const size = Math.ceil(bytes.byteLength / 4) * 4;
    if (size === 0) return;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true, label: `upload ${t.name}` });
    new Uint8Array(staging.getMappedRange()).set(bytes);
    staging.unmap();
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(staging, 0, t.buffer, 0, size);
    this.staging.push(staging);
  }

  /** Fills a tensor with one value (for f16, the value rounded to half). */
  fill(t: Tensor, value: number): void {
    let word: number;
    if (t.dtype === 'f16') {
      const h = toF16Bits([value])[0]!;
      word = (h | (h << 16)) >>> 0;
    } else {
      const v = new DataView(new ArrayBuffer(4));
      if (t.dtype === 'f32') v.setFloat32(0, value, true);
      else if (t.dtype === 'i32') v.setInt32(0, value, true);
      else v.setUint32(0, value, true);
      word = v.getUint32(0, true);
    }
    const words = t.buffer.size / 4;
    const k = this.kernel(FILL, 'main', {});
    const wg = Math.ceil(words / 256);
    const grid = this.grid1d(wg);
    this.dispatch(k, [t], [words, word, grid[0]], grid);
  }

  /** A new tensor holding a copy of t. */
  clone(t: Tensor, name = `${t.name}.copy`): Tensor {
    const c = this.tensor(t.shape, t.dtype, name);
    this.copy(t, c);
    return c;
  }

  /** Copies src into dst (same byte size). */
  copy(src: Tensor, dst: Tensor): void {
    if (src.byteLength !== dst.byteLength) throw new ShapeError(`copy ${src} → ${dst}: byte sizes differ`);
    this.endPass();
    this.openScopes();
    this.commandEncoder().copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, Math.ceil(src.byteLength / 4) * 4);
  }

  /**
   * Copies `elements` elements from src (starting at element srcAt) into dst (at element dstAt), in order with
   * the dispatches around it. Tensors of 32-bit elements, or f16 at even element offsets and counts.
   */
  copyRange(src: Tensor, srcAt: number, dst: Tensor, dstAt: number, elements: number): void {
    if (src.dtype !== dst.dtype) throw new ShapeError(`copyRange ${src} → ${dst}: dtypes differ`);
    if (srcAt < 0 || dstAt < 0 || elements < 0 || srcAt + elements > src.size || dstAt + elements > dst.size) {
      throw new ShapeError(`copyRange ${src}[${srcAt}..${srcAt + elements}) → ${dst}[${dstAt}..${dstAt + elements}): out of range`);
    }
    const eb = src.dtype === 'f16' ? 2 : 4;
    if (eb === 2 && (srcAt % 2 || dstAt % 2 || elements % 2)) {
      throw new ShapeError(`copyRange ${src} → ${dst}: f16 ranges must start at even elements and hold an even count (got ${srcAt}, ${dstAt}, ${elements})`);
    }
    if (elements === 0) return;
    this.endPass();
    this.openScopes();
    this.commandEncoder().copyBufferToBuffer(src.buffer, srcAt * eb, dst.buffer, dstAt * eb, elements * eb);
  }

  releaseBuffer(buffer: GPUBuffer): void {
    this.pool.release(buffer, this.submitted + 1);
  }

  // ---- submission and readback ----------------------------------------------------------------------

  /** Submits everything recorded so far as one command buffer. */
  flush(): void {
    if (!this.encoder && !this.scopesOpen) return;
    this.endPass();
    const encoder = this.commandEncoder();
    const onProfile = this.profiler.resolve(encoder);
    for (const c of this.chunks.slice(0, this.chunkIndex + 1)) {
      if (c.used) this.device.queue.writeBuffer(c.buffer, 0, c.data, 0, c.used);
      c.used = 0;
    }
    this.chunkIndex = 0;
    this.device.queue.submit([encoder.finish()]);
    this.encoder = null;
    const serial = ++this.submitted;
    this.pool.canonicalize();
    onProfile?.();
    for (const f of this.afterSubmit.splice(0)) f();
    const staging = this.staging.splice(0);
    void this.device.queue.onSubmittedWorkDone().then(() => {
      this.completed = Math.max(this.completed, serial);
      for (const b of staging) b.destroy();
    });
    this.closeScopes();
  }

  /** Flushes, waits for the GPU, and throws the first GPU error since the last check. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
  }

  /** Downloads a tensor (f16 decoded to f32). */
  async read(t: Tensor): Promise<HostArray> {
    const bytes = Math.ceil(t.byteLength / 4) * 4;
    const dst = this.device.createBuffer({ size: Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: `read ${t.name}` });
    this.endPass();
    this.openScopes();
    if (bytes) this.commandEncoder().copyBufferToBuffer(t.buffer, 0, dst, 0, bytes);
    this.flush();
    try {
      await dst.mapAsync(GPUMapMode.READ);
    } catch (e) {
      await this.checkErrors();
      throw e;
    }
    await this.checkErrors();
    const raw = dst.getMappedRange().slice(0);
    dst.unmap();
    dst.destroy();
    if (t.dtype === 'f32') return new Float32Array(raw, 0, t.size);
    if (t.dtype === 'i32') return new Int32Array(raw, 0, t.size);
    if (t.dtype === 'u32') return new Uint32Array(raw, 0, t.size);
    const bits = new Uint16Array(raw, 0, t.size);
    const out = new Float32Array(t.size);
    for (let i = 0; i < t.size; i++) out[i] = f16BitsToF32(bits[i]!);
    return out;
  }

  /** Throws the first GPU error reported since the last check (the message names the kernels involved). */
  async checkErrors(): Promise<void> {
    const checks = this.checks.splice(0);
    const results = await Promise.all(checks.map((c) => c.promise));
    const compile = results.find((r) => r?.kind === 'compilation');
    const first = compile ?? results.find((r) => r);
    if (first) throw first;
    if (this.fatal) throw this.fatal;
  }

  /** Destroys cached buffers whose last use has completed. */
  async trim(): Promise<number> {
    await this.sync();
    return this.pool.trim(this.completed);
  }

  async destroy(): Promise<void> {
    try {
      await this.sync();
    } finally {
      this.device.destroy();
    }
  }

  /**
   * GPU milliseconds of `record`'s dispatches recorded back to back into one compute pass with timestamps at its
   * start and end: a stream of kernels as a training step (or PyTorch's CUDA-event timing) runs them, barriers
   * between dependent dispatches included, without the per-dispatch passes of the profiler. For benchmarks; needs
   * timestamp-query and the profiler off, and throws if `record` leaves the pass (a copy, an upload, a flush).
   */
  async timePass(record: () => void): Promise<number> {
    if (!this.profiler.available) throw new Error('timePass: this device has no timestamp-query feature; time with the wall clock instead');
    if (this.profiler.enabled) throw new Error('timePass: the profiler is on (it gives every dispatch its own pass); disable it first');
    await this.sync();
    this.profiler.reset();
    const pass = this.commandEncoder().beginComputePass({ label: 'timed pass', timestampWrites: this.profiler.passTimestamps('timed pass') });
    this.pass = pass;
    record();
    if (this.pass !== pass) {
      this.flush();
      await this.profiler.report();
      this.profiler.reset();
      throw new Error('timePass: the recorded work left the timed compute pass (a buffer copy, upload or flush inside it); time it per dispatch instead');
    }
    await this.sync();
    const ms = (await this.profiler.report()).reduce((s, r) => s + r.totalMs, 0);
    this.profiler.reset();
    return ms;
  }

  /** Number of submits so far (a training step should add few). */
  get submits(): number {
    return this.submitted;
  }

  // ---- internals -----------------------------------------------------------------------------------

  private commandEncoder(): GPUCommandEncoder {
    this.openScopes();
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private computePass(label: string): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    const desc: GPUComputePassDescriptor = {};
    if (this.profiler.enabled) desc.timestampWrites = this.profiler.passTimestamps(label);
    this.pass = this.commandEncoder().beginComputePass(desc);
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  private openScopes(): void {
    if (this.scopesOpen) return;
    this.device.pushErrorScope('internal');
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    this.scopesOpen = true;
  }

  private closeScopes(): void {
    if (!this.scopesOpen) return;
    this.scopesOpen = false;
    const kernels = this.batchKernels.splice(0);
    const names = [...new Set(kernels)];
    const describe = (kind: string, e: GPUError) =>
      `GPU ${kind} error in a submit of ${kernels.length} commands (kernels: ${names.join(', ') || 'none'}): ${e.message}`;
    const kinds = ['validation', 'out-of-memory', 'internal'] as const;
    const pops = kinds.map((k) => this.device.popErrorScope().then((e) => (e ? new GpuError(describe(k, e), names, k) : null)));
    this.checks.push({ kernels: names, promise: Promise.all(pops).then((r) => r.find((x) => x) ?? null) });
  }

  /** A small integer naming a GPU object for cache keys (stable for the object's life, never reused). */
  private objectId(o: object): number {
    let id = this.objectIds.get(o);
    if (id === undefined) {
      id = this.nextObjectId++;
      this.objectIds.set(o, id);
    }
    return id;
  }

  private uniformSlot(data: Uint8Array): GPUBufferBinding {
    const align = this.info.limits.minUniformBufferOffsetAlignment;
    let chunk = this.chunks[this.chunkIndex];
    let offset = chunk ? Math.ceil(chunk.used / align) * align : 0;
    if (!chunk || offset + data.byteLength > UNIFORM_CHUNK) {
      if (chunk) this.chunkIndex++;
      chunk = this.chunks[this.chunkIndex];
      if (!chunk) {
        chunk = {
          buffer: this.device.createBuffer({ size: UNIFORM_CHUNK, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'uniform arena' }),
          data: new Uint8Array(UNIFORM_CHUNK),
          used: 0,
        };
        this.chunks.push(chunk);
      }
      offset = 0;
    }
    chunk.data.set(data, offset);
    chunk.used = offset + data.byteLength;
    return { buffer: chunk.buffer, offset, size: data.byteLength };
  }
}

