// Which webhook outcomes are worth retrying at all (docs/bridge.md, openclaw/openclaw#33403:
// 4xx are permanent). The waits themselves are @openwechat/client's one policy (backoffDelay, retryDelay:
// exponential with equal jitter, Retry-After a floor), shared with the relay stream and relay sends.

export type Verdict = 'delivered' | 'retry' | 'dead';

/**
 * What a webhook answer means. 2xx: done. Network errors, timeouts, 408, 425, 429 and 5xx: transient.
 * Everything else — other 4xx and 3xx (a redirect means a wrong URL; fetch does not follow it) — is
 * permanent: retrying cannot help, so the message goes to the dead letters for a human to look at.
 */
export function classifyWebhookStatus(status: number | null): Verdict {
  if (status === null) return 'retry';
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'retry';
  return 'dead';
}
