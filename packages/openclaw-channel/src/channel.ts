// The `openwechat` channel for OpenClaw: accounts from `channels.openwechat`, one resume stream per
// account feeding conversation turns (inbound), and sends to users and groups (outbound). The relay user
// is the peer; a group is a group chat whose turns name their sender.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayClient, StreamConsumer, type ConsumerEvent, type Message } from '@openwechat/client';
import {
  buildChannelOutboundSessionRoute,
  createChatChannelPlugin,
  type ChannelGatewayContext,
  type ChannelOutboundContext,
  type ChannelRuntime,
  type OpenClawConfig,
} from 'openclaw/plugin-sdk/channel-core';
import { resolveChannelInboundRouteEnvelope, toInboundMediaFacts } from 'openclaw/plugin-sdk/channel-inbound';
import {
  createChannelMessageAdapterFromOutbound,
  createMessageReceiptFromOutboundResults,
  type ChannelMessageUnknownSendContext,
  type ChannelMessageUnknownSendReconciliationResult,
} from 'openclaw/plugin-sdk/channel-outbound';
import { recordChannelBotPairLoopAndCheckSuppression } from 'openclaw/plugin-sdk/inbound-reply-dispatch';
import { saveMediaBuffer } from 'openclaw/plugin-sdk/media-store';
import { loadOutboundMediaFromUrl } from 'openclaw/plugin-sdk/outbound-media';
import { isReplyPayloadTerminalContent } from 'openclaw/plugin-sdk/reply-payload';
import { resolveConfiguredSecretInputWithFallback } from 'openclaw/plugin-sdk/secret-input-runtime';
import { resolveStateDir } from 'openclaw/plugin-sdk/state-paths';
import {
  CHANNEL_ID,
  defaultAccountId,
  listAccountIds,
  resolveAccount,
  type ResolvedAccount,
} from './config.ts';
import {
  deliveryIdempotencyKey,
  freshIdempotencyKey,
  queuedPartKey,
  reconcileQueuedDelivery,
  type KeyLookup,
  type OutboundFile,
  type RelaySender,
  type SendRequest,
} from './outbound.ts';
import { describeFlush, Outbox, sendRecorded } from './outbox.ts';
import {
  loadState,
  noteFriendRequest,
  noteNotice,
  notePeerMessage,
  noteDelivered,
  noteReplied,
  noteSent,
  noteSuppressed,
  saveState,
  stateFile,
  type AccountState,
} from './state.ts';
import { LoopEpisodes, loopFacts, sharedDefaults } from './loop-guard.ts';
import { AccountE2e, keyFolder, outboundSender, registerLive } from './e2e.ts';
import { formatTarget, normalizeTarget, parseTarget, TARGET_HINT, type Target } from './targets.ts';

/** The relay's own limits (DESIGN: content ≤ 1000 characters, files ≤ 10 MB). */
const TEXT_LIMIT = 1000;
const MEDIA_MAX_BYTES = 10 * 1024 * 1024;

