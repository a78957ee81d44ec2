// The deployment files, checked by real parsers since no Docker engine or systemd manager runs here:
// the Dockerfile (dockerfile-ast), compose.yaml (yaml), the systemd units (systemd-analyze verify, when
// installed), and the docs against the config schema. The systemd unit's exact command line is then
// run to show the relay starts the way the unit starts it.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { SETTING_NAMES } from '../../packages/relay/src/config.ts';
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

  it('runs as a non-root user, with a healthcheck, the relay port and SIGTERM', () => {
    const users = last('USER').map((u) => u.getArgumentsContent());
    expect(users).toHaveLength(1);
    expect(users[0]).not.toMatch(/^(root|0)$/);
    expect(last('HEALTHCHECK')).toHaveLength(1);
    expect(last('HEALTHCHECK')[0]!.getArgumentsContent()).toContain('/readyz');
    expect(last('EXPOSE').map((e) => e.getArgumentsContent())).toEqual(['8000']);
    expect(last('CMD')[0]!.getArgumentsContent()).toContain('packages/relay/src/main.ts');
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
  };

  it('runs the relay on PostgreSQL, after PostgreSQL is healthy', () => {
    const { relay, postgres } = compose.services;
    expect(relay).toBeDefined();
    expect(postgres).toBeDefined();
    expect(relay!.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect((postgres!.healthcheck as { test: string[] }).test.join(' ')).toContain('pg_isready');
    const env = relay!.environment as Record<string, string>;
    expect(env.DATABASE_URL).toMatch(
      /^postgres:\/\/openwechat:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432\/openwechat$/,
    );
  });

  it('publishes on loopback only and keeps data in named volumes; no secret is written in it', () => {
    const { relay, postgres } = compose.services;
    expect(relay!.ports).toEqual(['127.0.0.1:8000:8000']);
    expect(postgres!.ports).toBeUndefined();
    expect(Object.keys(compose.volumes).sort()).toEqual(['pgdata', 'relaydata']);
    const pgEnv = postgres!.environment as Record<string, string>;
    expect(pgEnv.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
  });
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
    // The unit's WorkingDirectory is the checkout; DATA_DIR is redirected to a temp folder here.
    const child = spawn(exec[0]!, exec.slice(1), {
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
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
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
