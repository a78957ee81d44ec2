// Structured JSON logs (pino). One line per hop, with eventId, sender, conversationId, attempt, status and
// latency. Secrets never reach a log call: handlers log chosen fields only, never headers, bodies or
// signatures. The redaction list is a second line of defence should an object with such keys slip in.

import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger } from 'pino';

const REDACT = [
  'token',
  'secret',
  'authorization',
  'signature',
  'headers',
  '*.token',
  '*.secret',
  '*.authorization',
  '*.signature',
  '*.headers',
];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'openwechat-bridge' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A URL as it may be logged: origin and path, never a query string or credentials. */
export function safeUrl(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/** An error as it may be logged: its code and message (no request objects, no headers). */
export function errInfo(err: unknown): { error: string } {
  const e = err as {
    name?: string;
    message?: string;
    code?: string;
    cause?: { code?: string; message?: string };
  };
  const code = e?.cause?.code ?? e?.code ?? e?.name ?? 'Error';
  const message = e?.cause?.message ?? e?.message ?? String(err);
  return { error: `${code}: ${message}` };
}
