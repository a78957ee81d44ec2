// A private PostgreSQL cluster for tests that must stop or restart the server itself (the machine's shared
// server at 127.0.0.1:5432 is never touched): `initdb` into a temp folder, `pg_ctl start` on a free
// loopback port with its unix socket in that folder, trust authentication, and `pg_ctl restart/stop`.
// PostgreSQL refuses to run as root, and CI runs as root: then every command runs as the `postgres`
// system user (runuser), which owns the folder. destroy() stops the server and removes the folder; a
// last-resort immediate stop runs when the test worker exits.

import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './process.ts';

const run = promisify(execFile);

/** The newest installed PostgreSQL's bin folder with initdb and pg_ctl (Debian layout), or null. */
export function pgBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0]!, 'bin') : null;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** Whether a private cluster can be made here (binaries present; as root, a `postgres` user). */
export function pgClusterAvailable(): boolean {
  if (!pgBinDir()) return false;
  if (!isRoot()) return true;
  return existsSync('/usr/sbin/runuser') && postgresIds() !== null;
}

function postgresIds(): { uid: number; gid: number } | null {
  const r = spawnSync('id', ['postgres'], { encoding: 'utf8' });
  const uid = /uid=(\d+)/.exec(r.stdout ?? '');
  const gid = /gid=(\d+)/.exec(r.stdout ?? '');
  return r.status === 0 && uid && gid ? { uid: Number(uid[1]), gid: Number(gid[1]) } : null;
}

export interface PgCluster {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust authentication, loopback only). */
  url: string;
  dir: string;
  /** `pg_ctl restart -m <mode>`; resolves when the server accepts connections again. */
  restart(mode: 'fast' | 'immediate'): Promise<void>;
  /** `pg_ctl stop -m <mode>`; resolves when the server is down. */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again (same port and options); resolves when it accepts connections. */
  start(): Promise<void>;
  /** Stops the server (if running) and removes its folder. */
  destroy(): Promise<void>;
  /** The server's log so far (for failure messages). */
  log(): Promise<string>;
}

const clusters = new Set<{ bin: string; dir: string; data: string }>();

process.once('exit', () => {
  for (const c of clusters) {
    spawnSync(...asPostgres(join(c.bin, 'pg_ctl'), ['stop', '-D', c.data, '-m', 'immediate']));
    rmSync(c.dir, { recursive: true, force: true });
  }
});

function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return isRoot() ? ['/usr/sbin/runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

async function pgCmd(bin: string, name: string, args: string[]): Promise<string> {
  const [cmd, argv] = asPostgres(join(bin, name), args);
  try {
    const { stdout, stderr } = await run(cmd, argv, { timeout: 90_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${name} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

export async function startPgCluster(): Promise<PgCluster> {
  const bin = pgBinDir();
  if (!bin) throw new Error('no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql');
  const dir = await mkdtemp(join(tmpdir(), 'owc-pgcluster-'));
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  if (isRoot()) {
    const ids = postgresIds();
    if (!ids) throw new Error('running as root, but there is no `postgres` user to run PostgreSQL as');
    chownSync(dir, ids.uid, ids.gid);
  }
  const entry = { bin, dir, data };
  try {
    await pgCmd(bin, 'initdb', [
      '-D',
      data,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    const port = await freePort();
    // Loopback TCP and a socket in the temp folder only; pg_ctl restart reuses these options.
    const opts = `-c port=${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c max_connections=100`;
    clusters.add(entry);
    const start = () =>
      pgCmd(bin, 'pg_ctl', ['start', '-D', data, '-l', logFile, '-w', '-t', '60', '-o', opts]);
    await start();
    const log = () => readFile(logFile, 'utf8').catch(() => '');
    return {
      port,
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      dir,
      log,
      async restart(mode) {
        await pgCmd(bin, 'pg_ctl', ['restart', '-D', data, '-l', logFile, '-m', mode, '-w', '-t', '60']);
      },
      async stop(mode) {
        await pgCmd(bin, 'pg_ctl', ['stop', '-D', data, '-m', mode, '-w', '-t', '60']);
      },
      async start() {
        await start();
      },
      async destroy() {
        if (clusters.delete(entry)) {
          await pgCmd(bin, 'pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '30']).catch(
            () => undefined,
          );
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (clusters.delete(entry)) {
      await pgCmd(bin, 'pg_ctl', ['stop', '-D', data, '-m', 'immediate']).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
