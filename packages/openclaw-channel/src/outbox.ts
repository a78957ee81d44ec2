// The plugin's own durable outbox, one directory per account in the gateway process
// (`<OpenClaw state dir>/plugins/openwechat/outbox/<account>/`). Every send is written here — target,
// text, file bytes and its Idempotency-Key — and fsynced BEFORE its HTTP request, and removed once the
// relay answered it. Whenever the account's stream (re)connects, what is left is sent again with the SAME
// key: a send that had landed is answered from the relay's idempotency record (stored once, for 24 h), one
// that had not is stored now. So a reply survives a gateway crash between the model's answer and the
// relay without depending on OpenClaw's outbound queue holding an entry for it (it sometimes holds none:
// docs/openclaw-channel.md, "Outbound, through a crash").
//
// One entry is `<h>.json` (and `<h>.bin` for a file's bytes), h = a hash of the key. Each is written to a
// temp file, fsynced and renamed, the bytes before the entry, so a crash leaves a whole entry or none;
// removal deletes the entry first. What a crash leaves half-made (temp files, bytes without an entry) is
// cleared when the outbox opens. An unreadable entry is moved aside (`.corrupt`), reported with its path,
// and never sent; the others still are.

import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ClientError } from '@openwechat/client';
import {
  RelayDeliveryError,
  sendToRelay,
  type OutboundFile,
  type RelaySender,
  type RetryPolicy,
  type SendOutcome,
  type SendRequest,
} from './outbound.ts';
import { formatTarget, parseTarget } from './targets.ts';

/**
 * How old an entry may be and still be sent again: inside the relay's 24 h idempotency window with an
 * hour to spare. An older one could be stored twice (the relay has forgotten its key), so it is moved
 * aside (`.expired`) and reported instead.
 */
export const OUTBOX_MAX_AGE_MS = 23 * 3_600_000;

interface EntryJson {
  v: 1;
  key: string;
  target: string;
  text: string;
  file: { name: string; contentType: string | null; sha256: string } | null;
  createdAt: number;
  /** What the send was, for the log (e.g. "OpenClaw queue entry <id>"); never its content. */
  origin?: string;
}

export interface OutboxEntry {
  request: SendRequest;
  createdAt: number;
  origin: string | null;
}

export interface OutboxProblem {
  path: string;
  error: string;
}

const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

let tmpSeq = 0;

/** Writes `data` to `path` so that a crash leaves the old file or the new one: temp file, fsync, rename. */
async function writeDurably(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${process.pid}.${++tmpSeq}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}

/** Makes the directory's renames and removals durable too (best effort: some filesystems refuse it). */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // the renames are then as durable as the filesystem makes them
  }
}

function parseEntry(text: string): EntryJson {
  const raw = JSON.parse(text) as Partial<EntryJson> | null;
  if (!raw || typeof raw !== 'object' || raw.v !== 1) throw new Error('not an outbox entry (version 1)');
  if (typeof raw.key !== 'string' || !raw.key) throw new Error('no idempotency key');
  if (typeof raw.target !== 'string' || !parseTarget(raw.target)) throw new Error('no valid target');
  if (typeof raw.text !== 'string') throw new Error('no text');
  if (!Number.isFinite(raw.createdAt)) throw new Error('no creation time');
  const file = raw.file ?? null;
  if (file !== null && (typeof file.name !== 'string' || typeof file.sha256 !== 'string')) {
    throw new Error('invalid file description');
  }
  return raw as EntryJson;
}

const sharedOutboxes = new Map<string, Promise<Outbox>>();

export class Outbox {
  /** Keys whose send is under way in this process: a flush leaves them to that send. */
  private readonly inFlight = new Set<string>();
  private flushing: Promise<FlushReport> | null = null;

  constructor(
    readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The process's one outbox for `dir`, opened once: an account restarted inside the same gateway keeps
   * it (opening again could clear the bytes of a send its previous run is still recording).
   */
  static shared(dir: string): Promise<Outbox> {
    let opened = sharedOutboxes.get(dir);
    if (!opened) {
      const outbox = new Outbox(dir);
      opened = outbox.open().then(() => outbox);
      sharedOutboxes.set(dir, opened);
      opened.catch(() => sharedOutboxes.delete(dir));
    }
    return opened;
  }

  /** The directory of an account's outbox under OpenClaw's state directory. */
  static dirFor(stateDir: string, accountId: string): string {
    return join(stateDir, 'plugins', 'openwechat', 'outbox', accountId.replace(/[^A-Za-z0-9._-]/g, '_'));
  }

  private base(key: string): string {
    return join(this.dir, sha256(key).slice(0, 32));
  }

  /**
   * Creates the directory and clears what a crash left half-made: temp files, and file bytes whose entry
   * was never written (the send had not started) or already removed (it had been answered). Call once,
   * before this process puts anything.
   */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const names = new Set(await readdir(this.dir));
    for (const name of names) {
      const orphanBytes = name.endsWith('.bin') && !names.has(`${name.slice(0, -4)}.json`);
      if (name.endsWith('.tmp') || orphanBytes) await rm(join(this.dir, name), { force: true });
    }
  }

