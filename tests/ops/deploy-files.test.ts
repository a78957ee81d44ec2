// The deployment files, checked by real parsers since no Docker engine or systemd manager runs here:
// the Dockerfile (dockerfile-ast), compose.yaml (yaml) and its nginx proxy (the one template, also checked
// by `nginx -t` when nginx is installed), the systemd units
// (systemd-analyze verify, when installed), and the docs against the config schema. The systemd unit's
// exact command line is then run to show the relay starts the way the unit starts it.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { SETTING_NAMES } from '../../packages/relay/src/config.ts';
import { checkConfig, NGINX_TEMPLATE, nginxBinary, readTemplate, renderTemplate } from '../helpers/nginx.ts';
import { freePort } from '../helpers/process.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

describe('Dockerfile', () => {
  const doc = DockerfileParser.parse(read('Dockerfile'));
  const instructions = doc.getInstructions();
  const froms = doc.getFROMs();
  const last = (kw: string) =>
    instructions.filter(
      (i) => i.getKeyword() === kw && i.getRange().start.line > froms.at(-1)!.getRange().start.line,
    );

  it('is multi-stage, and every COPY --from names an earlier stage', () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    const stages = froms.map((f) => f.getBuildStage()).filter(Boolean);
    for (const copy of doc.getCOPYs()) {
      const from = copy.getFromFlag()?.getValue();
      if (from) expect(stages).toContain(from);
    }
  });

  it('is on Node 24 in every stage', () => {
    expect(froms.map((f) => f.getImageName() + ':' + f.getImageTag())).toEqual(
      froms.map(() => 'node:24-bookworm-slim'),
    );
  });

  it('runs as a non-root user, with a healthcheck, the relay port and SIGTERM', () => {
    const users = last('USER').map((u) => u.getArgumentsContent());
    expect(users).toHaveLength(1);
    expect(users[0]).not.toMatch(/^(root|0)$/);
    expect(last('HEALTHCHECK')).toHaveLength(1);
    expect(last('HEALTHCHECK')[0]!.getArgumentsContent()).toContain('/readyz');
    expect(last('EXPOSE').map((e) => e.getArgumentsContent())).toEqual(['8000']);
    // The bundle, run by node directly (exec form): no TypeScript loader, and SIGTERM reaches the relay.
    expect(last('CMD')[0]!.getArgumentsContent()).toBe('["node", "packages/relay/dist/main.js"]');
    expect(read('Dockerfile')).not.toMatch(/\btsx\b/);
  });

  it('copies only files that exist, and the build stage has no dev dependencies in the image', () => {
    for (const copy of doc.getCOPYs()) {
      if (copy.getFromFlag()) continue;
      const args = copy.getArguments().map((a) => a.getValue());
      for (const src of args.slice(0, -1)) expect(existsSync(join(ROOT, src)), src).toBe(true);
    }
    expect(read('Dockerfile')).toContain('npm ci --omit=dev');
    expect(read('.dockerignore')).toMatch(/^node_modules$/m);
  });

  it('has no syntax problems the parser reports', () => {
    for (const i of instructions) expect(i.getKeyword(), i.getTextContent()).toMatch(/^[A-Z]+$/);
    expect(doc.getComments().length).toBeGreaterThan(0);
  });
});

