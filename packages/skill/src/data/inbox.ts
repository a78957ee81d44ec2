// Storing received messages: the one path from "the relay handed us a message" to the data folder, used by
// the daemon (SSE and /messages fallback) and by `openwechat inbox`.
//
// Per batch, in this order: attachments into files/ → raw entries appended to inbox_pushed.md (fsync) →
// lines appended to conversations.md (fsync) → `<id> <line key>` entries appended to conversations.idx
// (fsync) → cursor.json replaced (last stored id) → contacts.json.
// Killed anywhere in between, the next start finds the appended lines, counts them as stored (dedup) and
// resumes after them; the relay replays whatever the cursor does not cover. Dedup: by message id (the ids
// in conversations.idx, and `id=` on lines of skill 0.x), and by (time, from_id, content) for messages
// without an id (the reference relay). A line whose idx entry was not written yet (killed in between) is
// matched by its (time, from_id, content) when the relay replays it: the entry is written, the line is not.
//
// cursor.json: {"version":1,"account":"<base_url>#<my_id>","last_id":n,
//               "starts":{"conversations":b,"inbox_pushed":b,"ids":b},"sizes":{…same keys}}
// - starts: byte offset where this account's lines begin (ids restart with another relay or account);
// - sizes: the files' sizes when the cursor was written. Bytes after that come from an unfinished batch
//   (or the CLI's outgoing lines); only there can a torn, half-written record be found and set aside.

