// The bridge's HTTP server, on fastify as the relay's (packages/relay/src/app.ts). The route table shows every
// endpoint with its guards: source allowlist, bearer token, body limit; the guards run in an onRequest hook,
// before any body is read. Bodies arrive as raw bytes (each handler parses its own, so every refusal has the
// shape of docs/bridge.md). Errors are rendered by renderBridgeError() only; every request leaves one log
// line (never its headers or body, and never the capability part of a media link's path).

import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
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

interface RequestCtx {
  ip: string;
  /** The request path, without its query string. */
  path: string;
  body: Buffer;
  headers: IncomingHttpHeaders;
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

function routeTable(h: Handlers): Route[] {
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
function bearerMatches(header: string | undefined, expected: string): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return timingSafeEqual(digest(m?.[1] ?? ''), digest(expected)) && m !== null;
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

/** What one request carries through its hooks: the matched route and the fields of its log line. */
interface Exchange {
  started: number;
  requestId: string;
  route: Route | undefined;
  secretRoute: Route | undefined;
  logPath: string;
  closeAfter: boolean;
}

const exchanges = new WeakMap<FastifyRequest, Exchange>();

/**
 * The server, ready to listen (`listen`, `close`, `closeAllConnections` are node's: the bridge owns its
 * lifecycle).
 */
export async function createHttpServer(
  config: BridgeConfig,
  handlers: Handlers,
  log: Logger,
): Promise<Server> {
  const routes = routeTable(handlers);
  const allowed = ipMatcher(config.allowedIps);
  const inboundAllowed = ipMatcher(config.inboundAllowedIps);
  const limit = config.maxBodyKb * 1024;

  const app = Fastify({
    logger: false,
    bodyLimit: limit,
    requestIdHeader: false,
    // Every method and path is in the route table: no implicit HEAD routes.
    exposeHeadRoutes: false,
    // A media link's capability token is one long path segment.
    routerOptions: { maxParamLength: 1024 },
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const exchangeOf = (req: FastifyRequest): Exchange => {
    let x = exchanges.get(req);
    if (!x) {
      const path = req.url.split('?')[0]!;
      // What the log line shows: a capability path only up to its secret part, whatever the outcome.
      const secretRoute = routes.find((r) => r.secretSuffix && path.startsWith(r.path));
      x = {
        started: performance.now(),
        requestId: randomUUID(),
        route: undefined,
        secretRoute,
        logPath: secretRoute ? `${secretRoute.path}…` : path,
        closeAfter: false,
      };
      exchanges.set(req, x);
    }
    return x;
  };

  const logLine = (
    req: FastifyRequest,
    x: Exchange,
    status: number,
    extra: Record<string, unknown>,
  ): void => {
    if (x.route?.hop === 'health' || x.route?.hop === 'metrics') return;
    log.info(
      {
        hop: x.route?.hop ?? x.secretRoute?.hop ?? 'http',
        requestId: x.requestId,
        method: req.method,
        path: x.logPath,
        ip: req.ip,
        status,
        latency_ms: Math.round(performance.now() - x.started),
        ...extra,
      },
      'request',
    );
  };

  const respond = async (req: FastifyRequest, reply: FastifyReply, r: Reply): Promise<void> => {
    const x = exchangeOf(req);
    const headers = { ...(r.headers ?? {}), ...(x.closeAfter ? { connection: 'close' } : {}) };
    if (r.stream) {
      // Streamed as it comes, with backpressure; the log line says whether it was complete.
      reply.hijack();
      const res = reply.raw;
      res.writeHead(r.status, headers);
      handlers.onRequest(x.route?.path ?? 'unknown', r.status);
      const streamed: Record<string, unknown> = {};
      let bytes = 0;
      const count = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
        for await (const chunk of source) {
          bytes += chunk.length;
          yield chunk;
        }
      };
      try {
        await pipeline(r.stream, count, res);
        streamed.outcome = 'complete';
      } catch (err) {
        // The client went away, or the relay broke off: the client sees a short body, never a
        // complete-looking one (Content-Length, or no final chunk).
        streamed.outcome = 'incomplete';
        streamed.error = errInfo(err).error;
        res.destroy();
      }
      streamed.bytes = bytes;
      logLine(req, x, r.status, { ...(r.log ?? {}), ...streamed });
      return;
    }
    const isText = typeof r.body === 'string';
    reply.code(r.status).headers({
      'content-type':
        r.contentType ?? (isText ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8'),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...headers,
    });
    // The unread rest of a refused body is dropped with the connection.
    if (x.closeAfter) reply.raw.once('finish', () => req.raw.destroy());
    reply.send(isText ? (r.body as string) : JSON.stringify(r.body));
    handlers.onRequest(x.route?.path ?? 'unknown', r.status);
    logLine(req, x, r.status, r.log ?? {});
  };

  const fail = (req: FastifyRequest, reply: FastifyReply, err: unknown): Promise<void> => {
    const x = exchangeOf(req);
    if (err instanceof BridgeError)
      return respond(req, reply, { ...errorReply(err), log: { ...err.logFields, code: err.code } });
    log.error({ hop: x.route?.hop ?? 'http', requestId: x.requestId, ...errInfo(err) }, 'request failed');
    return respond(req, reply, errorReply(new BridgeError('internal')));
  };

  // Unknown paths are 404, known paths with another method 405 with Allow (after the source allowlist).
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    if (!allowed(req.ip)) return fail(req, reply, new BridgeError('ip_not_allowed'));
    const forPath = routes.filter((r) => routeMatches(r, path));
    if (!forPath.length) return fail(req, reply, new BridgeError('not_found'));
    return fail(
      req,
      reply,
      new BridgeError('method_not_allowed', undefined, {
        headers: { allow: forPath.map((r) => r.method).join(', ') },
      }),
    );
  });

  app.setErrorHandler((error: FastifyError, req, reply) => {
    if (reply.sent || reply.raw.headersSent) return;
    if (error instanceof BridgeError) return fail(req, reply, error);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      // The rest of the body is not read: the connection closes after the answer.
      exchangeOf(req).closeAfter = true;
      return fail(
        req,
        reply,
        new BridgeError('payload_too_large', `request body over ${config.maxBodyKb} KB`),
      );
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500)
      return fail(req, reply, new BridgeError('invalid_request', error.message));
    return fail(req, reply, error);
  });

  for (const route of routes) {
    const url = route.prefix ? `${route.path}*` : route.path;
    app.route({
      method: route.method,
      url,
      // Guards before the body is read: source, then token.
      onRequest: async (req) => {
        const x = exchangeOf(req);
        if (!allowed(req.ip)) throw new BridgeError('ip_not_allowed');
        if (route.prefix && !routeMatches(route, req.url.split('?')[0]!)) throw new BridgeError('not_found');
        x.route = route;
        if (route.inboundOnly && !inboundAllowed(req.ip)) throw new BridgeError('ip_not_allowed');
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
      },
      handler: async (req, reply) => {
        const x = exchangeOf(req);
        const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        let r: Reply;
        try {
          r = await route.handler({
            ip: req.ip,
            path: req.url.split('?')[0]!,
            body,
            headers: req.headers,
            requestId: x.requestId,
          });
        } catch (err) {
          await fail(req, reply, err);
          return reply;
        }
        await respond(req, reply, r);
        return reply;
      },
    });
  }

  await app.ready();
  return app.server;
}
