// The E2E keys command: `npm run bridge -- keys [list | safety <user id> | accept <user id>]`. It works on
// the bot's key folder (BRIDGE_DATA_DIR/e2e/) with the bridge's own settings (relay, token, BRIDGE_E2E).
// The running bridge holds the pins in memory: after `accept`, restart it to apply.

import { join } from 'node:path';
import { E2eError, E2eSession, FileKeyStore } from '@openwechat/client';
import type { CliIo } from './cli.ts';
import type { BridgeConfig } from './config.ts';
import { createRelayClient } from './relay-client.ts';

export const KEYS_USAGE = `Usage: openwechat-bridge keys [command]     (needs BRIDGE_E2E=preferred or required)
  (none) | list            the bot's fingerprint and the pinned peers (a refused key change is marked)
  safety <user id>         the safety number with that user (compare it with them out of band)
  accept <user id>         accept the user's changed identity key; then restart the bridge`;

/** Runs one keys command; returns the process exit code. */
export async function runKeysCli(args: string[], config: BridgeConfig, io: CliIo): Promise<number> {
  const [command = 'list', arg] = args;
  if (command === '--help' || command === 'help') {
    io.out(KEYS_USAGE);
    return 0;
  }
  if (config.e2e === 'off') {
    io.err('BRIDGE_E2E is off: the bridge has no end-to-end keys in use (set it to preferred or required)');
    return 2;
  }
  const needsPeer = command === 'safety' || command === 'accept';
  if (!['list', 'safety', 'accept'].includes(command) || (needsPeer && !/^\d+$/.test(arg ?? ''))) {
    io.err(`${needsPeer ? `${command} needs a user id` : `unknown command ${command}`}\n\n${KEYS_USAGE}`);
    return 2;
  }
  const store = new FileKeyStore(join(config.dataDir, 'e2e'));
  // The bot's id is the one its keys were made for (by the running bridge, once its stream connected).
  const identity = await store.loadIdentity();
  if (!identity) {
    io.err(`no keys in ${join(config.dataDir, 'e2e')} yet: start the bridge with BRIDGE_E2E first`);
    return 1;
  }
  const e2e = new E2eSession({
    client: createRelayClient(config.relayBaseUrl, config.relayToken),
    userId: identity.userId,
    store,
    policy: config.e2e,
  });
  try {
    if (command === 'list') {
      io.out(
        `bot user ${identity.userId}, fingerprint ${await e2e.fingerprint()} (BRIDGE_E2E=${config.e2e})`,
      );
      for (const p of await e2e.peers()) {
        io.out(
          `user ${p.userId}: ${p.fingerprint}` +
            (p.pending
              ? `  KEY CHANGED to ${p.pending.fingerprint}: refused until \`keys accept ${p.userId}\``
              : ''),
        );
      }
    } else if (command === 'safety') {
      io.out(await e2e.safetyNumber(Number(arg)));
    } else {
      const p = await e2e.accept(Number(arg));
      io.out(`accepted user ${p.userId}'s key ${p.fingerprint}; restart the bridge to apply`);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof E2eError)) throw err;
    io.err(`${err.code}: ${err.message}`);
    return 1;
  }
}
