// Background processes the skill runs: the inbox daemon and the demo UI server.

import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { exists, readJsonOrNull, readTextOrNull } from '../data/atomic.ts';
import { loadConfig } from '../data/config.ts';
import { type StatsFile } from '../data/derived.ts';
import { queryInstance } from '../data/lock.ts';
import { dataPath, scriptCommand } from '../data/paths.ts';
import { daemonOptionsFromEnv, EXIT, runDaemon } from '../daemon.ts';
import { CliError, usageError } from '../output.ts';
import {
  type Command,
  type Ctx,
  daemonStatus,
  lastChannelLine,
  selfCommand,
  str,
  waitFor,
} from './common.ts';

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
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const env: NodeJS.ProcessEnv = { ...ctx.env, OPENWECHAT_DATA_DIR: dir };
      if (ctx.legacy) env.OPENWECHAT_FORCE_LEGACY = '1';
      const child = spawnDetached(ctx, scriptCommand('sse_inbox'), 'daemonOut', env);
      const up = await waitFor(async () => child.exited() !== null || !!(await daemonStatus(dir)), 10_000);
      const exited = child.exited();
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

const UI_LOCK = 'serve_ui';

/** Starts a script detached, its output appended to `outName` in the data folder; returns its exit watcher. */
function spawnDetached(
  ctx: Ctx,
  args: string[],
  outName: 'daemonOut' | 'uiOut',
  env: NodeJS.ProcessEnv,
): { exited: () => number | null } {
  const outFd = openSync(dataPath(ctx.dir, outName), 'a', 0o600);
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', outFd, outFd], env });
  closeSync(outFd);
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? 1));
  child.unref();
  return { exited: () => exited };
}

/** The last lines a background script wrote (to explain why it stopped). */
async function tailOf(path: string, from: number): Promise<string> {
  const text = (await readTextOrNull(path)) ?? '';
  return Buffer.from(text).subarray(from).toString('utf8').trim().split('\n').slice(-3).join(' ');
}

export const ui: Command = {
  usage: 'ui [start|stop|status|run] [--port <n>]',
  summary:
    'the demo UI on http://127.0.0.1:8765 (localhost only): start in the background (default), stop, status, or run in the foreground',
  options: { port: { type: 'string' } },
  async run(ctx) {
    const action = ctx.args[0] ?? 'start';
    const cmd = scriptCommand('serve_ui');
    const script = cmd[cmd.length - 1]!;
    const port = str(ctx.values.port);
    if (port !== undefined && !/^\d+$/.test(port)) throw usageError(`--port must be 0-65535, got "${port}"`);
    const args = [...cmd, '--data-dir', ctx.dir, ...(port !== undefined ? ['--port', port] : [])];
    const env = { ...ctx.env, OPENWECHAT_DATA_DIR: ctx.dir };
    if (action === 'status') {
      const s = await queryInstance(ctx.dir, UI_LOCK);
      ctx.out.result({ running: !!s, ui: s });
      if (!s) {
        ctx.out.say(`the demo UI is not running. Start it: ${selfCommand('ui start')}`);
        ctx.exit = EXIT.daemonConflict;
      } else ctx.out.say(`the demo UI runs at ${String(s.url)} (pid ${String(s.pid)})`);
      return;
    }
    if (action === 'stop') {
      const s = await queryInstance(ctx.dir, UI_LOCK);
      if (!s) {
        ctx.out.result({ stopped: false, running: false });
        ctx.out.say('the demo UI is not running');
        return;
      }
      const pid = Number(s.pid);
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      if (!(await waitFor(async () => !(await queryInstance(ctx.dir, UI_LOCK)), 10_000)))
        throw new CliError(EXIT.failure, 'ui_stuck', `serve_ui (pid ${pid}) did not stop within 10 s`);
      ctx.out.result({ stopped: true, pid });
      ctx.out.say(`the demo UI (pid ${pid}) stopped`);
      return;
    }
    if (action !== 'start' && action !== 'run')
      throw usageError(`unknown ui action "${action}" (start|stop|status|run)`);
    if (!(await exists(script)))
      throw new CliError(EXIT.failure, 'ui_missing', `the UI server is not available (${script})`);
    if (action === 'run') {
      // Foreground (a terminal): the server's own output, stopped with Ctrl-C.
      const child = spawn(process.execPath, args, { stdio: 'inherit', env });
      const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      const code = await new Promise<number>((r) => child.once('exit', (c) => r(c ?? 0)));
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      if (code !== 0) throw new CliError(code, 'ui', `serve_ui exited with code ${code}`);
      return;
    }
    // start: in the background, so an agent's exec call returns at once.
    const existing = await queryInstance(ctx.dir, UI_LOCK);
    if (existing) {
      ctx.out.result({ started: false, already_running: true, ui: existing });
      ctx.out.say(`the demo UI already runs at ${String(existing.url)} (pid ${String(existing.pid)})`);
      return;
    }
    await mkdir(ctx.dir, { recursive: true, mode: 0o700 });
    const outPath = dataPath(ctx.dir, 'uiOut');
    const from = Buffer.byteLength((await readTextOrNull(outPath)) ?? '');
    const child = spawnDetached(ctx, args, 'uiOut', env);
    const up = await waitFor(
      async () => child.exited() !== null || !!(await queryInstance(ctx.dir, UI_LOCK)),
      10_000,
    );
    const s = await queryInstance(ctx.dir, UI_LOCK);
    if (!up || !s) {
      const why = await tailOf(outPath, from);
      throw new CliError(
        EXIT.failure,
        'ui_failed',
        `the demo UI did not start${child.exited() !== null ? ` (exit code ${child.exited()})` : ''}${why ? `: ${why}` : ''}`,
        `Pick another port: ${selfCommand('ui start --port <n>')} (0 = any free port). Output: ${outPath}`,
      );
    }
    ctx.out.result({ started: true, ui: s });
    ctx.out.say(
      `the demo UI runs at ${String(s.url)} (pid ${String(s.pid)}); stop it with: ${selfCommand('ui stop')}`,
    );
  },
};
