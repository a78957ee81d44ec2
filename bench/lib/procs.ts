// Child processes of a benchmark run: relays, the bare node:http yardstick server and the load/stream
// workers. Every child is registered here and killed when the run ends, also on error or Ctrl-C.

import { spawn, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
// A loopback port that was free a moment ago: the test helpers' probe.
import { buildBundles, bundlePath } from '../../scripts/build.ts';
import { freePort } from '../../tests/helpers/process.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BARE_SERVER = fileURLToPath(new URL('./bare-server.ts', import.meta.url));
const BARE_FASTIFY = fileURLToPath(new URL('./bare-fastify.ts', import.meta.url));
const READY_RE = /listening on (http:\/\/127\.0\.0\.1:\d+)/;
const KEEP_CHARS = 8_000;

const running = new Set<ChildProcess>();

function killAllSync(): void {
  for (const child of running)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
process.once('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killAllSync();
    process.exit(130);
  });
}

/** SIGKILLs every child still running and waits for them to be gone. */
export async function killAll(): Promise<void> {
  await Promise.all([...running].map((c) => stopChild(c, 'SIGKILL')));
}

/** Sends `signal` and resolves when the child has exited (SIGKILL after `graceMs`). */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000) {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

export interface ServerProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  /** SIGTERM (graceful: the relay closes its store; --cpu-prof writes its profile) and wait. */
  stop(): Promise<void>;
  output(): { stdout: string; stderr: string };
}

function tail(s: string): string {
  return s.length > KEEP_CHARS ? s.slice(-KEEP_CHARS) : s;
}

async function startServer(
  args: string[],
  env: Record<string, string>,
  what: string,
  timeoutMs = 30_000,
): Promise<ServerProcess> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (c: string) => (stdout = tail(stdout + c)));
  child.stderr!.on('data', (c: string) => (stderr = tail(stderr + c)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`${what} did not start within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (): void => {
      const m = READY_RE.exec(stdout);
      if (m) done(null, m[1]);
    };
    const onExit = (code: number | null, signal: string | null): void =>
      done(new Error(`${what} exited before listening (code ${code}, signal ${signal})`));
    const done = (err: Error | null, u?: string): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (err) {
        child.kill('SIGKILL');
        const lastErr = stderr.trim().split('\n').slice(-5).join('\n');
        reject(Object.assign(err, { detail: lastErr }));
      } else resolve(u!);
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
  return {
    url,
    pid: child.pid!,
    child,
    stop: () => stopChild(child, 'SIGTERM'),
    output: () => ({ stdout, stderr }),
  };
}

export interface RelayOptions {
  dataDir: string;
  env?: Record<string, string>;
  /** Extra node flags before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /**
   * Another relay bundle to run instead of this checkout's (A/B in one sitting: `--baseline`). It must
   * sit two folders below a copy of packages/relay/package.json inside the repository, e.g.
   * packages/relay/dist/before/dist/main.js, so its `../package.json` and node_modules resolve.
   */
  bundle?: string;
}

/**
 * `node packages/relay/dist/main.js --port P --data-dir D` with the benchmark settings: the bundle
 * `npm start` runs (built first when stale), so the bench measures what production runs.
 */
export async function startRelay(opts: RelayOptions): Promise<ServerProcess> {
  // BENCH_RELAY_BUNDLE: every section runs that bundle instead (a whole "before" run in one sitting).
  const bundle = opts.bundle ?? process.env.BENCH_RELAY_BUNDLE;
  if (!bundle) await buildBundles({ names: ['relay'] });
  const port = await freePort();
  return startServer(
    [
      ...(opts.nodeArgs ?? []),
      bundle ?? bundlePath('relay'),
      '--port',
      String(port),
      '--data-dir',
      opts.dataDir,
    ],
    {
      RATE_LIMIT_ENABLED: 'false',
      LOG_LEVEL: 'warn',
      SSE_MAX_PER_IP: '20000',
      HOST: '127.0.0.1',
      ...opts.env,
    },
    'relay',
  );
}

/** The yardstick: a minimal node:http server answering a small JSON POST with JSON. */
export async function startBareServer(): Promise<ServerProcess> {
  const port = await freePort();
  return startServer(['--import', 'tsx', BARE_SERVER, String(port)], {}, 'bare node:http server');
}

/** The framework yardstick: bare Fastify with the yardstick's route (bench/lib/bare-fastify.ts). */
export async function startBareFastify(): Promise<ServerProcess> {
  const port = await freePort();
  return startServer(['--import', 'tsx', BARE_FASTIFY, String(port)], {}, 'bare fastify server');
}

/** Forks a TypeScript worker module with an IPC channel. */
export function forkWorker(modulePath: string, args: string[] = []): ChildProcess {
  const child = fork(modulePath, args, {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Resident set size of a process in KiB (VmRSS from /proc/<pid>/status); null when unavailable. */
export function rssKiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The soft limit on open files of this process (children inherit it). */
export function openFileLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? (m[1] === 'unlimited' ? Infinity : Number(m[1])) : null;
  } catch {
    return null;
  }
}
