// Streaming safetensors file IO for files of any size. Node 20 cannot hold a file over 2 GiB in one
// readFileSync nor a typed array over 4 GiB, and a full STDiT-XL/2 training checkpoint (weights, EMA and
// two AdamW moments in f32) is ~11.6 GB; so instead of one buffer (engine/safetensors-file.ts):
//   - SafetensorsReader reads the header, then only the tensors asked for, each straight into its own array;
//   - writeSafetensorsStreaming writes the header and then each tensor's bytes in turn;
//   - writeChunksAtomic is the atomic write (temporary file `.<name>.tmp-<pid>` in the same folder, fsync,
//     rename, fsync of the folder) over a list of chunks, so a killed writer leaves no partial file under
//     the final name.
// The bytes are the standard format (8-byte little-endian header length, JSON header padded with spaces to
// 8 bytes, data), readable by engine/safetensors.ts and by the Python safetensors package.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { SafetensorsError, toFloat32, type StDType } from '../engine/safetensors.js';
import { writeFileAtomic } from '../engine/safetensors-file.js';

const BYTES: Record<StDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
/** Largest single read/write call (Node rejects lengths of 2 GiB and more). */
const IO_CHUNK = 1 << 30;

export interface TensorInfo {
  dtype: StDType;
  shape: number[];
  /** Absolute byte offset in the file and length. */
  offset: number;
  byteLength: number;
}

const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function readFully(fd: number, into: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < into.byteLength) {
    const n = readSync(fd, into, done, Math.min(IO_CHUNK, into.byteLength - done), position + done);
    if (n === 0) throw new SafetensorsError(`${path}: unexpected end of file at byte ${position + done} (truncated)`);
    done += n;
  }
}

/** An open safetensors file: header parsed and checked at open, tensor data read on demand. */
export class SafetensorsReader {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata: Record<string, string> = {};
  private fd: number | null;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r');
    } catch (e) {
      throw new Error(`cannot read safetensors file ${path}: ${(e as Error).message}`);
    }
    try {
      this.parseHeader();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private parseHeader(): void {
    const fd = this.fd!;
    const size = fstatSync(fd).size;
    const what = this.path;
    if (size < 8) throw new SafetensorsError(`${what}: ${size} bytes is too short for a safetensors file (truncated?)`);
    const lenBuf = new Uint8Array(8);
    readFully(fd, lenBuf, 0, what);
    const n = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
    if (8 + n > size) throw new SafetensorsError(`${what}: header length ${n} runs past the end of the file (${size} bytes; truncated or not safetensors)`);
    const headBuf = new Uint8Array(n);
    readFully(fd, headBuf, 8, what);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder().decode(headBuf)) as Record<string, unknown>;
    } catch (e) {
      throw new SafetensorsError(`${what}: the header is not valid JSON (${(e as Error).message}); the file is corrupt or not safetensors`);
    }
    const dataStart = 8 + n;
    const dataLen = size - dataStart;
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        Object.assign(this.metadata, raw ?? {});
        continue;
      }
      const e = raw as { dtype: StDType; shape: number[]; data_offsets: [number, number] };
      if (!(e?.dtype in BYTES)) throw new SafetensorsError(`${what}: tensor "${name}" has unsupported dtype ${e?.dtype}`);
      const [b, end] = e.data_offsets;
      const want = numelOf(e.shape) * BYTES[e.dtype];
      if (end - b !== want || end > dataLen || b < 0) {
        throw new SafetensorsError(`${what}: tensor "${name}" ${e.dtype} [${e.shape}] has data offsets [${b}, ${end}] (needs ${want} bytes within ${dataLen}); the file is corrupt or truncated`);
      }
      this.tensors.set(name, { dtype: e.dtype, shape: [...e.shape], offset: dataStart + b, byteLength: want });
    }
  }

  /** The raw bytes of one tensor (a fresh, aligned buffer). */
  readBytes(name: string): Uint8Array {
    if (this.fd === null) throw new Error(`${this.path}: reader is closed`);
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.path}: no tensor "${name}"`);
    const out = new Uint8Array(t.byteLength);
    readFully(this.fd, out, t.offset, this.path);
    return out;
  }

  /** One tensor as f32 (F32 read directly; other dtypes converted). */
  readF32(name: string): Float32Array {
    const t = this.tensors.get(name);
    const bytes = this.readBytes(name);
    return t!.dtype === 'F32' ? new Float32Array(bytes.buffer, 0, bytes.byteLength / 4) : toFloat32({ dtype: t!.dtype, shape: t!.shape, bytes });
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Runs `fn` with an open reader and closes it. */
export function withSafetensors<T>(path: string, fn: (r: SafetensorsReader) => T): T {
  const r = new SafetensorsReader(path);
  try {
    return fn(r);
  } finally {
    r.close();
  }
}

/** Writes chunks one after another to `path` atomically (temp file, fsync, rename, fsync of the folder). */
export const writeChunksAtomic = writeFileAtomic;

export interface F32Entry {
  name: string;
  shape: readonly number[];
  data: Float32Array;
}

/** Writes F32 tensors (in order) and string metadata as a safetensors file, atomically, without one big buffer. */
export function writeSafetensorsStreaming(path: string, entries: readonly F32Entry[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const e of entries) {
    if (Object.hasOwn(header, e.name)) throw new SafetensorsError(`writeSafetensorsStreaming: tensor "${e.name}" appears twice`);
    if (e.data.length !== numelOf(e.shape)) throw new SafetensorsError(`tensor "${e.name}": ${e.data.length} values for shape [${e.shape}] (needs ${numelOf(e.shape)})`);
    header[e.name] = { dtype: 'F32', shape: [...e.shape], data_offsets: [offset, offset + e.data.byteLength] };
    offset += e.data.byteLength;
  }
  const text = JSON.stringify(header);
  const json = new TextEncoder().encode(text);
  const pad = (8 - (json.byteLength % 8)) % 8; // data section starts 8-byte aligned (spaces are valid JSON padding)
  const head = new Uint8Array(8 + json.byteLength + pad).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.byteLength + pad), true);
  head.set(json, 8);
  writeChunksAtomic(path, (function* () {
    yield head;
    for (const e of entries) yield new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength);
  })());
}
