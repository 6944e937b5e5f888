// Node-only file IO for safetensors (not part of the browser bundle): read a file, and write one atomically
// (temporary file in the same folder, fsync, rename, fsync of the folder), so a crash or kill mid-write
// leaves either the old file or the new one, never a half-written file under the final name.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseSafetensors, serializeSafetensors, type StEntry, type StFile } from './safetensors.js';

export function readSafetensors(path: string): StFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read safetensors file ${path}: ${(e as Error).message}`);
  }
  return parseSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}

const IO_CHUNK = 1 << 26; // one write() moves at most 64 MiB

/** Writes bytes (or chunks of bytes, one after another, e.g. a streamed file of many GB) to `path` atomically. */
export function writeFileAtomic(path: string, data: Uint8Array | Iterable<Uint8Array>): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w');
  try {
    for (const c of data instanceof Uint8Array ? [data] : data) {
      let at = 0;
      while (at < c.byteLength) at += writeSync(fd, c, at, Math.min(IO_CHUNK, c.byteLength - at));
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  try {
    const dfd = openSync(dirname(path), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // some file systems refuse fsync on a folder; the rename itself is still atomic
  }
}

export function writeSafetensors(path: string, entries: readonly StEntry[], metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, serializeSafetensors(entries, metadata));
}
