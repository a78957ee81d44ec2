// One install at a time per cache folder. Two test runs installing into the same cache at once break each
// other (npm prunes what the other run added); with this the first installs and the others wait for it,
// then find the cache complete. The lock is the skill's (a socket the kernel releases when its holder
// dies, even by SIGKILL), so an interrupted install never leaves the cache locked.
import { withLock } from '../../packages/skill/src/data/lock.ts';

/** npm installs of OpenClaw or an agent runtime take up to a few minutes on a busy machine. */
const INSTALL_LOCK_MS = 15 * 60_000;

export function withInstallLock<T>(cacheDir: string, install: () => Promise<T>): Promise<T> {
  return withLock(cacheDir, 'install', install, INSTALL_LOCK_MS);
}
