// Group chats: every `group …` action.

import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { RelayClient, type Group, type GroupSendResult } from '@openwechat/client';
import { groupJson, groupMemberJson, parseGroupSendReply } from '@openwechat/protocol';
import { groupKey } from '../data/formats.ts';
import { groupEntry, readGroups, refreshGroups, updateGroups } from '../data/groups.ts';
import { recordGroupSent } from '../data/outgoing.ts';
import { usageError } from '../output.ts';
import {
  type Ctx,
  type Command,
  configured,
  intArg,
  str,
  who,
  nameOf,
  readContent,
  withRetry,
  fileSource,
  e2eFor,
  e2eNote,
} from './common.ts';

// ───────────────────────────── groups ─────────────────────────────

/** A group id as the user may write it: `7`, `g7` or `#g7`. */
function groupArg(raw: string | undefined): number {
  const m = raw === undefined ? null : /^#?g?(\d+)$/i.exec(raw.trim());
  if (!m || Number(m[1]) < 1) {
    throw usageError(
      `the group id must be a positive integer (7, g7 or #g7)${raw === undefined ? ' (missing)' : `, got "${raw}"`}`,
    );
  }
  return Number(m[1]);
}

/** User ids from positionals and/or comma-separated option values (`--members 2,3 --members 4`). */
function idList(values: Array<string | boolean | undefined> | string[], what: string): number[] {
  const ids: number[] = [];
  for (const v of values) {
    if (typeof v !== 'string') continue;
    for (const part of v.split(',')) if (part.trim() !== '') ids.push(intArg(part.trim(), what));
  }
  return [...new Set(ids)];
}

function multi(v: unknown): string[] {
  return Array.isArray(v)
    ? v.filter((x): x is string => typeof x === 'string')
    : typeof v === 'string'
      ? [v]
      : [];
}

function groupLabel(g: { id: number; name: string }): string {
  return `#${groupKey(g.id)}(${g.name})`;
}

function groupSummary(g: Group): string {
  const desc = g.description ? ` — ${g.description.replace(/\n/g, ' ')}` : '';
  const members = `${g.memberCount} member${g.memberCount === 1 ? '' : 's'}`;
  return `${groupLabel(g)} [${g.role}] ${members}, owner #${g.ownerId}(${g.ownerName})${desc}`;
}

/** groups.json after a command changed membership or settings; a failed refresh is not the command's failure. */
async function syncGroups(ctx: Ctx, client: RelayClient): Promise<void> {
  try {
    await refreshGroups(ctx.dir, client);
  } catch {
    // The daemon refreshes it again on the next group event or connect.
  }
}

/** The group's name for the local record: the relay's success line, else groups.json, else the relay. */
async function groupNameOf(
  ctx: Ctx,
  client: RelayClient,
  gid: number,
  result: GroupSendResult,
): Promise<string> {
  const reply = parseGroupSendReply(result.message);
  if (reply.ok && reply.groupName) return reply.groupName.replace(/\n {2}/g, '\n');
  const cached = (await readGroups(ctx.dir).catch(() => null))?.groups.find((g) => g.id === gid);
  if (cached) return cached.name;
  try {
    return (await client.group(gid)).group.name;
  } catch {
    return '';
  }
}

const GROUP_ACTIONS = [
  'create <name> [--description <text>] [--members <id,id…>]',
  'list',
  'show <gid>',
  'add <gid> <user_id…>',
  'remove <gid> <user_id>',
  'leave <gid>',
  'rename <gid> <new name…>',
  'describe <gid> [<text…>]   (no text: clear the description)',
  'transfer <gid> <member_id>',
  'dissolve <gid>',
  'send <gid> <content…|-> [--mention <id,id…>] [--idempotency-key <key>]',
  'send-file <gid> <path> [--content <text>] [--mention <id,id…>] [--idempotency-key <key>]',
];

