// Local chores: doctor (health of the whole setup) and retention.

import { access, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { exists, readJsonOrNull, readTextOrNull } from '../data/atomic.ts';
import {
  configMode,
  DATA_VERSION,
  loadConfig,
  readConfigRaw,
  restrictConfig,
  type SkillConfig,
} from '../data/config.ts';
import { refreshDerived } from '../data/derived.ts';
import { acquireInstance } from '../data/lock.ts';
import { CHANNEL_LINE_RE } from '../data/formats.ts';
import { dataPath, FILES, skillRoot, BUNDLED } from '../data/paths.ts';
import { retention } from '../data/retention.ts';
import { DAEMON_LOCK, EXIT } from '../daemon.ts';
import { CliError, toCliError, usageError } from '../output.ts';
import { type Command, clientFor, daemonStatus, lastChannelLine } from './common.ts';

type Check = { name: string; level: 'ok' | 'warn' | 'fail'; detail: string };

/**
 * The stream outage in progress according to sse_channel.log: when the first unhealthy transition after the
 * last `connected`/`recovered` line happened, and the last `error` line since. null when the stream is up.
 */
function outageOf(logText: string | null): { since: number; lastError: string | null } | null {
  let outage: { since: number; lastError: string | null } | null = null;
  for (const line of (logText ?? '').split('\n')) {
    const m = CHANNEL_LINE_RE.exec(line);
    if (!m || m[2] === 'server') continue;
    const state = m[2]!;
    if (state === 'connected' || state === 'recovered') outage = null;
    else {
      outage ??= { since: Date.parse(m[1]!), lastError: null };
      if (state === 'error') outage.lastError = `${state} ${m[3] ?? ''}`.trim();
    }
  }
  return outage;
}

export const doctor: Command = {
  usage: 'doctor [--fix] [--grace <seconds>]',
  summary: 'check config, permissions, relay reachability, token, SSE daemon health',
  options: { fix: { type: 'boolean' }, grace: { type: 'string' } },
  async run(ctx) {
    const checks: Check[] = [];
    const add = (name: string, level: Check['level'], detail: string): void =>
      void checks.push({ name, level, detail });
    const dir = ctx.dir;
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, 2 /* W_OK */);
      add('data folder', 'ok', dir);
    } catch (err) {
      add('data folder', 'fail', `${dir}: ${(err as Error).message}`);
    }
    if (!ctx.env.OPENWECHAT_DATA_DIR && BUNDLED && resolve(dir).startsWith(resolve(skillRoot()) + '/')) {
      add('data location', 'fail', 'the data folder is inside the skill folder; an upgrade would delete it');
    }
    if (await exists(join(skillRoot(), FILES.config))) {
      add(
        'skill folder',
        'warn',
        `${join(skillRoot(), FILES.config)} exists inside the skill folder; config belongs in ${dir}`,
      );
    }
    let config: SkillConfig | null = null;
    try {
      config = await loadConfig(dir);
      add('config.json', 'ok', `#${config.my_id} ${config.my_name} on ${config.base_url}`);
    } catch (err) {
      add('config.json', 'fail', toCliError(err).message);
    }
    const mode = await configMode(dir);
    if (mode !== null && process.platform !== 'win32') {
      if ((mode & 0o077) !== 0) {
        if (ctx.values.fix) {
          await restrictConfig(dir);
          add('config.json permissions', 'ok', `were ${mode.toString(8)}, now 600 (--fix)`);
        } else
          add(
            'config.json permissions',
            'fail',
            `mode ${mode.toString(8)}: others can read the token (run doctor --fix)`,
          );
      } else add('config.json permissions', 'ok', mode.toString(8));
    }
    const raw = await readConfigRaw(dir).catch(() => null);
    if (raw && raw.data_version !== undefined && raw.data_version !== DATA_VERSION) {
      add(
        'data version',
        'warn',
        `data_version ${String(raw.data_version)}; this skill writes ${DATA_VERSION}`,
      );
    }
    for (const name of ['profile', 'contacts', 'stats', 'snapshot', 'cursor', 'groups'] as const) {
      try {
        await readJsonOrNull(dataPath(dir, name));
      } catch (err) {
        add(FILES[name], 'fail', (err as Error).message);
      }
    }
    if (config) {
      const client = clientFor(ctx, config);
      const started = Date.now();
      try {
        const caps = await client.capabilities();
        add(
          'relay',
          'ok',
          `${config.base_url} answers in ${Date.now() - started} ms (${caps.kind === 'openwechat' ? `openwechat ${caps.version ?? ''}, features ${caps.features.join(',')}` : 'reference relay: legacy streams, text mode'})`,
        );
        try {
          await client.user(config.my_id);
          add('token', 'ok', 'accepted by the relay');
        } catch (err) {
          const e = toCliError(err);
          add('token', e.exitCode === EXIT.invalidToken ? 'fail' : 'warn', e.message);
        }
      } catch (err) {
        add('relay', 'fail', `${config.base_url}: ${toCliError(err).message}`);
      }
    }
    const running = await daemonStatus(dir);
    const logText = await readTextOrNull(dataPath(dir, 'channelLog'));
    const last = lastChannelLine(logText);
    if (running) {
      const state = String(running.state);
      add(
        'SSE daemon',
        state === 'connected' ? 'ok' : 'warn',
        `pid ${String(running.pid)}, ${state} (mode ${String(running.mode)}) since ${String(running.since)}`,
      );
      // A daemon that keeps polling instead of streaming is a problem, not a blip: messages arrive late
      // and, on a relay that limits streams, something else holds the stream (see SKILL.md, 429).
      const outage = state === 'connected' ? null : outageOf(logText);
      const grace = ctx.values.grace === undefined ? 60 : Number(ctx.values.grace);
      if (!Number.isFinite(grace) || grace < 0) throw usageError('--grace must be a number of seconds ≥ 0');
      if (outage && Date.now() - outage.since >= grace * 1000) {
        const secs = Math.round((Date.now() - outage.since) / 1000);
        const limited = /\b429\b|sse_limit|rate_limited/.test(outage.lastError ?? '');
        add(
          'SSE stream',
          'fail',
          `down for ${secs} s; the daemon polls GET /messages instead (fallback)` +
            (outage.lastError ? `; last error: ${outage.lastError}` : '') +
            (limited
              ? ' — the relay refuses another stream from this host or account: see SKILL.md "SSE 429" (do not stop other accounts\' daemons)'
              : ''),
        );
      }
    } else {
      add('SSE daemon', config ? 'fail' : 'warn', 'not running — start it: openwechat daemon start');
    }
    if (last) {
      const healthy = last.state === 'connected' || last.state === 'recovered';
      add(
        'sse_channel.log',
        healthy || !running ? (healthy ? 'ok' : 'warn') : 'warn',
        `last: ${last.time} ${last.state} ${last.details}`.trim(),
      );
    }
    const failed = checks.filter((c) => c.level === 'fail').length;
    ctx.out.result({ healthy: failed === 0, checks });
    for (const c of checks) ctx.out.say(`${c.level.padEnd(4)}  ${c.name}: ${c.detail}`);
    ctx.out.say(failed ? `${failed} problem(s) found` : 'all checks passed');
    if (failed) ctx.exit = EXIT.failure;
  },
};

