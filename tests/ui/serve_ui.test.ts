// serve_ui over raw sockets: the whitelist, traversal and symlink attempts, Host checks, headers, methods,
// loopback-only binding, and the CLI entry (from source and bundled the way the skill ships it).

import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUiServer, type UiServer } from '../../packages/skill/src/ui/serve_ui.ts';
import { get, HTML_PATH, rawRequest, ROOT, seedDataDir, tempDir } from './fixtures.ts';

const SERVE_UI = fileURLToPath(new URL('../../packages/skill/src/ui/serve_ui.ts', import.meta.url));
const SECRET = 'SECRET-TOKEN-abc123';

const WHITELIST: Array<[string, string]> = [
  ['profile.json', 'application/json'],
  ['contacts.json', 'application/json'],
  ['stats.json', 'application/json'],
  ['context_snapshot.json', 'application/json'],
  ['groups.json', 'application/json'],
  ['inbox_pushed.md', 'text/plain; charset=utf-8'],
  ['conversations.md', 'text/plain; charset=utf-8'],
  ['sse_channel.log', 'text/plain; charset=utf-8'],
];

let dataDir: string;
let cleanup: () => Promise<void>;
let ui: UiServer;
let port: number;

beforeAll(async () => {
  let root: string;
  ({ dir: root, cleanup } = await tempDir('serve-ui-'));
  // The data folder's parent holds a secret too, so a path that escapes the folder would leak it.
  dataDir = join(root, 'openwechat_im_client');
  await seedDataDir(dataDir);
  await writeFile(join(root, 'config.json'), JSON.stringify({ token: SECRET }));
  // The end-to-end private keys (docs/e2e.md) live in the data folder's e2e/: never served.
  await mkdir(join(dataDir, 'e2e'), { recursive: true });
  await writeFile(
    join(dataDir, 'e2e', 'e2e_identity.json'),
    JSON.stringify({ identity: { private: SECRET } }),
  );
  ui = await startUiServer({ port: 0, dataDir, htmlPath: HTML_PATH });
  port = ui.port;
});

afterAll(async () => {
  await ui?.close();
  await cleanup?.();
});

