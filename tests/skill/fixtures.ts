// The skill suites' shared set-up: the built skill in a temp workspace, the real relay (and, when asked,
// the reference stand-in in front of it) for the whole file; every script started is killed at the end
// (and after each test when asked). Hooks run in reverse on the way out: scripts, proxy, relay, workspace.

import { afterAll, afterEach } from 'vitest';
import { suiteFixture, suiteRelay } from '../helpers/fixtures.ts';
import type { TestRelay, TestRelayOptions } from '../helpers/relay.ts';
import { buildWorkspace, killAll, type Workspace } from './helpers.ts';
import { startReferenceProxy, type ReferenceProxy } from './reference-proxy.ts';

/** The built skill in a temp folder (prefix names it), removed after the file's tests. */
export function suiteWorkspace(prefix: string): Workspace {
  return suiteFixture(
    'the skill workspace',
    () => buildWorkspace(prefix),
    (ws) => ws.cleanup(),
  );
}

export interface SkillSuite {
  ws: Workspace;
  relay: TestRelay;
  /** The reference stand-in in front of `relay` (only with `proxy: true`). */
  proxy: ReferenceProxy;
}

export function skillSuite(
  prefix: string,
  relayOptions: TestRelayOptions,
  options: { proxy?: boolean; killAfterEach?: boolean } = {},
): SkillSuite {
  const ws = suiteWorkspace(prefix);
  const relay = suiteRelay(relayOptions);
  const proxy = options.proxy
    ? suiteFixture(
        'the reference proxy',
        () => startReferenceProxy(relay.url),
        (p) => p.close(),
      )
    : (new Proxy({}, { get: () => failNoProxy() }) as ReferenceProxy);
  if (options.killAfterEach) afterEach(killAll);
  afterAll(killAll);
  return { ws, relay, proxy };
}

function failNoProxy(): never {
  throw new Error('this suite has no reference proxy (skillSuite(…, { proxy: true }))');
}
