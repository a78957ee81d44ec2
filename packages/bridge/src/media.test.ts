import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AttachmentJson } from '@openwechat/protocol';
import { ConfigError, loadConfig } from './config.ts';
import {
  attachmentLine,
  humanSize,
  loadMediaKey,
  MEDIA_SECRET_FILE,
  MediaSigner,
  mediaLinkExpiry,
  safeContentType,
} from './media.ts';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef', 'utf8');
const FILE = '3f9c0a1b2c3d4e5f60718293a4b5c6d7';
const T = Date.UTC(2026, 0, 1, 0, 0, 0);
const EXP = T / 1000 + 3600;

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'owc-media-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('media tokens', () => {
  const signer = new MediaSigner(KEY, 'acct0001');

  it('sign → verify gives the claims back until the expiry, not at or after it', () => {
    const token = signer.sign(FILE, EXP);
    expect(token).toMatch(new RegExp(`^${FILE}\\.${EXP}\\.[A-Za-z0-9_-]{43}$`));
    expect(signer.verify(token, T)).toEqual({ fileId: FILE, expiresAt: EXP });
    expect(signer.verify(token, EXP * 1000 - 1)).not.toBeNull();
    expect(signer.verify(token, EXP * 1000)).toBeNull();
    expect(signer.verify(token, EXP * 1000 + 86_400_000)).toBeNull();
  });

  it('is an HMAC-SHA256 over version, account, file id and expiry (independent computation)', () => {
    const mac = createHmac('sha256', KEY)
      .update(`owc-media-v1\nacct0001\n${FILE}\n${EXP}`)
      .digest('base64url');
    expect(signer.sign(FILE, EXP)).toBe(`${FILE}.${EXP}.${mac}`);
  });

  it('refuses any change: file id, expiry, signature, key, account, shape', () => {
    const token = signer.sign(FILE, EXP);
    const [id, exp, sig] = token.split('.') as [string, string, string];
    const flip = (s: string, i: number): string =>
      s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const bad = [
      `${flip(id, 0)}.${exp}.${sig}`, // another file, same signature
      `${id}.${Number(exp) + 86_400}.${sig}`, // a longer life
      `${id}.${exp}.${flip(sig, 5)}`,
      `${id}.${exp}.${flip(sig, 42)}`,
      `${id}.${exp}.${sig.slice(0, 42)}`,
      `${id}.${exp}.${sig}A`,
      `${id}.${exp}`,
      `${id}.0${exp}.${sig}`,
      '',
      '..',
      `${id}/${exp}/${sig}`,
      `${id}.${exp}.${sig}.extra`,
    ];
    for (const t of bad) expect(signer.verify(t, T), t).toBeNull();
    expect(
      new MediaSigner(Buffer.from('another-key-another-key-1234'), 'acct0001').verify(token, T),
    ).toBeNull();
    expect(new MediaSigner(KEY, 'acct0002').verify(token, T)).toBeNull();
    // A genuine token for another file is a different token.
    const other = signer.sign('00000000000000000000000000000000', EXP);
    expect(other.split('.')[2]).not.toBe(sig);
  });

  it('signs only file ids and expiries it can encode', () => {
    expect(() => signer.sign('../etc', EXP)).toThrow(RangeError);
    expect(() => signer.sign(FILE, 0)).toThrow(RangeError);
    expect(() => signer.sign(FILE, 1.5)).toThrow(RangeError);
  });
});

