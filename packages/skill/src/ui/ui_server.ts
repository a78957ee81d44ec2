// The demo UI's whitelisting HTTP server: `demo_ui.html` plus eight read-only data files, on loopback only.
// Bundled into the skill's `scripts/serve_ui.js`, so it uses node: built-ins only (no npm packages).
//
// Every request passes three gates, in this order:
//   1. Host header: only `127.0.0.1:<port>` / `localhost:<port>` (defeats DNS rebinding: a page on
//      evil.com that rebinds its name to 127.0.0.1 still sends `Host: evil.com`).
//   2. Route: the raw request path (query ignored) must equal one of the ROUTES keys byte for byte. There
//      is no percent-decoding, no normalisation and no path joining with request data, so `..`,
//      `%2e%2e`, `%252e`, backslashes and absolute paths can never reach the file system.
//   3. Method: GET or HEAD.
// A whitelisted data file is opened with O_NOFOLLOW and must be a regular file, so a symlink planted in
// the data folder (e.g. `contacts.json -> ../config.json`) is a 404 rather than a leak.

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readFile, realpath } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { join } from 'node:path';

/** The data files the page may read, and their content types. config.json is deliberately absent. */
export const DATA_FILES: Readonly<Record<string, string>> = Object.freeze({
  'profile.json': 'application/json',
  'contacts.json': 'application/json',
  'stats.json': 'application/json',
  'context_snapshot.json': 'application/json',
  'groups.json': 'application/json',
  'inbox_pushed.md': 'text/plain; charset=utf-8',
  'conversations.md': 'text/plain; charset=utf-8',
  'sse_channel.log': 'text/plain; charset=utf-8',
});

export const DEFAULT_UI_PORT = 8765;

type Route = { kind: 'page' } | { kind: 'data'; name: string; type: string };

/** Exact request paths → what they serve. Nothing else exists. */
const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ['/', { kind: 'page' }],
  ['/demo_ui.html', { kind: 'page' }],
  ...Object.entries(DATA_FILES).flatMap(([name, type]): Array<[string, Route]> => [
    [`/data/${name}`, { kind: 'data', name, type }],
    // The guide's path: demo_ui.html "reads data files from /openwechat_im_client/".
    [`/openwechat_im_client/${name}`, { kind: 'data', name, type }],
  ]),
]);

/** Headers on every response. No Access-Control-* header is ever sent: the data is for this origin only. */
const BASE_HEADERS: Readonly<Record<string, string>> = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

/** For everything that is not the page: nothing may run or be framed. */
const NON_PAGE_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

export interface UiServerOptions {
  /** 0 picks a free port (tests). */
  port: number;
  /** A loopback address only (default 127.0.0.1); `localhost` means 127.0.0.1. */
  host?: string;
  /** The data folder (`../openwechat_im_client` next to the skill folder). Need not exist yet. */
  dataDir: string;
  /** Path of demo_ui.html. Read on every request, so edits show on reload. */
  htmlPath: string;
}

