// Homepages (docs/compat.md PUT /homepage, GET /homepage/{id}) with the W-8 fix: pages are served in an
// opaque-origin sandbox, never as documents of the relay's own origin, and links use PUBLIC_BASE_URL (else
// the listening address; never the request's Host).

import { DEFAULT_HOMEPAGE_HTML, formatHomepageUpdated, RelayError } from '@openwechat/protocol';
import type { FastifyRequest } from 'fastify';
import type { UserRecord, UserStore } from '../../store/types.ts';
import type { Issues } from '../input.ts';
import { readMultipart } from '../multipart.ts';
import { grantUploadTime } from '../body-deadlines.ts';
import { tokenUser, type Ctx, type Output, type StoreCtx } from '../route.ts';

export const HOMEPAGE_MAX_BYTES = 512 * 1024;

export interface HomepageInput {
  bytes: Buffer | null;
  tooLarge: boolean;
  fileMissing: boolean;
}

export async function parseHomepage(req: FastifyRequest, _issues: Issues, ctx: Ctx): Promise<HomepageInput> {
  if (req.isMultipart()) {
    // The page is read into memory (at most 512 KB), so nothing is written for an unknown sender; the
    // upload time limit is only granted to a known one (the token error itself comes after the page
    // checks, as on the reference).
    const known = async () => {
      const user = await tokenUser(ctx);
      if (user && user.disabledAt === null) grantUploadTime(req);
    };
    const { file } = await readMultipart(req, {
      fileField: 'file',
      maxFileBytes: HOMEPAGE_MAX_BYTES,
      beforeFile: known,
    });
    if (!file) return { bytes: null, tooLarge: false, fileMissing: true };
    return { bytes: file.buffer, tooLarge: file.tooLarge, fileMissing: false };
  }
  const body = req.body;
  return { bytes: Buffer.isBuffer(body) ? body : Buffer.alloc(0), tooLarge: false, fileMissing: false };
}

/** Python's html.parser finds a start, end or self-closing tag. */
const TAG_RE = /<[a-zA-Z][^<>]*>|<\/[a-zA-Z][^<>]*>/;

/** The reference's content checks, in its order; they run before the token check (docs/compat.md). */
export function checkHomepage(input: HomepageInput): string {
  if (input.fileMissing) throw new RelayError('homepage_file_missing');
  if (input.tooLarge) throw new RelayError('homepage_too_large');
  const bytes = input.bytes ?? Buffer.alloc(0);
  if (!bytes.length) throw new RelayError('homepage_empty');
  if (bytes.length > HOMEPAGE_MAX_BYTES) throw new RelayError('homepage_too_large');
  let html: string;
  try {
    html = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new RelayError('homepage_not_utf8');
  }
  const trimmed = html.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    let isJson = true;
    try {
      JSON.parse(trimmed);
    } catch {
      isJson = false;
    }
    if (isJson) throw new RelayError('homepage_is_json');
  }
  if (!trimmed) throw new RelayError('homepage_empty');
  if (!TAG_RE.test(html)) throw new RelayError('homepage_no_tags');
  return html;
}

export async function putHomepage(
  ctx: StoreCtx<UserStore> & { user: UserRecord },
  input: HomepageInput,
): Promise<Output> {
  const html = checkHomepage(input);
  await ctx.services.store.setHomepage(ctx.user.id, html);
  const url = `${ctx.services.publicBase.url}/homepage/${ctx.user.id}`;
  return { text: formatHomepageUpdated(url), json: { url } };
}

/** Served headers: the page runs in a sandbox with an opaque origin, and is never sniffed as another type. */
const PAGE_HEADERS = {
  'content-security-policy': 'sandbox allow-scripts',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export async function getHomepage(
  { services }: StoreCtx<UserStore>,
  input: { userId: number },
): Promise<Output> {
  const stored = await services.store.getHomepage(input.userId);
  if (stored === undefined) throw new RelayError('user_not_found');
  let html = stored ?? DEFAULT_HOMEPAGE_HTML;
  // Pages saved by old reference versions as {"html": "..."}.
  if (stored && stored.trimStart().startsWith('{')) {
    try {
      const legacy = JSON.parse(stored) as { html?: unknown };
      if (typeof legacy.html === 'string') html = legacy.html;
    } catch {
      // Not JSON: an HTML page that starts with "{"; serve as stored.
    }
  }
  return { html, headers: PAGE_HEADERS };
}
