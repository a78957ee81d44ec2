// What a route is, and the one function that turns a handler's result or error into a response.
// Handlers return both renderings of their answer ({text, json}); the request's convention picks one:
// JSON mode when the client sends `Accept: application/json`, else the reference's text convention of
// the path ("soft": HTTP 200 + `错误：…`; "hard": real status + `错误 <code>：…`; docs/compat.md).

import { hash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  JSON_CONTENT_TYPE,
  RelayError,
  renderError,
  TEXT_CONTENT_TYPE,
  type ErrorConvention,
} from '@openwechat/protocol';
import type { RelayConfig } from '../config.ts';
import type { LastSeenTracker } from '../services/last-seen.ts';
import type { RelayMetrics } from '../services/metrics.ts';
import type { SlidingWindowLimiter } from '../services/rate-limit.ts';
import type { StreamHub } from '../stream/hub.ts';
import type { Step } from '../store/steps.ts';
import type { Store, UserRecord } from '../store/types.ts';
import type { WakeBus } from '../store/wake.ts';
import type { BodyDeadlines } from './body-deadlines.ts';
import { Issues } from './input.ts';

// What the relay keeps on a request. Declared to Fastify (app.ts decorateRequest) so every request
// object has the same shape from its construction.
declare module 'fastify' {
  interface FastifyRequest {
    /** X-Token's user: null until looked up, false when there is none (tokenUser). */
    owcUser: UserRecord | false | null;
    /** The route-table entry handling the request; null before its handler runs (or for none). */
    owcSpec: RouteSpec | null;
    /** Set while the body is awaited under a deadline (body-deadlines.ts). */
    owcBodyDeadlines: BodyDeadlines | null;
  }
}

/** Everything a handler may use; built once per relay. */
export interface RelayServices {
  config: RelayConfig;
  store: Store;
  hub: StreamHub;
  /** Cross-instance wake-ups (shared PostgreSQL); null for a single-instance backend. */
  bus: WakeBus | null;
  lastSeen: LastSeenTracker;
  limiter: SlidingWindowLimiter;
  metrics: RelayMetrics;
  /** Set when a graceful shutdown starts: /readyz answers 503 so load balancers drain this instance. */
  lifecycle: { shuttingDown: boolean };
  /** Runtime switch of the limiter (POST /admin/rate-limit), per instance as on the reference. */
  rateLimit: { enabled: boolean };
  now: () => number;
  /** Temporary folder for uploads being received (inside the data folder). */
  uploadDir: string;
  /**
   * Base of URLs handed out: PUBLIC_BASE_URL, else the address the relay listens on (set by listen()).
   * Never the client's Host header (issue 24.6).
   */
  publicBase: { url: string };
  version: string;
  features: string[];
  /** The OpenAPI document of this relay. */
  openapi: Record<string, unknown>;
}

export interface Ctx {
  req: FastifyRequest;
  reply: FastifyReply;
  services: RelayServices;
}

/**
 * A Ctx whose store is only the slice `S` of the Store (UserStore, MessagingStore, …) a handler uses:
 * the handler's dependencies are visible in its signature. Every full Ctx is one.
 */
export type StoreCtx<S> = Omit<Ctx, 'services'> & { services: Omit<RelayServices, 'store'> & { store: S } };

/** A handler's answer in both renderings. `raw` means the handler wrote the response itself (SSE). */
export type Output =
  | {
      text: string;
      json: unknown;
      status?: number;
      headers?: Record<string, string>;
      /** Text-mode content type when not plain text (/health and /stats answer JSON in both modes). */
      contentType?: string;
    }
  | { html: string; headers?: Record<string, string> }
  | { raw: true };

export type Auth = 'none' | 'token' | 'admin';

export interface RouteSpec<I = unknown> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  /** Text-mode error convention of the path (docs/compat.md). */
  convention: 'soft' | 'hard';
  auth: Auth;
  /** Refresh the caller's last-seen time (the reference's list, docs/compat.md). */
  touch?: boolean;
  bodyLimit?: number;
  /** Takes multipart bodies: only these routes have @fastify/multipart (app.ts). */
  uploads?: true;
  /** Error code to report when the body exceeds bodyLimit (default payload_too_large). */
  tooLarge?: 'payload_too_large' | 'homepage_too_large';
  /** Collects input problems into `issues`; runs before auth, as FastAPI validation does. */
  parse?: (req: FastifyRequest, issues: Issues, ctx: Ctx) => Promise<I> | I;
  /** Checks that the reference makes after validation but before the token (POST /send/file). */
  preAuth?: (input: I, ctx: Ctx) => void;
  handler: (ctx: Ctx & { user: UserRecord }, input: I) => Promise<Output>;
  /** Runs after the response whatever happened (temporary files). */
  cleanup?: (input: I) => Promise<void>;
}

export function defineRoute<I>(spec: RouteSpec<I>): RouteSpec<unknown> {
  return spec as RouteSpec<unknown>;
}

export function wantsJson(req: FastifyRequest): boolean {
  const accept = req.headers.accept;
  return typeof accept === 'string' && /\bapplication\/json\b/i.test(accept);
}

export function sha256Hex(s: string): string {
  // The one-shot form: a third of createHash().update().digest()'s cost, once per request (issue 26).
  return hash('sha256', s, 'hex');
}

/** The convention for a request: JSON mode, or the path's text convention (unknown paths: hard). */
export function conventionOf(req: FastifyRequest, spec?: Pick<RouteSpec, 'convention'>): ErrorConvention {
  if (wantsJson(req)) return 'json';
  return spec?.convention ?? 'hard';
}

export function sendError(reply: FastifyReply, err: RelayError, convention: ErrorConvention): FastifyReply {
  const r = renderError(err, convention);
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  return reply.code(r.status).type(r.contentType).send(r.body);
}

export function sendOutput(reply: FastifyReply, out: Output, json: boolean): FastifyReply | undefined {
  if ('raw' in out) return undefined;
  if (out.headers) for (const [k, v] of Object.entries(out.headers)) reply.header(k, v);
  if ('html' in out) return reply.code(200).type('text/html; charset=utf-8').send(out.html);
  if (json)
    return reply
      .code(out.status ?? 200)
      .type(JSON_CONTENT_TYPE)
      .send(JSON.stringify(out.json));
  return reply
    .code(out.status ?? 200)
    .type(out.contentType ?? TEXT_CONTENT_TYPE)
    .send(out.text);
}

/**
 * X-Token → user, memoised on the request (the rate limiter and auth both need it). A value when the
 * store answers without a promise (SQLite), else a promise of it (PostgreSQL).
 */
export function tokenUser(ctx: Ctx): Step<UserRecord | null> {
  const req = ctx.req;
  if (req.owcUser !== null) return req.owcUser || null;
  const token = req.headers['x-token'];
  if (typeof token !== 'string' || !token) {
    req.owcUser = false;
    return null;
  }
  // Tokens are looked up by their SHA-256: the stored value is never the token itself (W-7), and the
  // index lookup compares digests, which leaks nothing useful about the token.
  const found = ctx.services.store.findUserByTokenHash(sha256Hex(token));
  if (found instanceof Promise) return found.then((user) => (req.owcUser = user ?? false) || null);
  req.owcUser = found ?? false;
  return found;
}
