// End-to-end encryption for the channel (config `e2e: off | preferred | required`, docs/e2e.md). The
// crypto, the key store, trust on first use and the policies are the client package's E2eSession, as in
// the skill, the bridge and the MCP server; this file only wires it into the plugin:
// - one session per running account, created when the relay stream names the account's id (its first
//   `stream_connected … user_id=N` line), keys generated on first use in the plugin's state directory
//   (`<state>/plugins/openwechat/e2e/<account>/`, 0700/0600) and published before any message is read;
// - inbound: every message is opened before it can become a turn; a refused one (tampered, replayed,
//   forged, a changed key not accepted, plaintext under `required`) is settled without a turn — the relay
//   acknowledges it — logged with its code and reason (never its text) and counted for the status and the
//   prompt summary;
// - outbound: a sender with the RelayClient's four send methods that encrypts per policy, so outbound.ts
//   keeps its retries and Idempotency-Keys; a plaintext send under `preferred` is logged and counted;
// - the operator's `keys` commands as gateway methods (`openwechat.keys`, `openwechat.keys.accept`), run
//   inside the gateway against the live session, so an accepted key applies without a restart.

import { join } from 'node:path';
import {
  E2eError,
  E2eSession,
  FileKeyStore,
  type E2ePolicy,
  type E2eSent,
  type Message,
  type OpenedMessage,
  type RelayClient,
} from '@openwechat/client';
import type { RelaySender } from './outbound.ts';
import type { AccountState } from './state.ts';

/** One account's key folder, beside its state file (`<state>/plugins/openwechat/<account>.json`). */
export function keyFolder(stateDir: string, accountId: string): string {
  const safe = accountId.replace(/[^A-Za-z0-9._-]/g, '_');
  return join(stateDir, 'plugins', 'openwechat', 'e2e', safe);
}

/** The account's own id from the relay's `stream_connected … user_id=N` log line; null for other lines. */
export function userIdFromStreamLog(line: string): number | null {
  if (!/^stream_connected\b/.test(line)) return null;
  const m = /\buser_id=(\d+)\b/.exec(line);
  const id = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(id) && id > 0 ? id : null;
}

const MAX_RECENT = 10;
/** Opened encrypted attachments remembered per account (a turn downloads its file when it runs). */
const MAX_SEALED_FILES = 200;

/** How many refusals and plaintext sends to keep for the summary (newest first). */
function remember<T>(list: T[] | undefined, entry: T): T[] {
  return [entry, ...(list ?? [])].slice(0, MAX_RECENT);
}

/** A refused inbound message: recorded for the summary and the status (its id, sender and why; no text). */
function noteRefused(
  state: AccountState,
  entry: { id: number; from: number | null; code: string; at: number },
): void {
  const e2e = (state.e2e ??= { refused: 0, plaintextSent: 0 });
  e2e.refused++;
  e2e.recentRefused = remember(e2e.recentRefused, entry);
}

/** A send that went in plaintext under `preferred` (the peer has no keys). */
function notePlaintextSent(state: AccountState, entry: { to: string; reason: string; at: number }): void {
  const e2e = (state.e2e ??= { refused: 0, plaintextSent: 0 });
  e2e.plaintextSent++;
  e2e.lastPlaintext = entry;
}

/** The gateway method an operator runs to accept a peer's changed key (docs/e2e.md). */
const ACCEPT_METHOD = 'openwechat.keys.accept';
const KEYS_METHOD = 'openwechat.keys';

/** The summary's E2E line, or null when nothing was refused and nothing went in plaintext. */
export function summaryLine(state: AccountState): string | null {
  const e2e = state.e2e;
  if (!e2e || (!e2e.refused && !e2e.plaintextSent)) return null;
  const parts: string[] = [];
  if (e2e.refused) {
    const last = e2e.recentRefused?.[0];
    parts.push(
      `${e2e.refused} message(s) refused, never shown` +
        (last ? ` (last: message ${last.id} from id ${last.from ?? '?'}, ${last.code})` : ''),
    );
  }
  if (e2e.plaintextSent) {
    const last = e2e.lastPlaintext;
    parts.push(
      `${e2e.plaintextSent} reply(ies) sent NOT encrypted` +
        (last ? ` (last to ${last.to}: ${last.reason})` : ''),
    );
  }
  const keyChanged = e2e.recentRefused?.some((r) => r.code === 'key_changed');
  return (
    `End-to-end encryption: ${parts.join('; ')}.` +
    (keyChanged ? ` A peer's key changed: the operator accepts it with ${ACCEPT_METHOD}.` : '')
  );
}

