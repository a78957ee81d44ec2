// People and relationships: friends, discovery, profiles, block/unblock, the contact cache, homepages.

import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { userToJson } from '@openwechat/client';
import { loadConfig } from '../data/config.ts';
import {
  readContacts,
  setRelationship,
  updateContacts,
  upsertContact,
  type Contact,
} from '../data/contacts.ts';
import { refreshDerived } from '../data/derived.ts';
import { utcSecond } from '../data/formats.ts';
import { usageError } from '../output.ts';
import { type Command, clientFor, configured, intArg, str, who, userLine } from './common.ts';

export const friends: Command = {
  usage: 'friends',
  summary: 'list friends from the relay and sync contacts.json',
  async run(ctx) {
    const { client } = await configured(ctx);
    const list = await client.friends();
    const ids = new Set(list.map((f) => f.id));
    await updateContacts(ctx.dir, (map) => {
      for (const f of list) {
        const c = upsertContact(map, f);
        setRelationship(c, 'accepted', f.friendsSince ? utcSecond(f.friendsSince) : (c.since ?? null));
        if (f.friendsSince) c.since = utcSecond(f.friendsSince);
      }
      // A friendship the relay no longer lists has ended (unless we blocked them: that stays visible).
      for (const c of map.values())
        if (c.relationship === 'accepted' && !ids.has(c.id)) setRelationship(c, 'none', null);
    });
    await refreshDerived(ctx.dir);
    ctx.out.result({
      friends: list.map((f) => ({
        ...userToJson(f),
        friends_since: f.friendsSince ? new Date(f.friendsSince).toISOString() : null,
      })),
    });
    ctx.out.say(
      list.length ? `${list.length} friend(s):` : 'no friends yet (tip: openwechat users to discover people)',
    );
    for (const f of list) ctx.out.say(`  ${userLine(f)}`);
  },
};

export const users: Command = {
  usage: 'users [--keyword <text>]   (alias: discover)',
  summary: 'discover up to 10 random open users; merged into contacts.json',
  options: { keyword: { type: 'string' } },
  async run(ctx) {
    const { client } = await configured(ctx);
    const res = await client.discover(str(ctx.values.keyword) ?? (ctx.args.join(' ') || undefined));
    await updateContacts(ctx.dir, (map) => {
      for (const u of res.users) upsertContact(map, u);
    });
    await refreshDerived(ctx.dir);
    ctx.out.result({ total: res.total, users: res.users.map(userToJson) });
    ctx.out.say(
      res.users.length ? `${res.users.length} of ${res.total} open user(s):` : 'no open users found',
    );
    for (const u of res.users) ctx.out.say(`  ${userLine(u)}`);
  },
};

export const user: Command = {
  usage: 'user <id>',
  summary: "a user's public profile",
  async run(ctx) {
    const id = intArg(ctx.args[0], 'user id');
    const { client } = await configured(ctx);
    const u = await client.user(id);
    await updateContacts(ctx.dir, (map) => void upsertContact(map, u));
    ctx.out.result({ user: userToJson(u) });
    ctx.out.say(userLine(u));
    if (u.lastSeenAt) ctx.out.say(`  last seen ${new Date(u.lastSeenAt).toISOString()}`);
  },
};

export function blockCommand(action: 'block' | 'unblock'): Command {
  return {
    usage: `${action} <user_id>`,
    summary:
      action === 'block'
        ? 'block a friend (their waiting messages are removed)'
        : 'unblock (you become strangers again)',
    async run(ctx) {
      const id = intArg(ctx.args[0], 'user id');
      const { client } = await configured(ctx);
      const u = action === 'block' ? await client.block(id) : await client.unblock(id);
      await updateContacts(ctx.dir, (map) => {
        const c = upsertContact(map, { id: u.id, name: u.name.startsWith('ID:') ? null : u.name });
        setRelationship(c, action === 'block' ? 'blocked' : 'none', utcSecond(Date.now()));
      });
      await refreshDerived(ctx.dir);
      ctx.out.result({ user: u, relationship: action === 'block' ? 'blocked' : 'none' });
      ctx.out.say(action === 'block' ? `blocked ${who(u.id, u.name)}` : `unblocked ${who(u.id, u.name)}`);
    },
  };
}

export const contacts: Command = {
  usage: 'contacts',
  summary: 'show the local contact cache (contacts.json)',
  async run(ctx) {
    const map = await readContacts(ctx.dir);
    const list: Contact[] = [...map.values()].sort((a, b) => a.id - b.id);
    ctx.out.result({ contacts: list });
    if (!list.length) ctx.out.say('no contacts yet');
    for (const c of list) {
      ctx.out.say(
        `  #${c.id} ${c.name} [${c.relationship}]${c.last_message_at ? ` last message ${c.last_message_at}` : ''}`,
      );
    }
  },
};

export const homepage: Command = {
  usage: 'homepage upload <file.html> | homepage view <user_id> [--out <file>]',
  summary: 'upload your HTML homepage (≤ 512 KB) or fetch someone’s',
  options: { out: { type: 'string' } },
  async run(ctx) {
    const [action, arg] = ctx.args;
    if (action === 'upload') {
      if (!arg) throw usageError('the HTML file is required');
      const html = await readFile(resolve(arg)).catch(() => {
        throw usageError(`cannot read ${arg}`);
      });
      const { client } = await configured(ctx);
      const res = await client.uploadHomepage(new Uint8Array(html));
      ctx.out.result({ url: res.url, bytes: html.length });
      ctx.out.say(`homepage uploaded (${html.length} bytes): ${res.url}`);
      return;
    }
    if (action === 'view') {
      const id = intArg(arg, 'user id');
      const config = await loadConfig(ctx.dir);
      const client = clientFor(ctx, config);
      const html = await client.homepage(id);
      const url = `${client.baseUrl}/homepage/${id}`;
      const out = str(ctx.values.out);
      if (out) await writeFile(resolve(out), html);
      ctx.out.result({ url, bytes: Buffer.byteLength(html), ...(out ? { saved: resolve(out) } : { html }) });
      ctx.out.say(out ? `saved ${Buffer.byteLength(html)} bytes to ${resolve(out)} (${url})` : html);
      return;
    }
    throw usageError('use: homepage upload <file.html> | homepage view <user_id>');
  },
};
