import { describe, expect, it } from 'vitest';
import {
  bool,
  ConfigError,
  flagOptions,
  flagValues,
  int,
  ipList,
  isIpOrCidr,
  load,
  markdownTable,
  REQUIRED,
  secret,
  settingsFace,
  str,
  type Table,
} from './index.ts';

interface Demo {
  port: number;
  name: string;
  token: string;
  on: boolean;
}

const TABLE: Table<Demo> = {
  port: { env: 'DEMO_PORT', type: int(1, 100), default: 10, doc: 'A port.' },
  name: { env: 'DEMO_NAME', aliases: ['GUIDE_NAME'], type: str(), default: 'x', doc: 'A name.' },
  token: { env: 'DEMO_TOKEN', flag: false, type: secret(), default: REQUIRED, doc: 'A secret.' },
  on: { env: 'DEMO_ON', type: bool(), default: false, doc: 'A switch.' },
};

const file = (values: Record<string, unknown>) => ({ path: 'demo.json', label: 'config file', values });

describe('the shared settings loader', () => {
  it('layers option > flag > environment > file > default', () => {
    const base = { env: { DEMO_TOKEN: 't0k3n' } };
    expect(load(TABLE, base).config).toEqual({ port: 10, name: 'x', token: 't0k3n', on: false });
    const f = file({ DEMO_PORT: 20 });
    expect(load(TABLE, { ...base, file: f }).config.port).toBe(20);
    expect(load(TABLE, { env: { ...base.env, DEMO_PORT: '30' }, file: f }).config.port).toBe(30);
    expect(
      load(TABLE, { env: { ...base.env, DEMO_PORT: '30' }, flags: { DEMO_PORT: '40' }, file: f }).config.port,
    ).toBe(40);
    expect(load(TABLE, { ...base, flags: { DEMO_PORT: '40' }, options: { port: 50 } }).config.port).toBe(50);
  });

  it('names the setting (as written) and its source in one line', () => {
    const env = { DEMO_TOKEN: 't0k3n' };
    expect(() => load(TABLE, { env: { ...env, DEMO_PORT: '0' } })).toThrow(
      new ConfigError('DEMO_PORT (environment): must be ≥ 1'),
    );
    expect(() => load(TABLE, { env, file: file({ port: 'x' }) })).toThrow(
      new ConfigError('DEMO_PORT (config file demo.json): must be an integer'),
    );
    expect(() => load(TABLE, { env: { ...env, GUIDE_NAME: 42 as unknown as string } })).toThrow(
      new ConfigError('GUIDE_NAME (environment): must be a string'),
    );
    expect(() => load(TABLE, {})).toThrow(new ConfigError('DEMO_TOKEN: required'));
    expect(() => load(TABLE, { env, file: file({ DEMO_PROT: 1 }) })).toThrow(
      new ConfigError('config file demo.json: unknown setting DEMO_PROT (did you mean DEMO_PORT?)'),
    );
    expect(() => load(TABLE, { env, file: file({ COLOUR: 'red' }) })).toThrow(
      new ConfigError('config file demo.json: unknown setting COLOUR'),
    );
  });

  it('an alias fills in; the own name wins in the same source; a higher source wins over either', () => {
    const env = { DEMO_TOKEN: 't0k3n', GUIDE_NAME: 'guide' };
    expect(load(TABLE, { env }).config.name).toBe('guide');
    const both = load(TABLE, { env: { ...env, DEMO_NAME: 'ours' } });
    expect(both.config.name).toBe('ours');
    expect(both.warnings).toEqual(['GUIDE_NAME (environment) is ignored: DEMO_NAME is set too and wins']);
    expect(load(TABLE, { env, file: file({ DEMO_NAME: 'file' }) }).config.name).toBe('guide');
  });

  it('empty values: a value by default, unset with emptyIsUnset', () => {
    const env = { DEMO_TOKEN: 't0k3n', DEMO_NAME: '' };
    expect(load(TABLE, { env }).config.name).toBe('');
    expect(load(TABLE, { env }, { emptyIsUnset: true }).config.name).toBe('x');
    expect(() => load(TABLE, { env: { DEMO_TOKEN: '' } }, { emptyIsUnset: true })).toThrow(
      'DEMO_TOKEN: required',
    );
  });

  it('warns about unknown variables only under the prefixes it owns; `only` loads a subset', () => {
    const env = { DEMO_TOKEN: 't0k3n', DEMO_PORTT: '1', PATH: '/bin' };
    expect(load(TABLE, { env }, { envPrefixes: ['DEMO_'] }).warnings).toEqual([
      'environment: unknown setting DEMO_PORTT (did you mean DEMO_PORT?); ignored',
    ]);
    expect(load(TABLE, { env: {} }, { only: ['port'] }).config).toEqual({ port: 10 });
  });

  it('IP lists check every entry, CIDR prefix lengths included', () => {
    for (const ok of ['10.0.0.1', '10.0.0.0/8', '0.0.0.0/0', '::1', 'fd00::/8', '::/128', '10.0.0.0/32'])
      expect(isIpOrCidr(ok), ok).toBe(true);
    for (const bad of [
      '10.0.0.0/99',
      '10.0.0.0/33',
      '::/129',
      '10.0.0.0/',
      '10.0.0.0/8/8',
      'proxy',
      '10.0.0.0/-1',
      '',
    ])
      expect(isIpOrCidr(bad), bad).toBe(false);
    expect(ipList().parse(' 10.0.0.1 , ::1,')).toEqual(['10.0.0.1', '::1']);
    expect(() => ipList().parse('10.0.0.0/99')).toThrow('"10.0.0.0/99" is not an IP address or CIDR');
  });

  it('secrets are taken as written: no trimming, no placeholder, a minimum length', () => {
    expect(secret().parse('a b')).toBe('a b');
    expect(() => secret().parse(' ab')).toThrow(/leading\/trailing spaces/);
    expect(() => secret().parse('CHANGE_ME')).toThrow(/placeholder/);
    expect(() => secret({ min: 4 }).parse('abc')).toThrow('must be at least 4 characters');
  });

  it('flags: kebab-cased env names, none for a secret', () => {
    expect(Object.keys(flagOptions(TABLE))).toEqual(['demo-port', 'demo-name', 'demo-on']);
    expect(flagValues(TABLE, { 'demo-port': '5', help: true })).toEqual({ DEMO_PORT: '5' });
  });

  it("settingsFace: a service's names, flags, usage lines, flag values and docs table from its table", () => {
    const face = settingsFace(TABLE);
    expect(face.names.map((n) => n.env)).toEqual(['DEMO_PORT', 'DEMO_NAME', 'DEMO_TOKEN', 'DEMO_ON']);
    expect(face.names[1]).toEqual({ env: 'DEMO_NAME', key: 'name', aliases: ['GUIDE_NAME'] });
    expect(face.flags).toEqual(flagOptions(TABLE));
    expect(face.usage).toBe('  --demo-port\n  --demo-name\n  --demo-on');
    expect(face.fromFlags({ 'demo-on': 'true', 'demo-token': 'x' })).toEqual({ DEMO_ON: 'true' });
    expect(face.markdown()).toBe(markdownTable(TABLE));
  });

  it('renders the docs table from the declaration, aliases included', () => {
    expect(markdownTable(TABLE)).toBe(
      [
        '| Setting | Default | Meaning |',
        '| --- | --- | --- |',
        '| `DEMO_PORT` | `10` | A port. |',
        '| `DEMO_NAME` | `x` | A name. Also read as `GUIDE_NAME`; `DEMO_NAME` wins when both are set. |',
        '| `DEMO_TOKEN` | *(required)* | A secret. |',
        '| `DEMO_ON` | `false` | A switch. |',
      ].join('\n'),
    );
  });
});
