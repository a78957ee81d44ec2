// `npm start`: run the relay. Settings: flags > environment > --config file > defaults (docs/config.md).

import { parseArgs } from 'node:util';
import { closeOnSignals, runService } from '@openwechat/config';
import { loadConfig, SETTING_FLAG_USAGE, SETTING_FLAGS, settingFlags } from './config.ts';
import { createRelay } from './app.ts';

const USAGE = `Usage: openwechat-relay [--config FILE] [--<setting> VALUE ...]
Settings (flag form of the environment names, e.g. --port 8000 --data-dir ./data):
${SETTING_FLAG_USAGE}`;

/** A bind failure the operator fixes with a setting (not a bug), in one line; null for anything else. */
function listenProblem(err: unknown, host: string, port: number): string | null {
  const where = `${host}:${port}`;
  switch ((err as NodeJS.ErrnoException | null)?.code) {
    case 'EADDRINUSE':
      return `${where} is already in use (another relay?); pick another port with --port or PORT`;
    case 'EACCES':
      return `no permission to bind ${where} (ports below 1024 need privileges); pick another port with --port or PORT`;
    case 'EADDRNOTAVAIL':
      return `${host} is not an address of this machine; set --host or HOST`;
    default:
      return null;
  }
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      options: { ...SETTING_FLAGS, config: { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return;
  }
  const flags = settingFlags(parsed.values);
  const file = (parsed.values.config as string | undefined) ?? process.env.RELAY_CONFIG;
  const config = loadConfig({ flags, env: process.env, file });
  const relay = await createRelay(config);
  let url: string;
  try {
    url = await relay.listen();
  } catch (err) {
    const problem = listenProblem(err, config.host, config.port);
    if (!problem) throw err;
    // Like a configuration error: one line naming the setting to change, exit 2, the store closed.
    await relay.close().catch(() => undefined);
    console.error(`cannot listen: ${problem}`);
    process.exit(2);
  }
  console.log(`openwechat relay listening on ${url} (data: ${config.dataDir})`);

  closeOnSignals(
    () => relay.close(),
    (signal) => console.log(`${signal}: shutting down`),
  );
}

runService(main);
