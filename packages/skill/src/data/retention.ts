// The retention policy: keep 7 days (or what the user chose) of message data; report what is older and
// delete it only when the user explicitly asks (the CLI's --delete). Deletion rewrites the files
// atomically, keeping every newer line, and keeps cursor.json consistent with the shorter files.

import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonOrNull, writeFileAtomic, writeJsonAtomic } from './atomic.ts';
import { CHANNEL_LINE_RE, parseConversationLine, PUSHED_HEADER_RE } from './formats.ts';
import type { CursorFile } from './inbox.ts';
import { dataPath, FILES } from './paths.ts';

export interface RetentionReport {
  days: number;
  cutoff: string;
  conversations: { old: number; total: number };
  inbox_pushed: { old: number; total: number };
  sse_channel_log: { old: number; total: number };
  files: { old: number; total: number; old_bytes: number; names: string[] };
}

interface Split {
  keep: string;
  old: number;
  total: number;
  /** Bytes removed before a given offset of the original file (to shift cursor offsets). */
  removedBefore(offset: number): number;
}

/** Splits records into old/kept; `isOld(record)` decides, records keep their exact bytes. */
function splitRecords(text: string, records: string[], isOld: (r: string) => boolean): Split {
  let keep = '';
  let old = 0;
  let pos = 0;
  const removed: Array<[number, number]> = [];
  for (const r of records) {
    if (isOld(r)) {
      old++;
      removed.push([pos, Buffer.byteLength(r)]);
    } else keep += r;
    pos += Buffer.byteLength(r);
  }
  void text;
  return {
    keep,
    old,
    total: records.length,
    removedBefore(offset) {
      return removed.filter(([at]) => at < offset).reduce((sum, [, len]) => sum + len, 0);
    },
  };
}

/** Lines including their `\n` (a last line without one too). */
function lineRecords(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/** inbox_pushed.md entries (`## …` up to the next header at the start of a line). */
function pushedRecords(text: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const line of lineRecords(text)) {
    if (PUSHED_HEADER_RE.test(line.replace(/\n$/, '')) && current) {
      out.push(current);
      current = '';
    }
    current += line;
  }
  if (current) out.push(current);
  return out;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

export async function retention(
  dir: string,
  opts: { days: number; remove: boolean; now?: number },
): Promise<RetentionReport> {
  const now = opts.now ?? Date.now();
  const cutoffMs = now - opts.days * 86_400_000;
  const cutoff = new Date(cutoffMs).toISOString();
  const older = (iso: string | undefined): boolean => iso !== undefined && Date.parse(iso) < cutoffMs;

  const convText = await readText(dataPath(dir, 'conversations'));
  const conv = splitRecords(convText, lineRecords(convText), (r) =>
    older(parseConversationLine(r.replace(/\n$/, ''))?.time),
  );
  const pushedText = await readText(dataPath(dir, 'inboxPushed'));
  const pushed = splitRecords(pushedText, pushedRecords(pushedText), (r) => {
    const m = PUSHED_HEADER_RE.exec(r.split('\n', 1)[0] ?? '');
    return older(m?.[1]);
  });
  const logText = await readText(dataPath(dir, 'channelLog'));
  const log = splitRecords(logText, lineRecords(logText), (r) =>
    older(CHANNEL_LINE_RE.exec(r.replace(/\n$/, ''))?.[1]),
  );

  const filesDir = join(dir, FILES.files);
  const names = await readdir(filesDir).catch(() => [] as string[]);
  const oldFiles: string[] = [];
  let oldBytes = 0;
  let total = 0;
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const s = await stat(join(filesDir, name)).catch(() => null);
    if (!s?.isFile()) continue;
    total++;
    if (s.mtimeMs < cutoffMs) {
      oldFiles.push(name);
      oldBytes += s.size;
    }
  }

  if (opts.remove) {
    if (conv.old) await writeFileAtomic(dataPath(dir, 'conversations'), conv.keep);
    if (pushed.old) await writeFileAtomic(dataPath(dir, 'inboxPushed'), pushed.keep);
    if (log.old) await writeFileAtomic(dataPath(dir, 'channelLog'), log.keep);
    for (const name of oldFiles) await rm(join(filesDir, name), { force: true });
    const cursor = await readJsonOrNull<CursorFile>(dataPath(dir, 'cursor'));
    if (cursor && (conv.old || pushed.old)) {
      const shift = (s: Split, offset: number | undefined): number =>
        Math.max(0, (offset ?? 0) - s.removedBefore(offset ?? 0));
      await writeJsonAtomic(dataPath(dir, 'cursor'), {
        ...cursor,
        starts: {
          conversations: shift(conv, cursor.starts?.conversations),
          inbox_pushed: shift(pushed, cursor.starts?.inbox_pushed),
        },
        sizes: {
          conversations: Buffer.byteLength(conv.keep),
          inbox_pushed: Buffer.byteLength(pushed.keep),
        },
      });
    }
  }

  return {
    days: opts.days,
    cutoff,
    conversations: { old: conv.old, total: conv.total },
    inbox_pushed: { old: pushed.old, total: pushed.total },
    sse_channel_log: { old: log.old, total: log.total },
    files: { old: oldFiles.length, total, old_bytes: oldBytes, names: oldFiles },
  };
}
