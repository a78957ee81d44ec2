// Where things are. The data folder is `../openwechat_im_client` next to the skill folder (the guide's
// fixed path policy: an upgrade replaces the skill folder and never touches the data), computed from this
// script's own location. OPENWECHAT_DATA_DIR overrides it (tests, unusual layouts).
//
// Bundled (scripts/*.js in the skill folder): skill root = the parent of scripts/.
// From source (tsx): the skill root is the build output, packages/skill/dist/openwechat-im-client, so
// source runs and the built skill share one data folder (dist/ is git-ignored).

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

declare const __OWC_BUNDLED__: boolean | undefined;

/** True inside the built skill's scripts (esbuild defines the constant). */
export const BUNDLED: boolean = typeof __OWC_BUNDLED__ !== 'undefined' && __OWC_BUNDLED__ === true;

export const SKILL_DIR_NAME = 'openwechat-im-client';
export const DATA_DIR_NAME = 'openwechat_im_client';

/** Folder of the running script: scripts/ when bundled, src/data/ from source. */
function hereDir(): string {
  return dirname(fileURLToPath(import.meta.url));
}

export function skillRoot(): string {
  if (BUNDLED) return resolve(hereDir(), '..');
  // src/data → packages/skill
  return resolve(hereDir(), '..', '..', 'dist', SKILL_DIR_NAME);
}

/** packages/skill when running from source; null in the built skill. */
function sourceRoot(): string | null {
  return BUNDLED ? null : resolve(hereDir(), '..', '..');
}

export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.OPENWECHAT_DATA_DIR;
  if (override && override.trim() !== '') return resolve(override);
  return resolve(skillRoot(), '..', DATA_DIR_NAME);
}

/** The data files (names fixed: the UI, OpenClaw and older skill versions read them). */
export const FILES = {
  config: 'config.json',
  profile: 'profile.json',
  contacts: 'contacts.json',
  conversations: 'conversations.md',
  /** `<message id> <line key>` per stored message: ids for dedup, since conversations.md lines carry none. */
  conversationIds: 'conversations.idx',
  /** The relay ids of what this user sent and their delivery receipts (sent.ts). */
  sentIds: 'sent.idx',
  /** Ignores everything in the data folder (config.json holds the token; it may sit in a git workspace). */
  gitignore: '.gitignore',
  /** The demo UI server started in the background (`ui start`). */
  uiLock: 'serve_ui.lock',
  uiOut: 'serve_ui.out.log',
  inboxPushed: 'inbox_pushed.md',
  channelLog: 'sse_channel.log',
  stats: 'stats.json',
  snapshot: 'context_snapshot.json',
  cursor: 'cursor.json',
  /** The groups this user belongs to, as the relay last listed them (refreshed by the daemon and the CLI). */
  groups: 'groups.json',
  /** Human-readable record of the running daemon (the exclusion itself is a socket, see lock.ts). */
  daemonLock: 'sse_inbox.lock',
  /** stdout/stderr of a daemon started in the background. */
  daemonOut: 'sse_inbox.out.log',
  files: 'files',
  migrations: 'migrations',
} as const;

export function dataPath(dir: string, name: keyof typeof FILES): string {
  return join(dir, FILES[name]);
}

/** How to start one of the skill's scripts with the current node (bundled .js, or .ts through tsx). */
export function scriptCommand(name: 'sse_inbox' | 'openwechat' | 'serve_ui' | 'send'): string[] {
  if (BUNDLED) return [join(skillRoot(), 'scripts', `${name}.js`)];
  const src = sourceRoot()!;
  const file =
    name === 'serve_ui' ? join(src, 'src', 'ui', 'serve_ui.ts') : join(src, 'src', 'bin', `${name}.ts`);
  // tsx's loader by absolute URL, so the child needs no particular working directory.
  return ['--import', import.meta.resolve('tsx'), file];
}