export interface E2eHooks {
  log: (level: 'info' | 'warn', msg: string) => void;
  state: AccountState;
  save: () => Promise<void>;
  /** Reports the account's E2E status (fingerprint, counts) to OpenClaw's channel status. */
  status: (fields: { publicKey: string | null; e2e: Record<string, unknown> }) => void;
  now?: () => number;
}

/** What the channel dispatches after open(): the decrypted message, or null when refused. */
export type Opened = (Message & { id: number }) | null;

/** The E2E side of one running account (gateway process). */
export class AccountE2e {
  private session: E2eSession | null = null;
  private fingerprint: string | null = null;
  /** Opened encrypted attachments by relay file id (downloadFile needs the secrets from the message). */
  private readonly sealedFiles = new Map<string, OpenedMessage>();
  private readonly now: () => number;

  constructor(
    readonly accountId: string,
    readonly policy: Exclude<E2ePolicy, 'off'>,
    private readonly client: RelayClient,
    readonly store: string,
    private readonly hooks: E2eHooks,
  ) {
    this.now = hooks.now ?? Date.now;
  }

  /** The live session (null until the stream named the account). */
  current(): E2eSession | null {
    return this.session;
  }

  /**
   * A relay log line arrived; the first `stream_connected` one names the account: the session is created,
   * its keys generated on first use and published before any message of that connection is handled.
   */
  async onServerLog(line: string): Promise<void> {
    const userId = userIdFromStreamLog(line);
    if (userId === null || this.session?.userId === userId) return;
    const session = new E2eSession({ client: this.client, userId, store: this.store, policy: this.policy });
    await session.init();
    this.session = session;
    this.fingerprint = await session.fingerprint();
    this.hooks.log(
      'info',
      `end-to-end encryption ${this.policy}: keys published for user ${userId}, fingerprint ${this.fingerprint}`,
    );
    this.report();
  }

  private report(): void {
    const e2e = this.hooks.state.e2e;
    this.hooks.status({
      publicKey: this.fingerprint,
      e2e: {
        policy: this.policy,
        fingerprint: this.fingerprint,
        refused: e2e?.refused ?? 0,
        plaintextSent: e2e?.plaintextSent ?? 0,
        lastRefused: e2e?.recentRefused?.[0] ?? null,
      },
    });
  }

  /**
   * Opens one delivered message before anything is built from it. Returns the message with the decrypted
   * text (and the attachment's real name, size and type), or null when it was refused: then it is logged
   * and recorded, and the caller settles it without a turn (the relay acknowledges it).
   */
  async open(message: Message & { id: number }): Promise<Opened> {
    const session = this.session;
    // The stream's first line precedes every message; without it nothing can be judged, so the message
    // is not settled (the connection is retried and the relay replays it).
    if (!session)
      throw new Error('end-to-end encryption: the account is not known yet (no stream_connected line)');
    let opened: OpenedMessage;
    try {
      opened = await session.open(message);
    } catch (err) {
      if (!(err instanceof E2eError)) throw err;
      noteRefused(this.hooks.state, { id: message.id, from: message.fromId, code: err.code, at: this.now() });
      await this.hooks.save();
      this.hooks.log(
        'warn',
        `message ${message.id} from ${message.fromId ?? '?'} refused by end-to-end encryption (${err.code}): ${err.message}` +
          (err.code === 'key_changed'
            ? `; compare the safety number (${KEYS_METHOD}) and accept with ${ACCEPT_METHOD} {"peerId":${err.peerId ?? message.fromId}}`
            : ''),
      );
      this.report();
      return null;
    }
    if (!opened.encrypted) return message;
    const a = message.attachment;
    if (a && opened.file?.fileId) {
      this.sealedFiles.set(opened.file.fileId, opened);
      // Kept for the turn's retries (each downloads again); bounded, oldest first out.
      for (const old of this.sealedFiles.keys()) {
        if (this.sealedFiles.size <= MAX_SEALED_FILES) break;
        this.sealedFiles.delete(old);
      }
    }
    const attachment =
      a && opened.file
        ? { ...a, name: opened.file.name, size: opened.file.size, contentType: opened.file.content_type }
        : a;
    return { ...message, ...opened.message, id: message.id, content: opened.text, attachment, e2e: null };
  }

