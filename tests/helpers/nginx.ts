// Runs the project's reverse proxy for tests: deploy/nginx/openwechat.conf.template (the file compose.yaml
// and SERVER.md use) rendered the way the nginx image and envsubst render it, inside a minimal main
// configuration whose pid, logs and temp folders are in a temp folder. nginx is a child process
// (`daemon off`) in its own process group, so stopping it also stops its workers.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const NGINX_TEMPLATE = 'deploy/nginx/openwechat.conf.template';

/** Debian's nginx binary, or null. */
export function nginxBinary(): string | null {
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx']) if (existsSync(p)) return p;
  return null;
}

/**
 * envsubst with a list of variables, as the nginx image's entrypoint runs it: `${NAME}` is replaced for
 * the names given, everything else (nginx's own `$host`, …) is left alone. A `${OWC_…}` left over is an
 * error: the template asked for a value the caller did not give.
 */
export function renderTemplate(text: string, vars: Record<string, string>): string {
  const out = text.replace(/\$\{(\w+)\}/g, (whole, name: string) => vars[name] ?? whole);
  const left = /\$\{(OWC_\w+)\}/.exec(out);
  if (left) throw new Error(`template variable ${left[1]} has no value`);
  return out;
}

export function readTemplate(): string {
  return readFileSync(join(ROOT, NGINX_TEMPLATE), 'utf8');
}

export interface NginxProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** nginx's error log so far. */
  errorLog(): Promise<string>;
  /** SIGTERM (fast shutdown), then SIGKILL to the whole group if it lingers; removes the temp folder. */
  stop(): Promise<void>;
}

const running = new Set<number>();

process.once('exit', () => {
  for (const pid of running) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * `nginx -t` on a rendered configuration: null when valid, else nginx's complaint. `httpExtra` is
 * included at `http` level before it (a TLS certificate file, say); `$DIR` in it is the temp folder.
 */
export async function checkConfig(
  vars: Record<string, string>,
  httpExtra?: { text: string; files?: Record<string, string> },
): Promise<string | null> {
  const dir = await mkdtemp(join(tmpdir(), 'owc-nginx-t-'));
  try {
    for (const [name, content] of Object.entries(httpExtra?.files ?? {})) {
      await writeFile(join(dir, name), content);
    }
    const conf = await writeMainConf(dir, vars, httpExtra?.text.replaceAll('$DIR', dir));
    const r = spawnSync(nginxBinary()!, ['-t', '-q', '-p', dir, '-e', join(dir, 'error.log'), '-c', conf], {
      encoding: 'utf8',
    });
    return r.status === 0 ? null : `${r.stderr}${r.stdout}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function writeMainConf(dir: string, vars: Record<string, string>, httpExtra = ''): Promise<string> {
  await writeFile(join(dir, 'openwechat.conf'), renderTemplate(readTemplate(), vars));
  const conf = join(dir, 'nginx.conf');
  // What a distribution's nginx.conf provides around conf.d/*.conf, with every path in the temp folder.
  // As root, workers run as an unprivileged user (Debian's www-data), as they do in production.
  const user = process.getuid?.() === 0 ? 'user www-data;\n' : '';
  await writeFile(
    conf,
    `${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 2048; }
http {
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
${httpExtra}
    include ${dir}/openwechat.conf;
}
`,
  );
  return conf;
}

/**
 * Starts nginx with the project's template in front of `servers` (`host:port` each, with the given
 * `server` parameters), listening on a free loopback port; resolves once it accepts connections.
 */
export async function startNginx(opts: { servers: string[]; serverParams?: string }): Promise<NginxProcess> {
  const bin = nginxBinary();
  if (!bin) throw new Error('nginx is not installed (apt-get install nginx)');
  const dir = await mkdtemp(join(tmpdir(), 'owc-nginx-'));
  const port = await freePort();
  const params = opts.serverParams ? ` ${opts.serverParams}` : '';
  const conf = await writeMainConf(dir, {
    OWC_LISTEN: `127.0.0.1:${port}`,
    OWC_RELAY_SERVERS: opts.servers.map((s) => `server ${s}${params};`).join(' '),
  });
  const child = spawn(bin, ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf, '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  running.add(child.pid!);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child.pid!));
  const errorLog = () => readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 5000);
      await exited;
      clearTimeout(timer);
    }
    // Workers of a master that was killed hard would linger: take the whole group down.
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone
    }
    running.delete(child.pid!);
    await rm(dir, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = await errorLog();
      await stop();
      throw new Error(`nginx exited at start:\n${stderr}\n${log}`);
    }
    try {
      // /livez through the proxy: nginx listens and reaches a relay.
      const r = await fetch(`${url}/livez`, { signal: AbortSignal.timeout(2000) });
      await r.text();
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const log = await errorLog();
      await stop();
      throw new Error(`nginx did not answer /livez within 15 s:\n${stderr}\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, port, child, errorLog, stop };
}
