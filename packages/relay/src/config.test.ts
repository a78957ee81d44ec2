import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_CONFIG,
  loadConfig,
  resolveConfig,
  SETTING_NAMES,
  settingsMarkdown,
} from './config.ts';

const SAMPLE = new URL('../../../relay.config.sample.json', import.meta.url);

describe('config', () => {
  it('defaults: loopback, port 8000, SQLite in ./data, limiter on at 20 qps, 20 SSE per IP', () => {
    const c = loadConfig({ env: {} });
    expect(c).toEqual(DEFAULT_CONFIG);
    expect([c.host, c.port, c.dataDir, c.rateLimitQps, c.sseMaxPerIp]).toEqual([
      '127.0.0.1',
      8000,
      './data',
      20,
      20,
    ]);
  });

  it('precedence is flag > environment > file > default', () => {
    const file = SAMPLE.pathname;
    expect(loadConfig({ file }).rateLimitQps).toBe(20);
    expect(loadConfig({ file, env: { RATE_LIMIT_QPS: '7' } }).rateLimitQps).toBe(7);
    expect(
      loadConfig({ file, env: { RATE_LIMIT_QPS: '7' }, flags: { RATE_LIMIT_QPS: '9' } }).rateLimitQps,
    ).toBe(9);
  });

  it('the commented sample names every setting with its default value', () => {
    const sample = JSON.parse(readFileSync(SAMPLE, 'utf8')) as Record<string, unknown>;
    for (const s of SETTING_NAMES) {
      expect(sample, `sample lacks ${s.env}`).toHaveProperty(s.env);
      expect(sample, `sample lacks a comment for ${s.env}`).toHaveProperty(`//${s.env}`);
    }
    expect(loadConfig({ file: SAMPLE.pathname })).toEqual(DEFAULT_CONFIG);
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT (environment): must be an integer'],
    [{ PORT: '70000' }, 'PORT (environment): must be ≤ 65535'],
    [{ HOST: 'example.org' }, 'HOST (environment): must be an IP address'],
    [{ RATE_LIMIT_ENABLED: 'maybe' }, 'RATE_LIMIT_ENABLED (environment): must be true or false'],
    [{ RATE_LIMIT_QPS: '0' }, 'RATE_LIMIT_QPS (environment): must be ≥ 1'],
    [{ TRUST_PROXY: '10.0.0.1, proxy' }, 'TRUST_PROXY (environment): "proxy" is not an IP address or CIDR'],
    // Accepted before the shared loader, then failed at start with an error that did not name the setting.
    [{ TRUST_PROXY: '10.0.0.0/99' }, 'TRUST_PROXY (environment): "10.0.0.0/99" is not an IP address or CIDR'],
    [{ TRUST_PROXY: 'fd00::/129' }, 'TRUST_PROXY (environment): "fd00::/129" is not an IP address or CIDR'],
    [
      { TRUST_PROXY: '10.0.0.0/8/1' },
      'TRUST_PROXY (environment): "10.0.0.0/8/1" is not an IP address or CIDR',
    ],
    [
      { ADMIN_KEY: 'change_me' },
      'ADMIN_KEY (environment): is still the placeholder "change_me"; set a real value',
    ],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL (environment): must start with postgres://'],
    [{ PUBLIC_BASE_URL: 'example.org' }, 'PUBLIC_BASE_URL (environment): must be an http(s) URL'],
    [
      { LOG_LEVEL: 'loud' },
      'LOG_LEVEL (environment): must be one of fatal, error, warn, info, debug, trace, silent',
    ],
  ])('refuses %o with a message naming the setting', (env, message) => {
    expect(() => loadConfig({ env })).toThrow(new ConfigError(message));
  });

  it('reads the reference spellings of booleans and lists', () => {
    expect(loadConfig({ env: { RATE_LIMIT_ENABLED: 'off' } }).rateLimitEnabled).toBe(false);
    expect(loadConfig({ env: { RATE_LIMIT_ENABLED: '' } }).rateLimitEnabled).toBe(false);
    expect(loadConfig({ env: { RATE_LIMIT_ENABLED: 'TRUE' } }).rateLimitEnabled).toBe(true);
    expect(loadConfig({ env: { TRUST_PROXY: '127.0.0.1, 10.0.0.0/8' } }).trustProxy).toEqual([
      '127.0.0.1',
      '10.0.0.0/8',
    ]);
  });

  it('refuses an unknown key in the file, and a missing file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'owc-config-'));
    const file = join(dir, 'relay.json');
    writeFileSync(file, JSON.stringify({ PORT: 8001, PROT: 8002 }));
    expect(() => loadConfig({ file })).toThrow(
      new ConfigError(`config file ${file}: unknown setting PROT (did you mean PORT?)`),
    );
    writeFileSync(file, JSON.stringify({ TRUST_PROXY: ['127.0.0.1', '10.0.0.0/99'] }));
    expect(() => loadConfig({ file })).toThrow(
      new ConfigError(`TRUST_PROXY (config file ${file}): "10.0.0.0/99" is not an IP address or CIDR`),
    );
    writeFileSync(file, JSON.stringify({ trustProxy: '10.0.0.0/8', PORT: '8001' }));
    expect(loadConfig({ file })).toMatchObject({ trustProxy: ['10.0.0.0/8'], port: 8001 });
    expect(() => loadConfig({ file: join(dir, 'missing.json') })).toThrow(/config file .*missing\.json/);
    rmSync(dir, { recursive: true });
  });

  it('names the source of a bad flag and a bad programmatic option', () => {
    expect(() => loadConfig({ flags: { TRUST_PROXY: '10.0.0.0/99' } })).toThrow(
      new ConfigError('TRUST_PROXY (flag): "10.0.0.0/99" is not an IP address or CIDR'),
    );
    expect(() => resolveConfig({ port: -1 })).toThrow(new ConfigError('PORT (option): must be ≥ 0'));
    expect(resolveConfig({ trustProxy: ['::1', '10.0.0.0/8'] }).trustProxy).toEqual(['::1', '10.0.0.0/8']);
  });

  it('docs/config.md holds the settings table rendered from the declaration', () => {
    const docs = readFileSync(new URL('../../../docs/config.md', import.meta.url), 'utf8');
    // On a mismatch, paste the expected table (printed by the failure) into docs/config.md.
    expect(docs).toContain(settingsMarkdown());
  });
});