describe('compose.yaml', () => {
  const compose = parseYaml(read('compose.yaml')) as {
    services: Record<string, Record<string, unknown>>;
    volumes: Record<string, unknown>;
    networks: Record<string, { ipam?: { config?: { subnet: string }[] } }>;
  };
  const { relay, postgres, proxy } = compose.services;
  const relayEnv = relay!.environment as Record<string, string>;
  /** compose's `${NAME:?message}` / `${NAME:-default}` with the given environment. */
  const interpolate = (value: string, env: Record<string, string>): string =>
    value.replace(/\$\{(\w+)(?::[?-]([^}]*))?\}/g, (_, name: string, dflt = '') => env[name] ?? dflt);

  it('runs the relay on PostgreSQL, after PostgreSQL is healthy', () => {
    expect(relay!.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect((postgres!.healthcheck as { test: string[] }).test.join(' ')).toContain('pg_isready');
    expect(relayEnv.PGPASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?[^}]+\}$/);
  });

  it.each(['plain', 'p/ss@w:rd', 'a:b@c/d%41?e#f'])(
    'a password like %j reaches the driver intact, and the URL carries none',
    (password) => {
      const env = Object.fromEntries(
        Object.entries(relayEnv).map(([k, v]) => [k, interpolate(v, { POSTGRES_PASSWORD: password })]),
      );
      expect(env.DATABASE_URL).not.toContain(password);
      // What the relay's pool gets: the URL, with the rest from the PG* environment (pg's own rule).
      const saved = process.env.PGPASSWORD;
      process.env.PGPASSWORD = env.PGPASSWORD;
      try {
        const client = new pg.Client({ connectionString: env.DATABASE_URL });
        expect({
          host: client.host,
          port: client.port,
          user: client.user,
          database: client.database,
          password: client.password,
        }).toEqual({ host: 'postgres', port: 5432, user: 'openwechat', database: 'openwechat', password });
      } finally {
        if (saved === undefined) delete process.env.PGPASSWORD;
        else process.env.PGPASSWORD = saved;
      }
    },
  );

  it('scales: the relay publishes no host port, a proxy in front publishes one (loopback by default)', () => {
    expect(relay!.ports).toBeUndefined();
    expect(relay!.container_name).toBeUndefined();
    expect(postgres!.ports).toBeUndefined();
    expect(proxy).toBeDefined();
    expect(proxy!.depends_on).toEqual({ relay: { condition: 'service_healthy' } });
    const ports = proxy!.ports as string[];
    expect(ports).toHaveLength(1);
    expect(interpolate(ports[0]!, {})).toBe('127.0.0.1:8000:80');
  });

  it("the proxy runs the project's one nginx template, rendered by the image, reaching every replica by name", () => {
    const proxyEnv = proxy!.environment as Record<string, string>;
    // The image's entrypoint renders /etc/nginx/templates/*.template into conf.d, replacing default.conf.
    expect(proxy!.volumes).toEqual([`./${NGINX_TEMPLATE}:/etc/nginx/templates/default.conf.template:ro`]);
    // Only the OWC_ variables are substituted; nginx's own $host, $scheme, … stay as they are.
    expect(proxyEnv.NGINX_ENVSUBST_FILTER).toBe('^OWC_');
    const conf = renderTemplate(readTemplate(), proxyEnv);
    expect(conf).toMatch(/^\s*listen 80;/m);
    expect(conf).toMatch(/\bresolver 127\.0\.0\.11 valid=10s\b/);
    expect(conf).toMatch(/\bserver relay:8000 resolve max_fails=1 fail_timeout=5s;/);
    // `server … resolve` (re-resolving the replicas without a reload) needs nginx >= 1.27.3.
    expect(proxy!.image).toMatch(/^nginx:1\.(2[89]|[3-9]\d)/);
  });

  it("TRUST_PROXY is the private network's subnet, which proxy, relays and PostgreSQL share", () => {
    const subnet = compose.networks.backend!.ipam!.config![0]!.subnet;
    expect(relayEnv.TRUST_PROXY).toBe(subnet);
    for (const s of [relay, postgres, proxy]) expect(s!.networks).toEqual(['backend']);
  });

  it('keeps data in named volumes; no secret is written in it', () => {
    expect(Object.keys(compose.volumes)).toEqual(['pgdata']);
    const pgEnv = postgres!.environment as Record<string, string>;
    expect(pgEnv.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
    expect(relayEnv.ADMIN_KEY).toMatch(/^\$\{ADMIN_KEY:-\}$/);
  });
});

