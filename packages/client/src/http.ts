// Every request this package makes goes through fetchWithinOrigin: redirects are followed by hand, and
// only within the configured origin. fetch's own redirect handling strips `Authorization` and cookies on a
// cross-origin hop but not `X-Token` (issue 16), so a relay (or a proxy in front of it) answering
// `307 Location: https://elsewhere/` would otherwise hand the user's token to elsewhere.

import { ClientError } from './errors.ts';

const MAX_HOPS = 5;

/**
 * fetch() that follows redirects only to the same origin (scheme, host and port) as `url`, at most
 * MAX_HOPS times, and throws `redirect_refused` (nothing sent) for any other target. 301/302/303 turn a
 * POST into a GET without body as fetch does; 307/308 repeat the request (our bodies are strings, Blobs
 * and FormData of Blobs, which can be sent again).
 */
export async function fetchWithinOrigin(
  fetchImpl: typeof fetch,
  url: string,
  init: RequestInit,
): Promise<Response> {
  const origin = new URL(url).origin;
  let target = url;
  let req: RequestInit = { ...init, redirect: 'manual' };
  for (let hop = 0; ; hop++) {
    const res = await fetchImpl(target, req);
    if (res.status < 300 || res.status >= 400 || res.status === 304) return res;
    const location = res.headers.get('location');
    if (location === null) return res;
    // The redirect's own body is not wanted; free the connection.
    await res.body?.cancel().catch(() => {});
    let next: URL;
    try {
      next = new URL(location, target);
    } catch {
      throw new ClientError('protocol', 'bad_response', `HTTP ${res.status} with an unreadable Location`, {
        status: res.status,
      });
    }
    if (next.origin !== origin) {
      // Only the origin is named: a path or query could carry something that is not ours to log.
      throw new ClientError(
        'protocol',
        'redirect_refused',
        `the relay at ${origin} redirected to ${next.origin} (HTTP ${res.status}); the token is sent only to ` +
          `the configured address — if the relay moved, configure the new address`,
        { status: res.status },
      );
    }
    if (hop + 1 >= MAX_HOPS) {
      throw new ClientError('protocol', 'bad_response', `more than ${MAX_HOPS} redirects at ${origin}`, {
        status: res.status,
      });
    }
    const method = (req.method ?? 'GET').toUpperCase();
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
      const headers = new Headers(req.headers);
      headers.delete('content-type');
      req = { ...req, method: 'GET', body: undefined, headers };
    }
    target = next.toString();
  }
}
