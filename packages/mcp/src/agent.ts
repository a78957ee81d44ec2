// One agent's state, shared by every MCP session of this server process (stdio has one; Streamable HTTP
// may have several): the identity, the relay client, the inbox cursor and the resume stream.
//
// The relay is the inbox. Its messages stay stored until acknowledged, and an acknowledgement deletes every
// id up to it, so this server acknowledges only what a model has seen: the durable cursor (mcp-state.json)
// moves after a tool result carrying the messages was written to the client, or after a channel
// notification was; the relay is told after the cursor is on disk. Killed at any instant, the server finds
// every message it did not hand over still on the relay (0 lost; at worst one is shown twice).
//
// The stream (StreamConsumer, resumed from the cursor) says when something arrived: it drives the
// resources/updated notifications, wakes wait_for_message and pushes channel notifications; it never reads
// the inbox for the model. Its handler returns only once the model has seen the message (the cursor passed
// it), because the consumer acknowledges each message its handler returned for. Every message it hands
// over is thus the first one after the cursor (the stream replays in order from the cursor).

import { join } from 'node:path';
import {
  ClientError,
  E2eError,
  E2eSession,
  RelayClient,
  StreamConsumer,
  type Capabilities,
  type Delivery,
  type Message,
  type OpenedMessage,
} from '@openwechat/client';
import type { McpOptions } from './options.ts';
import { accountOf, loadConfigIdentity, saveConfigIdentity, StateFile, type Identity } from './store.ts';
import { messageChars } from './format.ts';

export type Log = (line: string) => void;

/** What the agent tells the MCP sessions. */
export interface AgentEvents {
  /** A message arrived that the model has not seen yet (the first one after the cursor). */
  arrived(message: Message): void;
  /** A line for the client's log (stream state; never a token). */
  log(level: 'info' | 'warning', line: string): void;
  /**
   * Channel push: returns true once one client was sent the notification (then it counts as seen).
   */
  push(message: Message): Promise<boolean>;
}

/** A message end-to-end encryption refused (tampered, replayed, forged, changed key, plaintext under required). */
export interface RefusedMessage {
  id: number | null;
  from_id: number | null;
  code: string;
  reason: string;
}

export interface InboxPage {
  /** Opened: an encrypted message's content is its decrypted text. */
  messages: Message[];
  /** Ids of the messages in `messages` that travelled end-to-end encrypted. */
  encrypted: Set<number>;
  /** Refused by the E2E checks: never shown as content; the cursor passes them like the others. */
  refused: RefusedMessage[];
  /** The cursor after these messages (commit it once they reached the model). */
  upTo: number;
  /** Messages left after these (as far as the relay counted). */
  remaining: number;
  cursor: number;
}

export class NoIdentityError extends Error {
  constructor() {
    super('not registered: call the register tool first (or set OPENWECHAT_BASE_URL and OPENWECHAT_TOKEN)');
  }
}

export class Agent {
  identity: Identity | null = null;
  client: RelayClient | null = null;
  private state: StateFile;
  private consumer: StreamConsumer | null = null;
  private consumerRun: Promise<void> | null = null;
  private listeners = new Set<AgentEvents>();
  /** Handlers of the stream waiting for the model to see their message. */
  private seenWaiters: Array<{ id: number; resolve: () => void; reject: (e: Error) => void }> = [];
  /** Bumped for every arrival: wait_for_message waits for a change. */
  private arrivals = 0;
  private arrivalWaiters = new Set<() => void>();
  private stopped = false;
  streamState: string = 'idle';
  /** No identity at start: the register tool is offered (and stays, answering "already registered"). */
  startedAnonymous = false;
  private e2eSession: E2eSession | null = null;
  /**
   * Encrypted attachments' secrets by file id, for download_file: kept in this process's memory only (the
   * file key is never written outside the message), so a file read before a restart cannot be decrypted.
   */
  readonly sealedFiles = new Map<string, OpenedMessage>();

  constructor(
    readonly opts: McpOptions,
    private readonly log: Log = () => {},
  ) {
    this.state = new StateFile(opts.dataDir);
  }

  /** Loads the identity (env, then the data folder) and starts the stream; no identity: waits for register. */
  async start(): Promise<void> {
    const o = this.opts;
    let id: Identity | null = null;
    if (o.baseUrl && o.token) {
      id = { baseUrl: o.baseUrl, token: o.token, id: null, name: null, source: 'env' };
    } else {
      id = await loadConfigIdentity(o.dataDir);
    }
    this.startedAnonymous = id === null;
    if (id) await this.useIdentity(id);
  }