function noCors(headers: Record<string, string>): void {
  expect(Object.keys(headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
}

describe('whitelisted files', () => {
  it.each(WHITELIST)('serves %s as %s, uncached, byte for byte', async (name, type) => {
    const res = await get(port, `/data/${name}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe(type);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    noCors(res.headers);
    expect(res.body).toBe(await readFile(join(dataDir, name), 'utf8'));
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
  });

  it('answers HEAD with the headers and no body', async () => {
    const res = await get(port, '/data/contacts.json', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(Number(res.headers['content-length'])).toBe(
      (await readFile(join(dataDir, 'contacts.json'))).length,
    );
    expect(res.body).toBe('');
  });

  it('ignores the query string but never lets it pick the file', async () => {
    const res = await get(port, '/data/profile.json?file=../config.json');
    expect(res.status).toBe(200);
    expect(res.body).toBe(await readFile(join(dataDir, 'profile.json'), 'utf8'));
  });

  it('supports conditional GET with the ETag it sends (the page polls cheaply)', async () => {
    const first = await get(port, '/data/stats.json');
    const etag = first.headers['etag'];
    expect(etag).toMatch(/^"[0-9a-z-]+"$/);
    const again = await get(port, '/data/stats.json', { headers: [`If-None-Match: ${etag}`] });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
    expect(again.headers['cache-control']).toBe('no-store');
    await writeFile(join(dataDir, 'stats.json'), JSON.stringify({ messages_received: 99 }));
    const changed = await get(port, '/data/stats.json', { headers: [`If-None-Match: ${etag}`] });
    expect(changed.status).toBe(200);
    expect(JSON.parse(changed.body)).toEqual({ messages_received: 99 });
    await seedDataDir(dataDir);
  });

  it.each(['/', '/demo_ui.html'])('serves the page at %s with a strict CSP', async (target) => {
    const res = await get(port, target);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    noCors(res.headers);
    const html = await readFile(HTML_PATH, 'utf8');
    expect(res.body).toBe(html);
    const csp = res.headers['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("require-trusted-types-for 'script'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    // The one inline script is allowed by its hash, computed here independently.
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)?.[1] ?? '';
    expect(script.length).toBeGreaterThan(1000);
    const hash = createHash('sha256').update(script.replace(/\r\n?/g, '\n')).digest('base64');
    expect(csp).toContain(`script-src 'sha256-${hash}'`);
  });

  it('answers 404 for a whitelisted file that does not exist yet', async () => {
    const { dir, cleanup: rmDir } = await tempDir('serve-ui-empty-');
    const empty = await startUiServer({
      port: 0,
      dataDir: join(dir, 'not-created-yet'),
      htmlPath: HTML_PATH,
    });
    try {
      for (const [name] of WHITELIST) expect((await get(empty.port, `/data/${name}`)).status).toBe(404);
      expect((await get(empty.port, '/')).status).toBe(200);
    } finally {
      await empty.close();
      await rmDir();
    }
  });
});

describe('everything else is 404', () => {
  const targets = [
    '/config.json',
    '/data/config.json',
    '/data/config.json?profile.json',
    '/../config.json',
    '/data/../config.json',
    '/data/../../config.json',
    '/data/%2e%2e/config.json',
    '/data/%2E%2E/config.json',
    '/data/%2e%2e%2fconfig.json',
    '/data/%252e%252e/config.json',
    '/data/%252e%252e%252fconfig.json',
    '/data/..%2fconfig.json',
    '/data/..%2Fconfig.json',
    '/data/..%252fconfig.json',
    '/data/..\\config.json',
    '/data\\..\\config.json',
    '/data/%5c..%5cconfig.json',
    '/data/.%2e/config.json',
    '/data/profile.json/../config.json',
    '/demo_ui.html/../data/config.json',
    '/data//config.json',
    '/data/./profile.json',
    '/data/profile.json/',
    '/data/profile.json%00',
    '/data/profile.json%00.md',
    '/data/PROFILE.JSON',
    '/data/profile%2ejson',
    '//data/profile.json',
    '/data/',
    '/data',
    '/etc/passwd',
    '//etc/passwd',
    '/data//etc/passwd',
    '/data/%2fetc%2fpasswd',
    '/data/C:%5cWindows%5cwin.ini',
    'http://127.0.0.1/data/config.json',
    '/serve_ui.js',
    '/scripts/serve_ui.js',
    '/ui_server.ts',
    '/.git/config',
    '/favicon.ico',
    '/data/files/report.pdf',
    '/data/e2e/e2e_identity.json',
    '/data/e2e%2fe2e_identity.json',
    '/data/e2e_identity.json',
    '/openwechat_im_client/e2e/e2e_identity.json',
    '/openwechat_im_client/e2e_identity.json',
  ];

  it.each(targets)('%s', async (target) => {
    const res = await get(port, target);
    expect(res.status).toBe(404);
    expect(res.body).not.toContain(SECRET);
    expect(res.headers['cache-control']).toBe('no-store');
    noCors(res.headers);
  });

  it('the absolute-form of a whitelisted URL is not served either', async () => {
    const res = await get(port, `http://127.0.0.1:${port}/data/profile.json`);
    expect(res.status).toBe(404);
  });

  it('a symlink in the data folder is not followed, wherever it points', async () => {
    const { dir, cleanup: rmDir } = await tempDir('serve-ui-links-');
    const data = join(dir, 'openwechat_im_client');
    await seedDataDir(data, { omit: ['contacts.json', 'stats.json', 'profile.json'] });
    await writeFile(join(dir, 'outside.txt'), `outside the data folder ${SECRET}`);
    await symlink(join(dir, 'outside.txt'), join(data, 'contacts.json')); // absolute, outside
    await symlink('../outside.txt', join(data, 'stats.json')); // relative, outside
    await symlink('config.json', join(data, 'profile.json')); // inside, but to the secret
    await mkdir(join(data, 'context_snapshot.json.d'));
    const srv = await startUiServer({ port: 0, dataDir: data, htmlPath: HTML_PATH });
    try {
      for (const name of ['contacts.json', 'stats.json', 'profile.json']) {
        const res = await get(srv.port, `/data/${name}`);
        expect(res.status, name).toBe(404);
        expect(res.body).not.toContain(SECRET);
      }
      // regular files next to them are still served
      expect((await get(srv.port, '/data/conversations.md')).status).toBe(200);
    } finally {
      await srv.close();
      await rmDir();
    }
  });

  it('a directory or FIFO under a whitelisted name is a 404 and does not hang the server', async () => {
    const { dir, cleanup: rmDir } = await tempDir('serve-ui-special-');
    await seedDataDir(dir, { omit: ['stats.json', 'sse_channel.log'] });
    await mkdir(join(dir, 'stats.json'));
    let fifo = false;
    try {
      execFileSync('mkfifo', [join(dir, 'sse_channel.log')]);
      fifo = true;
    } catch {
      // no mkfifo on this platform: the directory case still runs
    }
    const srv = await startUiServer({ port: 0, dataDir: dir, htmlPath: HTML_PATH });
    try {
      expect((await get(srv.port, '/data/stats.json')).status).toBe(404);
      if (fifo) expect((await get(srv.port, '/data/sse_channel.log')).status).toBe(404);
      expect((await get(srv.port, '/data/profile.json')).status).toBe(200);
    } finally {
      await srv.close();
      await rmDir();
    }
  });

  it('a data folder that is itself a symlink (made by the user) is served', async () => {
    const { dir, cleanup: rmDir } = await tempDir('serve-ui-linkdir-');
    await seedDataDir(join(dir, 'real'));
    await symlink(join(dir, 'real'), join(dir, 'openwechat_im_client'));
    const srv = await startUiServer({
      port: 0,
      dataDir: join(dir, 'openwechat_im_client'),
      htmlPath: HTML_PATH,
    });
    try {
      expect((await get(srv.port, '/data/profile.json')).status).toBe(200);
      expect((await get(srv.port, '/data/config.json')).status).toBe(404);
    } finally {
      await srv.close();
      await rmDir();
    }
  });
});

describe('Host header', () => {
  it.each([
    ['evil.com'],
    ['evil.com:PORT'],
    ['127.0.0.1.evil.com'],
    ['127.0.0.1.evil.com:PORT'],
    ['localhost.evil.com:PORT'],
    ['127.0.0.1'],
    ['localhost'],
    ['127.0.0.1:1'],
    ['127.0.0.2:PORT'],
    ['[::1]:PORT'],
    ['0.0.0.0:PORT'],
    ['127.0.0.1:PORT@evil.com'],
    [''],
  ])('rejects Host: %s', async (hostTemplate) => {
    const host = hostTemplate.replace('PORT', String(port));
    for (const target of ['/', '/data/profile.json']) {
      const res = await get(port, target, { host });
      expect(res.status).toBe(403);
      expect(res.body).not.toContain('alice');
      noCors(res.headers);
    }
  });

  it('rejects a request with no Host header at all', async () => {
    // HTTP/1.1 without Host is refused by Node's parser itself (400); HTTP/1.0 reaches our check.
    expect((await get(port, '/data/profile.json', { host: null, version: 'HTTP/1.0' })).status).toBe(403);
    expect([400, 403]).toContain((await get(port, '/data/profile.json', { host: null })).status);
  });

  it.each([['127.0.0.1:PORT'], ['localhost:PORT'], ['LOCALHOST:PORT']])('accepts Host: %s', async (h) => {
    const res = await get(port, '/data/profile.json', { host: h.replace('PORT', String(port)) });
    expect(res.status).toBe(200);
  });
});

describe('CORS and methods', () => {
  it('sends no Access-Control-* header, even to a cross-origin request', async () => {
    const res = await get(port, '/data/conversations.md', { headers: ['Origin: http://evil.com'] });
    expect(res.status).toBe(200);
    noCors(res.headers);
    expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
  });

  it('answers a CORS preflight with 405 and no CORS headers', async () => {
    const res = await get(port, '/data/profile.json', {
      method: 'OPTIONS',
      headers: ['Origin: http://evil.com', 'Access-Control-Request-Method: GET'],
    });
    expect(res.status).toBe(405);
    noCors(res.headers);
  });

  it.each(['POST', 'PUT', 'DELETE', 'PATCH'])('%s → 405 on served paths, 404 elsewhere', async (method) => {
    for (const target of ['/', '/data/profile.json', '/data/conversations.md']) {
      const res = await rawRequest(
        port,
        `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
          `Content-Length: 2\r\nConnection: close\r\n\r\n{}`,
      );
      expect(res.status).toBe(405);
      expect(res.headers['allow']).toBe('GET, HEAD');
    }
    expect((await get(port, '/data/config.json', { method })).status).toBe(404);
    // and nothing was written
    expect(await readFile(join(dataDir, 'profile.json'), 'utf8')).not.toBe('{}');
  });
});

describe('loopback only', () => {
  function tryConnect(host: string, p: number): Promise<'connected' | string> {
    return new Promise((resolve) => {
      const s = connect({ host, port: p });
      s.setTimeout(3000, () => {
        s.destroy();
        resolve('timeout');
      });
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
  }

  it('listens on 127.0.0.1', () => {
    const addr = ui.server.address();
    expect(typeof addr === 'object' && addr !== null ? [addr.address, addr.family] : addr).toEqual([
      '127.0.0.1',
      'IPv4',
    ]);
    expect(ui.url).toBe(`http://127.0.0.1:${port}`);
  });

  it('cannot be reached through any other local address', async () => {
    expect(await tryConnect('127.0.0.1', port)).toBe('connected');
    const others = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i !== undefined && !i.internal && !i.address.startsWith('fe80'))
      .map((i) => i!.address);
    if (process.platform === 'linux') others.push('127.0.0.2'); // all of 127/8 is local on Linux
    others.push('::1');
    for (const address of others) {
      expect(await tryConnect(address, port), address).not.toBe('connected');
    }
  });

  it.each(['0.0.0.0', '::', '192.0.2.1', 'example.com'])('refuses to bind %s', async (host) => {
    await expect(startUiServer({ port: 0, host, dataDir, htmlPath: HTML_PATH })).rejects.toThrow(/loopback/);
  });
});

describe('CLI entry', () => {
  interface Running {
    /** '' when the process exited before printing its "serving" line */
    url: string;
    exit: Promise<number | null>;
    output: () => string;
    stop: () => Promise<void>;
  }

  function run(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Running> {
    const env: Record<string, string | undefined> = { ...process.env };
    delete env.OPENWECHAT_DATA_DIR;
    delete env.OPENWECHAT_UI_PORT;
    const child = spawn(process.execPath, cmd, {
      cwd: opts.cwd ?? ROOT,
      env: { ...env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exit;
    };
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (url: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ url, exit, output: () => out, stop });
      };
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        child.kill('SIGKILL');
        reject(new Error(`no "serving" line within 20 s:\n${out}`));
      }, 20_000);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        // ready once both lines are out: `serving <url>` and `data folder: <dir>`
        const m = /serving (http:\/\/\S+)\r?\ndata folder: [^\n]*\n/.exec(out);
        if (m) finish(m[1]!);
      });
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      void exit.then(() => finish(''));
    });
  }

  it('from source: --port 0 and OPENWECHAT_DATA_DIR', async () => {
    const p = await run(['--import', 'tsx', SERVE_UI, '--port', '0'], {
      env: { OPENWECHAT_DATA_DIR: dataDir },
    });
    try {
      expect(p.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${p.url}/data/profile.json`);
      expect(await res.json()).toMatchObject({ id: 1, name: 'alice' });
      expect((await fetch(`${p.url}/data/config.json`)).status).toBe(404);
    } finally {
      await p.stop();
    }
    expect(await p.exit).toBe(0);
  });

  it('a busy port is one clear line that says how to pick another port', async () => {
    const first = await run(['--import', 'tsx', SERVE_UI, '--port', '0'], {
      env: { OPENWECHAT_DATA_DIR: dataDir },
    });
    try {
      const port = new URL(first.url).port;
      const second = await run(['--import', 'tsx', SERVE_UI, '--port', port], {
        env: { OPENWECHAT_DATA_DIR: dataDir },
      });
      expect(second.url).toBe('');
      expect(await second.exit).toBe(1);
      expect(second.output()).toBe(
        `port ${port} on 127.0.0.1 is already in use (is the demo UI already running? check: node scripts/openwechat.js ui status). ` +
          'Pick another port with --port <n> or OPENWECHAT_UI_PORT=<n> (0 = any free port).\n',
      );
    } finally {
      await first.stop();
    }
  });

  it('OPENWECHAT_UI_PORT picks the port; a bad port is a usage error', async () => {
    const p = await run(['--import', 'tsx', SERVE_UI], {
      env: { OPENWECHAT_DATA_DIR: dataDir, OPENWECHAT_UI_PORT: '0' },
    });
    try {
      expect(p.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(p.url).not.toMatch(/:8765$/);
    } finally {
      await p.stop();
    }
    const bad = await run(['--import', 'tsx', SERVE_UI, '--port', 'abc'], {
      env: { OPENWECHAT_DATA_DIR: dataDir },
    });
    expect(bad.url).toBe('');
    expect(await bad.exit).toBe(2);
    expect(bad.output()).toMatch(/invalid port/);
  });

  it.each(['esm', 'cjs'] as const)(
    'bundled (%s) into <skill>/scripts/serve_ui.js: plain node, no npm dependency, default data folder',
    async (format) => {
      const { dir, cleanup: rmDir } = await tempDir('serve-ui-bundle-');
      try {
        const scripts = join(dir, 'openwechat-im-client', 'scripts');
        await mkdir(scripts, { recursive: true });
        const outfile = join(scripts, format === 'esm' ? 'serve_ui.mjs' : 'serve_ui.js');
        const result = await build({
          entryPoints: [SERVE_UI],
          bundle: true,
          platform: 'node',
          format,
          target: 'node20',
          outfile,
          metafile: true,
          logLevel: 'silent',
        });
        // Everything bundled comes from the UI folder (and the instance lock behind `ui status|stop`);
        // everything imported is a node: built-in.
        const inputs = Object.keys(result.metafile.inputs);
        expect(
          inputs.filter(
            (i) => !i.startsWith('packages/skill/src/ui/') && i !== 'packages/skill/src/data/lock.ts',
          ),
        ).toEqual([]);
        const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
        expect(imports.filter((i) => !i.startsWith('node:'))).toEqual([]);
        await copyFile(HTML_PATH, join(scripts, 'demo_ui.html'));
        await seedDataDir(join(dir, 'openwechat_im_client'));

        const p = await run([outfile, '--port', '0'], { cwd: dir });
        try {
          expect(p.output()).toContain(join(dir, 'openwechat_im_client'));
          const profile = await fetch(`${p.url}/data/profile.json`);
          expect(await profile.json()).toMatchObject({ name: 'alice' });
          const page = await fetch(`${p.url}/`);
          expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
          expect(await page.text()).toBe(await readFile(HTML_PATH, 'utf8'));
        } finally {
          await p.stop();
        }
      } finally {
        await rmDir();
      }
    },
  );
});