  /** Records a send before it is made (durable when this resolves). */
  async put(req: SendRequest, origin?: string): Promise<void> {
    this.inFlight.add(req.idempotencyKey);
    const base = this.base(req.idempotencyKey);
    const entry: EntryJson = {
      v: 1,
      key: req.idempotencyKey,
      target: formatTarget(req.target),
      text: req.text,
      file: req.file
        ? {
            name: req.file.fileName,
            contentType: req.file.contentType ?? null,
            sha256: sha256(req.file.buffer),
          }
        : null,
      createdAt: this.now(),
      ...(origin ? { origin } : {}),
    };
    if (req.file) await writeDurably(`${base}.bin`, req.file.buffer);
    await writeDurably(`${base}.json`, JSON.stringify(entry));
    await syncDir(this.dir);
  }

  /** The send with this key was answered: the entry goes. */
  async remove(key: string): Promise<void> {
    const base = this.base(key);
    await rm(`${base}.json`, { force: true });
    await rm(`${base}.bin`, { force: true });
    await syncDir(this.dir);
  }

  /** The live send with this key is over (answered or not): a flush may take the entry from now on. */
  release(key: string): void {
    this.inFlight.delete(key);
  }

  /**
   * The entries left by sends that were not answered, oldest first, except those a live send of this
   * process is making. Unreadable ones are moved aside and reported, never returned.
   */
  async pending(): Promise<{ entries: OutboxEntry[]; problems: OutboxProblem[] }> {
    const entries: OutboxEntry[] = [];
    const problems: OutboxProblem[] = [];
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries, problems };
      throw err;
    }
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      const path = join(this.dir, name);
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // answered meanwhile
        throw err;
      }
      try {
        const raw = parseEntry(text);
        if (this.inFlight.has(raw.key)) continue;
        let file: OutboundFile | null = null;
        if (raw.file) {
          const buffer = await readFile(`${path.slice(0, -5)}.bin`).catch(() => null);
          if (!buffer) throw new Error("the file's bytes are missing");
          if (sha256(buffer) !== raw.file.sha256) throw new Error("the file's bytes do not match their hash");
          file = { buffer, fileName: raw.file.name, contentType: raw.file.contentType ?? undefined };
        }
        entries.push({
          request: { target: parseTarget(raw.target)!, text: raw.text, file, idempotencyKey: raw.key },
          createdAt: raw.createdAt,
          origin: typeof raw.origin === 'string' ? raw.origin : null,
        });
      } catch (err) {
        problems.push({ path, error: (err as Error).message });
        await this.setAside(path, 'corrupt');
      }
    }
    entries.sort((a, b) => a.createdAt - b.createdAt);
    return { entries, problems };
  }

  /** Keeps an entry (and its bytes) for the operator without ever sending it: `<name>.<why>`. */
  private async setAside(path: string, why: 'corrupt' | 'expired'): Promise<void> {
    await rename(path, `${path}.${why}`);
    await rename(`${path.slice(0, -5)}.bin`, `${path.slice(0, -5)}.bin.${why}`).catch(() => undefined);
  }

  /**
   * Sends every pending entry again with its own key, oldest first (one flush at a time; a call while one
   * runs gets that one). Stops at the first send the relay could not be asked about (down, 5xx): the
   * rest wait for the next flush.
   */
  flush(client: RelaySender, hooks: FlushHooks = {}): Promise<FlushReport> {
    this.flushing ??= this.flushOnce(client, hooks).finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async flushOnce(client: RelaySender, hooks: FlushHooks): Promise<FlushReport> {
    const report: FlushReport = { sent: 0, resent: [], refused: [], expired: [], problems: [], kept: 0 };
    const { entries, problems } = await this.pending();
    report.problems = problems;
    for (const [i, { request, createdAt, origin }] of entries.entries()) {
      if (this.now() - createdAt > OUTBOX_MAX_AGE_MS) {
        const path = `${this.base(request.idempotencyKey)}.json`;
        await this.setAside(path, 'expired');
        report.expired.push(path);
        continue;
      }
      if (this.inFlight.has(request.idempotencyKey)) continue;
      this.inFlight.add(request.idempotencyKey);
      try {
        const outcome = await sendToRelay(client, request, hooks.policy, hooks.signal);
        await this.remove(request.idempotencyKey);
        report.sent++;
        report.resent.push(
          `${origin ?? 'a send'} to ${formatTarget(request.target)}${outcome.replayed ? ' (had landed)' : ''}`,
        );
        await hooks.onSent?.(request, outcome);
      } catch (err) {
        if (!isFinalAnswer(err)) {
          report.kept = entries.length - i;
          break;
        }
        await this.remove(request.idempotencyKey);
        // The key was used for a different body: an earlier attempt of this very send had landed.
        if ((err as RelayDeliveryError).code === 'idempotency_conflict') {
          report.sent++;
          report.resent.push(`${origin ?? 'a send'} to ${formatTarget(request.target)} (had landed)`);
        } else report.refused.push({ request, error: (err as Error).message });
      } finally {
        this.inFlight.delete(request.idempotencyKey);
      }
    }
    return report;
  }
}

