// A pass-through HTTP proxy in front of the real relay, so a crash test can time a gateway kill to a
// point of the send path the gateway itself does not expose: it sees the stream's bytes go by (a message
// reached the gateway) and can hold a send either before the relay sees it or after the relay stored it
// (the answer held back). Everything else is forwarded untouched, streams included. A held exchange is
// never completed: the gateway is killed while it waits, and the proxy drops the exchange.

import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type SendHold = 'before-relay' | 'after-relay';

export interface HeldSend {
  path: string;
  /** The request body (JSON text of a send). */
  body: string;
  /** The relay's answer, when held after the relay. */
  relayStatus: number | null;
}

/** A send the relay answered, as it went by (the relay's message id for a user send). */
export interface SeenSend {
  token: string;
  idempotencyKey: string | null;
  /** The recipient of a user send (`to_id` of its JSON body); null for a group or file send. */
  toId: number | null;
  status: number;
  messageId: number | null;
  /** The request body (JSON text of the send). */
  body: string;
}

export interface RelayProxy {
  url: string;
  /** Every send the relay answered, in order (a held one is not here: its answer never went back). */
  sends: SeenSend[];
  /** Holds the next send whose body contains `marker`; resolves when it is held. */
  holdNextSend(marker: string, where: SendHold): Promise<HeldSend>;
  /** Resolves when `marker` has gone by in a stream to the gateway. */
  streamed(marker: string): Promise<void>;
  /** Drops every held exchange (their sockets are closed). */
  dropHeld(): void;
  close(): Promise<void>;
}

const SEND_PATH = /^\/(send|groups\/\d+\/send)(\/file)?(\?|$)/;

export async function startRelayProxy(relayUrl: string): Promise<RelayProxy> {
  const target = new URL(relayUrl);
  const holds: Array<{ marker: string; where: SendHold; resolve: (h: HeldSend) => void }> = [];
  const watchers: Array<{ marker: string; resolve: () => void }> = [];
  const held: ServerResponse[] = [];
  const sends: SeenSend[] = [];
  const record = (req: IncomingMessage, body: string, status: number, answer: Buffer): void => {
    let messageId: number | null = null;
    try {
      const id = (JSON.parse(answer.toString('utf8')) as { message_id?: unknown }).message_id;
      if (typeof id === 'number') messageId = id;
    } catch {
      // a text-mode answer carries no id
    }
    let toId: number | null = null;
    try {
      const to = (JSON.parse(body) as { to_id?: unknown }).to_id;
      if (typeof to === 'number') toId = to;
    } catch {
      // a multipart file send
    }
    sends.push({
      toId,
      token: String(req.headers['x-token'] ?? req.headers.authorization ?? '').replace(/^Bearer\s+/i, ''),
      idempotencyKey: (req.headers['idempotency-key'] as string | undefined) ?? null,
      status,
      messageId,
      body,
    });
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer | null,
    onAnswer?: (status: number, answer: Buffer) => boolean,
  ): void => {
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (up) => {
        if (onAnswer) {
          const chunks: Buffer[] = [];
          up.on('data', (c: Buffer) => chunks.push(c));
          up.on('end', () => {
            const answer = Buffer.concat(chunks);
            if (onAnswer(up.statusCode ?? 0, answer)) return; // held: never answered
            res.writeHead(up.statusCode ?? 502, up.headers);
            res.end(answer);
          });
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.on('data', (c: Buffer) => {
          const text = c.toString('utf8');
          for (let i = watchers.length - 1; i >= 0; i--) {
            if (text.includes(watchers[i]!.marker)) watchers.splice(i, 1)[0]!.resolve();
          }
          res.write(c);
        });
        up.on('end', () => res.end());
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    if (body) upstream.end(body);
    else req.pipe(upstream);
  };

  const server: Server = createServer((req, res) => {
    if (req.method !== 'POST' || !SEND_PATH.test(req.url ?? '')) return forward(req, res, null);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const text = body.toString('utf8');
      const i = holds.findIndex((h) => text.includes(h.marker));
      if (i < 0) {
        return forward(req, res, body, (status, answer) => {
          record(req, text, status, answer);
          return false;
        });
      }
      const hold = holds.splice(i, 1)[0]!;
      held.push(res);
      if (hold.where === 'before-relay') {
        hold.resolve({ path: req.url ?? '', body: text, relayStatus: null });
        return;
      }
      forward(req, res, body, (status) => {
        hold.resolve({ path: req.url ?? '', body: text, relayStatus: status });
        return true;
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    sends,
    holdNextSend: (marker, where) => new Promise((resolve) => holds.push({ marker, where, resolve })),
    streamed: (marker) => new Promise((resolve) => watchers.push({ marker, resolve })),
    dropHeld() {
      for (const res of held.splice(0)) res.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of held.splice(0)) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
