// Stalled or dribbled bodies (issue 17.3): a request whose body has not fully arrived within
// REQUEST_TIMEOUT_SECONDS gets 408 and its connection is closed, so slow bodies cannot pile up
// descriptors. A multipart upload gets UPLOAD_TIMEOUT_SECONDS (counted from the same start) once its
// sender's token was checked (grantUploadTime, issue 24.1). Headers are bounded by Node's own
// headersTimeout (app.ts).
//
// One sweep checks every body still arriving, a quarter of the limit (at most 1 s) apart, as Node checks
// its own timeouts, instead of a timer and two listeners per request (issue 26): a cut comes at most one
// interval late, never early. An answer given before its body fully arrived is lingered over (below).

import type { FastifyReply, FastifyRequest } from 'fastify';

interface Pending {
  reply: FastifyReply;
  started: number;
  deadline: number;
}

export class BodyDeadlines {
  private readonly pending = new Map<FastifyRequest, Pending>();
  private timer: NodeJS.Timeout | null = null;
  private readonly intervalMs: number;

  constructor(
    private readonly limits: { requestMs: number; uploadMs: number },
    private readonly clock: () => number = Date.now,
  ) {
    this.intervalMs = Math.max(10, Math.min(1000, Math.floor(limits.requestMs / 4)));
  }

  /** Starts the clock of a request whose body is still to come (onRequest). */
  track(req: FastifyRequest, reply: FastifyReply): void {
    // No Content-Length and no Transfer-Encoding: HTTP/1.1 says there is no body to wait for.
    const h = req.headers;
    if (req.raw.complete || (h['content-length'] === undefined && h['transfer-encoding'] === undefined))
      return;
    const started = this.clock();
    this.pending.set(req, { reply, started, deadline: started + this.limits.requestMs });
    req.owcBodyDeadlines = this;
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** The upload limit instead of the request limit, counted from the request's start. */
  grantUpload(req: FastifyRequest): void {
    const p = this.pending.get(req);
    if (p) p.deadline = p.started + this.limits.uploadMs;
  }

  /** The request was answered (onResponse): nothing more to watch. */
  done(req: FastifyRequest): void {
    this.pending.delete(req);
  }

  /** Stops the sweep (the relay closes). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.pending.clear();
  }

  private sweep(): void {
    const now = this.clock();
    for (const [req, p] of this.pending) {
      if (req.raw.complete || req.raw.destroyed) this.pending.delete(req);
      else if (now >= p.deadline) {
        this.pending.delete(req);
        if (p.reply.raw.headersSent) req.raw.socket.destroy();
        else reply408(req);
      }
    }
    if (this.pending.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

/**
 * Gives this request's body the upload time limit (UPLOAD_TIMEOUT_SECONDS) instead of
 * REQUEST_TIMEOUT_SECONDS. Called once the sender of a multipart upload is known.
 */
export function grantUploadTime(req: FastifyRequest): void {
  req.owcBodyDeadlines?.grantUpload(req);
}

/** Answers 408 on a request whose body stalled (nothing was answered yet) and closes the connection. */
function reply408(req: FastifyRequest): void {
  const socket = req.raw.socket;
  if (socket.destroyed) return;
  // The handler is still waiting on the body; write the answer on the socket directly, as Node does
  // for its own requestTimeout, then close once the client had a moment to read it.
  socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  const timer = setTimeout(() => socket.destroy(), 1000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** How much of a refused body is read and dropped so the client gets the answer, not a reset. */
const LINGER_BYTES = 16 * 1024 * 1024;
const LINGER_MS = 5000;

/**
 * An answer given before the body fully arrived (early 413, a refused multipart) must reach a client
 * that is still sending (issue 17.6): closing at once would make the kernel reset the connection over
 * the unread bytes, and the client would see a reset instead of the answer. So the connection stays
 * open and the rest of the body is read and dropped — up to LINGER_BYTES or LINGER_MS, past which it is
 * closed anyway.
 */
export function linger(req: FastifyRequest): void {
  const raw = req.raw;
  if (raw.complete || raw.destroyed) return;
  const socket = raw.socket;
  let seen = 0;
  const cut = () => socket.destroy();
  const timer = setTimeout(cut, LINGER_MS);
  timer.unref();
  raw.unpipe();
  raw.removeAllListeners('data');
  raw.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > LINGER_BYTES) cut();
  });
  raw.once('end', () => clearTimeout(timer));
  socket.once('close', () => clearTimeout(timer));
  raw.resume();
}
