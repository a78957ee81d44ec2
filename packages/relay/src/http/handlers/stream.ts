// GET /stream: the SSE channel (docs/compat.md GET /stream; docs/protocol.md resume/ack).

import { encodeSseEvent, encodeSseRetry, RelayError, streamConnectedLog } from '@openwechat/protocol';
import type { FastifyRequest } from 'fastify';
import type { MessagingStore, UserRecord } from '../../store/types.ts';
import { StreamConnection, type StreamFormat } from '../../stream/connection.ts';
import type { AdmitRefusal } from '../../stream/hub.ts';
import { intField, type Issues } from '../input.ts';
import { acknowledge } from './acknowledge.ts';
import type { Output, StoreCtx } from '../route.ts';

export interface StreamInput {
  /** Last id the client has: a resume stream. null: a legacy stream. */
  since: number | null;
  format: StreamFormat;
}

export function parseStream(req: FastifyRequest, issues: Issues): StreamInput {
  const q = req.query as Record<string, unknown>;
  const header = req.headers['last-event-id'];
  let since: number | null = null;
  if (q.since !== undefined) since = intField(issues, 'query -> since', q.since, { ge: 0 }) ?? null;
  else if (typeof header === 'string' && header.trim() !== '') {
    since = intField(issues, 'header -> Last-Event-ID', header, { ge: 0 }) ?? null;
  }
  const format = q.format === 'json' ? 'json' : 'text';
  return { since, format };
}

function sseRefusal(ctx: StoreCtx<unknown>, refused: AdmitRefusal): RelayError {
  if (refused.kind === 'churn') {
    ctx.services.metrics.rateLimited.inc({ limit: 'sse_replace' });
    return new RelayError('sse_replaced_recently', undefined, {
      'retry-after': String(Math.max(1, Math.ceil(refused.retryAfterMs / 1000))),
    });
  }
  ctx.services.metrics.rateLimited.inc({ limit: 'sse_per_ip' });
  const max = ctx.services.config.sseMaxPerIp;
  return new RelayError('sse_limit', `该 IP 的 SSE 连接数已达上限（最多 ${max} 条）。`, {
    'retry-after': '2',
  });
}

/** How long a stream that would be refused as churn waits for closes in flight to be noticed. */
const CLOSE_NOTICE_MS = 25;

export async function openStream(
  ctx: StoreCtx<MessagingStore> & { user: UserRecord },
  input: StreamInput,
): Promise<Output> {
  const { hub, config } = ctx.services;
  const { req, reply, user } = ctx;
  const ip = req.ip;
  // Refuse early, before any store round trip; nothing is reserved across the awaits below. (Churn is
  // decided after them, see below.)
  const early = hub.refusal(user.id, ip);
  if (early?.kind === 'ip') throw sseRefusal(ctx, early);
  let cursor = 0;
  if (input.since !== null) {
    // Other instances' legacy streams of this user delete nothing from now on (issue 24.3).
    await hub.holdResume(user.id);
    // Everything up to `since` is acknowledged. A client claiming ids this inbox never issued
    // (e.g. a restored database) must not skip the next real ones.
    const { lastId } = await acknowledge(ctx, input.since, 'stream');
    cursor = Math.min(input.since, lastId);
  }
  if (hub.refusal(user.id, ip)?.kind === 'churn') {
    // Opening would replace a stream within SSE_REPLACE_INTERVAL_SECONDS of the last replacement. The
    // stream(s) in the way may be this client's own previous connections, closed a moment ago, whose
    // close the relay has not processed yet (a client that reconnects at once): let pending close
    // events run before deciding, so only live streams count.
    await new Promise((resolve) => setTimeout(resolve, CLOSE_NOTICE_MS));
  }
  // From here to the listeners there is no await: a client that went away during the round trips is
  // seen now, and one that goes away later fires the listeners (issue 17.2).
  const res = reply.raw;
  if (req.raw.destroyed || res.destroyed || req.raw.socket?.destroyed) {
    reply.hijack();
    return { raw: true };
  }
  const refused = hub.admit(user.id, ip);
  if (refused) throw sseRefusal(ctx, refused);
  reply.hijack();
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': String(req.id),
  });
  res.flushHeaders();
  const conn = new StreamConnection(
    hub,
    user.id,
    ip,
    input.since === null ? 'legacy' : 'resume',
    input.format,
    res,
    cursor,
  );
  hub.add(conn);
  req.raw.socket.setNoDelay(true);
  req.raw.on('close', () => conn.close());
  res.on('close', () => conn.close());
  res.on('error', () => conn.close());
  // `event: log` stays the first thing on the wire (reference clients look for it); `retry:` follows.
  conn.write(
    encodeSseEvent({
      event: 'log',
      data: streamConnectedLog({ requestId: String(req.id), userId: user.id, ip, at: ctx.services.now() }),
    }) + encodeSseRetry(config.sseRetryMs),
  );
  conn.refresh(); // the replay of what is stored after the cursor
  return { raw: true };
}
