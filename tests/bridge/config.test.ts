// The operator-facing description of the settings cannot drift from the code: every setting the bridge
// reads is in bridge.env.sample and docs/bridge.md, the sample's values are the defaults, and the service
// started as `npm run bridge` refuses a bad configuration with a message naming the setting.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, loadConfig, SETTINGS, settingsMarkdown } from '@openwechat/bridge';
import { spawnBridge } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const sampleText = readFileSync(`${ROOT}/bridge.env.sample`, 'utf8');
const sample = parseEnv(sampleText);
const docs = readFileSync(`${ROOT}/docs/bridge.md`, 'utf8');

describe('bridge settings documentation', () => {
  it('every setting is in bridge.env.sample and docs/bridge.md', () => {
    for (const s of SETTINGS) {
      expect(Object.keys(sample), s.env).toContain(s.env);
      expect(docs, s.env).toContain(`| \`${s.env}\` |`);
    }
    expect(Object.keys(sample).sort()).toEqual(SETTINGS.map((s) => s.env).sort());
    // The aliases are documented in the sample's comments (not as keys: both set would shadow one).
    for (const alias of SETTINGS.flatMap((s) => s.aliases)) expect(sampleText, alias).toContain(alias);
  });

  it('docs/bridge.md holds the settings table rendered from the declaration', () => {
    // On a mismatch, paste the expected table (printed by the failure) into docs/bridge.md.
    expect(docs).toContain(settingsMarkdown());
  });

  it('the sample, with the four required values filled in, gives the defaults', () => {
    const config = loadConfig({
      ...sample,
      RELAY_TOKEN: '0123456789abcdef0123456789abcdef',
      WECHAT_ABOT_WEBHOOK_SECRET: 'secret-1234567890',
      WECHAT_ABOT_BOT_TOKEN: 'token-1234567890',
    });
    for (const [key, value] of Object.entries(DEFAULTS)) {
      if (key === 'inboundToken') continue;
      expect(config[key as keyof typeof config], key).toEqual(value);
    }
  });

  it('npm run bridge with a bad setting exits 2 naming it', async () => {
    await expect(
      spawnBridge({
        RELAY_BASE_URL: 'http://127.0.0.1:1',
        RELAY_TOKEN: 'x'.repeat(32),
        WECHAT_ABOT_WEBHOOK_SECRET: 'secret-1234567890',
        WECHAT_ABOT_BOT_TOKEN: 'token-1234567890',
        BRIDGE_PORT: 'eighty',
      }),
    ).rejects.toThrow(/configuration error: BRIDGE_PORT \(environment\): must be an integer\n/);
  });
});
