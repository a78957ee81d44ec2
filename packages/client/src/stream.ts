// GET /stream as an async sequence of events. A resume stream (`Last-Event-ID`, our relay) replays what
// the client has not confirmed; a legacy stream (the reference) only pushes. Messages are parsed here:
// `?format=json` data is one MessageJson line, text data is one message block (protocol parsers).
// A stream that stays silent longer than `idleTimeoutMs` (the relay pings every 30 s) is treated as dead.

import { createParser } from 'eventsource-parser';
import {
  checkJson,
  messageFromJson,
  MessageSchema,
  parseSseMessageData,
  ReceiptSchema,
  type MessageJson,
} from '@openwechat/protocol';
import { ClientError, errorOfFailure, errorOfReply } from './errors.ts';
import { fetchWithinOrigin } from './http.ts';
import { receiptFromJson } from './receipts.ts';
import type { Message, Receipt } from './types.ts';

export type StreamEvent =
  | { type: 'log'; data: string }
  /** `json`: the wire object as the relay sent it (JSON format only). */
  | { type: 'message'; id: number | null; message: Message; raw: string; json?: MessageJson }
  /** An `event: message` this client could not read (kept raw so nothing is silently dropped). */
  | { type: 'unreadable'; id: number | null; raw: string; error: string }
  /** `event: receipt` (JSON format only): a message this user sent was delivered. No id: not a message. */
  | { type: 'receipt'; receipt: Receipt }
  | { type: 'retry'; ms: number }
  | { type: 'ping' };

export interface OpenStreamOptions {
  baseUrl: string;
  token: string;
  /** A number: resume stream from this id (0 = from the start). null/undefined: legacy stream. */
  since?: number | null;
  /** json: one MessageJson per event (our relay). text: message blocks. */
  format?: 'json' | 'text';
  /** Give up on a silent stream after this long (default 75 s, i.e. two missed pings). */
  idleTimeoutMs?: number;
  /** How long to wait for the response head (default 15 s). */
  connectTimeoutMs?: number;
  fetch?: typeof fetch;
}

export interface SseStream {
  mode: 'resume' | 'legacy';
  format: 'json' | 'text';
  /** Response headers of the accepted stream. */
  headers: Headers;
  /** Ends when the relay closes the stream; throws ClientError on a broken or silent connection. */
  events(): AsyncGenerator<StreamEvent, void, void>;
  /** Closes the connection (the events() loop then ends quietly). */
  close(): void;
}

function messageOf(event: { id?: string; data: string }, format: 'json' | 'text'): StreamEvent {
  const idField = event.id !== undefined && /^\d+$/.test(event.id) ? Number(event.id) : null;
  try {
    if (format === 'json') {
      // Checked against the protocol's schema: a malformed message is `unreadable`, not a half-read one.
      const json = checkJson(MessageSchema, JSON.parse(event.data), 'stream message');
      const message = messageFromJson(json);
      return { type: 'message', id: message.id, message, raw: event.data, json };
    }
    const parsed = parseSseMessageData(event.data);
    const message = { ...parsed, id: parsed.id ?? idField };
    return { type: 'message', id: message.id, message, raw: event.data };
  } catch (err) {
    return { type: 'unreadable', id: idField, raw: event.data, error: (err as Error).message };
  }
}

/**
 * A receipt event, checked against the protocol's schema. One that does not check out is reported as a
 * log line (a receipt is a hint — GET /sent/… tells the same — and never a message to keep).
 */
function receiptOf(data: string): StreamEvent {
  try {
    return {
      type: 'receipt',
      receipt: receiptFromJson(checkJson(ReceiptSchema, JSON.parse(data), 'receipt')),
    };
  } catch (err) {
    return { type: 'log', data: `unreadable receipt event: ${(err as Error).message}` };
  }
}

export async function openStream(opts: OpenStreamOptions): Promise<SseStream> {
  const fetchImpl = opts.fetch ?? fetch;
  const format = opts.format ?? 'text';
  const resume = opts.since !== undefined && opts.since !== null;
  const headers: Record<string, string> = { 'X-Token': opts.token, Accept: 'text/event-stream' };
  if (resume) headers['Last-Event-ID'] = String(opts.since);
  const url = `${opts.baseUrl}/stream${format === 'json' ? '?format=json' : ''}`;
  const controller = new AbortController();
  const headTimer = setTimeout(
    () => controller.abort(new DOMException('no stream head', 'TimeoutError')),
    opts.connectTimeoutMs ?? 15_000,
  );
  let res: Response;
  try {
    res = await fetchWithinOrigin(fetchImpl, url, { headers, signal: controller.signal });
  } catch (err) {
    throw errorOfFailure(err, `GET /stream at ${opts.baseUrl}`);
  } finally {
    clearTimeout(headTimer);
  }
  if (res.status !== 200 || !res.body) {
    const body = await res.text().catch(() => '');
    throw (
      errorOfReply(res.status, res.headers, body) ??
      new ClientError('protocol', 'bad_response', `GET /stream: HTTP ${res.status}`, { status: res.status })
    );
  }
  const contentType = res.headers.get('content-type') ?? '';
  if (!contentType.startsWith('text/event-stream')) {
    controller.abort();
    throw new ClientError(
      'protocol',
      'bad_response',
      `GET /stream answered ${contentType || 'no content type'}`,
    );
  }
  const body = res.body;
  const idleMs = opts.idleTimeoutMs ?? 75_000;
  let closedByUs = false;

  async function* events(): AsyncGenerator<StreamEvent, void, void> {
    const queue: StreamEvent[] = [];
    const parser = createParser({
      onEvent: (e) => {
        const type = e.event ?? 'message';
        if (type === 'log') queue.push({ type: 'log', data: e.data });
        else if (type === 'message') queue.push(messageOf(e, format));
        else if (type === 'receipt' && format === 'json') queue.push(receiptOf(e.data));
      },
      onRetry: (ms) => queue.push({ type: 'retry', ms }),
      onComment: (c) => {
        if (c.trim() === 'ping') queue.push({ type: 'ping' });
      },
    });
    const reader = body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const idle = new Promise<'idle'>((resolve) => {
          timer = setTimeout(() => resolve('idle'), idleMs);
        });
        let step: ReadableStreamReadResult<Uint8Array> | 'idle';
        try {
          step = await Promise.race([reader.read(), idle]);
        } catch (err) {
          if (closedByUs) return;
          throw errorOfFailure(err, `GET /stream at ${opts.baseUrl}`);
        } finally {
          clearTimeout(timer);
        }
        if (step === 'idle') {
          controller.abort();
          throw new ClientError('network', 'stream_idle', `GET /stream: nothing received for ${idleMs} ms`);
        }
        if (step.done) {
          parser.feed(decoder.decode());
          while (queue.length) yield queue.shift()!;
          return;
        }
        parser.feed(decoder.decode(step.value, { stream: true }));
        while (queue.length) yield queue.shift()!;
      }
    } finally {
      reader.releaseLock();
      if (!controller.signal.aborted) controller.abort();
    }
  }

  return {
    mode: resume ? 'resume' : 'legacy',
    format,
    headers: res.headers,
    events,
    close() {
      closedByUs = true;
      controller.abort();
    },
  };
}
