import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './durable.ts';

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'owc-durable-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the file whole, at exactly its mode, and leaves no temporary file', async () => {
    const path = join(dir, 'config.json');
    await writeFileAtomic(path, 'old\n', { mode: 0o644 });
    const umask = process.umask(0o077);
    try {
      await writeFileAtomic(path, 'new\n', { mode: 0o640 });
    } finally {
      process.umask(umask);
    }
    expect(readFileSync(path, 'utf8')).toBe('new\n');
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(['config.json']);
  });

  it('creates missing folders at dirMode, the file 0600 by default', async () => {
    const path = join(dir, 'a', 'b', 'state.json');
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]), { dirMode: 0o700 });
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'a')).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
  });

  it('a failed rename leaves the old file and no temporary file', async () => {
    // A folder where the file should be: the rename fails, the folder stays as it was.
    const path = join(dir, 'taken');
    await writeFileAtomic(join(path, 'inside'), 'x');
    await expect(writeFileAtomic(path, 'y')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['taken']);
    expect(readFileSync(join(path, 'inside'), 'utf8')).toBe('x');
  });
});
