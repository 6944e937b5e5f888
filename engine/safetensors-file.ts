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

/** Writes bytes to `path` atomically (see the file header). */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w');
  try {
    let at = 0;
    while (at < bytes.byteLength) at += writeSync(fd, bytes, at, bytes.byteLength - at);
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
