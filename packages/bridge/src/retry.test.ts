import { describe, expect, it } from 'vitest';
import { classifyWebhookStatus } from './retry.ts';

describe('webhook retry verdicts', () => {
  it('2xx delivered; network, 408, 425, 429, 5xx retried; other 4xx and 3xx dead', () => {
    expect(classifyWebhookStatus(200)).toBe('delivered');
    expect(classifyWebhookStatus(204)).toBe('delivered');
    for (const s of [null, 408, 425, 429, 500, 502, 503, 504]) expect(classifyWebhookStatus(s)).toBe('retry');
    for (const s of [301, 302, 400, 401, 403, 404, 410, 413, 422])
      expect(classifyWebhookStatus(s)).toBe('dead');
  });
});
