// The bridge's HTTP server (node:http; six endpoints need no framework). The route table shows every
// endpoint with its guards: source allowlist, bearer token, body limit. Errors are rendered by
// renderBridgeError() only; every request leaves one log line (never its headers or body, and never the
// capability part of a media link's path).

import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ipMatcher, type BridgeConfig } from './config.ts';
import { BridgeError, renderBridgeError } from './errors.ts';
import { errInfo, type Logger } from './log.ts';

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** Objects are sent as JSON; strings as given. Ignored when `stream` is set. */
  body: unknown;
  /** A body streamed as it comes (with backpressure); destroyed if the client goes away. */
  stream?: Readable;
  contentType?: string;
  /** Fields for the request's log line. */
  log?: Record<string, unknown>;
}

export interface RequestCtx {
  ip: string;
  /** The request path, without its query string. */
  path: string;
  body: Buffer;
  headers: IncomingMessage['headers'];
  requestId: string;
}

type Guard = 'none' | 'bot' | 'inbound';

interface Route {
  method: 'GET' | 'POST';
  /** The exact path, or with `prefix` every path starting with it. */
  path: string;
  prefix?: boolean;
  /** The rest of the path is a secret (a media capability): logged as `<path>…`. */
  secretSuffix?: boolean;
  /** Bearer token required: the bot token (send API) or the inbound token. */
  auth: Guard;
  /** Only from BRIDGE_INBOUND_ALLOWED_IPS (on top of BRIDGE_ALLOWED_IPS). */
  inboundOnly?: boolean;
  hop: string;
  handler: (ctx: RequestCtx) => Promise<Reply> | Reply;
}

export interface Handlers {
  send(ctx: RequestCtx): Promise<Reply>;
  inbound(ctx: RequestCtx): Promise<Reply>;
  /** GET /media/<token>; absent when media links are off (BRIDGE_MEDIA_LINKS=false). */
  media?(ctx: RequestCtx): Promise<Reply>;
  health(): Reply;
  metrics(): Promise<Reply>;
  onRequest(route: string, status: number): void;
}

export function routeTable(h: Handlers): Route[] {
  // prettier-ignore
  const routes: Route[] = [
    { method: 'POST', path: '/api/messages/send', auth: 'bot', hop: 'send_api', handler: h.send },
    { method: 'POST', path: '/messages/send', auth: 'bot', hop: 'send_api', handler: h.send },
    { method: 'POST', path: '/im/inbound', auth: 'inbound', inboundOnly: true, hop: 'inbound', handler: h.inbound },
    { method: 'GET', path: '/health', auth: 'none', hop: 'health', handler: h.health },
    { method: 'GET', path: '/metrics', auth: 'none', hop: 'metrics', handler: h.metrics },
  ];
  // The token in the path is the credential (a capability URL): no bearer token, BRIDGE_ALLOWED_IPS applies.
  if (h.media)
    routes.push({
      method: 'GET',
      path: '/media/',
      prefix: true,
      secretSuffix: true,
      auth: 'none',
      hop: 'media',
      handler: h.media,
    });
  return routes;
}

function routeMatches(r: Route, path: string): boolean {
  return r.prefix ? path.startsWith(r.path) && path.length > r.path.length : r.path === path;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time bearer check: equal-length digests compared with timingSafeEqual. */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return timingSafeEqual(digest(m?.[1] ?? ''), digest(expected)) && m !== null;
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, reply: Reply): void {
  const isText = typeof reply.body === 'string';
  const payload = isText ? (reply.body as string) : JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type':
      reply.contentType ?? (isText ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8'),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(reply.headers ?? {}),
  });
  res.end(payload);
}

function errorReply(err: BridgeError): Reply {
  const r = renderBridgeError(err);
  return {
    status: r.status,
    headers: r.headers,
    body: r.body,
    contentType: 'application/json; charset=utf-8',
  };
}

