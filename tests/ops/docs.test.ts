// The documents a new self-hoster follows, checked against the real relay (issue 19): the README
// walkthrough pasted line by line into bash shows bob reading alice's message; SERVER.md's /health
// example is what /health answers; no document points at a file that is not in the repository; no nginx
// sample uses the deprecated `listen … http2`.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../scripts/build.ts';
import { spawnRelay, stopAllRelays, type RelayProcess } from '../helpers/process.ts';

const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const tracked = (pattern: string): string[] =>
  spawnSync('git', ['ls-files', pattern], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\n').filter(Boolean);

/** The fenced ```sh block that follows `marker` in a Markdown file. */
function shBlockAfter(markdown: string, marker: string): string[] {
  const from = markdown.indexOf(marker);
  expect(from, marker).toBeGreaterThan(-1);
  const m = /```sh\n([\s\S]*?)```/.exec(markdown.slice(from))!;
  return m[1]!.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
}

let relay: RelayProcess;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'owc-docs-'));
  relay = await spawnRelay({ dataDir });
});
afterAll(async () => {
  await stopAllRelays();
  await rm(dataDir, { recursive: true, force: true });
});

describe('README walkthrough', () => {
  it("pasted line by line into bash on a fresh relay: bob reads alice's message with his token", async () => {
    const lines = shBlockAfter(read('README.md'), 'Try it').map((l) =>
      l.replaceAll('localhost:8000', `127.0.0.1:${relay.port}`),
    );
    expect(lines.length).toBeGreaterThanOrEqual(8);
    // One interactive-like shell fed the lines in order; each command's output is fenced by a marker.
    const script = lines.map((l, i) => `${l}\necho; echo "@@${i}@@"`).join('\n');
    const bash = spawn('bash', ['--norc', '--noprofile'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    bash.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    bash.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    bash.stdin.end(script);
    const code = await new Promise<number | null>((r) => bash.once('exit', r));
    expect(err).toBe('');
    expect(code).toBe(0);
    const outputs = out.split(/@@\d+@@\n?/);
    const byCommand = (needle: string) => outputs[lines.findIndex((l) => l.includes(needle))]!;

    expect(byCommand('echo "$BOB"')).toMatch(/^注册成功\n[\s\S]*^ID：2$[\s\S]*^Token：[0-9a-f]{32}$/m);
    expect(byCommand('/send')).toContain('发送成功（好友申请已发出，等待对方回复）');
    const bobReads = lines.findIndex((l) => l.includes('/messages') && l.includes('$BOB_TOKEN'));
    const textRead = outputs[bobReads]!;
    expect(textRead).toContain('收件箱共 1 条 | 本次读取并清除 1 条');
    expect(textRead).toContain('发件人：alice（ID:1）');
    expect(textRead).toContain('内容：hello bob');
    expect(outputs[bobReads + 1]!.trim()).toBe('{"total":0,"fetched":0,"remaining":0,"messages":[]}');
  });
});

describe('SERVER.md', () => {
  it('the /health example is what /health answers (version aside)', async () => {
    const example = /curl -s http:\/\/127\.0\.0\.1:8000\/health\n# (\{.*\})/.exec(read('SERVER.md'))!;
    expect(example).not.toBeNull();
    const shown = JSON.parse(example[1]!) as { version: string };
    const real = (await (await fetch(`${relay.url}/health`)).json()) as { version: string };
    expect({ ...shown, version: 'x' }).toEqual({ ...real, version: 'x' });
  });
});

describe('every document', () => {
  const docs = tracked('*.md');

  it('links only to files that are in the repository', () => {
    const broken: string[] = [];
    for (const doc of docs) {
      for (const m of read(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#')[0]!;
        if (!target || /^[a-z]+:/i.test(target)) continue;
        if (!existsSync(join(ROOT, normalize(join(dirname(doc), target))))) broken.push(`${doc} → ${m[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('names no file outside the repository as if it were in it', () => {
    const outside = docs.flatMap((doc) =>
      [...read(doc).matchAll(/`(shared\/[^`]+|bench\/results\/[^`<]+\.json)`/g)].map(
        (m) => `${doc}: ${m[1]}`,
      ),
    );
    expect(outside).toEqual([]);
  });

  it('uses `http2 on;`, not the deprecated `listen … http2`', () => {
    const deprecated = docs.filter((doc) => /^\s*listen\s[^;\n]*\bhttp2\b/m.test(read(doc)));
    expect(deprecated).toEqual([]);
  });
});
