// The bridge's error table (docs/bridge.md, the send API): every refusal of the send API, /im/inbound and the
// media links has a stable code and status, rendered by one function as `{"error":{"code","message"}}`.
// docs/bridge.md lists the same table, with the relay codes each one comes from.

export const BRIDGE_ERRORS = {
  invalid_request: { status: 400, message: 'malformed JSON, or to/text missing or of the wrong type' },
  unauthorized: { status: 401, message: 'missing or invalid bearer token' },
  forbidden: { status: 403, message: 'the bot may not message this recipient' },
  ip_not_allowed: { status: 403, message: 'source address not allowed' },
  conversation_not_found: { status: 404, message: 'unknown recipient' },
  not_found: { status: 404, message: 'no such endpoint' },
  media_not_found: { status: 404, message: 'no such media link, or it has expired' },
  file_gone: {
    status: 404,
    message:
      'the relay no longer has this file (it expired, was deleted after its first complete download, or the bot can no longer see it)',
  },
  method_not_allowed: { status: 405, message: 'method not allowed' },
  request_pending: {
    status: 409,
    message:
      'a friend request to this user is still unanswered; only one message is allowed until they reply',
  },
  group_conflict: {
    status: 409,
    message: 'the group does not allow this (already a member, full, or too many groups)',
  },
  idempotency_conflict: {
    status: 409,
    message: 'this requestId / Idempotency-Key was used with a different body',
  },
  e2e_refused: {
    status: 409,
    message:
      "end-to-end encryption refused the send (BRIDGE_E2E=required and the recipient has no keys, or the recipient's key changed)",
  },
  payload_too_large: { status: 413, message: 'request body too large' },
  text_too_long: { status: 413, message: 'text too long' },
  unprocessable: { status: 422, message: 'the relay refused the content' },
  rate_limited: { status: 429, message: 'rate limited by the relay; retry after retry_after seconds' },
  internal: { status: 500, message: 'internal error' },
  upstream_error: { status: 502, message: 'the relay answered with an error' },
  upstream_unavailable: { status: 503, message: 'the relay is unreachable' },
} as const satisfies Record<string, { status: number; message: string }>;

export type BridgeErrorCode = keyof typeof BRIDGE_ERRORS;

export class BridgeError extends Error {
  readonly code: BridgeErrorCode;
  readonly headers: Record<string, string>;
  /** Extra fields of the error object (retry_after, relay_code). */
  readonly extra: Record<string, unknown>;
  /** Fields for the request's log line (never rendered in the answer). */
  readonly logFields: Record<string, unknown> = {};

  constructor(
    code: BridgeErrorCode,
    message?: string,
    opts: { headers?: Record<string, string>; extra?: Record<string, unknown> } = {},
  ) {
    super(message ?? BRIDGE_ERRORS[code].message);
    this.name = 'BridgeError';
    this.code = code;
    this.headers = opts.headers ?? {};
    this.extra = opts.extra ?? {};
  }

  get status(): number {
    return BRIDGE_ERRORS[this.code].status;
  }

  /** 429 / 503: a Retry-After header and a `retry_after` body field (seconds), as the checklist asks. */
  static retryable(
    code: 'rate_limited' | 'upstream_unavailable',
    seconds: number,
    message?: string,
  ): BridgeError {
    const s = Math.max(1, Math.ceil(seconds));
    return new BridgeError(code, message, {
      headers: { 'retry-after': String(s) },
      extra: { retry_after: s },
    });
  }
}

export function renderBridgeError(err: BridgeError): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  // retry_after also sits at the top level, where simple clients (the seed's example) look for it.
  const top = err.extra.retry_after !== undefined ? { retry_after: err.extra.retry_after } : {};
  const body = { error: { code: err.code, message: err.message, ...err.extra }, ...top };
  return { status: err.status, headers: err.headers, body: JSON.stringify(body) };
}
