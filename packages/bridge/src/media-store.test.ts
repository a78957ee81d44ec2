import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from './log.ts';
import { MEDIA_DIR, MediaSizeMismatch, MediaStore, mediaFileName } from './media-store.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'owc-media-store-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const T = Date.UTC(2026, 0, 1);
const ID_A = 'a'.repeat(32);
const ID_B = 'b'.repeat(32);
const ID_C = 'c'.repeat(32);

/** Log lines written by the store. */
function capture(): { log: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>> } {
  let text = '';
  const log = createLogger('info', {
    write(s: string) {
      text += s;
    },
  });
  return {
    log,
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

async function* chunks(bytes: Buffer, size = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

function open(dataDir: string, opts: { maxBytes?: number; now?: () => number } = {}) {
  const c = capture();
  const store = MediaStore.open(dataDir, {
    maxBytes: opts.maxBytes ?? 1 << 30,
    now: opts.now ?? (() => T),
    log: c.log,
  });
  return { store, lines: c.lines };
}

const meta = (fileId: string, expiresAt = T / 1000 + 3600) => ({
  fileId,
  name: '报告.pdf',
  contentType: 'application/pdf',
  expiresAt,
});

async function readAll(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

describe('MediaStore', () => {
  it('file names are the relay file id, sanitised', () => {
    expect(mediaFileName(ID_A)).toBe(ID_A);
    expect(mediaFileName('../x/y.z')).toBe('___x_y_z');
    expect(() => mediaFileName('')).toThrow();
  });

  it('put writes the bytes and their description (mode 0600, no temporaries left); openCopy streams them', async () => {
    const dataDir = tempDir();
    const { store } = open(dataDir);
    const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
    const stored = await store.put(meta(ID_A), chunks(bytes), [5000, 5000]);
    expect(stored).toMatchObject({ fileId: ID_A, size: 5000, storedAt: T });
    expect(stored.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const dir = join(dataDir, MEDIA_DIR);
    expect(readdirSync(dir).sort()).toEqual([ID_A, `${ID_A}.json`]);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const n of readdirSync(dir)) expect(statSync(join(dir, n)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(dir, `${ID_A}.json`), 'utf8'))).toEqual(stored);
    const copy = (await store.openCopy(ID_A))!;
    expect(copy.size).toBe(5000);
    expect((await readAll(copy.stream)).equals(bytes)).toBe(true);
    expect(await store.openCopy(ID_B)).toBeNull();
  });

  it('a size mismatch or a broken source leaves nothing behind', async () => {
    const dataDir = tempDir();
    const { store } = open(dataDir);
    await expect(store.put(meta(ID_A), chunks(Buffer.alloc(100)), [101])).rejects.toBeInstanceOf(
      MediaSizeMismatch,
    );
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(10);
      throw new Error('connection reset');
    }
    await expect(store.put(meta(ID_B), broken(), [])).rejects.toThrow('connection reset');
    const aborted = new AbortController();
    aborted.abort(new Error('stopping'));
    await expect(store.put(meta(ID_C), chunks(Buffer.alloc(10)), [], aborted.signal)).rejects.toThrow(
      'stopping',
    );
    expect(readdirSync(join(dataDir, MEDIA_DIR))).toEqual([]);
    expect(store.count()).toBe(0);
  });

  it('reopening keeps complete copies and removes what a crash left (temporaries, halves)', async () => {
    const dataDir = tempDir();
    const { store } = open(dataDir);
    await store.put(meta(ID_A), chunks(Buffer.alloc(300, 1)), [300]);
    const dir = join(dataDir, MEDIA_DIR);
    writeFileSync(join(dir, `.tmp-${ID_B}-0123`), 'half');
    writeFileSync(join(dir, ID_B), 'bytes without a description');
    writeFileSync(
      join(dir, `${ID_C}.json`),
      JSON.stringify({ ...meta(ID_C), size: 3, sha256: 'x', storedAt: T }),
    );
    const again = open(dataDir).store;
    expect(readdirSync(dir).sort()).toEqual([ID_A, `${ID_A}.json`]);
    expect(again.get(ID_A)).toMatchObject({ size: 300 });
    expect(again.totalBytes()).toBe(300);
    expect((await readAll((await again.openCopy(ID_A))!.stream)).equals(Buffer.alloc(300, 1))).toBe(true);
  });

  it('the sweep deletes copies whose link has expired, and logs each deletion', async () => {
    const dataDir = tempDir();
    let now = T;
    const { store, lines } = open(dataDir, { now: () => now });
    await store.put(meta(ID_A, T / 1000 + 60), chunks(Buffer.alloc(10)), []);
    await store.put(meta(ID_B, T / 1000 + 120), chunks(Buffer.alloc(10)), []);
    now = T + 59_999;
    expect(store.sweep()).toEqual({ expired: 0, evicted: 0 });
    now = T + 60_000;
    expect(store.sweep()).toEqual({ expired: 1, evicted: 0 });
    expect(readdirSync(join(dataDir, MEDIA_DIR)).sort()).toEqual([ID_B, `${ID_B}.json`]);
    expect(await store.openCopy(ID_A)).toBeNull();
    expect(lines().filter((l) => l.msg === 'media copy deleted')).toEqual([
      expect.objectContaining({ level: 30, hop: 'media_store', reason: 'expired', fileId: ID_A.slice(0, 8) }),
    ]);
  });

  it('over the size cap the oldest copies go first, never the one just kept', async () => {
    const dataDir = tempDir();
    let now = T;
    const { store, lines } = open(dataDir, { maxBytes: 250, now: () => now });
    for (const id of [ID_A, ID_B, ID_C]) {
      await store.put(meta(id), chunks(Buffer.alloc(100)), [100]);
      now += 1000;
    }
    // 300 > 250: A (the oldest) went when C was kept.
    expect(store.get(ID_A)).toBeNull();
    expect(store.totalBytes()).toBe(200);
    expect(
      lines()
        .filter((l) => l.msg === 'media copy deleted')
        .map((l) => [l.reason, l.fileId]),
    ).toEqual([['size_cap', ID_A.slice(0, 8)]]);
    // A copy alone above the cap evicts every other one but stays itself.
    await store.put(meta(ID_A), chunks(Buffer.alloc(300)), [300]);
    expect(store.get(ID_B)).toBeNull();
    expect(store.get(ID_C)).toBeNull();
    expect(store.get(ID_A)).not.toBeNull();
    expect(readdirSync(join(dataDir, MEDIA_DIR)).sort()).toEqual([ID_A, `${ID_A}.json`]);
  });
});
