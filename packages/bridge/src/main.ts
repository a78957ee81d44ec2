// `npm run bridge`: run the bridge, or `npm run bridge -- dead-letters …` to inspect and replay dead
// letters. Settings: flag > environment > --env-file > default (docs/bridge.md).
//
//   npm run bridge -- [--env-file bridge.env] [--bridge-port 8089 ...]
//   npm run bridge -- [--env-file bridge.env] dead-letters list

import { parseArgs } from 'node:util';
import { DEAD_LETTER_USAGE, runDeadLetterCli } from './cli.ts';
import { KEYS_USAGE, runKeysCli } from './keys-cli.ts';
import { closeOnSignals, runService } from '@openwechat/config';
import {
  loadBridgeSettings,
  loadDataDir,
  readableByOthers,
  SETTING_FLAG_USAGE,
  SETTING_FLAGS,
  settingFlags,
  type BridgeSources,
} from './config.ts';
import { startBridge } from './bridge.ts';

const USAGE = `Usage: openwechat-bridge [--env-file FILE] [--<setting> VALUE ...] [dead-letters|keys <command>]
Without a command: run the bridge. Settings come from flags, the environment, then --env-file, a file of
NAME=value lines (see bridge.env.sample). Secrets have no flag (a command line is visible to other users):
${SETTING_FLAG_USAGE}

${DEAD_LETTER_USAGE}

${KEYS_USAGE}`;

/** The options before the command; the command's own arguments follow it. */
function splitArgs(args: string[]): { options: string[]; command: string[] } {
  let i = 0;
  while (i < args.length && args[i]!.startsWith('-')) {
    const a = args[i]!;
    i += a.includes('=') || a === '--help' || a === '-h' ? 1 : 2;
  }
  return { options: args.slice(0, i), command: args.slice(i) };
}

function usageError(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { options, command } = splitArgs(process.argv.slice(2));
  let parsed;
  try {
    parsed = parseArgs({
      args: options,
      options: {
        ...SETTING_FLAGS,
        'env-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (err) {
    usageError((err as Error).message);
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return;
  }
  const envFile = parsed.values['env-file'] as string | undefined;
  const sources: BridgeSources = { flags: settingFlags(parsed.values), env: process.env, envFile };
  if (command[0] === 'dead-letters') {
    const code = runDeadLetterCli(command.slice(1), loadDataDir(sources), {
      out: (l) => console.log(l),
      err: (l) => console.error(l),
    });
    process.exitCode = code;
    return;
  }
  if (command[0] === 'keys') {
    const { config } = loadBridgeSettings(sources);
    process.exitCode = await runKeysCli(command.slice(1), config, {
      out: (l) => console.log(l),
      err: (l) => console.error(l),
    });
    return;
  }
  if (command.length) usageError(`unknown argument ${command[0]}`);
  const { config, warnings } = loadBridgeSettings(sources);
  const bridge = await startBridge(config);
  for (const warning of warnings) bridge.log.warn({ hop: 'startup' }, `configuration: ${warning}`);
  if (envFile && readableByOthers(envFile))
    bridge.log.warn(
      { hop: 'startup', path: envFile },
      'the env file holds secrets and is readable by others: chmod 600 it',
    );

  closeOnSignals(
    () => bridge.close(),
    (signal) => bridge.log.info({ hop: 'shutdown', signal }, 'shutting down'),
  );
}

runService(main);