/** Splits text into pieces of at most `limit` characters, preferring line and word breaks. */
function chunkText(text: string, limit: number): string[] {
  const pieces: string[] = [];
  let rest = text.trim();
  while (rest.length > limit) {
    const window = rest.slice(0, limit);
    let cut = Math.max(window.lastIndexOf('\n'), window.lastIndexOf(' '));
    if (cut < limit / 2) cut = limit;
    pieces.push(rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
  }
  if (rest) pieces.push(rest);
  return pieces;
}

// ───────────── per-account state shared with the prompt hook ─────────────

const states = new Map<string, AccountState>();
/** Saves an account's state; set while this process runs the account (the gateway, not the CLI). */
const savers = new Map<string, () => Promise<void>>();

/** A send to a user landed: remembered for the summary's "last sent, delivered?" (gateway process only). */
async function rememberSent(
  accountId: string | null | undefined,
  target: Target,
  messageId: string,
): Promise<void> {
  const id = Number(messageId);
  const key = accountId ?? 'default';
  const state = states.get(key);
  if (target.kind !== 'user' || !Number.isSafeInteger(id) || !state) return;
  noteSent(state, { id: target.id }, id, Date.now());
  await savers.get(key)?.();
}

/** The account's outbox while this process runs the account (the gateway; the CLI sends without one). */
const outboxes = new Map<string, { outbox: Outbox; warn: (msg: string) => void }>();

/** A send recorded in the account's outbox first (outbox.ts): a crash before the relay answers is re-sent. */
function sendDurably(
  accountId: string | null | undefined,
  client: RelaySender,
  req: SendRequest,
  origin: string,
  signal?: AbortSignal,
) {
  const held = outboxes.get(accountId ?? 'default');
  return sendRecorded(held?.outbox ?? null, client, req, {
    origin,
    ...(signal ? { signal } : {}),
    onOutboxError: (err) =>
      held?.warn(`outbox write failed (${(err as Error)?.message ?? err}); this send is not crash-safe`),
  });
}

function accountStateFile(accountId: string): string {
  return stateFile(resolveStateDir(process.env), accountId);
}

/** The account's state as last saved (the gateway's live copy when this process runs the account). */
export async function readAccountState(accountId: string): Promise<AccountState> {
  return states.get(accountId) ?? (await loadState(accountStateFile(accountId)));
}

// ───────────── relay access ─────────────

async function resolveToken(cfg: OpenClawConfig, account: ResolvedAccount): Promise<string> {
  const path =
    account.accountId === 'default'
      ? 'channels.openwechat.token'
      : `channels.openwechat.accounts.${account.accountId}.token`;
  const resolved = await resolveConfiguredSecretInputWithFallback({
    config: cfg,
    env: process.env,
    value: account.tokenInput ?? undefined,
    path,
    readFallback: () => (account.tokenEnv ? process.env[account.tokenEnv] : undefined),
  });
  if (resolved.value) return resolved.value;
  const why = resolved.unresolvedRefReason ?? 'no token configured';
  throw new Error(
    `openwechat account "${account.accountId}": ${why}` +
      (account.tokenEnv
        ? ` (set ${path} or the ${account.tokenEnv} environment variable)`
        : ` (set ${path})`),
  );
}

async function clientFor(cfg: OpenClawConfig, accountId?: string | null): Promise<RelayClient> {
  const account = resolveAccount(cfg, accountId);
  if (!account.baseUrl) {
    throw new Error(`openwechat account "${account.accountId}" has no baseUrl (the relay address)`);
  }
  return new RelayClient({ baseUrl: account.baseUrl, token: await resolveToken(cfg, account), mode: 'json' });
}

/** Sends go through end-to-end encryption when the account's `e2e` policy asks for it (src/e2e.ts). */
function senderFor(cfg: OpenClawConfig, accountId: string | null | undefined, client: RelayClient) {
  const account = resolveAccount(cfg, accountId);
  return outboundSender(account.accountId, account.e2e, client, resolveStateDir(process.env));
}

// ───────────── outbound ─────────────

async function loadMedia(ctx: ChannelOutboundContext): Promise<OutboundFile | null> {
  if (!ctx.mediaUrl) return null;
  const media = await loadOutboundMediaFromUrl(ctx.mediaUrl, {
    maxBytes: MEDIA_MAX_BYTES,
    mediaAccess: ctx.mediaAccess,
    ...(ctx.mediaLocalRoots ? { mediaLocalRoots: ctx.mediaLocalRoots } : {}),
    ...(ctx.mediaReadFile ? { mediaReadFile: ctx.mediaReadFile } : {}),
  });
  const fallbackName =
    ctx.mediaUrl
      .split(/[\\/?#]/)
      .filter(Boolean)
      .pop() ?? 'file';
  return { buffer: media.buffer, fileName: media.fileName ?? fallbackName, contentType: media.contentType };
}

function keyFor(ctx: ChannelOutboundContext, kind: 'text' | 'media'): string {
  // OpenClaw's durable delivery id is stable across its own retries and its crash recovery of one payload
  // part; reconcileUnknownSend derives the same key from the queue entry.
  return ctx.deliveryQueueId
    ? queuedPartKey(ctx.accountId, ctx.deliveryQueueId, ctx.deliveryPartIndex ?? 0, kind)
    : freshIdempotencyKey();
}

async function send(
  ctx: ChannelOutboundContext,
  withMedia: boolean,
): Promise<{ to: string; messageId: string }> {
  const target = parseTarget(ctx.to);
  if (!target) throw new Error(`openwechat: "${ctx.to}" is not a target (${TARGET_HINT})`);
  const client = await clientFor(ctx.cfg, ctx.accountId);
  const sender = await senderFor(ctx.cfg, ctx.accountId, client);
  const file = withMedia ? await loadMedia(ctx) : null;
  ctx.assertDirectAdapterHandoff?.();
  const result = await sendDurably(
    ctx.accountId,
    sender,
    { target, text: ctx.text ?? '', file, idempotencyKey: keyFor(ctx, withMedia ? 'media' : 'text') },
    ctx.deliveryQueueId
      ? `OpenClaw queue entry ${ctx.deliveryQueueId} part ${ctx.deliveryPartIndex ?? 0}`
      : 'a send without an OpenClaw queue entry',
    ctx.signal,
  );
  await rememberSent(ctx.accountId, target, result.messageId);
  return { to: formatTarget(target), messageId: result.messageId };
}

/**
 * The relay's answer to "did a send with this key land?" (`GET /sent?idempotency_key=`, 24 h memory):
 * `sentByKey` for a user, `sentGroupByKey` for a group (the relay keeps them apart).
 */
function keyLookup(client: RelayClient, target: Target): KeyLookup {
  return {
    sentByKey: async (key) => {
      if (target.kind === 'user') {
        const found = await client.sentByKey(key);
        return found ? { result: { messageId: found.result.messageId } } : null;
      }
      const found = await client.sentGroupByKey(key);
      return found ? { result: { messageId: null } } : null;
    },
  };
}

/** How many platform sends OpenClaw makes for one queued payload (its chunker splits long text). */
function partsOf(payload: Record<string, unknown> | undefined): { kind: 'text' | 'media'; parts: number } {
  const urls = [
    ...(typeof payload?.mediaUrl === 'string' && payload.mediaUrl.trim() ? [payload.mediaUrl] : []),
    ...(Array.isArray(payload?.mediaUrls)
      ? (payload.mediaUrls as unknown[]).filter((u) => typeof u === 'string' && u.trim())
      : []),
  ];
  if (urls.length) return { kind: 'media', parts: urls.length };
  const text = typeof payload?.text === 'string' ? payload.text.trim() : '';
  // Longer than one relay message: two or more parts (the exact count is the chunker's; see below).
  return { kind: 'text', parts: text.length > TEXT_LIMIT ? 2 : 1 };
}

/**
 * OpenClaw's delivery recovery asks this after a crash left a queued send in an unknown state
 * ("send_attempt_started"): the relay's Idempotency-Key memory answers whether it landed. See
 * reconcileQueuedDelivery for why `not_sent` is always safe to replay with our keys.
 */
async function reconcileUnknownSend(
  ctx: ChannelMessageUnknownSendContext,
): Promise<ChannelMessageUnknownSendReconciliationResult> {
  if (ctx.payloads.length !== 1) {
    return {
      status: 'unresolved',
      error: 'openwechat reconciles single-payload deliveries only',
      retryable: false,
    };
  }
  const target = parseTarget(ctx.to);
  if (!target)
    return { status: 'unresolved', error: `openwechat: "${ctx.to}" is not a target`, retryable: false };
  const { kind, parts } = partsOf(ctx.payloads[0]);
  const client = await clientFor(ctx.cfg as OpenClawConfig, ctx.accountId);
  const verdict = await reconcileQueuedDelivery(
    keyLookup(client, target),
    (i) => queuedPartKey(ctx.accountId, ctx.queueId, i, kind),
    parts,
  );
  if (verdict.status !== 'sent') return verdict;
  return {
    status: 'sent',
    messageId: verdict.messageId,
    receipt: createMessageReceiptFromOutboundResults({
      results: [{ channel: CHANNEL_ID, messageId: verdict.messageId, conversationId: ctx.to }],
      kind,
    }),
  };
}

// ───────────── inbound ─────────────

interface InboundDeps {
  ctx: ChannelGatewayContext<ResolvedAccount>;
  channelRuntime: ChannelRuntime;
  client: RelayClient;
  state: AccountState;
  save: () => Promise<void>;
  episodes: LoopEpisodes;
  /** End-to-end encryption for this account (null: `e2e: off`). */
  e2e: AccountE2e | null;
}

function log(ctx: ChannelGatewayContext<ResolvedAccount>, level: 'info' | 'warn', msg: string): void {
  const line = `openwechat[${ctx.accountId}]: ${msg}`;
  if (level === 'warn') ctx.log?.warn?.(line);
  else ctx.log?.info?.(line);
}

async function downloadAttachment(
  client: RelayClient,
  message: Message & { id: number },
  e2e: AccountE2e | null,
): Promise<{ path: string; contentType?: string } | null> {
  const att = message.attachment;
  if (!att?.fileId) return null;
  const dir = await mkdtemp(join(tmpdir(), 'openwechat-in-'));
  try {
    // An end-to-end encrypted file is decrypted and verified on the way; any other is taken as it is.
    const got =
      (await e2e?.download(att.fileId, join(dir, 'file'))) ??
      (await client.downloadFile(att.fileId, join(dir, 'file')));
    const saved = await saveMediaBuffer(
      await readFile(got.path),
      got.contentType ?? att.contentType ?? undefined,
      'inbound',
      MEDIA_MAX_BYTES,
      att.name || got.name,
    );
    return { path: saved.path, ...(saved.contentType ? { contentType: saved.contentType } : {}) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Dispatches one chat, friend request or group message as a turn; resolves when the turn settled.
 * `admitted` runs once OpenClaw's ingress admitted the sender (never for a dropped one, whose text must
 * not reach the model even through the summary); returning false ends there without a turn.
 */
async function dispatchTurn(
  deps: InboundDeps,
  message: Message & { id: number },
  admitted: () => Promise<boolean>,
): Promise<void> {
  const { ctx, channelRuntime, client } = deps;
  const account = ctx.account;
  const cfg = ctx.cfg;
  const sender = { id: message.fromId ?? 0, name: message.from?.name ?? `user ${message.fromId}` };
  const group = message.type === 'group' ? message.group : null;
  const target: Target = group ? { kind: 'group', id: group.id } : { kind: 'user', id: sender.id };
  const to = formatTarget(target);
  const peerKind = group ? 'group' : 'direct';
  const peerId = group ? `group:${group.id}` : String(sender.id);

  const { route, buildEnvelope } = resolveChannelInboundRouteEnvelope({
    cfg,
    channel: CHANNEL_ID,
    accountId: account.accountId,
    peer: { kind: peerKind, id: peerId },
    // A relay inbox is many strangers: keep each peer in its own session unless the operator chose.
    ...(cfg.session?.dmScope ? {} : { dmScope: 'per-account-channel-peer' }),
  });

  const ingress = await channelRuntime.inbound.ingress.resolveStable({
    channelId: CHANNEL_ID,
    accountId: account.accountId,
    cfg,
    identity: { key: 'sender', entryIdPrefix: 'openwechat-entry' },
    subject: { stableId: String(sender.id) },
    conversation: { kind: peerKind, id: group ? String(group.id) : String(sender.id) },
    contextBinding: {
      agentId: route.agentId,
      sessionKey: route.sessionKey,
      messageId: String(message.id),
      inboundEventKind: 'user_request',
    },
    dmPolicy: account.dmPolicy,
    groupPolicy: account.groupPolicy,
    // As configured (OpenClaw's convention: "open" admits everyone only with "*" in the list).
    allowFrom: account.allowFrom,
    groupAllowFrom: account.groupAllowFrom,
  });
  if (ingress.ingress.admission !== 'dispatch') {
    // Dropped before the model; the content is not logged.
    log(ctx, 'info', `message ${message.id} from ${sender.id} not admitted (${ingress.ingress.admission})`);
    return;
  }
  if (!(await admitted())) return;

  let text = message.content;
  if (message.type === 'friend_request') {
    text = `[friend request] ${message.content || '(no message)'}\n(Replying accepts the request.)`;
  }
  const media = message.attachment?.fileId ? await downloadAttachment(client, message, deps.e2e) : null;
  if (message.attachment && !media)
    text += `\n[attachment "${message.attachment.name}" is no longer available]`;
  const timestamp = message.createdAt;
  const fromLabel = group
    ? `${sender.name} (id ${sender.id}) in ${group.name}`
    : `${sender.name} (id ${sender.id})`;
  const body = buildEnvelope({ channel: 'openwechat', from: fromLabel, timestamp, body: text });
  const ctxPayload = channelRuntime.inbound.buildContext({
    channel: CHANNEL_ID,
    accountId: route.accountId ?? account.accountId,
    messageId: String(message.id),
    messageIdFull: String(message.id),
    timestamp,
    from: `openwechat:${peerId}`,
    sender: { id: String(sender.id), name: sender.name },
    conversation: { kind: peerKind, id: peerId, label: group ? group.name : sender.name },
    route: {
      agentId: route.agentId,
      dmScope: route.dmScope,
      accountId: route.accountId,
      routeSessionKey: route.sessionKey,
      dispatchSessionKey: route.sessionKey,
    },
    reply: { to, originatingTo: to },
    message: { body, bodyForAgent: text, rawBody: text, commandBody: text, senderLabel: sender.name },
    ...(media
      ? {
          media: toInboundMediaFacts([
            {
              path: media.path,
              ...(media.contentType ? { contentType: media.contentType } : {}),
              messageId: String(message.id),
            },
          ]),
        }
      : {}),
    channelIngress: ingress,
    // Relay users are not operators: their text never runs OpenClaw slash commands.
    extra: { CommandInterpretationSuppressed: true },
  });

  let part = 0;
  const result = await channelRuntime.inbound.dispatch({
    cfg,
    channel: CHANNEL_ID,
    accountId: account.accountId,
    route: { agentId: route.agentId, dmScope: route.dmScope, sessionKey: route.sessionKey },
    ctxPayload,
    delivery: {
      // Final replies go through OpenClaw's durable outbound queue and our message adapter (its queue id
      // keys the send; recovery reconciles it with the relay after a crash). `deliver` below is used only
      // when OpenClaw declines the durable path for a payload.
      durable: {},
      onDelivered: () => {
        if (target.kind === 'user') noteReplied(deps.state, target.id);
      },
      deliver: async (payload: Record<string, unknown>, info: { kind?: string }) => {
        if (info.kind !== 'final' || !isReplyPayloadTerminalContent(payload)) return;
        const replyText = typeof payload.text === 'string' ? payload.text : '';
        const urls = [
          ...(typeof payload.mediaUrl === 'string' ? [payload.mediaUrl] : []),
          ...(Array.isArray(payload.mediaUrls) ? (payload.mediaUrls as string[]) : []),
        ];
        // The key is the inbound id and the reply's position: a turn replayed after a crash that had
        // already sent this reply is stored once by the relay.
        // Text beyond the relay's limit goes out in pieces first; the first file carries no caption then.
        const pieces = chunkText(replyText, TEXT_LIMIT);
        const lastPiece = urls.length && pieces.length ? pieces.pop()! : null;
        const sends: Array<{ text: string; url: string | null }> = [
          ...pieces.map((p) => ({ text: p, url: null })),
          ...urls.map((url, i) => ({ text: i === 0 ? (lastPiece ?? '') : '', url })),
        ];
        for (const { text: caption, url } of sends) {
          const file = url ? await loadMedia({ cfg, to, text: caption, mediaUrl: url }) : null;
          if (!file && !caption.trim()) continue;
          const key = deliveryIdempotencyKey([CHANNEL_ID, account.accountId, 'reply', message.id, part++]);
          const sent = await sendDurably(
            account.accountId,
            deps.e2e?.sender() ?? client,
            { target, text: caption, file, idempotencyKey: key },
            `the direct reply to message ${message.id} part ${part - 1}`,
            ctx.abortSignal,
          );
          await rememberSent(account.accountId, target, sent.messageId);
        }
        if (target.kind === 'user') noteReplied(deps.state, target.id);
      },
      onError: (error: unknown) => {
        log(
          ctx,
          'warn',
          `reply to ${to} for message ${message.id} failed: ${(error as Error)?.message ?? error}`,
        );
      },
    },
    replyOptions: { sourceReplyDeliveryMode: 'automatic' },
    replyPipeline: {},
  });
  if (result.admission.kind !== 'dispatch') {
    log(ctx, 'info', `message ${message.id} declined by the channel turn (${result.admission.kind})`);
  }
}

async function handleInbound(deps: InboundDeps, message: Message & { id: number }): Promise<void> {
  const { ctx, state } = deps;
  const account = ctx.account;
  const now = message.createdAt || Date.now();
  const peer = { id: message.fromId ?? 0, name: message.from?.name ?? `user ${message.fromId}` };
  if (message.type === 'system') {
    // Friendship established, group changes: state for the summary, never a model call.
    noteNotice(state, message.content, now);
    return;
  }
  let noted = false;
  // After admission: recorded for the summary (once, whatever the retries), then the policies that keep
  // an admitted message from becoming a turn. Saved before the turn: the prompt hook reads the file.
  const admitted = async (): Promise<boolean> => {
    if (!noted) {
      noted = true;
      if (message.type === 'friend_request') noteFriendRequest(state, peer, now);
      const text =
        message.type === 'group' ? `${message.group?.name ?? 'group'}: ${message.content}` : message.content;
      notePeerMessage(state, peer, text, now);
      await deps.save();
    }
    if (message.type === 'friend_request' && account.friendRequests === 'ignore') return false;
    if (message.type === 'group' && account.requireMention && !message.mentioned) return false;
    // OpenClaw's pair loop guard: every event that would start a turn counts for (sender, this account).
    const facts = loopFacts(
      {
        accountId: account.accountId,
        messageId: message.id,
        senderId: peer.id,
        groupId: message.type === 'group' ? (message.group?.id ?? null) : null,
      },
      account.botLoopProtection,
      sharedDefaults(ctx.cfg),
    );
    const verdict = recordChannelBotPairLoopAndCheckSuppression(facts);
    if (!verdict.suppressed) return true;
    // Suppressed: no turn; the handler settles, so the relay's copy is acknowledged (never redelivered).
    noteSuppressed(state, peer.id, verdict.cooldownUntilMs);
    await deps.save();
    if (deps.episodes.suppressed(facts, verdict.cooldownUntilMs)) {
      log(
        ctx,
        'warn',
        `loop guard: ${peer.name} (id ${peer.id}) exceeded the pair budget in ${facts.conversationId}; ` +
          `its messages are acknowledged without a turn until ${new Date(verdict.cooldownUntilMs).toISOString()}`,
      );
    }
    return false;
  };
  for (let attempt = 1; ; attempt++) {
    try {
      await dispatchTurn(deps, message, admitted);
      return;
    } catch (err) {
      if (ctx.abortSignal.aborted) return; // stopping: the message is replayed on the next start
      const why = (err as Error).message;
      // A failed turn is tried again a few times (OpenClaw can refuse one while another process holds its
      // state); replies are keyed by this message's id, so a retry never sends an answer twice. Then it is
      // logged and settled: retrying forever would block every later message.
      if (attempt >= TURN_ATTEMPTS) {
        log(ctx, 'warn', `message ${message.id} from ${peer.id}: turn failed, giving up: ${why}`);
        return;
      }
      log(ctx, 'warn', `message ${message.id} from ${peer.id}: turn failed (attempt ${attempt}): ${why}`);
      await abortableDelay(TURN_RETRY_MS * attempt, ctx.abortSignal);
    }
  }
}

const TURN_ATTEMPTS = 3;
const TURN_RETRY_MS = 3_000;

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

async function startAccount(ctx: ChannelGatewayContext<ResolvedAccount>): Promise<void> {
  const account = ctx.account;
  if (!account.configured) throw new Error(`openwechat account "${account.accountId}" is not configured`);
  const channelRuntime = ctx.channelRuntime;
  if (!channelRuntime) throw new Error('openwechat: this OpenClaw gives channel plugins no runtime');
  ctx.setStatus({ accountId: account.accountId, running: true, lifecycle: 'starting', configured: true });
  const client = await clientFor(ctx.cfg, account.accountId);
  const file = accountStateFile(account.accountId);
  const state = await loadState(file);
  states.set(account.accountId, state);
  savers.set(account.accountId, () => saveState(file, state));
  const save = (): Promise<void> => saveState(file, state);
  if (account.status) {
    await client.setStatus(account.status);
    log(ctx, 'info', `relay status set to ${account.status}`);
  }
  // What the channel status shows beyond the lifecycle: receipts and end-to-end encryption.
  const audit: Record<string, unknown> = {};
  const e2e =
    account.e2e === 'off'
      ? null
      : new AccountE2e(
          account.accountId,
          account.e2e,
          client,
          keyFolder(resolveStateDir(process.env), account.accountId),
          {
            log: (level, msg) => log(ctx, level, msg),
            state,
            save,
            status: ({ publicKey, e2e: fields }) => {
              audit.e2e = fields;
              ctx.setStatus({ accountId: account.accountId, publicKey, audit: { ...audit } });
            },
          },
        );
  const unregister = e2e ? registerLive(account.accountId, e2e) : () => undefined;
  const outbox = await Outbox.shared(Outbox.dirFor(resolveStateDir(process.env), account.accountId));
  outboxes.set(account.accountId, { outbox, warn: (msg) => log(ctx, 'warn', msg) });
  // What a crash left in the outbox goes out again (same keys) whenever the relay is reachable: at the
  // stream's first connect, and after every reconnect (a relay outage may have left sends unanswered).
  const flushOutbox = (): void =>
    void outbox
      .flush(e2e?.sender() ?? client, {
        signal: ctx.abortSignal,
        onSent: (req, outcome) => rememberSent(account.accountId, req.target, outcome.messageId),
      })
      .then((report) => {
        for (const [level, msg] of describeFlush(report)) log(ctx, level, msg);
      })
      .catch((err: unknown) => log(ctx, 'warn', `outbox: flush failed: ${(err as Error)?.message ?? err}`));
  const deps: InboundDeps = { ctx, channelRuntime, client, state, save, episodes: new LoopEpisodes(), e2e };
  let deliveredCount = 0;
  // The one stream consumer of the client package (as the skill daemon and the bridge use it): a resume
  // stream from the saved cursor, one message at a time, the cursor saved and the relay acknowledged only
  // after our handler settled, reconnects with the shared backoff.
  const consumer = new StreamConsumer({
    client,
    requireFeatures: ['json', 'resume', 'idempotency'],
    cursor: {
      load: () => state.cursor,
      save: async (id) => {
        state.cursor = id;
        await save();
      },
    },
    // The relay's first line names the account: its E2E session (keys published) before any message.
    ...(e2e ? { onServerLog: (line: string) => e2e.onServerLog(line) } : {}),
    onMessage: async (delivery) => {
      if (delivery.id === null) return;
      const received = { ...delivery.message, id: delivery.id };
      // Opened before anything is built from it; a refused message settles here, without a turn.
      const message = e2e ? await e2e.open(received) : received;
      if (!message) return;
      await handleInbound(deps, message);
      // A turn cut short by the gateway stopping is not settled: the relay replays it on the next start.
      if (ctx.abortSignal.aborted) throw new Error('gateway stopping; message left for the next start');
    },
    // The relay's delivery receipts for what this account sent (JSON streams of a relay with receipts):
    // the summary's "last sent, delivered?" and the channel status.
    onReceipt: async (receipt) => {
      if (receipt.state !== 'delivered' || receipt.groupId !== null) return;
      const at = receipt.at ?? Date.now();
      if (noteDelivered(state, receipt.toId, receipt.messageId, at)) await save();
      deliveredCount++;
      Object.assign(audit, {
        receipts: true,
        delivered: deliveredCount,
        lastDelivered: { to: receipt.toId, messageId: receipt.messageId, at },
      });
      ctx.setStatus({ accountId: account.accountId, lastOutboundAt: at, audit: { ...audit } });
    },
    onUnreadable: (ev) => log(ctx, 'warn', `unreadable message ${ev.id ?? '?'}: ${ev.error}`),
    onEvent: (ev) => {
      logConsumerEvent(ctx, ev);
      if (ev.type === 'connected') flushOutbox();
    },
  });
  const stop = (): void => void consumer.stop();
  ctx.abortSignal.addEventListener('abort', stop, { once: true });
  ctx.setStatus({ accountId: account.accountId, running: true, lifecycle: 'ready', configured: true });
  try {
    if (!ctx.abortSignal.aborted) await consumer.run();
  } finally {
    ctx.abortSignal.removeEventListener('abort', stop);
    await consumer.stop();
    unregister();
    states.delete(account.accountId);
    savers.delete(account.accountId);
    outboxes.delete(account.accountId);
    ctx.setStatus({ accountId: account.accountId, running: false, lifecycle: 'stopped' });
  }
}

function logConsumerEvent(ctx: ChannelGatewayContext<ResolvedAccount>, ev: ConsumerEvent): void {
  switch (ev.type) {
    case 'connected':
      log(
        ctx,
        'info',
        `stream open from id ${ev.since ?? 0}${ev.recovered ? ` (after ${ev.recovered.attempts} attempt(s))` : ''}`,
      );
      break;
    case 'reconnecting':
      log(ctx, 'warn', `stream down (${ev.reason}); retry ${ev.attempt} in ${ev.delayMs} ms`);
      break;
    case 'ack':
      if (!ev.ok) log(ctx, 'warn', `ack up to ${ev.upTo} failed: ${ev.error}`);
      break;
    default:
      break;
  }
}

// ───────────── the plugin object ─────────────

const outbound = {
  deliveryMode: 'direct' as const,
  textChunkLimit: TEXT_LIMIT,
  chunkerMode: 'text' as const,
  sendText: async (ctx: ChannelOutboundContext) => ({ channel: CHANNEL_ID, ...(await send(ctx, false)) }),
  sendMedia: async (ctx: ChannelOutboundContext) => ({ channel: CHANNEL_ID, ...(await send(ctx, true)) }),
};

/**
 * The message adapter OpenClaw's durable outbound queue uses (docs/plugins/sdk-channel-outbound.md):
 * derived from the outbound sends, plus unknown-send reconciliation. With it OpenClaw hands every queued
 * send its queue id (the Idempotency-Key is derived from it), and after a crash asks reconcileUnknownSend
 * instead of refusing a "blind replay": what landed is acknowledged, what did not is sent again.
 */
const derived = createChannelMessageAdapterFromOutbound({
  id: CHANNEL_ID,
  outbound,
  capabilities: { text: true, media: true, messageSendingHooks: true, reconcileUnknownSend: true },
});
const openwechatMessageAdapter = {
  ...derived,
  durableFinal: {
    ...derived.durableFinal,
    automaticUnknownSendReconciliation: true,
    reconcileUnknownSendKinds: { text: true, media: true },
    reconcileUnknownSend,
  },
};

export const openwechatChannelPlugin = createChatChannelPlugin<ResolvedAccount>({
  base: {
    id: CHANNEL_ID,
    message: openwechatMessageAdapter,
    meta: {
      id: CHANNEL_ID,
      label: 'openwechat',
      selectionLabel: 'openwechat relay',
      docsPath: '/channels/openwechat',
      blurb: 'Make the agent a user of an openwechat relay: chats, friend requests, groups and files.',
    },
    capabilities: { chatTypes: ['direct', 'group'], media: true },
    reload: { configPrefixes: ['channels.openwechat'] },
    config: {
      listAccountIds: (cfg: OpenClawConfig) => listAccountIds(cfg),
      resolveAccount: (cfg: OpenClawConfig, accountId?: string | null) => resolveAccount(cfg, accountId),
      defaultAccountId: (cfg: OpenClawConfig) => defaultAccountId(cfg),
      isConfigured: (account: ResolvedAccount) => account.configured,
      isEnabled: (account: ResolvedAccount) => account.enabled,
      inspectAccount: (cfg: OpenClawConfig, accountId?: string | null) => {
        const account = resolveAccount(cfg, accountId);
        return {
          enabled: account.enabled,
          configured: account.configured,
          tokenStatus: account.tokenInput !== null ? 'configured' : account.tokenEnv ? 'env' : 'missing',
        };
      },
      resolveAllowFrom: ({ cfg, accountId }: { cfg: OpenClawConfig; accountId?: string | null }) =>
        resolveAccount(cfg, accountId).allowFrom,
    },
    messaging: {
      normalizeTarget,
      inferTargetChatType: ({ to }: { to: string }) =>
        parseTarget(to)?.kind === 'group' ? 'group' : 'direct',
      targetResolver: { looksLikeId: (raw: string) => parseTarget(raw) !== null, hint: TARGET_HINT },
      resolveOutboundSessionRoute: ({
        cfg,
        agentId,
        accountId,
        target,
      }: {
        cfg: OpenClawConfig;
        agentId: string;
        accountId?: string | null;
        target: string;
      }) => {
        const parsed = parseTarget(target);
        if (!parsed) return null;
        const kind = parsed.kind === 'group' ? 'group' : 'direct';
        return buildChannelOutboundSessionRoute({
          cfg,
          agentId,
          channel: CHANNEL_ID,
          accountId,
          recipientSessionExact: true,
          peer: { kind, id: parsed.kind === 'group' ? `group:${parsed.id}` : String(parsed.id) },
          chatType: kind,
          from: `openwechat:${accountId ?? 'default'}`,
          to: formatTarget(parsed),
        });
      },
    },
    gateway: { startAccount },
  },
  outbound,
});
