// Locks that a killed process can never leave behind. A lock is a listening local socket: on Linux an
// abstract-namespace socket and on Windows a named pipe, both released by the kernel when the holder dies
// (even by SIGKILL); elsewhere a socket file in the temp folder, found stale when nobody answers on it.
// Names are derived from the data folder, so two skills with separate data folders never contend.
//
// - withLock(): a short critical section (read-modify-write of a shared data file).
// - acquireInstance(): the single-running-daemon rule; the socket also answers status queries.

import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function lockAddress(dataDir: string, name: string): string {
  const h = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 20);
  if (process.platform === 'win32') return `\\\\?\\pipe\\openwechat-${h}-${name}`;
  if (process.platform === 'linux') return `\0openwechat-${h}-${name}`;
  return join(tmpdir(), `openwechat-${h}-${name}.sock`);
}

const fileBased = (addr: string): boolean => !addr.startsWith('\0') && !addr.startsWith('\\\\');

function tryListen(addr: string, onConnection: (s: Socket) => void): Promise<Server | null> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer(onConnection);
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolvePromise(null);
      else reject(err);
    });
    server.listen(addr, () => {
      server.unref();
      resolvePromise(server);
    });
  });
}

/** Connects and reads everything the holder says. null when nobody holds the lock. */
function ask(addr: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolvePromise) => {
    const socket = connect(addr);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolvePromise(text || '');
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => {
      clearTimeout(timer);
      resolvePromise(text);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // Refused / missing: no holder. Anything else: someone is there but misbehaving; count as held.
      resolvePromise(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? null : '');
    });
  });
}

async function tryLock(addr: string, onConnection: (s: Socket) => void): Promise<Server | null> {
  const server = await tryListen(addr, onConnection);
  if (server || !fileBased(addr)) return server;
  // A socket file whose holder died: remove it and try once more.
  if ((await ask(addr, 500)) === null) {
    await rm(addr, { force: true });
    return tryListen(addr, onConnection);
  }
  return null;
}

export class LockTimeoutError extends Error {
  constructor(name: string, timeoutMs: number) {
    super(`could not take the ${name} lock within ${timeoutMs} ms`);
    this.name = 'LockTimeoutError';
  }
}

/** Runs `fn` while holding the named lock of this data folder. */
export async function withLock<T>(
  dataDir: string,
  name: string,
  fn: () => Promise<T>,
  timeoutMs = 15_000,
): Promise<T> {
  const addr = lockAddress(dataDir, `lock-${name}`);
  const deadline = Date.now() + timeoutMs;
  let server: Server | null = null;
  while (!(server = await tryLock(addr, (s) => s.end()))) {
    if (Date.now() > deadline) throw new LockTimeoutError(name, timeoutMs);
    await sleep(5 + Math.floor(Math.random() * 20));
  }
  try {
    return await fn();
  } finally {
    await new Promise<void>((r) => server!.close(() => r()));
  }
}

export interface InstanceHandle {
  release(): Promise<void>;
}

/**
 * Takes the named single-instance lock; null when another live process holds it. While held, every
 * connection to the lock is answered with `status()` as one JSON line (see queryInstance).
 */
export async function acquireInstance(
  dataDir: string,
  name: string,
  status: () => Record<string, unknown>,
): Promise<InstanceHandle | null> {
  const addr = lockAddress(dataDir, name);
  const nonce = randomBytes(8).toString('hex');
  const server = await tryLock(addr, (socket) => {
    socket.on('error', () => {});
    socket.end(`${JSON.stringify({ ...status(), nonce })}\n`);
  });
  if (!server) return null;
  if (fileBased(addr)) {
    // Two processes that both found a stale file may both have listened; the path now leads to one of them.
    const answer = await ask(addr, 2000);
    if (!answer || !answer.includes(`"nonce":"${nonce}"`)) {
      await new Promise<void>((r) => server.close(() => r()));
      return null;
    }
  }
  return {
    release: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The holder's status, or null when no process holds the named lock. */
export async function queryInstance(
  dataDir: string,
  name: string,
  timeoutMs = 3000,
): Promise<Record<string, unknown> | null> {
  const answer = await ask(lockAddress(dataDir, name), timeoutMs);
  if (answer === null) return null;
  try {
    const j = JSON.parse(answer.trim()) as Record<string, unknown>;
    delete j.nonce;
    return j;
  } catch {
    return { unreadable: true };
  }
}