export function createHttpServer(config: BridgeConfig, handlers: Handlers, log: Logger): Server {
  const routes = routeTable(handlers);
  const allowed = ipMatcher(config.allowedIps);
  const inboundAllowed = ipMatcher(config.inboundAllowedIps);
  const limit = config.maxBodyKb * 1024;

  return createServer((req, res) => {
    const started = performance.now();
    const ip = req.socket.remoteAddress ?? '';
    const path = (req.url ?? '/').split('?')[0]!;
    const requestId = randomUUID();
    let route: Route | undefined;
    let closeAfter = false;
    // What the log line shows: a capability path only up to its secret part, whatever the outcome.
    const secretRoute = routes.find((r) => r.secretSuffix && path.startsWith(r.path));
    const logPath = secretRoute ? `${secretRoute.path}…` : path;

    const handle = async (): Promise<Reply> => {
      if (!allowed(ip)) throw new BridgeError('ip_not_allowed');
      const forPath = routes.filter((r) => routeMatches(r, path));
      if (!forPath.length) throw new BridgeError('not_found');
      route = forPath.find((r) => r.method === req.method);
      if (!route)
        throw new BridgeError('method_not_allowed', undefined, {
          headers: { allow: forPath.map((r) => r.method).join(', ') },
        });
      if (route.inboundOnly && !inboundAllowed(ip)) throw new BridgeError('ip_not_allowed');
      if (route.auth !== 'none') {
        const token = route.auth === 'bot' ? config.botToken : config.inboundToken;
        const header = req.headers.authorization;
        if (!bearerMatches(header, token)) {
          const challenge = header
            ? 'Bearer realm="openwechat-bridge", error="invalid_token"'
            : 'Bearer realm="openwechat-bridge"';
          throw new BridgeError('unauthorized', undefined, { headers: { 'www-authenticate': challenge } });
        }
      }
      let body: Buffer = Buffer.alloc(0);
      if (req.method === 'POST') {
        try {
          body = await readBody(req, limit);
        } catch (err) {
          if (err instanceof BodyTooLarge) {
            closeAfter = true;
            throw new BridgeError('payload_too_large', `request body over ${config.maxBodyKb} KB`);
          }
          throw err;
        }
      }
      return route.handler({ ip, path, body, headers: req.headers, requestId });
    };

    handle()
      .catch((err: unknown): Reply => {
        if (err instanceof BridgeError)
          return { ...errorReply(err), log: { ...err.logFields, code: err.code } };
        log.error({ hop: route?.hop ?? 'http', requestId, ...errInfo(err) }, 'request failed');
        return errorReply(new BridgeError('internal'));
      })
      .then(async (reply) => {
        if (closeAfter) reply.headers = { ...(reply.headers ?? {}), connection: 'close' };
        const streamed: Record<string, unknown> = {};
        if (reply.stream) {
          res.writeHead(reply.status, reply.headers ?? {});
          handlers.onRequest(route?.path ?? 'unknown', reply.status);
          let bytes = 0;
          const count = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
            for await (const chunk of source) {
              bytes += chunk.length;
              yield chunk;
            }
          };
          try {
            await pipeline(reply.stream, count, res);
            streamed.outcome = 'complete';
          } catch (err) {
            // The client went away, or the relay broke off: the client sees a short body, never a
            // complete-looking one (Content-Length, or no final chunk).
            streamed.outcome = 'incomplete';
            streamed.error = errInfo(err).error;
            res.destroy();
          }
          streamed.bytes = bytes;
        } else {
          send(res, reply);
          if (closeAfter) res.on('finish', () => req.destroy());
          handlers.onRequest(route?.path ?? 'unknown', reply.status);
        }
        if (route?.hop === 'health' || route?.hop === 'metrics') return;
        log.info(
          {
            hop: route?.hop ?? secretRoute?.hop ?? 'http',
            requestId,
            method: req.method,
            path: logPath,
            ip,
            status: reply.status,
            latency_ms: Math.round(performance.now() - started),
            ...(reply.log ?? {}),
            ...streamed,
          },
          'request',
        );
      })
      .catch((err) => log.error({ hop: 'http', requestId, ...errInfo(err) }, 'response failed'));
  });
}
