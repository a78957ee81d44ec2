// `openwechat` (scripts/openwechat.js): one command per relay endpoint plus the local chores (daemon,
// doctor, retention, UI). Human-readable output by default, `--json` for machines; exit codes in EXIT
// (daemon.ts). Every command works against our relay and the reference (`--legacy` forces the latter's
// behaviour); results that change local state are written to the data folder before the command returns.
// The commands live in cli/, grouped by concern; this file holds the one command table and the dispatcher.

import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { exists } from './data/atomic.ts';
import { migrateDataDir } from './data/migrate.ts';
import { dataDir as defaultDataDir } from './data/paths.ts';
import { EXIT } from './daemon.ts';
import { makeOut, toCliError, usageError } from './output.ts';
import { SKILL_VERSION } from './version.ts';
import { health, register, statusCmd, whoami } from './cli/account.ts';
import { GLOBAL_OPTIONS, str, type Command, type Ctx } from './cli/common.ts';
import { group } from './cli/groups.ts';
import { doctor, retentionCmd } from './cli/maintenance.ts';
import { keys } from './cli/keys.ts';
import { file, inbox, send, sendFile } from './cli/messages.ts';
import { sent } from './cli/sent.ts';
import { blockCommand, contacts, friends, homepage, user, users } from './cli/people.ts';
import { daemon, ui } from './cli/processes.ts';

const COMMANDS: Record<string, Command> = {
  register,
  send,
  'send-file': sendFile,
  sent,
  group,
  inbox,
  friends,
  users,
  discover: users,
  user,
  status: statusCmd,
  block: blockCommand('block'),
  unblock: blockCommand('unblock'),
  homepage,
  file,
  keys,
  health,
  contacts,
  whoami,
  doctor,
  retention: retentionCmd,
  daemon,
  ui,
};

export function usage(): string {
  const seen = new Set<Command>();
  const lines = [
    `openwechat ${SKILL_VERSION} — openwechat-claw IM client`,
    '',
    'Usage: node scripts/openwechat.js <command> [options]',
    '',
  ];
  for (const c of Object.values(COMMANDS)) {
    if (seen.has(c)) continue;
    seen.add(c);
    lines.push(`  ${c.usage}`, `      ${c.summary}`);
  }
  lines.push(
    '',
    'Global options: --json (machine output)  --data-dir <dir> (default ../openwechat_im_client, env OPENWECHAT_DATA_DIR)',
    '                --legacy (behave as with the reference relay: text mode, legacy stream, read-and-clear inbox)',
    '                --e2e off|preferred|required (end-to-end encryption for this command; default: config.json e2e, else off)',
    'Exit codes: 0 ok, 1 failure, 2 usage, 3 not registered/config invalid, 4 refused by the relay, 5 invalid token,',
    '            6 relay unreachable/unexpected answer, 7 rate limited, 8 daemon running/not running, 9 data folder problem',
  );
  return lines.join('\n');
}

/** Runs one CLI invocation; returns the exit code (never calls process.exit). */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const name = argv[0];
  const wantsJson = argv.includes('--json');
  const out0 = makeOut(wantsJson);
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(`${usage()}\n`);
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${SKILL_VERSION}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    out0.fail(usageError(`unknown command "${name}"`, 'Run: node scripts/openwechat.js help'));
    return EXIT.usage;
  }
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv.slice(1),
      options: { ...GLOBAL_OPTIONS, ...(command.options ?? {}) },
      allowPositionals: true,
      strict: true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (err) {
    out0.fail(usageError((err as Error).message, `usage: ${command.usage}`));
    return EXIT.usage;
  }
  const out = makeOut(values.json === true);
  if (values.help) {
    process.stdout.write(`usage: ${command.usage}\n  ${command.summary}\n`);
    return EXIT.ok;
  }
  const dir = str(values['data-dir']) ? resolve(str(values['data-dir'])!) : defaultDataDir(env);
  const ctx: Ctx = {
    dir,
    out,
    legacy: values.legacy === true || /^(1|true|yes|on)$/i.test(env.OPENWECHAT_FORCE_LEGACY ?? ''),
    env,
    values,
    args: positionals,
    exit: EXIT.ok,
  };
  try {
    if (!['ui', 'help'].includes(name) && !(name === 'daemon' && positionals[0] === 'run')) {
      // Older data folders are brought up to date first (the daemon does this itself).
      if (await exists(dir)) await migrateDataDir(dir);
    }
    await command.run(ctx);
    out.flush(ctx.exit === EXIT.ok);
    return ctx.exit;
  } catch (err) {
    const e = toCliError(err);
    out.fail(e);
    return e.exitCode;
  }
}
