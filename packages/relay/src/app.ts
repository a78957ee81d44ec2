// Assembles the relay: config → store → services → HTTP server. Nothing runs at import; createRelay()
// builds an instance that main.ts (or a test) starts with listen() and stops with close().

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { pino, type Bindings, type ChildLoggerOptions, type Logger } from 'pino';
import { RELAY_FEATURES, RelayError } from '@openwechat/protocol';
import { resolveConfig, type RelayConfig } from './config.ts';
import { BodyDeadlines, linger } from './http/body-deadlines.ts';
import { checkAdminKey } from './http/handlers/admin.ts';
import { IDEMPOTENCY_WINDOW_MS } from './http/handlers/messaging.ts';
import { Issues } from './http/input.ts';
import { buildOpenApi } from './http/openapi.ts';
import {
  conventionOf,
  sendError,
  sendOutput,
  tokenUser,
  wantsJson,
  type Ctx,
  type RelayServices,
  type RouteSpec,
} from './http/route.ts';
import { conventionOfPath, rateLimitExempt, ROUTES } from './http/routes.ts';
import { LastSeenTracker } from './services/last-seen.ts';
import { storeBoundary } from './services/store-boundary.ts';
import { RelayMetrics } from './services/metrics.ts';
import { SlidingWindowLimiter } from './services/rate-limit.ts';
import { openSqliteStore } from './store/sqlite.ts';
import { openPostgresStore } from './store/postgres.ts';
import { isStoreUnavailable } from './store/postgres-connection.ts';
import type { Store, UserRecord } from './store/types.ts';
import type { WakeBus } from './store/wake.ts';
import { StreamHub } from './stream/hub.ts';

export interface RelayDeps {
  /** Clock for stored times and expiry (tests inject one). */
  now?: () => number;
  /** A ready store (tests of other backends); default: from config. */
  store?: Store;
  bus?: WakeBus | null;
  logger?: Logger;
}

export interface Relay {
  config: RelayConfig;
  services: RelayServices;
  /** Starts listening; resolves to the base URL, e.g. http://127.0.0.1:8000. */
  listen(): Promise<string>;
  /** Graceful stop: ends streams, finishes in-flight requests, flushes bookkeeping, closes the store. */
  close(): Promise<void>;
}

/** How long in-flight requests may take to finish on shutdown before their sockets are closed. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * Node's server limits. Headers (and a connection that sends nothing) get REQUEST_TIMEOUT_SECONDS from
 * the connection's start, or from the previous response on a kept-alive one (issue 24.4); Node answers
 * 408 and closes. Node checks them on an interval, so the interval is a fraction of the limit: a cut
 * comes at most 1 s (a quarter of the limit, if shorter) late.
 */
export function serverTimeouts(config: Pick<RelayConfig, 'requestTimeoutSeconds' | 'uploadTimeoutSeconds'>): {
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  const requestTimeout = config.uploadTimeoutSeconds * 1000;
  // Node refuses a headers limit above the whole-request one.
  const headersTimeout = Math.min(config.requestTimeoutSeconds * 1000, requestTimeout);
  return {
    headersTimeout,
    requestTimeout,
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(headersTimeout / 4))),
  };
}

/** How often streams re-check the store when instances share it (covers a lost notification). */
const CATCH_UP_MS = 2000;

const REQUEST_ID_RE = /^[\w.-]{1,64}$/;

async function openStore(config: RelayConfig): Promise<{ store: Store; bus: WakeBus | null }> {
  if (config.databaseUrl) return openPostgresStore({ url: config.databaseUrl });
  const file = join(config.dataDir, 'relay.sqlite');
  return { store: await openSqliteStore({ file, synchronous: config.sqliteSynchronous }), bus: null };
}

async function readVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function routeSpecOf(req: FastifyRequest): RouteSpec | undefined {
  // Fastify's routeOptions getter builds an object per read: only when the handler has not run.
  return req.owcSpec ?? (req.routeOptions.config as { spec?: RouteSpec } | undefined)?.spec;
}

/**
 * The logger Fastify gives each request (bound to its id), made on its first log call. Fastify asks for
 * one per request; pino's child() costs microseconds, paid by every request though few of them log
 * (issue 26).
 */
