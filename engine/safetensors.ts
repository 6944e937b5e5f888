// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data section) plus an
// optional "__metadata__" map of strings, then the raw little-endian data. Pure bytes in and out (no file
// system), so the browser bundle can use it; engine/safetensors-file.ts reads and writes files atomically.
import { f16BitsToF32, toF16Bits } from './dtype.js';

export type StDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const BYTES: Record<StDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface StTensor {
  dtype: StDType;
  shape: number[];
  /** The tensor's raw bytes (a view into the file's buffer). */
  bytes: Uint8Array;
}

export interface StFile {
  tensors: Map<string, StTensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Parses a safetensors file's bytes; `what` names the file in errors. */
export function parseSafetensors(buf: Uint8Array, what = 'safetensors data'): StFile {
  if (buf.byteLength < 8) throw new SafetensorsError(`${what}: ${buf.byteLength} bytes is too short for a safetensors file (truncated?)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (8 + n > buf.byteLength) throw new SafetensorsError(`${what}: header length ${n} runs past the end of the file (${buf.byteLength} bytes; truncated or not safetensors)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch (e) {
    throw new SafetensorsError(`${what}: the header is not valid JSON (${(e as Error).message}); the file is corrupt or not safetensors`);
  }
  const data = buf.subarray(8 + n);
  const tensors = new Map<string, StTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const e = raw as { dtype: StDType; shape: number[]; data_offsets: [number, number] };
    if (!(e?.dtype in BYTES)) throw new SafetensorsError(`${what}: tensor "${name}" has unsupported dtype ${e?.dtype}`);
    const [b, end] = e.data_offsets;
    const want = numelOf(e.shape) * BYTES[e.dtype];
    if (end - b !== want || end > data.byteLength || b < 0) {
      throw new SafetensorsError(`${what}: tensor "${name}" ${e.dtype} [${e.shape}] has data offsets [${b}, ${end}] (needs ${want} bytes within ${data.byteLength}); the file is corrupt`);
    }
    tensors.set(name, { dtype: e.dtype, shape: [...e.shape], bytes: data.subarray(b, end) });
  }
  return { tensors, metadata };
}

/** A tensor's values as f64 numbers (any float or integer dtype; I64 through Number). */
export function toFloat64(t: StTensor): Float64Array {
  const n = numelOf(t.shape);
  const v = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    switch (t.dtype) {
      case 'F64': out[i] = v.getFloat64(i * 8, true); break;
      case 'F32': out[i] = v.getFloat32(i * 4, true); break;
      case 'F16': out[i] = f16BitsToF32(v.getUint16(i * 2, true)); break;
      case 'BF16': out[i] = new Float32Array(new Uint32Array([v.getUint16(i * 2, true) << 16]).buffer)[0]!; break;
      case 'I64': out[i] = Number(v.getBigInt64(i * 8, true)); break;
      case 'I32': out[i] = v.getInt32(i * 4, true); break;
      case 'U32': out[i] = v.getUint32(i * 4, true); break;
      case 'I16': out[i] = v.getInt16(i * 2, true); break;
      case 'I8': out[i] = v.getInt8(i); break;
      case 'U8': case 'BOOL': out[i] = v.getUint8(i); break;
    }
  }
  return out;
}

export const toFloat32 = (t: StTensor): Float32Array => Float32Array.from(toFloat64(t));

export interface StEntry {
  name: string;
  dtype: 'F64' | 'F32' | 'F16' | 'I64' | 'I32' | 'U32' | 'U8';
  shape: readonly number[];
  /** Values (converted to the dtype), or raw bytes of exactly the right length. */
  data: ArrayLike<number> | Uint8Array;
}

/** Serialises tensors (in the given order) and string metadata into safetensors bytes. */
export function serializeSafetensors(entries: readonly StEntry[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.name)) throw new SafetensorsError(`serializeSafetensors: tensor "${e.name}" appears twice`);
    seen.add(e.name);
    const bytes = encode(e);
    header[e.name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [offset, offset + bytes.byteLength] };
    blobs.push(bytes);
    offset += bytes.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.byteLength % 8)) % 8; // data section starts 8-byte aligned (spaces are valid JSON padding)
  if (pad) json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const b of blobs) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}

function encode(e: StEntry): Uint8Array {
  const n = numelOf(e.shape);
  const size = n * BYTES[e.dtype];
  if (e.data instanceof Uint8Array && e.dtype !== 'U8') {
    if (e.data.byteLength !== size) throw new SafetensorsError(`tensor "${e.name}": ${e.data.byteLength} raw bytes for ${e.dtype} [${e.shape}] (needs ${size})`);
    return e.data;
  }
  if (e.data.length !== n) throw new SafetensorsError(`tensor "${e.name}": ${e.data.length} values for shape [${e.shape}] (needs ${n})`);
  switch (e.dtype) {
    case 'F64': return new Uint8Array(Float64Array.from(e.data).buffer);
    case 'F32': return new Uint8Array(Float32Array.from(e.data).buffer);
    case 'F16': return new Uint8Array(toF16Bits(e.data).buffer);
    case 'I64': return new Uint8Array(BigInt64Array.from(Array.from(e.data, (x) => BigInt(Math.trunc(x)))).buffer);
    case 'I32': return new Uint8Array(Int32Array.from(e.data).buffer);
    case 'U32': return new Uint8Array(Uint32Array.from(e.data).buffer);
    case 'U8': return Uint8Array.from(e.data);
  }
}
