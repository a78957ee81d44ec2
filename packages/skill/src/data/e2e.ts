// End-to-end encryption for the skill (docs/e2e.md): which policy applies, and the E2eSession over the
// account's RelayClient with its keys in `<data folder>/e2e/` (0700, files 0600; the UI serves only its
// whitelisted files, never this folder). Policy: --e2e flag > OPENWECHAT_E2E > config.json `e2e` > off,
// so a data folder that never opted in behaves exactly as before.

import { join } from 'node:path';
import { E2E_POLICIES, E2eSession, type E2ePolicy, type RelayClient } from '@openwechat/client';
import type { SkillConfig } from './config.ts';

export const E2E_DIR = 'e2e';

export class E2ePolicyProblem extends Error {}

export function parsePolicy(raw: unknown, where: string): E2ePolicy {
  if (typeof raw === 'string' && (E2E_POLICIES as readonly string[]).includes(raw)) return raw as E2ePolicy;
  throw new E2ePolicyProblem(
    `${where}: e2e must be one of ${E2E_POLICIES.join(', ')}, got ${JSON.stringify(raw)}`,
  );
}

export function e2ePolicy(
  config: SkillConfig,
  opts: { flag?: string | undefined; env?: NodeJS.ProcessEnv; legacy?: boolean },
): E2ePolicy {
  // The reference relay has no key directory and text mode carries no ciphertext.
  if (opts.legacy) return 'off';
  if (opts.flag !== undefined) return parsePolicy(opts.flag, '--e2e');
  const env = opts.env?.OPENWECHAT_E2E;
  if (env) return parsePolicy(env, 'OPENWECHAT_E2E');
  if (config.e2e !== undefined) return parsePolicy(config.e2e, 'config.json');
  return 'off';
}

/** The session for this account, or null when the policy is off. */
export function e2eSession(
  dir: string,
  config: SkillConfig,
  client: RelayClient,
  policy: E2ePolicy,
): E2eSession | null {
  if (policy === 'off') return null;
  return new E2eSession({ client, userId: config.my_id, store: join(dir, E2E_DIR), policy });
}
