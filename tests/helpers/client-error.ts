// The relay client's refusals in tests: what a call rejected with, checked to be a ClientError.

import { ClientError } from '@openwechat/client';
import { expect } from 'vitest';

/** Awaits `p`, expects it to reject with a ClientError matching `fields`, and returns that error. */
export async function expectClientError(
  p: Promise<unknown>,
  fields: Partial<ClientError> = {},
): Promise<ClientError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ClientError);
  expect(err).toMatchObject(fields);
  return err as ClientError;
}