export const group: Command = {
  usage: `group ${GROUP_ACTIONS.join('\n        | group ')}`,
  summary:
    'group chats (our relay): create, list, show, manage members, rename/describe/transfer, dissolve, send text or files with @mentions; keeps groups.json',
  options: {
    description: { type: 'string' },
    members: { type: 'string', multiple: true },
    mention: { type: 'string', multiple: true },
    content: { type: 'string' },
    'idempotency-key': { type: 'string' },
  },
  async run(ctx) {
    const [action, ...rest] = ctx.args;
    if (!action)
      throw usageError(
        'which group action?',
        `use: group ${GROUP_ACTIONS.map((a) => a.split(' ')[0]).join('|')}`,
      );
    const { config, client } = await configured(ctx);
    switch (action) {
      case 'create': {
        const name = rest.join(' ');
        if (!name) throw usageError('the group name is required: group create <name>');
        const memberIds = idList(multi(ctx.values.members), 'member id');
        const g = await client.createGroup({
          name,
          description: str(ctx.values.description) ?? null,
          memberIds,
        });
        await syncGroups(ctx, client);
        ctx.out.result({ group: groupJson(g) });
        ctx.out.say(`group ${groupLabel(g)} created: ${g.memberCount} member(s), you are the owner`);
        return;
      }
      case 'list': {
        const list = await client.groups();
        await updateGroups(ctx.dir, () => list.map(groupEntry)).catch(() => {});
        ctx.out.result({ groups: list.map(groupJson) });
        ctx.out.say(
          list.length
            ? `${list.length} group(s):`
            : 'no groups yet (create one: openwechat group create <name> --members <friend ids>)',
        );
        for (const g of list) ctx.out.say(`  ${groupSummary(g)}`);
        return;
      }
      case 'show': {
        const gid = groupArg(rest[0]);
        const d = await client.group(gid);
        await updateGroups(ctx.dir, (gs) => [...gs.filter((g) => g.id !== gid), groupEntry(d.group)]).catch(
          () => {},
        );
        ctx.out.result({ group: groupJson(d.group), members: d.members.map(groupMemberJson) });
        ctx.out.say(groupSummary(d.group));
        ctx.out.say(`  created ${new Date(d.group.createdAt).toISOString()}`);
        for (const m of d.members) ctx.out.say(`  #${m.id} ${m.name}${m.role === 'owner' ? ' (owner)' : ''}`);
        return;
      }
      case 'add': {
        const gid = groupArg(rest[0]);
        const ids = idList([...rest.slice(1), ...multi(ctx.values.members)], 'user id');
        if (!ids.length) throw usageError('whom to add? group add <gid> <user_id…>');
        const added = await client.addGroupMembers(gid, ids);
        await syncGroups(ctx, client);
        ctx.out.result({ group_id: gid, added });
        ctx.out.say(
          `added ${added.length} member(s) to #${groupKey(gid)}: ${added.map((u) => who(u.id, u.name)).join(', ')}`,
        );
        return;
      }
      case 'remove': {
        const gid = groupArg(rest[0]);
        const uid = intArg(rest[1], 'user id');
        await client.removeGroupMember(gid, uid);
        await syncGroups(ctx, client);
        const name = await nameOf(ctx, client, uid);
        ctx.out.result({ group_id: gid, removed: { id: uid, name } });
        ctx.out.say(`removed ${who(uid, name)} from #${groupKey(gid)}`);
        return;
      }
      case 'leave': {
        const gid = groupArg(rest[0]);
        const before = (await readGroups(ctx.dir).catch(() => null))?.groups.find((g) => g.id === gid);
        await client.leaveGroup(gid);
        await updateGroups(ctx.dir, (gs) => gs.filter((g) => g.id !== gid)).catch(() => {});
        await syncGroups(ctx, client);
        ctx.out.result({ group_id: gid, left: true });
        ctx.out.say(`left ${before ? groupLabel(before) : `#${groupKey(gid)}`}`);
        return;
      }
      case 'rename':
      case 'describe':
      case 'transfer': {
        const gid = groupArg(rest[0]);
        let g: Group;
        if (action === 'rename') {
          const name = rest.slice(1).join(' ');
          if (!name) throw usageError('the new name is required: group rename <gid> <new name>');
          g = await client.updateGroup(gid, { name });
        } else if (action === 'describe') {
          const text = rest.slice(1).join(' ');
          g = await client.updateGroup(gid, { description: text === '' ? null : text });
        } else {
          g = await client.updateGroup(gid, { ownerId: intArg(rest[1], 'the new owner id') });
        }
        await syncGroups(ctx, client);
        ctx.out.result({ group: groupJson(g) });
        ctx.out.say(
          action === 'rename'
            ? `renamed: ${groupLabel(g)}`
            : action === 'describe'
              ? `description of ${groupLabel(g)} ${g.description ? `set: ${g.description}` : 'cleared'}`
              : `${groupLabel(g)} now belongs to #${g.ownerId}(${g.ownerName}); you are a member`,
        );
        return;
      }
      case 'dissolve': {
        const gid = groupArg(rest[0]);
        const before = (await readGroups(ctx.dir).catch(() => null))?.groups.find((g) => g.id === gid);
        await client.dissolveGroup(gid);
        await updateGroups(ctx.dir, (gs) => gs.filter((g) => g.id !== gid)).catch(() => {});
        await syncGroups(ctx, client);
        ctx.out.result({ group_id: gid, dissolved: true });
        ctx.out.say(`dissolved ${before ? groupLabel(before) : `#${groupKey(gid)}`}`);
        return;
      }
      case 'send': {
        const gid = groupArg(rest[0]);
        const content = await readContent(ctx, rest.slice(1));
        if (content === '')
          throw usageError('nothing to send: give the content (or - to read it from stdin)');
        const mentionIds = idList(multi(ctx.values.mention), 'mention id');
        const key = str(ctx.values['idempotency-key']) ?? randomUUID();
        const e2e = await e2eFor(ctx, config, client);
        const sent = e2e
          ? await withRetry(client, () => e2e.sendGroup(gid, content, { mentionIds, idempotencyKey: key }))
          : null;
        const result = sent
          ? sent.result
          : await withRetry(client, () =>
              client.sendGroup(gid, content, { mentionIds, idempotencyKey: key }),
            );
        const name = await groupNameOf(ctx, client, gid, result);
        const line = await recordGroupSent(ctx.dir, { id: gid, name }, content, null, result.copies);
        ctx.out.result({
          group: { id: gid, name },
          message: result.message,
          recipients: result.recipients,
          mention_ids: mentionIds,
          replayed: result.replayed,
          encrypted: sent?.encrypted ?? false,
          plaintext_reason: sent?.plaintextReason ?? null,
          line,
        });
        ctx.out.say(
          `sent to ${groupLabel({ id: gid, name })}: delivered to ${result.recipients} member(s)${e2eNote(sent)}`,
        );
        return;
      }
      case 'send-file': {
        const gid = groupArg(rest[0]);
        const path = rest[1];
        if (!path) throw usageError('the file path is required: group send-file <gid> <path>');
        const full = resolve(path);
        const st = await stat(full).catch(() => null);
        if (!st?.isFile()) throw usageError(`not a readable file: ${path}`);
        const content = str(ctx.values.content) ?? '';
        const mentionIds = idList(multi(ctx.values.mention), 'mention id');
        const key = str(ctx.values['idempotency-key']) ?? randomUUID();
        const e2e = await e2eFor(ctx, config, client);
        const sent = e2e
          ? await withRetry(client, () =>
              e2e.sendGroupFile(gid, fileSource(full), content, { mentionIds, idempotencyKey: key }),
            )
          : null;
        const result = sent
          ? sent.result
          : await withRetry(client, () =>
              client.sendGroupFile(gid, fileSource(full), content, { mentionIds, idempotencyKey: key }),
            );
        const name = await groupNameOf(ctx, client, gid, result);
        const filename = full.split(/[/\\]/).pop() ?? 'file';
        const line = await recordGroupSent(
          ctx.dir,
          { id: gid, name },
          content.trim() || '(附件)',
          filename,
          result.copies,
        );
        ctx.out.result({
          group: { id: gid, name },
          message: result.message,
          recipients: result.recipients,
          mention_ids: mentionIds,
          file: filename,
          size: st.size,
          replayed: result.replayed,
          line,
        });
        ctx.out.say(
          `file ${filename} (${st.size} bytes) sent to ${groupLabel({ id: gid, name })}: delivered to ${result.recipients} member(s)`,
        );
        return;
      }
      default:
        throw usageError(
          `unknown group action "${action}"`,
          `use: group ${GROUP_ACTIONS.map((a) => a.split(' ')[0]).join('|')}`,
        );
    }
  },
};