  /**
   * Downloads an attachment this session opened, decrypted and verified, to `dest`; null when the file is
   * not an encrypted one (the caller downloads it as it is).
   */
  async download(
    fileId: string,
    dest: string,
  ): Promise<{ path: string; name: string; contentType: string } | null> {
    const opened = this.sealedFiles.get(fileId);
    if (!opened || !this.session) return null;
    const got = await this.session.downloadFile(opened, dest);
    return { path: got.path, name: got.name, contentType: opened.file!.content_type };
  }

  /** The sender the outbound path uses while this account runs. */
  sender(): RelaySender {
    const session = this.session;
    if (!session) {
      return refusingSender(
        this.policy,
        'the account is not connected to the relay yet (its end-to-end keys are loaded at the first connect)',
        this.client,
        (to, reason) => this.plaintext(to, reason),
      );
    }
    return sessionSender(session, (to, reason) => this.plaintext(to, reason));
  }

  private plaintext(to: string, reason: string): void {
    notePlaintextSent(this.hooks.state, { to, reason, at: this.now() });
    this.hooks.save().catch((err: Error) => this.hooks.log('warn', `state not saved: ${err.message}`));
    this.hooks.log('warn', `message to ${to} sent NOT end-to-end encrypted: ${reason}`);
    this.report();
  }

  /** `openwechat.keys`: this account's fingerprint and the pinned peers with their safety numbers. */
  async keys(): Promise<Record<string, unknown>> {
    const session = this.requireSession();
    const peers = await session.peers();
    return {
      accountId: this.accountId,
      userId: session.userId,
      policy: this.policy,
      fingerprint: await session.fingerprint(),
      peers: await Promise.all(
        peers.map(async (p) => ({
          ...p,
          // The number both sides compare; with a change pending it is the one for the pinned key.
          safetyNumber: await session.safetyNumber(p.userId),
        })),
      ),
    };
  }

  /** `openwechat.keys.accept`: accepts the peer's changed (or not yet pinned) key; applies at once. */
  async accept(peerId: number): Promise<Record<string, unknown>> {
    const session = this.requireSession();
    const info = await session.accept(peerId);
    const safetyNumber = await session.safetyNumber(peerId);
    this.hooks.log('info', `end-to-end key of user ${peerId} accepted (fingerprint ${info.fingerprint})`);
    return { accountId: this.accountId, ...info, safetyNumber };
  }

  private requireSession(): E2eSession {
    if (!this.session) {
      throw new Error(`openwechat account "${this.accountId}" is not connected to the relay yet`);
    }
    return this.session;
  }
}

type PlaintextNote = (to: string, reason: string) => void;

function noted<R>(sent: E2eSent<R>, to: string, onPlaintext: PlaintextNote): R {
  if (!sent.encrypted && sent.plaintextReason) onPlaintext(to, sent.plaintextReason);
  return sent.result;
}

/** The RelayClient's send methods through an E2eSession (encrypting per its policy). */
function sessionSender(session: E2eSession, onPlaintext: PlaintextNote): RelaySender {
  return {
    send: async (toId, text, opts) =>
      noted(await session.send(toId, text, opts), `user ${toId}`, onPlaintext),
    sendFile: async (toId, file, text, opts) =>
      noted(await session.sendFile(toId, file, text, opts), `user ${toId}`, onPlaintext),
    sendGroup: async (gid, text, opts) =>
      noted(await session.sendGroup(gid, text, opts), `group ${gid}`, onPlaintext),
    sendGroupFile: async (gid, file, text, opts) =>
      noted(await session.sendGroupFile(gid, file, text, opts), `group ${gid}`, onPlaintext),
  };
}

/**
 * Without a session: `required` refuses every send (nothing reaches the relay); `preferred` sends in
 * plaintext and says why.
 */
function refusingSender(
  policy: Exclude<E2ePolicy, 'off'>,
  why: string,
  client: RelayClient,
  onPlaintext: PlaintextNote,
): RelaySender {
  // Async, so a refusal is a rejected promise like every relay failure (sendToRelay wraps it).
  const gate = async (to: string): Promise<void> => {
    if (policy === 'required') {
      throw new E2eError('no_keys', `end-to-end encryption is required but ${why}; nothing was sent`);
    }
    onPlaintext(to, why);
  };
  return {
    send: async (toId, text, opts) => (await gate(`user ${toId}`), client.send(toId, text, opts)),
    sendFile: async (toId, file, text, opts) => (
      await gate(`user ${toId}`),
      client.sendFile(toId, file, text, opts)
    ),
    sendGroup: async (gid, text, opts) => (await gate(`group ${gid}`), client.sendGroup(gid, text, opts)),
    sendGroupFile: async (gid, file, text, opts) => (
      await gate(`group ${gid}`),
      client.sendGroupFile(gid, file, text, opts)
    ),
  };
}