export const retentionCmd: Command = {
  usage: 'retention [--days <n>] [--delete]',
  summary: 'report message data older than N days (default 7); deletes only with --delete',
  options: { days: { type: 'string' }, delete: { type: 'boolean' } },
  async run(ctx) {
    const days = ctx.values.days === undefined ? 7 : Number(ctx.values.days);
    if (!Number.isFinite(days) || days < 0) throw usageError('--days must be a number ≥ 0');
    const remove = ctx.values.delete === true;
    let lock = null;
    if (remove) {
      lock = await acquireInstance(ctx.dir, DAEMON_LOCK, () => ({
        pid: process.pid,
        state: 'cli-retention',
      }));
      if (!lock) {
        throw new CliError(
          EXIT.daemonConflict,
          'daemon_running',
          'stop the inbox daemon before deleting (openwechat daemon stop)',
        );
      }
    }
    try {
      const report = await retention(ctx.dir, { days, remove });
      if (remove) await refreshDerived(ctx.dir);
      ctx.out.result({ deleted: remove, ...report });
      const any =
        report.conversations.old + report.inbox_pushed.old + report.sse_channel_log.old + report.files.old;
      ctx.out.say(
        [
          `${remove ? 'Deleted' : 'Older than'} ${days} day(s) (before ${report.cutoff}):`,
          `  conversations.md: ${report.conversations.old} of ${report.conversations.total} lines`,
          `  inbox_pushed.md:  ${report.inbox_pushed.old} of ${report.inbox_pushed.total} entries`,
          `  sse_channel.log:  ${report.sse_channel_log.old} of ${report.sse_channel_log.total} lines`,
          `  files/:           ${report.files.old} of ${report.files.total} files (${report.files.old_bytes} bytes)`,
          remove || !any
            ? ''
            : 'Nothing was deleted. Ask the user first; to delete, run: openwechat retention --delete',
        ]
          .filter(Boolean)
          .join('\n'),
      );
    } finally {
      await lock?.release();
    }
  },
};