class LazyRequestLogger {
  private made: Logger | null = null;
  constructor(
    private readonly parent: Logger,
    private readonly bindings: Bindings,
    private readonly opts: ChildLoggerOptions,
  ) {}
  private get log(): Logger {
    return (this.made ??= this.parent.child(this.bindings, this.opts));
  }
  get level(): string {
    return this.made?.level ?? this.opts.level ?? this.parent.level;
  }
  set level(level: string) {
    this.log.level = level;
  }
  isLevelEnabled(level: string): boolean {
    return this.log.isLevelEnabled(level);
  }
  child(bindings: Bindings, opts?: ChildLoggerOptions): Logger {
    return this.log.child(bindings, opts);
  }
  fatal(...args: unknown[]): void {
    (this.log.fatal as (...a: unknown[]) => void)(...args);
  }
  error(...args: unknown[]): void {
    (this.log.error as (...a: unknown[]) => void)(...args);
  }
  warn(...args: unknown[]): void {
    (this.log.warn as (...a: unknown[]) => void)(...args);
  }
  info(...args: unknown[]): void {
    (this.log.info as (...a: unknown[]) => void)(...args);
  }
  debug(...args: unknown[]): void {
    (this.log.debug as (...a: unknown[]) => void)(...args);
  }
  trace(...args: unknown[]): void {
    (this.log.trace as (...a: unknown[]) => void)(...args);
  }
  silent(): void {}
}

/** Path patterns of the table, to tell 405 (known path, other method) from 404. */
function pathMatchers(): RegExp[] {
  return ROUTES.map((r) => new RegExp(`^${r.url.replace(/:[a-z_]+/g, '[^/]+')}$`));
}

