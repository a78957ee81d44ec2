// The skill run by the real OpenClaw (issue 15 §3.1): the built skill folder installed with
// `openclaw skills install`, judged eligible and visible to the model, then one headless turn in which the
// (fake) model does what OpenClaw's prompt tells a model to do: `read` SKILL.md at the location listed in
// <available_skills>, and run the onboarding commands exactly as SKILL.md writes them — with `{baseDir}`
// replaced by the skill folder, from the workspace as working directory — through the `exec` tool.
// Finally a message from another relay user must land in the skill's data folder (the daemon runs).

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayClient } from '@openwechat/client';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { startFakeModel, type FakeModel, type ModelAnswer } from './fake-model.ts';
import {
  createOpenClawHome,
  ensureOpenClaw,
  waitFor,
  type OpenClawHome,
  type OpenClawInstall,
} from './harness.ts';
import { figures } from './figures.ts';
import { onboardingCommands } from './skill-md.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SKILL = 'openwechat-im-client';

describe('the skill inside the real OpenClaw', () => {
  let install: OpenClawInstall;
  let relay: TestRelay;
  let model: FakeModel;
  let oc: OpenClawHome;
  let buildDir: string;
  /** The skill folder as OpenClaw names it in the prompt (it may start with `~`, the agent's HOME). */
  let skillDir: string;
  const executed: string[] = [];
  /** That folder on this machine. */
  const local = (p: string): string => (p.startsWith('~/') ? join(oc.home, p.slice(2)) : p);

  beforeAll(async () => {
    install = await ensureOpenClaw();
    relay = await startRelay();
    model = await startFakeModel();
    oc = await createOpenClawHome(install, { modelBaseUrl: model.baseUrl });
    buildDir = await mkdtemp(join(tmpdir(), 'owc-skill-build-'));
    await run('npm', ['run', 'build:skill', '--silent', '--', '--out', join(buildDir, SKILL)], {
      cwd: ROOT,
      timeout: 120_000,
    });
  }, 420_000);

  afterAll(async () => {
    // The daemon is detached by design: stop it the way the skill does, then remove everything.
    const data = skillDir ? join(dirname(local(skillDir)), 'openwechat_im_client') : null;
    if (data && existsSync(join(data, 'sse_channel.log'))) {
      // Its pid is in the channel log (`… pid=<n>`); wait until that process is gone before removing the
      // folder, or its last writes recreate files in it.
      const pids = [...(await readFile(join(data, 'sse_channel.log'), 'utf8')).matchAll(/\bpid=(\d+)/g)];
      await run(install.node, [join(local(skillDir), 'scripts/openwechat.js'), 'daemon', 'stop'], {
        cwd: oc.workspace,
        env: oc.env,
        timeout: 30_000,
      }).catch(() => undefined);
      const pid = Number(pids.at(-1)?.[1] ?? 0);
      const alive = (): boolean => {
        try {
          return pid > 0 && process.kill(pid, 0);
        } catch {
          return false;
        }
      };
      await waitFor('the inbox daemon to exit', () => (alive() ? undefined : true), 15_000).catch(() => {
        if (alive()) process.kill(pid, 'SIGKILL');
      });
    }
    await oc?.dispose();
    await model?.close();
    await relay?.close();
    if (buildDir) await rm(buildDir, { recursive: true, force: true });
    figures.flush();
  }, 60_000);

  it('skills install → eligible, visible to the model, nothing missing', async () => {
    await oc.cli(['skills', 'install', join(buildDir, SKILL)], 120_000);
    const { stdout } = await oc.cli(['skills', 'info', SKILL, '--json'], 120_000);
    const info = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
      eligible: boolean;
      modelVisible: boolean;
      missing: Record<string, unknown[]>;
      baseDir?: string;
      filePath?: string;
    };
    expect(info.eligible).toBe(true);
    expect(info.modelVisible).toBe(true);
    for (const [kind, list] of Object.entries(info.missing ?? {})) expect(list, kind).toEqual([]);
  }, 250_000);

  it('a turn reads SKILL.md and runs its onboarding from the workspace; a message then lands in the data folder', async () => {
    let commands: string[] | null = null;
    model.script = (call): ModelAnswer | null => {
      if (!call.userText.includes('openwechat relay')) return null;
      const step = call.toolResults.length;
      if (step === 0) {
        const location = new RegExp(`<location>([^<]*${SKILL}[^<]*SKILL\\.md)</location>`).exec(
          call.promptText,
        )?.[1];
        if (!location) return { text: 'The skill is not in my prompt.' };
        skillDir = dirname(location);
        return { tool: 'read', args: { path: location } };
      }
      if (step === 1) {
        commands = onboardingCommands(call.toolResults[0]!, {
          baseDir: skillDir,
          relay: relay.url,
          name: 'clawbot',
        });
      }
      const next = commands?.[step - 1];
      if (next) {
        executed.push(next);
        return { tool: 'exec', args: { command: next } };
      }
      return { text: `Registered and the inbox daemon is running.` };
    };
    const t0 = Date.now();
    await oc.cli(
      [
        'agent',
        '--local',
        '--agent',
        'main',
        '--session-id',
        'skill-onboarding',
        '--json',
        '--message',
        `Please register me on the openwechat relay at ${relay.url} with the name clawbot and start the inbox.`,
      ],
      240_000,
    );
    figures.record('skill onboarding turn (s)', (Date.now() - t0) / 1000);
    const seen = model.calls.map(
      (c) => `tools=${c.tools.join(',')} results=${c.toolResults.length} user=${c.userText.slice(0, 300)}`,
    );
    expect(executed.length, seen.join('\n---\n')).toBe(2);
    expect(executed[0]).toContain(join(skillDir, 'scripts/'));
    const dataDir = join(dirname(local(skillDir)), 'openwechat_im_client');
    const config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8')) as {
      base_url: string;
      my_id: number;
    };
    expect(config.base_url).toBe(relay.url);
    // The exec results the model saw report success (no "not found", no usage error).
    const lastCall = model.calls.filter((c) => c.userText.includes('openwechat relay')).at(-1)!;
    expect(lastCall.toolResults).toHaveLength(3);
    expect(lastCall.toolResults.slice(1).join('\n')).not.toMatch(/Cannot find module|ENOENT|not found/i);

    await waitFor(
      'the daemon connected',
      async () =>
        (await readFile(join(dataDir, 'sse_channel.log'), 'utf8').catch(() => '')).includes('connected')
          ? true
          : undefined,
      30_000,
    );
    const anon = new RelayClient({ baseUrl: relay.url, mode: 'json' });
    const bob = await anon.register({ name: 'bob' });
    const bobClient = new RelayClient({ baseUrl: relay.url, token: bob.token, mode: 'json' });
    await bobClient.send(config.my_id, 'hello clawbot from bob skill-msg-1');
    const line = await waitFor(
      'bob’s message in conversations.md',
      async () =>
        (await readFile(join(dataDir, 'conversations.md'), 'utf8').catch(() => ''))
          .split('\n')
          .find((l) => l.includes('skill-msg-1')),
      30_000,
    );
    expect(line).toContain(`from=#${bob.user.id}(bob)`);
  }, 300_000);
});
