// Runs the relay as a real child process (the bundle `npm start` runs, packages/relay/dist/main.js, built
// once per test run by tests/global-setup.ts), so a test can SIGKILL it at any instant and start it again
// on the same data folder and port.
// Every child started here is remembered until it exits; call stopAllRelays() in afterEach/afterAll so
// no relay outlives its test (and a last-resort SIGKILL runs when the test worker exits).

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { bundlePath } from '../../scripts/build.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = bundlePath('relay');
const READY_RE = /openwechat relay listening on (http:\/\/\S+)/;
/** Output kept per stream for error messages (the tail of it). */
const KEEP_CHARS = 16_000;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RelayProcess {
  /** e.g. http://127.0.0.1:41234 (no trailing slash) */
  url: string;
  port: number;
  child: ChildProcess;
  /** Sends the signal (default SIGTERM) and resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** Resolves when the process has exited (at once if it already has). */
  waitExit(): Promise<ExitInfo>;
  /** Everything the process wrote so far (tails). */
  output(): { stdout: string; stderr: string };
}

export interface SpawnRelayOptions {
  dataDir: string;
  /** Default: a free loopback port. */
  port?: number;
  /** Extra environment (RATE_LIMIT_ENABLED, SSE_MAX_PER_IP, MESSAGE_RETENTION_DAYS, …). */
  env?: Record<string, string>;
  /** How long to wait for the "listening" line, default 20 s. */
  readyTimeoutMs?: number;
  /** Keep this much of each output stream instead of the tail (a test that greps the whole log). */
  keepChars?: number;
}

const running = new Set<ChildProcess>();

process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A loopback port that was free a moment ago (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

export async function spawnRelay(options: SpawnRelayOptions): Promise<RelayProcess> {
  const keep = options.keepChars ?? KEEP_CHARS;
  const tail = (s: string): string => (s.length > keep ? s.slice(-keep) : s);
  const port = options.port ?? (await freePort());
  const child = spawn(process.execPath, [MAIN, '--port', String(port), '--data-dir', options.dataDir], {
    cwd: ROOT,
    env: {
      ...process.env,
      RATE_LIMIT_ENABLED: 'false',
      SSE_MAX_PER_IP: '100',
      LOG_LEVEL: 'warn',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);

  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr = tail(stderr + chunk)));

  let exitInfo: ExitInfo | null = null;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      running.delete(child);
      resolve(exitInfo);
    });
  });

  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const url = await new Promise<string>((resolve, reject) => {
    const fail = (why: string): void => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`relay on port ${port} ${why}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`));
    };
    const onData = (chunk: string): void => {
      stdout = tail(stdout + chunk);
      const m = READY_RE.exec(stdout);
      if (m) {
        cleanup();
        resolve(m[1]!);
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      fail(`exited before listening (code ${code}, signal ${signal})`);
    const onError = (err: Error): void => fail(`could not start: ${err.message}`);
    const timer = setTimeout(
      () => fail(`did not print its listening line within ${timeoutMs} ms`),
      timeoutMs,
    );
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
  // Keep draining stdout so the child never blocks on a full pipe.
  child.stdout!.on('data', (chunk: string) => (stdout = tail(stdout + chunk)));

  return {
    url,
    port,
    child,
    waitExit: () => (exitInfo ? Promise.resolve(exitInfo) : exited),
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (!exitInfo) child.kill(signal);
      return exitInfo ? Promise.resolve(exitInfo) : exited;
    },
    output: () => ({ stdout, stderr }),
  };
}

/** SIGKILLs every relay child still running and waits for them to exit. */
export async function stopAllRelays(): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  for (const child of children) running.delete(child);
}
