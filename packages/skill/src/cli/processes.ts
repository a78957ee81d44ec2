// Background processes the skill runs: the inbox daemon and the demo UI server.

import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { exists, readJsonOrNull, readTextOrNull } from '../data/atomic.ts';
import { loadConfig } from '../data/config.ts';
import { type StatsFile } from '../data/derived.ts';
import { dataPath, scriptCommand } from '../data/paths.ts';
import { daemonOptionsFromEnv, EXIT, runDaemon } from '../daemon.ts';
import { CliError, usageError } from '../output.ts';
import { type Command, str, daemonStatus, lastChannelLine, waitFor } from './common.ts';

export const daemon: Command = {
  usage: 'daemon start|stop|status|run [--legacy]',
  summary: 'the SSE inbox daemon: start in the background, stop, show status, or run in the foreground',
  async run(ctx) {
    const action = ctx.args[0] ?? 'status';
    const dir = ctx.dir;
    if (action === 'run') {
      const code = await runDaemon({
        ...daemonOptionsFromEnv(ctx.env),
        dataDir: dir,
        forceLegacy: ctx.legacy || undefined,
      });
      if (code !== EXIT.ok) throw new CliError(code, 'daemon', `sse_inbox exited with code ${code}`);
      return;
    }
    if (action === 'status') {
      const s = await daemonStatus(dir);
      const last = lastChannelLine(await readTextOrNull(dataPath(dir, 'channelLog')));
      const stats = await readJsonOrNull<StatsFile>(dataPath(dir, 'stats')).catch(() => null);
      ctx.out.result({ running: !!s, daemon: s, last_channel_event: last, sse: stats?.sse ?? null });
      if (!s) {
        ctx.out.say(`not running${last ? ` (last: ${last.time} ${last.state} ${last.details})` : ''}`);
        ctx.out.say('Start it: openwechat daemon start');
        ctx.exit = EXIT.daemonConflict;
        return;
      }
      ctx.out.say(
        `running: pid ${String(s.pid)}, ${String(s.state)} (mode ${String(s.mode)}) since ${String(s.since)}, last id ${String(s.last_id)}`,
      );
      return;
    }
    if (action === 'start') {
      await loadConfig(dir);
      const existing = await daemonStatus(dir);
      if (existing) {
        ctx.out.result({ started: false, already_running: true, daemon: existing });
        ctx.out.say(`already running (pid ${String(existing.pid)})`);
        return;
      }
      await mkdir(dir, { recursive: true });
      const outFd = openSync(dataPath(dir, 'daemonOut'), 'a');
      const env: NodeJS.ProcessEnv = { ...ctx.env, OPENWECHAT_DATA_DIR: dir };
      if (ctx.legacy) env.OPENWECHAT_FORCE_LEGACY = '1';
      const child = spawn(process.execPath, scriptCommand('sse_inbox'), {
        detached: true,
        stdio: ['ignore', outFd, outFd],
        env,
      });
      closeSync(outFd);
      let exited: number | null = null;
      child.once('exit', (code) => (exited = code ?? 1));
      child.unref();
      const up = await waitFor(async () => exited !== null || !!(await daemonStatus(dir)), 10_000);
      const s = await daemonStatus(dir);
      if (!up || !s) {
        throw new CliError(
          exited ?? EXIT.failure,
          'daemon_failed',
          `sse_inbox did not start${exited !== null ? ` (exit code ${exited})` : ''}; see ${dataPath(dir, 'daemonOut')} and sse_channel.log`,
        );
      }
      ctx.out.result({ started: true, daemon: s });
      ctx.out.say(
        `sse_inbox started (pid ${String(s.pid)}). Check the channel: ${dataPath(dir, 'channelLog')}`,
      );
      return;
    }
    if (action === 'stop') {
      const s = await daemonStatus(dir);
      if (!s) {
        ctx.out.result({ stopped: false, running: false });
        ctx.out.say('not running');
        return;
      }
      const pid = Number(s.pid);
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const gone = await waitFor(async () => !(await daemonStatus(dir)), 15_000);
      if (!gone)
        throw new CliError(EXIT.failure, 'daemon_stuck', `sse_inbox (pid ${pid}) did not stop within 15 s`);
      ctx.out.result({ stopped: true, pid });
      ctx.out.say(`sse_inbox (pid ${pid}) stopped`);
      return;
    }
    throw usageError(`unknown daemon action "${action}" (start|stop|status|run)`);
  },
};

export const ui: Command = {
  usage: 'ui [--port <n>]',
  summary: 'serve demo_ui.html and the whitelisted data files on http://127.0.0.1:8765 (localhost only)',
  options: { port: { type: 'string' } },
  async run(ctx) {
    const cmd = scriptCommand('serve_ui');
    const script = cmd[cmd.length - 1]!;
    if (!(await exists(script)))
      throw new CliError(EXIT.failure, 'ui_missing', `the UI server is not available (${script})`);
    const args = [...cmd, '--data-dir', ctx.dir];
    const port = str(ctx.values.port);
    if (port) args.push('--port', port);
    const child = spawn(process.execPath, args, {
      stdio: 'inherit',
      env: { ...ctx.env, OPENWECHAT_DATA_DIR: ctx.dir },
    });
    const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const code = await new Promise<number>((r) => child.once('exit', (c) => r(c ?? 0)));
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    if (code !== 0) throw new CliError(code, 'ui', `serve_ui exited with code ${code}`);
  },
};