describe(`the nginx template (${NGINX_TEMPLATE})`, () => {
  const template = readTemplate();
  /** The variables SERVER.md exports before rendering it on a plain host. */
  const serverMd = read('SERVER.md');
  const shown = Object.fromEntries(
    [...serverMd.matchAll(/^export (OWC_\w+)='([^']*)'/gm)].map((m) => [m[1]!, m[2]!]),
  );

  it('is SSE-friendly: HTTP/1.1 upstream keepalive, no buffering, long reads, X-Forwarded-For', () => {
    for (const directive of [
      'proxy_pass http://openwechat_relay;',
      'proxy_http_version 1.1;',
      'proxy_set_header Connection "";',
      'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
      'proxy_buffering off;',
      'proxy_request_buffering off;',
      'least_conn;',
    ]) {
      expect(template).toContain(directive);
    }
    expect(template).toMatch(/^\s*keepalive \d+;/m);
    const readTimeout = /proxy_read_timeout (\d+)([smh]);/.exec(template)!;
    const seconds = Number(readTimeout[1]) * { s: 1, m: 60, h: 3600 }[readTimeout[2] as 's' | 'm' | 'h'];
    expect(seconds).toBeGreaterThanOrEqual(600);
    // Its only variables are the two every user of it sets.
    expect([...new Set([...template.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]))].sort()).toEqual([
      'OWC_LISTEN',
      'OWC_RELAY_SERVERS',
    ]);
  });

  it('SERVER.md shows it as it is, and renders it with the variables it names', () => {
    const block = /```nginx\n# The openwechat reverse proxy[\s\S]*?```/.exec(serverMd);
    expect(block, 'SERVER.md shows the template').not.toBeNull();
    expect(block![0].slice('```nginx\n'.length, -3)).toBe(template);
    expect(Object.keys(shown).sort()).toEqual(['OWC_LISTEN', 'OWC_RELAY_SERVERS']);
    expect(serverMd).toContain(
      "envsubst '${OWC_LISTEN} ${OWC_RELAY_SERVERS}' < deploy/nginx/openwechat.conf.template",
    );
  });

  const hasEnvsubst = spawnSync('envsubst', ['--version']).status === 0;
  it.runIf(hasEnvsubst)("renders as envsubst renders it (the test's renderer is faithful)", () => {
    const r = spawnSync('envsubst', ['${OWC_LISTEN} ${OWC_RELAY_SERVERS}'], {
      input: template,
      env: { ...process.env, ...shown, host: 'not-substituted' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(renderTemplate(template, shown));
    expect(r.stdout).toContain('proxy_set_header Host $host;');
  });

  it.runIf(nginxBinary() !== null)(
    "passes `nginx -t` (Debian's nginx) with SERVER.md's variables",
    async () => {
      expect(await checkConfig(shown)).toBeNull();
      // And it is really checked: a broken server line is refused.
      expect(await checkConfig({ ...shown, OWC_RELAY_SERVERS: 'server 127.0.0.1:8001 bogus=1;' })).toMatch(
        /invalid parameter "bogus=1"/,
      );
    },
  );

  const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
  it.runIf(nginxBinary() !== null && hasOpenssl)(
    "SERVER.md's TLS variant passes `nginx -t` too",
    async () => {
      // SERVER.md's TLS variant: `listen 443 ssl` and the certificate file it shows, at http level (with a
      // throwaway self-signed certificate; `http2 on` is left out, as SERVER.md says for nginx 1.22).
      const tls = /```nginx\n# \/etc\/nginx\/conf\.d\/00-openwechat-tls\.conf\n([\s\S]*?)```/.exec(
        serverMd,
      )![1]!;
      const extra = tls
        .replace(/^http2 on;.*$/m, '')
        .replace(/(ssl_certificate\s+)\S+;/, '$1$DIR/cert.pem;')
        .replace(/(ssl_certificate_key\s+)\S+;/, '$1$DIR/key.pem;');
      expect(extra.match(/\$DIR\//g)).toHaveLength(2);
      const certDir = await mkdtemp(join(tmpdir(), 'owc-cert-'));
      try {
        const made = spawnSync('openssl', [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=test',
          '-keyout',
          join(certDir, 'key.pem'),
          '-out',
          join(certDir, 'cert.pem'),
        ]);
        expect(made.status, 'openssl made a certificate').toBe(0);
        const files = {
          'cert.pem': readFileSync(join(certDir, 'cert.pem'), 'utf8'),
          'key.pem': readFileSync(join(certDir, 'key.pem'), 'utf8'),
        };
        expect(await checkConfig({ ...shown, OWC_LISTEN: '443 ssl' }, { text: extra, files })).toBeNull();
      } finally {
        await rm(certDir, { recursive: true, force: true });
      }
    },
  );
});

describe('systemd units', () => {
  const units = ['openwechat-relay.service', 'openwechat-bridge.service', 'openwechat-inbox.service'];
  const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

  it.runIf(hasAnalyze).each(units)('%s passes systemd-analyze verify', (unit) => {
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(ROOT, 'deploy/systemd', unit)], {
      encoding: 'utf8',
    });
    expect(r.stderr.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('the relay and bridge units run the bundles, not TypeScript through tsx', () => {
    expect(read('deploy/systemd/openwechat-relay.service')).toMatch(
      /^ExecStart=\/usr\/bin\/node packages\/relay\/dist\/main\.js$/m,
    );
    expect(read('deploy/systemd/openwechat-bridge.service')).toMatch(
      /^ExecStart=\/usr\/bin\/node packages\/bridge\/dist\/main\.js$/m,
    );
  });

  it('the relay unit is hardened and stops gracefully', () => {
    const unit = read('deploy/systemd/openwechat-relay.service');
    for (const line of [
      'User=openwechat',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'KillSignal=SIGTERM',
      'Restart=on-failure',
    ]) {
      expect(unit).toContain(line);
    }
  });

  it("the relay starts with the unit's exact command line and environment", async () => {
    const unit = read('deploy/systemd/openwechat-relay.service');
    const exec = /^ExecStart=(.+)$/m.exec(unit)![1]!.split(' ');
    const env: Record<string, string> = {};
    for (const m of unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)) env[m[1]!] = m[2]!;
    const dataDir = await mkdtemp(join(tmpdir(), 'owc-unit-'));
    const port = await freePort();
    // The unit's WorkingDirectory is the checkout; DATA_DIR is redirected to a temp folder here. The node
    // binary is the one running this suite (CI runs it on two Node versions; /usr/bin/node is one of them).
    expect(exec[0]).toBe('/usr/bin/node');
    const child = spawn(process.execPath, exec.slice(1), {
      cwd: ROOT,
      env: { ...process.env, ...env, DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('relay did not start')), 20_000);
        child.stdout!.on('data', (d: Buffer) => {
          if (d.toString().includes('listening on')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`relay exited with ${code}`)));
      });
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(r.status).toBe(200);
      expect(existsSync(join(dataDir, 'relay.sqlite'))).toBe(true);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('docs cover every setting', () => {
  it.each(['docs/config.md', 'SERVER.md'])('%s names every setting of the config schema', (file) => {
    const text = read(file);
    const missing = SETTING_NAMES.map((s) => s.env).filter((name) => !text.includes(`\`${name}\``));
    expect(missing).toEqual([]);
  });
});
