// scripts/sse_inbox.js — the SSE inbox daemon in the foreground (see daemon.ts).
//   node scripts/sse_inbox.js [--legacy] [--data-dir DIR]
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { dataDir } from '../data/paths.ts';
import { daemonOptionsFromEnv, EXIT, runDaemon } from '../daemon.ts';

// Whatever the skill creates (data folder, config.json, chat files, downloads) is private to this user.
process.umask(0o077);

let values: { legacy?: boolean; 'data-dir'?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      legacy: { type: 'boolean' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }));
} catch (err) {
  process.stderr.write(
    `${(err as Error).message}\nusage: node scripts/sse_inbox.js [--legacy] [--data-dir DIR]\n`,
  );
  process.exit(EXIT.usage);
}
if (values.help) {
  process.stdout.write(
    'usage: node scripts/sse_inbox.js [--legacy] [--data-dir DIR]\n' +
      '  Keeps the SSE channel to your relay open and saves every message in the data folder.\n' +
      '  --legacy  behave as with the reference relay (legacy stream, text parsing, /messages fallback)\n',
  );
  process.exit(EXIT.ok);
}
const env = daemonOptionsFromEnv(process.env);
process.exitCode = await runDaemon({
  ...env,
  dataDir: values['data-dir'] ? resolve(values['data-dir']) : dataDir(),
  forceLegacy: values.legacy === true || env.forceLegacy === true,
});