// ───────────── the live accounts of this process ─────────────

// Keyed on globalThis: OpenClaw may load the plugin module more than once in one gateway process (its
// full load and later discovery loads), and the gateway methods must reach the session the running
// account opened, whichever copy registered them.
const LIVE = Symbol.for('openwechat.openclaw-channel.e2e');
function live(): Map<string, AccountE2e> {
  const g = globalThis as { [LIVE]?: Map<string, AccountE2e> };
  return (g[LIVE] ??= new Map());
}

export function registerLive(accountId: string, e2e: AccountE2e): () => void {
  live().set(accountId, e2e);
  return () => {
    if (live().get(accountId) === e2e) live().delete(accountId);
  };
}

/**
 * The sender for an outbound send of `accountId`: the client itself when E2E is off; the running account's
 * session in the gateway; elsewhere (a CLI process) a session over the account's key folder, which the
 * gateway created at its first start — without one, `required` refuses and `preferred` sends plaintext.
 */
export async function outboundSender(
  accountId: string,
  policy: E2ePolicy,
  client: RelayClient,
  stateDir: string,
  onPlaintext: PlaintextNote = (to, reason) =>
    console.warn(`openwechat[${accountId}]: message to ${to} sent NOT end-to-end encrypted: ${reason}`),
): Promise<RelaySender> {
  if (policy === 'off') return client;
  const running = live().get(accountId);
  if (running && running.policy === policy) return running.sender();
  const store = keyFolder(stateDir, accountId);
  const identity = await new FileKeyStore(store).loadIdentity();
  if (!identity) {
    return refusingSender(
      policy,
      'this account has no end-to-end keys yet (the gateway creates and publishes them at its first start)',
      client,
      onPlaintext,
    );
  }
  return sessionSender(new E2eSession({ client, userId: identity.userId, store, policy }), onPlaintext);
}

// ───────────── gateway methods ─────────────

interface MethodCall {
  params: Record<string, unknown>;
  respond: (ok: boolean, payload?: unknown, error?: { code: string; message: string }) => void;
}

function accountFor(params: Record<string, unknown>): AccountE2e {
  const raw = params.accountId;
  if (raw !== undefined && typeof raw !== 'string') throw new Error('accountId must be a string');
  const accounts = live();
  const id = raw ?? (accounts.has('default') ? 'default' : [...accounts.keys()][0]);
  const found = id !== undefined ? accounts.get(id) : undefined;
  if (!found) {
    throw new Error(
      `no running openwechat account${raw ? ` "${raw}"` : ''} with end-to-end encryption (set channels.openwechat.e2e and start the gateway)`,
    );
  }
  return found;
}

function peerIdOf(params: Record<string, unknown>): number {
  const n = typeof params.peerId === 'string' ? Number(params.peerId) : params.peerId;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) {
    throw new Error('peerId must be a relay user id (a positive integer)');
  }
  return n;
}

async function answer(call: MethodCall, run: () => Promise<unknown>): Promise<void> {
  try {
    call.respond(true, await run());
  } catch (err) {
    call.respond(false, undefined, { code: 'INVALID_REQUEST', message: (err as Error).message });
  }
}

/**
 * The operator's key commands, as gateway RPC methods (`openclaw gateway call <method> --params '{…}'`):
 * `openwechat.keys` {accountId?} lists the fingerprint and the pinned peers with their safety numbers
 * (read scope); `openwechat.keys.accept` {peerId, accountId?} accepts a peer's changed key (admin scope).
 */
export function keyMethods(): Array<{
  name: string;
  scope: 'operator.read' | 'operator.admin';
  handler: (call: MethodCall) => Promise<void>;
}> {
  return [
    {
      name: KEYS_METHOD,
      scope: 'operator.read',
      handler: (call) => answer(call, () => accountFor(call.params).keys()),
    },
    {
      name: ACCEPT_METHOD,
      scope: 'operator.admin',
      handler: (call) => answer(call, async () => accountFor(call.params).accept(peerIdOf(call.params))),
    },
  ];
}