import { open, readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { displayFilename, formatMessageBlock, type MessageView } from '@openwechat/protocol';
import type { CursorStore, Message } from '@openwechat/client';
import { appendDurable, exists, readJsonOrNull, sizeOf, writeJsonAtomic } from './atomic.ts';
import { accountKey, type SkillConfig } from './config.ts';
import {
  friendshipOfNotice,
  noteMessageTime,
  setRelationship,
  updateContacts,
  upsertContact,
} from './contacts.ts';
import {
  formatConversationLine,
  formatIdxEntry,
  formatPushedEntry,
  IDX_RE,
  lineKey,
  parseConversationLine,
  PUSHED_HEADER_RE,
  tokenName,
  tripleKey,
  utcSecond,
} from './formats.ts';
import { dataPath, FILES } from './paths.ts';

export interface CursorFile {
  version: 1;
  account: string;
  last_id: number;
  starts: { conversations: number; inbox_pushed: number; ids?: number };
  sizes: { conversations: number; inbox_pushed: number; ids?: number };
  updated_at: string;
}

export interface Received {
  message: Message;
  /** The data as the relay sent it (a text block or one JSON line); text blocks are kept verbatim. */
  raw?: string;
  rawFormat?: 'text' | 'json';
}

/** Saves an attachment; returns the path relative to the data folder (`files/…`), or null if not saved. */
export type DownloadHook = (message: Message, relPath: string) => Promise<string | null>;

export async function readCursor(dir: string): Promise<CursorFile | null> {
  const c = await readJsonOrNull<CursorFile>(dataPath(dir, 'cursor'));
  return c && typeof c.account === 'string' && Number.isInteger(c.last_id) ? c : null;
}

/** `files/<first 8 of the file id>_<name>`: stable, so a replayed message finds its file already saved. */
export function attachmentPath(fileId: string, name: string): string {
  const safe = tokenName(displayFilename(name)).replace(/^\.+/, '_');
  return `${FILES.files}/${fileId.slice(0, 8)}_${safe}`;
}

/**
 * Bytes after `trusted` that do not end with `terminator` are a torn record of an unfinished write: they are
 * appended to `<file>.torn` (kept, never lost) and cut from the file, so the record can be written again.
 */
async function repairTail(path: string, trusted: number, terminator: string): Promise<void> {
  const size = await sizeOf(path);
  if (size === 0) return;
  const fh = await open(path, 'r');
  let tail: string;
  const from = Math.min(trusted, size);
  try {
    const buf = Buffer.alloc(size - from);
    await fh.read(buf, 0, buf.length, from);
    tail = buf.toString('utf8');
  } finally {
    await fh.close();
  }
  if (tail === '' || tail.endsWith(terminator)) {
    // Nothing unfinished after the trusted part. A file that does not end in a newline at all (written by
    // hand or by an older version) gets one, so our next record starts on a line of its own.
    if (from === size && size > 0) {
      const last = Buffer.alloc(1);
      const f2 = await open(path, 'r');
      try {
        await f2.read(last, 0, 1, size - 1);
      } finally {
        await f2.close();
      }
      if (last.toString() !== '\n') await appendDurable(path, '\n');
    }
    return;
  }
  const cut = tail.lastIndexOf(terminator);
  const keepBytes = cut < 0 ? 0 : Buffer.byteLength(tail.slice(0, cut + terminator.length));
  const torn = tail.slice(cut < 0 ? 0 : cut + terminator.length);
  await appendDurable(`${path}.torn`, `${new Date().toISOString()} ${torn.replace(/\n/g, '\\n')}\n`);
  await truncate(path, from + keepBytes);
}

/**
 * The one owner of the daemon's cursor: cursor.json moves with the batch that was stored (or, through
 * `CursorStore.save`, past messages handled but not kept), and the stream consumer reads it from here
 * (`CursorStore.load`) before every connect and poll — there is no second counter to keep in step. One batch at a time: the daemon's stream consumer has one worker, and
 * `openwechat inbox` stores one page; there is no queue of its own here.
 */
export class InboxWriter implements CursorStore {
  private convIds = new Set<number>();
  private convTriples = new Set<string>();
  /** Line keys of incoming lines that no idx entry claims yet (a multiset: key → count). */
  private unindexed = new Map<string, number>();
  private pushedIds = new Set<number>();
  private pushedKeys = new Set<string>();
  private cursor!: CursorFile;

  private constructor(readonly dir: string) {}

  get lastId(): number {
    return this.cursor.last_id;
  }

  /** CursorStore: the last stored id, where the relay resumes. */
  load(): number {
    return this.cursor.last_id;
  }

  get account(): string {
    return this.cursor.account;
  }

  /**
   * Loads the cursor (a new account starts after everything already in the files), sets aside torn
   * records of an interrupted batch and builds the dedup sets. Call with the daemon lock held.
   */
  static async open(dir: string, config: SkillConfig, now = Date.now()): Promise<InboxWriter> {
    const w = new InboxWriter(dir);
    await w.switchTo(config, now);
    return w;
  }

  /**
   * Another account (config.json changed while the daemon runs): the same writer, the cursor and dedup
   * sets of that account. Call between batches.
   */
  async switchTo(config: SkillConfig, now = Date.now()): Promise<void> {
    const dir = this.dir;
    this.convIds = new Set();
    this.convTriples = new Set();
    this.unindexed = new Map();
    this.pushedIds = new Set();
    this.pushedKeys = new Set();
    const convPath = dataPath(dir, 'conversations');
    const pushedPath = dataPath(dir, 'inboxPushed');
    const idsPath = dataPath(dir, 'conversationIds');
    const account = accountKey(config);
    const old = await readCursor(dir);
    if (old && old.account === account) {
      await repairTail(convPath, old.sizes?.conversations ?? (await sizeOf(convPath)), '\n');
      await repairTail(pushedPath, old.sizes?.inbox_pushed ?? (await sizeOf(pushedPath)), '\n\n');
      await repairTail(idsPath, old.sizes?.ids ?? (await sizeOf(idsPath)), '\n');
      const starts = old.starts ?? { conversations: 0, inbox_pushed: 0 };
      this.cursor = { ...old, starts: { ...starts, ids: starts.ids ?? 0 } };
    } else {
      await repairTail(convPath, await sizeOf(convPath), '\n');
      await repairTail(pushedPath, await sizeOf(pushedPath), '\n\n');
      await repairTail(idsPath, await sizeOf(idsPath), '\n');
      // No cursor (first run, or data from an older skill): everything on disk belongs to this account.
      const starts = old
        ? {
            conversations: await sizeOf(convPath),
            inbox_pushed: await sizeOf(pushedPath),
            ids: await sizeOf(idsPath),
          }
        : { conversations: 0, inbox_pushed: 0, ids: 0 };
      this.cursor = {
        version: 1,
        account,
        last_id: 0,
        starts,
        sizes: { conversations: 0, inbox_pushed: 0, ids: 0 },
        updated_at: new Date(now).toISOString(),
      };
    }
    await this.scan();
    const maxId = Math.max(0, ...this.convIds);
    if (maxId > this.cursor.last_id) this.cursor.last_id = maxId;
    await this.writeCursor(now);
  }

  private async scan(): Promise<void> {
    const conv = await readFile(dataPath(this.dir, 'conversations')).catch(() => Buffer.alloc(0));
    for (const line of conv.subarray(this.cursor.starts.conversations).toString('utf8').split('\n')) {
      const l = parseConversationLine(line);
      if (!l || l.direction !== 'in') continue;
      if (l.id !== null) {
        this.convIds.add(l.id); // a line of skill 0.x
        continue;
      }
      this.convTriples.add(tripleKey(l.time, l.fromId, l.content));
      const key = lineKey(l.time, l.fromId, l.content);
      this.unindexed.set(key, (this.unindexed.get(key) ?? 0) + 1);
    }
    const idx = await readFile(dataPath(this.dir, 'conversationIds')).catch(() => Buffer.alloc(0));
    for (const line of idx
      .subarray(this.cursor.starts.ids ?? 0)
      .toString('utf8')
      .split('\n')) {
      const m = IDX_RE.exec(line);
      if (!m) continue;
      this.convIds.add(Number(m[1]));
      this.claim(m[2]!);
    }
    const pushed = await readFile(dataPath(this.dir, 'inboxPushed')).catch(() => Buffer.alloc(0));
    const text = pushed.subarray(this.cursor.starts.inbox_pushed).toString('utf8');
    // Entries are `## <time> id=<id>\n<block>\n\n`; only complete ones count.
    for (const entry of text.split('\n\n')) {
      const nl = entry.indexOf('\n');
      const header = PUSHED_HEADER_RE.exec(nl < 0 ? entry : entry.slice(0, nl));
      if (!header) continue;
      if (header[2] !== 'none') this.pushedIds.add(Number(header[2]));
      else this.pushedKeys.add(`${header[1]}\u0000${entry.slice(nl + 1)}`);
    }
  }

  /** An idx entry claims one line with this key; true when there was one unclaimed. */
  private claim(key: string): boolean {
    const n = this.unindexed.get(key) ?? 0;
    if (n <= 0) return false;
    if (n === 1) this.unindexed.delete(key);
    else this.unindexed.set(key, n - 1);
    return true;
  }

  private async writeCursor(now: number): Promise<void> {
    this.cursor.sizes = {
      conversations: await sizeOf(dataPath(this.dir, 'conversations')),
      inbox_pushed: await sizeOf(dataPath(this.dir, 'inboxPushed')),
      ids: await sizeOf(dataPath(this.dir, 'conversationIds')),
    };
    this.cursor.updated_at = new Date(now).toISOString();
    await writeJsonAtomic(dataPath(this.dir, 'cursor'), this.cursor);
  }

  private isNew(m: Message): boolean {
    if (m.id !== null) return !this.convIds.has(m.id);
    return !this.convTriples.has(tripleKey(utcSecond(m.createdAt), senderOf(m).id, m.content));
  }

  /**
   * Stores a batch (in the order given). Returns the messages that were new. Throws before anything is
   * written when a download hook throws (the caller retries the batch later). One call at a time.
   */
  async store(batch: Received[], download?: DownloadHook, now = Date.now()): Promise<Message[]> {
    const fresh: Array<{ r: Received; file: string | null }> = [];
    /** Ids of messages whose line is already on disk but whose idx entry is not (an interrupted batch). */
    const reindexed: Array<{ id: number; key: string }> = [];
    const seenInBatch = new Set<string>();
    for (const r of batch) {
      const m = r.message;
      const t = utcSecond(m.createdAt);
      const key = m.id !== null ? `id:${m.id}` : tripleKey(t, senderOf(m).id, m.content);
      if (seenInBatch.has(key) || !this.isNew(m)) continue;
      seenInBatch.add(key);
      if (m.id !== null) {
        const lk = lineKey(t, senderOf(m).id, m.content);
        if (this.claim(lk)) {
          reindexed.push({ id: m.id, key: lk });
          continue;
        }
      }
      let file: string | null = null;
      const fileId = m.attachment?.fileId;
      if (fileId && download) {
        const rel = attachmentPath(fileId, m.attachment!.name);
        file = (await exists(join(this.dir, rel))) ? rel : await download(m, rel);
      }
      fresh.push({ r, file });
    }

    let pushedText = '';
    for (const { r } of fresh) {
      const m = r.message;
      const block =
        r.raw !== undefined && r.rawFormat !== 'json' ? r.raw : formatMessageBlock(m as MessageView);
      const time = utcSecond(m.createdAt);
      if (m.id !== null ? this.pushedIds.has(m.id) : this.pushedKeys.has(`${time}\u0000${block}`)) continue;
      pushedText += formatPushedEntry(time, m.id, block);
      if (m.id !== null) this.pushedIds.add(m.id);
      else this.pushedKeys.add(`${time}\u0000${block}`);
    }
    let convText = '';
    let idsText = '';
    for (const { id, key } of reindexed) idsText += formatIdxEntry(id, key);
    for (const { r, file } of fresh) {
      const m = r.message;
      convText += `${conversationLineOf(m, file)}\n`;
      if (m.id !== null)
        idsText += formatIdxEntry(m.id, lineKey(utcSecond(m.createdAt), senderOf(m).id, m.content));
    }
    await appendDurable(dataPath(this.dir, 'inboxPushed'), pushedText);
    await appendDurable(dataPath(this.dir, 'conversations'), convText);
    await appendDurable(dataPath(this.dir, 'conversationIds'), idsText);
    for (const id of [...fresh.map((f) => f.r.message.id), ...reindexed.map((x) => x.id)]) {
      if (id === null) continue;
      this.convIds.add(id);
      if (id > this.cursor.last_id) this.cursor.last_id = id;
    }
    for (const { r } of fresh) {
      const m = r.message;
      if (m.id === null) this.convTriples.add(tripleKey(utcSecond(m.createdAt), senderOf(m).id, m.content));
    }
    if (fresh.length || reindexed.length) {
      await this.writeCursor(now);
      await noteIncoming(
        this.dir,
        fresh.map((f) => f.r.message),
        now,
      );
    }
    return fresh.map((f) => f.r.message);
  }

  /**
   * CursorStore: moves the cursor past `lastId` without storing anything — messages handled but not kept
   * (e.g. refused by E2E). The stream consumer calls it once a batch settled; a stored batch has moved it
   * already, so then it changes nothing.
   */
  async save(lastId: number, now = Date.now()): Promise<void> {
    if (lastId <= this.cursor.last_id) return;
    this.cursor.last_id = lastId;
    await this.writeCursor(now);
  }
}

/** Who `from=` names for a received message: the sender, or `#0(system)` for notices. */
function senderOf(m: Message): { id: number; name: string } {
  return m.type === 'system' ? { id: 0, name: 'system' } : { id: m.fromId ?? 0, name: m.from?.name ?? '' };
}

function conversationLineOf(m: Message, file: string | null): string {
  // A group message is a chat line flagged with its group: `type=chat.g<gid>[.mention]`.
  const group = m.type === 'group' && m.group ? m.group.id : null;
  return formatConversationLine({
    time: utcSecond(m.createdAt),
    from: senderOf(m),
    type: m.type === 'group' ? 'chat' : m.type,
    group,
    mentioned: group !== null && m.mentioned === true,
    file,
    attachment: m.attachment ? m.attachment.name : null,
    content: m.content,
  });
}

/** What received messages say about relationships (friend requests, acceptances, chats). */
async function noteIncoming(dir: string, messages: Message[], now = Date.now()): Promise<void> {
  if (!messages.length) return;
  await updateContacts(
    dir,
    (map) => {
      for (const m of messages) {
        const at = utcSecond(m.createdAt);
        if (m.type === 'system') {
          const friend = friendshipOfNotice(m.content);
          if (friend) {
            const c = upsertContact(map, { id: friend.id, name: friend.name }, undefined, at);
            if (c.relationship !== 'blocked') setRelationship(c, 'accepted', at);
          }
          continue;
        }
        if (m.fromId === null) continue;
        const c = upsertContact(
          map,
          {
            id: m.fromId,
            name: m.from?.name ?? null,
            ...(m.from ? { description: m.from.description } : {}),
          },
          undefined,
          at,
        );
        // A group message says who the sender is, not how we relate (members need not be friends).
        if (m.type === 'group') continue;
        noteMessageTime(c, at);
        if (c.relationship === 'blocked') continue;
        if (m.type === 'friend_request' && c.relationship !== 'accepted')
          setRelationship(c, 'pending_incoming', at);
        if (m.type === 'chat') setRelationship(c, 'accepted', at);
      }
    },
    now,
  );
}
