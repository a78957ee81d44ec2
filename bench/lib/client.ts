// A small HTTP client for preparing benchmark data (registrations, friendships, inbox reads). It speaks
// JSON mode to relays that support it and falls back to parsing the reference's text answers, so the
// same preparation works against `--target` relays.

import { Pool } from 'undici';
import { parseRegistered, parseSendReply } from '@openwechat/protocol';

export interface User {
  id: number;
  token: string;
  name: string;
}

export interface Answer {
  status: number;
  text: string;
  contentType: string;
}

export class RelayClient {
  readonly pool: Pool;

  constructor(
    readonly baseUrl: string,
    connections = 32,
  ) {
    this.pool = new Pool(baseUrl, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
  }

  async request(
    method: 'GET' | 'POST',
    path: string,
    opts: { token?: string; body?: unknown; json?: boolean; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers['x-token'] = opts.token;
    if (opts.json) headers.accept = 'application/json';
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const res = await this.pool.request({ origin: this.baseUrl, method, path, headers, body });
    const text = await res.body.text();
    const ct = res.headers['content-type'];
    return { status: res.statusCode, text, contentType: typeof ct === 'string' ? ct : '' };
  }

  /** POST /register; JSON mode when the relay answers JSON, else the reference's text reply. */
  async register(name: string): Promise<User> {
    const a = await this.request('POST', '/register', {
      json: true,
      body: { name, description: 'bench' },
    });
    if (a.status !== 200) throw new Error(`register ${name}: HTTP ${a.status} ${a.text.slice(0, 200)}`);
    if (a.contentType.includes('json')) {
      const j = JSON.parse(a.text) as { user: { id: number }; token: string };
      return { id: j.user.id, token: j.token, name };
    }
    const r = parseRegistered(a.text);
    return { id: r.id, token: r.token, name };
  }

  /** POST /send in text mode; throws unless the reply is one of the success lines. */
  async send(from: User, toId: number, content: string): Promise<void> {
    const a = await this.request('POST', '/send', { token: from.token, body: { to_id: toId, content } });
    const r = parseSendReply(a.text);
    if (a.status !== 200 || !r.ok) throw new Error(`send ${from.id}→${toId}: HTTP ${a.status} ${r.error}`);
  }

  /** Read-and-clear the whole inbox (GET /messages?limit=500 until empty); returns the bytes read. */
  async drainInbox(user: User, maxRequests = 1000): Promise<number> {
    let bytes = 0;
    for (let i = 0; i < maxRequests; i++) {
      const a = await this.request('GET', '/messages?limit=500', { token: user.token, json: true });
      if (a.status !== 200) throw new Error(`GET /messages: HTTP ${a.status}`);
      bytes += a.text.length;
      if (a.contentType.includes('json')) {
        const j = JSON.parse(a.text) as { remaining: number; fetched: number };
        if (!j.fetched || !j.remaining) return bytes;
      } else if (!/剩余\s*[1-9]/.test(a.text)) return bytes;
    }
    return bytes;
  }

  /** GET /stats → total messages ever stored (null when the relay has no such counter). */
  async storedMessages(): Promise<number | null> {
    try {
      const a = await this.request('GET', '/stats');
      if (a.status !== 200) return null;
      const j = JSON.parse(a.text) as { messages?: unknown };
      return typeof j.messages === 'number' ? j.messages : null;
    } catch {
      return null;
    }
  }

  /**
   * The stored-message count once it has stopped moving: requests that were still in flight when the
   * load generator stopped (a warm-up's, the previous point's) are committed a moment later and must
   * not be counted in the next point. Two equal reads 100 ms apart, at most 3 s.
   */
  async settledStoredMessages(): Promise<number | null> {
    let last = await this.storedMessages();
    for (let i = 0; i < 30 && last !== null; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = await this.storedMessages();
      if (now === last) return now;
      last = now;
    }
    return last;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(lanes);
  return out;
}

/** A run-unique name prefix (relay names are unique per relay; --target relays keep theirs). */
export function namePrefix(): string {
  return `b${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
}

export interface Pair {
  sender: User;
  recipient: User;
}

/**
 * Registers `n` friend pairs: sender → recipient (request), recipient → sender (accept), then empties
 * the sender's inbox (the accept put a chat and a notice there) so a send's inbox preview stays small.
 */
export async function preparePairs(client: RelayClient, n: number, prefix: string): Promise<Pair[]> {
  return mapLimit(
    Array.from({ length: n }, (_, i) => i),
    16,
    async (i) => {
      const sender = await client.register(`${prefix}s${i}`);
      const recipient = await client.register(`${prefix}r${i}`);
      await client.send(sender, recipient.id, 'hello');
      await client.send(recipient, sender.id, 'hello back');
      await client.drainInbox(sender);
      return { sender, recipient };
    },
  );
}
