// `openwechat keys`: end-to-end encryption keys (docs/e2e.md). Shows this account's fingerprint, the
// pinned peers, a peer's safety number; accepts a peer's changed key; rotates or publishes ours; sets the
// policy in config.json. Private keys stay in <data folder>/e2e/ and are never printed.

import { E2E_POLICIES, type E2eSession } from '@openwechat/client';
import { loadConfig, saveConfig } from '../data/config.ts';
import { e2eSession, parsePolicy } from '../data/e2e.ts';
import { usageError } from '../output.ts';
import { configured, e2eFor, intArg, type Command, type Ctx } from './common.ts';

/**
 * The session under the policy in force. With the policy off there is none: generating and publishing
 * keys then would make peers encrypt to an account whose daemon does not decrypt.
 */
async function session(ctx: Ctx): Promise<E2eSession> {
  const { config, client } = await configured(ctx);
  const s = await e2eFor(ctx, config, client);
  if (!s) {
    throw usageError(
      'end-to-end encryption is off for this account',
      'Turn it on first: openwechat keys policy preferred (or required)',
    );
  }
  await s.init();
  return s;
}

export const keys: Command = {
  usage:
    'keys [show | list | safety <id> | accept <id> | rotate | publish | policy <off|preferred|required>]',
  summary: 'end-to-end encryption: my fingerprint, pinned peers, safety numbers, accept a changed key',
  async run(ctx) {
    const [action = 'show', arg] = ctx.args;
    switch (action) {
      case 'show': {
        const s = await session(ctx);
        const fingerprint = await s.fingerprint();
        ctx.out.result({ user_id: s.userId, fingerprint, policy: s.policy });
        ctx.out.say(`my fingerprint (#${s.userId}): ${fingerprint}\npolicy: ${s.policy}`);
        return;
      }
      case 'list': {
        const s = await session(ctx);
        const peers = await s.peers();
        ctx.out.result({
          peers: peers.map((p) => ({
            id: p.userId,
            fingerprint: p.fingerprint,
            version: p.version,
            pinned_at: new Date(p.pinnedAt).toISOString(),
            changed_key_pending: p.pending ? p.pending.fingerprint : null,
          })),
        });
        if (!peers.length) ctx.out.say('no peer keys pinned yet');
        for (const p of peers) {
          ctx.out.say(
            `#${p.userId} ${p.fingerprint}${p.pending ? `  KEY CHANGED → ${p.pending.fingerprint} (refused until: openwechat keys accept ${p.userId})` : ''}`,
          );
        }
        return;
      }
      case 'safety': {
        const id = intArg(arg, 'user id');
        const s = await session(ctx);
        const number = await s.safetyNumber(id);
        ctx.out.result({ id, safety_number: number });
        ctx.out.say(`safety number with #${id} (compare it with them out of band):\n${number}`);
        return;
      }
      case 'accept': {
        const id = intArg(arg, 'user id');
        const s = await session(ctx);
        const p = await s.accept(id);
        const number = await s.safetyNumber(id);
        ctx.out.result({ id, fingerprint: p.fingerprint, safety_number: number });
        ctx.out.say(`accepted the key of #${id}: ${p.fingerprint}\nsafety number: ${number}`);
        return;
      }
      case 'rotate': {
        const s = await session(ctx);
        const r = await s.rotate();
        ctx.out.result({ version: r.version });
        ctx.out.say(`new encryption key published (version ${r.version}); the identity key is unchanged`);
        return;
      }
      case 'publish': {
        const s = await session(ctx);
        const r = await s.publish();
        ctx.out.result({ published: r.published });
        ctx.out.say(r.published ? 'keys published' : 'the relay already has the current keys');
        return;
      }
      case 'policy': {
        const policy = parsePolicy(arg, 'keys policy');
        const config = await loadConfig(ctx.dir);
        await saveConfig(ctx.dir, { ...config, e2e: policy });
        if (policy !== 'off') {
          // Generate and publish now, so peers can encrypt to this account from the next message on.
          const { client } = await configured(ctx);
          await e2eSession(ctx.dir, { ...config, e2e: policy }, client, policy)!.init();
        }
        ctx.out.result({ policy });
        ctx.out.say(`end-to-end encryption: ${policy}`);
        return;
      }
      default:
        throw usageError(
          `unknown keys action "${action}" (${['show', 'list', 'safety', 'accept', 'rotate', 'publish', 'policy'].join(', ')}; policies: ${E2E_POLICIES.join(', ')})`,
        );
    }
  },
};
