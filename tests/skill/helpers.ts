// End-to-end helpers for the skill: build the skill folder once per test file, run its bundled scripts with
// plain `node` as real child processes (CLI and daemon), and wait on the data files they write.

import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Environment for every script: fast reconnects, no inherited skill settings. */
export const FAST_ENV: Record<string, string> = {
  OPENWECHAT_RECONNECT_BASE_MS: '100',
  OPENWECHAT_RECONNECT_MAX_MS: '1000',
  OPENWECHAT_FALLBACK_INTERVAL_MS: '200',
  OPENWECHAT_ACK_DELAY_MS: '100',
  OPENWECHAT_SEED: '7',
};

function cleanEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('OPENWECHAT_') && k !== 'NODE_OPTIONS') env[k] = v;
  for (const [k, v] of Object.entries({ ...FAST_ENV, ...extra })) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface Workspace {
  /** Parent folder: holds the skill folder and (by default) its sibling data folder. */
  root: string;
  skill: string;
  cleanup(): Promise<void>;
}

/** A copy of the skill folder (built once per test run by tests/global-setup.ts) at <tmp>/openwechat-im-client. */
export async function buildWorkspace(prefix = 'owc-skill-'): Promise<Workspace> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  const dir = join(root, 'openwechat-im-client');
  await cp(inject('skillBuild'), dir, { recursive: true });
  return { root, skill: dir, cleanup: () => rm(root, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when it is one JSON object. */
  json: Record<string, unknown> | null;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export interface RunOptions {
  /** The data folder (OPENWECHAT_DATA_DIR); omitted: the skill's default sibling folder. */
  data?: string;
  env?: Record<string, string | undefined>;
  input?: string;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs `node <skill>/scripts/<script>.js args…` to completion. */
export function runScript(
  skill: string,
  script: string,
  args: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const env = cleanEnv({ ...(opts.data ? { OPENWECHAT_DATA_DIR: opts.data } : {}), ...(opts.env ?? {}) });
  const child = spawn(process.execPath, [join(skill, 'scripts', `${script}.js`), ...args], {
    cwd: opts.cwd ?? skill,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  // A script that exits before reading its input (a usage error) closes the pipe first: the write then
  // fails with EPIPE, which is not the test's concern — its exit code and output are.
  child.stdin.on('error', () => {});
  child.stdin.end(opts.input ?? '');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} ${args.join(' ')} did not finish\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      let json: Record<string, unknown> | null = null;
      try {
        const t = stdout.trim();
        if (t.startsWith('{') && !t.includes('\n')) json = JSON.parse(t) as Record<string, unknown>;
      } catch {
        json = null;
      }
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, json });
    });
  });
}

/** The CLI. */
export function cli(skill: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runScript(skill, 'openwechat', args, opts);
}

export interface Daemon {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node scripts/sse_inbox.js` in the foreground (a child we can SIGKILL). */
export function startDaemon(
  skill: string,
  data: string,
  opts: { args?: string[]; env?: Record<string, string | undefined> } = {},
): Daemon {
  const child = spawn(process.execPath, [join(skill, 'scripts', 'sse_inbox.js'), ...(opts.args ?? [])], {
    cwd: skill,
    env: cleanEnv({ OPENWECHAT_DATA_DIR: data, ...(opts.env ?? {}) }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    child,
    pid: child.pid!,
    output: () => out,
    exited,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export async function killAll(): Promise<void> {
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
}

export async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

export async function readJson<T = Record<string, unknown>>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T;
}

/** Polls until `check` returns a value (not undefined/false); throws with `describe()` after the timeout. */
export async function waitUntil<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 20_000,
  describe: () => Promise<string> | string = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${await describe()}`);
    await sleep(25);
  }
}

/** Lines of a text file (without the final empty one). */
export async function lines(path: string): Promise<string[]> {
  const t = await readText(path);
  return t === '' ? [] : t.replace(/\n$/, '').split('\n');
}

/** Replaces the leading `[time]` of conversation lines (for lines written with the local clock). */
export const untimed = (l: string): string => l.replace(/^\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\]/, '[T]');

/** Waits until a data folder's conversations.md has `n` incoming lines. */
export async function waitIncoming(data: string, n: number, timeoutMs = 20_000): Promise<string[]> {
  const path = join(data, 'conversations.md');
  return waitUntil(
    async () => {
      // Received lines: `from=` someone else (our own lines carry the `.out` flag in their type token).
      const ls = (await lines(path)).filter(
        (l) =>
          / from=#/.test(l) && !/ type=[a-z_]+(\.[^ ]*)?\.out\b/.test(l) && !/ type=[a-z_]+\.out\b/.test(l),
      );
      return ls.length >= n ? ls : undefined;
    },
    `${n} incoming line(s) in ${path}`,
    timeoutMs,
    async () =>
      `${await readText(path)}\n--- sse_channel.log ---\n${await readText(join(data, 'sse_channel.log'))}`,
  );
}
