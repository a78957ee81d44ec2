// The light entry OpenClaw loads while the channel is unconfigured or disabled (setup, doctor, catalog).
import { defineSetupPluginEntry } from 'openclaw/plugin-sdk/channel-core';
import { openwechatChannelPlugin } from './channel.ts';

export default defineSetupPluginEntry(openwechatChannelPlugin);