export interface FlushHooks {
  policy?: RetryPolicy;
  signal?: AbortSignal;
  /** A left-over send reached the relay now (or had reached it before: `outcome.replayed`). */
  onSent?: (request: SendRequest, outcome: SendOutcome) => Promise<void> | void;
}

export interface FlushReport {
  /** Sends the relay has now (stored now, or found there: answered from its idempotency record). */
  sent: number;
  /** What they were (origin and target, "(had landed)" when the relay already had it), for the log. */
  resent: string[];
  /** Sends the relay refused for good (blocked, no such user, …): dropped, as a live send would fail. */
  refused: Array<{ request: SendRequest; error: string }>;
  /** Entries too old to send safely, moved aside (paths). */
  expired: string[];
  /** Unreadable entries, moved aside. */
  problems: OutboxProblem[];
  /** Entries left for the next flush (the relay could not be asked). */
  kept: number;
}

/** The log lines of a flush (info for what was sent, warn for what was not); none when nothing was left. */
export function describeFlush(report: FlushReport): Array<['info' | 'warn', string]> {
  const lines: Array<['info' | 'warn', string]> = [];
  if (report.sent) {
    lines.push([
      'info',
      `outbox: ${report.sent} send(s) left by an interrupted attempt sent again (same keys): ${report.resent.join('; ')}`,
    ]);
  }
  for (const { request, error } of report.refused) {
    lines.push([
      'warn',
      `outbox: a send to ${formatTarget(request.target)} left by an interrupted attempt was refused: ${error}`,
    ]);
  }
  for (const path of report.expired) {
    lines.push([
      'warn',
      `outbox: ${path} is older than the relay's idempotency window; set aside as ${path}.expired, not sent`,
    ]);
  }
  for (const { path, error } of report.problems) {
    lines.push(['warn', `outbox: ${path} is unreadable (${error}); set aside as ${path}.corrupt, not sent`]);
  }
  if (report.kept) {
    lines.push([
      'warn',
      `outbox: the relay could not be reached; ${report.kept} send(s) wait for the next connect`,
    ]);
  }
  return lines;
}

/**
 * Whether a failed send ended in a definite answer from the relay, so that sending it again cannot help:
 * a refusal (4xx other than 429). `idempotency_conflict` also counts: the key was already used for this
 * send (a body that differs on a retry, e.g. re-encrypted, is still the same send), so it had landed.
 * Network errors, timeouts, 5xx, 429 and an abort leave it open whether the send landed: kept.
 */
function isFinalAnswer(err: unknown): boolean {
  if (!(err instanceof RelayDeliveryError) || err.retryable) return false;
  return err.cause instanceof ClientError && err.cause.kind === 'relay';
}

/**
 * One send through the outbox: recorded before the request, removed once the relay answered it (stored,
 * replayed or refused). Left in place when the answer never came (crash, network, abort): the next flush
 * sends it again with the same key. When the outbox cannot be written the send still goes out (logged by
 * `onOutboxError`): a reply without the crash guarantee beats no reply.
 */
export async function sendRecorded(
  outbox: Outbox | null,
  client: RelaySender,
  req: SendRequest,
  opts: {
    signal?: AbortSignal;
    policy?: RetryPolicy;
    /** What the send is, kept with the entry for the log. */
    origin?: string;
    onOutboxError?: (err: unknown) => void;
  } = {},
): Promise<SendOutcome> {
  if (!outbox) return sendToRelay(client, req, opts.policy, opts.signal);
  let recorded = true;
  try {
    await outbox.put(req, opts.origin);
  } catch (err) {
    recorded = false;
    opts.onOutboxError?.(err);
  }
  try {
    const outcome = await sendToRelay(client, req, opts.policy, opts.signal);
    if (recorded) await outbox.remove(req.idempotencyKey).catch((err) => opts.onOutboxError?.(err));
    return outcome;
  } catch (err) {
    if (recorded && isFinalAnswer(err)) await outbox.remove(req.idempotencyKey).catch(() => undefined);
    throw err;
  } finally {
    outbox.release(req.idempotencyKey);
  }
}