export interface UiServer {
  /** e.g. http://127.0.0.1:8765 (no trailing slash) */
  url: string;
  host: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

/** The Host header values this server answers to (lower case). */
function allowedHosts(host: string, port: number): Set<string> {
  const names = [host.includes(':') ? `[${host}]` : host, 'localhost'];
  const out = new Set<string>();
  for (const name of names) {
    out.add(`${name}:${port}`);
    if (port === 80) out.add(name); // a browser omits the default port
  }
  return out;
}

/**
 * The Content-Security-Policy for the page: its inline <script> and <style> blocks are allowed by hash
 * (computed from the file being served, so editing the page needs no server change), nothing else
 * loads, fetches go to this origin only, and Trusted Types make any `innerHTML = string` throw.
 */
function pageCsp(html: string): string {
  // The HTML parser turns CRLF into LF before the browser hashes an element's text.
  const text = html.replace(/\r\n?/g, '\n');
  const hashes = (tag: string): string[] => {
    const re = new RegExp(`<${tag}\\b[^>]*>([\\s\\S]*?)</${tag}>`, 'gi');
    return [...text.matchAll(re)].map(
      (m) =>
        `'sha256-${createHash('sha256')
          .update(m[1] ?? '', 'utf8')
          .digest('base64')}'`,
    );
  };
  const scripts = hashes('script');
  const styles = hashes('style');
  return [
    "default-src 'none'",
    `script-src ${scripts.length ? scripts.join(' ') : "'none'"}`,
    `style-src ${styles.length ? styles.join(' ') : "'none'"}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join('; ');
}

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, {
    ...BASE_HEADERS,
    'Content-Security-Policy': NON_PAGE_CSP,
    'Content-Type': 'text/plain; charset=utf-8',
    ...headers,
    'Content-Length': String(buf.length),
  });
  res.end(req.method === 'HEAD' ? undefined : buf);
}

interface DataFile {
  body: Buffer | null;
  etag: string;
}

/**
 * Reads one whitelisted file from the data folder, or null when it is missing, not a regular file, or a
 * symlink. `name` always comes from DATA_FILES, never from the request.
 */
async function readDataFile(
  dataDir: string,
  name: string,
  ifNoneMatch: string | undefined,
): Promise<DataFile | null> {
  let dir: string;
  try {
    dir = await realpath(dataDir); // the folder itself may be a symlink the user made; its entries may not
  } catch {
    return null;
  }
  const file = join(dir, name);
  try {
    // O_NOFOLLOW does the real work on POSIX; lstat also covers platforms without it.
    if ((await lstat(file)).isSymbolicLink()) return null;
  } catch {
    return null;
  }
  let fh;
  try {
    // O_NONBLOCK: a FIFO planted under a whitelisted name must not hang the request.
    fh = await open(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
  } catch {
    return null;
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) return null;
    // The daemon replaces files by rename (new inode), so inode+size+mtime identifies a version.
    const etag = `"${st.ino.toString(36)}-${st.size.toString(36)}-${st.mtimeNs.toString(36)}"`;
    if (ifNoneMatch !== undefined && ifNoneMatch === etag) return { body: null, etag };
    return { body: await fh.readFile(), etag };
  } finally {
    await fh.close();
  }
}

export async function startUiServer(options: UiServerOptions): Promise<UiServer> {
  const host = options.host === undefined || options.host === 'localhost' ? '127.0.0.1' : options.host;
  if (!isLoopback(host)) {
    throw new Error(`refusing to listen on ${host}: the UI server binds a loopback address only`);
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new Error(`invalid port: ${options.port}`);
  }
  const { dataDir, htmlPath } = options;
  let hostsOk = new Set<string>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const hostHeader = req.headers.host?.toLowerCase();
    if (hostHeader === undefined || !hostsOk.has(hostHeader)) {
      send(req, res, 403, 'forbidden: this server answers to 127.0.0.1 and localhost only\n');
      return;
    }
    const target = req.url ?? '';
    const q = target.indexOf('?');
    const route = ROUTES.get(q === -1 ? target : target.slice(0, q));
    if (route === undefined) {
      send(req, res, 404, 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(req, res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return;
    }
    if (route.kind === 'page') {
      let html: string;
      try {
        html = await readFile(htmlPath, 'utf8');
      } catch {
        send(req, res, 404, 'demo_ui.html not found next to serve_ui\n');
        return;
      }
      send(req, res, 200, html, {
        'Content-Type': 'text/html; charset=utf-8',
        'Content-Security-Policy': pageCsp(html),
        'Cross-Origin-Opener-Policy': 'same-origin',
      });
      return;
    }
    const inm = req.headers['if-none-match'];
    const file = await readDataFile(dataDir, route.name, typeof inm === 'string' ? inm : undefined);
    if (file === null) {
      send(req, res, 404, 'not found\n');
    } else if (file.body === null) {
      res.writeHead(304, { ...BASE_HEADERS, ETag: file.etag });
      res.end();
    } else {
      send(req, res, 200, file.body, { 'Content-Type': route.type, ETag: file.etag });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(req, res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable)
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port, host, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : options.port;
  hostsOk = allowedHosts(host, port);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    host,
    port,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
