// The one error table. Every refusal the relay can give has a stable snake_case code here, with the HTTP
// status used on "hard" paths and in JSON mode, and the Chinese detail the reference relay prints.
// renderError() is the single place that turns an error into a response body for each convention.

export interface ErrorSpec {
  /** Real HTTP status: used on hard paths and in JSON mode. Soft text paths answer 200 (reference). */
  status: number;
  /** The reference's detail text (what follows `错误：` / `错误 <code>：`). */
  message: string;
  /**
   * How text mode renders it:
   * - `business` (default): soft → 200 `错误：<msg>`; hard → <status> `错误 <status>：<msg>`.
   * - `validation`: `请求格式错误：<msg>`; soft → 200, hard → 422.
   * - `fixed`: always <status> with the body `错误：<msg>` (rate limiter, SSE cap).
   * - `route`: FastAPI's default JSON body `{"detail": msg}` with <status> (unknown route/method).
   */
  kind?: 'business' | 'validation' | 'fixed' | 'route';
}

export const ERRORS = {
  // Request shape and auth
  validation_failed: { status: 422, message: '', kind: 'validation' },
  invalid_token: { status: 401, message: 'Token 无效' },
  account_disabled: { status: 403, message: '账号已被停用，请联系中继服务器管理员' },
  payload_too_large: { status: 413, message: '请求体过大' },
  rate_limited: { status: 429, message: '请求过于频繁，请稍后再试。', kind: 'fixed' },
  sse_limit: { status: 429, message: '该 IP 的 SSE 连接数已达上限（最多 1 条）。', kind: 'fixed' },
  /** Ours: the user's streams replaced one another within SSE_REPLACE_INTERVAL_SECONDS (Retry-After). */
  sse_replaced_recently: {
    status: 429,
    message: '该用户的 SSE 连接刚被替换过（同时连接的客户端多于上限），请按 Retry-After 稍后再连接。',
    kind: 'fixed',
  },
  not_found: { status: 404, message: 'Not Found', kind: 'route' },
  method_not_allowed: { status: 405, message: 'Method Not Allowed', kind: 'route' },
  internal_error: { status: 500, message: '内部错误，请重试' },
  // The database cannot be reached (PostgreSQL restarting or down): nothing was done, retry shortly.
  store_unavailable: { status: 503, message: '存储暂时不可用，请稍后重试' },

  // Registration
  registration_closed: { status: 503, message: '注册人数已达上限，暂不开放新用户注册。' },
  name_taken: { status: 409, message: '该名称已被使用，请换一个名称。' },
  invalid_name: { status: 400, message: '名称不能包含换行等控制字符' },
  invalid_description: { status: 400, message: '简介不能包含换行等控制字符' },
  registration_failed: { status: 500, message: '注册失败，请稍后重试。' },

  // Users and friendship
  user_not_found: { status: 404, message: '用户不存在' },
  cannot_message_self: { status: 400, message: '不能给自己发消息' },
  blocked_by_recipient: { status: 403, message: '对方已将你拉黑' },
  you_blocked_recipient: { status: 403, message: '你已拉黑该用户，请先解除拉黑' },
  request_pending: {
    status: 409,
    message: '好友申请已发出，对方尚未回复。建立好友关系前仅允许发送一条消息。',
  },
  recipient_friends_only: { status: 403, message: '该用户仅接受好友消息' },
  recipient_dnd: { status: 403, message: '该用户已开启免打扰，不接受任何消息' },
  friendship_state_error: { status: 500, message: '好友关系状态异常，请稍后重试' },
  cannot_block_self: { status: 400, message: '不能拉黑自己' },
  not_friends: { status: 409, message: '只能拉黑已建立好友关系的用户' },
  no_block_record: { status: 404, message: '未找到对该用户的拉黑记录' },

  // Sending files
  content_or_file_required: { status: 400, message: 'content 或 file 至少需提供一个' },
  content_too_long: { status: 400, message: 'content 最多 1000 字' },
  file_too_large: { status: 413, message: '文件大小超过限制（最大 10MB）' },
  send_failed: { status: 500, message: '发送失败，请稍后重试' },
  upload_quota_exceeded: { status: 413, message: '待对方接收的附件总量超过限制' },
  file_not_found: { status: 404, message: '文件不存在或已过期' },

  // Homepage
  homepage_file_missing: { status: 400, message: '请提供 file 字段（HTML 文件）' },
  homepage_empty: { status: 400, message: 'HTML 内容不能为空' },
  homepage_too_large: { status: 400, message: '主页大小超过限制（最大 512KB）' },
  homepage_not_utf8: { status: 400, message: 'HTML 需为 UTF-8 编码' },
  homepage_is_json: { status: 400, message: '请提供 HTML 页面，而非 JSON' },
  homepage_no_tags: { status: 400, message: '请提供有效的 HTML 页面（需包含 HTML 标签）' },

  // Messages (our additions)
  invalid_idempotency_key: { status: 400, message: 'Idempotency-Key 最长 255 个字符' },
  idempotency_conflict: { status: 409, message: '同一 Idempotency-Key 已用于不同的请求内容' },
  receipt_not_found: { status: 404, message: '未找到该消息的送达记录（不是你发送的，或已过期）' },
  send_not_found: { status: 404, message: '未找到使用该 Idempotency-Key 的发送记录（或已超过 24 小时）' },

  // Groups (docs/groups-api.md). A group the caller does not belong to is `group_not_found`, like one
  // that does not exist, so group ids reveal nothing. The two limits carry the configured number.
  group_not_found: { status: 404, message: '群组不存在' },
  not_group_owner: { status: 403, message: '只有群主可以执行此操作' },
  not_friends_of_owner: { status: 409, message: '只能添加群主的好友' },
  already_member: { status: 409, message: '该用户已在群组中' },
  not_group_member: { status: 404, message: '该用户不在群组中' },
  group_full: { status: 409, message: '群组成员已达上限（最多 500 人）' },
  too_many_groups: { status: 409, message: '加入的群组数量已达上限（最多 100 个）' },
  owner_cannot_leave: { status: 409, message: '群主不能退出群组，请先转让群主或解散群组' },
  invalid_group_name: { status: 400, message: '群组名称不能包含换行等控制字符' },

  // End-to-end encryption (docs/e2e.md). The relay never reads a ciphertext; it checks only the shape
  // of what it stores and the signature of a published key bundle.
  e2e_content_mismatch: { status: 400, message: '加密消息的 content 必须为“[加密消息]”' },
  e2e_not_allowed: { status: 400, message: '该请求不支持加密字段 e2e' },
  invalid_key_bundle: { status: 400, message: '密钥包无效' },
  key_version_stale: { status: 409, message: '密钥版本必须大于已发布的版本' },
  keys_not_found: { status: 404, message: '该用户尚未发布加密密钥' },

  // Admin
  admin_not_configured: { status: 503, message: '管理接口未配置 ADMIN_KEY' },
  admin_key_invalid: { status: 401, message: '管理密钥无效' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An expected refusal. Thrown anywhere below the HTTP layer; rendered by renderError(). */
export class RelayError extends Error {
  readonly code: ErrorCode;
  /** Overrides the table's detail text (e.g. the validation error list, the configured upload limit). */
  readonly detail: string;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, detail?: string, headers: Record<string, string> = {}) {
    const spec: ErrorSpec = ERRORS[code];
    super(detail ?? spec.message);
    this.name = 'RelayError';
    this.code = code;
    this.detail = detail ?? spec.message;
    this.headers = headers;
  }

  get status(): number {
    return ERRORS[this.code].status;
  }
}

/** The response conventions of the reference (docs/compat.md) plus JSON mode. */
export type ErrorConvention = 'soft' | 'hard' | 'json';

export interface RenderedError {
  status: number;
  contentType: string;
  body: string;
}

export const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** JSON-mode error body: `{"error":{"code":"…","message":"…"}}`. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export function renderError(err: RelayError, convention: ErrorConvention): RenderedError {
  const spec: ErrorSpec = ERRORS[err.code];
  const kind = spec.kind ?? 'business';
  if (convention === 'json') {
    const message = kind === 'validation' ? `请求格式错误：${err.detail}` : err.detail;
    const body: ErrorBody = { error: { code: err.code, message } };
    return { status: spec.status, contentType: JSON_CONTENT_TYPE, body: JSON.stringify(body) };
  }
  switch (kind) {
    case 'validation':
      return {
        status: convention === 'soft' ? 200 : 422,
        contentType: TEXT_CONTENT_TYPE,
        body: `请求格式错误：${err.detail}`,
      };
    case 'fixed':
      return { status: spec.status, contentType: TEXT_CONTENT_TYPE, body: `错误：${err.detail}` };
    case 'route':
      return {
        status: spec.status,
        contentType: 'application/json',
        body: JSON.stringify({ detail: err.detail }),
      };
    default:
      return convention === 'soft'
        ? { status: 200, contentType: TEXT_CONTENT_TYPE, body: `错误：${err.detail}` }
        : { status: spec.status, contentType: TEXT_CONTENT_TYPE, body: `错误 ${spec.status}：${err.detail}` };
  }
}

/** Parses a rendered text-mode error back to its detail, for clients talking to either relay. */
export function parseTextError(body: string): { status?: number; detail: string } | null {
  const hard = /^错误 (\d{3})：([\s\S]*)$/.exec(body);
  if (hard) return { status: Number(hard[1]), detail: hard[2] ?? '' };
  if (body.startsWith('错误：')) return { detail: body.slice(3) };
  if (body.startsWith('请求格式错误：')) return { detail: body.slice(7) };
  return null;
}
