// What one account remembers across gateway restarts, in one JSON file under OpenClaw's state directory
// (`<state>/plugins/openwechat/<account>.json`): the resume cursor and a short activity record for the
// prompt summary. The relay's message ids increase per recipient and this plugin settles them in order,
// so the cursor (the highest id whose dispatch settled) is also the dedup record: an id at or below it is
// never dispatched again, whatever the relay redelivers. Written atomically (temp file + rename), so a
// SIGKILL leaves the previous or the next state, never a torn one.

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

interface PeerActivity {
  id: number;
  name: string;
  /** Messages from this peer since the agent last replied to it. */
  unread: number;
  lastAt: number;
  lastText: string;
  /** The last message this account sent the peer (relay id in the peer's inbox) and its delivery state. */
  lastSent?: { id: number; at: number; delivered: number | null };
  /** Messages the pair loop guard kept from becoming turns, and until when its cooldown runs. */
  suppressed?: number;
  cooldownUntil?: number;
}

export interface AccountState {
  /** Highest message id whose dispatch has settled (0: none yet). */
  cursor: number;
  /** Recent correspondents, most recent first, bounded. */
  peers: PeerActivity[];
  /** Friend requests the agent has not answered yet. */
  pendingRequests: Array<{ id: number; name: string; at: number }>;
  /** Recent system notices (friendship established, group changes), newest first, bounded. */
  notices: Array<{ at: number; text: string }>;
  /** End-to-end encryption (src/e2e.ts): messages refused (never their text) and plaintext sends. */
  e2e?: E2eActivity;
}

interface E2eActivity {
  refused: number;
  recentRefused?: Array<{ id: number; from: number | null; code: string; at: number }>;
  plaintextSent: number;
  lastPlaintext?: { to: string; reason: string; at: number };
}

const MAX_PEERS = 20;
const MAX_NOTICES = 10;
const TEXT_PREVIEW = 120;

export function emptyState(): AccountState {
  return { cursor: 0, peers: [], pendingRequests: [], notices: [] };
}

export function stateFile(stateDir: string, accountId: string): string {
  const safe = accountId.replace(/[^A-Za-z0-9._-]/g, '_');
  return join(stateDir, 'plugins', 'openwechat', `${safe}.json`);
}

export async function loadState(file: string): Promise<AccountState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw err;
  }
  const raw = JSON.parse(text) as Partial<AccountState>;
  const cursor = Number.isSafeInteger(raw.cursor) && (raw.cursor as number) >= 0 ? (raw.cursor as number) : 0;
  return {
    cursor,
    peers: Array.isArray(raw.peers) ? raw.peers.slice(0, MAX_PEERS) : [],
    pendingRequests: Array.isArray(raw.pendingRequests) ? raw.pendingRequests.slice(0, MAX_PEERS) : [],
    notices: Array.isArray(raw.notices) ? raw.notices.slice(0, MAX_NOTICES) : [],
    ...(typeof raw.e2e?.refused === 'number' && typeof raw.e2e.plaintextSent === 'number'
      ? { e2e: raw.e2e }
      : {}),
  };
}

/** Writes in flight per file: saves of one file run one after another (the last one holds the newest state). */
const writing = new Map<string, Promise<void>>();
let tmpSeq = 0;

export function saveState(file: string, state: AccountState): Promise<void> {
  // Snapshot now; the turn, a send and a receipt may each save while another write is under way.
  const text = JSON.stringify(state);
  const previous = writing.get(file) ?? Promise.resolve();
  const next = previous
    .catch(() => undefined)
    .then(async () => {
      await mkdir(dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.${++tmpSeq}.tmp`;
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, file);
    });
  writing.set(file, next);
  void next.finally(() => {
    if (writing.get(file) === next) writing.delete(file);
  });
  return next;
}

function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > TEXT_PREVIEW ? `${flat.slice(0, TEXT_PREVIEW - 1)}…` : flat;
}

/** A message from a peer (chat, group or friend request) arrived. */
export function notePeerMessage(
  state: AccountState,
  peer: { id: number; name: string },
  text: string,
  at: number,
): void {
  const previous = state.peers.find((p) => p.id === peer.id);
  const entry: PeerActivity = {
    id: peer.id,
    name: peer.name,
    unread: (previous?.unread ?? 0) + 1,
    lastAt: at,
    lastText: preview(text),
    ...(previous?.lastSent ? { lastSent: previous.lastSent } : {}),
    ...(previous?.suppressed ? { suppressed: previous.suppressed } : {}),
    ...(previous?.cooldownUntil ? { cooldownUntil: previous.cooldownUntil } : {}),
  };
  state.peers = [entry, ...state.peers.filter((p) => p.id !== peer.id)].slice(0, MAX_PEERS);
}

export function noteFriendRequest(state: AccountState, peer: { id: number; name: string }, at: number): void {
  state.pendingRequests = [
    { id: peer.id, name: peer.name, at },
    ...state.pendingRequests.filter((r) => r.id !== peer.id),
  ].slice(0, MAX_PEERS);
}

/** The agent wrote to this peer: its messages are answered, a request from it is accepted by the reply. */
export function noteReplied(state: AccountState, peerId: number): void {
  const peer = state.peers.find((p) => p.id === peerId);
  if (peer) peer.unread = 0;
  state.pendingRequests = state.pendingRequests.filter((r) => r.id !== peerId);
}

export function noteNotice(state: AccountState, text: string, at: number): void {
  state.notices = [{ at, text: preview(text) }, ...state.notices].slice(0, MAX_NOTICES);
}

/** The pair loop guard suppressed a message from this peer (its cooldown runs until `until`). */
export function noteSuppressed(state: AccountState, peerId: number, until: number): void {
  const peer = state.peers.find((p) => p.id === peerId);
  if (!peer) return;
  peer.suppressed = (peer.suppressed ?? 0) + 1;
  peer.cooldownUntil = until;
}

/** This account sent the peer message `id` (the relay's id in the peer's inbox). */
export function noteSent(
  state: AccountState,
  peer: { id: number; name?: string },
  id: number,
  at: number,
): void {
  let entry = state.peers.find((p) => p.id === peer.id);
  if (!entry) {
    entry = { id: peer.id, name: peer.name ?? `user ${peer.id}`, unread: 0, lastAt: at, lastText: '' };
    state.peers = [entry, ...state.peers].slice(0, MAX_PEERS);
  }
  if (!entry.lastSent || entry.lastSent.id <= id) entry.lastSent = { id, at, delivered: null };
}

/**
 * The relay says the peer's client acknowledged message `id` (a receipt). Ids increase per recipient, so
 * a receipt for the last sent message or a later one (sent from another process, e.g. the CLI) marks the
 * last sent message delivered. Returns whether anything changed.
 */
export function noteDelivered(state: AccountState, peerId: number, id: number, at: number): boolean {
  let entry = state.peers.find((p) => p.id === peerId);
  if (!entry) {
    // Sent from another process (the CLI) to a peer that has not written yet.
    entry = { id: peerId, name: `user ${peerId}`, unread: 0, lastAt: at, lastText: '' };
    state.peers = [entry, ...state.peers].slice(0, MAX_PEERS);
  }
  if (!entry.lastSent || entry.lastSent.id < id) {
    entry.lastSent = { id, at, delivered: at };
    return true;
  }
  if (entry.lastSent.id === id && entry.lastSent.delivered === null) {
    entry.lastSent.delivered = at;
    return true;
  }
  return false;
}
