// The real agent runtimes for tests (spec/agent-runtimes.md): Claude Code and Codex at pinned versions,
// installed from the npm registry into a cache outside the repository (reused when present, as the
// OpenClaw harness does), run offline with a temporary HOME against a fake model on loopback. Their MCP
// configuration is docs/mcp.md's snippet, with this checkout, the test relay and a temporary data folder.

import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { withInstallLock } from '../helpers/install-lock.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const CLAUDE_VERSION = '2.1.328';
export const CODEX_VERSION = '0.169.0';

function cacheRoot(): string {
  return process.env.OPENWECHAT_CACHE ?? join(homedir(), '.cache/openwechat');
}

/** Installs `pkg@version` into `dir` unless it is there (one install at a time per folder). */
function ensure(dir: string, pkg: string, version: string, bin: string): Promise<string> {
  return withInstallLock(dir, () => install(dir, pkg, version, bin));
}

async function install(dir: string, pkg: string, version: string, bin: string): Promise<string> {
  const manifest = join(dir, 'node_modules', pkg, 'package.json');
  const have =
    existsSync(join(dir, bin)) &&
    existsSync(manifest) &&
    (JSON.parse(await readFile(manifest, 'utf8')) as { version: string }).version === version;
  if (!have) {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'package.json'), '{"name":"agent-runtime-cache","private":true}\n');
    // Install scripts are skipped: the native binaries come in the platform packages (optional deps).
    await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--no-save', `${pkg}@${version}`],
      { cwd: dir, timeout: 300_000, maxBuffer: 64 * 1024 * 1024 },
    );
  }
  const path = join(dir, bin);
  if (!existsSync(path)) throw new Error(`${pkg}@${version} installed without ${bin}`);
  return path;
}

/** The Claude Code binary (the platform package's; its postinstall is not needed). */
export function ensureClaude(): Promise<string> {
  return ensure(
    join(cacheRoot(), `claude-code-${CLAUDE_VERSION}`),
    '@anthropic-ai/claude-code',
    CLAUDE_VERSION,
    'node_modules/@anthropic-ai/claude-code-linux-x64/claude',
  );
}

export function ensureCodex(): Promise<string> {
  return ensure(
    join(cacheRoot(), `codex-${CODEX_VERSION}`),
    '@openai/codex',
    CODEX_VERSION,
    'node_modules/.bin/codex',
  );
}

/** The fenced block after `<!-- snippet: <name> -->` in docs/mcp.md. */
export async function snippet(name: string): Promise<string> {
  const doc = await readFile(join(ROOT, 'docs/mcp.md'), 'utf8');
  const at = doc.indexOf(`<!-- snippet: ${name} -->`);
  if (at < 0) throw new Error(`docs/mcp.md has no snippet ${name}`);
  const m = /```[^\n]*\n([\s\S]*?)```/.exec(doc.slice(at));
  if (!m) throw new Error(`docs/mcp.md: snippet ${name} has no fenced block`);
  return m[1]!;
}

/** The snippet with this checkout, the relay and the data folder in place of the docs' examples. */
export function fill(text: string, v: { relay: string; dataDir: string }): string {
  return text
    .replaceAll('/path/to/openwechat', ROOT.replace(/\/$/, ''))
    .replaceAll('https://relay.example.org', v.relay)
    .replace(/\/home\/me\/\.openwechat-mcp\/[a-z]+/g, v.dataDir);
}

/** The machine's environment minus what belongs to the test run or points elsewhere. */
function inherited(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(VITEST|NODE_OPTIONS$|npm_|OPENWECHAT_|ANTHROPIC_|OPENAI_|CLAUDE|CODEX)/i.test(k),
    ),
  );
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runProcess(
  cmd: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs: number },
): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const kill = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`${cmd} timed out after ${opts.timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs);
    process.once('exit', kill);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      process.removeListener('exit', kill);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** `claude -p <prompt> --mcp-config <docs' .mcp.json> …` against the fake Anthropic API. */
export async function runClaude(o: {
  bin: string;
  home: string;
  modelUrl: string;
  mcpJson: string;
  prompt: string;
  tools: string[];
  timeoutMs?: number;
}): Promise<RunResult> {
  await mkdir(o.home, { recursive: true });
  const config = join(o.home, 'mcp.json');
  await writeFile(config, o.mcpJson);
  return runProcess(
    o.bin,
    [
      '-p',
      o.prompt,
      '--mcp-config',
      config,
      '--strict-mcp-config',
      '--allowedTools',
      o.tools.map((t) => `mcp__openwechat__${t}`).join(','),
      '--output-format',
      'json',
    ],
    {
      cwd: o.home,
      timeoutMs: o.timeoutMs ?? 180_000,
      env: {
        ...inherited(),
        HOME: o.home,
        ANTHROPIC_BASE_URL: o.modelUrl,
        ANTHROPIC_API_KEY: 'fake-model-key',
        DISABLE_TELEMETRY: '1',
        DISABLE_ERROR_REPORTING: '1',
        DISABLE_AUTOUPDATER: '1',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        // MCP tools with their schemas in `tools` (not deferred behind tool search).
        ENABLE_TOOL_SEARCH: 'false',
        // wait_for_message blocks; the default MCP tool timeout is far longer, set here explicitly.
        MCP_TOOL_TIMEOUT: '300000',
        // Server start-up on a busy machine (the default is shorter; Claude Code then runs without it).
        MCP_TIMEOUT: '60000',
      },
    },
  );
}

/** `codex exec … <prompt>` with $CODEX_HOME/config.toml = the fake provider + docs' [mcp_servers] snippet. */
export async function runCodex(o: {
  bin: string;
  home: string;
  modelUrl: string;
  mcpToml: string;
  prompt: string;
  timeoutMs?: number;
}): Promise<RunResult> {
  const codexHome = join(o.home, '.codex');
  await mkdir(codexHome, { recursive: true });
  const config = `model = "fake-model"
model_provider = "fake"
approval_policy = "never"
sandbox_mode = "read-only"

[model_providers.fake]
name = "fake"
base_url = "${o.modelUrl}/v1"
env_key = "FAKE_OPENAI_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

${o.mcpToml}`;
  await writeFile(join(codexHome, 'config.toml'), config);
  return runProcess(o.bin, ['exec', '--skip-git-repo-check', '--ephemeral', '--json', o.prompt], {
    cwd: o.home,
    timeoutMs: o.timeoutMs ?? 180_000,
    env: { ...inherited(), HOME: o.home, CODEX_HOME: codexHome, FAKE_OPENAI_API_KEY: 'fake-model-key' },
  });
}
