// Direct messages: send, send-file, the /messages fallback (inbox), and attachment downloads.

import { randomUUID } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { appendDurable, exists } from '../data/atomic.ts';
import { refreshDerived } from '../data/derived.ts';
import { formatChannelLine } from '../data/formats.ts';
import { attachmentPath, InboxWriter } from '../data/inbox.ts';
import { acquireInstance } from '../data/lock.ts';
import { migrateDataDir } from '../data/migrate.ts';
import { refreshGroups } from '../data/groups.ts';
import { recordSent } from '../data/outgoing.ts';
import { dataPath, FILES } from '../data/paths.ts';
import { DAEMON_LOCK, EXIT } from '../daemon.ts';
import { CliError, usageError } from '../output.ts';
import { E2eError, type OpenedMessage } from '@openwechat/client';
import {
  type Command,
  configured,
  intArg,
  str,
  who,
  messageJson,
  messageLine,
  nameOf,
  readContent,
  withRetry,
  daemonStatus,
  e2eFor,
  e2eNote,
  fileSource,
} from './common.ts';

export const send: Command = {
  usage: 'send <to_id> <content…> | send --to <id> --content <text|-> [--idempotency-key <key>]',
  summary: 'send a message (the first message to a stranger is a friend request)',
  options: { to: { type: 'string' }, content: { type: 'string' }, 'idempotency-key': { type: 'string' } },
  async run(ctx) {
    const toRaw = str(ctx.values.to) ?? ctx.args[0];
    const toId = intArg(toRaw, 'to_id');
    const content = await readContent(ctx, str(ctx.values.to) ? ctx.args : ctx.args.slice(1));
    if (content === '') throw usageError('nothing to send: give the content (or - to read it from stdin)');
    const { config, client } = await configured(ctx);
    const key = str(ctx.values['idempotency-key']) ?? randomUUID();
    const e2e = await e2eFor(ctx, config, client);
    // With a policy, the session encrypts (each retry afresh; the relay's idempotency covers it).
    const sent = e2e ? await withRetry(client, () => e2e.send(toId, content, { idempotencyKey: key })) : null;
    const result = sent
      ? sent.result
      : await withRetry(client, () => client.send(toId, content, { idempotencyKey: key }));
    const name = await nameOf(ctx, client, toId);
    const line = await recordSent(ctx.dir, { id: toId, name }, content, result, null);
    ctx.out.result({
      to: { id: toId, name },
      outcome: result.outcome,
      message: result.message,
      message_id: result.messageId,
      replayed: result.replayed,
      encrypted: sent?.encrypted ?? false,
      plaintext_reason: sent?.plaintextReason ?? null,
      line,
    });
    const what =
      result.outcome === 'request'
        ? 'friend request sent (they must reply before you can send more)'
        : result.outcome === 'accepted'
          ? 'sent; you are now friends'
          : 'sent';
    ctx.out.say(
      `${what} → ${who(toId, name)}${result.messageId !== null ? ` (message id ${result.messageId})` : ''}${e2eNote(sent)}`,
    );
  },
};

export const sendFile: Command = {
  usage: 'send-file <to_id> <path> [--content <text>] [--idempotency-key <key>]',
  summary: 'send a file (with optional text)',
  options: { content: { type: 'string' }, 'idempotency-key': { type: 'string' } },
  async run(ctx) {
    const toId = intArg(ctx.args[0], 'to_id');
    const path = ctx.args[1];
    if (!path) throw usageError('the file path is required');
    const full = resolve(path);
    const s = await stat(full).catch(() => null);
    if (!s?.isFile()) throw usageError(`not a readable file: ${path}`);
    const content = str(ctx.values.content) ?? '';
    const { config, client } = await configured(ctx);
    const key = str(ctx.values['idempotency-key']) ?? randomUUID();
    const e2e = await e2eFor(ctx, config, client);
    const sent = e2e
      ? await withRetry(client, () => e2e.sendFile(toId, fileSource(full), content, { idempotencyKey: key }))
      : null;
    const result = sent
      ? sent.result
      : await withRetry(client, () =>
          client.sendFile(toId, fileSource(full), content, { idempotencyKey: key }),
        );
    const name = await nameOf(ctx, client, toId);
    const filename = full.split(/[/\\]/).pop() ?? 'file';
    const line = await recordSent(ctx.dir, { id: toId, name }, content.trim() || '(附件)', result, filename);
    ctx.out.result({
      to: { id: toId, name },
      outcome: result.outcome,
      message: result.message,
      message_id: result.messageId,
      file: filename,
      size: s.size,
      encrypted: sent?.encrypted ?? false,
      plaintext_reason: sent?.plaintextReason ?? null,
      line,
    });
    ctx.out.say(
      `file ${filename} (${s.size} bytes) sent → ${who(toId, name)} [${result.outcome}]${e2eNote(sent)}`,
    );
  },
};