  private async useIdentity(id: Identity): Promise<void> {
    this.identity = id;
    this.client = new RelayClient({ baseUrl: id.baseUrl, token: id.token });
    await this.state.load(accountOf(id));
    this.startStream();
    // Publish the keys at start-up, so peers can encrypt to this agent before it sends anything.
    if (this.opts.e2e !== 'off') {
      this.e2e().catch((err: Error) => this.log(`e2e start-up: ${err.message}`));
    }
  }

  /**
   * The E2E session (policy not off): created once the account's id is known (config.json, registration,
   * or the stream's first line for an env token), its keys in <dataDir>/e2e/.
   */
  async e2e(): Promise<E2eSession | null> {
    if (this.opts.e2e === 'off') return null;
    const client = this.requireClient();
    if (!this.e2eSession) {
      const deadline = Date.now() + 30_000;
      while (this.identity?.id == null) {
        if (this.stopped || Date.now() > deadline) {
          throw new Error(
            "end-to-end encryption: this account's user id is not known yet (relay unreachable?)",
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      this.e2eSession ??= new E2eSession({
        client,
        userId: this.identity.id,
        store: join(this.opts.dataDir, 'e2e'),
        policy: this.opts.e2e,
      });
    }
    await this.e2eSession.init();
    return this.e2eSession;
  }

  /**
   * Opens one message per policy: the message to show (decrypted, the attachment's real name and size),
   * or the refusal.
   */
  async openMessage(m: Message): Promise<{ shown: Message; encrypted: boolean } | RefusedMessage> {
    const e2e = await this.e2e();
    if (!e2e) return { shown: m, encrypted: false };
    try {
      const o = await e2e.open(m);
      if (!o.encrypted) return { shown: m, encrypted: false };
      const a = m.attachment;
      const attachment =
        a && o.file ? { ...a, name: o.file.name, size: o.file.size, contentType: o.file.content_type } : a;
      if (o.file?.fileId) this.sealedFiles.set(o.file.fileId, o);
      return { shown: { ...o.message, attachment }, encrypted: true };
    } catch (err) {
      if (!(err instanceof E2eError)) throw err;
      this.log(`refused message id=${m.id ?? 'none'} (e2e ${err.code}): ${err.message}`);
      return { id: m.id, from_id: m.fromId, code: err.code, reason: err.message };
    }
  }

  on(l: AgentEvents): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get cursor(): number {
    return this.state.cursor;
  }

  requireClient(): RelayClient {
    if (!this.client) throw new NoIdentityError();
    return this.client;
  }

  async capabilities(): Promise<Capabilities> {
    return this.requireClient().capabilities();
  }

  /** The register tool: a new account on the relay, saved to config.json (0600); the token stays there. */
  async register(input: {
    name: string;
    description?: string | null;
    baseUrl?: string | null;
  }): Promise<Identity> {
    if (this.identity)
      throw new Error(`already registered as ${this.identity.name ?? this.identity.id ?? 'this agent'}`);
    const baseUrl = input.baseUrl ?? this.opts.baseUrl;
    if (!baseUrl) throw new Error('no relay address: set OPENWECHAT_BASE_URL in the server configuration');
    const client = new RelayClient({ baseUrl });
    const { user, token } = await client.register({
      name: input.name,
      description: input.description ?? null,
    });
    const id: Identity = { baseUrl: client.baseUrl, token, id: user.id, name: user.name, source: 'register' };
    await saveConfigIdentity(this.opts.dataDir, id);
    await this.useIdentity(id);
    return id;
  }

  private startStream(): void {
    const client = this.client!;
    this.consumer = new StreamConsumer({
      client,
      cursor: { load: () => this.state.cursor },
      onMessage: (d) => this.onDelivery(d),
      onServerLog: (line) => {
        // `stream_connected user_id=<n> …`: who this token is, when the env gave only the token.
        const m = /user_id=(\d+)/.exec(line);
        if (m && this.identity && this.identity.id === null) this.identity.id = Number(m[1]);
      },
      onEvent: (ev) => {
        if (ev.type === 'connected') this.streamState = `connected (${ev.mode}, ${ev.format})`;
        else if (ev.type === 'disconnected' || ev.type === 'reconnecting')
          this.streamState = `reconnecting: ${ev.reason}`;
        if (ev.type !== 'ack') {
          const line = `stream ${ev.type}${'reason' in ev ? `: ${ev.reason}` : ''}`;
          this.log(line);
          const level = ev.type === 'connected' ? 'info' : 'warning';
          for (const l of this.listeners) l.log(level, line);
        }
      },
      requireFeatures: ['resume', 'json'],
      ackDelayMs: 0,
    });
    this.consumerRun = this.consumer.run().catch((err: Error) => {
      this.streamState = `stopped: ${err.message}`;
      this.log(`stream stopped: ${err.message}`);
    });
  }

  private async onDelivery(d: Delivery): Promise<void> {
    const id = d.id;
    // A rejection is not "handled": the consumer neither acknowledges it nor moves on.
    if (this.stopped) throw new Error('stopping');
    if (id === null || id <= this.state.cursor) return;
    this.arrivals++;
    for (const w of this.arrivalWaiters) w();
    this.arrivalWaiters.clear();
    for (const l of this.listeners) l.arrived(d.message);
    // Pushed only once opened; a refused one is not pushed (read_inbox reports the refusal).
    const opened = this.channelAllows(d.message)
      ? await this.openMessage(d.message).catch((err: Error) => {
          this.log(`e2e: ${err.message}`);
          return null;
        })
      : null;
    if (opened && 'shown' in opened) {
      let pushed = false;
      for (const l of this.listeners) if (await l.push(opened.shown).catch(() => false)) pushed = true;
      // This is the first message after the cursor (see the top): seen now, the cursor passes it.
      if (pushed) await this.commit(id);
    }
    if (id <= this.state.cursor) return;
    await new Promise<void>((resolve, reject) => this.seenWaiters.push({ id, resolve, reject }));
  }

  channelAllows(m: Message): boolean {
    const s = this.opts.channelSenders;
    if (!s || m.fromId === null) return false;
    return s === '*' || s.includes(m.fromId);
  }

  /** The messages after the cursor, as many as the caps allow; nothing moves. */
  async page(limit: number): Promise<InboxPage> {
    const client = this.requireClient();
    const caps = await client.capabilities();
    if (!caps.resume) {
      throw new ClientError(
        'unsupported',
        'unsupported',
        'this relay has no lossless inbox (needs an openwechat relay)',
      );
    }
    // A read right after another sees its cursor (the previous result's commit may still be writing).
    await this.state.settled();
    const cursor = this.state.cursor;
    const n = Math.max(1, Math.min(limit, this.opts.maxMessages));
    const res = await client.readInbox({ after: cursor, limit: Math.max(n, 1) });
    const messages: Message[] = [];
    const encrypted = new Set<number>();
    const refused: RefusedMessage[] = [];
    let upTo = cursor;
    let chars = 0;
    for (const m of res.messages) {
      if (messages.length + refused.length >= n) break;
      const o = await this.openMessage(m);
      if (!('shown' in o)) {
        refused.push(o);
        upTo = Math.max(upTo, m.id ?? 0);
        continue;
      }
      const c = messageChars(o.shown);
      // The cap on one read: what does not fit waits for the next call (at least one always fits).
      if (messages.length && chars + c > this.opts.maxChars) break;
      chars += c;
      messages.push(o.shown);
      if (o.encrypted && m.id !== null) encrypted.add(m.id);
      upTo = Math.max(upTo, m.id ?? 0);
    }
    const taken = messages.length + refused.length;
    return { messages, encrypted, refused, upTo, remaining: res.total - taken, cursor };
  }

  /**
   * The model has seen everything up to `upTo`: the cursor moves (on disk first), the stream's handlers
   * waiting for those messages return, and the relay is told (it deletes them).
   */
  async commit(upTo: number): Promise<void> {
    if (!(await this.state.advance(upTo))) return;
    const cursor = this.state.cursor;
    const still: typeof this.seenWaiters = [];
    for (const w of this.seenWaiters) {
      if (w.id <= cursor) w.resolve();
      else still.push(w);
    }
    this.seenWaiters = still;
    try {
      await this.client?.ack(cursor);
    } catch (err) {
      // The stream's next resume or `?after=` read acknowledges it anyway.
      this.log(`ack ${cursor} failed: ${(err as Error).message}`);
    }
  }

  /** A mark to wait from: take it before reading the inbox, so an arrival in between is not missed. */
  arrivalMark(): number {
    return this.arrivals;
  }

  /** Resolves at the first arrival after `mark` (true), or after `ms` or an abort (false). */
  waitForArrival(mark: number, ms: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.arrivals !== mark) return resolve(true);
      if (this.stopped || signal?.aborted) return resolve(false);
      const done = (v: boolean): void => {
        clearTimeout(timer);
        this.arrivalWaiters.delete(wake);
        signal?.removeEventListener('abort', abort);
        resolve(v);
      };
      const wake = (): void => done(true);
      const abort = (): void => done(false);
      const timer = setTimeout(() => done(false), ms);
      this.arrivalWaiters.add(wake);
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  async stop(): Promise<void> {
    // A result already written whose cursor is being saved: let it land (else it is shown again).
    await this.state.settled();
    this.stopped = true;
    for (const w of this.seenWaiters) w.reject(new Error('stopping'));
    this.seenWaiters = [];
    for (const w of this.arrivalWaiters) w();
    await this.consumer?.stop();
    await this.consumerRun;
  }
}