export async function createRelay(partial: Partial<RelayConfig> = {}, deps: RelayDeps = {}): Promise<Relay> {
  const config = resolveConfig(partial);
  const now = deps.now ?? Date.now;
  const logger = deps.logger ?? pino({ level: config.logLevel });
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const uploadDir = join(config.dataDir, 'uploads');
  await mkdir(uploadDir, { recursive: true, mode: 0o700 });
  // Partial uploads of a previous run that died mid-request.
  for (const f of await readdir(uploadDir))
    if (f.endsWith('.part')) await rm(join(uploadDir, f), { force: true });

  const opened = deps.store ? { store: deps.store, bus: deps.bus ?? null } : await openStore(config);
  const bus = opened.bus;
  let hub: StreamHub | null = null;
  const metrics = new RelayMetrics(
    () => hub?.openStreams ?? 0,
    () => hub?.queuedBytes() ?? 0,
  );
  // The one place committed messages wake their recipients' streams, here (hub) and on other instances
  // (bus): the store boundary calls it after every commit that stored messages, whatever wrote them.
  const store = storeBoundary(opened.store, {
    seconds: metrics.storeSeconds,
    delivered: (messages, othersWoken) => {
      metrics.messagesStored.inc(messages.length);
      hub?.publish(messages);
      if (bus && !othersWoken) {
        const recipients = [...new Set(messages.map((m) => m.toId))];
        bus.announce(recipients).catch((err) => logger.warn({ err }, 'wake-up announce failed'));
      }
    },
  });
  const version = await readVersion();
  const services: RelayServices = {
    config,
    store,
    now,
    uploadDir,
    publicBase: { url: config.publicBaseUrl.replace(/\/+$/, '') },
    bus,
    hub: (hub = new StreamHub(store, {
      pingMs: config.ssePingSeconds * 1000,
      maxPerIp: config.sseMaxPerIp,
      maxPerUser: config.sseMaxPerUser,
      replaceIntervalMs: config.sseReplaceIntervalSeconds * 1000,
      legacyGraceMs: config.legacyStreamGraceSeconds * 1000,
      writeTimeoutMs: config.sseWriteTimeoutSeconds * 1000,
      bus,
      now,
      onError: (err) => logger.error({ err }, 'stream delivery failed'),
      observe: {
        delivered: (n) => metrics.messagesDelivered.inc({ channel: 'stream' }, n),
        acknowledged: (n) => metrics.messagesAcknowledged.inc(n),
        stalled: () => metrics.streamsStalled.inc(),
      },
      announceReceipts: (receipts) =>
        void bus?.announceReceipts(receipts).catch((err) => logger.warn({ err }, 'receipt announce failed')),
    })),
    metrics,
    lifecycle: { shuttingDown: false },
    lastSeen: new LastSeenTracker(store),
    // The injected clock (tests) drives the limiter too; by default it keeps its monotonic clock.
    limiter: new SlidingWindowLimiter(config.rateLimitQps, deps.now),
    rateLimit: { enabled: config.rateLimitEnabled },
    version,
    features: [...RELAY_FEATURES],
    openapi: buildOpenApi(ROUTES, version),
  };

  const idPrefix = `${randomBytes(3).toString('hex')}-`;
  let idSeq = 0;
  const app = Fastify({
    loggerInstance: logger,
    forceCloseConnections: 'idle',
    // Our onResponse hook writes the one line per request.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: config.trustProxy.length ? config.trustProxy : false,
    bodyLimit: config.maxBodyKb * 1024,
    // Node's own whole-request limit is the backstop; the per-request timer in the onRequest hook below
    // cuts ordinary bodies sooner.
    requestTimeout: config.uploadTimeoutSeconds * 1000,
    http: serverTimeouts(config) as never,
    requestIdHeader: false,
    // A client's own X-Request-Id, else this process's random prefix and a counter: unique in its logs
    // without a random draw per request.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID_RE.test(given)
        ? given
        : `${idPrefix}${(++idSeq).toString(36)}`;
    },
    childLoggerFactory: (parent, bindings, opts) =>
      new LazyRequestLogger(parent as Logger, bindings, opts) as unknown as Logger,
  });
  app.decorateRequest('owcUser', null);
  app.decorateRequest('owcSpec', null);
  app.decorateRequest('owcBodyDeadlines', null);

  // Bodies arrive as raw bytes and each route parses its own, so malformed JSON, wrong encodings and
  // wrong content types get the reference's wording in the path's convention. Fastify enforces the
  // byte limit while the body streams in (W-17). Multipart is streamed by @fastify/multipart.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  // A multipart body outside the upload routes is left unread, as @fastify/multipart leaves it (the
  // route then finds no body); the upload routes' scope parses it (below).
  app.addContentTypeParser('multipart/form-data', (_req, _payload, done) => done(null));

  // The error and not-found handlers come before any route or plugin: Fastify binds a route to the
  // handlers in place when its plugin context loads.
  const matchers = pathMatchers();
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '/';
    const known = matchers.some((m) => m.test(path));
    const err = new RelayError(known ? 'method_not_allowed' : 'not_found');
    return sendError(reply, err, wantsJson(req) ? 'json' : 'hard');
  });

  app.setErrorHandler((error: FastifyError | RelayError, req, reply) => {
    if (reply.sent || reply.raw.headersSent) return;
    const spec = routeSpecOf(req);
    const convention = conventionOf(req, spec);
    if (error instanceof RelayError) return sendError(reply, error, convention);
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
      case 'FST_REQ_FILE_TOO_LARGE':
        return sendError(reply, new RelayError(spec?.tooLarge ?? 'payload_too_large'), convention);
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      case 'FST_PARTS_LIMIT':
      case 'FST_FILES_LIMIT':
      case 'FST_FIELDS_LIMIT':
      case 'FST_PROTO_VIOLATION':
        return sendError(reply, new RelayError('validation_failed', `body: ${error.message}`), convention);
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(reply, new RelayError('validation_failed', `body: ${error.message}`), convention);
    }
    if (isStoreUnavailable(error)) {
      // PostgreSQL restarting or unreachable: a clear "try again shortly", not an internal error. The
      // relay recovers by itself (its pool reconnects); clients retry, sends with their Idempotency-Key.
      req.log.warn({ err: error.message, reqId: req.id, route: spec?.url }, 'store unavailable');
      const err = new RelayError('store_unavailable', undefined, { 'retry-after': '2' });
      return sendError(reply, err, convention === 'json' ? 'json' : 'hard');
    }
    req.log.error({ err: error, reqId: req.id, route: spec?.url }, 'request failed');
    // Unexpected failures always carry a real 500, whatever the path's convention.
    return sendError(reply, new RelayError('internal_error'), convention === 'json' ? 'json' : 'hard');
  });

  // /docs renders the document with assets served from node_modules: no CDN, no outside request.
  await app.register(swagger, { mode: 'static', specification: { document: services.openapi as never } });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    // swagger-ui's React inserts <style> elements whose content changes with the document, so styles
    // (only styles) may be inline; scripts stay 'self'-only. Nothing is fetched from outside (no https:
    // sources, no validator badge), and plain-http relays on a LAN keep their assets (no
    // upgrade-insecure-requests). Checked in Chromium by tests/relay/hardening.test.ts.
    transformStaticCSP: (header) =>
      header
        .replace(/ https:/g, '')
        .replace(' validator.swagger.io', '')
        .replace(/ ?upgrade-insecure-requests;/, '')
        .replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
  });

  // Bodies have REQUEST_TIMEOUT_SECONDS to arrive (uploads of a known sender UPLOAD_TIMEOUT_SECONDS);
  // an answer given before the body arrived lingers over the rest (http/body-deadlines.ts).
  // Hooks on every request take Fastify's callback form: an async hook costs a promise and a microtask
  // per request even when it has nothing to do (issue 26).
  const deadlines = new BodyDeadlines({
    requestMs: config.requestTimeoutSeconds * 1000,
    uploadMs: config.uploadTimeoutSeconds * 1000,
  });
  app.addHook('onSend', (req, reply, payload, done) => {
    if (!req.raw.complete && !reply.raw.headersSent) {
      reply.removeHeader('connection');
      reply.raw.once('finish', () => linger(req));
    }
    done(null, payload);
  });

  // Answers a request over its sender's (else its address's) limit.
  const limit = (req: FastifyRequest, reply: FastifyReply, path: string, user: UserRecord | null) => {
    const wait = services.limiter.hit(user ? `user:${user.id}` : `ip:${req.ip}`);
    if (!wait) return;
    metrics.rateLimited.inc({ limit: 'requests' });
    const err = new RelayError('rate_limited', undefined, { 'retry-after': String(Math.ceil(wait / 1000)) });
    sendError(reply, err, wantsJson(req) ? 'json' : conventionOfPath(path));
  };
  // One onRequest hook for both (each hook is a step of Fastify's runner on every request). On SQLite
  // the token is looked up without a promise (tokenUser): no microtask then.
  app.addHook('onRequest', (req, reply, done) => {
    deadlines.track(req, reply);
    if (!services.rateLimit.enabled) return done();
    const path = req.url.split('?')[0] ?? '/';
    if (rateLimitExempt(path)) return done();
    let found: ReturnType<typeof tokenUser>;
    try {
      found = tokenUser({ req, reply, services });
    } catch (err) {
      return done(err as Error);
    }
    if (!(found instanceof Promise)) {
      limit(req, reply, path, found);
      return done();
    }
    found.then((user) => {
      limit(req, reply, path, user);
      done();
    }, done);
  });

  // One structured line per request: id, route, status, latency, user — never a token or a body.
  // The line's fields are only gathered when it is written (LOG_LEVEL=info or lower).
  app.addHook('onResponse', (req, reply, done) => {
    deadlines.done(req);
    const user = req.owcUser || undefined;
    const route = routeSpecOf(req)?.url ?? 'unmatched';
    try {
      metrics.observeRequest(route, req.method, reply.statusCode, reply.elapsedTime / 1000);
      if (logger.isLevelEnabled('info'))
        req.log.info(
          {
            method: req.method,
            route,
            status: reply.statusCode,
            ms: Math.round(reply.elapsedTime * 10) / 10,
            userId: user?.id,
          },
          'request',
        );
    } catch (err) {
      return done(err as Error);
    }
    done();
  });

  const addRoute = (scope: Pick<typeof app, 'route'>, spec: RouteSpec) =>
    scope.route({
      method: spec.method,
      url: spec.url,
      bodyLimit: spec.bodyLimit,
      config: { spec },
      handler: async (req, reply) => {
        req.owcSpec = spec;
        // One context for the whole request; `user` is set once the token was checked.
        const ctx: Ctx & { user: UserRecord } = { req, reply, services, user: null as unknown as UserRecord };
        const issues = new Issues();
        let input: unknown;
        try {
          if (spec.auth === 'admin') checkAdminKey(ctx);
          if (spec.parse) {
            // Most parsers are synchronous: no microtask for them.
            const parsed = spec.parse(req, issues, ctx);
            input = parsed instanceof Promise ? await parsed : parsed;
          }
          if (spec.auth === 'token' && typeof req.headers['x-token'] !== 'string') {
            // FastAPI reports header problems after path/query and before body ones.
            const at = issues.list.findIndex((i) => i.loc.startsWith('body'));
            const issue = { loc: 'header -> X-Token', msg: 'Field required' };
            issues.list.splice(at < 0 ? issues.list.length : at, 0, issue);
          }
          issues.throwIfAny();
          spec.preAuth?.(input, ctx);
          if (spec.auth === 'token') {
            // SQLite answers without a promise: no microtask then.
            const found = tokenUser(ctx);
            const user = found instanceof Promise ? await found : found;
            if (!user) throw new RelayError('invalid_token');
            if (user.disabledAt !== null) throw new RelayError('account_disabled');
            if (spec.touch) services.lastSeen.touch(user.id, now());
            const settling = services.hub.settleBeforeRequest(user.id);
            if (settling) await settling;
            ctx.user = user;
          }
          const out = await spec.handler(ctx, input);
          return sendOutput(reply, out, wantsJson(req));
        } finally {
          if (spec.cleanup && input !== undefined) await spec.cleanup(input);
        }
      },
    });

  for (const spec of ROUTES) if (!spec.uploads) addRoute(app, spec);
  // @fastify/multipart only on the routes that take multipart bodies: elsewhere its per-request
  // onResponse hook (an async cleanup: a promise and microtasks per request) is not paid (issue 26).
  // Registered after every root hook, which the scope inherits as they are when it is created.
  await app.register(async (scope) => {
    scope.removeContentTypeParser('multipart/form-data');
    await scope.register(multipart, { throwFileSizeLimit: true });
    // A scope of this app: only the plugin signature's types say otherwise (its default logger type).
    for (const spec of ROUTES) if (spec.uploads) addRoute(scope as unknown as typeof app, spec);
  });

  const expire = async () => {
    const before = now() - config.messageRetentionDays * 86_400_000;
    const n = await store.expireMessages(before);
    if (n) logger.info({ expired: n }, 'expired unacknowledged messages');
    metrics.messagesExpired.inc(n);
    await store.pruneIdempotency(now() - IDEMPOTENCY_WINDOW_MS);
    const files = await store.sweepFiles(now());
    if (files) logger.info({ files }, 'removed expired or collected attachments');
  };
  let expiryTimer: NodeJS.Timeout | null = null;
  let catchUpTimer: NodeJS.Timeout | null = null;

  return {
    config,
    services,
    async listen() {
      await expire();
      expiryTimer = setInterval(
        () => void expire().catch((err) => logger.error({ err }, 'expiry failed')),
        config.maintenanceIntervalSeconds * 1000,
      );
      expiryTimer.unref();
      if (bus) {
        await bus.subscribe(
          (userIds) => services.hub.wake(userIds),
          (receipts) => services.hub.deliverReceipts(receipts),
        );
        catchUpTimer = setInterval(
          () => void services.hub.catchUp().catch((err) => logger.warn({ err }, 'stream catch-up failed')),
          CATCH_UP_MS,
        );
        catchUpTimer.unref();
      }
      await app.listen({ host: config.host, port: config.port });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.port;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      const url = `http://${host}:${port}`;
      if (!services.publicBase.url) {
        services.publicBase.url = url;
        if (config.host === '0.0.0.0' || config.host === '::')
          logger.warn({ url }, 'PUBLIC_BASE_URL is empty: homepage links use the listening address');
      }
      return url;
    },
    async close() {
      // Readiness fails first, streams are told to reconnect elsewhere, in-flight requests finish
      // (new ones get 503), then bookkeeping is flushed and the store closed.
      services.lifecycle.shuttingDown = true;
      if (expiryTimer) clearInterval(expiryTimer);
      if (catchUpTimer) clearInterval(catchUpTimer);
      // Legacy writes past their grace period are deleted; the rest stay stored and are delivered again.
      await services.hub.settle().catch((err) => logger.warn({ err }, 'legacy settle failed'));
      services.hub.closeAll();
      // Idle keep-alive sockets are closed at once; a client that keeps one busy gets a grace period.
      const force = setTimeout(() => app.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      force.unref();
      await app.close();
      clearTimeout(force);
      deadlines.close();
      await services.lastSeen.flush();
      await services.hub.flushReleases();
      await bus?.close();
      await store.close();
    },
  };
}