export const inbox: Command = {
  usage: 'inbox [--limit <n>]',
  summary: 'fallback: fetch waiting messages over HTTP when the SSE daemon is not running',
  options: { limit: { type: 'string' } },
  async run(ctx) {
    const { config, client } = await configured(ctx);
    const limit =
      ctx.values.limit === undefined ? config.batch_size : intArg(str(ctx.values.limit), '--limit');
    const running = await daemonStatus(ctx.dir);
    if (running) {
      throw new CliError(
        EXIT.daemonConflict,
        'daemon_running',
        `the inbox daemon (pid ${String(running.pid)}) is running and saves messages as they arrive`,
        'Read conversations.md / inbox_pushed.md instead; /messages is only a fallback while SSE is down.',
      );
    }
    await migrateDataDir(ctx.dir);
    const lock = await acquireInstance(ctx.dir, DAEMON_LOCK, () => ({
      pid: process.pid,
      state: 'cli-inbox',
      mode: 'fallback',
    }));
    if (!lock)
      throw new CliError(
        EXIT.daemonConflict,
        'daemon_running',
        'the inbox daemon just started; use its files',
      );
    try {
      const writer = await InboxWriter.open(ctx.dir, config);
      const caps = await client.capabilities();
      const resume = caps.resume && !ctx.legacy;
      const after = writer.lastId;
      const page = resume ? await client.readInbox({ after, limit }) : await client.readInbox({ limit });
      // Text mode: keep the relay's own blocks in inbox_pushed.md (no invented fields).
      let received = page.messages.map((message, i) => ({
        message,
        raw: page.blocks?.[i],
        rawFormat: page.blocks ? ('text' as const) : ('json' as const),
      }));
      // End-to-end: open each message first; a refused one is reported and not stored.
      const e2e = await e2eFor(ctx, config, client);
      const sealed = new Map<number, OpenedMessage>();
      const refused: Array<{ id: number | null; code: string; message: string }> = [];
      if (e2e) {
        const kept: typeof received = [];
        for (const r of received) {
          try {
            const o = await e2e.open(r.message);
            if (!o.encrypted) kept.push(r);
            else {
              const a = r.message.attachment;
              const attachment =
                a && o.file
                  ? { ...a, name: o.file.name, size: o.file.size, contentType: o.file.content_type }
                  : a;
              if (o.file && r.message.id !== null) sealed.set(r.message.id, o);
              kept.push({
                message: { ...o.message, attachment },
                raw: undefined,
                rawFormat: 'json' as const,
              });
            }
          } catch (err) {
            if (!(err instanceof E2eError)) throw err;
            refused.push({ id: r.message.id, code: err.code, message: err.message });
          }
        }
        received = kept;
      }
      const fresh = await writer.store(received, async (m, rel) => {
        try {
          const o = m.id !== null ? sealed.get(m.id) : undefined;
          if (o && e2e) await e2e.downloadFile(o, join(ctx.dir, rel));
          else await client.downloadFile(m.attachment!.fileId!, join(ctx.dir, rel));
          return rel;
        } catch {
          return null;
        }
      });
      const lastId = Math.max(0, ...page.messages.map((m) => m.id ?? 0));
      if (resume && lastId > 0) await writer.save(lastId);
      // Confirm what is now on disk (our relay keeps messages until confirmed).
      if (resume && writer.lastId > after) await client.ack(writer.lastId).catch(() => {});
      await appendDurable(
        dataPath(ctx.dir, 'channelLog'),
        formatChannelLine(
          Date.now(),
          'fallback',
          `via=openwechat inbox GET /messages${resume ? `?after=${after}` : ''} fetched=${page.messages.length} new=${fresh.length} (SSE daemon not running)`,
        ),
      );
      // groups.json (names, member counts) is otherwise refreshed by the daemon only when its stream connects.
      if (caps.groups && !ctx.legacy) await refreshGroups(ctx.dir, client).catch(() => {});
      await refreshDerived(ctx.dir);
      ctx.out.result({
        total: page.total,
        fetched: page.messages.length,
        remaining: page.remaining,
        new: fresh.length,
        messages: received.map((r) => messageJson(r.message)),
        refused,
      });
      for (const r of refused)
        ctx.out.say(`refused message id=${r.id ?? 'none'} (e2e ${r.code}): ${r.message}`);
      if (!page.messages.length) ctx.out.say('inbox is empty');
      else {
        ctx.out.say(
          `${page.messages.length} message(s), ${fresh.length} new, ${page.remaining} still waiting:`,
        );
        for (const r of received) ctx.out.say(`  ${messageLine(r.message)}`);
      }
      ctx.out.say('Tip: SSE is the main channel. Start it with: openwechat daemon start');
    } finally {
      await lock.release();
    }
  },
};

export const file: Command = {
  usage: 'file download <file_id|/files/<id>> [--out <path>]',
  summary: 'download an attachment (default: into the data folder’s files/)',
  options: { out: { type: 'string' } },
  async run(ctx) {
    const [action, ref] = ctx.args;
    if (action !== 'download' || !ref) throw usageError('use: file download <file_id>');
    const { client } = await configured(ctx);
    const out = str(ctx.values.out);
    const fileId = ref.replace(/^.*\/files\//, '');
    const tmp = out ? resolve(out) : join(ctx.dir, FILES.files, `.download-${fileId}`);
    const got = await client.downloadFile(fileId, tmp);
    let path = got.path;
    if (!out) {
      path = join(ctx.dir, attachmentPath(fileId, got.name));
      if (await exists(path)) await rm(tmp, { force: true });
      else await rename(tmp, path);
    }
    ctx.out.result({ path, name: got.name, size: got.size, content_type: got.contentType });
    ctx.out.say(`saved ${got.name} (${got.size} bytes) to ${path}`);
  },
};
