// `npm run bridge`: run the bridge (settings from the environment, optionally loaded from an env file), or
// `npm run bridge -- dead-letters …` to inspect and replay dead letters. See docs/bridge.md.
//
//   npm run bridge -- [--env-file bridge.env]
//   npm run bridge -- [--env-file bridge.env] dead-letters list

import { DEAD_LETTER_USAGE, runDeadLetterCli } from './cli.ts';
import { ConfigError, loadConfig, loadDataDir } from './config.ts';
import { startBridge } from './bridge.ts';

const USAGE = `Usage: openwechat-bridge [--env-file FILE] [dead-letters <command>]
Without a command: run the bridge. Settings come from the environment (see bridge.env.sample);
--env-file loads a file of NAME=value lines first (variables already set win).

${DEAD_LETTER_USAGE}`;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  while (args[0]?.startsWith('--env-file')) {
    const arg = args.shift()!;
    const file = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : args.shift();
    if (!file) {
      console.error(USAGE);
      process.exit(2);
    }
    process.loadEnvFile(file);
  }
  if (args[0] === '--help' || args[0] === '-h') {
    console.log(USAGE);
    return;
  }
  if (args[0] === 'dead-letters') {
    const code = runDeadLetterCli(args.slice(1), loadDataDir(process.env), {
      out: (l) => console.log(l),
      err: (l) => console.error(l),
    });
    process.exitCode = code;
    return;
  }
  if (args.length) {
    console.error(`unknown argument ${args[0]}\n\n${USAGE}`);
    process.exit(2);
  }
  const config = loadConfig(process.env);
  const bridge = await startBridge(config);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    bridge.log.info({ hop: 'shutdown', signal }, 'shutting down');
    bridge.close().then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  if (err instanceof ConfigError) {
    console.error(`configuration error: ${err.message}`);
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
});
