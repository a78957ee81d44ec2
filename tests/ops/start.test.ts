// `npm start` as a supervisor runs it (issue 19): a SIGTERM or SIGINT sent to npm's own PID reaches the
// relay, which shuts down gracefully (its "shutting down" line, exit 0, port released) and leaves no
// process behind. And a busy port is one clear line and exit 2, like a configuration error.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundlePath, ROOT } from '../../scripts/build.ts';
import { freePort } from '../helpers/process.ts';

const dirs: string[] = [];
const children = new Set<ChildProcess>();
/** Processes under npm: killed at the end in case a failing run left them behind. */
const strays = new Set<number>();

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const pid of strays) if (running(pid)) process.kill(pid, 'SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'owc-start-'));
  dirs.push(d);
  return d;
}

/** Direct children of a process (Linux /proc). */
function childPids(pid: number): number[] {
  const file = `/proc/${pid}/task/${pid}/children`;
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** The whole tree under `pid`, depth first. */
function descendants(pid: number): number[] {
  return childPids(pid).flatMap((c) => [c, ...descendants(c)]);
}

/** Alive and not a zombie (an exited child nobody reaped yet counts as gone). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function portAccepts(port: number): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}/health`).then(
    () => true,
    () => false,
  );
}

describe.each(['SIGTERM', 'SIGINT'] as const)('npm start, %s to npm', (signal) => {
  it('stops the relay gracefully and leaves no process behind', async () => {
    const dataDir = await tempDir();
    const port = await freePort();
    const npm = spawn('npm', ['start', '--', '--port', String(port), '--data-dir', dataDir], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(npm);
    let out = '';
    npm.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    npm.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      npm.once('exit', (code, sig) => r({ code, signal: sig })),
    );

    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line within 30 s:\n${out}`)), 30_000);
      const onData = (): void => {
        if (out.includes('openwechat relay listening on')) {
          clearTimeout(timer);
          resolve();
        }
      };
      npm.stdout!.on('data', onData);
      void exited.then(() => reject(new Error(`npm exited before listening:\n${out}`)));
    });
    const tree = descendants(npm.pid!);
    for (const pid of tree) strays.add(pid);
    expect(tree.length).toBeGreaterThan(0);
    expect(await portAccepts(port)).toBe(true);

    npm.kill(signal);
    const result = await exited;
    children.delete(npm);

    expect(out).toContain(`${signal}: shutting down`);
    expect(result).toEqual({ code: 0, signal: null });
    for (const pid of tree) expect(running(pid), `pid ${pid} still running:\n${out}`).toBe(false);
    expect(await portAccepts(port)).toBe(false);
  }, 60_000);
});

describe('busy port', () => {
  it('is one line naming the way out, and exit 2', async () => {
    const blocker: Server = createServer();
    const port = await new Promise<number>((resolve) =>
      blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)),
    );
    try {
      const child = spawn(process.execPath, [bundlePath('relay'), '--port', String(port)], {
        cwd: ROOT,
        env: { ...process.env, DATA_DIR: await tempDir(), LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      children.delete(child);
      expect(code).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toBe(
        `cannot listen: 127.0.0.1:${port} is already in use (another relay?); pick another port with --port or PORT\n`,
      );
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  }, 30_000);
});