describe('the media key', () => {
  it('is generated once into the data folder with mode 0600, then read back', () => {
    const dir = tempDir();
    const first = loadMediaKey(dir, '');
    expect(first.source).toBe('generated');
    expect(first.key).toHaveLength(32);
    const path = join(dir, MEDIA_SECRET_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe(`${first.key.toString('hex')}\n`);
    const again = loadMediaKey(dir, '');
    expect(again.source).toBe('file');
    expect(again.key.equals(first.key)).toBe(true);
    expect(again.looseMode).toBe(false);
  });

  it('BRIDGE_MEDIA_SECRET wins and writes nothing; a damaged key file stops the start', () => {
    const dir = tempDir();
    const env = loadMediaKey(dir, 'x'.repeat(40));
    expect(env).toEqual({ key: Buffer.from('x'.repeat(40)), source: 'env' });
    expect(() => statSync(join(dir, MEDIA_SECRET_FILE))).toThrow();
    writeFileSync(join(dir, MEDIA_SECRET_FILE), 'not hex\n', { mode: 0o644 });
    expect(() => loadMediaKey(dir, '')).toThrow(/not 64 hex characters; delete it/);
    writeFileSync(join(dir, MEDIA_SECRET_FILE), `${'ab'.repeat(32)}\n`);
    expect(loadMediaKey(dir, '')).toMatchObject({ source: 'file', looseMode: true });
  });

  it('settings: BRIDGE_MEDIA_SECRET needs 32 characters; BRIDGE_PUBLIC_URL is a clean base URL', () => {
    const required = {
      RELAY_BASE_URL: 'http://127.0.0.1:8000',
      RELAY_TOKEN: '0123456789abcdef0123456789abcdef',
      WECHAT_ABOT_WEBHOOK_SECRET: 'a-webhook-secret',
      WECHAT_ABOT_BOT_TOKEN: 'a-bot-token',
    };
    const c = loadConfig(required);
    expect([c.mediaLinks, c.publicUrl, c.mediaSecret, c.mediaLinkMaxHours]).toEqual([true, '', '', 168]);
    expect(() => loadConfig({ ...required, BRIDGE_MEDIA_SECRET: 'short' })).toThrow(
      /BRIDGE_MEDIA_SECRET \(environment\): must be at least 32 characters/,
    );
    expect(loadConfig({ ...required, BRIDGE_PUBLIC_URL: 'https://Bridge.example:8443/owc/' }).publicUrl).toBe(
      'https://bridge.example:8443/owc',
    );
    expect(loadConfig({ ...required, BRIDGE_PUBLIC_URL: 'http://127.0.0.1:8088' }).publicUrl).toBe(
      'http://127.0.0.1:8088',
    );
    for (const bad of ['ftp://x', 'http://u:p@x', 'http://x/?a=1', 'http://x/#f', 'not a url'])
      expect(() => loadConfig({ ...required, BRIDGE_PUBLIC_URL: bad }), bad).toThrow(ConfigError);
    expect(() => loadConfig({ ...required, BRIDGE_MEDIA_LINK_MAX_HOURS: '0' })).toThrow(/≥ 1/);
    expect(loadConfig({ ...required, BRIDGE_MEDIA_LINKS: 'false' }).mediaLinks).toBe(false);
  });
});

describe('the attachment line and the download headers', () => {
  const a = (over: Partial<AttachmentJson> = {}): AttachmentJson => ({
    name: '我的 报告.pdf',
    original_name: '我的 报告.pdf',
    file_id: FILE,
    url: `/files/${FILE}`,
    size: 1536,
    content_type: 'application/pdf',
    expires_at: new Date(T + 7 * 86_400_000).toISOString(),
    ...over,
  });

  it('link lifetime: the relay expiry, capped after the message was created; none without bytes', () => {
    const week = 7 * 86_400_000;
    expect(mediaLinkExpiry(a(), T, week)).toBe((T + week) / 1000);
    expect(mediaLinkExpiry(a(), T, 3_600_000)).toBe(T / 1000 + 3600);
    const soon = new Date(T + 60_000).toISOString();
    expect(mediaLinkExpiry(a({ expires_at: soon }), T, week)).toBe(T / 1000 + 60);
    expect(mediaLinkExpiry(a({ expires_at: null }), T, week)).toBe((T + week) / 1000);
    expect(mediaLinkExpiry(a({ file_id: null }), T, week)).toBeNull();
    expect(mediaLinkExpiry(a({ file_id: '../x' }), T, week)).toBeNull();
  });

  it('sizes read like people write them', () => {
    expect([0, 999, 1024, 1536, 10 * 1024, 1048575, 3.4 * 1024 * 1024, 5 * 1024 ** 3].map(humanSize)).toEqual(
      ['0 B', '999 B', '1 KB', '1.5 KB', '10 KB', '1 MB', '3.4 MB', '5 GB'],
    );
  });

  it('one line: [附件] <name> (<size>, <type>) <url>; what is unknown is left out', () => {
    expect(attachmentLine(a(), 'http://h/media/t')).toBe(
      '[附件] 我的 报告.pdf (1.5 KB, application/pdf) http://h/media/t',
    );
    expect(attachmentLine(a({ size: null, content_type: null }), null)).toBe('[附件] 我的 报告.pdf');
    const evil = attachmentLine(
      a({ name: '../x\nfake\u2028line.txt', content_type: 'text/plain\r\nX: y' }),
      'u',
    );
    expect(evil).not.toMatch(/[\r\n\u2028]/);
    expect(evil.startsWith('[附件] ')).toBe(true);
  });

  it('Content-Type passes only when well formed', () => {
    expect(safeContentType('application/pdf')).toBe('application/pdf');
    expect(safeContentType('text/plain; charset=utf-8')).toBe('text/plain; charset=utf-8');
    expect(safeContentType('text/plain\r\nx: y')).toBe('application/octet-stream');
    expect(safeContentType('')).toBe('application/octet-stream');
    expect(safeContentType(null)).toBe('application/octet-stream');
    expect(safeContentType('nonsense')).toBe('application/octet-stream');
  });
});
