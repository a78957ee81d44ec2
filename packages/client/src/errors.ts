// Typed errors for everything a relay call can end in: a refusal by the relay (with the stable code of the
// protocol's error table, recovered from JSON mode or from the reference's text), a network failure, a
// timeout, or a reply this client cannot read. Callers switch on `kind` and `code`, never on message text.

import { ERRORS, parseTextError, type ErrorCode } from '@openwechat/protocol';
import { parseRetryAfter } from './retry.ts';

export type ClientErrorKind =
  /** The relay answered and refused (HTTP error status, or a text-mode `错误：…` body). */
  | 'relay'
  /** The relay could not be reached or the connection broke (DNS, refused, reset). */
  | 'network'
  /** No answer within the time limit. */
  | 'timeout'
  /** The relay answered something this client cannot interpret. */
  | 'protocol'
  /** The call is not possible with this relay or these arguments (e.g. `after=` on the reference). */
  | 'unsupported';

/** Codes a client adds to the relay's table. */
type ClientOnlyCode =
  | 'network_error'
  | 'timeout'
  | 'bad_response'
  | 'unsupported'
  | 'relay_error'
  | 'stream_idle'
  /** The relay answered with a redirect to another origin; the token is never sent there. */
  | 'redirect_refused';

export type ClientErrorCode = ErrorCode | ClientOnlyCode;

/** The refusals specific to group chats (issue 11), from the protocol's error table. */
export const GROUP_ERROR_CODES = [
  'group_not_found',
  'not_group_owner',
  'not_friends_of_owner',
  'already_member',
  'not_group_member',
  'group_full',
  'too_many_groups',
  'owner_cannot_leave',
  'invalid_group_name',
] as const satisfies readonly ErrorCode[];

export type GroupErrorCode = (typeof GROUP_ERROR_CODES)[number];

/** True for a relay refusal with one of the group codes (narrows `code`). */
export function isGroupError(err: unknown): err is ClientError & { code: GroupErrorCode } {
  return err instanceof ClientError && (GROUP_ERROR_CODES as readonly string[]).includes(err.code);
}

export class ClientError extends Error {
  readonly kind: ClientErrorKind;
  readonly code: ClientErrorCode;
  /** HTTP status of the answer; 0 when there was none. */
  readonly status: number;
  /** Milliseconds the relay asked us to wait (Retry-After), or null. */
  readonly retryAfterMs: number | null;

  constructor(
    kind: ClientErrorKind,
    code: ClientErrorCode,
    message: string,
    opts: { status?: number; retryAfterMs?: number | null; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ClientError';
    this.kind = kind;
    this.code = code;
    this.status = opts.status ?? 0;
    this.retryAfterMs = opts.retryAfterMs ?? null;
  }
}

// Details that carry a number (limits) are matched by prefix.
const PREFIXES: Array<[string, ErrorCode]> = [
  ['该 IP 的 SSE 连接数已达上限', 'sse_limit'],
  ['文件大小超过限制', 'file_too_large'],
  ['待对方接收的附件总量超过限制', 'upload_quota_exceeded'],
  ['名称不能包含', 'invalid_name'],
  ['群组成员已达上限', 'group_full'],
  ['加入的群组数量已达上限', 'too_many_groups'],
];

/** The error-table code of a text-mode detail (`Token 无效` → invalid_token), or null when unknown. */
export function codeOfDetail(detail: string): ErrorCode | null {
  for (const [code, spec] of Object.entries(ERRORS) as Array<[ErrorCode, { message: string }]>) {
    if (spec.message !== '' && spec.message === detail) return code;
  }
  for (const [prefix, code] of PREFIXES) if (detail.startsWith(prefix)) return code;
  return null;
}

/**
 * The refusal carried by an answer, or null when the answer is a success. Understands JSON-mode bodies
 * (`{"error":{"code","message"}}`), FastAPI route errors (`{"detail":…}`), and the reference's text
 * conventions (soft 200 `错误：…`, hard `错误 <status>：…`, `请求格式错误：…`, the limiter's 429).
 */
export function errorOfReply(
  status: number,
  headers: Headers,
  body: string,
  now: number = Date.now(),
): ClientError | null {
  const retry = parseRetryAfter(headers.get('retry-after'), now);
  const trimmed = body.trimStart();
  if (trimmed.startsWith('{')) {
    try {
      const j = JSON.parse(trimmed) as Record<string, unknown>;
      const e = j.error as { code?: unknown; message?: unknown } | undefined;
      if (e && typeof e === 'object' && typeof e.code === 'string') {
        const message = typeof e.message === 'string' ? e.message : e.code;
        return new ClientError('relay', e.code as ClientErrorCode, message, { status, retryAfterMs: retry });
      }
      // A framework-shaped error ({"statusCode","code","message"}) or FastAPI's {"detail": …}.
      if (status >= 400 && typeof j.code === 'string' && typeof j.message === 'string') {
        const code = (
          j.code in ERRORS ? j.code : (codeOfDetail(j.message) ?? 'relay_error')
        ) as ClientErrorCode;
        return new ClientError('relay', code, j.message, { status, retryAfterMs: retry });
      }
      if (status >= 400 && typeof j.detail === 'string') {
        const code: ClientErrorCode =
          status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : 'relay_error';
        return new ClientError('relay', code, j.detail, { status, retryAfterMs: retry });
      }
    } catch {
      // not JSON after all: fall through to the text conventions
    }
  }
  const text = parseTextError(body);
  if (text) {
    const validation = body.startsWith('请求格式错误：');
    const code: ClientErrorCode = validation
      ? 'validation_failed'
      : status === 429 && text.detail.startsWith('请求过于频繁')
        ? 'rate_limited'
        : (codeOfDetail(text.detail) ?? 'relay_error');
    const message = validation ? body : text.detail;
    return new ClientError('relay', code, message, { status: text.status ?? status, retryAfterMs: retry });
  }
  if (status >= 400) {
    const code: ClientErrorCode =
      status === 401 ? 'invalid_token' : status === 429 ? 'rate_limited' : 'relay_error';
    const snippet = body.length > 200 ? `${body.slice(0, 200)}…` : body;
    return new ClientError('relay', code, `HTTP ${status}${snippet ? `: ${snippet}` : ''}`, {
      status,
      retryAfterMs: retry,
    });
  }
  return null;
}

/** Turns what fetch threw into a ClientError (network, timeout), keeping ClientErrors as they are. */
export function errorOfFailure(err: unknown, what: string): ClientError {
  if (err instanceof ClientError) return err;
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') {
    return new ClientError('timeout', 'timeout', `${what}: no answer in time`, { cause: err });
  }
  const detail = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
  return new ClientError('network', 'network_error', `${what}: ${detail}`, { cause: err });
}
