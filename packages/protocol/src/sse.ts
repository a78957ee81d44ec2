// Server-sent events framing (docs/compat.md GET /stream) with the W-9 fix: data is split on every SSE line
// ending (`\r\n`, `\r`, `\n`), so no content can end a `data:` line early or start a field of its own.

import { utcSeconds } from './text.ts';

/** Field values of `event:` and `id:` must be single-line (an SSE parser ends the field at any of these). */
function singleLine(value: string): string {
  return value.replace(/[\r\n\0]/g, '');
}

export function encodeSseEvent(e: { event?: string; id?: number | string; data: string }): string {
  let out = '';
  if (e.event !== undefined) out += `event: ${singleLine(e.event)}\n`;
  if (e.id !== undefined) out += `id: ${singleLine(String(e.id))}\n`;
  for (const line of e.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/** The heartbeat comment, sent after 30 s without a message. */
export const SSE_PING = ': ping\n\n';

/** Sent once at the start of a stream: the client's reconnection delay. */
export function encodeSseRetry(ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`;
}

/** The data of the first event, `event: log`. */
export function streamConnectedLog(p: { requestId: string; userId: number; ip: string; at: number }): string {
  return `stream_connected request_id=${p.requestId} user_id=${p.userId} ip=${p.ip} ts=${utcSeconds(p.at)}`;
}
