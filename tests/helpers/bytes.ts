// Test data for file transfers: reproducible binary bytes and their digest; a folder's bytes for greps.

import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Reproducible binary bytes (xorshift32; every byte value occurs). */
export function seededBytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Hex SHA-256. */
export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Every file below `dir`, concatenated (e.g. a relay's data folder: database, WAL, files), to grep. */
export async function folderBytes(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const f of await readdir(dir, { recursive: true })) {
    const p = join(dir, String(f));
    if ((await stat(p)).isFile()) parts.push(await readFile(p));
  }
  return Buffer.concat(parts);
}
