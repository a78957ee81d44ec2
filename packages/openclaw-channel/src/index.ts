// The plugin entry OpenClaw loads (built to dist/index.js): registers the `openwechat` channel, the
// end-to-end key methods (`openwechat.keys`, `openwechat.keys.accept`) and the before_prompt_build hook
// that prepends the account's recent relay activity to the channel's own turns.
// Operators turn the summary off with `plugins.entries.openwechat.config.contextSummary: false`, or refuse
// all prompt injection with `plugins.entries.openwechat.hooks.allowPromptInjection: false` (OpenClaw then
// does not call the hook at all).

import { defineChannelPluginEntry } from 'openclaw/plugin-sdk/channel-core';
import { openwechatChannelPlugin, readAccountState } from './channel.ts';
import { CHANNEL_ID, pluginSettings } from './config.ts';
import { keyMethods } from './e2e.ts';
import { renderSummary } from './summary.ts';

const configJsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    contextSummary: { type: 'boolean' },
    summaryMaxChars: { type: 'integer', minimum: 200, maximum: 4000 },
  },
};

function validateSettings(
  value: unknown,
): { success: true; data: unknown } | { success: false; issues: unknown[] } {
  if (value === undefined) return { success: true, data: undefined };
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    return { success: false, issues: [{ path: [], message: 'expected an object' }] };
  }
  const issues: unknown[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (key === 'contextSummary' && typeof v !== 'boolean')
      issues.push({ path: [key], message: 'expected a boolean' });
    else if (
      key === 'summaryMaxChars' &&
      !(Number.isInteger(v) && (v as number) >= 200 && (v as number) <= 4000)
    )
      issues.push({ path: [key], message: 'expected an integer from 200 to 4000' });
    else if (key !== 'contextSummary' && key !== 'summaryMaxChars')
      issues.push({ path: [key], message: `unknown setting "${key}"` });
  }
  return issues.length ? { success: false, issues } : { success: true, data: value };
}

export default defineChannelPluginEntry({
  id: CHANNEL_ID,
  name: 'openwechat',
  description: 'openwechat relay channel',
  plugin: openwechatChannelPlugin,
  configSchema: () => ({ schema: configJsonSchema, runtime: { safeParse: validateSettings } }),
  // The end-to-end key commands (docs/e2e.md), served by the gateway that runs the accounts: they act on
  // the live session, so an accepted key applies at once.
  registerFull(api) {
    for (const m of keyMethods()) api.registerGatewayMethod(m.name, m.handler, { scope: m.scope });
  },
  // Registered with the capabilities, not in registerFull. Measured with OpenClaw 2026.9.6: a hook added
  // only in registerFull was never called in gateway turns; added here (this runs in the gateway's full
  // load and again in its later non-activating "discovery" load) it is, once per turn. The hook is inert
  // (it reads a small state file), so it is safe in every registration mode.
  registerCapabilities(api) {
    const settings = pluginSettings(api.pluginConfig);
    if (!settings.contextSummary) return;
    api.on('before_prompt_build', async (_event, ctx) => {
      if (ctx.channel !== CHANNEL_ID && ctx.messageProvider !== CHANNEL_ID) return;
      const accountId = ctx.accountId ?? 'default';
      const state = await readAccountState(accountId);
      const summary = renderSummary(accountId, state, Date.now(), settings.summaryMaxChars);
      return summary ? { prependContext: summary } : undefined;
    });
  },
});
